"""Rebalances under load on the batch plane: a second worker joins mid-stream, then the first is
SIGKILLed. No stall, every event applied exactly once, a record for every event, and none twice
from the join: the plane commits what it acked before a partition is revoked (Faust drops acked
offsets it has not committed, so without that commit the new owner reads them all again: with
commits a minute apart, every event since the start)."""

from __future__ import annotations

import os
import signal
import threading

import orjson
import pytest

from core.generator import GeneratorConfig, generate
from streams.tools.broker import free_port
from streams.tools.cluster import fetch_json, wait_for, wait_until_ready, worker_stats
from streams.tools.producer import produce_events
from tests.helpers import consume, event_messages

pytestmark = pytest.mark.integration


def test_a_join_and_a_kill_mid_stream_lose_nothing_and_redeliver_little(settings, workers):
    settings = settings.model_copy(update={"commit_interval_s": 60.0})  # only revocation commits
    events = generate(GeneratorConfig(n_users=40, n_items=200, events_per_user=150, seed=21))
    first = workers(settings)
    wait_until_ready(settings.web_port, timeout=90, process=first)
    messages, release = event_messages(events), threading.Event()

    def produce() -> None:
        """Half the stream, then the rest once the joined worker is ready: so the join is
        mid-stream by construction, however long a worker takes to start (on Apache Kafka the
        first worker could drain the whole stream before the second one is up)."""
        produce_events(settings, messages[: len(messages) // 2], 300.0)
        if release.wait(180):
            produce_events(settings, messages[len(messages) // 2 :], 300.0)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    wait_for(lambda: (s := worker_stats(settings.web_port)) and s["applied"] >= len(events) // 4,
             90, "a quarter of the events applied", process=first)

    joined = settings.model_copy(update={"web_port": free_port(),
                                         "state_dir": settings.state_dir.parent / "joined"})
    second = workers(joined)
    wait_until_ready(joined.web_port, timeout=90, process=second)
    assert worker_stats(settings.web_port)["applied"] < len(events), "the join must be mid-stream"
    release.set()
    wait_for(lambda: (s := worker_stats(joined.web_port)) and s["applied"] > 0, 60,
             "the joined worker applying events", process=second)
    sent = sum(worker_stats(s.web_port)["recommendations_out"] for s in (settings, joined))
    so_far = consume(settings.bootstrap, settings.recs_topic, sent, timeout=60)
    triggers = [orjson.loads(r.value)["trigger"]["event_id"] for r in so_far]
    assert len(triggers) - len(set(triggers)) < 100, "the join re-sent what was acked"
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    producer.join(60)

    expected = {u: sum(e.user_id == u for e in events) for u in {e.user_id for e in events}}

    def count(user: str) -> int:
        return fetch_json(f"http://127.0.0.1:{joined.web_port}/users/{user}/interest")["count"]

    wait_for(lambda: is_ready_alone(joined.web_port), 60, "the survivor owning every partition")
    wait_for(lambda: all(count(u) >= n for u, n in expected.items()), 120,
             "every user at its event count (a stall stops here)", interval=0.5, process=second)
    assert {u: count(u) for u in expected} == expected, "events applied twice or lost"

    wanted = {e.event_id for e in events}
    records = consume(settings.bootstrap, settings.recs_topic, len(events), timeout=120,
                      done=lambda rs: wanted <= {orjson.loads(r.value)["trigger"]["event_id"]
                                                 for r in rs})
    assert len(records) >= len(wanted)  # the kill re-sends up to a commit interval: allowed


def is_ready_alone(port: int) -> bool:
    stats = worker_stats(port)
    return bool(stats and len(stats["assigned"]) == 2 and not stats["rebalancing"])
