"""Decay math: exact values, the half-life property, order independence, replay skipping."""

import math

import numpy as np
import pytest
from hypothesis import given, settings as hyp_settings, strategies as st

from core.events import Event
from core.interest import (
    DEFAULT_EVENT_WEIGHTS,
    InterestConfig,
    NonFiniteState,
    UserState,
    decay_factor,
    event_weight,
)
from core.state_step import apply_user_events
from tests.unit.grid import assert_close_on_grid

H = 1000.0  # half-life, ms


def ev(ts: int, item: str = "a", kind: str = "click", value: float | None = None) -> Event:
    return Event("u", item, kind, ts, value)


def apply_event(state, event, item_vector, weight, half_life_ms, history_len,
                half_life_events=None) -> UserState:
    """One event through the state step, at the next offset, weighing ``weight``."""
    config = InterestConfig(event_weights={event.type: weight}, half_life_ms=half_life_ms,
                            half_life_events=half_life_events, history_len=history_len)
    at = (0, state.position[1] + 1)
    return apply_user_events(state, [(event, at)], lambda _: item_vector, config).state


def test_one_half_life_halves_the_vector():
    e = np.array([1.0, 2.0], dtype=np.float32)
    state = apply_event(UserState.empty(2), ev(0), e, 1.0, H, 5)
    state = apply_event(state, ev(1000), None, 1.0, H, 5)  # unknown item: only decays
    np.testing.assert_allclose(state.vector, [0.5, 1.0])
    assert state.last_ts == 1000 and state.count == 2 and state.recent == ("a", "a")


def test_exact_value_of_two_events():
    e1, e2 = np.array([1.0, 0.0], np.float32), np.array([0.0, 1.0], np.float32)
    state = apply_event(UserState.empty(2), ev(0), e1, 2.0, H, 5)
    state = apply_event(state, ev(3000), e2, 1.0, H, 5)
    np.testing.assert_allclose(state.vector, [2.0 * 2**-3, 1.0], rtol=1e-6)


def test_out_of_order_event_is_added_already_decayed():
    e = np.array([1.0], np.float32)
    state = apply_event(UserState.empty(1), ev(2000), e, 1.0, H, 5)
    state = apply_event(state, ev(1000), e, 1.0, H, 5)
    assert state.last_ts == 2000  # the state's time never goes back
    np.testing.assert_allclose(state.vector, [1.0 + 0.5])


def test_position_clock_counts_the_users_events_not_time():
    e1, e2 = np.array([1.0, 0.0], np.float32), np.array([0.0, 1.0], np.float32)
    state = UserState.empty(2)
    # time gaps (none, then a year, then backwards) do not matter: each later event halves
    for ts, vec in ((0, e1), (0, e2), (365 * 86400 * 1000, None), (5, None)):
        state = apply_event(state, ev(ts), vec, 1.0, H, 5, half_life_events=1.0)
    np.testing.assert_allclose(state.vector, [2**-3, 2**-2])
    assert state.last_ts == 365 * 86400 * 1000
    np.testing.assert_allclose(state.recent_weights, [2**-3, 2**-2, 0.5, 1.0])


def test_infinite_half_life_never_forgets():
    e = np.array([1.0], np.float32)
    state = apply_event(UserState.empty(1), ev(0), e, 1.0, math.inf, 5)
    state = apply_event(state, ev(10**12), e, 1.0, math.inf, 5)
    np.testing.assert_allclose(state.vector, [2.0])


def test_skip_subtracts_and_rating_is_centred():
    weights = DEFAULT_EVENT_WEIGHTS
    assert event_weight(ev(0, kind="skip"), weights, 3.0) < 0
    assert event_weight(ev(0, kind="rating", value=5.0), weights, 3.0) == 2.0
    assert event_weight(ev(0, kind="rating", value=1.0), weights, 3.0) == -2.0


def test_recent_items_keep_the_last_n():
    state = UserState.empty(1)
    for n in range(7):
        state = apply_event(state, ev(n, item=f"i{n}"), None, 1.0, H, 3)
    assert state.recent == ("i4", "i5", "i6")


def closed_form(events, vectors, weights, half_life):
    newest = max(t for t, _ in events)
    return sum(
        w * vectors[i] * 2 ** (-(newest - t) / half_life) for (t, i), w in zip(events, weights)
    )


event_lists = st.lists(
    st.tuples(st.integers(0, 20_000), st.integers(0, 4), st.floats(-2, 8, allow_nan=False)),
    min_size=1,
    max_size=30,
)


@hyp_settings(max_examples=200, deadline=None)
@given(events=event_lists, seed=st.integers(0, 2**32 - 1))
def test_final_vector_does_not_depend_on_arrival_order(events, seed):
    vectors = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    order = np.random.default_rng(seed).permutation(len(events))

    def replay(sequence):
        state = UserState.empty(4)
        for ts, item, weight in sequence:
            state = apply_event(state, ev(ts), vectors[item], weight, H, 5)
        return state

    in_order = replay(sorted(events))
    shuffled = replay([events[i] for i in order])
    expected = closed_form([(t, i) for t, i, _ in events], vectors, [w for *_, w in events], H)
    assert in_order.last_ts == shuffled.last_ts == max(t for t, *_ in events)
    # each event's state is snapped to the stored grid: equal up to one rounding per event, of
    # at most the largest the vector can have been (cancelling weights leave a small sum)
    largest = sum(abs(w) for *_, w in events) * float(np.abs(vectors).max())
    assert_close_on_grid(shuffled.vector, expected, len(events), largest)
    assert_close_on_grid(in_order.vector, expected, len(events), largest)


