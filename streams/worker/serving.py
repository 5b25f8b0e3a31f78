"""The model a worker scores with, and how an announced one replaces it between micro-batches.

A batch takes :attr:`Serving.active` once, at its start, and uses that model throughout, so a
swap (one attribute assignment on the event loop) never mixes two models in one batch. Loading
and checking a new artifact happens off the loop (the model-updates follower of
streams/worker/followers.py runs it in its thread): the checksums of every file
(``verify_artifact``), the version the announcement names, and a canary scoring; only a model
that passes all three is offered to :meth:`Serving.swap`. States built in the old model's space
are rebased when their user is next touched (:func:`streams.steps.users.in_model_space`),
reading their recent items with the old catalog, which the holder keeps.

With online item learning, vectors the item paths learned (followed by
streams/worker/followers.py) are laid over the artifact's between micro-batches too
(:meth:`Serving.lay_learned_vectors`), by :func:`models.item_learning.fits`: a catalog item's
only in the served model's space, a new item's also in the space of a version it was
warm-started from (an announcement's parent).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np

from core.codebook import ItemCodebook
from core.forgetting import Forgetting
from core.interest import InterestConfig
from models.artifact import ArtifactError, forgetting_of, load_recommender, read_config
from models.blend import Blend
from models.content import Content
from models.item_learning import Learned, fits
from models.scoring import Recommender
from streams.worker.metrics import PipelineStats

log = logging.getLogger(__name__)

MAX_NORM_FACTOR = 1.5  # a learned vector may be this much longer than the artifact's longest


class ModelRefused(ValueError):
    """An announced artifact this worker will not serve, and why."""


class Active(NamedTuple):
    """What a batch scores with: the model and the catalogs its states may be written in."""

    recommender: Recommender
    older_codebooks: tuple[ItemCodebook, ...]


class Serving:
    """The worker's current model, the catalogs of the ones before it, and what was refused."""

    def __init__(self, recommender: Recommender, stats: PipelineStats | None = None,
                 ordered_by_updates: bool = True) -> None:  # fmt: skip
        """``ordered_by_updates``: a learned vector with fewer updates than the one held in the
        same model is a stale owner's and refused. Without exactly-once only: there a stale
        owner is fenced, so the topic's order is the truth, and a count cannot be sent that
        pins an item (:meth:`lay_learned_vectors`)."""
        self.ordered_by_updates = ordered_by_updates
        self.active = Active(recommender, ())
        self.artifact = recommender  # the served model as loaded, before any learned vector
        self.lineage: frozenset[int] = frozenset()  # tags of the versions it was warm-started from
        self.stats = stats or PipelineStats()
        self.last_refusal: str | None = None
        self.learned: dict[str, Learned] = {}  # item id -> the newest learned vector heard of
        self.content: dict[str, Content] = {}  # item id -> its content vector, as heard of
        self.bound = longest_vector(recommender)

    @property
    def recommender(self) -> Recommender:
        return self.active.recommender

    def _fits(self, item: str, learned: Learned, artifact: Recommender,
              lineage: frozenset[int]) -> bool:  # fmt: skip
        return fits(item, learned, artifact.index, artifact.dim, artifact.tag, lineage)

    def lay_learned_vectors(self, vectors: dict[str, Learned]) -> dict[str, tuple[str, str]]:
        """Score with these learned item vectors from the next batch on (on the event loop).
        Every readable one is kept, for a later version it fits; refused (counted, and returned
        by item with why) are one that is not finite, longer than the catalog's longest vector
        allows (``MAX_NORM_FACTOR`` x, as the learner clips to it) or of another dimension than
        the served model's, and, ``ordered_by_updates``, one older than the vector held for the
        item in the same model (fewer updates: a stale owner's)."""
        bound = MAX_NORM_FACTOR * self.bound
        take, refused = {}, {}
        for item, learned in vectors.items():
            norm = float(np.linalg.norm(learned.vector))
            held = self.learned.get(item)
            why = None
            if not (math.isfinite(norm) and norm <= bound):
                why = f"norm {norm:.4g} not finite or above the bound {bound:.4g}"
            elif learned.vector.shape != (self.artifact.dim,):
                why = f"dimension {learned.vector.shape} is not the model's {self.artifact.dim}"
            elif (self.ordered_by_updates and held is not None and held.model == learned.model
                  and learned.updates < held.updates):  # fmt: skip
                why = f"{learned.updates} updates, older than the {held.updates} held"
            if why is not None:
                self.stats.item_vectors_refused += 1
                refused[item] = ("refused_item_vector", why)
                continue
            self.learned[item] = learned
            if self._fits(item, learned, self.artifact, self.lineage):
                take[item] = learned.vector
        if take:
            recommender, older = self.active
            self.active = Active(recommender.with_item_vectors(take), older)
            self.stats.item_vectors_applied += len(take)
        return refused

    def lay_content_vectors(self, content: dict[str, Content]) -> None:
        """Score the catalog items the served model does not know from their content vectors
        (written by ``streamrec catalog``), projected into its space, from the next batch on
        (on the event loop). Every one is kept, for a later version with a projection; refused
        (and counted) while the model has none, or when another encoder than the model's made
        it. A learned vector of the item, once there is one, is laid over it."""
        self.content.update(content)
        take = self._projected(content, self.artifact)
        if take:
            recommender, older = self.active
            self.active = Active(recommender.with_item_vectors(take), older)
            self.stats.content_vectors_applied += len(take)

    def _projected(self, content: dict[str, Content], artifact: Recommender,
                   count: bool = True) -> dict[str, np.ndarray]:  # fmt: skip
        """``content``'s vectors of items ``artifact`` does not know, in its space; ``count``
        the ones it cannot take as refused (once, as they are heard of)."""
        fitted = artifact.content
        new = {item: c.vector for item, c in content.items()
               if item not in artifact.index and item not in self.learned}  # fmt: skip
        fits = {item: vector for item, vector in new.items() if fitted is not None
                and content[item].encoder == fitted.encoder
                and len(vector) == fitted.projection.weights.shape[0]}  # fmt: skip
        if count:
            self.stats.content_vectors_refused += len(new) - len(fits)
        if not fits:
            return {}
        return dict(zip(fits, fitted.projection(np.stack(list(fits.values())))))

    def swap(self, recommender: Recommender, parent: str | None = None) -> None:
        """Serve ``recommender`` from the next batch on; runs on the event loop. Learned
        vectors that fit it are laid over it: a new item's carry over when the announcement
        names the version served now as its ``parent`` (a warm start); a catalog item's wait
        for vectors learned in the new model's space."""
        old = self.active.recommender
        kept = [c for c in (old.codebook, *self.active.older_codebooks)
                if c.fingerprint != recommender.codebook.fingerprint]  # fmt: skip
        lineage = frozenset({self.artifact.tag, *self.lineage}) \
            if parent is not None and parent == self.artifact.version else frozenset()  # fmt: skip
        overlay = self._projected(self.content, recommender, count=False) if self.content else {}
        overlay.update({i: v.vector for i, v in self.learned.items()
                        if self._fits(i, v, recommender, lineage)})  # fmt: skip
        served = recommender.with_item_vectors(overlay) if overlay else recommender
        self.artifact, self.lineage = recommender, lineage
        self.bound = longest_vector(recommender)
        self.active = Active(served, tuple({c.fingerprint: c for c in kept}.values()))
        self.stats.swapped(recommender.version, recommender.kind, old.version)
        log.warning("now serving model %s (%s), was %s", recommender.version, recommender.kind,
                    old.version)  # fmt: skip

    def refuse(self, version: str, reason: str) -> None:
        self.stats.models_refused += 1
        self.last_refusal = f"{version}: {reason}"
        log.error("refused model %s, still serving %s: %s", version, self.recommender.version,
                  reason)  # fmt: skip


