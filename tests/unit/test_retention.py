"""The TTL sweep's choice of users, in event time."""

from __future__ import annotations

from dataclasses import replace

from core.codec import encode_state
from core.interest import UserState
from streams.worker.retention import expired_users


def test_expired_users_are_those_silent_past_the_ttl_at_the_watermark():
    def stored(last_ts: int) -> bytes:
        return encode_state(replace(UserState.empty(2), last_ts=last_ts, count=1))

    rows = [(b"old", stored(100)), (b"edge", stored(400)), (b"new", stored(900)), (b"bad", b"x")]
    assert expired_users(rows, watermark_ms=1000, ttl_ms=600) == [b"old"]


def test_fausts_offset_row_is_no_user_and_no_warning(caplog):
    rows = [(b"__faust\x00offset__", b"41")]
    with caplog.at_level("WARNING", logger="streams.worker.retention"):
        assert expired_users(rows, watermark_ms=1000, ttl_ms=1) == []
    assert caplog.text == ""


def test_the_sweep_spares_a_user_whose_events_are_held_back():
    """Review of issue 32 #6: a hot user's events held back by the slices are younger than the
    watermark the other users' events moved; unsliced they would have been applied first, so
    the user must not be evicted in between."""
    from streams.worker.retention import Retention

    stored = encode_state(replace(UserState.empty(2), last_ts=100, count=1))
    retention = Retention(lambda: {0: {b"hot": stored, b"idle": stored}}, lambda p: True, 600.0)
    retention.watermarks[0] = 1000
    deleted: list = []
    retention.sweep(lambda p, keys: deleted.extend(keys) or len(keys),
                    spared=lambda key: key == b"hot")  # fmt: skip
    assert deleted == [b"idle"]


def test_a_batch_sweeps_only_its_own_partitions():
    """A held user's note is its own partition's: another partition's batch must not sweep it."""
    from streams.worker.retention import Retention

    stored = encode_state(replace(UserState.empty(2), last_ts=100, count=1))
    retention = Retention(lambda: {0: {b"a": stored}, 1: {b"b": stored}}, lambda p: True, 600.0)
    retention.watermarks.update({0: 1000, 1: 1000})
    deleted: list = []
    retention.sweep(lambda p, keys: deleted.extend(keys) or len(keys), partitions={1})
    assert deleted == [b"b"]
