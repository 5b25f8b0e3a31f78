"""A worker fuses its artifact's item and session neighbours with the model's list, through a real
broker."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from core.events import Event
from core.generator import GeneratorConfig, generate
from models.artifact import load_recommender
from models.blend import Blend
from models.train import TrainConfig, train
from streams.tools.cluster import wait_until_ready
from tests.helpers import consume, event_messages, produce

pytestmark = [pytest.mark.integration]


def planted_model(settings, tmp_path, order: tuple[str, str]):
    """A model of generated users who keep to topics (item i is in topic i % 10), and 40 more
    who each clicked the two items of ``order``, in that order, after them; and its last time."""
    events = generate(GeneratorConfig(n_users=100, n_items=200, events_per_user=20, seed=5))
    end = max(e.ts for e in events)
    planted = [Event(f"p{n}", item, "click", end + 1000 * n + step)
               for n in range(40) for step, item in enumerate(order)]  # fmt: skip
    train([*events, *planted], settings.interest, settings.blend,
          TrainConfig(model="mf", dim=16, epochs=3), tmp_path / "model", show_progress=False)
    return tmp_path / "model", end


def newcomers_record(settings, workers, end: int, weights: dict) -> list[dict]:
    """The items a worker at the neighbour ``weights`` recommends to a newcomer who clicked i1."""
    settings = settings.model_copy(update=weights)
    wait_until_ready(settings.web_port, timeout=90, process=workers(settings))
    produce(settings, event_messages([Event("newcomer", "i1", "click", end + 10**6)]))
    [record] = consume(settings.bootstrap, settings.recs_topic, 1, timeout=60)
    return orjson.loads(record.value)["items"]


def test_a_worker_recommends_what_followed_the_users_newest_item(settings, workers, tmp_path):
    # i150, of another topic, followed i1: a rule the model's vectors do not carry
    model, end = planted_model(settings, tmp_path, ("i1", "i150"))
    alone = load_recommender(model, Blend(sequence_weight=0.0, covisit_weight=0.0,
                                          rules_weight=0.0, sessions_weight=0.0))
    first = alone.top_k(alone.item_vector("i1")[None], [["i1"]], 1)[0].item_ids
    assert first != ["i150"]  # the model alone would not show it first

    items = newcomers_record(settings, workers, end, {
        "model_path": model, "covisit_weight": 0.0, "rules_weight": 8.0, "sessions_weight": 0.0})
    assert items[0]["item_id"] == "i150" and "i1" not in [i["item_id"] for i in items]
    assert np.all(np.diff([i["score"] for i in items]) <= 0)


def test_a_worker_recommends_what_users_alike_had_before_the_newcomers_item(settings, workers,
                                                                            tmp_path):  # fmt: skip
    # i150 came before i1: no rule runs from i1 to i150, but every window holding i1 like the
    # newcomer's also holds i150
    model, end = planted_model(settings, tmp_path, ("i150", "i1"))
    items = newcomers_record(settings, workers, end, {
        "model_path": model, "covisit_weight": 0.0, "rules_weight": 0.0, "sessions_weight": 8.0})
    assert items[0]["item_id"] == "i150" and "i1" not in [i["item_id"] for i in items]
    assert items[0]["because"][0]["item_id"] == "i1"  # the recent item the alike windows share
