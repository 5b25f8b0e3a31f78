"""Synthetic users whose interests drift between item topics, so forgetting decay matters.

Items belong to ``n_topics`` topics (item ``i`` to topic ``i % n_topics``). Each user dwells on one
topic and switches with probability ``drift`` per event; most events hit the current topic. The
output is deterministic for a seed and sorted by event time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streams.events import Event

_TYPES = np.array(["view", "click", "cart", "purchase"])
_TYPE_P = np.array([0.62, 0.26, 0.08, 0.04])


@dataclass(frozen=True)
class GeneratorConfig:
    n_users: int = 200
    n_items: int = 500
    n_topics: int = 10
    events_per_user: int = 50
    drift: float = 0.08  # chance per event that the user moves to another topic
    on_topic: float = 0.9  # chance an event hits the current topic
    skip_rate: float = 0.03
    mean_gap_s: float = 3600.0
    start_ms: int = 1_700_000_000_000
    seed: int = 0


def generate(config: GeneratorConfig = GeneratorConfig()) -> list[Event]:
    rng = np.random.default_rng(config.seed)
    items_by_topic = [np.arange(t, config.n_items, config.n_topics) for t in range(config.n_topics)]
    events: list[Event] = []
    for user in range(config.n_users):
        topic = int(rng.integers(config.n_topics))
        ts = config.start_ms + int(rng.exponential(config.mean_gap_s * 1000))
        for n in range(config.events_per_user):
            if rng.random() < config.drift:
                topic = int(rng.integers(config.n_topics))
            if rng.random() < config.skip_rate:
                item, kind = int(rng.integers(config.n_items)), "skip"
            else:
                pool = items_by_topic[topic] if rng.random() < config.on_topic else None
                item = (
                    int(rng.choice(pool)) if pool is not None else int(rng.integers(config.n_items))
                )
                kind = str(rng.choice(_TYPES, p=_TYPE_P))
            events.append(Event(f"u{user}", f"i{item}", kind, ts, None, f"u{user}-{n}"))
            ts += 1 + int(rng.exponential(config.mean_gap_s * 1000))
    events.sort(key=lambda e: e.ts)
    return events
