"""Event schema v1: parse and validate raw topic bytes, so a bad event is a reason, not a crash.

A v1 event is a JSON object::

    {"user_id": "u1", "item_id": "i9", "type": "click", "ts": 1700000000000,
     "value": 4.0, "event_id": "e-17", "v": 1}

``ts`` is event time, epoch milliseconds or an ISO-8601 string; ``value`` (a rating),
``event_id`` and ``rec_id`` (the recommendation record whose items the user was shown, the
feedback link) are optional; ``v`` defaults to 1. ``{"user_id": "u1", "type": "delete", "ts": ...}``
asks to forget the user (it needs no ``item_id``). An ``impression`` says an item was shown: it
is feedback, not interest, so it leaves the interest state as it was and gets no record.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import NamedTuple

import orjson

SCHEMA_VERSION = 1
EVENT_TYPES = ("view", "click", "cart", "purchase", "rating", "skip", "impression", "delete")
DELETE = "delete"  # forget the user: their state goes, and their seen event ids with it
IMPRESSION = "impression"  # an item was shown: feedback for the item, not the user's interest
_MAX_ID_BYTES = 255  # the state codec stores an id's UTF-8 length in one byte
MAX_TS_MS = 10**14  # year ~5138: beyond that it is a unit mistake, not a date
# Default bound on |value|: 1e39 is finite in float64 but inf in the float32 state, and 1e30 is
# finite there yet swamps every other event of the user. Ratings and scores live far below.
MAX_ABS_VALUE = 1e6
# Every JSON string, with the colon after it when it is a key. In valid JSON a '"' outside a
# string opens one, so scanning from the start meets each string whole: the keys are counted
# exactly, whatever a value's text looks like.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"(\s*:)?')


class Event(NamedTuple):
    user_id: str
    item_id: str
    type: str
    ts: int  # epoch ms, event time
    value: float | None = None
    event_id: str | None = None
    rec_id: str | None = None  # the recommendation record this event answers


class InvalidEvent(ValueError):
    """Raised with a short machine-readable ``reason`` and a human ``detail``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def parse_ts(raw: object, earliest_ms: int = 0) -> int:
    """Event time in epoch ms from an int/float of ms or an ISO-8601 string (naive = UTC), from
    ``earliest_ms`` on (an event is never before 1970; an item may be: core/items.py)."""
    if isinstance(raw, bool):
        raise InvalidEvent("bad_ts", "ts must be epoch ms or ISO-8601, got a boolean")
    if isinstance(raw, (int, float)):
        # range first: isfinite() overflows on an int too large for a float
        if not earliest_ms <= raw < MAX_TS_MS or not math.isfinite(raw):
            raise InvalidEvent("bad_ts", f"ts {str(raw)[:32]!r} is not epoch milliseconds")
        return int(raw)
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidEvent("bad_ts", f"ts {raw[:64]!r} is not ISO-8601") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parse_ts(round(parsed.timestamp() * 1000), earliest_ms)
    raise InvalidEvent("bad_ts", f"ts must be epoch ms or ISO-8601, got {type(raw).__name__}")


def parse_id(obj: dict, field: str) -> str:
    """A non-empty id of at most 255 UTF-8 bytes: a string, or an integer read as its digits."""
    raw = obj.get(field)
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise InvalidEvent(f"bad_{field}", f"{field} must be a non-empty string or integer")
    text = str(raw)
    if not text or len(text.encode()) > _MAX_ID_BYTES:
        raise InvalidEvent(f"bad_{field}", f"{field} must be 1..{_MAX_ID_BYTES} UTF-8 bytes")
    return text


def parse_event(raw: bytes | None, max_abs_value: float = MAX_ABS_VALUE) -> Event:
    """Decode one message value; raise :class:`InvalidEvent` saying what is wrong. ``value``
    must lie within ``±max_abs_value``."""
    return event_from_fields(json_object(raw, "an event"), max_abs_value)


def json_object(raw: bytes | None, what: str, invalid: type[InvalidEvent] = InvalidEvent) -> dict:
    """A message value decoded as the JSON object every v1 message is, or ``invalid`` saying
    why not (``empty``, ``bad_json``)."""
    if not raw:
        raise invalid("empty", "message value is empty")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid("bad_json", str(exc)[:200]) from None
    if not isinstance(obj, dict):
        raise invalid("bad_json", f"{what} must be a JSON object")
    keys = _keys(obj)
    # Each key in the text has a colon after it, so as many colons as decoded keys means no key
    # was there twice; only when a string holds a colon (an ISO time) are the keys counted.
    if raw.count(b":") != keys and sum(1 for colon in _STRING.findall(raw) if colon) != keys:
        # parsers disagree on which of two equal keys wins: a path to smuggle a field past one
        raise invalid("bad_json", f"{what} has a key twice in one object")
    return obj


def _keys(value: dict | list) -> int:
    """How many keys the decoded JSON ``value`` holds, in every object at any depth (a plain
    loop: it runs for every message)."""
    count = len(value) if type(value) is dict else 0
    for inner in value.values() if type(value) is dict else value:
        if type(inner) is dict or type(inner) is list:
            count += _keys(inner)
    return count


def event_from_fields(obj: dict, max_abs_value: float = MAX_ABS_VALUE) -> Event:
    """The checks of :func:`parse_event` on fields already decoded, so a log reader that builds
    them from a CSV row holds its events to the worker's rules without a JSON round trip."""
    version = obj.get("v", SCHEMA_VERSION)
    if type(version) is not int or version != SCHEMA_VERSION:  # true == 1.0 == 1 in Python
        raise InvalidEvent("bad_version", f"schema version {version!r} is not {SCHEMA_VERSION}")
    event_type = obj.get("type")
    if event_type not in EVENT_TYPES:
        raise InvalidEvent("unknown_type", f"type {str(event_type)[:64]!r} not in {EVENT_TYPES}")
    value = obj.get("value")
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
    ):
        raise InvalidEvent("bad_value", "value must be a finite number")
    if value is not None and abs(value) > max_abs_value:
        raise InvalidEvent("bad_value", f"value {value:g} is outside ±{max_abs_value:g}")
    if event_type == "rating" and value is None:
        raise InvalidEvent("bad_value", "a rating event needs a value")
    event_id = obj.get("event_id")
    if event_id is not None and (not isinstance(event_id, str)
                                 or len(event_id.encode()) > _MAX_ID_BYTES):  # fmt: skip
        raise InvalidEvent("bad_event_id", f"event_id must be a string of at most "
                           f"{_MAX_ID_BYTES} UTF-8 bytes")  # it is echoed into every record
    rec_id = None if obj.get("rec_id") is None else parse_id(obj, "rec_id")
    return Event(
        user_id=parse_id(obj, "user_id"),
        item_id="" if event_type == DELETE else parse_id(obj, "item_id"),
        type=event_type,
        ts=parse_ts(obj.get("ts")),
        value=None if value is None else float(value),
        event_id=event_id,
        rec_id=rec_id,
    )


def encode_event(event: Event) -> bytes:
    """The canonical v1 JSON form (what `streamrec produce` sends)."""
    obj = {"user_id": event.user_id, "item_id": event.item_id, "type": event.type, "ts": event.ts}
    if event.type == DELETE:
        del obj["item_id"]
    if event.value is not None:
        obj["value"] = event.value
    if event.event_id is not None:
        obj["event_id"] = event.event_id
    if event.rec_id is not None:
        obj["rec_id"] = event.rec_id
    return orjson.dumps(obj)
