"""After the soak: every user's state against an uninterrupted reference, every hostile message
against its expected dead letter, every valid event against its record.

The reference is tests/helpers.reference_state, the closed form the reliability tests already
check workers against, computed in plain floats from the events topic as the broker stored it.
It stays a test oracle (not a core module) on purpose: its worth is that it shares no code with
core.interest, so the soak imports it rather than a second copy.
"""

from __future__ import annotations

import itertools
import time
import urllib.error
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from kafka.consumer.fetcher import ConsumerRecord

from soak_hostile import EXPECTED_REASON
from soak_read import Position, Stored, dead_letter_of, trigger_of
from streams.tools.cluster import WorkerError, fetch_json, wait_for
from streams.settings import Settings
from tests.helpers import reference_state
from tests.unit.grid import within_snaps

MAX_EXAMPLES = 5  # mismatching users shown in the report


@dataclass(frozen=True)
class Expected:
    """A user's reference: retries skipped (dedupe by event_id), and retries applied too."""

    deduped: dict
    with_retries: dict | None  # None when the user has no retries


def expected_states(stored: Stored, vectors: dict[str, list[float]], settings: Settings,
                    dim: int) -> dict[str, Expected]:
    """Each user's reference, from the events topic as stored (arrival order is offset
    order: a user's events share a partition)."""
    expected = {}
    for user, events in stored.valid.items():
        retries = stored.retries.get(user, [])
        with_retries = None
        if retries:
            everything = sorted([*events, *retries], key=lambda pair: pair[1])
            with_retries = reference_state([e for e, _ in everything], vectors, settings, dim)
        expected[user] = Expected(
            reference_state([e for e, _ in events], vectors, settings, dim), with_retries
        )
    return expected


def fetch_states(users: list[str], ports: list[int]) -> dict[str, dict | str | None]:
    """Each user's /users/<id>/interest, asking the workers in turn (any one routes the query
    to the owner of the user's partition): the state, None for a user no worker knows (404),
    or why it could not be read."""
    states: dict[str, dict | str | None] = {}
    for user, port in zip(users, itertools.cycle(ports)):
        try:
            states[user] = fetch_json(f"http://127.0.0.1:{port}/users/{user}/interest", 10.0)
        except urllib.error.HTTPError as exc:
            states[user] = None if exc.code == 404 else f"HTTP {exc.code} from :{port}"
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError) as exc:
            states[user] = f"{type(exc).__name__} from :{port}: {exc}"
    return states


def wait_caught_up(stored: Stored, expected: dict[str, Expected], ports: list[int],
                   timeout: float) -> tuple[dict[str, dict | str | None], float]:
    """Wait until every user has applied its reference's count or moved past its last valid
    message (a user short of events then shows as lost, not as a wait to the deadline), or
    the deadline; then read every user once more, so what later replays changed shows.
    Returns the states and the seconds waited."""
    started = time.monotonic()
    waiting = sorted(expected)

    def caught_up() -> bool:
        nonlocal waiting
        states = fetch_states(waiting, ports)
        waiting = [
            user for user in waiting
            if not isinstance(state := states[user], dict)
            or (state["count"] < expected[user].deduped["count"]
                and state["position"][1] < stored.last_offset(user))
        ]
        return not waiting

    try:
        wait_for(caught_up, timeout, "every user to catch up", interval=0.5)
    except WorkerError:
        pass  # the report says who is behind
    return fetch_states(sorted(expected), ports), time.monotonic() - started


def same_state(got: dict, want: dict) -> bool:
    """The worker's state equals the reference (float64) to the rounding of the stored float16
    grid, one snap per event (:func:`tests.unit.grid.within_snaps`); count, event time and
    recent items exactly."""
    return (
        got["count"] == want["count"]
        and got["last_ts"] == want["last_ts"]
        and got["recent"] == want["recent"]
        and within_snaps(got["vector"], np.asarray(want["vector"]), want["count"], want["scale"])
    )


@dataclass
class StateCheck:
    applied: int = 0  # events in the stored states, summed
    lost: int = 0  # counts short of the reference
    applied_twice: int = 0  # counts over the reference
    mismatches: int = 0  # right count, wrong state (or a count no reference explains)
    retries_applied: int = 0  # retries the worker applied (applied twice if dedupe is checked)
    retries_skipped: int = 0
    unreadable: int = 0  # users whose state no worker answered for
    examples: list[dict] = field(default_factory=list)


