"""Item neighbours a worker serves beside the model: co-visits and sequential rules.

Off MovieLens the cheap neighbourhood methods beat the interest vector (docs/evaluation.md):
items seen near each other in users' streams (item-kNN's co-occurrence) and items that followed
an item (sequential rules, Ludewig & Jannach 2018). Both come from the trainer, with every
model version, over the newest ``events`` positives it trains on, so a worker gets them by the
same verified, hot-swapped artifact as the model and keeps no pair counts of its own; between
versions they are as fresh as the model is.

- **co-visits**: each positive adds 1 to the pair it makes with each of the user's ``window``
  items before it, in both directions (models/baselines.py ``ItemKNN``).
- **rules**: each positive adds ``1 - 0.1 b`` to the rule from the item ``b`` steps before it,
  ``b`` < 10 (models/sequential_rules.py).
- **content** (with an item catalog): the items most alike in text, weighed by how few events
  each has (models/content_neighbours.py), so content speaks for what interactions cannot yet.
- **sessions**: the users' last items as of the version, so that a worker scores a user's
  window by the windows most like it, V-SKNN's way (models/session_neighbours.py).

Each item keeps its ``keep`` strongest of each, by weight (ties: the lower index), as rows of a
sparse matrix over the artifact's items. :func:`models.fusion.fuse` ranks a user's candidates
(models/candidates.py): the model's list by its rank, plus the co-visits of the user's last
``window`` items, the rules out of their newest item, the content neighbours of their last
``CONTENT_WINDOW`` and the votes of the sessions most like their window, each normalised by the user's best, summed with the blend's weights or those
fitted for the version (models/fusion_fit.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from models.csr import indptr, positions
from models.session_neighbours import Sessions

NEIGHBOURS_FILE = "neighbours.npz"
WINDOW = 20  # item-kNN's window: the user's items a co-visit is counted with, and scored from
RULE_STEPS = 9  # sequential rules reach this many steps back (weight 1 - 0.1 b, zero at 10)
RULES_SHOWN = 20  # the strongest rules out of the newest item that score (SR's pruning)
CONTENT_WINDOW = 5  # the user's recent items whose content neighbours score (content-knn's)
NEIGHBOUR_POOL = 50  # the model's candidates fused with the neighbours
KINDS = ("covisits", "rules", "content", "sessions")  # the kinds of neighbours, in weight order
# the artifact config's names of the fusion weights, one per kind, in KINDS order
FUSION_WEIGHTS = ("covisit_weight", "rules_weight", "content_weight", "sessions_weight")


@dataclass(frozen=True)
class Rows:
    """A sparse (N, N) matrix by rows: row i's targets and weights, strongest first."""

    indptr: np.ndarray  # (N + 1,) int64
    targets: np.ndarray  # (nnz,) int32
    weights: np.ndarray  # (nnz,) float32

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        start, end = self.indptr[i], self.indptr[i + 1]
        return self.targets[start:end], self.weights[start:end]


