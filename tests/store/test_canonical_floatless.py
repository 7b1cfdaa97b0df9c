"""``canonical_json_floatless`` (orjson) writes exactly the bytes ``canonical_json`` (json) writes, for
every float-free JSON value; the masker says whether a record holds a float, so the audit log never
sends one down that path.  The stored bytes -- and so the hash chain -- do not depend on which ran."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from facegate.store import Masking
from facegate.store._canonical import canonical_json, canonical_json_floatless
from facegate.store._masking import Masker

# Text over the whole of Unicode but lone surrogates (json writes them and the log then refuses the
# record; orjson refuses them itself, and the fallback gives json's text -- tested separately).
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_INTS = st.integers(min_value=-(2**70), max_value=2**70)  # beyond 64 bits too: orjson refuses, json writes
_LEAVES = st.one_of(st.none(), st.booleans(), _INTS, _TEXT)
_VALUES = st.recursive(_LEAVES, lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(_TEXT, inner, max_size=5)),
                       max_leaves=40)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_TEXT, _VALUES, max_size=8))
def test_floatless_output_is_canonical_json_byte_for_byte(value):
    assert canonical_json_floatless(value) == canonical_json(value)


def test_what_orjson_refuses_is_written_by_json():
    for value in ({"a": "\ud800"}, {"big": 2**64}, {"neg": -(2**63) - 1}, {"deep": json.loads("[" * 300 + "]" * 300)}):
        assert canonical_json_floatless(value) == canonical_json(value)


def test_the_masker_notes_every_float_it_passes_on():
    masker = Masker(Masking(), b"k" * 32)
    cases = [
        ({"a": 1, "b": ["x", {"c": None}]}, False),
        ({"a": 1e-05}, True),
        ({"a": [1, 2, 0.5]}, True),
        ({"a": {"b": [{"c": -0.0}]}}, True),
        ({"a": (1, 2)}, True),  # the slow path (a tuple): assumed to hold floats
        ({"face_embedding": [0.1] * 3}, False),  # replaced by a marker: no float left
        ({"subject": {"id": 7.5}}, True),  # met before it is pseudonymised: noted (erring on the safe side)
    ]
    for record, floats in cases:
        masked, noted = masker.mask_noting_floats(record)
        assert noted is floats, record
        assert masked == masker.mask(record)
        if not noted:
            assert canonical_json_floatless(masked) == canonical_json(masked)


def test_small_floats_are_why_the_float_path_exists():
    assert canonical_json({"a": 1e-05}) == '{"a":1e-05}'  # json's spelling, which the log keeps
    masker = Masker(Masking(), b"k" * 32)
    assert masker.mask_noting_floats({"a": 1e-05})[1] is True
