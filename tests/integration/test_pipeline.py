"""The pipeline through a real broker: recommendations, state against a reference, dead letters."""

from __future__ import annotations

import json

import orjson
import pytest

from streams.tools.cluster import fetch_json, wait_for, wait_until_ready, worker_stats
from core.generator import GeneratorConfig, generate
from tests.helpers import assert_state_vector, consume, event_messages, item_vectors, produce, reference_state

pytestmark = [pytest.mark.integration, pytest.mark.tansu_lane]


def test_every_event_gets_k_unseen_items_and_state_matches_reference(settings, workers):
    # n_items > the model's 200-item catalog: events on unknown items must still count.
    events = generate(GeneratorConfig(n_users=20, n_items=220, events_per_user=15, seed=7))
    worker = workers(settings)
    wait_until_ready(settings.web_port, timeout=90, process=worker)
    produce(settings, event_messages(events))

    records = [orjson.loads(r.value) for r in consume(settings.bootstrap, settings.recs_topic,
                                                       len(events), timeout=90)]
    version = json.loads((settings.model_path / "config.json").read_text())["version"]
    by_id = {e.event_id: e for e in events}
    seen_before: dict[str, list[str]] = {}
    for e in events:  # the recent window right after each event, per user
        seen_before[e.event_id] = (seen_before.get(f"last-{e.user_id}", []) + [e.item_id])[
            -settings.history_len:]
        seen_before[f"last-{e.user_id}"] = seen_before[e.event_id]
    assert len(records) == len(events)
    assert {r["trigger"]["event_id"] for r in records} == set(by_id)
    for record in records:
        items = [i["item_id"] for i in record["items"]]
        assert len(items) == settings.top_k == len(set(items))
        assert not set(items) & set(seen_before[record["trigger"]["event_id"]])
        assert record["model_version"] == version
        assert record["user_id"] == by_id[record["trigger"]["event_id"]].user_id
        assert record["event_ts"] == by_id[record["trigger"]["event_id"]].ts
        assert record["schema_version"] == 1
        scores = [i["score"] for i in record["items"]]
        assert scores == sorted(scores, reverse=True)

    vectors = item_vectors(settings.model_path)
    for user in ("u0", "u7", "u19"):
        expected = reference_state([e for e in events if e.user_id == user], vectors, settings, 16)
        state = fetch_json(f"http://127.0.0.1:{settings.web_port}/users/{user}/interest")
        assert (state["count"], state["last_ts"], state["recent"]) == (
            expected["count"], expected["last_ts"], expected["recent"])
        assert_state_vector(state, expected)
    # Counts move after the commit, so the records can be read a moment before them.
    stats = wait_for(lambda: (s := worker_stats(settings.web_port))["applied"] == len(events) and s,
                     timeout=30, what="every event counted applied")
    assert stats["applied"] == len(events) and stats["unknown_items"] > 0


def test_bad_events_are_dead_lettered_with_reasons_while_good_ones_flow(settings, workers):
    good = event_messages(generate(GeneratorConfig(n_users=5, n_items=200, events_per_user=4)))
    bad = [
        (b"u1", b"{not json"),
        (b"u1", orjson.dumps({"user_id": "u1", "item_id": "i1", "type": "teleport", "ts": 1})),
        (b"u2", orjson.dumps({"user_id": "u2", "item_id": "i1", "type": "view"})),
        (b"someone-else", orjson.dumps({"user_id": "u3", "item_id": "i1", "type": "view", "ts": 1})),
        (None, b""),
    ]
    expected_reasons = {"bad_json", "unknown_type", "bad_ts", "key_mismatch", "empty"}
    worker = workers(settings)
    wait_until_ready(settings.web_port, timeout=90, process=worker)
    messages = good[:10] + bad + good[10:]
    produce(settings, messages)

    dead = consume(settings.bootstrap, settings.dlq_topic, len(bad), timeout=60)
    reasons = {dict(m.headers)["streamrec.reason"].decode() for m in dead}
    assert reasons == expected_reasons
    assert sorted(m.value or b"" for m in dead) == sorted(v for _, v in bad)  # original bytes
    assert all(dict(m.headers)["streamrec.source"].startswith(settings.events_topic.encode())
               for m in dead)
    consume(settings.bootstrap, settings.recs_topic, len(good), timeout=60)
    stats = wait_for(lambda: (s := worker_stats(settings.web_port)) and
                     s["applied"] == len(good) and s, 30, "stats to settle")
    assert sum(stats["dead_lettered"].values()) == len(bad)
    assert worker.poll() is None  # still alive
