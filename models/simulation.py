"""A click simulator: synthetic users with hidden, drifting preferences, shown K items a step
by the worker's own scoring code, so exploration policies can be compared on clicks and regret.

The hidden world: item i has a topic direction ``q_i`` (unit, D dims) and a quality ``b_i``;
user u a preference ``p_u`` (unit) that drifts a little every time they are shown a list. User u
clicks item i with probability ``sigmoid(affinity <p_u, q_i> + b_i + base)``, each slot on its
own. The model knows the topics only roughly (its item vectors are ``q_i`` plus noise) and not
the quality at all, as a model trained on last month's data knows neither this month's tastes
nor which new items are good: what a greedy policy cannot learn and exploration can.

A step: a user is drawn, their decayed interest (``core.state_step.apply_user_events``, the
worker's update) is scored by ``Recommender.top_k`` and ``models.exploration.explore`` makes the
list; the simulated clicks update the interest and the items' impression and click counts (the
Beta posteriors of ``core.item_stats``). The oracle shows the K unseen items of highest true
click probability; regret is the oracle's expected clicks minus the policy's, summed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from core.events import Event
from core.interest import InterestConfig, UserState
from core.state_step import apply_user_events
from models.blend import Blend
from core.item_stats import beta_posterior
from models.diversity import intra_list_diversity, unit_rows
from models.exploration import Exploration, Slate, explore
from models.mf import MatrixFactorization
from models.scoring import Recommender


@dataclass(frozen=True)
class World:
    users: int = 1000
    items: int = 500
    topics: int = 10
    dim: int = 16
    affinity: float = 3.0
    quality_sd: float = 1.0
    base: float = -4.0
    drift: float = 0.02  # per list shown: the preference's random step, renormalised
    model_noise: float = 0.1  # of the model's item vectors around the true topic directions
    history: int = 5  # clicks each user starts with, drawn from their true preferences
    seed: int = 0


@dataclass
class Truth:
    """What only the simulator knows, drawn from a :class:`World`."""

    world: World
    items: np.ndarray  # (N, D) unit topic directions
    quality: np.ndarray  # (N,)
    users: np.ndarray  # (U, D) unit preferences
    rng: np.random.Generator = field(repr=False)

    @classmethod
    def draw(cls, world: World) -> Truth:
        rng = np.random.default_rng(world.seed)
        topics = unit_rows(rng.normal(size=(world.topics, world.dim)))
        items = unit_rows(topics[np.arange(world.items) % world.topics]
                      + 0.3 * rng.normal(size=(world.items, world.dim)))  # fmt: skip
        users = unit_rows(topics[rng.integers(world.topics, size=world.users)]
                      + 0.5 * rng.normal(size=(world.users, world.dim)))  # fmt: skip
        return cls(world, items, rng.normal(0.0, world.quality_sd, world.items), users, rng)

    def click_probability(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """users (B,), items (B, K) catalog indices (-1: empty, probability 0) -> (B, K)."""
        w = self.world
        logits = w.affinity * np.einsum("bd,bkd->bk", self.users[users], self.items[items.clip(0)])
        p = 1.0 / (1.0 + np.exp(-(logits + self.quality[items.clip(0)] + w.base)))
        return np.where(items >= 0, p, 0.0)

    def drift(self, users: np.ndarray) -> None:
        moved = self.users[users] + self.world.drift * self.rng.normal(size=(len(users), self.world.dim))
        self.users[users] = unit_rows(moved)


def model_of(truth: Truth, seed: int = 1) -> Recommender:
    """The recommender the policies score with: MF item vectors = the true directions + noise,
    no biases (it knows nothing of quality); the interest vector alone, no ranker."""
    w = truth.world
    noisy = truth.items + w.model_noise * np.random.default_rng(seed).normal(size=truth.items.shape)
    model = MatrixFactorization(n_items=w.items, dim=w.dim, max_len=2)
    with torch.no_grad():
        model.items.weight[: w.items] = torch.from_numpy(noisy.astype(np.float32))
    blend = Blend(interest_weight=1.0, sequence_weight=0.0, rerank_candidates=0, explain=0)
    return Recommender(model, [f"i{i}" for i in range(w.items)], "simulated", blend)


@dataclass
class Log:
    """Per step: the user, the list (with propensities), the clicks, and what the off-policy
    check needs: the true click probabilities of the list and of the epsilon pool."""

    users: list[int] = field(default_factory=list)
    slates: list[Slate] = field(default_factory=list)
    clicks: list[np.ndarray] = field(default_factory=list)
    shown_p: list[np.ndarray] = field(default_factory=list)
    greedy_p: list[np.ndarray] = field(default_factory=list)  # the model's own top K
    pool_p: list[np.ndarray] = field(default_factory=list)  # mean over the epsilon pool


@dataclass(frozen=True)
class Result:
    policy: str
    clicks: np.ndarray  # (steps,) clicks per step
    regret: np.ndarray  # (steps,) oracle expected clicks - the policy's
    coverage: np.ndarray  # (steps,) share of the catalog shown so far
    diversity: float  # mean intra-list diversity: 1 - cosine of the model's vectors, pairs
    log: Log | None


def simulate(world: World, policy: str, exploration: Exploration, steps: int, k: int = 10,
             batch: int = 100, keep_log: bool = False, progress=None) -> Result:  # fmt: skip
    """Run ``policy`` ("random" or one of models.exploration.POLICIES) for ``steps`` lists of
    ``k``; ``batch`` distinct users are scored together (their states are updated after the
    batch, as a worker's micro-batch does). Same world, same user draws for every policy."""
    truth = Truth.draw(world)
    rec = model_of(truth)
    interest = InterestConfig(half_life_ms=float("inf"), half_life_events=20.0, history_len=50)
    states = _first_states(truth, rec, interest)
    impressions = np.zeros(world.items)
    positives = np.zeros(world.items)
    draws = np.random.default_rng(world.seed + 1)  # user draws and clicks: shared by policies
    picker = np.random.default_rng(world.seed + 2)  # the random policy's own
    vectors = unit_rows(rec.vectors)
    clicks, regret, coverage, diversity = [], [], [], []
    shown_ever = np.zeros(world.items, dtype=bool)
    log = Log() if keep_log else None
    config = exploration if policy != "random" else Exploration()
    for start in range(0, steps, batch):
        n = min(batch, steps - start)
        users = draws.choice(world.users, size=n, replace=False)
        chosen = [states[u] for u in users]
        ranked = rec.top_k(np.stack([s.vector for s in chosen]), [s.recent for s in chosen],
                           config.candidates(k)).indices  # fmt: skip
        slates = []
        for row, user in enumerate(users):
            if policy == "random":
                seen = {rec.index[i] for i in chosen[row].recent}
                pick = picker.permutation([i for i in range(world.items) if i not in seen])[:k]
                slates.append(Slate(pick, np.ones(k), np.ones(k, dtype=bool),
                                    np.zeros(k, dtype=bool)))  # fmt: skip
            else:
                at = ranked[row]
                alpha, beta = beta_posterior(impressions[at], positives[at])
                slates.append(explore(at, k, config, alpha, beta,
                                      seed=(world.seed << 40) ^ (start + row)))  # fmt: skip
        items = np.stack([s.items for s in slates])
        diversity.append(items)
        p = truth.click_probability(users, items)
        clicked = draws.random(p.shape) < p
        best = _oracle(truth, users, [s.recent for s in chosen], rec, k)
        clicks.extend(clicked.sum(axis=1).tolist())
        regret.extend((best - p.sum(axis=1)).tolist())
        for row, user in enumerate(users):
            shown = items[row][items[row] >= 0]
            np.add.at(impressions, shown, 1)
            np.add.at(positives, items[row][clicked[row]], 1)
            shown_ever[shown] = True
            coverage.append(shown_ever.mean())
            events = [(Event(str(user), rec.item_ids[i], "click", start + row), (0, start + row))
                      for i in items[row][clicked[row]].tolist()]  # fmt: skip
            if events:
                states[user] = apply_user_events(states[user], events, rec.item_vector,
                                                 interest).state  # fmt: skip
        if log is not None:  # before the drift: the probabilities the lists were shown under
            _record(log, truth, users, slates, clicked, p, ranked, k, config)
        truth.drift(users)
        if progress is not None:
            progress(n)
    return Result(policy, np.array(clicks), np.array(regret), np.array(coverage),
                  intra_list_diversity(np.concatenate(diversity), vectors), log)  # fmt: skip


def _first_states(truth: Truth, rec: Recommender, interest: InterestConfig) -> list[UserState]:
    """Each user's state after ``history`` clicks drawn by their true click probabilities (the
    same for every policy: its own generator)."""
    w = truth.world
    rng = np.random.default_rng(w.seed + 3)
    every = np.broadcast_to(np.arange(w.items), (w.users, w.items))
    p = truth.click_probability(np.arange(w.users), every)
    states = []
    for user in range(w.users):
        picked = rng.choice(w.items, size=w.history, replace=False, p=p[user] / p[user].sum())
        events = [(Event(str(user), rec.item_ids[i], "click", -w.history + n), (0, n - w.history))
                  for n, i in enumerate(picked.tolist())]  # fmt: skip
        states.append(apply_user_events(UserState.empty(w.dim), events, rec.item_vector,
                                        interest).state)  # fmt: skip
    return states


def _oracle(truth: Truth, users: np.ndarray, recent: list, rec: Recommender, k: int) -> np.ndarray:
    """Expected clicks of the best list of k unseen items for each user."""
    every = np.broadcast_to(np.arange(truth.world.items), (len(users), truth.world.items))
    p = truth.click_probability(users, every).copy()
    for row, items in enumerate(recent):
        p[row, [rec.index[i] for i in items]] = 0.0
    return -np.sort(-p, axis=1)[:, :k].sum(axis=1)


def _record(log: Log, truth: Truth, users, slates, clicked, p, ranked, k, config) -> None:
    greedy = ranked[:, :k]
    pool = ranked[:, k : k + config.pool]
    log.users.extend(users.tolist())
    log.slates.extend(slates)
    log.clicks.extend(clicked)
    log.shown_p.extend(p)
    log.greedy_p.extend(truth.click_probability(users, greedy))
    pool_p = truth.click_probability(users, pool)
    log.pool_p.extend((pool_p.sum(axis=1) / np.maximum(1, (pool >= 0).sum(axis=1))).tolist())


def epsilon_ips(log: Log, logged: Exploration, target_epsilon: float, k: int) -> dict:
    """Off-policy estimate, from logs of the epsilon-greedy ``logged`` policy, of the per-slot
    click rate of the same policy with ``target_epsilon`` (0: greedy), by IPS and
    self-normalised IPS over the logged propensities; and that policy's true rate on the same
    lists' contexts (the simulator knows every click probability)."""
    estimates, weights, truths = [], [], []
    eps = logged.epsilon
    for slate, clicks, greedy_p, pool_p in zip(log.slates, log.clicks, log.greedy_p, log.pool_p):
        filled = int((slate.items >= 0).sum())
        first = filled - min(logged.budget, filled)
        w = np.ones(k)
        for slot in range(first, filled):
            if slate.explored[slot]:
                w[slot] = target_epsilon / eps
            else:
                w[slot] = (1.0 - target_epsilon) / (1.0 - eps)
        estimates.append(float((w * clicks).sum()) / k)
        weights.append(float(w[:filled].mean()) if filled else 1.0)
        explore_slots = slice(first, filled)
        truth = greedy_p[:first].sum() + ((1 - target_epsilon) * greedy_p[explore_slots]
                                          + target_epsilon * pool_p).sum()  # fmt: skip
        truths.append(float(truth) / k)
    ips = float(np.mean(estimates))
    return {"target_epsilon": target_epsilon, "ips": ips, "snips": ips / float(np.mean(weights)),
            "true": float(np.mean(truths)), "lists": len(estimates)}
