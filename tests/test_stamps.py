"""A decision's id and timestamp (facegate._stamps) are what uuid4 and datetime would give."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import random
import uuid

from facegate._stamps import new_id, utc_iso


def test_ids_are_random_version_4_uuids_and_unique():
    ids = [new_id() for _ in range(5000)]  # several batches
    for i in ids:
        u = uuid.UUID(i)
        assert str(u) == i and u.version == 4 and u.variant == uuid.RFC_4122
    assert len(set(ids)) == len(ids)
    # every hex digit of the random part varies (not a counter, not a constant)
    assert all(len({i[k] for i in ids}) == 16 for k in (0, 9, 15, 35))
    assert {i[19] for i in ids} == set("89ab")


def _child_ids(queue):  # pragma: no cover - runs in the forked child
    queue.put([new_id() for _ in range(300)])


def test_a_forked_child_does_not_repeat_the_parents_ids():
    new_id()  # the parent has a batch made and mostly unused
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_ids, args=(queue,))
    child.start()
    theirs = queue.get(timeout=60)
    child.join(60)
    ours = [new_id() for _ in range(300)]
    assert not set(theirs) & set(ours)


def test_timestamps_are_datetime_isoformat():
    rng = random.Random(19)
    clocks = [rng.uniform(0, 4e9) for _ in range(20000)]
    clocks += [1.7e9 + k / 1e6 + 0.5e-6 for k in range(2000)]  # halves of a microsecond: rounded to even
    clocks += [0.0, 1.0, 1.7e9, 1.7e9 + 0.9999995, 1.7e9 + 0.9999996, 1.7e9 - 0.0000005, -1.5, -0.0000005, 1e9 + 0.9999999]
    clocks += [rng.randint(0, 2**32) / 2**k for k in range(1, 30) for _ in range(50)]
    wrong = [c for c in clocks if utc_iso(c) != dt.datetime.fromtimestamp(c, dt.UTC).isoformat()]
    assert wrong == []