def check_states(states: dict[str, dict | str | None], expected: dict[str, Expected],
                 dedupe_checked: bool) -> StateCheck:
    """Compare each user with the reference. With ``dedupe_checked`` a retry the worker applied
    counts as applied twice; without, it is counted apart and the user compared with the
    reference that applies it."""
    check = StateCheck()
    for user, want in expected.items():
        got = states.get(user)
        if isinstance(got, str):  # not read: neither lost nor right
            check.unreadable += 1
            if len(check.examples) < MAX_EXAMPLES:
                check.examples.append({"user": user, "error": got})
            continue
        got = got or {"count": 0, "position": None}
        count, base = got["count"], want.deduped["count"]
        retries = 0 if want.with_retries is None else want.with_retries["count"] - base
        over, reference = count - base, want.deduped
        by_retry = min(max(over, 0), retries)  # what over-count the user's retries explain
        check.retries_applied += by_retry
        check.retries_skipped += retries - by_retry
        if by_retry and not dedupe_checked:
            over -= by_retry
            # which of the user's retries applied is unknown unless all did
            reference = want.with_retries if by_retry == retries else None
        check.applied += count
        check.lost += max(0, -over)
        check.applied_twice += max(0, over)
        wrong = over == 0 and (reference is None or not same_state(got, reference))
        check.mismatches += wrong
        if (over or wrong) and len(check.examples) < MAX_EXAMPLES:
            check.examples.append({"user": user, "count": count, "reference_count": base,
                                   "retries": retries, "position": got["position"]})
    return check


def check_dead_letters(records: list[ConsumerRecord], stored: Stored) -> dict[str, Any]:
    """Each hostile kind: how many were sent, dead-lettered with the expected reason, with
    another (by reason), or not at all, and its largest dead letter in bytes (key, value and
    headers: what the broker must take); and the dead letters of valid events."""
    reasons: dict[Position, str] = {}
    sizes: dict[Position, int] = {}
    unsourced = 0
    for record in records:
        position, reason = dead_letter_of(record)
        if position is None:
            unsourced += 1
            continue
        reasons.setdefault(position, reason)  # a replay after a crash may send it again
        size = len(record.key or b"") + len(record.value or b"") + sum(
            len(name) + len(value) for name, value in record.headers or [])
        sizes[position] = max(size, sizes.get(position, 0))
    kinds: dict[str, dict[str, Any]] = {}
    for position, kind in stored.hostile.items():
        row = kinds.setdefault(kind, {"sent": 0, "expected": EXPECTED_REASON[kind],
                                      "as_expected": 0, "other": Counter(), "missing": 0,
                                      "max_letter_bytes": 0})
        row["sent"] += 1
        reason = reasons.get(position)
        if reason is None:
            row["missing"] += 1
            row.setdefault("missing_examples", []).append(
                {"position": position, "produced_ms": stored.produced_ms[position]})
        elif reason == row["expected"]:
            row["as_expected"] += 1
        else:
            row["other"][reason] += 1
        row["max_letter_bytes"] = max(row["max_letter_bytes"], sizes.get(position, 0))
    valid = valid_positions(stored)
    return {
        "by_reason": dict(Counter(reasons.values())),
        "records": len(records),
        "without_source": unsourced,
        "kinds": {k: {**row, "other": dict(row["other"])} for k, row in sorted(kinds.items())},
        "valid_dead_lettered": dict(Counter(r for p, r in reasons.items() if p in valid)),
    }


def covers(wanted: set[Position], key: Callable[[ConsumerRecord], Position | None]
           ) -> Callable[[list[ConsumerRecord]], bool]:
    """A ``done`` for :func:`soak_read.read_topic`: true once some record's ``key`` is each
    of ``wanted``; it looks at each record once, as the list grows."""
    missing = set(wanted)
    looked = 0

    def done(records: list[ConsumerRecord]) -> bool:
        nonlocal looked
        for record in records[looked:]:
            missing.discard(key(record))
        looked = len(records)
        return not missing

    return done


def valid_positions(stored: Stored) -> set[Position]:
    return {p for events in stored.valid.values() for _, p in events}


def check_records(records: list[ConsumerRecord], stored: Stored) -> dict[str, Any]:
    """Valid events (first copies) with no record, and records beyond one per trigger (at
    least once: a replay after a crash sends another)."""
    triggers = Counter(trigger_of(r) for r in records)
    users = {p: user for user, events in stored.valid.items() for _, p in events}
    missing = sorted(p for p in users if p not in triggers)
    return {
        "records": len(records),
        "events_without_record": len(missing),
        "without_record_examples": [
            {"position": p, "user": users[p], "produced_ms": stored.produced_ms[p]}
            for p in missing[:MAX_EXAMPLES]
        ],
        "duplicate_records": sum(n - 1 for n in triggers.values() if n > 1),
    }
