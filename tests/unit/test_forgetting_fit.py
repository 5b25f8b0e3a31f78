"""The forgetting fit recovers a known forgetting function from generated events, and the
exact recomputation agrees with the worker's lazy exponential state."""

import numpy as np
import pytest
import torch

from core.events import Event
from core.forgetting import Forgetting
from core.generator import GeneratorConfig, generate
from core.interest import InterestConfig
from models.blend import Blend
from models.forgetting_fit import default_grid, fit_forgetting
from models.forgetting_policy import ForgettingPolicy
from models.mf import MatrixFactorization
from models.prequential import run_prequential
from models.product import ModelVersions, ProductPolicy
from models.scoring import Recommender
from models.stream import Stream

N_TOPICS, PER_TOPIC = 50, 1
# every event type weighs the same: the generator's types carry no signal
SAME_WEIGHTS = {"view": 1.0, "click": 1.0, "cart": 1.0, "purchase": 1.0}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Batches of tiny matrices: a second thread only waits on the first (much slower on a
    shared machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def topic_recommender() -> Recommender:
    """Item i's vector is its topic's axis and every bias 0: a ranking by the interest vector
    is a ranking of the user's weighted topic counts, the generator's own rule."""
    n_items = N_TOPICS * PER_TOPIC
    model = MatrixFactorization(n_items, N_TOPICS, 8)
    with torch.no_grad():
        model.items.weight[:n_items] = torch.eye(N_TOPICS)[torch.arange(n_items) % N_TOPICS]
    return Recommender(model, [f"i{i}" for i in range(n_items)], "topics")


def generated_stream(forgetting: Forgetting, seed: int = 0) -> Stream:
    """Many topics and frequent new ones (drift 0.3), so that users' pasts hold topics of
    many ages and the shape of the function, not only its scale, changes the lists."""
    config = GeneratorConfig(n_users=300, n_items=N_TOPICS * PER_TOPIC, n_topics=N_TOPICS,
                             events_per_user=60, drift=0.3, on_topic=1.0, skip_rate=0.0,
                             seed=seed, forgetting=forgetting)  # fmt: skip
    return Stream.of(generate(config), warmup=0.2)


@pytest.mark.parametrize("truth", ["exp:4ev", "power:tau=2ev,alpha=1", "window:12ev"])
def test_fit_recovers_the_generators_forgetting_function(truth):
    known = Forgetting.parse(truth)
    stream = generated_stream(known)
    recommender = topic_recommender()
    versions = ModelVersions(lambda _events: recommender, stream)
    interest = InterestConfig(event_weights=SAME_WEIGHTS, history_len=1)
    # the generator's clock only, to stay fast (the CLI's fit also tries event time)
    fit = fit_forgetting(stream, versions, interest, Blend(), default_grid(clocks=("events",)))
    won = fit.winner
    assert (won.family, won.clock) == (known.family, known.clock), fit.table()
    assert won.scale == pytest.approx(known.scale, rel=0.2), fit.table()
    if known.family == "power":
        assert won.alpha == pytest.approx(known.alpha, rel=0.2), fit.table()


def test_exact_exponential_lists_are_the_workers_lists():
    """The recomputed vector (newest ``history_len`` events) ranks as the worker's lazily decayed
    state does, version swaps included. Random item vectors: the topic axes' exact ties would
    be broken by what the recomputation drops (contributions of 2**(-50/3))."""
    torch.manual_seed(0)
    n_items = 200
    model = MatrixFactorization(n_items, 16, 8)
    recommender = Recommender(model, [f"i{i}" for i in range(n_items)], "random")
    config = GeneratorConfig(n_users=200, n_items=n_items, n_topics=20, events_per_user=60,
                             forgetting=Forgetting.parse("exp:3ev"), seed=1)  # fmt: skip
    stream = Stream.of(generate(config), warmup=0.2)
    versions = ModelVersions(lambda _events: recommender, stream, retrain_every=2000)
    interest = InterestConfig(event_weights=SAME_WEIGHTS, half_life_events=3.0, history_len=50)
    worker = ProductPolicy("interest h=3ev", versions, interest, Blend(), sequence=False)
    exact = ForgettingPolicy(versions, interest, Blend(), Forgetting.parse("exp:3ev"))
    lists = [p.run(stream, 10) for p in (worker, exact)]
    # the worker's state is stored in blocks of float32 (core/precision.py): a near tie may
    # flip, nothing more
    assert np.mean(np.all(lists[0] == lists[1], axis=1)) > 0.99
    rows = run_prequential(stream, [worker, exact], k=10, windows=1)
    assert rows[1]["ndcg@10"] == pytest.approx(rows[0]["ndcg@10"], abs=1e-3)


def test_a_user_with_only_impressions_so_far_keeps_the_rows_aligned():
    events = [Event("a", "i1", "impression", 1), Event("b", "i3", "click", 2),
              Event("a", "i2", "click", 3), Event("b", "i4", "click", 4),
              Event("b", "i5", "click", 5)]  # fmt: skip
    stream = Stream.of(events, warmup=0.0, catalog=[f"i{i}" for i in range(N_TOPICS)])
    versions = ModelVersions(lambda _events: topic_recommender(), stream)
    interest = InterestConfig(event_weights=SAME_WEIGHTS, half_life_events=2.0, history_len=1)
    worker = ProductPolicy("interest h=2ev", versions, interest, Blend(), sequence=False)
    exact = ForgettingPolicy(versions, interest, Blend(), Forgetting.parse("exp:2ev"))
    assert np.array_equal(worker.run(stream, 5), exact.run(stream, 5))
