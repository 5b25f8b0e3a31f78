"""The promotion gate's estimator and decision (models/promotion.py), on logs where the click
probabilities are known: the estimates land on each version's true rate, a better candidate
is promoted, a worse one held back (and one within the margin passes), and one it cannot judge (too little feedback, lists the
logs never explored) is held back saying so."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from models.off_policy import LoggedList
from models.promotion import GateConfig, compare, decide

K, EPS, POOL = 5, 0.3, 20


@lru_cache(maxsize=4)  # read only: two tests share the 30,000-list world
def world(n: int, seed: int = 2):
    """``n`` contexts, each with 25 candidate items (the model's 5, then a pool of 20) and each
    item's click chance, and an epsilon-greedy logger's lists and their clicks."""
    rng = np.random.default_rng(seed)
    lists, positives, p_click = [], [], []
    for r in range(n):
        items = [f"c{r}-{j}" for j in range(K + POOL)]
        chance = dict(zip(items, np.r_[np.full(K, 0.10), np.linspace(0.30, 0.0, POOL)]))
        shown = items[:K]
        explored = rng.random() < EPS
        if explored:  # the last slot draws uniformly from the pool
            shown = shown[:-1] + [items[K + int(rng.integers(POOL))]]
        propensity = np.r_[np.ones(K - 1), EPS / POOL if explored else 1 - EPS]
        lists.append(LoggedList(tuple(shown), propensity, np.r_[np.zeros(K - 1, bool), explored],
                                EPS, 1, K))  # fmt: skip
        positives.append({i for i in shown if rng.random() < chance[i]})
        p_click.append(chance)
    return lists, positives, p_click


def true_rate(targets, p_click) -> float:
    return float(np.mean([sum(p[i] for i in t) / K for t, p in zip(targets, p_click)]))


def test_estimates_land_on_each_versions_true_rate_and_a_better_one_is_promoted():
    lists, positives, p_click = world(30_000)
    serving = [set(list(p)[:K]) for p in p_click]  # the model's top 5
    better = [set(list(p)[: K - 1]) | {list(p)[K]} for p in p_click]  # its 5th: the pool's best
    got = compare(lists, positives, serving, better)
    assert abs(got["serving_snips"] - true_rate(serving, p_click)) < 0.03 * true_rate(serving, p_click)
    assert abs(got["candidate_snips"] - true_rate(better, p_click)) < 0.1 * true_rate(better, p_click)
    assert 0.9 < got["candidate_support"] < 1.1 and got["difference_ci"][0] > 0
    decision = decide(lists, positives, serving, better)
    assert decision.promote and decision.reason == "promoted"


def test_a_worse_candidate_is_held_back():
    lists, positives, p_click = world(30_000)
    serving = [set(list(p)[:K]) for p in p_click]
    worse = [set(list(p)[: K - 1]) | {list(p)[-1]} for p in p_click]  # the pool's worst: 0.0
    decision = decide(lists, positives, serving, worse)
    assert not decision.promote and decision.reason == "may_be_worse"
    assert decision.estimates["difference_ci"][1] < 0


def test_the_same_version_passes_and_a_margin_lets_a_little_worse_one_pass():
    lists, positives, p_click = world(5_000)
    serving = [set(list(p)[:K]) for p in p_click]
    same = decide(lists, positives, serving, serving)
    assert same.promote and same.estimates["difference_ci"] == [0.0, 0.0]
    worse = [set(list(p)[: K - 1]) | {list(p)[-1]} for p in p_click]
    assert decide(lists, positives, serving, worse, GateConfig(margin=0.5)).promote


def test_what_the_gate_cannot_judge_is_held_back_with_the_reason():
    lists, positives, p_click = world(2_000)
    serving = [set(list(p)[:K]) for p in p_click]
    elsewhere = [{f"never-shown-{j}" for j in range(K)} for _ in p_click]
    unsupported = decide(lists, positives, serving, elsewhere)
    assert (unsupported.promote, unsupported.reason) == (False, "unsupported")
    few = decide(lists[:100], positives[:100], serving[:100], serving[:100])
    assert (few.promote, few.reason) == (False, "too_little_feedback")
