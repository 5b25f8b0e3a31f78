"""V-SKNN, STAN and sequential rules on logs small enough to score by hand: each test's expected
scores are the reference formulas (rn5l/session-rec) worked out for that log."""

import math

import numpy as np
import pytest

from models.sequential_rules import SequentialRules
from models.session_knn import STAN, VSKNN, position_weights

DAY = 86_400_000
P, Q, X, Y, Z = range(5)  # item indices
A, B, U = range(3)  # user indices: two neighbours and the user asking


def fed(policy, log):
    """The policy after learning ``log`` (user, item, ts) as the evaluator feeds it."""
    for user, item, ts in log:
        policy.learn(user, item, ts)
        policy.known[item] = True
        policy.seen[user].append(item)
    return policy


# U's session is [P, Q]: A shares the older item P, B the newest item Q
LOG = [(A, P, 0), (A, X, 0), (B, Q, DAY), (B, Y, DAY), (U, P, DAY), (U, Q, DAY)]


def test_vsknn_weighs_positions_steps_back_and_idf():
    # linear weights: Q 1.0, P 0.9; similarity = shared weight / 2 distinct items
    # A: 0.9 / 2, newest shared item 2 steps back (1/2); B: 1.0 / 2, 1 step back
    plain = fed(VSKNN(3, 5, idf_weighting=0.0), LOG).scores(U, 2 * DAY)
    np.testing.assert_allclose(plain, [0.225, 0.5, 0.225, 0.5, 0.0])
    # idf = log(3 users / the item's events): X and Y once each, P and Q twice
    idf = fed(VSKNN(3, 5, idf_weighting=10.0), LOG).scores(U, 2 * DAY)
    once, twice = 1 + 10 * math.log(3), 1 + 10 * math.log(1.5)
    np.testing.assert_allclose(idf, [0.225 * twice, 0.5 * twice, 0.225 * once, 0.5 * once, 0])


def test_vsknn_ranks_through_the_evaluator_without_own_items():
    log = [*LOG, (U, Z, 2 * DAY)]
    stream_lists = run(VSKNN(3, 5, idf_weighting=0.0), log)
    assert stream_lists[-1].tolist()[:2] == [Y, X]


def test_vsknn_and_stan_forget_what_slid_out_of_a_window():
    # A's window of 2 has lost P, so A no longer neighbours U, whose window is [P]
    log = [(A, P, 0), (A, X, 1), (A, Z, 2), (U, P, 3)]
    for policy in (VSKNN(3, 5, window=2), STAN(3, 5, window=2)):
        assert not fed(policy, log).scores(U, 4).any()
    for policy in (VSKNN(3, 5, window=3), STAN(3, 5, window=3)):
        assert fed(policy, log).scores(U, 4)[[X, Z]].all()


def test_stan_decays_by_position_recency_and_item_distance():
    # A: [X, Z, P] at day 0; B: [Q, Y] at day 1; U: [P, Q]; asked at day 2; every lambda 1 (day)
    log = [(A, X, 0), (A, Z, 0), (A, P, 0), (B, Q, DAY), (B, Y, DAY), (U, P, DAY), (U, Q, DAY)]
    stan = fed(STAN(3, 5, lambda_spw=1.0, lambda_snh_days=1.0, lambda_inh=1.0), log)
    norm = math.sqrt(1 + math.exp(-2))  # U's weights: Q 1, P e^-1
    sim_a = math.exp(-1) / (norm * math.sqrt(3)) * math.exp(-2)  # shares P; 2 days old
    sim_b = 1.0 / (norm * math.sqrt(2)) * math.exp(-1)  # shares Q; 1 day old
    # each neighbour's items decay with their distance from the newest shared one (P at 3, Q at 1)
    expected = [sim_a, sim_b, sim_a * math.exp(-2), sim_b * math.exp(-1), sim_a * math.exp(-1)]
    np.testing.assert_allclose(stan.scores(U, 2 * DAY), expected)


