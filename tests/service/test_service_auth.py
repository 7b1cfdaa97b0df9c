"""The auth layer on its own, and as the console (issue 18) will reuse it: extra routes, session users with roles."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import uvicorn
from fg_service import counter_request, free_port, make_key, write_config
from starlette.responses import JSONResponse
from starlette.routing import Route

from facegate.errors import ConfigError
from facegate.service import ROLE_SCOPES, SCOPES, KeyStore, Principal, _app, create_app


def test_keys_are_stored_hashed_and_revocation_is_read_afresh(tmp_path):
    store = KeyStore(tmp_path / "keys.db")
    key_id, key = store.create("teller", ["decide"])
    raw = (tmp_path / "keys.db").read_bytes()
    assert key.split("_", 2)[2].encode() not in raw  # the secret is not in the file
    other = KeyStore(tmp_path / "keys.db")  # another process's view (the CLI)
    assert isinstance(store.check(key), Principal)
    assert other.revoke(key_id)
    refused = store.check(key)
    assert not isinstance(refused, Principal) and refused.reason == "revoked_key"
    assert store.check(key[:-1] + ("A" if key[-1] != "A" else "B")).reason == "unknown_key"
    assert store.check("fgk_short").reason == "malformed_key"
    with pytest.raises(ConfigError):
        store.create("x", ["root"])
    assert [r["key_id"] for r in store.list()] == [key_id] and "digest" not in store.list()[0]


def test_roles_are_the_consoles_and_map_to_known_scopes():
    from facegate.console import ROLES

    assert tuple(ROLE_SCOPES) == ROLES
    for role, scopes in ROLE_SCOPES.items():
        assert scopes <= set(SCOPES), role


def test_keys_cli_creates_lists_and_revokes(tmp_path, capsys):
    import json

    from facegate.cli import main

    config = write_config(tmp_path / "svc")
    assert main(["keys", "create", "--config", str(config), "--scope", "decide,audit:read", "--name", "siem", "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["key"].startswith(f"fgk_{made['key_id']}_")
    assert main(["keys", "list", "--config", str(config), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed == [{"key_id": made["key_id"], "name": "siem", "scopes": ["audit:read", "decide"],
                       "created_at": listed[0]["created_at"], "revoked_at": None}]
    assert made["key"] not in (config.parent / "keys.db").read_bytes().decode("latin-1")
    assert main(["keys", "create", "--config", str(config), "--scope", "everything"]) == 2
    assert main(["keys", "revoke", "--config", str(config), made["key_id"]]) == 0
    assert main(["keys", "revoke", "--config", str(config), made["key_id"]]) == 2  # already revoked
    assert KeyStore(config.parent / "keys.db").check(made["key"]).reason == "revoked_key"


def test_a_console_can_mount_routes_and_authenticate_users_with_roles(tmp_path, monkeypatch):
    config = write_config(tmp_path / "svc")
    key = make_key(config, "decide")

    def console(service):
        def session(request):
            token = request.cookies.get("console")
            if token == "legal-1":
                return Principal("user", "legal-1", ROLE_SCOPES["viewer"], roles=frozenset({"viewer"}), name="Legal reviewer")
            return None

        service.authenticators.append(session)

        @service.guarded("audit:read", "/console/whoami")
        async def whoami(request, who, runtime):
            return JSONResponse({"id": who.id, "kind": who.kind, "roles": sorted(who.roles), "revision": runtime.revision})

        return [Route("/console/whoami", whoami)]

    monkeypatch.setattr(_app, "ROUTE_PROVIDERS", [console])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(600):  # polling for start-up
            if server.started:
                break
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        me = httpx.get(url + "/console/whoami", cookies={"console": "legal-1"})
        assert me.status_code == 200 and me.json()["roles"] == ["viewer"] and me.json()["kind"] == "user"
        assert httpx.get(url + "/console/whoami").status_code == 401
        assert httpx.get(url + "/console/whoami", headers={"Authorization": f"Bearer {key}"}).status_code == 403  # a decide-only key
        # the viewer role holds no `decide`: the same user is refused on the API, and the refusal is audited
        assert httpx.post(url + "/v1/decide", json=counter_request(), cookies={"console": "legal-1"}).status_code == 403
    finally:
        server.should_exit = True
        thread.join(30)