def longest_vector(recommender: Recommender) -> float:
    vectors = recommender.vectors
    return float(np.linalg.norm(vectors, axis=1).max()) if len(vectors) else 0.0


def load_checked(path: Path, version: str, blend: Blend, interest: InterestConfig) -> Recommender:
    """The artifact at ``path`` loaded for serving, once its files match its manifest, its
    version is the announced one and it scores a canary user; else :class:`ModelRefused`."""
    try:
        recommender = load_recommender(path, blend)
    except (ArtifactError, OSError, RuntimeError, ValueError, KeyError) as exc:
        raise ModelRefused(f"{type(exc).__name__}: {exc}") from None
    if recommender.version != version:
        raise ModelRefused(f"{path} holds version {recommender.version}, not {version}")
    canary(recommender)
    note_unserved_forgetting(path, recommender.version, interest)
    return recommender


def note_unserved_forgetting(path: Path, version: str, interest: InterestConfig) -> None:
    """Log when the artifact recommends another forgetting function than the one this worker
    applies, the exponential decay of ``interest`` (``STREAMREC_HALF_LIFE_*``): the only function
    its lazy one-vector state computes exactly (models/artifact.py). A bad entry is logged too;
    it does not stop a model that loads and scores."""
    try:
        wanted = forgetting_of(read_config(path), interest)
    except ArtifactError as exc:
        log.warning("model %s: %s; this worker keeps its exponential decay", version, exc)
        return
    served = Forgetting.exponential(interest.half_life_ms, interest.half_life_events)
    if wanted != served:
        log.warning("model %s recommends forgetting %s; this worker serves %s "
                    "(STREAMREC_HALF_LIFE_*)", version, wanted.label, served.label)  # fmt: skip
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
