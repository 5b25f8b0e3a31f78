"""The prequential protocol: what is tested, how it scores, and that the product policy's batching
and model versions change nothing a worker would not."""

import math

import numpy as np
import pytest

from core.durations import format_duration, parse_duration
from core.events import Event
from core.generator import GeneratorConfig, generate
from core.interest import InterestConfig, UserState, rebase
from core.state_step import apply_user_events
from models.artifact import load_recommender
from models.blend import Blend
from models.prequential import _gains
from models.half_life import HalfLife
from models.product import ModelVersions, ProductPolicy
from models.stream import Stream, positives
from tests.unit.grid import assert_close_on_grid


def ev(user, item, ts, value=None):
    return Event(user, item, "rating" if value else "click", ts, value)


def test_gains_score_the_targets_position():
    lists = np.array([[5, 7, 9], [1, 2, 3], [4, 4, 8]])
    gains = _gains(lists, np.array([7, 0, 8]))
    assert gains["hr@3"].tolist() == [1, 0, 1]
    assert gains["ndcg@3"] == pytest.approx([1 / math.log2(3), 0, 0.5])
    assert gains["mrr@3"] == pytest.approx([0.5, 0, 1 / 3])


def test_tested_events_are_after_warmup_and_need_history():
    events = [ev("a", "x", 1), ev("a", "y", 2), ev("b", "x", 3), ev("a", "z", 4), ev("b", "y", 5)]
    stream = Stream.of(list(reversed(events)), warmup=0.4)  # sorted by time on the way in
    assert [e.ts for e in stream.events] == [1, 2, 3, 4, 5]
    assert stream.tested.tolist() == [False, False, False, True, True]
    assert stream.warmup_events == events[:3]
    with pytest.raises(ValueError, match="warm-up"):
        Stream.of(events, warmup=1.0)
    with pytest.raises(ValueError, match="no event to test"):
        Stream.of([ev("a", "x", 1), ev("b", "x", 2)], warmup=0.0)


def test_positive_only_stream_drops_low_ratings_only():
    events = [ev("a", "x", 1, 5.0), ev("a", "y", 2, 3.0), ev("a", "z", 3)]
    assert [e.item_id for e in positives(events, 4.0)] == ["x", "z"]
    assert positives(events, None) == events


@pytest.fixture(scope="module")
def stream():
    return Stream.of(generate(GeneratorConfig(n_users=40, n_items=200, events_per_user=15)), 0.3)


def test_product_lists_do_not_depend_on_batching(stream, model_path):
    versions = ModelVersions(lambda _: load_recommender(model_path), stream)
    interest = InterestConfig(history_len=10)
    one = ProductPolicy("p", versions, interest, Blend(), batch=1).run(stream, 5)
    many = ProductPolicy("p", versions, interest, Blend(), batch=4096).run(stream, 5)
    assert (one == many).all()


def test_product_list_is_the_workers_top_k_after_the_users_previous_event(stream, model_path):
    interest = InterestConfig(history_len=10)
    rec = load_recommender(model_path, Blend())
    stream = Stream.of(stream.events, 0.3, catalog=rec.item_ids)
    versions = ModelVersions(lambda _: rec, stream, first=0)
    lists = ProductPolicy("p", versions, interest, Blend()).run(stream, 5)
    states, row = {}, 0
    for n, event in enumerate(stream.events):
        state = states.get(event.user_id) or UserState.empty(rec.dim)
        if stream.tested[n]:
            [want] = rec.top_k(state.vector[None], [state.recent], 5)
            assert [stream.item_ids[i] for i in lists[row]] == want.item_ids
            row += 1
        states[event.user_id] = apply_user_events(
            state, [(event, (0, n))], rec.item_vector, interest
        )[0]
    assert row == stream.tested.sum()


def test_each_model_version_is_trained_only_on_the_events_before_it(stream, model_path):
    seen_lengths = []

    def fit(events):
        seen_lengths.append(len(events))
        return load_recommender(model_path)

    versions = ModelVersions(fit, stream, retrain_every=100)
    ProductPolicy("p", versions, InterestConfig(), Blend()).run(stream, 5)
    first = int(np.argmax(stream.tested))
    assert seen_lengths == list(range(first, len(stream.events), 100)) == versions.starts
    # a second policy reuses the fitted versions
    ProductPolicy("q", versions, InterestConfig(), Blend()).run(stream, 5)
    assert len(seen_lengths) == len(versions.starts)


def test_rebase_rebuilds_the_vector_in_another_models_space(model_path):
    rec = load_recommender(model_path)
    other = {i: np.roll(rec.item_vector(i), 1) for i in rec.item_ids}  # a different space
    events = [ev("u", f"i{n}", n * 1000) for n in range(8)]
    interest = InterestConfig(history_len=10, half_life_ms=3000.0)
    in_old, in_new = UserState.empty(rec.dim), UserState.empty(rec.dim)
    for n, event in enumerate(events):
        in_old = apply_user_events(in_old, [(event, (0, n))], rec.item_vector, interest)[0]
        in_new = apply_user_events(in_new, [(event, (0, n))], other.get, interest)[0]
    rebased = rebase(in_old, other.get, rec.dim).vector
    assert_close_on_grid(rebased, in_new.vector, 2 * len(events))


def test_durations_parse_with_units_and_reject_nonsense():
    assert parse_duration("90") == 90 and parse_duration("15min") == 900
    assert parse_duration("6h") == 6 * 3600 and parse_duration("7d") == 7 * 86400
    assert math.isinf(parse_duration("inf"))
    for bad in ("soon", "-1h", "0", "nan"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    for seconds in (90.0, 900.0, 6 * 3600.0, 1.5 * 86400, math.inf):
        assert parse_duration(format_duration(seconds)) == seconds


def test_half_lives_in_events_or_time():
    assert HalfLife.parse("20ev") == HalfLife(events=20.0)
    assert HalfLife.parse("6h") == HalfLife(seconds=6 * 3600.0)
    assert HalfLife.parse("inf").label == "inf" and not HalfLife.parse("inf").forgets
    assert HalfLife.parse("20ev").applied_to(InterestConfig()).half_life_events == 20.0
    assert HalfLife.parse("6h").applied_to(InterestConfig()).half_life_ms == 6 * 3600 * 1000.0
    for bad in ("xev", "0ev", "soon"):
        with pytest.raises(ValueError):
            HalfLife.parse(bad)
