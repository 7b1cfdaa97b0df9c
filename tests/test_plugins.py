"""Plugin loading: the allow-list, register() validation, CEL functions through the hook, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest

import facegate
from facegate import PluginError, hookimpl
from facegate._plugins import installed_entry_points, load_registry
from facegate.cli import main
from facegate.recognition import Capabilities, RecognizerInfo
from facegate.testing import FakeRecognizer, fake_info, fake_plugin


def _module(name: str, **hooks) -> types.ModuleType:
    mod = types.ModuleType(name)
    for key, value in hooks.items():
        setattr(mod, key, value)
    return mod


def test_installed_but_not_allowed_plugins_are_listed_and_never_imported():
    names = {ep.name for ep in installed_entry_points()}
    assert {"onnx", "openvino", "dlib"} <= names
    code = ("import sys; from facegate._plugins import load_registry; r = load_registry(());"
            "print(sorted(p.name for p in r.plugins if not p.allowed)); print('facegate_onnx' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert "onnx" in out[0] and out[1] == "False"


def test_allowed_plugin_that_is_not_installed_is_an_error():
    with pytest.raises(PluginError, match="allowed plugin `nope` is not installed"):
        load_registry(["nope"])


def test_duplicate_recognizer_ids_are_refused_and_rolled_back():
    registry = load_registry((), extra=[("first", fake_plugin())])
    with pytest.raises(PluginError, match="already registered"):
        registry.add(fake_plugin(), "second")
    assert list(registry.recognizers) == ["fake"]


@pytest.mark.parametrize("bad, message", [
    (RecognizerInfo("Bad Id", "1", Capabilities(frozenset({"detect"})), FakeRecognizer), "must match"),
    (RecognizerInfo("x", "", Capabilities(frozenset({"detect"})), FakeRecognizer), "version"),
    (RecognizerInfo("x", "1", Capabilities(frozenset({"fly"})), FakeRecognizer), "unknown operations"),
    (RecognizerInfo("x", "1", Capabilities(frozenset({"analyze"})), FakeRecognizer), "go together"),
    (RecognizerInfo("x", "1", Capabilities(frozenset({"analyze"}), frozenset({"aura"})), FakeRecognizer), "unknown attributes"),
    (RecognizerInfo("x", "1", Capabilities(frozenset({"detect"})), FakeRecognizer, config_schema={"type": 5}), "not a valid json schema"),
    (RecognizerInfo("x", "1", Capabilities(frozenset({"detect"})), FakeRecognizer, metric="manhattan"), "metric"),
    ("not an info", "takes a RecognizerInfo"),
])
def test_register_validates_declarations(bad, message):
    @hookimpl
    def register_recognizers(register):
        register(bad)

    with pytest.raises(PluginError, match=message):
        load_registry((), extra=[("bad", _module("bad", register_recognizers=register_recognizers))])


def test_a_plugin_that_raises_while_registering_is_reported():
    @hookimpl
    def register_recognizers(register):
        raise RuntimeError("broken plugin")

    with pytest.raises(PluginError, match="failed to register: RuntimeError: broken plugin"):
        load_registry((), extra=[("broken", _module("broken", register_recognizers=register_recognizers))])


def test_cel_functions_from_a_plugin_are_usable_in_conditions_and_typed(tmp_path, pack_copy):
    @hookimpl
    def register_cel_functions(register):
        register("isAdult", lambda age: age >= 18, ("int",), "bool")

    registry = load_registry((), extra=[("adult", _module("adult", register_cel_functions=register_cel_functions))])
    rules = pack_copy / "rules" / "rules.yaml"
    rules.write_text(rules.read_text().replace("when: request.subject.age < params.minor_age", "when: '!isAdult(request.subject.age)'"))
    policy = facegate.load_policy(pack_copy, functions=registry.functions)
    base = {"operation": "verify", "purpose": "payment", "consent": {"type": "separate", "purposes": ["payment"]}}
    assert policy.decide({**base, "subject": {"age": 17}}).effect == "deny"
    assert policy.decide({**base, "subject": {"age": 18}}).effect == "permit"
    with pytest.raises(facegate.PolicyError):  # without the plugin the function is unknown at load time
        facegate.load_policy(pack_copy)
    rules.write_text(rules.read_text().replace("'!isAdult(request.subject.age)'", "'!isAdult(\"adult\")'"))
    with pytest.raises(facegate.PolicyError):  # and a wrongly typed argument is a load error
        facegate.load_policy(pack_copy, functions=registry.functions)


def test_cel_function_declarations_are_validated():
    @hookimpl
    def register_cel_functions(register):
        register("bad name", lambda: True, (), "bool")

    with pytest.raises(PluginError, match="not an identifier"):
        load_registry((), extra=[("f", _module("f", register_cel_functions=register_cel_functions))])


def test_builtins_register_through_the_same_hook():
    registry = load_registry(())
    assert registry.plugins[0].name == "facegate.builtins" and registry.plugins[0].functions == ["containsAll", "intersects", "workingDaysBetween"]


def test_plugins_command_lists_installed_allowed_and_loaded(capsys):
    assert main(["plugins", "--allow", "onnx", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["onnx"]["loaded"] and rows["onnx"]["recognizers"][0]["id"] == "onnx"
    assert "detect" in rows["onnx"]["recognizers"][0]["capabilities"]
    assert not rows["dlib"]["allowed"] and not rows["dlib"]["loaded"] and rows["dlib"]["version"]


def test_gate_from_config_validates_the_configuration(tmp_path):
    from facegate import ConfigError, Gate

    (tmp_path / "c.yaml").write_text("policy: x\nrecognizer: {id: onnx}\nplugins: {alow: [onnx]}\n")
    with pytest.raises(ConfigError, match="unknown key `alow`; did you mean `allow`"):
        Gate.from_config(tmp_path / "c.yaml")


def test_fake_info_is_conformant(recognizer_conformance):
    from facegate.testing import synthetic_face_image

    report = recognizer_conformance(fake_info(), face_images=[synthetic_face_image(1)], empty_images=[synthetic_face_image(1)[:, :, :] * 0],
                                    same_person=[(synthetic_face_image(1), synthetic_face_image(1)[:, ::-1].copy()[:, ::-1])],
                                    different_people=[(synthetic_face_image(1), synthetic_face_image(2))])
    report.assert_ok()
    assert any(name.startswith("quality: different people") for name, _, _ in report.checks)


def test_an_allowed_plugin_that_fails_to_import_is_a_one_line_error(monkeypatch):
    import importlib.metadata as md

    from facegate import _plugins

    broken = md.EntryPoint(name="broken", value="facegate_no_such_module_xyz", group="facegate")
    monkeypatch.setattr(_plugins, "installed_entry_points", lambda: [broken])
    with pytest.raises(PluginError) as info:
        load_registry(["broken"])
    assert str(info.value).startswith("plugin `broken` failed to import: ModuleNotFoundError")
    assert "\n" not in str(info.value)


def test_plugins_command_reports_a_broken_plugin_without_a_traceback(monkeypatch, capsys):
    import importlib.metadata as md

    from facegate import _plugins

    broken = md.EntryPoint(name="broken", value="facegate_no_such_module_xyz", group="facegate")
    monkeypatch.setattr(_plugins, "installed_entry_points", lambda: [broken])
    assert main(["plugins", "--allow", "broken"]) == 2
    assert capsys.readouterr().err.startswith("facegate: error: plugin `broken` failed to import")
