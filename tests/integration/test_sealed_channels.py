"""Internal topics with a cluster key (issue 32, findings 3 and 4, and authenticity): two
workers with ``internal_key``; records an outside producer writes to the by-item and the item
vectors topics are refused (a frozen position, fake items with long vectors, an update count that
would pin an item), while the workers' own signed records still flow between them."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from core.events import Event, encode_event
from core.generator import GeneratorConfig, generate
from core.item_stats import encode_item_vector
from core.seal import Seal
from models.artifact import load_recommender
from streams.tools.cluster import fetch_json, wait_for, worker_stats
from tests.helpers import consume, produce, two_workers_ready

pytestmark = pytest.mark.integration

KEY = "a cluster key of 16+ characters"
FAKES = [f"fake-{n}" for n in range(10)]


def test_records_without_the_clusters_mac_change_nothing(settings, workers, tmp_path):
    first = settings.model_copy(update={"item_learning": True, "internal_key": KEY})
    _, ports = two_workers_ready(first, workers, tmp_path)
    history = generate(GeneratorConfig(n_users=40, n_items=30, events_per_user=5, seed=3))
    produce(first, [(e.user_id.encode(), encode_event(e)) for e in history])
    wait_for(lambda: sum(worker_stats(p)["item_events_applied"] for p in ports) >= len(history),
             90, "the history counted by item")  # fmt: skip
    # the workers' own records are signed: the vectors they learned reached both
    assert all(worker_stats(p)["item_vectors_applied"] > 0 for p in ports)

    served = load_recommender(first.model_path)
    target = history[0].item_id
    before = fetch_json(f"http://127.0.0.1:{ports[0]}/items/{target}/stats")
    # finding 4: a position far past the topic's end made every later real event a duplicate
    frozen = orjson.dumps({"i": target, "t": "click", "ts": history[-1].ts, "v": None, "p": 0,
                           "o": 2**62, "h": None})  # fmt: skip
    produce(first, [(target.encode(), frozen)], topic=first.item_events_topic)
    produce(first, [(target.encode(), frozen)], topic=first.item_events_topic,
            seal=Seal(b"another cluster's key"))  # fmt: skip
    # finding 3: long vectors for items no one has seen, and an update count that pins an item
    longest = served.vectors[int(np.linalg.norm(served.vectors, axis=1).argmax())]
    fake = (longest * 1.45).astype("<f4").tobytes()  # within the norm bound: only the MAC stops it
    forged = [(item.encode(), encode_item_vector(served.tag, 1, fake)) for item in FAKES]
    forged.append((target.encode(), encode_item_vector(served.tag, 4_000_000_000, fake)))
    produce(first, forged, topic=first.item_vectors_topic)

    def refused(name: str) -> int:
        return min(worker_stats(p)[name] for p in ports)

    # the by-item records by the item path that owns them, the vectors by each worker
    unsigned = 2 + len(ports) * len(forged)
    wait_for(lambda: sum(worker_stats(p)["dead_lettered"].get("bad_mac", 0) for p in ports)
             >= unsigned and refused("item_vectors_refused") >= len(forged), 60,
             "the forged records refused")  # fmt: skip
    dead = consume(first.bootstrap, first.dlq_topic, unsigned, 60)
    vectors = [dict(r.headers) for r in dead
               if dict(r.headers)["streamrec.source"].startswith(first.item_vectors_topic.encode())]
    assert len(vectors) == len(ports) * len(forged)
    assert {h["streamrec.reason"] for h in vectors} == {b"bad_mac"}
    assert len({h["streamrec.refused_by"] for h in vectors}) == len(ports)  # one per worker

    clicks = [Event(f"c{n}", target, "click", history[-1].ts + 1 + n, None, f"c{n}")
              for n in range(5)]  # fmt: skip
    produce(first, [(e.user_id.encode(), encode_event(e)) for e in clicks])
    want = before["positives"] + len(clicks)
    wait_for(lambda: fetch_json(f"http://127.0.0.1:{ports[1]}/items/{target}/stats")
             ["positives"] == want, 60, "the real clicks counted")  # fmt: skip
    for port in ports:
        learned = fetch_json(f"http://127.0.0.1:{port}/items/{target}/vector")
        assert learned["updates"] < 4_000_000_000 and learned["serving"]  # its own, not pinned
    records = consume(first.bootstrap, first.recs_topic, len(history) + len(clicks), 60,
                      isolation="read_committed")  # fmt: skip
    shown = {item["item_id"] for r in records for item in orjson.loads(r.value)["items"]}
    assert not shown & set(FAKES)
    assert sum(worker_stats(p)["dead_lettered"].get("bad_mac", 0) for p in ports) == unsigned
