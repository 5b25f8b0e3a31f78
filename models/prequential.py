"""Prequential (test-then-train) evaluation over a time-ordered event stream.

Each event of a user with history, after the warm-up share of the stream, is first a test: the
policy ranks K items for the user as of that moment, and the event's item scores HR@K, NDCG@K and
MRR@K; then the event is learned. The product policy runs the worker's own code
(:func:`streams.app.apply_user_events` and :meth:`Recommender.top_k`), so the list tested before
event n is exactly the record the worker emitted after the user's previous event.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from models.baselines import ItemKNN, OnlineMF, Popularity, StreamingPolicy
from models.evaluation import gains_at
from models.scoring import Recommender
from core.events import Event
from core.interest import UserState, rebase
from streams.settings import Settings

if TYPE_CHECKING:
    from models.train import TrainConfig


@dataclass(frozen=True)
class Stream:
    """A time-ordered log as integer arrays, plus the events themselves for the product."""

    events: list[Event]
    users: np.ndarray  # (E,) user index
    items: np.ndarray  # (E,) item index into item_ids
    ts: np.ndarray  # (E,) event time, ms
    item_ids: list[str]
    tested: np.ndarray  # (E,) bool: after the warm-up, and the user has an earlier event

    @classmethod
    def of(cls, events: Sequence[Event], warmup: float, catalog: Sequence[str] = ()) -> Stream:
        """``catalog``: item ids to index even if no event names them (a model's items), so
        every list a product policy shows can be written down."""
        if not 0 <= warmup < 1:
            raise ValueError(f"warm-up must be a share in [0, 1), got {warmup}")
        events = sorted(events, key=lambda e: e.ts)  # stable: ties keep log order
        user_index: dict[str, int] = {}
        item_index: dict[str, int] = {item: n for n, item in enumerate(dict.fromkeys(catalog))}
        users = np.array([user_index.setdefault(e.user_id, len(user_index)) for e in events])
        items = np.array([item_index.setdefault(e.item_id, len(item_index)) for e in events])
        _, first = np.unique(users, return_index=True)
        tested = np.arange(len(events)) >= int(warmup * len(events))
        tested[first] = False
        if not tested.any():
            raise ValueError("no event to test: the log needs users with two or more events")
        ts = np.array([e.ts for e in events], dtype=np.int64)
        return cls(list(events), users, items, ts, list(item_index), tested)

    @property
    def n_users(self) -> int:
        return int(self.users.max()) + 1

    @property
    def warmup_events(self) -> list[Event]:
        return self.events[: int(np.argmax(self.tested))] if self.tested.any() else self.events


def positives(events: Sequence[Event], min_rating: float | None) -> list[Event]:
    """Positive-only stream: ratings below ``min_rating`` are dropped (other types kept)."""
    if min_rating is None:
        return list(events)
    return [e for e in events if e.type != "rating" or (e.value or 0.0) >= min_rating]


class ModelVersions:
    """The model the product serves at each point of the stream: trained on the warm-up, then
    a new version from everything before every ``retrain_every`` events (each version is what a
    trainer would publish and a worker hot-swap). Shared by the product policies, fit once."""

    def __init__(
        self,
        fit: Callable[[Sequence[Event]], Recommender],
        stream: Stream,
        retrain_every: int | None = None,
        first: int | None = None,
    ) -> None:
        """``first``: where the first version starts serving; default the end of warm-up."""
        self.fit = fit
        start = int(np.argmax(stream.tested)) if first is None else first
        step = retrain_every or len(stream.events)
        self.starts = list(range(start, len(stream.events), step))
        self._fitted: dict[int, Recommender] = {}
        self.train_seconds = 0.0
        self.stream = stream

    def at(self, start: int) -> Recommender:
        if start not in self._fitted:
            began = time.perf_counter()
            self._fitted[start] = self.fit(self.stream.events[:start])
            self.train_seconds += time.perf_counter() - began
        return self._fitted[start]


class ProductPolicy:
    """The worker's update and scoring code, fed one event at a time in stream order.

    User states only depend on the user's own events and the model is fixed between versions,
    so the lists are scored in batches of tested events without changing any of them. At a new
    model version every state's vector is rebuilt in the new space (:func:`rebase`).
    """

    def __init__(
        self,
        name: str,
        versions: ModelVersions,
        settings: Settings,
        sequence: bool = True,
        batch: int = 1024,
    ) -> None:
        self.name = name
        self.versions = versions
        self.settings = settings
        self.sequence = sequence
        self.batch = batch

    def serving(self, start: int) -> Recommender:
        """The version at ``start``, as this policy blends it."""
        base = self.versions.at(start)
        blend = replace(self.settings.blend, explain=0)
        if not self.sequence:
            blend = replace(blend, sequence_weight=0.0)
        ranker = base.ranker if self.sequence else None
        return Recommender(base.model, base.item_ids, base.version, blend, base.search, ranker)

    def run(self, stream: Stream, k: int) -> np.ndarray:
        from streams.app import apply_user_events  # the worker's own function

        settings = self.settings
        stream_index = {item: n for n, item in enumerate(stream.item_ids)}
        states: dict[str, UserState] = {}
        pending: list[UserState] = []
        out = np.full((int(stream.tested.sum()), k), -1, dtype=np.int64)
        done = 0
        rec = to_stream_item = None

        def flush() -> None:
            nonlocal done
            if not pending:
                return
            recs = rec.top_k(np.stack([s.vector for s in pending]), [s.recent for s in pending], k)
            for rec_row in recs:
                rows = [rec.index[i] for i in rec_row.item_ids]
                out[done, : len(rows)] = to_stream_item[rows]
                done += 1
            pending.clear()

        swaps = set(self.versions.starts)
        for n, event in enumerate(stream.events):
            if n in swaps:
                flush()
                rec = self.serving(n)
                to_stream_item = np.array(
                    [stream_index.get(i, -1) for i in rec.item_ids], dtype=np.int64
                )
                states = {u: rebase(s, rec.item_vector, rec.dim) for u, s in states.items()}
            # before the first version (warm-up) states keep recent items and weights, no vector
            state = states.get(event.user_id) or UserState.empty(rec.dim if rec else 1)
            if stream.tested[n]:
                pending.append(state)
                if len(pending) == self.batch:
                    flush()
            states[event.user_id], _, _ = apply_user_events(
                state, [(event, (0, n))], rec.item_vector if rec else _no_vector, settings
            )
        flush()
        return out


def _no_vector(item_id: str) -> None:
    return None


Policy = StreamingPolicy | ProductPolicy


@dataclass(frozen=True)
class HalfLife:
    """A decay setting to sweep: event-time seconds, or a count of the user's own events."""

    seconds: float = math.inf
    events: float | None = None

    @property
    def label(self) -> str:
        return f"{self.events:g}ev" if self.events is not None else format_half_life(self.seconds)

    @property
    def forgets(self) -> bool:
        return self.events is not None or math.isfinite(self.seconds)

    def applied_to(self, settings: Settings) -> Settings:
        return settings.model_copy(
            update={"half_life_s": self.seconds, "half_life_events": self.events}
        )


def product_policies(
    versions: ModelVersions, settings: Settings, half_lives: Sequence[HalfLife], kind: str
) -> list[ProductPolicy]:
    """The interest vector alone at each half-life (h = inf is the no-decay baseline), and the
    full product (interest + sequence model + ranker) at each one that forgets."""
    policies = [
        ProductPolicy(f"interest h={h.label}", versions, h.applied_to(settings), sequence=False)
        for h in half_lives
    ]
    policies += [
        ProductPolicy(f"interest + {kind} h={h.label}", versions, h.applied_to(settings))
        for h in half_lives
        if h.forgets
    ]
    return policies


BASELINES: dict[str, Callable[[int, int, float, int], StreamingPolicy]] = {
    "popularity": lambda users, items, trending_ms, seed: Popularity(users, items),
    "trending": lambda users, items, trending_ms, seed: Popularity(users, items, trending_ms),
    "item-knn": lambda users, items, trending_ms, seed: ItemKNN(users, items),
    "online-mf": lambda users, items, trending_ms, seed: OnlineMF(users, items, seed=seed),
}


def baselines(
    stream: Stream, names: Sequence[str], trending_half_life_s: float, seed: int = 0
) -> list[StreamingPolicy]:
    """The streaming baselines named (as ``streamrec evaluate --policy`` names them), in the
    order of :data:`BASELINES`; only those are built (item-kNN holds an N x N matrix)."""
    n_users, n_items = stream.n_users, len(stream.item_ids)
    return [
        make(n_users, n_items, trending_half_life_s * 1000.0, seed)
        for name, make in BASELINES.items()
        if name in names
    ]


def format_half_life(seconds: float) -> str:
    if math.isinf(seconds):
        return "inf"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def evaluate(
    stream: Stream,
    policies: Sequence[Policy],
    k: int = 10,
    windows: int = 10,
    on_policy: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """One result row per policy: overall metrics, per-window metrics, and evaluator speed."""
    targets = stream.items[stream.tested]
    test_ts = stream.ts[stream.tested]
    popularity_rank = _popularity_rank(stream.items, len(stream.item_ids))
    bounds = np.linspace(0, len(targets), windows + 1).astype(int)
    results = []
    for policy in policies:
        if on_policy:
            on_policy(policy.name)
        started = time.perf_counter()
        training = 0.0
        if isinstance(policy, ProductPolicy):
            trained_before = policy.versions.train_seconds
            lists = policy.run(stream, k)
            training = policy.versions.train_seconds - trained_before  # the first one trains
        else:
            lists = policy.run(stream.users, stream.items, stream.ts, stream.tested, k)
        seconds = time.perf_counter() - started - training
        gains = _gains(lists, targets)
        shown = lists[lists >= 0]
        results.append(
            {
                "policy": policy.name,
                **{name: float(v.mean()) for name, v in gains.items()},
                "coverage": len(np.unique(shown)) / len(stream.item_ids),
                "novelty": float(popularity_rank[shown].mean()) if len(shown) else 0.0,
                "tested": len(targets),
                "events": len(stream.events),
                "seconds": round(seconds, 2),  # model training excluded
                "train_seconds": round(training, 2),
                "events_per_s": round(len(stream.events) / seconds),
                "windows": [
                    {
                        "start_ts": int(test_ts[a]),
                        "end_ts": int(test_ts[b - 1]),
                        "tested": int(b - a),
                        **{name: float(v[a:b].mean()) for name, v in gains.items()},
                    }
                    for a, b in zip(bounds[:-1], bounds[1:])
                    if b > a
                ],
            }
        )
    return results


def _gains(lists: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
    """Per tested event: hit, NDCG and reciprocal rank of the target in its list."""
    k = lists.shape[1]
    match = lists == targets[:, None]  # (T, K)
    return gains_at(np.where(match.any(axis=1), match.argmax(axis=1), k), k)


def _popularity_rank(items: np.ndarray, n_items: int) -> np.ndarray:
    """Rank of each item by its count over the whole stream, 1 = most consumed."""
    counts = np.bincount(items, minlength=n_items)
    rank = np.empty(n_items, dtype=float)
    rank[np.argsort(-counts, kind="stable")] = np.arange(1, n_items + 1)
    return rank


def trainer(
    settings: Settings,
    config: TrainConfig,
    workdir: Path,
    show_progress: bool = False,
    warm_start: bool = False,
) -> Callable[[Sequence[Event]], Recommender]:
    """A ``fit`` for :class:`ModelVersions`: train on the events so far, load it for serving.
    With ``warm_start`` every version after the first is an :func:`~models.train.update` of
    the one before (so versions must be asked for in stream order, as the policies do)."""
    from models.artifact import load_recommender
    from models.train import train, update

    last = 0  # events the newest version was fitted on; it lives in version_dir(workdir, last)

    def fit(events: Sequence[Event]) -> Recommender:
        nonlocal last
        out = version_dir(workdir, len(events))
        if warm_start and last:
            if len(events) <= last:
                raise ValueError(f"versions out of order: {len(events)} events after {last}")
            update(version_dir(workdir, last), events, settings, config, out)
        else:
            train(events, settings, config, out, show_progress=show_progress)
        last = len(events)
        return load_recommender(out)

    return fit


def version_dir(workdir: Path, n_events: int) -> Path:
    """Where :func:`trainer` keeps the version trained on the first ``n_events``."""
    return workdir / f"after-{n_events}-events"
