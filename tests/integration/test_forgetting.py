"""Forgetting users through the broker: a delete request and the TTL remove the state, send the
changelog a tombstone, stop the user's records and leave no trace in the local RocksDB."""

from __future__ import annotations

import time
import urllib.error
from pathlib import Path

import orjson
import pytest

from core.events import Event, encode_event
from streams.kafka_edge.topics import USER_TABLE
from streams.tools.cluster import fetch_json, wait_for, wait_until_ready, worker_stats
from tests.helpers import consume, produce

pytestmark = pytest.mark.integration

HOUR_MS = 3_600_000


def clicks(user: str, start_ms: int, n: int) -> list[tuple[bytes, bytes]]:
    return [
        (user.encode(), encode_event(Event(user, f"i{k}", "click", start_ms + k, None, f"{user}@{start_ms + k}")))
        for k in range(n)
    ]


def delete_request(user: str, ts: int) -> tuple[bytes, bytes]:
    return user.encode(), orjson.dumps({"user_id": user, "type": "delete", "ts": ts})


def known(settings, user: str) -> bool:
    try:
        fetch_json(f"http://127.0.0.1:{settings.web_port}/users/{user}/interest")
        return True
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        raise


def traces(state_dir: Path, user: str) -> list[str]:
    """Files under the worker's data dir that still hold the user's id."""
    return [str(p) for p in state_dir.rglob("*") if p.is_file() and user.encode() in p.read_bytes()]


def changelog_tombstones(settings, user: str, timeout: float = 30) -> list:
    changelog = f"{settings.app_id}-{USER_TABLE}-changelog"
    records = consume(settings.bootstrap, changelog, 1, timeout,
                      done=lambda rs: any(r.key == user.encode() and r.value is None for r in rs))
    return [r for r in records if r.key == user.encode() and r.value is None]


def wait_compacted_after(settings, compactions: int) -> dict:
    return wait_for(lambda: (s := worker_stats(settings.web_port)) and
                    s["compactions"] > compactions and s, 30, "a compaction after the delete")


def test_a_delete_request_forgets_the_user_everywhere_and_stops_their_records(settings, workers):
    gone, kept = "forget-me-7f3a", "keep-me-91c2"
    now = int(time.time() * 1000)
    worker = workers(settings)
    wait_until_ready(settings.web_port, timeout=90, process=worker)
    produce(settings, clicks(gone, now - 10_000, 5) + clicks(kept, now - 10_000, 5))
    consume(settings.bootstrap, settings.recs_topic, 10, timeout=60)
    assert known(settings, gone)
    before = worker_stats(settings.web_port)["compactions"]

    produce(settings, [delete_request(gone, now)] + clicks(kept, now, 1))

    stats = wait_for(lambda: (s := worker_stats(settings.web_port)) and
                     s["users_deleted"] == 1 and s["applied"] == 12 and s, 60, "the delete")
    assert not known(settings, gone) and known(settings, kept)
    assert len(changelog_tombstones(settings, gone)) == 1
    records = consume(settings.bootstrap, settings.recs_topic, 11, timeout=60)
    by_user = [r.key for r in records]
    assert (by_user.count(gone.encode()), by_user.count(kept.encode())) == (5, 6)  # none for it
    assert stats["dead_lettered"] == {}
    wait_compacted_after(settings, before)
    assert traces(settings.state_dir, gone) == []
    assert traces(settings.state_dir, kept) != []  # the scan does find a user who is there


def test_the_ttl_evicts_users_silent_past_it_in_event_time(settings, workers):
    settings = settings.model_copy(update={"partitions": 1, "user_ttl": 3600.0})
    silent, active = "silent-user-c0ffee", "active-user-beef"
    now = int(time.time() * 1000)
    worker = workers(settings)
    wait_until_ready(settings.web_port, timeout=90, process=worker)
    produce(settings, clicks(silent, now - 3 * HOUR_MS, 3) + clicks(active, now - 2 * HOUR_MS, 3))
    consume(settings.bootstrap, settings.recs_topic, 6, timeout=60)
    assert known(settings, silent)
    before = worker_stats(settings.web_port)["compactions"]

    # the active user's events 40 min later (within the TTL: their state is kept) move the
    # partition's event time 1 h 20 min past the silent user's last event
    produce(settings, clicks(active, now - 2 * HOUR_MS + 40 * 60_000, 2))

    wait_for(lambda: (s := worker_stats(settings.web_port)) and s["users_expired"] == 1, 60,
             "the TTL sweep")
    assert not known(settings, silent) and known(settings, active)
    assert fetch_json(f"http://127.0.0.1:{settings.web_port}/users/{active}/interest")["count"] == 5
    assert len(changelog_tombstones(settings, silent)) == 1
    wait_compacted_after(settings, before)
    assert traces(settings.state_dir, silent) == []
