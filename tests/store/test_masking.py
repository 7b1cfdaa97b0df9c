"""Masking: the log never holds an image, a template, a raw embedding or a direct identifier."""

from __future__ import annotations

import copy
import datetime as dt
import enum

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facegate.store import DEFAULT_POINTERS, Masking, SQLiteStore
from facegate.store._masking import Masker

KEY = b"k" * 32


def mask(record, **config):
    return Masker(Masking(**config), KEY).mask(record)


def test_default_identifiers_are_masked_at_the_root_and_in_the_request():
    out = mask({"subject": {"id": "alice"}, "actor": {"id": "acme"},
                "request": {"subject": {"id": "alice", "age": 9}, "actor": {"id": "acme", "role": "handler"}}})
    pseudonym = Masker(Masking(), KEY).pseudonym
    assert out["subject"]["id"] == out["request"]["subject"]["id"] == pseudonym("alice")
    assert out["actor"]["id"] == out["request"]["actor"]["id"] == pseudonym("acme")
    assert out["request"]["subject"]["age"] == 9 and out["request"]["actor"]["role"] == "handler"
    assert set(DEFAULT_POINTERS) == {"/subject/id", "/actor/id"}


def test_pseudonyms_are_keyed_stable_and_redactable():
    one, other = Masker(Masking(), KEY), Masker(Masking(), b"q" * 32)
    assert one.pseudonym("alice") == one.pseudonym("alice") != one.pseudonym("bob")
    assert one.pseudonym("alice") != other.pseudonym("alice")  # a guess is useless without the key
    assert one.pseudonym("alice").startswith("hmac-sha256:") and len(one.pseudonym("alice")) == 44
    assert mask({"subject": {"id": "alice"}}, identifiers="redact") == {"subject": {"id": "***"}}


def test_configured_pointers_add_to_the_defaults_and_accept_wildcards():
    out = mask({"request": {"subject": {"id": "a"}, "place": {"name": "Lobby 3"}},
                "matches": [{"subject_id": "x"}, {"subject_id": "y"}], "a/b": {"~": "z"}},
               pointers=["/place/name", "/matches/*/subject_id", "/a~1b/~0"])
    assert out["request"]["subject"]["id"].startswith("hmac-sha256:")
    assert out["request"]["place"]["name"].startswith("hmac-sha256:")
    assert all(m["subject_id"].startswith("hmac-sha256:") for m in out["matches"])
    assert out["a/b"]["~"].startswith("hmac-sha256:")


def test_a_missing_or_null_identifier_is_left_alone():
    assert mask({"subject": {"id": None}, "request": {"subject": {}}}) == {"subject": {"id": None}, "request": {"subject": {}}}


def test_pointers_must_be_json_pointers():
    with pytest.raises(ValueError, match="JSON pointer"):
        Masking(pointers=["subject.id"])
    with pytest.raises(ValueError, match="hmac"):
        Masking(identifiers="hash")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [np.zeros((4, 4, 3), np.uint8), np.ones(128, np.float32), b"\x89PNG....",
                                   bytearray(b"abc"), memoryview(b"abc")])
def test_arrays_and_bytes_are_removed_wherever_they_are(value):
    out = mask({"result": {"whatever": value}, "list": [value]})
    assert out["result"]["whatever"].startswith("[removed: ")
    assert out["list"][0].startswith("[removed: ")


@pytest.mark.parametrize("key", ["image", "face_image", "probeEmbedding", "template", "templates", "vector",
                                 "crop", "thumbnail", "Embedding", "raw-pixels"])
def test_values_under_biometric_keys_are_removed(key):
    assert mask({key: "iVBORw0KGgoAAAANSUhEUgAA"})[key] == "[removed: biometric]"
    assert mask({key: [0.1, 0.2]})[key] == "[removed: biometric]"


@pytest.mark.parametrize("key", ["template_id", "image_format", "embedding_size", "imagery_source", "templating"])
def test_keys_that_only_mention_biometrics_are_kept(key):
    assert mask({key: "tpl-0123ABC"})[key] == "tpl-0123ABC"


def test_small_facts_under_biometric_keys_are_kept():
    """`storage.raw_image: "discard"` is a legal fact, not an image."""
    record = {"storage": {"raw_image": "discard"}, "image": None, "template": True}
    assert mask(record) == record


def test_long_numeric_lists_are_removed_short_ones_kept():
    assert mask({"x": list(range(16))})["x"] == "[removed: 16 numbers]"
    assert mask({"x": [0.5] * 64})["x"] == "[removed: 64 numbers]"
    assert mask({"box": [1, 2, 3, 4], "flags": [True] * 20}) == {"box": [1, 2, 3, 4], "flags": [True] * 20}


def test_the_callers_record_is_never_modified():
    record = {"request": {"subject": {"id": "alice"}, "image": np.zeros(3)}, "embedding": [0.1] * 20}
    before = copy.deepcopy({k: v for k, v in record.items() if k != "request"})
    out = mask(record)
    assert record["request"]["subject"]["id"] == "alice" and isinstance(record["request"]["image"], np.ndarray)
    assert record["embedding"] == before["embedding"]
    assert out is not record and out["request"] is not record["request"]


class Color(enum.Enum):
    RED = "red"


def test_values_are_made_json_clean():
    out = mask({"t": (1, 2), "n": np.float32(0.5), "i": np.int64(3), "d": dt.date(2025, 1, 2),
                "e": Color.RED, "s": {2, 1}, "f": float("nan"), "g": float("-inf"), 3: "int key"})
    assert out == {"t": [1, 2], "n": 0.5, "i": 3, "d": "2025-01-02", "e": "red", "s": [1, 2],
                   "f": "NaN", "g": "-Infinity", "3": "int key"}
    with pytest.raises(TypeError, match="/deep/0"):
        mask({"deep": [object()]})


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.0625, 1.0, width=32), min_size=16, max_size=64, unique=True),
       st.sampled_from(["as_array", "as_list", "under_key", "as_bytes"]))
def test_an_embedding_in_any_form_never_reaches_the_file(tmp_path_factory, values, form):
    vector = np.asarray(values, dtype=np.float32)
    carried = {"as_array": vector, "as_list": [float(v) for v in vector], "under_key": {"probe_vector": values[:3]},
               "as_bytes": vector.tobytes()}[form]
    path = tmp_path_factory.mktemp("mask") / "m.db"
    with SQLiteStore(path) as store:
        store.audit.append({"kind": "outcome", "decision_id": "d", "result": {"payload": carried}})
        assert "[removed" in str(next(store.audit.query())["record"]["result"]["payload"])
    data = path.read_bytes()
    assert vector.tobytes()[:32] not in data
    assert not any(repr(float(v)).encode() in data for v in vector if len(repr(float(v))) >= 8)
