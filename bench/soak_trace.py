"""Why a user is off: the user's states as the table's changelog holds them, step by step.

Each changelog value is a whole user state with the (partition, offset) of its last applied
event and its event count, so two consecutive values say how many events the worker applied
between them; the events topic says how many there were. The first steps where the two differ
show when an event was lost or applied twice, with the changelog's timestamps to set beside the
faults' times.
"""

from __future__ import annotations

import bisect
from typing import Any

from kafka.consumer.fetcher import ConsumerRecord

from core.codec import CorruptState, decode_state
from soak_read import Stored, trigger_of

STEPS_SHOWN = 3  # wrong steps per user in the report


def wrong_steps(changelog: list[ConsumerRecord], stored: Stored, users: list[str]
                ) -> dict[str, list[dict[str, Any]]]:
    """For each of ``users``: the changelog steps whose count changed by other than the
    number of the user's valid events (first copies) between the two positions."""
    wanted = set(users)
    trail: dict[str, list[ConsumerRecord]] = {}
    for record in sorted(changelog, key=lambda r: (r.partition, r.offset)):
        user = (record.key or b"").decode(errors="replace")
        if user in wanted and record.value is not None:
            trail.setdefault(user, []).append(record)
    steps: dict[str, list[dict[str, Any]]] = {}
    for user in users:
        offsets = sorted(p[1] for _, p in stored.valid.get(user, []))
        before, count, found = -1, 0, []
        for record in trail.get(user, []):
            try:
                state = decode_state(record.value, drop_unknown_items=True)
            except CorruptState:
                continue
            after = state.position[1]
            between = bisect.bisect_right(offsets, after) - bisect.bisect_right(offsets, before)
            if state.count - count != between and len(found) < STEPS_SHOWN:
                found.append({
                    "changelog": [record.partition, record.offset],
                    "changelog_ts_ms": record.timestamp,
                    "position_from": before, "position_to": after,
                    "count_from": count, "count_to": state.count, "events_between": between,
                })
            before, count = after, state.count
        steps[user] = found
    return steps


def backward_steps(changelog: list[ConsumerRecord]) -> tuple[int, list[dict[str, Any]]]:
    """Changelog values whose position is before the previous value's for the same user.

    No path of a healthy worker writes one: a replayed event at or before the stored position
    is skipped and writes nothing. A worker that lost its partitions (a session expired in a
    broker freeze) and still writes them does; if that stale value is the last one when the
    partition moves again, its new owner recovers it and the events after it are lost."""
    last: dict[bytes, tuple[int, int]] = {}
    count, examples = 0, []
    for record in sorted(changelog, key=lambda r: (r.partition, r.offset)):
        if record.value is None:
            last.pop(record.key, None)  # a tombstone: the user was forgotten
            continue
        try:
            position = decode_state(record.value, drop_unknown_items=True).position
        except CorruptState:
            continue
        before = last.get(record.key)
        if before is not None and position < before:
            count += 1
            if len(examples) < STEPS_SHOWN:
                examples.append({"user": (record.key or b"").decode(errors="replace"),
                                 "changelog": [record.partition, record.offset],
                                 "changelog_ts_ms": record.timestamp,
                                 "position_from": list(before), "position_to": list(position)})
        last[record.key] = position
    return count, examples


def explain(user: str, position: list[int] | None, changelog: list[ConsumerRecord],
            records: list[ConsumerRecord], stored: Stored) -> dict[str, Any]:
    """What the topics say of a user whose served state is off: its last changelog values,
    its valid events after the served ``position`` and when the records for them were sent
    (so whether some worker did process them, and when)."""
    key = user.encode()
    values = []
    for record in sorted(changelog, key=lambda r: (r.partition, r.offset)):
        if record.key == key and record.value is not None:
            try:
                state = decode_state(record.value, drop_unknown_items=True)
            except CorruptState:
                continue
            values.append({"changelog": [record.partition, record.offset],
                           "ts_ms": record.timestamp, "position": list(state.position),
                           "count": state.count})
    after = sorted(p for _, p in stored.valid.get(user, [])
                   if position is None or p[1] > position[1])
    sent: dict[tuple[int, int], list[int]] = {}
    for record in records:
        trigger = trigger_of(record)
        if trigger in after:
            sent.setdefault(trigger, []).append(record.timestamp)
    return {
        "changelog_values": len(values),
        "changelog_last": values[-STEPS_SHOWN:],
        "events_after_position": len(after),
        "first_after": None if not after else {
            "position": after[0], "produced_ms": stored.produced_ms[after[0]],
            "records_ms": sorted(sent.get(after[0], []))},
        "last_after": None if not after else {
            "position": after[-1], "produced_ms": stored.produced_ms[after[-1]],
            "records_ms": sorted(sent.get(after[-1], []))},
        "with_records": sum(1 for p in after if p in sent),
    }
