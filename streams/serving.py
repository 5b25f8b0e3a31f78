"""The model a worker scores with, and how an announced one replaces it between micro-batches.

A batch takes :attr:`Serving.active` once, at its start, and uses that model throughout, so a
swap (one attribute assignment on the event loop) never mixes two models in one batch. Loading
and checking a new artifact happens off the loop (:mod:`streams.model_updates` runs it in its
thread): the checksums of every file (``verify_artifact``), the version the announcement names,
and a canary scoring; only a model that passes all three is offered to :meth:`Serving.swap`.
States built in the old model's space are rebased when their user is next touched
(:func:`streams.steps.in_model_space`), reading their recent items with the old catalog, which
the holder keeps.

With online item learning, vectors the item agents learned (streams/item_vectors.py) are laid
over the artifact's between micro-batches too (:meth:`Serving.learn`): a catalog item's only
while it is in the served model's space, a new item's across versions.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np

from core.codebook import ItemCodebook
from models.artifact import ArtifactError, load_recommender
from models.blend import Blend
from models.scoring import Recommender
from streams.metrics import PipelineStats

log = logging.getLogger(__name__)


class ModelRefused(ValueError):
    """An announced artifact this worker will not serve, and why."""


class Active(NamedTuple):
    """What a batch scores with: the model and the catalogs its states may be written in."""

    recommender: Recommender
    older_codebooks: tuple[ItemCodebook, ...]


class Learned(NamedTuple):
    """An item vector learned online: the model version (tag) whose space it is in, the steps
    that made it, and the vector."""

    model: int
    updates: int
    vector: np.ndarray


class Serving:
    """The worker's current model, the catalogs of the ones before it, and what was refused."""

    def __init__(self, recommender: Recommender, stats: PipelineStats | None = None) -> None:
        self.active = Active(recommender, ())
        self.artifact = recommender  # the served model as loaded, before any learned vector
        self.stats = stats or PipelineStats()
        self.last_refusal: str | None = None
        self.learned: dict[str, Learned] = {}  # item id -> the newest learned vector taken

    @property
    def recommender(self) -> Recommender:
        return self.active.recommender

    def learn(self, vectors: dict[str, Learned]) -> None:
        """Score with these learned item vectors from the next batch on (on the event loop).
        One of another dimension is refused; one in another model's space is kept for when
        that model serves only if the item is new (the artifact has no vector for it)."""
        dim, tag = self.artifact.dim, self.artifact.tag
        usable = {}
        for item, learned in vectors.items():
            if learned.vector.shape != (dim,) or not np.isfinite(learned.vector).all():
                self.stats.item_vectors_refused += 1
                continue
            if learned.model != tag and item in self.artifact.index:
                self.stats.item_vectors_refused += 1  # the trainer's version supersedes it
                continue
            self.learned[item] = learned
            usable[item] = learned.vector
        if usable:
            recommender, older = self.active
            self.active = Active(recommender.with_item_vectors(usable), older)
            self.stats.item_vectors_applied += len(usable)

    def swap(self, recommender: Recommender) -> None:
        """Serve ``recommender`` from the next batch on; runs on the event loop. Learned
        vectors of new items carry over (a version is a warm start of the one before); a
        catalog item's start again from the new artifact's."""
        old = self.active.recommender
        kept = [c for c in (old.codebook, *self.active.older_codebooks)
                if c.fingerprint != recommender.codebook.fingerprint]  # fmt: skip
        self.artifact = recommender
        self.learned = {i: v for i, v in self.learned.items() if i not in recommender.index}
        if self.learned:
            recommender = recommender.with_item_vectors(
                {i: v.vector for i, v in self.learned.items()})  # fmt: skip
        self.active = Active(recommender, tuple({c.fingerprint: c for c in kept}.values()))
        self.stats.model_swaps += 1
        log.warning("now serving model %s (%s), was %s", recommender.version, recommender.kind,
                    old.version)  # fmt: skip

    def refuse(self, version: str, reason: str) -> None:
        self.stats.models_refused += 1
        self.last_refusal = f"{version}: {reason}"
        log.error("refused model %s, still serving %s: %s", version, self.recommender.version,
                  reason)  # fmt: skip


def load_checked(path: Path, version: str, blend: Blend) -> Recommender:
    """The artifact at ``path`` loaded for serving, once its files match its manifest, its
    version is the announced one and it scores a canary user; else :class:`ModelRefused`."""
    try:
        recommender = load_recommender(path, blend)
    except (ArtifactError, OSError, RuntimeError, ValueError, KeyError) as exc:
        raise ModelRefused(f"{type(exc).__name__}: {exc}") from None
    if recommender.version != version:
        raise ModelRefused(f"{path} holds version {recommender.version}, not {version}")
    canary(recommender)
    return recommender


def canary(recommender: Recommender, k: int = 5) -> None:
    """Score one user whose interest is the first item: k finite scores, no recent item back."""
    first = recommender.item_ids[0]
    vector = recommender.item_vector(first)
    if vector is None:
        raise ModelRefused("the catalog's first item has no vector")
    [rec] = recommender.top_k(vector[None, :].astype(np.float32), [[first]], k, [[1.0]])
    wanted = min(k, len(recommender.item_ids) - 1)
    if len(rec.item_ids) != wanted or not np.isfinite(rec.scores).all() or first in rec.item_ids:
        raise ModelRefused(f"canary scoring gave {len(rec.item_ids)} items, scores {rec.scores}")
