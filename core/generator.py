"""Synthetic users whose interests drift between item topics, so forgetting decay matters.

Items belong to ``n_topics`` topics (item ``i`` to topic ``i % n_topics``). Each user dwells on one
topic and switches with probability ``drift`` per event; most events hit the current topic. The
output is deterministic for a seed and sorted by event time.

With ``half_life_s`` set, interests follow a known forgetting curve instead: an event's topic is,
with probability ``drift``, a random one, and otherwise the topic of one of the user's earlier
events, drawn with weight ``2 ** (-age / half_life_s)`` in event time. The best ranking of topics
is then exactly the decayed count of the user's topics with that half-life, so an evaluator's
half-life sweep has a right answer to find.

With ``forgetting`` set (a :class:`core.forgetting.Forgetting` of any family, on either clock)
the past topic is drawn with weight ``forgetting.weights(age)`` instead, the ages measured from
the user's newest earlier event as the interest state measures them, so the best ranking of
topics is the user's topic counts weighted by that very function: what
:mod:`models.forgetting_fit` has to recover.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.events import Event
from core.forgetting import Forgetting

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
    half_life_s: float | None = None  # topics drawn from the user's decayed past (see above)
    forgetting: Forgetting | None = None  # the same with any forgetting function (see above)


def generate(config: GeneratorConfig = GeneratorConfig()) -> list[Event]:
    rng = np.random.default_rng(config.seed)
    items_by_topic = [np.arange(t, config.n_items, config.n_topics) for t in range(config.n_topics)]
    events: list[Event] = []
    for user in range(config.n_users):
        topic = int(rng.integers(config.n_topics))
        ts = config.start_ms + int(rng.exponential(config.mean_gap_s * 1000))
        past_topics, past_ts = [], []
        for n in range(config.events_per_user):
            if (config.half_life_s is not None or config.forgetting) and past_topics:
                topic = _recall(past_topics, past_ts, ts, config, rng)
            elif rng.random() < config.drift:
                topic = int(rng.integers(config.n_topics))
            past_topics.append(topic)
            past_ts.append(ts)
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


def _recall(
    topics: list[int], times: list[int], now: int, config: GeneratorConfig, rng: np.random.Generator
) -> int:
    """A random topic with probability ``drift``, else an earlier event's, by decayed weight."""
    if rng.random() < config.drift:
        return int(rng.integers(config.n_topics))
    if config.forgetting is not None:
        weights = config.forgetting.decays(np.array(times, dtype=np.int64))
    else:
        weights = 2.0 ** (-(now - np.array(times)) / (config.half_life_s * 1000.0))
    return topics[int(rng.choice(len(topics), p=weights / weights.sum()))]
