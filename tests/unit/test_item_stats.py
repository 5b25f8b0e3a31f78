"""Per-item statistics: counts, decayed popularity independent of arrival order, the Beta
posterior, exactly-once by source position, and the codec round trip."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.codec import CorruptState
from core.item_stats import ItemStats, apply_item_events, decode_item_stats, encode_item_stats

H = 1000.0


def test_counts_popularity_and_the_posterior():
    events = [("impression", 100, 0.0, (0, 1), None), ("click", 100, 2.0, (0, 2), 5),
              ("impression", 200, 0.0, (1, 7), None), ("skip", 300, -1.0, (1, 8), 6),
              ("click", 1100, 2.0, (0, 3), None)]  # fmt: skip
    stats, applied = apply_item_events(ItemStats(), events, H)
    assert applied == events
    assert (stats.impressions, stats.positives, stats.first_ts, stats.last_ts) == (2, 2, 100, 1100)
    assert stats.popularity == pytest.approx(2.0 * 0.5 + 2.0)  # the first click, one half-life
    assert (stats.alpha, stats.beta) == (3, 1)
    assert stats.popularity_at(2100, H) == pytest.approx(1.5)


def test_an_event_sent_again_is_not_counted_again():
    events = [("click", 100, 2.0, (0, 5), 77), ("impression", 120, 0.0, (3, 9), None)]
    once, _ = apply_item_events(ItemStats(), events, H)
    twice, applied = apply_item_events(once, [*events, ("click", 90, 1.0, (0, 4), None)], H)
    assert applied == [] and twice.positives == once.positives  # offset 4 is below 5 too
    retried, applied = apply_item_events(once, [("click", 100, 2.0, (0, 6), 77)], H)
    assert applied == [] and retried.positives == 1  # a later copy of event id 77


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["click", "impression", "skip"]),
                          st.integers(0, 10_000)), max_size=30), st.randoms())
def test_popularity_does_not_depend_on_arrival_order(spec, rng):
    weight = {"click": 2.0, "impression": 0.0, "skip": -1.0}
    events = [(kind, ts, weight[kind], (n % 3, n), n) for n, (kind, ts) in enumerate(spec)]
    shuffled = list(events)
    rng.shuffle(shuffled)
    # a shuffle across partitions keeps each partition's offsets in order (Kafka's guarantee)
    shuffled.sort(key=lambda e: (e[3][0], e[3][1]))
    a, _ = apply_item_events(ItemStats(), events, H)
    b, _ = apply_item_events(ItemStats(), shuffled, H)
    latest = max((ts for _, ts in spec), default=0)
    assert math.isclose(a.popularity_at(latest, H), b.popularity_at(latest, H), rel_tol=1e-9,
                        abs_tol=1e-12)
    assert (a.impressions, a.positives, a.first_ts, a.last_ts) == (
        b.impressions, b.positives, b.first_ts, b.last_ts)
    assert decode_item_stats(encode_item_stats(a)) == a


def test_a_value_that_is_not_item_stats_is_refused():
    with pytest.raises(CorruptState):
        decode_item_stats(b"\x07 nope")
    with pytest.raises(CorruptState):
        decode_item_stats(encode_item_stats(ItemStats(applied={0: 1}))[:-1])
    with pytest.raises(CorruptState):  # a vector cut short
        decode_item_stats(encode_item_stats(ItemStats(vector=bytes(16)))[:-1])


def test_the_learned_vector_round_trips_and_version_1_still_reads():
    vector = np.arange(4, dtype=np.float32).tobytes()
    stats = ItemStats(impressions=3, positives=1, applied={2: 9}, seen=(5,), vector=vector,
                      vector_model=77, vector_updates=4)
    assert decode_item_stats(encode_item_stats(stats)) == stats
    plain = ItemStats(impressions=3, positives=1, applied={2: 9}, seen=(5,))
    version_1 = encode_item_stats(plain)  # no vector: what a worker without learning writes
    assert version_1[0] == 1 and decode_item_stats(version_1) == plain
    moved, _ = apply_item_events(stats, [("click", 5, 1.0, (2, 10), None)], H)
    assert (moved.vector, moved.vector_model, moved.vector_updates) == (vector, 77, 4)
