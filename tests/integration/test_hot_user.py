"""A hot user sliced (issue 32 #6): with ``user_slice``, one user's burst is worked off in slices
while other users' events go ahead of it, and nothing is lost or counted twice: every event's
record once (read_committed), every state and item statistic equal to a reference, also after
a SIGKILL in the middle of the backlog."""

from __future__ import annotations

import os
import signal
from collections import Counter

import orjson
import pytest

from core.events import Event
from core.item_stats import ItemStats, apply_item_events
from streams.tools.cluster import fetch_json, wait_for, wait_until_ready, worker_stats
from tests.helpers import assert_each_event_applied_once, consume, event_messages, folded_state
from tests.helpers import produce
from tests.integration.test_forgetting import delete_request, known

pytestmark = pytest.mark.integration

TS = 1_700_000_000_000
KINDS = ("click", "view", "impression", "cart")


def burst_then_others(hot: int, others: int) -> list[Event]:
    """``hot`` events of one user, then five each of ``others`` users, over 40 items."""
    burst = [Event("hot", f"i{n % 40}", KINDS[n % 4], TS + n, None, f"hot-{n}")
             for n in range(hot)]  # fmt: skip
    rest = [Event(f"u{u}", f"i{(u * 7 + k) % 40}", KINDS[k % 4], TS + hot + 10 * u + k, None,
                  f"u{u}-{k}") for u in range(others) for k in range(5)]  # fmt: skip
    return burst + rest


def records_once(settings, events: list[Event]) -> list:
    """The records of ``events`` (an impression gets none), each once, read_committed."""
    wanted = {e.event_id for e in events if e.type != "impression"}
    records = consume(settings.bootstrap, settings.recs_topic, len(wanted), timeout=90,
                      done=lambda rs: wanted <= {orjson.loads(r.value)["trigger"]["event_id"]
                                                 for r in rs}, isolation="read_committed")  # fmt: skip
    triggers = Counter(orjson.loads(r.value)["trigger"]["event_id"] for r in records)
    assert max(triggers.values()) == 1 and len(records) == len(wanted), "a record twice"
    return records


def assert_item_statistics_exact(settings, events: list[Event]) -> None:
    """Each item's counts reach the reference's, then must equal it (a count past it would be
    an event counted twice)."""
    half_life_ms = settings.popularity_half_life_s * 1000.0
    want = {}
    for item in sorted({e.item_id for e in events}):
        mine = [e for e in events if e.item_id == item]
        stats, _ = apply_item_events(ItemStats(), [
            (e.type, e.ts, settings.interest.weight(e), (0, n), None) for n, e in enumerate(mine)
        ], half_life_ms)  # fmt: skip
        want[item] = (stats.impressions, stats.positives)

    def counted() -> dict:
        got = {}
        for item in want:
            stats = fetch_json(f"http://127.0.0.1:{settings.web_port}/items/{item}/stats")
            got[item] = (stats["impressions"], stats["positives"])
        return got

    wait_for(lambda: all(g >= w for g, w in zip(counted().values(), want.values())), 90,
             "every event counted by item")  # fmt: skip
    assert counted() == want


def sliced(settings):
    if settings.processing_guarantee != "exactly_once":
        pytest.skip("slices need transactions")
    return settings.model_copy(update={"user_slice": 10, "partitions": 1})


def kill_when(settings, workers, messages: list, events: int, condition, what: str) -> None:
    """Start a worker, send ``messages``, SIGKILL it once its stats meet ``condition`` while
    part of the ``events`` is still to apply (the burst held back), and start another."""
    first = workers(settings)
    wait_until_ready(settings.web_port, timeout=90, process=first)
    produce(settings, messages)
    at_kill = wait_for(lambda: (s := worker_stats(settings.web_port)) and condition(s) and s,
                       90, what)  # fmt: skip
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    assert at_kill["applied"] < events, "the kill must land while the burst is held back"
    wait_until_ready(settings.web_port, timeout=90, process=workers(settings))


def test_other_users_go_ahead_of_a_hot_users_burst_and_every_count_is_exact(settings, workers):
    settings = sliced(settings)
    events = burst_then_others(600, 30)
    wait_until_ready(settings.web_port, timeout=90, process=workers(settings))
    produce(settings, event_messages(events))
    records = records_once(settings, events)
    order = [orjson.loads(r.value)["user_id"] for r in records]  # one partition: commit order
    last_hot = len(order) - 1 - order[::-1].index("hot")
    assert order.index("u0") < last_hot, "no other user's record came before the burst ended"
    assert_each_event_applied_once(settings.web_port, [e for e in events if e.type != "impression"])
    hot = [e for e in events if e.user_id == "hot"]
    state = fetch_json(f"http://127.0.0.1:{settings.web_port}/users/hot/interest")
    assert state["vector"] == folded_state(hot, settings.model_path, settings)
    assert_item_statistics_exact(settings, events)


def test_a_kill_in_the_middle_of_a_held_back_burst_loses_and_repeats_nothing(settings, workers):
    settings = sliced(settings)
    events = burst_then_others(3000, 40)
    kill_when(settings, workers, event_messages(events), len(events),
              lambda s: s["applied"] >= 400, "part of the burst applied")  # fmt: skip
    records_once(settings, events)
    assert_each_event_applied_once(settings.web_port, [e for e in events if e.type != "impression"])
    assert_item_statistics_exact(settings, events)


def test_a_kill_while_held_back_applies_nothing_twice_for_a_user_deleted_since(settings, workers):
    """Review of issue 32 #6: the commit stays at the hot user's first held record while a user
    behind it goes ahead and is deleted; the worker reading again from that commit has no stored
    position of that user to skip by. The note committed with the offset says what went ahead."""
    settings = sliced(settings)
    events = burst_then_others(3000, 20)
    gone = [Event("gone", f"i{k}", "click", TS + 5_000_000 + k, None, f"gone-{k}")
            for k in range(5)]  # fmt: skip
    kill_when(settings, workers, event_messages(events + gone) + [
        delete_request("gone", TS + 6_000_000)], len(events),
        lambda s: s["users_deleted"] >= 1, "the user behind the burst deleted")  # fmt: skip
    records_once(settings, events + gone)
    assert_each_event_applied_once(settings.web_port, [e for e in events if e.type != "impression"])
    assert not known(settings, "gone"), "the deleted user came back"
    assert_item_statistics_exact(settings, events + gone)
