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
