"""By-item records no user path wrote (issue 32, findings 1 and 5), sent straight to the internal
topic of a running worker: each is dead-lettered with its reason, counted on /stats/ and logged
once, the item's statistics stay those of its real events, and the worker keeps serving."""

from __future__ import annotations

import orjson
import pytest

from core.events import Event, encode_event
from streams.tools.cluster import fetch_json, wait_for, wait_until_ready, worker_stats
from tests.helpers import consume, produce

pytestmark = pytest.mark.integration

TS = 1_700_000_000_000


def by_item(item: str = "hot", key: str | None = None, **fields) -> tuple[bytes, bytes]:
    """A by-item record as the user path writes one, with ``fields`` changed."""
    record = {"i": item, "t": "click", "ts": TS, "v": None, "p": 0, "o": 0, "h": None, **fields}
    return (key or item).encode(), orjson.dumps(record)


def test_forged_by_item_records_are_dead_letters_and_stop_no_worker(settings, workers, tmp_path):
    worker = workers(settings)
    wait_until_ready(settings.web_port, timeout=90, process=worker)
    port = settings.web_port
    # finding 1: positions on events partitions that do not exist (65,536 of them, each kept in
    # the item's state, overflowed its encoding and stopped every worker at every restart)
    forged = [by_item(p=p) for p in range(settings.partitions, settings.partitions + 10)]
    forged.append(by_item(p=70_000))
    # finding 5: what a user path never sends: another type, a delete, a rating without its
    # value, an item that is not its key
    forged += [by_item(t="nonsense"), by_item(t="delete"), by_item(t="rating"),
               by_item(item="other", key="hot")]  # fmt: skip
    produce(settings, forged, topic=settings.item_events_topic)
    stats = wait_for(lambda: (s := worker_stats(port))["dead_lettered"].get("bad_item_event", 0)
                     >= len(forged) and s, 60, "the forged records dead-lettered")  # fmt: skip
    assert stats["dead_lettered"] == {"bad_item_event": len(forged)}
    assert stats["item_events_applied"] == 0 and worker.poll() is None

    # the worker goes on: real events of the item count, and get their records
    real = [Event(f"u{n}", "hot", "click", TS + n, None, f"e{n}") for n in range(3)]
    produce(settings, [(e.user_id.encode(), encode_event(e)) for e in real])
    consume(settings.bootstrap, settings.recs_topic, len(real), timeout=60)
    wait_for(lambda: worker_stats(port)["item_events_applied"] == len(real), 60, "real events counted")
    item = fetch_json(f"http://127.0.0.1:{port}/items/hot/stats")
    assert item["positives"] == len(real)
    log = (tmp_path / "worker-0.log").read_text(errors="replace")
    assert log.count("by-item record dead-lettered") == 1  # logged once for its kind
    assert worker.poll() is None
