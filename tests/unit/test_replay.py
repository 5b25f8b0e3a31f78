"""The trainer's replay buffer: the newest events in order, and a uniform sample of older ones;
and updates that replay older examples alongside the new ones."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from core.events import Event
from models.data import interactions, recent_examples, replayed_examples
from models.replay import ReplayBuffer


def clicks(n: int, users: int = 7) -> list[Event]:
    return [Event(f"u{i % users}", f"i{i % 13}", "click", 1000 + i) for i in range(n)]


def test_the_window_keeps_the_newest_events_in_order_and_the_reservoir_older_ones():
    buffer = ReplayBuffer(window=10, reservoir=5, seed=1)
    events = clicks(100)
    buffer.extend(events)
    assert buffer.window_events() == events[-10:]
    older = buffer.reservoir_events()
    assert len(older) == 5 and set(older) <= set(events[:-10])
    assert buffer.events() == sorted([*older, *events[-10:]], key=lambda e: e.ts)
    assert (buffer.seen, buffer.new_since_update) == (100, 100)
    buffer.updated()
    assert buffer.new_since_update == 0


def test_the_reservoir_is_a_uniform_sample_of_everything_that_left_the_window():
    picked: Counter[int] = Counter()
    events = clicks(60)
    for seed in range(2000):
        buffer = ReplayBuffer(window=10, reservoir=5, seed=seed)
        buffer.extend(events)
        picked.update(e.ts for e in buffer.reservoir_events())
    counts = np.array([picked[e.ts] for e in events[:-10]])
    assert not any(picked[e.ts] for e in events[-10:])
    # each of the 50 older events is kept with probability 5/50: 200 of 2000 runs
    assert counts.min() > 140 and counts.max() < 265, counts


def test_a_forgotten_user_leaves_nothing_in_the_buffer():
    buffer = ReplayBuffer(window=10, reservoir=20, seed=1)
    buffer.extend(clicks(60))
    buffer.forget("u3")
    assert buffer.events() and all(e.user_id != "u3" for e in buffer.events())


def test_a_buffer_refuses_sizes_it_cannot_hold():
    with pytest.raises(ValueError):
        ReplayBuffer(window=0, reservoir=5)
    with pytest.raises(ValueError):
        ReplayBuffer(window=5, reservoir=-1)


def test_replayed_examples_are_older_than_the_recent_ones_and_seeded():
    distinct = [Event(f"u{i % 7}", f"i{i}", "click", 1000 + i) for i in range(300)]
    data = interactions(distinct, keep=lambda e: True, weight=lambda e: 1.0)
    pad, max_len = data.n_items, 5
    recent_inputs, recent_targets = recent_examples(data, 50, max_len, pad)
    inputs, targets = replayed_examples(data, 50, 40, max_len, pad, seed=3)
    assert inputs.shape == (40, max_len) and targets.shape == (40, max_len)
    again = replayed_examples(data, 50, 40, max_len, pad, seed=3)
    assert all((a == b).all() for a, b in zip((inputs, targets), again))
    # no replayed example is one of the recent ones: each target's context differs
    recent = {(tuple(i.tolist()), int(t[-1])) for i, t in zip(recent_inputs, recent_targets)}
    assert not recent & {(tuple(i.tolist()), int(t[-1])) for i, t in zip(inputs, targets)}
    everything = replayed_examples(data, 50, 10**6, max_len, pad, seed=0)[0]
    assert len(everything) == len(data) - len(data.users) - len(recent_inputs)


def test_nothing_is_replayed_when_every_event_is_recent():
    data = interactions(clicks(30), keep=lambda e: True, weight=lambda e: 1.0)
    inputs, _ = replayed_examples(data, 10**6, 100, 5, data.n_items)
    assert len(inputs) == 0  # recent_examples already trains on every one of them
