"""The vendor kit catches every hostile plugin the issue lists, and passes honest ones."""

from __future__ import annotations

import socket

import pytest

from facegate.testing import HOSTILE, check_recognizer, synthetic_face_image
from facegate.testing._conformance import check_observer
from facegate.testing._hostile import UNDECLARED_SIZE, mutating_observer_plugin

#: The recognizers of the attack list; each must fail the kit (the old kit passed all but `raises`).
CAUGHT = ["hostile-writes-later", "hostile-fd-from-init", "hostile-sqlite", "hostile-del", "hostile-socket-from-init", "hostile-vandal",
          "hostile-store-walker", "hostile-face-smuggler", "hostile-hex-error", "hostile-pixels", "hostile-raises",
          "hostile-extra-attributes", "hostile-keeps-image", "hostile-unconfines"]


@pytest.fixture(scope="module")
def listener():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        s.setblocking(False)
        yield s


def _kit(info, tmp_path, listener):
    victims = [tmp_path / "a.txt", tmp_path / "b.txt"]
    for v in victims:
        v.write_text("keep")
    config = {"target": str(tmp_path), "port": listener.getsockname()[1], "victims": [str(v) for v in victims]}
    image = synthetic_face_image(1)
    return check_recognizer(info, config=config, face_images=[image], empty_images=[image * 0], timeout=5,
                            same_person=[(image, image.copy())], different_people=[(image, synthetic_face_image(2))])


@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")  # the canary run is in-process
@pytest.mark.parametrize("rid", CAUGHT)
def test_the_kit_fails_each_hostile_recognizer(rid, tmp_path, listener):
    report = _kit(HOSTILE[rid], tmp_path, listener)
    assert not report.ok, report.checks


def test_the_kit_fails_a_recognizer_without_embedding_size(tmp_path, listener):
    report = _kit(UNDECLARED_SIZE, tmp_path, listener)
    assert not report.ok and "embedding_size" in report.failures()[0]


def test_the_kit_fails_an_observer_that_edits_records():
    report = check_observer(mutating_observer_plugin())
    assert not report.ok and "read-only" in report.failures()[0]
    assert report.checks[1][1]  # and what executed was still the decided verify


def test_the_kit_passes_an_observer_that_only_reads():
    import types

    from facegate import hookimpl

    seen = []
    plugin = types.ModuleType("reader")
    plugin.record_decision = hookimpl(lambda record: seen.append(record["decision_id"]))
    check_observer(plugin).assert_ok()
    assert seen


def test_the_vendor_docs_snippet_runs_as_written(recognizer_conformance, monkeypatch):
    """docs/vendors.md's conformance example, verbatim, with the default recognizer as `acme_facegate`."""
    import re
    import sys
    import types

    import facegate_onnx

    from fg_paths import ROOT

    text = (ROOT / "docs" / "vendors.md").read_text(encoding="utf-8")
    section = text.split("## 6. Run the conformance kit", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.setitem(sys.modules, "acme_facegate", types.SimpleNamespace(INFO=facegate_onnx.INFO))
    namespace: dict = {}
    exec(compile(code, "docs/vendors.md", "exec"), namespace)
    namespace["test_conformance"](recognizer_conformance)
