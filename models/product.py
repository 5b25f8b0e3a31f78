"""The product as the prequential evaluator runs it: the worker's own update and scoring code.

:class:`ProductPolicy` folds each event into its user's state with
:func:`core.state_step.apply_user_events` and ranks with :meth:`Recommender.top_k`, so the list
tested before event n is exactly the record the worker emitted after the user's previous event
(streams/tools/replay_check.py proves it through a broker). :class:`ModelVersions` is the model the
product serves at each point of the stream, as a trainer would publish it. With ``items`` set,
each positive event also moves its item's vector by the worker's online item learning
(:class:`models.item_learning.OnlineItems`, the item path's own code), taken into scoring at
the next batch boundary as a worker takes it between micro-batches.
"""

from __future__ import annotations

import copy
import time
from dataclasses import replace
from typing import Callable, Sequence

import numpy as np

from core.events import Event
from core.interest import InterestConfig, UserState, rebase
from core.state_step import apply_user_events
from models.exploration import Exploration, explore_rows
from models.half_life import HalfLife
from models.slates import ListRules, candidates
from models.item_learning import ItemLearning, OnlineItems
from models.live_neighbours import LiveCounts
from models.neighbours import WINDOW
from models.periodic import VersionDone
from models.blend import Blend
from models.scoring import Recommender
from models.stream import Stream


LIVE_EVERY = 100  # events between takes of the live neighbour counts: a worker's follow lag


class ModelVersions:
    """The model the product serves at each point of the stream: trained on the warm-up, then
    a new version from everything before every ``retrain_every`` events (each version is what a
    trainer would publish and a worker hot-swap). Shared by the product policies, fit once."""

    def __init__(self, fit: Callable[[Sequence[Event]], Recommender], stream: Stream,
                 retrain_every: int | None = None, first: int | None = None,
                 warm_started: bool = False, on_version: VersionDone | None = None) -> None:
        """``first``: where the first version starts serving; default the end of warm-up.
        ``warm_started``: each version continues the one before (online item learning then
        carries new items' vectors over, as a worker does for an announcement's parent).
        ``on_version(done, total, at, seconds)`` hears of each version as it is fitted."""
        self.fit = fit
        self.warm_started = warm_started
        start = int(np.argmax(stream.tested)) if first is None else first
        step = retrain_every or len(stream.events)
        self.starts = list(range(start, len(stream.events), step))
        self._fitted: dict[int, Recommender] = {}
        self.train_seconds, self.stream, self.on_version = 0.0, stream, on_version

    def at(self, start: int) -> Recommender:
        if start not in self._fitted:
            began = time.perf_counter()
            self._fitted[start] = self.fit(self.stream.events[:start])
            seconds = time.perf_counter() - began
            self.train_seconds += seconds
            if self.on_version is not None:
                self.on_version(len(self._fitted), len(self.starts), start, seconds)
        return self._fitted[start]


