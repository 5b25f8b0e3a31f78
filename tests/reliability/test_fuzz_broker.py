"""The fuzz corpus through the broker: a real worker takes hypothesis-drawn hostile messages
(tests/unit/fuzz_strategies.py) from the events topic, stays up, accounts for every message
once and stores only finite state."""

from __future__ import annotations

import math
import urllib.error

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from streams.kafka_edge.topics import ensure_topics
from streams.tools.cluster import fetch_json, wait_for, wait_until_ready, worker_stats
from tests.helpers import produce
from tests.unit.fuzz_strategies import USERS, keyed_values

pytestmark = pytest.mark.integration

MESSAGES = 300


def accounted(stats: dict) -> int:
    return (stats["applied"] + stats["duplicates_skipped"] + stats["repeated_ids"]
            + sum(stats["dead_lettered"].values()))


@hypothesis_settings(max_examples=1, deadline=None, database=None, derandomize=True,
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.data_too_large, HealthCheck.too_slow])
@given(corpus=st.lists(keyed_values(), min_size=MESSAGES, max_size=MESSAGES))
def test_a_drawn_hostile_stream_is_accounted_once_and_stored_finite(corpus, settings, workers):
    ensure_topics(settings)
    worker = workers(settings)
    wait_until_ready(settings.web_port, timeout=90, process=worker)
    produce(settings, corpus)

    stats = wait_for(lambda: (s := worker_stats(settings.web_port)) and
                     s["events_in"] >= MESSAGES and accounted(s) >= MESSAGES and s, 90,
                     "every message applied, skipped or dead-lettered", process=worker)
    assert (stats["events_in"], accounted(stats)) == (MESSAGES, MESSAGES)
    assert worker.poll() is None
    for user in USERS:
        try:
            state = fetch_json(f"http://127.0.0.1:{settings.web_port}/users/{user}/interest")
        except urllib.error.HTTPError as exc:
            assert exc.code == 404  # no valid event of this user was drawn, or it was deleted
            continue
        numbers = [*state["vector"], *state["recent_weights"]]
        assert all(x is not None and math.isfinite(x) for x in numbers), user
