"""Per-item statistics through the broker (issue 17): two workers, the events repartitioned by
item; every item's counts, first and last seen times and popularity equal the statistics of its
events applied once, although producer retries repeat some events and the query lands on either
worker; and by-item records no user path wrote are dead letters that stop neither worker."""

from __future__ import annotations

import math
import urllib.error

import orjson
import pytest

from core.events import Event, encode_event
from core.item_stats import ItemStats, apply_item_events
from streams.tools.cluster import fetch_json, wait_for, wait_until_ready, worker_stats
from tests.helpers import another_worker, produce

pytestmark = pytest.mark.integration

TS = 1_700_000_000_000


def events_with_retries() -> tuple[list[Event], list[Event]]:
    """30 users' clicks, views and impressions over 12 items; every 7th event sent twice (a
    producer retry: the same event id). Returns (what is sent, the events without repeats)."""
    kinds = ["click", "impression", "view", "impression", "skip"]
    unique = [Event(f"u{n % 30}", f"i{(n * 7) % 12}", kinds[n % 5], 1_700_000_000_000 + 1000 * n,
                    None, f"e{n}") for n in range(900)]  # fmt: skip
    sent = [e for n, e in enumerate(unique) for _ in range(2 if n % 7 == 0 else 1)]
    return sent, unique


def test_each_items_statistics_count_its_events_once_on_either_worker(settings, workers, tmp_path):
    first = settings
    second = another_worker(first, tmp_path)
    processes = [workers(one) for one in (first, second)]
    for one, process in zip((first, second), processes):
        wait_until_ready(one.web_port, timeout=90, process=process)
    sent, unique = events_with_retries()
    produce(first, [(e.user_id.encode(), encode_event(e)) for e in sent])
    ports = [first.web_port, second.web_port]
    wait_for(lambda: sum(worker_stats(p)["item_events_applied"] for p in ports) >= len(unique),
             90, "every event counted into the item statistics")  # fmt: skip

    half_life_ms = first.popularity_half_life_s * 1000.0
    for item in sorted({e.item_id for e in unique}):
        mine = [e for e in unique if e.item_id == item]
        want, _ = apply_item_events(ItemStats(), [
            (e.type, e.ts, first.interest.weight(e), (0, n), None) for n, e in enumerate(mine)
        ], half_life_ms)  # fmt: skip
        for port in ports:  # routed to the owner from either worker
            got = fetch_json(f"http://127.0.0.1:{port}/items/{item}/stats")
            assert (got["impressions"], got["positives"]) == (want.impressions, want.positives)
            assert (got["first_seen_ts"], got["last_seen_ts"]) == (want.first_ts, want.last_ts)
            assert math.isclose(got["popularity"], want.popularity, rel_tol=1e-9)
            assert got["beta_posterior"]["alpha"] == want.alpha
    assert sum(worker_stats(p)["item_events_applied"] for p in ports) == len(unique)
    assert sum(worker_stats(p)["repeated_ids"] for p in ports) == len(sent) - len(unique)
    with pytest.raises(urllib.error.HTTPError) as missing:
        fetch_json(f"http://127.0.0.1:{first.web_port}/items/never-seen/stats")
    assert missing.value.code == 404

    forged_by_item_records_are_dead_letters(first, ports, processes, tmp_path)


def by_item(item: str = "hot", key: str | None = None, **fields) -> tuple[bytes, bytes]:
    """A by-item record as the user path writes one, with ``fields`` changed."""
    record = {"i": item, "t": "click", "ts": TS, "v": None, "p": 0, "o": 0, "h": None, **fields}
    return (key or item).encode(), orjson.dumps(record)


def forged_by_item_records_are_dead_letters(settings, ports, processes, tmp_path) -> None:
    """By-item records no user path wrote, sent straight to the internal topic (issue 32,
    findings 1, 4 and 5): each is dead-lettered with its reason, counted on /stats/ and logged
    once; the item's statistics stay those of its real events, and no worker stops."""
    # finding 1: positions on events partitions that do not exist (65,536 of them, each kept in
    # the item's state, overflowed its encoding and stopped every worker at every restart)
    forged = [by_item(p=p) for p in range(settings.partitions, settings.partitions + 10)]
    forged.append(by_item(p=70_000))
    # finding 4: a position far past the events topic's end froze the item's statistics
    forged.append(by_item(o=2**62))
    # finding 5: what a user path never sends: another type, a delete, a rating without its
    # value, an item that is not its key
    forged += [by_item(t="nonsense"), by_item(t="delete"), by_item(t="rating"),
               by_item(item="other", key="hot")]  # fmt: skip
    produce(settings, forged, topic=settings.item_events_topic)

    def dead() -> int:
        return sum(worker_stats(p)["dead_lettered"].get("bad_item_event", 0) for p in ports)

    wait_for(lambda: dead() >= len(forged), 60, "the forged records dead-lettered")
    assert dead() == len(forged) and all(p.poll() is None for p in processes)
    with pytest.raises(urllib.error.HTTPError):  # none of them counted
        fetch_json(f"http://127.0.0.1:{ports[0]}/items/hot/stats")

    real = [Event(f"u{n}", "hot", "click", TS + n, None, f"hot-{n}") for n in range(3)]
    produce(settings, [(e.user_id.encode(), encode_event(e)) for e in real])
    item = wait_for(lambda: (got := item_stats_or_none(ports[0], "hot")) and
                    got["positives"] == len(real) and got, 60, "the real events counted")  # fmt: skip
    assert item["positives"] == len(real)
    logs = "".join(path.read_text(errors="replace") for path in tmp_path.glob("worker-*.log"))
    assert logs.count("by-item record dead-lettered") == 1  # logged once for its kind
    assert all(p.poll() is None for p in processes)


def item_stats_or_none(port: int, item: str) -> dict | None:
    try:
        return fetch_json(f"http://127.0.0.1:{port}/items/{item}/stats")
    except urllib.error.HTTPError:
        return None
