"""Hostile pack files are refused quickly, with file and line, as PolicyError (exit 2 in the CLI)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import facegate
from facegate import PolicyError
from facegate._yaml import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES
from facegate.cli import main

HEADER = "format: facegate/policy/v1\n"


def _problems(pack: Path) -> list[str]:
    with pytest.raises(PolicyError) as exc:
        facegate.load_policy(pack)
    return [str(p) for p in exc.value.problems]


def test_a_billion_laughs_is_refused_with_the_line(pack_copy, capsys):
    lines = [HEADER, 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    (pack_copy / "rules" / "bomb.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    found = _problems(pack_copy)
    assert any("bomb.yaml:" in m and f"more than {MAX_NODES:,} values" in m for m in found), found
    assert main(["check", str(pack_copy)]) == 2
    assert "alias bomb" in capsys.readouterr().err


@pytest.mark.parametrize("style", ["flow", "block"])
def test_deep_nesting_is_refused_with_the_line_not_a_recursion_error(pack_copy, style):
    depth = 50_000
    body = "x: " + "[" * depth + "]" * depth if style == "flow" else "x:\n" + "- " * depth + "deep"
    (pack_copy / "rules" / "deep.yaml").write_text(HEADER + body + "\n", encoding="utf-8")
    found = _problems(pack_copy)
    assert any(("deep.yaml:2:" in m or "deep.yaml:3:" in m) and f"deeper than {MAX_DEPTH} levels" in m for m in found), found


def test_a_symlink_out_of_the_pack_is_refused(pack_copy, tmp_path):
    outside = tmp_path / "outside.yaml"
    outside.write_text(HEADER, encoding="utf-8")
    (pack_copy / "rules" / "linked.yaml").symlink_to(outside)
    found = _problems(pack_copy)
    assert any("linked.yaml" in m and "leads outside the pack" in m for m in found), found


def test_a_symlink_inside_the_pack_is_followed(pack_copy):
    (pack_copy / "rules" / "more.yaml").write_text(HEADER, encoding="utf-8")
    (pack_copy / "rules" / "alias.yaml").symlink_to(pack_copy / "rules" / "more.yaml")
    facegate.load_policy(pack_copy)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_link_to_a_device_is_refused_without_reading_it(pack_copy, tmp_path):
    (pack_copy / "cases" / "zero.yaml").symlink_to("/dev/zero")
    (pack_copy / "rules" / "zero.yaml").symlink_to("/dev/zero")
    found = _problems(pack_copy)
    assert any("zero.yaml" in m and "leads outside the pack" in m for m in found), found


@pytest.mark.skipif(sys.platform == "win32", reason="fifos")
def test_a_fifo_inside_the_pack_is_refused_without_blocking(pack_copy):
    os.mkfifo(pack_copy / "rules" / "pipe.yaml")
    found = _problems(pack_copy)
    assert any("pipe.yaml" in m and "not a regular file" in m for m in found), found


def test_an_oversized_file_is_refused_with_the_limit(pack_copy):
    (pack_copy / "rules" / "huge.yaml").write_text(HEADER + "# " + "x" * MAX_FILE_BYTES + "\n", encoding="utf-8")
    found = _problems(pack_copy)
    assert any("huge.yaml" in m and "larger than" in m for m in found), found


def test_not_utf8_names_the_line(pack_copy):
    (pack_copy / "rules" / "latin1.yaml").write_bytes(HEADER.encode() + "# caf\xe9\n".encode("latin-1"))
    found = _problems(pack_copy)
    assert any("latin1.yaml:2" in m and "not valid utf-8" in m for m in found), found


def test_load_policy_raises_only_policy_error(tmp_path, monkeypatch):
    from facegate import _pack

    target = tmp_path / "p"
    target.mkdir()
    (target / "pack.yaml").write_text(HEADER, encoding="utf-8")

    def boom(self, docs):
        raise KeyError("internal")

    monkeypatch.setattr(_pack._Loader, "build", boom)
    with pytest.raises(PolicyError) as exc:
        facegate.load_policy(target)
    assert "KeyError" in str(exc.value) and isinstance(exc.value.__cause__, KeyError)


def test_an_unknown_backend_is_one_problem(pack_copy):
    assert _problems_with_backend(pack_copy) == 1


def _problems_with_backend(pack: Path) -> int:
    with pytest.raises(PolicyError) as exc:
        facegate.load_policy(pack, backend="quantum")
    assert "unknown cel backend `quantum`" in str(exc.value)
    return len(exc.value.problems)