def test_decay_factor_half_life_property():
    assert decay_factor(0, H) == 1.0
    assert decay_factor(H, H) == pytest.approx(0.5)
    assert decay_factor(3 * H, H) == pytest.approx(0.125)


def test_replayed_events_are_not_applied_again_but_still_get_a_snapshot():
    vectors = {"a": np.ones(2, np.float32)}
    config = InterestConfig(half_life_ms=1000.0)
    batch = [(ev(0), (0, 5)), (ev(10), (0, 6)), (ev(20), (0, 7))]
    state, snapshots, applied, *_ = apply_user_events(UserState.empty(2), batch, vectors.get, config)
    assert applied == 3 and len(snapshots) == 3 and state.position == (0, 7)
    replay = batch + [(ev(30), (0, 8))]
    again, snapshots, applied, *_ = apply_user_events(state, replay, vectors.get, config)
    assert applied == 1 and again.count == 4 and again.position == (0, 8)
    # a replayed event's record is scored from the state as it stands, not re-applied
    assert [s.position for s in snapshots] == [(0, 5), (0, 6), (0, 7), (0, 8)]
    assert snapshots[0].state.count == state.count and snapshots[0].state.position == (0, 7)
    np.testing.assert_array_equal(snapshots[0].state.vector, state.vector)


@given(
    events=st.lists(
        st.tuples(st.integers(0, 10_000), st.sampled_from("abc"), st.floats(-3, 3)),
        min_size=1,
        max_size=15,
    )
)
def test_recent_weights_decompose_the_vector(events):
    """With every event still in the window, vector == sum_j recent_weight_j * e_j: the weights
    explanations use are each item's exact share of the interest."""
    vectors = {
        "a": np.array([1, 0, 0], np.float32),
        "b": np.array([0, 1, 0], np.float32),
        "c": np.array([0, 0, 1], np.float32),
    }
    state = UserState.empty(3)
    for ts, item, weight in events:
        state = apply_event(state, ev(ts, item), vectors[item], weight, H, 20)
    rebuilt = sum(w * vectors[i] for i, w in zip(state.recent, state.recent_weights))
    # vector and weights snap; cancelling weights leave a small sum of larger parts
    assert_close_on_grid(state.vector, rebuilt, 2 * len(events), sum(abs(w) for *_, w in events))


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_an_event_that_would_make_the_state_non_finite_is_refused():
    config = InterestConfig(event_weights={"click": 3e38})
    vectors = {"a": np.full(2, 10.0, np.float32)}
    with pytest.raises(NonFiniteState):
        apply_user_events(UserState.empty(2), [(ev(0), (0, 0))], vectors.get, config)


def with_id(ts: int, event_id: str, kind: str = "click") -> Event:
    return Event("u", "a", kind, ts, None, event_id)


def test_an_event_id_repeated_within_the_window_is_skipped_without_a_snapshot():
    """A producer retry without idempotence writes the same event at a new offset."""
    vectors = {"a": np.ones(2, np.float32)}
    config = InterestConfig(half_life_ms=H, dedupe_window=2)
    batch = [(with_id(0, "e1"), (0, 0)), (with_id(0, "e1"), (0, 1)), (with_id(5, "e2"), (0, 2))]
    update = apply_user_events(UserState.empty(2), batch, vectors.get, config)
    assert (update.applied, update.repeated_ids, update.state.count) == (2, 1, 2)
    assert [s.position for s in update.snapshots] == [(0, 0), (0, 2)]


def test_the_window_is_bounded_an_older_id_applies_again():
    vectors = {"a": np.ones(2, np.float32)}
    config = InterestConfig(half_life_ms=H, dedupe_window=2)
    ids = ["e1", "e2", "e3", "e1"]  # e1 left the window of 2 when e3 came
    batch = [(with_id(n, i), (0, n)) for n, i in enumerate(ids)]
    update = apply_user_events(UserState.empty(2), batch, vectors.get, config)
    assert (update.applied, update.repeated_ids) == (4, 0)
    off = apply_user_events(UserState.empty(2), batch[:1] * 2, vectors.get,
                            InterestConfig(dedupe_window=0))
    assert off.applied == 1  # same position twice is a replay, not a repeated id
    again = [(with_id(0, "e1"), (0, 0)), (with_id(0, "e1"), (0, 1))]
    assert apply_user_events(UserState.empty(2), again, vectors.get,
                             InterestConfig(dedupe_window=0)).applied == 2


def test_a_delete_forgets_everything_and_later_events_start_afresh():
    vectors = {"a": np.ones(2, np.float32)}
    config = InterestConfig(half_life_ms=H)
    forget = Event("u", "", "delete", 20)
    batch = [(with_id(0, "e1"), (0, 0)), (forget, (0, 1))]
    update = apply_user_events(UserState.empty(2), batch, vectors.get, config)
    assert update.state.count == 0 and update.state.recent == () and update.state.seen == ()
    assert not update.state.vector.any() and update.applied == 2
    assert [s.position for s in update.snapshots] == [(0, 0)]  # no record for the delete
    later = apply_user_events(update.state, [(with_id(30, "e1"), (0, 2))], vectors.get, config)
    assert later.state.count == 1 and later.applied == 1  # e1 is not remembered after a delete


def test_a_user_back_after_longer_than_the_ttl_starts_afresh():
    vectors = {"a": np.ones(2, np.float32)}
    config = InterestConfig(half_life_ms=math.inf, ttl_ms=100.0)
    batch = [(ev(0), (0, 0)), (ev(100), (0, 1)), (ev(201), (0, 2))]
    update = apply_user_events(UserState.empty(2), batch, vectors.get, config)
    assert update.state.count == 1 and update.state.last_ts == 201
    np.testing.assert_array_equal(update.state.vector, [2.0, 2.0])  # one click, weight 2
