"""Exploration policies: the budget holds, a seed reproduces a list, and the logged propensities
are the frequencies the policy really shows items with; the simulator's off-policy check."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from models.exploration import Exploration, explore

RANKED = np.arange(40, dtype=np.int64)  # the model's order: item 0 first
K = 10


def posteriors(n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    shown = rng.integers(0, 50, n).astype(float)
    clicked = np.floor(shown * rng.random(n))
    return 1 + clicked, 1 + shown - clicked


@pytest.mark.parametrize("policy", ["greedy", "epsilon", "ucb", "thompson"])
@pytest.mark.parametrize("budget", [0, 1, 3])
def test_at_most_budget_slots_explore_and_a_seed_reproduces_the_list(policy, budget):
    config = Exploration(policy, budget, epsilon=0.5, pool=20, samples=50)
    alpha, beta = posteriors()
    for seed in range(30):
        slate = explore(RANKED, K, config, alpha, beta, seed)
        again = explore(RANKED, K, config, alpha, beta, seed)
        assert np.array_equal(slate.items, again.items)
        assert np.array_equal(slate.propensity, again.propensity)
        assert slate.explored.sum() <= budget and not slate.explored[: K - budget].any()
        assert np.array_equal(slate.items[: K - budget], RANKED[: K - budget])
        assert len(set(slate.items.tolist())) == K  # no item twice
        assert ((slate.propensity > 0) & (slate.propensity <= 1)).all()


def test_epsilon_propensities_are_the_frequencies_the_lists_show():
    config = Exploration("epsilon", budget=2, epsilon=0.3, pool=5)
    alpha, beta = posteriors()
    seen: Counter = Counter()
    logged: dict = {}
    n = 20_000
    for seed in range(n):
        slate = explore(RANKED, K, config, alpha, beta, seed)
        for slot in (8, 9):
            item = int(slate.items[slot])
            seen[slot, item] += 1
            logged[slot, item] = slate.propensity[slot]
    for (slot, item), count in seen.items():
        assert count / n == pytest.approx(logged[slot, item], abs=0.01), (slot, item)
    assert logged[9, 9] == pytest.approx(0.7) and logged[9, 12] == pytest.approx(0.3 / 5)


def test_thompsons_estimated_propensities_track_its_frequencies():
    config = Exploration("thompson", budget=1, pool=6, samples=200)
    alpha, beta = np.ones(40), np.ones(40)
    alpha[[9, 11, 12]] = [30, 12, 3]  # three items with evidence, the rest uniform
    beta[[9, 11, 12]] = [70, 8, 1]
    seen: Counter = Counter()
    logged: dict = {}
    n = 3_000
    for seed in range(n):
        slate = explore(RANKED, K, config, alpha, beta, seed)
        seen[int(slate.items[9])] += 1
        logged.setdefault(int(slate.items[9]), []).append(slate.propensity[9])
    for item, count in seen.items():
        if count > 100:
            assert np.mean(logged[item]) == pytest.approx(count / n, abs=0.03), item


def test_ucb_prefers_the_uncertain_and_the_good():
    config = Exploration("ucb", budget=1, pool=3)
    alpha, beta = np.full(40, 50.0), np.full(40, 50.0)  # well known, rate 0.5
    alpha[11], beta[11] = 1, 1  # never shown: widest bound
    assert explore(RANKED, K, config, alpha, beta, 0).items[9] == 11
    with pytest.raises(ValueError):
        Exploration("softmax")


def test_the_off_policy_check_recovers_a_target_rate_in_a_small_world():
    from models.simulation import World, epsilon_ips, simulate

    config = Exploration("epsilon", budget=1, epsilon=0.3)
    result = simulate(World(users=200, items=100, seed=3), "epsilon", config, 4_000,
                      keep_log=True)  # fmt: skip
    assert result.regret.min() >= -1e-9 and 0 < result.coverage[-1] <= 1
    for target in (0.0, 0.6):
        check = epsilon_ips(result.log, config, target, 10)
        assert check["ips"] == pytest.approx(check["true"], rel=0.1), check


def test_the_evaluator_explores_only_the_budgeted_slot(model_path):
    from core.generator import GeneratorConfig, generate
    from core.interest import InterestConfig
    from models.artifact import load_recommender
    from models.blend import Blend
    from models.product import ModelVersions, ProductPolicy
    from models.stream import Stream

    stream = Stream.of(generate(GeneratorConfig(n_users=40, n_items=200, events_per_user=15)), 0.3)
    versions = ModelVersions(lambda _: load_recommender(model_path), stream)
    interest = InterestConfig(history_len=10)
    greedy = ProductPolicy("g", versions, interest, Blend(), batch=64).run(stream, 10)
    always = Exploration("epsilon", budget=1, epsilon=1.0, pool=20)
    explored = ProductPolicy("e", versions, interest, Blend(), batch=64,
                             exploration=always).run(stream, 10)  # fmt: skip
    assert (explored[:, :9] == greedy[:, :9]).all()
    drawn = explored[:, 9]  # -1: a drawn item the stream does not have
    assert (drawn >= 0).mean() > 0.5
    assert not any(drawn[r] in greedy[r] for r in range(len(greedy)) if drawn[r] >= 0)


def test_epsilon_draws_new_items_first_and_marks_them_new():
    config = Exploration("epsilon", 1, epsilon=1.0, pool=20, new_items=5)
    alpha, beta = posteriors()
    shown = np.full(40, 100.0)
    shown[[25, 28, 35]] = [0, 4, 0]  # two of the pool (items 10 to 29) are new; 35 is past it
    drawn = Counter()
    for seed in range(200):
        slate = explore(RANKED, K, config, alpha, beta, seed, shown)
        drawn[int(slate.items[-1])] += 1
        assert slate.new[-1] and slate.explored[-1] and slate.propensity[-1] == 0.5
    assert set(drawn) == {25, 28}
    shown[:] = 100.0  # none new: the whole pool, nothing marked new
    slate = explore(RANKED, K, config, alpha, beta, 3, shown)
    assert slate.explored[-1] and not slate.new.any() and slate.propensity[-1] == 1 / 20
