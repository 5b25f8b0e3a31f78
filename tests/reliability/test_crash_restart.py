"""SIGKILL a worker mid-stream and restart it: no event is lost or applied twice."""

from __future__ import annotations

import os
import signal
import threading

import orjson
import pytest

from streams.tools.cluster import fetch_json, wait_for, wait_until_ready, worker_stats
from core.generator import GeneratorConfig, generate
from streams.tools.producer import produce_events
from tests.helpers import (
    assert_state_vector, consume, event_messages, folded_state, item_vectors, reference_state,
)

pytestmark = pytest.mark.integration


def test_state_after_sigkill_and_restart_equals_reference(settings, workers):
    events = generate(GeneratorConfig(n_users=30, n_items=200, events_per_user=100, seed=11))
    first = workers(settings)
    wait_until_ready(settings.web_port, timeout=90, process=first)
    # Produce over a few seconds so the kill lands after some commits and before the end.
    producer = threading.Thread(
        target=produce_events, args=(settings, event_messages(events), 1000.0), daemon=True)
    producer.start()
    at_kill = wait_for(lambda: (s := worker_stats(settings.web_port)) and
                       s["applied"] >= len(events) // 2 and s, 90, "half the events applied")
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    assert at_kill["applied"] < len(events), "the kill must land mid-stream"

    second = workers(settings)
    wait_until_ready(settings.web_port, timeout=90, process=second)
    producer.join(60)
    vectors = item_vectors(settings.model_path)
    users = sorted({e.user_id for e in events})
    expected = {u: reference_state([e for e in events if e.user_id == u], vectors, settings, 16)
                for u in users}

    def state(user: str) -> dict:
        return fetch_json(f"http://127.0.0.1:{settings.web_port}/users/{user}/interest")

    def all_caught_up() -> bool:
        return all(state(u)["count"] >= expected[u]["count"] for u in users)

    wait_for(all_caught_up, 120, "every user to reach its event count", interval=0.5)
    for user in users:
        got = state(user)
        assert got["count"] == expected[user]["count"], f"{user}: events applied twice or lost"
        assert got["recent"] == expected[user]["recent"]
        assert_state_vector(got, expected[user])
        # and to the bit what the worker's own math gives living through the log uninterrupted
        mine = [e for e in events if e.user_id == user]
        assert got["vector"] == folded_state(mine, settings.model_path, settings)
    # Records are at-least-once: every event, including those whose record died with the
    # worker, has at least one recommendation.
    wanted = {e.event_id for e in events}

    def every_event_has_a_record(records: list) -> bool:
        return wanted <= {orjson.loads(r.value)["trigger"]["event_id"] for r in records}

    records = consume(settings.bootstrap, settings.recs_topic, len(events), timeout=60,
                      done=every_event_has_a_record)
    print(f"{len(records)} records for {len(events)} events; killed at {at_kill['applied']} applied; restarted worker skipped "
          f"{worker_stats(settings.web_port)['duplicates_skipped']} replayed events")
