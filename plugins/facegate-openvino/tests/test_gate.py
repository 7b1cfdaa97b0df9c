"""facegate_openvino through the host: the conformance kit, and verify composed by the gate from this
plugin's detect and embed, on real photographs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from facegate import Gate
from facegate.testing import check_recognizer

import facegate_openvino

Photo = Callable[[str], np.ndarray]


def test_passes_the_conformance_kit(photo: Photo, cache_dir: str) -> None:
    report = check_recognizer(
        facegate_openvino.INFO,
        config={"cache_dir": cache_dir},
        face_images=[photo(n) for n in ("obama.jpg", "obama2.jpg", "biden.jpg", "astronaut.png")],
        empty_images=[photo(n) for n in ("coffee.png", "chelsea.png")],
        same_person=[(photo("obama.jpg"), photo(n)) for n in ("obama2.jpg", "obama3.jpg")],
        different_people=[(photo("obama.jpg"), photo("biden.jpg"))],
    )
    report.assert_ok()


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory, cache_dir: str) -> Iterator[Gate]:
    """A gate under the conformance kit's permit-all pack, with only this plugin allowed."""
    folder = tmp_path_factory.mktemp("gate")
    with resources.as_file(resources.files("facegate.testing") / "pack") as pack:
        config = {
            "policy": str(pack),
            "plugins": {"allow": ["openvino"]},
            "recognizer": {"id": "openvino", "config": {"cache_dir": cache_dir}},
            "store": {"path": str(Path(folder) / "store.db")},
        }
        built = Gate.from_config(config)  # loads the pack now, while the path exists
    with built:
        yield built


@pytest.mark.parametrize(("probe", "same"), [("obama2.jpg", True), ("biden.jpg", False)])
def test_verify_through_the_gate(gate: Gate, photo: Photo, probe: str, same: bool) -> None:
    request = {"operation": "verify", "purpose": "other"}
    outcome = gate.process(request, photo(probe), reference=photo("obama.jpg"))
    assert outcome.status == "executed", outcome.error
    assert outcome.result.same_person is same
    assert (outcome.result.metric, outcome.result.threshold) == ("cosine", 0.363)
