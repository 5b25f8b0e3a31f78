"""Content neighbours: for each item, the catalog items whose text is most like it, weighed by
how few events each has, so content speaks where interactions cannot yet.

Content alone ranks far below the interaction policies overall but finds the items no
interaction policy ranks (docs/evaluation.md, "Content vectors"), and a weight shared by every
candidate learns what pays on the many events of known items. So a neighbour's similarity is
crossed with its coldness at the version, ``1 / (1 + positives)``: an item nobody has engaged
with keeps its full similarity, one with many events almost none, and the fusion's fitted
content weight (models/fusion_fit.py) decides how far that reaches into a list. Rows are over the
served catalog: the model's items, then the catalog's items it lacks, in the catalog's order
(:func:`served_ids`, the order a worker appends them in).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from models.content import ContentVectors
from models.neighbours import Rows, strongest

CONTENT_KEEP = 20  # content neighbours kept per item
CELLS = 1 << 22  # similarities computed at a time (rows x catalog), a few tens of MB each


def served_ids(item_ids: Sequence[str], content: ContentVectors | None) -> list[str]:
    """The served catalog: the model's ``item_ids``, then ``content``'s items it lacks, in the
    catalog's order (models/artifact.py ``load_recommender`` appends them so)."""
    if content is None:
        return list(item_ids)
    known = set(item_ids)
    extra = dict.fromkeys(i for i in content.item_ids if i not in known)
    return [*item_ids, *extra]


def content_rows(
    content: ContentVectors, served: Sequence[str], positives: np.ndarray,
    keep: int = CONTENT_KEEP,
) -> Rows:
    """Each ``served`` item's ``keep`` strongest content neighbours: cosine similarity of the
    two items' content vectors (positive only) times ``1 / (1 + positives[j])``, the
    neighbour's positives at the version (0 past ``positives``' end: no events). An item
    without a content vector has none and is no one's."""
    row_of = {item: n for n, item in enumerate(content.item_ids)}
    rows = np.array([row_of.get(item, -1) for item in served], dtype=np.int64)
    has = np.flatnonzero(rows >= 0)
    vectors = np.asarray(content.content, np.float32)[rows[has]]
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    counts = np.zeros(len(served))
    counts[: min(len(positives), len(served))] = positives[: len(served)]
    cold = (1.0 / (1.0 + counts[has])).astype(np.float32)
    keep = min(keep, max(0, len(has) - 1))
    keys, weights = [], []
    rows_at_once = max(1, CELLS // max(1, len(has)))
    for start in range(0, len(has), rows_at_once) if keep else ():
        block = vectors[start:start + rows_at_once] @ vectors.T * cold  # (b, M)
        block[np.arange(len(block)), start + np.arange(len(block))] = -np.inf  # not itself
        top = np.argpartition(-block, keep - 1, axis=1)[:, :keep]
        got = np.take_along_axis(block, top, 1)
        kept = got > 0
        source = np.repeat(has[start:start + len(block)], kept.sum(axis=1))
        keys.append(source * len(served) + has[top[kept]])
        weights.append(got[kept].astype(np.float64))
    return strongest(keys, weights, len(served), keep)  # by row, strongest first
