"""Online item learning through the broker (issue 17): two workers; an item the artifact never
saw, engaged by users of one topic of the generated data (item i is in topic i % 10), gets a
vector that both workers score with, and then shows up in the records of that topic's other
users far more than in anyone else's."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from core.events import Event, encode_event
from core.generator import GeneratorConfig, generate
from streams.tools.cluster import fetch_json, wait_for, worker_stats
from streams.settings import Settings
from tests.helpers import consume, produce, two_workers_ready

pytestmark = pytest.mark.integration

NEW = "new-item"


def learned_on(port: int) -> dict | None:
    try:
        return fetch_json(f"http://127.0.0.1:{port}/items/{NEW}/vector")
    except OSError:  # 404 until a vector is taken (urllib's HTTPError is an OSError)
        return None


def test_a_new_item_reaches_its_topics_users_through_both_workers(settings, workers, tmp_path):
    defaults = Settings()  # a week's half-life and 50 recent items: interests span topics
    first = settings.model_copy(update={"item_learning": True, "top_k": 10, "history_len": 50,
                                        "half_life_s": defaults.half_life_s})  # fmt: skip
    _, ports = two_workers_ready(first, workers, tmp_path)
    history = generate(GeneratorConfig(n_users=300, n_items=200, events_per_user=30, seed=7))
    produce(first, [(e.user_id.encode(), encode_event(e)) for e in history])
    # a worker busy with a batch may not answer /stats/ in time: None, asked again
    wait_for(lambda: sum((worker_stats(p) or {}).get("applied", 0) for p in ports)
             >= len(history), 90, "the history applied")  # fmt: skip

    recent: dict[str, list[int]] = {}
    for e in history:
        recent.setdefault(e.user_id, []).append(int(e.item_id[1:]) % 10)
    topic = {u: int(np.bincount(t[-10:], minlength=10).argmax()) for u, t in recent.items()}
    cluster = sorted(u for u in topic if topic[u] == 3)
    others = sorted(u for u in topic if topic[u] != 3)[:20]
    engaged, held_out = cluster[:15], cluster[15:]
    assert len(held_out) >= 5, "the generated data has too few users of topic 3"
    end = max(e.ts for e in history)
    produce(first, [(u.encode(), encode_event(Event(u, NEW, "click", end + 1000 + n, None,
                                                    f"new-{u}"))) for n, u in enumerate(engaged)])
    wait_for(lambda: all((v := learned_on(p)) and v["serving"] and v["updates"] >= len(engaged)
                         for p in ports), 60, "the new item's vector on both workers")  # fmt: skip
    assert not any(learned_on(p)["in_artifact"] for p in ports)
    assert all(learned_on(p)["sent_ms"] > 0 for p in ports)  # when it was last learned

    asked = [*held_out, *others]
    # each asks with one more view of an item of their own topic
    produce(first, [(u.encode(), encode_event(Event(u, f"i{50 + topic[u]}", "view", end + 5000 + n,
                                                    None, f"ask-{u}")))
                    for n, u in enumerate(asked)])  # fmt: skip
    records = consume(first.bootstrap, first.recs_topic, 0, 60,
                      done=lambda rs: {orjson.loads(r.value)["trigger"]["event_id"]
                                       for r in rs} >= {f"ask-{u}" for u in asked})  # fmt: skip
    shown = {}
    for r in records:
        value = orjson.loads(r.value)
        if str(value["trigger"]["event_id"]).startswith("ask-"):
            shown[value["user_id"]] = NEW in [i["item_id"] for i in value["items"]]
    share_cluster = np.mean([shown[u] for u in held_out])
    share_others = np.mean([shown[u] for u in others])
    assert share_cluster >= 0.4 and share_cluster >= 1.5 * share_others, (share_cluster, share_others)
    stats = [worker_stats(p) for p in ports]
    assert sum(s["item_vectors_learned"] for s in stats) >= 1
    assert all(s["item_vectors_refused"] == 0 for s in stats)
