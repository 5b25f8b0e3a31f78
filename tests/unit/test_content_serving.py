"""A worker serving new catalog items from their content vectors (streams/worker/serving.py):
projected with the served model's own projection, refused without one or from another encoder,
carried over a swap into the next model's space, and read off the content topic."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from models.content import Content, ContentVectors, Projection, pack_content, unpack_content
from streams.worker.metrics import PipelineStats
from streams.worker.serving import Serving
from streams.worker.topic_readers import read_content
from tests.unit.test_serving import other_space
from tests.unit.step_helpers import recommender

CONTENT_DIM = 3


def with_projection(rec, weights: np.ndarray, encoder: str = "minilm"):
    """``rec`` as a model trained with a catalog: content (3,) -> its space by ``weights``."""
    rec.content = ContentVectors((), np.zeros((0, CONTENT_DIM), np.float32),
                                 Projection(weights.astype(np.float32),
                                            np.zeros(weights.shape[1], np.float32)), encoder)
    return rec


def test_a_new_item_is_scored_from_its_projected_content_vector_and_bad_ones_are_refused():
    served = with_projection(recommender(), np.eye(CONTENT_DIM, 4))
    stats = PipelineStats()
    holder = Serving(served, stats)
    holder.lay_content_vectors({
        "new": Content("minilm", np.array([0.0, 1.0, 0.0], np.float32)),
        "other-encoder": Content("bert", np.array([1.0, 0.0, 0.0], np.float32)),
        "short": Content("minilm", np.array([1.0, 0.0], np.float32)),
        served.item_ids[0]: Content("minilm", np.array([0.0, 0.0, 1.0], np.float32)),
    })
    assert np.allclose(holder.recommender.item_vector("new"), [0, 1, 0, 0])
    assert holder.recommender.item_vector("other-encoder") is None
    assert holder.recommender.item_vector("short") is None
    # a catalog item keeps the vector its interactions gave it
    assert np.allclose(holder.recommender.item_vector(served.item_ids[0]),
                       served.item_vector(served.item_ids[0]))  # fmt: skip
    assert (stats.content_vectors_applied, stats.content_vectors_refused) == (1, 2)


def test_without_a_projection_content_waits_for_a_model_that_has_one():
    stats = PipelineStats()
    holder = Serving(recommender(), stats)  # trained without a catalog
    holder.lay_content_vectors({"new": Content("minilm", np.ones(CONTENT_DIM, np.float32))})
    assert holder.recommender.item_vector("new") is None and stats.content_vectors_refused == 1
    holder.swap(recommender())  # another model without a projection: not refused again
    assert stats.content_vectors_refused == 1
    holder.swap(with_projection(other_space(), 2 * np.eye(CONTENT_DIM, 4)))
    assert np.allclose(holder.recommender.item_vector("new"), [2, 2, 2, 0])


def test_the_content_topic_reader_keeps_each_items_newest_vector_and_counts_bad_records():
    def record(key: bytes, value: bytes | None, encoder: bytes = b"minilm"):
        return SimpleNamespace(key=key, value=value, headers=[("streamrec.encoder", encoder)])

    vector = np.array([0.5, -1.0, 2.0], np.float32)
    read, bad = read_content([
        record(b"a", pack_content(np.zeros(3))), record(b"a", pack_content(vector)),
        record(b"b", b"\x00\x01\x02"), record(b"c", pack_content([np.nan, 0, 0])),
        record(b"d", None)])  # fmt: skip
    assert list(read) == ["a"] and [(r.key, why) for r, why, _ in bad] == [
        (b"b", "bad_content_vector"), (b"c", "bad_content_vector")]
    assert read["a"].encoder == "minilm" and np.array_equal(read["a"].vector, vector)
    with pytest.raises(ValueError):
        unpack_content(b"")
