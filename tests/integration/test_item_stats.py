"""Per-item statistics through the broker (issue 17): two workers, the events repartitioned by
item; every item's counts, first and last seen times and popularity equal the statistics of its
events applied once, although producer retries repeat some events and the query lands on either
worker."""

from __future__ import annotations

import math
import urllib.error

import pytest

from core.events import Event, encode_event
from core.item_stats import ItemStats, apply_item_events
from streams.tools.broker import free_port
from streams.tools.cluster import fetch_json, wait_for, wait_until_ready, worker_stats
from tests.helpers import produce

pytestmark = pytest.mark.integration


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
    second = first.model_copy(update={"web_port": free_port(), "state_dir": tmp_path / "state-2"})
    for one in (first, second):
        wait_until_ready(one.web_port, timeout=90, process=workers(one))
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
