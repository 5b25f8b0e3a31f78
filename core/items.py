"""Item schema v1: what an item is, as the catalog topic carries it, parsed and validated so that
a bad record is a reason, not a crash.

A v1 item record is a JSON object, keyed on the topic by its ``item_id``::

    {"item_id": "i9", "title": "Toy Story (1995)", "text": "A cowboy doll ...",
     "categories": ["Animation", "Comedy"], "tags": ["pixar"], "ts": 788918400000, "v": 1}

Only ``item_id`` and something to say what the item is (a title, a text, a category or a tag)
are required. ``ts`` is when the item appeared (epoch ms or ISO-8601, as an event's, but before
1970 too: films and books are older than the epoch), so a
replay can tell an item that is new from one that is old. The topic is compacted: a newer record
for an id replaces the older, and a record with no value (a tombstone) retires the item. The
content an encoder reads is :func:`item_text`; the rules are those of events (core/events.py),
so the same dead-letter reasons mean the same thing on both topics.
"""

from __future__ import annotations

from typing import NamedTuple

import orjson

from core.events import MAX_TS_MS, SCHEMA_VERSION, InvalidEvent, json_object, parse_id, parse_ts

MAX_TITLE_CHARS = 1_000
MAX_TEXT_CHARS = 100_000  # an encoder reads the first few hundred word pieces; a book is a mistake
MAX_LABELS = 64  # categories, and tags, each
MAX_LABEL_CHARS = 255


class Item(NamedTuple):
    item_id: str
    title: str = ""
    text: str = ""
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    ts: int | None = None  # epoch ms, when the item appeared (None: not said)


class InvalidItem(InvalidEvent):
    """A catalog record refused, with a ``reason`` from the same vocabulary as an event's."""


def parse_item(raw: bytes | None) -> Item:
    """Decode one catalog message value; raise :class:`InvalidItem` saying what is wrong (an
    empty value is a tombstone, which retires the item, not a record)."""
    return item_from_fields(json_object(raw, "an item record", InvalidItem))


def item_from_fields(obj: dict) -> Item:
    """The checks of :func:`parse_item` on fields already decoded (a catalog file's row)."""
    version = obj.get("v", SCHEMA_VERSION)
    if type(version) is not int or version != SCHEMA_VERSION:
        raise InvalidItem("bad_version", f"schema version {version!r} is not {SCHEMA_VERSION}")
    try:
        item_id = parse_id(obj, "item_id")
    except InvalidEvent as exc:
        raise InvalidItem(exc.reason, exc.detail) from None
    title = _text(obj, "title", MAX_TITLE_CHARS)
    text = _text(obj, "text", MAX_TEXT_CHARS)
    categories, tags = _labels(obj, "categories"), _labels(obj, "tags")
    if not (title.strip() or text.strip() or categories or tags):
        raise InvalidItem("no_content", "an item needs a title, a text, a category or a tag")
    ts = obj.get("ts")
    return Item(item_id, title, text, categories, tags, None if ts is None else _item_ts(ts))


def _item_ts(raw: object) -> int:
    """An event's time rules, but before 1970 too: a film of 1967 appeared then."""
    try:
        return parse_ts(raw, earliest_ms=-MAX_TS_MS + 1)
    except InvalidEvent as exc:
        raise InvalidItem(exc.reason, exc.detail) from None


def _text(obj: dict, field: str, limit: int) -> str:
    raw = obj.get(field)
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise InvalidItem(f"bad_{field}", f"{field} must be a string")
    if len(raw) > limit:
        raise InvalidItem(f"bad_{field}", f"{field} is {len(raw)} characters, over {limit}")
    return raw


def _labels(obj: dict, field: str) -> tuple[str, ...]:
    """A list of distinct non-empty strings, in the order given (a repeat is dropped)."""
    raw = obj.get(field)
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise InvalidItem(f"bad_{field}", f"{field} must be a list of strings")
    if len(raw) > MAX_LABELS or any(len(x) > MAX_LABEL_CHARS for x in raw):
        raise InvalidItem(f"bad_{field}", f"{field}: at most {MAX_LABELS} of at most "
                                          f"{MAX_LABEL_CHARS} characters each")  # fmt: skip
    return tuple(dict.fromkeys(x.strip() for x in raw if x.strip()))


def encode_item(item: Item) -> bytes:
    """The v1 JSON of ``item`` (empty fields left out), as the catalog topic carries it."""
    obj: dict = {"item_id": item.item_id}
    for field in ("title", "text"):
        if getattr(item, field):
            obj[field] = getattr(item, field)
    for field in ("categories", "tags"):
        if getattr(item, field):
            obj[field] = list(getattr(item, field))
    if item.ts is not None:
        obj["ts"] = item.ts
    obj["v"] = SCHEMA_VERSION
    return orjson.dumps(obj)


def item_text(item: Item) -> str:
    """What a text encoder reads of an item: its title, its categories and tags, then its text,
    so a short record is described by everything it has and a long one by its title first."""
    labels = ", ".join((*item.categories, *item.tags))
    return ". ".join(part for part in (item.title.strip(), labels, item.text.strip()) if part)