class ProductPolicy:
    """The worker's update and scoring code, fed one event at a time in stream order.

    User states only depend on the user's own events and the model is fixed between versions,
    so the lists are scored in batches of tested events without changing any of them. At a new
    model version every state's vector is rebuilt in the new space (:func:`rebase`).
    """

    baseline = False

    def __init__(
        self,
        name: str,
        versions: ModelVersions,
        interest: InterestConfig,
        blend: Blend,
        sequence: bool = True,
        batch: int = 1024,
        items: ItemLearning | None = None,
        exploration: Exploration | None = None,
        mmr_lambda: float = 1.0,
        neighbours: bool = True,
        live_every: int = 0,
    ) -> None:
        """``items``: learn item vectors online (then a batch of ``batch`` is also how long an
        update waits to be scored with: the workers' micro-batches are far shorter).
        ``exploration``: lists made by :func:`models.exploration.explore` from the model's
        ranking, each list an impression of its items and the tested event a positive for its
        item if shown (the Beta posteriors the bandits read), seeded per tested event.
        ``mmr_lambda`` < 1: the model's first candidates re-ranked by MMR (models/slates.py).
        ``neighbours``: fused with the versions' item neighbours at the blend's weights (unset:
        each version's fitted ones), as workers serve them (models/neighbours.py); False: the
        model's list alone. ``live_every`` > 0: the neighbours also count each positive since
        the version (models/live_neighbours.py), taken into scoring every ``live_every`` events,
        as a worker takes what it follows between micro-batches."""
        self.name = name
        self.rules = ListRules(exploration or Exploration(), -1, mmr_lambda)
        self.items = items
        self.exploration = exploration
        self.versions = versions
        self.interest = interest
        self.blend = replace(blend, explain=0)
        if not sequence:
            self.blend = replace(self.blend, sequence_weight=0.0)
        if not neighbours:
            self.blend = replace(self.blend, covisit_weight=0.0, rules_weight=0.0,
                                 content_weight=0.0, sessions_weight=0.0)
        self.sequence = sequence
        self.batch = batch
        self.live_every = live_every if neighbours else 0

    @property
    def train_seconds(self) -> float:
        """Training so far, shared by every policy of these versions (the first to ask trains)."""
        return self.versions.train_seconds

    def serving(self, start: int) -> Recommender:
        """The version at ``start``, as this policy blends it (with every item it serves: a
        catalog item it has only a content vector for too)."""
        serving = copy.copy(self.versions.at(start))
        serving.blend = self.blend
        if not self.sequence:
            serving.ranker = None
        return serving

    def run(self, stream: Stream, k: int) -> np.ndarray:
        """(tested events, k) stream item indices, -1 where the list is shorter."""
        stream_index = {item: n for n, item in enumerate(stream.item_ids)}
        states: dict[str, UserState] = {}
        pending: list[UserState] = []
        pending_items: list[int] = []  # the stream index of each pending test's item
        impressions = np.zeros(len(stream.item_ids) + 1)  # the last: items not in the stream
        positives = np.zeros(len(stream.item_ids) + 1)
        out = np.full((int(stream.tested.sum()), k), -1, dtype=np.int64)
        done = 0
        rec = to_stream_item = None
        learner: OnlineItems | None = None
        lineage: frozenset[int] = frozenset()  # the tags new items' vectors carry over from
        learned: dict[str, tuple[bytes, int, int]] = {}  # item -> vector, model tag, updates
        moved: dict[str, np.ndarray] = {}  # learned since the last batch boundary
        before: dict[str, list[str]] = {}  # each user's last WINDOW positives, oldest first
        live: LiveCounts | None = None

        def take_learned() -> None:
            """Score with what items learned, from here on (a worker's batch boundary)."""
            nonlocal rec, to_stream_item
            if moved:
                rec = rec.with_item_vectors(moved)
                moved.clear()
                to_stream_item = np.array(
                    [stream_index.get(i, -1) for i in rec.item_ids], dtype=np.int64
                )

        def flush() -> None:
            nonlocal done
            if not pending:
                take_learned()
                take_counted()
                return
            shown = candidates(rec, np.stack([s.vector for s in pending]),
                               [s.recent for s in pending], k, self.rules)[0]  # fmt: skip
            if self.exploration:  # an item the stream lacks still takes its slot
                outside = len(stream.item_ids)
                mapped = np.where(shown >= 0, to_stream_item[shown.clip(0)], -1)
                mapped = np.where((shown >= 0) & (mapped < 0), outside, mapped)
                shown = explore_rows(mapped, k, self.exploration, done, pending_items,
                                     impressions, positives)  # fmt: skip
                shown[shown == outside] = -1
            else:
                shown = np.where(shown >= 0, to_stream_item[shown.clip(0)], -1)
            out[done : done + len(pending), : shown.shape[1]] = shown
            done += len(pending)
            pending.clear()
            pending_items.clear()
            take_learned()
            take_counted()

        def take_counted() -> None:
            """Score with the neighbours counted so far, from here on: only lists asked for
            after this point may see them."""
            nonlocal rec, to_stream_item
            if live is None:
                return
            fresh = [item for item in live.items() if item not in rec.index]
            if fresh:  # served by their counts only: the model does not list them
                rec = rec.with_item_vectors({item: np.zeros(rec.dim, np.float32) for item in fresh},
                                            bias=-np.inf)
                to_stream_item = np.array(
                    [stream_index.get(i, -1) for i in rec.item_ids], dtype=np.int64
                )
            rec.neighbours = versioned.with_live(live.counted(rec.index, len(rec.item_ids)))

        swaps = set(self.versions.starts)
        for n, event in enumerate(stream.events):
            if n in swaps:
                flush()
                rec = self.serving(n)
                if self.items is not None:  # what serving.swap keeps: the new items' vectors
                    lineage = lineage | {learner.tag} if learner and self.versions.warm_started \
                        else frozenset()  # fmt: skip
                    learner = OnlineItems(rec.vectors, rec.index, rec.tag, self.items, lineage)
                    moved.update({i: np.frombuffer(v, "<f4") for i, (v, m, _) in learned.items()
                                  if i not in rec.index and m in lineage})  # fmt: skip
                to_stream_item = np.array(
                    [stream_index.get(i, -1) for i in rec.item_ids], dtype=np.int64
                )
                take_learned()
                states = {u: rebase(s, rec.item_vector, rec.dim) for u, s in states.items()}
                versioned = rec.neighbours
                live = LiveCounts() if versioned and self.live_every else None
            elif live is not None and n % self.live_every == 0:
                flush()
            # before the first version (warm-up) states keep recent items and weights, no vector
            state = states.get(event.user_id) or UserState.empty(rec.dim if rec else 1)
            if stream.tested[n]:
                pending.append(state)
                pending_items.append(stream_index[event.item_id])
                if len(pending) == self.batch:
                    flush()
            states[event.user_id] = state = apply_user_events(
                state, [(event, (0, n))], rec.item_vector if rec else _no_vector, self.interest
            ).state
            positive = self.interest.weight(event) > 0
            if positive:
                mine = before.setdefault(event.user_id, [])
                if live is not None:
                    live.add(event.item_id, mine)
                mine.append(event.item_id)
                del mine[:-WINDOW]
            if learner is not None and positive:
                item = event.item_id
                start = learner.start(item, *learned.get(item, (b"", 0, 0)))
                vector, updates = learner.learn(item, start, [((0, n), state.vector)])
                learned[item] = (vector.astype("<f4").tobytes(), learner.tag, updates)
                moved[item] = vector
        flush()
        return out


