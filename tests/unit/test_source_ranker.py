"""The ranker over candidate sources: it learns which source predicts, leans on what is trending
for users with little history, never reads the future, and with the interest vector alone and
no learning it shows the product's own lists."""

import numpy as np
import pytest

from core.generator import GeneratorConfig, generate
from core.interest import InterestConfig
from models.artifact import load_recommender
from models.baselines import Popularity
from models.blend import Blend
from models.interest_source import InterestSource
from models.prequential import run_prequential
from models.prequential_report import against_best_baseline
from models.product import ModelVersions, ProductPolicy
from models.sequential_rules import SequentialRules
from models.source_ranker import DAY_MS, SourceRanker
from models.stream import Stream

ALL = ("item-knn", "sr", "v-sknn", "stan", "popularity", "trending")


def arrays(log, tested=None):
    """A stream of (user, item, ts) rows; every event after a user's first is tested."""
    users, items, ts = (np.array(c, dtype=np.int64) for c in zip(*log))
    first = {u: n for n, u in reversed(list(enumerate(users)))}
    tested = np.array([first[u] != n for n, u in enumerate(users)]) if tested is None else tested
    return Stream([], users, items, ts, [str(i) for i in range(items.max() + 1)], tested)


def ndcg(policy, stream):
    return run_prequential(stream, [policy], 10, 1)[0]["ndcg@10"]


def column(ranker, source, bucket=1):
    """The weight of ``source``'s normalised score in a history bucket's row (1: one event)."""
    return ranker.effective(bucket)[2 * list(ranker.sources).index(source)]


@pytest.fixture(scope="module")
def cycles():
    """Users walk a ring of 30 items from random starts; item 0 is a popular distraction."""
    rng = np.random.default_rng(0)
    log, t = [], 0
    walks = {u: int(rng.integers(1, 31)) for u in range(300)}
    for step in range(8):
        for user, start in walks.items():
            item = (start + step - 1) % 30 + 1
            log.append((user, item, t))
            log.append((300 + user % 7, 0, t))  # a few heavy users make item 0 the most popular
            t += 1000
    return arrays(log)


def test_the_ranker_learns_the_source_that_predicts(cycles):
    n_users, n_items = int(cycles.users.max()) + 1, 31
    ranker = SourceRanker(n_users, n_items, ALL)
    rules = ndcg(SequentialRules(n_users, n_items), cycles)
    assert ndcg(ranker, cycles) >= 0.95 * rules
    assert ndcg(SourceRanker(n_users, n_items, ("sr", "popularity")), cycles) > 0.95 * rules
    assert column(ranker, "sr", 3) > column(ranker, "popularity", 3)  # 5-19 events


@pytest.fixture(scope="module")
def daily_hits():
    """Each day one item is the hit: every user arrives with a long-tail item of their own and
    next takes the day's hit, so only what is trending predicts the second event."""
    log, user = [], 0
    for day in range(12):
        for n in range(40):
            ts = day * int(DAY_MS) + n * 60_000
            log.append((user, 100 + user, ts))
            log.append((user, day, ts + 1000))
            user += 1
    return arrays(log)


def test_users_with_one_event_lean_on_what_is_trending(daily_hits):
    n_users, n_items = int(daily_hits.users.max()) + 1, int(daily_hits.items.max()) + 1
    ranker = SourceRanker(n_users, n_items, ALL)
    trending = ndcg(Popularity(n_users, n_items, DAY_MS), daily_hits)
    assert trending > 0.5
    assert ndcg(ranker, daily_hits) >= 0.95 * trending
    assert column(ranker, "trending") > column(ranker, "popularity")


@pytest.fixture(scope="module")
def generated(model_path):
    """A generated log over the fixture model's catalog, and that model."""
    rec = load_recommender(model_path, Blend())
    events = generate(GeneratorConfig(n_users=30, n_items=200, events_per_user=12))
    return events, rec


def with_interest(stream, rec, retrain_every=None, **options):
    """The ranker over every source and the interest vector, a version every ``retrain_every``
    events (each the fixture model: the swap and rebase still run)."""
    versions = ModelVersions(lambda _: rec, stream, retrain_every)
    source = InterestSource(stream, versions, InterestConfig(history_len=1000), Blend())
    return SourceRanker(stream.n_users, len(stream.item_ids), extras=[source], **options)


def test_a_list_depends_only_on_the_events_before_it(generated):
    events, rec = generated
    stream = Stream.of(events, 0.3, catalog=rec.item_ids)
    n = int(np.flatnonzero(stream.tested)[40])  # a tested event, changed to another item
    had = {e.item_id for e in stream.events[:n] if e.user_id == stream.events[n].user_id}
    other_item = next(i for i in rec.item_ids if i not in had and i != stream.events[n].item_id)
    changed = list(stream.events)
    changed[n] = changed[n]._replace(item_id=other_item)
    other = Stream.of(changed, 0.3, catalog=rec.item_ids)
    lists = [with_interest(s, rec, 50).run(s, 10) for s in (stream, other)]
    row = int(stream.tested[: n + 1].sum())  # lists up to and including event n's
    np.testing.assert_array_equal(lists[0][:row], lists[1][:row])
    assert (lists[0][row:] != lists[1][row:]).any()  # the change is seen after it


def test_unknown_sources_are_refused():
    with pytest.raises(ValueError, match="unknown sources"):
        SourceRanker(2, 2, ("item-knn", "oracle"))


def test_interest_alone_unlearned_shows_the_products_lists(generated):
    events, rec = generated
    stream = Stream.of(events, 0.3, catalog=rec.item_ids)
    interest = InterestConfig(history_len=1000)
    versions = ModelVersions(lambda _: rec, stream, 50)  # swaps and rebases along the stream
    product = ProductPolicy("p", versions, interest, Blend(), sequence=False,
                            neighbours=False).run(stream, 5)
    only = with_interest(stream, rec, 50, sources=(), learning_rate=0)
    only.known[:] = True  # this model knows the whole catalog from the start; a version the
    # evaluator trains knows only items of the events before it, which are known here too
    np.testing.assert_array_equal(only.run(stream, 5), product)


def test_each_row_is_measured_against_the_best_baseline_overall_and_per_window():
    def row(name, ndcg_windows, baseline):
        windows = [{"ndcg@10": v} for v in ndcg_windows]
        return {"policy": name, "baseline": baseline, "windows": windows,
                "ndcg@10": float(np.mean(ndcg_windows))}  # fmt: skip

    rows = against_best_baseline([row("a", [0.2, 0.4], True), row("b", [0.3, 0.1], True),
                                  row("product", [0.27, 0.4], False)])  # fmt: skip
    product = rows[-1]
    assert product["vs_best_baseline"] == pytest.approx(0.335 / 0.3)
    assert product["worst_window_vs_best"] == (1, pytest.approx(0.9))
    assert rows[0]["vs_best_baseline"] == 1.0
