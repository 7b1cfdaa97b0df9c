"""``facegate serve`` and ``facegate keys``: the HTTP service and its API keys."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .errors import ConfigError

_MISSING = "the service needs its extra: `pip install 'facegate[serve]'`"


def _keys_path(args: argparse.Namespace) -> Path:
    if args.keys:
        return Path(args.keys)
    if not args.config:
        raise ConfigError("name the key file with --keys, or the operator configuration with --config")
    from ._config import read_config
    from .service._runtime import read_settings

    config, base = read_config(args.config)
    return read_settings(config, base).keys_path


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from .service._server import ServerOptions, serve
    except ImportError as exc:
        raise ConfigError(f"{_MISSING} ({exc})") from exc
    opts = ServerOptions(
        config=args.config, host=args.host, port=args.port, workers=args.workers,
        ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile, ssl_ca_certs=args.ssl_ca_certs,
        require_client_cert=args.require_client_cert, log_json=True if args.log_json else None,
        graceful_seconds=args.graceful_seconds, http=args.http, accept=args.accept,
    )
    try:
        return serve(opts)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def cmd_keys(args: argparse.Namespace) -> int:
    from .service._auth import KeyStore

    store = KeyStore(_keys_path(args))
    try:
        if args.keys_command == "create":
            key_id, key = store.create(args.name or "", [s for group in args.scope for s in group.split(",") if s])
            if args.json:
                print(json.dumps({"key_id": key_id, "key": key}))
            else:
                print(key)
                print(f"key {key_id} created; the key is shown once, store it now", file=sys.stderr)
        elif args.keys_command == "list":
            rows = store.list()
            if args.json:
                print(json.dumps(rows, indent=2))
            for r in rows if not args.json else ():
                state = f"revoked {r['revoked_at']}" if r["revoked_at"] else "active"
                print(f"{r['key_id']}  {','.join(r['scopes']):<40} {state:<30} {r['name']}")
        else:
            if not store.revoke(args.key_id):
                raise ConfigError(f"no active key `{args.key_id}`")
            print(f"key {args.key_id} revoked (effective on the next request; no restart needed)")
    finally:
        store.close()
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve the gate over HTTP (decide, process, consent, audit) with API keys")
    p.add_argument("--config", required=True, help="operator configuration (config.v1.json; its `service:` section sets keys, limits, logs)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--workers", type=int, default=1, help="worker processes (each its own gate); use the machine's core count")
    p.add_argument("--accept", choices=("balanced", "reuseport"), default="balanced",
                   help="with --workers > 1: balanced (one shared socket, every worker holds an even share of the "
                        "connections; default) or reuseport (a socket per worker, the kernel hashes connections; Linux)")
    p.add_argument("--ssl-certfile", help="TLS certificate chain (PEM)")
    p.add_argument("--ssl-keyfile", help="TLS private key (PEM)")
    p.add_argument("--ssl-ca-certs", help="CA bundle that signs client certificates (mutual TLS)")
    p.add_argument("--require-client-cert", action="store_true", help="mutual TLS: refuse clients without a certificate from --ssl-ca-certs")
    p.add_argument("--log-json", action="store_true", help="log JSON lines (also `service: {log: {json: true}}`)")
    p.add_argument("--graceful-seconds", type=float, default=30.0, help="on SIGTERM, wait this long for in-flight requests")
    p.add_argument("--http", choices=("h11", "httptools"), default="httptools",
                   help="HTTP parser: httptools (default; C, request head bounded to 64 KiB) or h11 (pure Python, same bound, slower)")
    p.set_defaults(func=cmd_serve)

    k = sub.add_parser("keys", help="create, list and revoke the service's API keys")
    commands = k.add_subparsers(dest="keys_command", required=True)
    for name, text in (("create", "create a key (printed once)"), ("list", "list keys (never the secrets)"), ("revoke", "revoke a key by id")):
        c = commands.add_parser(name, help=text)
        c.add_argument("--config", help="operator configuration whose `service.keys` names the key file")
        c.add_argument("--keys", help="the key file itself")
        if name == "create":
            c.add_argument("--scope", action="append", required=True,
                           help="decide, process, audit:read, consent:read, consent:write, metrics, admin (repeatable or comma-separated)")
            c.add_argument("--name", help="who or what the key is for")
        if name == "revoke":
            c.add_argument("key_id")
        if name != "revoke":
            c.add_argument("--json", action="store_true")
        c.set_defaults(func=cmd_keys)