def _no_vector(item_id: str) -> None:
    return None


def product_policies(
    versions: ModelVersions,
    interest: InterestConfig,
    blend: Blend,
    half_lives: Sequence[HalfLife],
    kind: str,
    items: ItemLearning | None = None,
    explorations: Sequence[Exploration] = (),
    diversities: Sequence[float] = (),
) -> list[ProductPolicy]:
    """The interest vector alone at each half-life (h = inf is the no-decay baseline); the
    interest vector fused with the versions' item neighbours at each; and the full product
    (interest + sequence model + ranker, fused with the neighbours) at each one that forgets;
    with ``items`` each one again with online item learning,
    scored in batches of 64 events; then each of those with each exploration policy, and with its
    lists re-ranked by MMR at each of ``diversities``."""
    policies = [
        ProductPolicy(f"interest h={h.label}", versions, h.applied_to(interest), blend,
                      sequence=False, neighbours=False)
        for h in half_lives
    ]
    policies += [ProductPolicy(f"interest + neighbours h={h.label}", versions,
                               h.applied_to(interest), blend, sequence=False)
                 for h in half_lives]  # fmt: skip
    policies += [ProductPolicy(f"interest + live neighbours h={h.label}", versions,
                               h.applied_to(interest), blend, sequence=False, live_every=LIVE_EVERY)
                 for h in half_lives]  # fmt: skip
    policies += [
        ProductPolicy(f"interest + {kind} h={h.label}", versions, h.applied_to(interest), blend)
        for h in half_lives
        if h.forgets
    ]
    if items is not None:
        policies = [q for p in policies for q in (p, ProductPolicy(
            f"{p.name} + online items", versions, p.interest, p.blend, p.sequence, 64, items))]
    policies = [q for p in policies for q in (p, *(ProductPolicy(
        f"{p.name} + {c.policy} (explore {c.budget})", versions, p.interest, p.blend, p.sequence,
        64, p.items, c) for c in explorations))]  # fmt: skip
    policies += [ProductPolicy(f"{p.name} + MMR λ={lam:g}", versions, p.interest, p.blend,
                               p.sequence, 64, p.items, None, lam)
                 for p in policies if p.exploration is None for lam in diversities]  # fmt: skip
    return policies
