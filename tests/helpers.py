"""Test helpers: an independent pure-Python reference of user state, and Kafka I/O with deadlines."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from kafka import KafkaConsumer, KafkaProducer

from core.events import Event, encode_event
from core.interest import UserState
from core.seal import Seal
from core.state_step import apply_user_events
from models.artifact import load_recommender
from streams.settings import Settings
from tests.unit.grid import within_snaps


def item_vectors(model_path: Path) -> dict[str, list[float]]:
    """Item embeddings straight from the artifact's weights, as plain Python lists."""
    items = json.loads((model_path / "items.json").read_text())
    weights = torch.load(model_path / "weights.pt", weights_only=True)["items.weight"].tolist()
    return dict(zip(items, weights))


def reference_state(events: list[Event], vectors: dict[str, list[float]], settings: Settings,
                    dim: int) -> dict:
    """One user's state by the closed form sum_i w_i e_i 2^(-(T - t_i)/h), in plain floats;
    ``scale`` (sum_i |w_i| 2^(-(T - t_i)/h) max|e_i|) bounds the worker's rounding of it
    (:func:`assert_state_vector`)."""
    newest = max(e.ts for e in events)
    vector = [0.0] * dim
    scale = 0.0
    for e in events:
        weight = settings.event_weights[e.type]
        if e.type == "rating":
            weight *= e.value - settings.rating_center
        decay = 2.0 ** (-(newest - e.ts) / settings.half_life_ms) if math.isfinite(
            settings.half_life_ms) else 1.0
        item = vectors.get(e.item_id, [0.0] * dim)
        scale += abs(weight) * decay * max(map(abs, item))
        for d, x in enumerate(item):
            vector[d] += weight * decay * x
    return {
        "vector": vector,
        "scale": scale,
        "last_ts": newest,
        "count": len(events),
        "recent": [e.item_id for e in events][-settings.history_len:],
    }


def assert_state_vector(got: dict, expected: dict) -> None:
    """The worker's vector, on the stored float16 grid after each of its events, equals the
    closed form to that grid's rounding."""
    assert within_snaps(got["vector"], np.asarray(expected["vector"]), expected["count"],
                        expected["scale"]), (got["vector"], expected["vector"])


def folded_state(events: list[Event], model_path: Path, settings: Settings) -> list[float]:
    """One user's vector as the worker's own core function folds their events in order: what a
    worker that never crashed holds, to the bit."""
    recommender = load_recommender(model_path)
    state = UserState.empty(recommender.dim)
    for n, event in enumerate(events):
        state = apply_user_events(state, [(event, (0, n))], recommender.item_vector,
                                  settings.interest).state
    return state.vector.tolist()


def another_worker(settings: Settings, folder: Path) -> Settings:
    """``settings`` for a second worker of the same cluster on this machine: its own web port
    and data dir (under ``folder``), everything else shared."""
    from streams.tools.broker import free_port

    return settings.model_copy(update={"web_port": free_port(), "state_dir": folder / "state-2"})


def two_workers_ready(first: Settings, workers, folder: Path) -> tuple[Settings, list[int]]:
    """Start ``first`` and a second worker of its cluster (:func:`another_worker`) with the
    ``workers`` fixture and wait until both serve; returns the second's settings and both ports."""
    from streams.tools.cluster import wait_until_ready

    second = another_worker(first, folder)
    for one in (first, second):
        wait_until_ready(one.web_port, timeout=90, process=workers(one))
    return second, [first.web_port, second.web_port]


def produce(settings: Settings, messages: list[tuple[bytes | None, bytes]],
            topic: str | None = None, seal: Seal | None = None) -> None:  # fmt: skip
    """``messages`` to ``topic``, by default the events topic; each with its MAC by ``seal``
    if there is one (core/seal.py)."""
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap, linger_ms=5)
    topic = topic or settings.events_topic
    for key, value in messages:
        headers = seal.headers(topic, key, value) if seal else []
        producer.send(topic, key=key, value=value, headers=headers)
    producer.flush()
    producer.close()


def event_messages(events: list[Event]) -> list[tuple[bytes, bytes]]:
    return [(e.user_id.encode(), encode_event(e)) for e in events]


def consume(bootstrap: str, topic: str, count: int, timeout: float,
            done: Callable[[list], bool] | None = None,
            isolation: str = "read_uncommitted") -> list:
    """Read ``topic`` from the start until ``count`` records (or ``done(records)``); fail at the
    deadline with what came."""
    done = done or (lambda records: len(records) >= count)
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, isolation_level=isolation)
    records: list = []
    deadline = time.monotonic() + timeout
    try:
        while not done(records) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close()
    assert done(records), f"got {len(records)} records from {topic}, expected {count}"
    return records


def start_scripted_worker(settings: Settings, script: str, log: Path) -> subprocess.Popen:
    """A worker process running ``script`` (a real worker with a fault patched in) with
    ``settings``, its output appended to ``log``; stop it with stop_process."""
    from streams.tools.cluster import child_env

    return subprocess.Popen(
        [sys.executable, "-c", script],
        env={**child_env(settings, os.environ), "PYTHONUNBUFFERED": "1"},
        stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )


def assert_each_event_applied_once(web_port: int, events: list[Event]) -> None:
    """Wait until every user's stored event count (read through the worker at ``web_port``,
    which routes to the user's owner) reaches their number of events, then require it equal:
    no event lost, none applied twice."""
    from streams.tools.cluster import fetch_json, wait_for

    expected = {u: sum(e.user_id == u for e in events) for u in {e.user_id for e in events}}

    def count(user: str) -> int:
        return fetch_json(f"http://127.0.0.1:{web_port}/users/{user}/interest")["count"]

    wait_for(lambda: all(count(u) >= n for u, n in expected.items()), 120,
             "every user at its event count", interval=0.5)
    assert {u: count(u) for u in expected} == expected, "events applied twice or lost"
