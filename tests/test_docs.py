"""Docs stay true: every hook has a section headed by its signature; every request field is documented."""

from __future__ import annotations

import inspect

from facegate import hookspecs
from facegate._schema import load_schema
from fg_paths import ROOT

DOCS = ROOT / "docs"


def _hooks():
    return [f for name, f in vars(hookspecs).items() if inspect.isfunction(f) and hasattr(f, "facegate_spec")]


def test_every_hook_has_a_doc_section_headed_by_its_signature():
    text = (DOCS / "plugin-hooks.md").read_text(encoding="utf-8")
    hooks = _hooks()
    assert len(hooks) == 3
    for fn in hooks:
        sig = str(inspect.signature(fn)).replace("'", "")
        assert f"## `{fn.__name__}{sig}`" in text, fn.__name__


def test_every_hook_has_a_one_line_docstring():
    for fn in _hooks():
        assert fn.__doc__ and "\n" not in fn.__doc__.strip(), fn.__name__


def test_every_request_field_is_documented():
    text = (DOCS / "requests.md").read_text(encoding="utf-8")

    def walk(prefix, schema):
        for key, sub in schema.get("properties", {}).items():
            if key == "$schema":
                continue
            yield prefix + key
            if sub.get("type") == "object":
                yield from walk(prefix + key + ".", sub)

    fields = list(walk("", load_schema("request.v1.json")))
    assert len(fields) > 30
    missing = [f for f in fields if f"`{f}`" not in text]
    assert missing == []


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [line for line in readme.splitlines() if line.startswith("python3 -m venv .venv")]
    assert len(commands) == 2, "the README starts with exactly two commands"
    assert commands[1] in ci.splitlines()
    assert "pytest" in commands[1] and "facegate demo" in commands[0]


def test_readme_example_decides_as_shown():
    import facegate

    policy = facegate.load_policy(ROOT / "policies" / "cn-cac-2023-draft")
    request = {
        "operation": "analyze", "attributes": ["ethnicity"], "purpose": "marketing", "jurisdiction": "CN",
        "place": {"type": "business_premises", "signage": True},
        "actor": {"role": "business_premises", "sector": "retail", "stored_persons": 0, "filing": "none",
                  "pia": {"completed": True, "covers_purpose": True}},
    }
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert '"operation": "analyze", "attributes": ["ethnicity"], "purpose": "marketing"' in readme
    decision = policy.decide(request)
    assert decision.effect == "deny" and [d["provision"] for d in decision.determining] == ["CN23-14"]
    assert decision.determining[0]["article"] == "11" and not decision.determining[0]["article_verified"]
    del request["place"]
    assert "CN23-06" in [d["provision"] for d in policy.decide(request).determining]


def test_ci_runs_ruff_and_mypy_strict_on_the_engine():
    import tomllib

    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ".venv/bin/ruff check ." in ci and ".venv/bin/mypy" in ci
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert config["tool"]["mypy"]["strict"] is True and config["tool"]["mypy"]["files"] == ["engine/facegate"]
