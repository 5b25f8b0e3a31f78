"""A changelog restore keeps each user's newest state: a value written late by a worker that
had lost the partition (a zombie) does not replace the newer one (streams/worker/restore.py)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from core.codec import encode_state
from core.interest import UserState
from core.state_codec import position_of
from streams.worker.restore import newest_only


def state(partition: int, offset: int) -> bytes:
    return encode_state(UserState(vector=np.zeros(4, np.float32), count=offset,
                                  position=(partition, offset)))


def event(partition: int, key: bytes, value: bytes | None, offset: int) -> SimpleNamespace:
    return SimpleNamespace(message=SimpleNamespace(
        partition=partition, key=key, value=value, offset=offset, tp=("changelog", partition)))


def values(kept: list) -> list:
    return [(e.message.key, e.message.value and position_of(e.message.value)) for e in kept]


def test_the_position_is_read_from_the_header():
    assert position_of(state(3, 42)) == (3, 42)
    assert position_of(b"\x01short") is None


def test_a_value_older_than_the_stored_state_is_skipped():
    store = {(0, b"u1"): state(0, 100)}
    batch = [event(0, b"u1", state(0, 90), 7), event(0, b"u2", state(0, 95), 8)]
    kept, stale = newest_only(batch, lambda p, keys: [store.get((p, k)) for k in keys])
    assert stale == 1 and values(kept) == [(b"u2", (0, 95))]


def test_within_a_batch_the_newer_value_wins_whatever_the_order():
    batch = [event(0, b"u", state(0, 100), 1), event(0, b"u", state(0, 90), 2),
             event(0, b"u", state(0, 101), 3)]
    kept, stale = newest_only(batch, lambda p, keys: [None] * len(keys))
    assert stale == 1 and values(kept) == [(b"u", (0, 100)), (b"u", (0, 101))]


def test_tombstones_and_other_partitions_are_always_applied():
    store = {(0, b"u"): state(0, 100)}
    batch = [event(0, b"u", None, 1), event(0, b"u", state(0, 50), 2),
             event(1, b"v", state(0, 10), 3)]
    kept, stale = newest_only(batch, lambda p, keys: [store.get((p, k)) for k in keys])
    assert stale == 0 and len(kept) == 3


def test_a_restored_or_standby_tombstone_has_its_partition_compacted():
    """Issue 32 #7: a standby's copy of a deleted user was deleted by the tombstone but its
    files were never compacted; the partitions a changelog batch tombstoned are reported."""
    from streams.worker.restore import keep_newest_on_restore

    applied: list = []
    store = SimpleNamespace(_db_for_partition=lambda partition: SimpleNamespace(
        get=lambda keys: [None] * len(keys)))  # fmt: skip
    table = SimpleNamespace(name="users", data=store, apply_changelog_batch=applied.extend)
    forgot: list[set[int]] = []
    keep_newest_on_restore(table, forgot.append)
    table.apply_changelog_batch([event(0, b"u", state(0, 5), 1), event(1, b"v", None, 2),
                                 event(3, b"w", None, 3)])  # fmt: skip
    table.apply_changelog_batch([event(0, b"u", state(0, 6), 4)])
    assert len(applied) == 4 and forgot == [{1, 3}]
