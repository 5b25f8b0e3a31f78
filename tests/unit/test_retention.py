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