def test_sequential_rules_follow_the_newest_item_weighted_by_steps_back():
    # user 0: a b c; user 1: a c; user 2: a b -> rules a->b 0.9+0.9, a->c 0.8+0.9, b->c 0.9
    a, b, c = range(3)
    log = [(0, a, 0), (0, b, 1), (0, c, 2), (1, a, 3), (1, c, 4), (2, a, 5), (2, b, 6)]
    rules = fed(SequentialRules(3, 3), log)
    np.testing.assert_allclose(rules.scores(2, 7), [0.0, 0.0, 0.9])  # from b, not a
    rules.seen[2].append(a)
    np.testing.assert_allclose(rules.scores(2, 7), [0.0, 1.8, 1.7])
    pruned = fed(SequentialRules(3, 3, pruning=1), log)
    pruned.seen[2].append(a)
    np.testing.assert_allclose(pruned.scores(2, 7), [0.0, 1.8, 0.0])
    one_step = fed(SequentialRules(3, 3, steps=1), log)
    one_step.seen[2].append(a)
    np.testing.assert_allclose(one_step.scores(2, 7), [0.0, 1.8, 0.9])


@pytest.mark.parametrize("make", [VSKNN, STAN, SequentialRules])
def test_bad_sizes_are_rejected(make):
    with pytest.raises(ValueError):
        make(2, 2, **({"steps": 0} if make is SequentialRules else {"k": 0}))


def run(policy, log, k=3):
    from models.stream import Stream

    users, items, ts = (np.array(c) for c in zip(*log))
    return policy.run(Stream([], users, items, ts, [], np.ones(len(log), dtype=bool)), k)


def loop_scores(policy, user, ts):
    """The scores neighbour by neighbour, as session-rec writes them: the oracle the array
    version in models/session_knn.py must equal bit for bit."""
    out = np.zeros(policy.n_items)
    stan = isinstance(policy, STAN)
    decay = (lambda b: math.exp(-b / policy.lambda_spw)) if stan else \
        (lambda b: max(0.0, 1.0 - 0.1 * b))  # fmt: skip
    weight = position_weights(policy.session(user), decay)
    users, overlap, step = policy.neighbours(user, weight)
    if stan:
        norm = math.sqrt(sum(w * w for w in weight.values()))
        recency = np.exp(-(ts - policy.last_ts[users]) / policy.lambda_snh_ms)
        similarity = overlap / (norm * np.sqrt(policy.distinct[users])) * recency
    else:
        similarity = overlap / len(weight)
        idf = np.log(max(policy.active.sum(), 1) / np.maximum(policy.item_events, 1.0))
    for n in policy.nearest(users, similarity):
        items = policy.session(int(users[n]))
        if not stan:
            held = np.unique(items)
            out[held] += similarity[n] * (1.0 + idf[held] * policy.idf_weighting) / step[n]
            continue
        last = {item: p for p, item in enumerate(items, 1)}
        star = max(p for p, item in enumerate(items, 1) if item in weight)
        distinct = np.fromiter(last, dtype=np.int64, count=len(last))
        gaps = np.abs(np.fromiter(last.values(), dtype=float, count=len(last)) - star)
        out[distinct] += similarity[n] * np.exp(-gaps / policy.lambda_inh)
    return out


@pytest.mark.parametrize("cls", [VSKNN, STAN])
def test_neighbour_scores_equal_the_per_neighbour_loop(cls):
    # few items in small windows: repeats inside a window, items sliding out and coming back
    rng = np.random.default_rng(3)
    policy = cls(12, 8, window=5, k=4, sample_size=6)
    for n in range(600):
        user, item, ts = int(rng.integers(12)), int(rng.integers(8)), n * 60_000
        if policy.seen[user]:
            assert np.array_equal(policy.scores(user, ts), loop_scores(policy, user, ts)), n
        fed(policy, [(user, item, ts)])
