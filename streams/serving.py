"""The model a worker scores with, and how an announced one replaces it between micro-batches.

A batch takes :attr:`Serving.active` once, at its start, and uses that model throughout, so a
swap (one attribute assignment on the event loop) never mixes two models in one batch. Loading
and checking a new artifact happens off the loop (:mod:`streams.model_updates` runs it in its
thread): the checksums of every file (``verify_artifact``), the version the announcement names,
and a canary scoring; only a model that passes all three is offered to :meth:`Serving.swap`.
States built in the old model's space are rebased when their user is next touched
(:func:`streams.steps.in_model_space`), reading their recent items with the old catalog, which
the holder keeps.
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


class Serving:
    """The worker's current model, the catalogs of the ones before it, and what was refused."""

    def __init__(self, recommender: Recommender, stats: PipelineStats | None = None) -> None:
        self.active = Active(recommender, ())
        self.stats = stats or PipelineStats()
        self.last_refusal: str | None = None

    @property
    def recommender(self) -> Recommender:
        return self.active.recommender

    def swap(self, recommender: Recommender) -> None:
        """Serve ``recommender`` from the next batch on; runs on the event loop."""
        old = self.active.recommender
        kept = [c for c in (old.codebook, *self.active.older_codebooks)
                if c.fingerprint != recommender.codebook.fingerprint]  # fmt: skip
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
