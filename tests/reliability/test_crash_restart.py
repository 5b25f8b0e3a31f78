"""SIGKILL a worker mid-stream and restart it: no event is lost or applied twice."""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

import orjson
import pytest

from streams.tools.cluster import fetch_json, wait_for, wait_until_ready, worker_stats
from core.generator import GeneratorConfig, generate
from streams.tools.producer import produce_events
from streams.tools.transaction_watch import TransactionWatch, stop_inside_a_transaction
from tests.helpers import (
    assert_each_event_applied_once, assert_state_vector, consume, event_messages, folded_state, item_vectors, reference_state,
)

pytestmark = pytest.mark.integration


def a_worker_streaming(settings, workers, events, rate: float):
    """A ready worker, and a thread producing ``events`` to it at ``rate`` per second (slow
    enough that a kill lands after some commits and before the end)."""
    worker = workers(settings)
    wait_until_ready(settings.web_port, timeout=90, process=worker)
    producer = threading.Thread(
        target=produce_events, args=(settings, event_messages(events), rate), daemon=True)
    producer.start()
    return worker, producer


def test_state_after_sigkill_and_restart_equals_reference(settings, workers):
    events = generate(GeneratorConfig(n_users=30, n_items=200, events_per_user=100, seed=11))
    first, producer = a_worker_streaming(settings, workers, events, 1000.0)
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


def test_a_kill_inside_a_transaction_leaves_one_committed_record_per_event(settings, workers):
    """Exactly-once records: the killed worker's open transaction is aborted when its successor
    takes the partitions over, so a read_committed consumer sees each event's record once,
    while a read_uncommitted one also sees the aborted records."""
    if settings.processing_guarantee != "exactly_once":
        pytest.skip("records are at-least-once on a broker without transactions")
    events = generate(GeneratorConfig(n_users=30, n_items=200, events_per_user=60, seed=12))
    first, producer = a_worker_streaming(settings, workers, events, 400.0)
    wait_for(lambda: (s := worker_stats(settings.web_port)) and s["applied"] >= 200, 90,
             "some events applied")
    watch = TransactionWatch(settings.bootstrap, settings.recs_topic, range(settings.partitions))
    try:
        assert stop_inside_a_transaction(first.pid, watch, 60), "never inside a transaction"
    finally:
        watch.close()
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)

    second = workers(settings)
    wait_until_ready(settings.web_port, timeout=90, process=second)
    producer.join(60)
    assert_each_event_applied_once(settings.web_port, events)

    def triggers(records: list) -> Counter:
        return Counter(orjson.loads(r.value)["trigger"]["event_id"] for r in records)

    wanted = {e.event_id for e in events}
    committed = consume(settings.bootstrap, settings.recs_topic, len(events), timeout=60,
                        done=lambda records: wanted <= set(triggers(records)),
                        isolation="read_committed")  # fmt: skip
    assert max(triggers(committed).values()) == 1, "an event's record seen twice"
    assert len(committed) == len(events)
    everything = consume(settings.bootstrap, settings.recs_topic, len(events), timeout=60,
                         done=lambda records: len(records) > len(events))  # fmt: skip
    assert max(triggers(everything).values()) >= 2, "the aborted transaction's records are gone?"