@dataclass(frozen=True)
class Neighbours:
    """Each item's strongest co-visits and rules (and content neighbours, with a catalog), over
    the item ids of the artifact, then its catalog items without interactions, in the catalog's
    order (models/artifact.py ``load_recommender`` serves them in that order)."""

    n_items: int
    covisits: Rows
    rules: Rows
    live: Neighbours | None = None  # counted since the version (models/live_neighbours.py)
    content: Rows | None = None
    counted: int | None = None  # the items the counts cover (the model's); None: all n_items
    sessions: Sessions | None = None  # the users' last items as of the version

    @property
    def covered(self) -> int:
        """Items before this have co-visits and rules counted; those after (the catalog's
        items without interactions) only content rows, so the model's rank speaks for them."""
        return self.n_items if self.counted is None else self.counted

    def kinds(self) -> list[str]:
        """The kinds these neighbours have, in ``KINDS`` order (co-visits and rules always)."""
        return [kind for kind in KINDS if getattr(self, kind) is not None]

    def weighing(self, weights: Sequence[float]) -> Neighbours:
        """These neighbours without the optional kinds that weigh 0 at ``weights`` (one per
        kind, ``KINDS`` order), so that serving never expands what cannot score."""
        dropped = {kind: None for kind, weight in zip(KINDS, weights)
                   if kind in ("content", "sessions") and not weight}  # fmt: skip
        return replace(self, **dropped) if dropped else self

    def with_live(self, live: Neighbours) -> Neighbours:
        """These rows with ``live``'s laid on them, over its catalog (which extends this one:
        the items after ours have empty rows here): a pair's weight is the sum of the two. The
        catalog's items without interactions stay uncovered (their live counts can still lift
        them); without such items, every item of ``live``'s catalog is covered."""
        if live.n_items < self.n_items:
            raise ValueError(f"live neighbours over {live.n_items} items, not {self.n_items}+")
        extra = live.n_items - self.n_items
        covisits, rules, content = (r if r is None else padded(r, extra)
                                    for r in (self.covisits, self.rules, self.content))  # fmt: skip
        return Neighbours(live.n_items, covisits, rules, live, content, self.counted, self.sessions)

    def expand(self, name: str, owner: np.ndarray, sources: np.ndarray, most: int | None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
        """:func:`expanded` over the ``name`` rows ("covisits", "rules" or "content"), and the
        live layer's too: a pair in both is two entries, which the callers sum (``most`` bounds
        each layer's row on its own); for "sessions", the neighbours' votes (``sources``: each
        owner's recent items, oldest first)."""
        if name == "sessions":
            return self.sessions.expand(owner, sources)
        parts = [expanded(getattr(self, name), owner, sources, most)]
        if self.live is not None and getattr(self.live, name) is not None:
            parts.append(expanded(getattr(self.live, name), owner, sources, most))
        return tuple(np.concatenate(p) for p in zip(*parts)) if len(parts) > 1 else parts[0]

    def save(self, path: Path) -> None:
        with path.open("wb") as f:  # np.savez would add ".npz" to a name without it
            np.savez(f, n_items=np.int64(self.n_items), counted=np.int64(self.covered),
                     **{f"{name}_{part}": getattr(getattr(self, name), part)
                        for name in self.kinds() if name != "sessions"
                        for part in ("indptr", "targets", "weights")},
                     **(self.sessions.arrays() if self.sessions is not None else {}))  # fmt: skip

    @classmethod
    def load(cls, path: Path, n_items: Sequence[int] | None = None) -> Neighbours:
        """The neighbours at ``path``; ValueError unless they are a matrix (over one of
        ``n_items``, the catalogs they may serve, when given)."""
        with np.load(path, allow_pickle=False) as f:
            n = int(f["n_items"])
            counted = int(f["counted"]) if "counted" in f else n
            kinds = ["covisits", "rules"] + (["content"] if "content_indptr" in f else [])
            rows = {name: Rows(f[f"{name}_indptr"], f[f"{name}_targets"], f[f"{name}_weights"])
                    for name in kinds}  # fmt: skip
            sessions = Sessions.from_arrays(f)
        for name, r in rows.items():
            if (len(r.indptr) != n + 1 or r.indptr[-1] != len(r.targets)
                    or len(r.targets) != len(r.weights)
                    or (len(r.targets) and (r.targets.min() < 0 or r.targets.max() >= n))
                    or not np.isfinite(r.weights).all()):  # fmt: skip
                raise ValueError(f"{path}: {name} is not a matrix over {n} items")
        if n_items is not None and n not in n_items:
            raise ValueError(f"neighbours over {n} items, not {' or '.join(map(str, n_items))}")
        if not 0 <= counted <= n:
            raise ValueError(f"{path}: counts over {counted} of {n} items")
        if sessions is not None and len(sessions.item_events) != counted:
            raise ValueError(f"{path}: sessions over {len(sessions.item_events)} items, not "
                             f"{counted}")
        return cls(n, rows["covisits"], rows["rules"], content=rows.get("content"),
                   counted=counted if counted < n else None, sessions=sessions)


def padded(rows: Rows, extra: int) -> Rows:
    """``rows`` with ``extra`` empty rows after them (items they do not cover)."""
    return Rows(np.concatenate([rows.indptr, np.full(extra, rows.indptr[-1])]), rows.targets,
                rows.weights)  # fmt: skip


def build(
    items: Sequence[np.ndarray], times: Sequence[np.ndarray], n_items: int,
    keep: int = 100, events: int = 200_000, content: Rows | None = None,
) -> Neighbours:
    """Count co-visits and rules over each user's item sequence (indices in time order, with
    their times), counting only pairs whose later event is among the newest ``events`` of all
    users (its earlier items may be older: they are its context). ``content``: the content
    neighbours (models/content_neighbours.py), over these items and the catalog's after them."""
    lengths = np.array([len(s) for s in items], dtype=np.int64)
    flat = np.concatenate(list(items)).astype(np.int64) if len(items) else np.zeros(0, np.int64)
    when = np.concatenate(list(times)) if len(times) else np.zeros(0, np.int64)
    user = np.repeat(np.arange(len(items)), lengths)
    newest = np.zeros(len(flat), dtype=bool)
    if len(flat) and events > 0:
        order = np.argsort(when, kind="stable")
        newest[order[-events:]] = True
    covisit_keys, covisit_weights, rule_keys, rule_weights = [], [], [], []
    for back in range(1, WINDOW + 1):
        earlier, later = flat[:-back], flat[back:]
        valid = (user[:-back] == user[back:]) & (earlier != later) & newest[back:]
        a, b = earlier[valid], later[valid]
        covisit_keys += [a * n_items + b, b * n_items + a]
        covisit_weights.append(np.ones(2 * len(a), dtype=np.float64))
        if back <= RULE_STEPS:
            rule_keys.append(a * n_items + b)
            rule_weights.append(np.full(len(a), 1.0 - 0.1 * back))
    sessions = Sessions.build(items, times, n_items)
    counted = Neighbours(n_items, strongest(covisit_keys, covisit_weights, n_items, keep),
                         strongest(rule_keys, rule_weights, n_items, keep), sessions=sessions)
    if content is None:
        return counted
    extra = len(content.indptr) - 1 - n_items
    return Neighbours(n_items + extra, padded(counted.covisits, extra),
                      padded(counted.rules, extra), content=content,
                      counted=n_items if extra else None, sessions=sessions)  # fmt: skip


def strongest(keys: list[np.ndarray], weights: list[np.ndarray], n: int, keep: int) -> Rows:
    keys_all = np.concatenate(keys) if keys else np.zeros(0, np.int64)
    unique, inverse = np.unique(keys_all, return_inverse=True)
    summed = np.bincount(inverse, np.concatenate(weights) if weights else None, len(unique))
    source, target = np.divmod(unique, n)
    order = np.lexsort((target, -summed, source))  # by row, strongest first, ties: lower index
    source, target, summed = source[order], target[order], summed[order]
    place = np.arange(len(source)) - np.searchsorted(source, source)
    kept = place < keep
    source, target, summed = source[kept], target[kept], summed[kept]
    return Rows(indptr(source, n), target.astype(np.int32), summed.astype(np.float32))


def expanded(matrix: Rows, owner: np.ndarray, sources: np.ndarray, most: int | None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """(owner, target, weight, source) of every entry of the ``sources``' rows (``most``: each
    row's first), each source its ``owner``'s."""
    starts = matrix.indptr[sources]
    lengths = matrix.indptr[sources + 1] - starts
    if most is not None:
        lengths = np.minimum(lengths, most)
    at = positions(starts, lengths)
    return (np.repeat(owner, lengths), matrix.targets[at].astype(np.int64),
            matrix.weights[at].astype(np.float64), np.repeat(sources, lengths))  # fmt: skip
