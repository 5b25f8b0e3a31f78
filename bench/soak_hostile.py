"""The soak's hostile messages: each kind, how it is built, and why the worker should refuse it.

``EXPECTED_REASON`` is the one table to update when the worker's handling changes: the reason
(the ``streamrec.reason`` header of its dead letter) each kind must get. A hostile message copies
a real event of the stream (its user, item and time) and changes one thing, so a message the
worker wrongly accepts lands on a real user and shows up as a state mismatch, not only as a
missing dead letter.

A ``retry`` is not refused: it is a valid event sent a second time with the same ``event_id``
right after the first (a producer retry that reached the broker twice). The worker should skip
it by its ``event_id`` (``STREAMREC_DEDUPE_WINDOW``); it is counted apart from the kinds here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np
import orjson

from core.events import Event, encode_event
from streams.tools.producer import Message, to_message

EXPECTED_REASON: dict[str, str] = {
    "bad_json": "bad_json",
    "oversized_item_id": "bad_item_id",  # 100 x "€" is 300 UTF-8 bytes; the codec holds 255
    "value_1e39": "bad_value",  # finite in float64, inf in the float32 state
    "value_1e300": "bad_value",
    "value_minus_1e300": "bad_value",
    "ts_ms_far_future": "future_ts",  # 99999999999999 ms parses (year 5138), far past broker time
    "ts_iso_2100": "future_ts",
    "missing_key": "missing_key",
    "key_mismatch": "key_mismatch",
    "v_true": "bad_version",  # true == 1 in Python
    "v_float": "bad_version",  # 1.0 == 1 in Python
    "unknown_type": "unknown_type",
    "empty_value": "empty",
    "huge_bad_field": "bad_item_id",  # ~300 KB: its dead letter is larger than DLQ_MAX_BYTES
}
RETRY = "retry"
KINDS = (*EXPECTED_REASON, RETRY)
HUGE_BYTES = 300_000


def _changed(**fields: object) -> Callable[[dict], dict]:
    return lambda obj: {**obj, **fields}


# How each kind changes the JSON object of the event it copies (the key is the user id unless
# _KEYS says otherwise).
_FIELDS: dict[str, Callable[[dict], dict]] = {
    "oversized_item_id": _changed(item_id="€" * 100),
    "value_1e39": _changed(type="rating", value=1e39),
    "value_1e300": _changed(type="rating", value=1e300),
    "value_minus_1e300": _changed(type="rating", value=-1e300),
    "ts_ms_far_future": _changed(ts=99_999_999_999_999),
    "ts_iso_2100": _changed(ts="2100-01-01T00:00:00Z"),
    "v_true": _changed(v=True),
    "v_float": _changed(v=1.0),
    "unknown_type": _changed(type="teleport"),
    "huge_bad_field": _changed(item_id="x" * HUGE_BYTES),
}


def hostile_message(kind: str, n: int, like: Event) -> Message:
    """The ``n``-th hostile message, of ``kind``, made from the real event ``like``.

    >>> key, value = hostile_message("v_true", 7, Event("u1", "i2", "view", 1_700_000_000_000))
    >>> key, orjson.loads(value)["v"], orjson.loads(value)["event_id"]
    (b'u1', True, 'hostile-7-v_true')
    """
    if kind not in EXPECTED_REASON:
        raise ValueError(f"unknown hostile kind {kind!r}; known: {', '.join(EXPECTED_REASON)}")
    obj = {**orjson.loads(encode_event(like)), "event_id": f"hostile-{n}-{kind}"}
    key: bytes | None = like.user_id.encode()
    if kind == "bad_json":
        return key, orjson.dumps(obj)[:-1] + b","  # an object cut off mid-way
    if kind == "empty_value":
        return key, b""
    if kind == "missing_key":
        key = None
    elif kind == "key_mismatch":
        key = f"not-{like.user_id}".encode()
    return key, orjson.dumps(_FIELDS.get(kind, dict)(obj))


@dataclass(frozen=True)
class Stream:
    """What the soak sends: the messages in order, the kind of each hostile one (a retry is
    not among them: its bytes are its event's), and how many of each kind were placed."""

    messages: list[Message]
    kind_of: dict[Message, str]
    placed: Counter


def mix(events: list[Event], count: int, seed: int) -> Stream:
    """``events`` in order, with ``count`` hostile messages (the kinds in turn, so each appears
    once ``count`` reaches ``len(KINDS)``) placed after random events; a retry is the copied
    event itself again, right after it."""
    if count < 0:
        raise ValueError("the hostile count must be 0 or more")
    if count and not events:
        raise ValueError("hostile messages need events to copy")
    if count // len(KINDS) > len(events):  # the retries: every len(KINDS)-th message
        raise ValueError(f"{count} hostile messages want more retries than there are events")
    rng = np.random.default_rng(seed)
    after: dict[int, list[Message]] = {}
    kind_of: dict[Message, str] = {}
    placed: Counter = Counter()
    # a retry copies an event no other retry copies, so each retried event_id is sent twice
    retried = iter(rng.permutation(len(events)))
    for n in range(count):
        kind = KINDS[n % len(KINDS)]
        index = int(next(retried)) if kind == RETRY else int(rng.integers(len(events)))
        like = events[index]
        if kind == RETRY:
            message = to_message(like)
        else:
            message = hostile_message(kind, n, like)
            kind_of[message] = kind
        after.setdefault(index, []).append(message)
        placed[kind] += 1
    messages: list[Message] = []
    for index, event in enumerate(events):
        messages.append(to_message(event))
        messages.extend(after.get(index, ()))
    return Stream(messages, kind_of, placed)
