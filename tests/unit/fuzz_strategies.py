"""Hypothesis strategies for hostile Kafka messages on the events topic, and the step runner
that tests/unit/test_fuzz.py checks them against.

A batch mixes valid events of a few users (with repeated event ids and deletes), JSON objects
whose every field may be missing or any hostile JSON value, arbitrary bytes and empty or
tombstone values, under keys that match, mismatch or are missing. Messages are placed as Kafka
places them (partition by key, offsets increasing per partition) and part of the batch is
redelivered from an earlier offset, as after a rebalance: without that, a user's events could
land on two partitions, which the key exists to prevent, and "replayed" would mean nothing.
"""

from __future__ import annotations

import json
import operator
import zlib
from dataclasses import replace
from typing import Any, Sequence

import orjson
from hypothesis import strategies as st

from core.events import EVENT_TYPES, Event, encode_event
from core.interest import DEFAULT_EVENT_WEIGHTS, InterestConfig
from streams.steps.users import Applied, apply_users
from streams.steps.parse import ParsedBatch, StepConfig, parse_batch
from tests.unit.step_helpers import CONFIG, ITEMS, FaustTable, Message, recommender

REC = recommender()  # built once: torch model setup is the slowest thing here
CATALOG = frozenset(ITEMS)
USERS = ("u1", "u2", "u3")
BROKER_S = 1_700_000_000.0  # the broker timestamp of every well-formed message
NOW_MS = int(BROKER_S * 1000)
PARTITIONS = 2
EVENT_IDS = (None, "e1", "e2", "e3")  # a small pool, so ids repeat
# What the step config may be: the unit tests' own; a short dedupe window and a TTL, so ids slide
# out and users restart; and one that lets ±1e300 through parsing, so the state overflows and
# apply_users' confinement (internal_error) is exercised, not just parse_event's bound.
CONFIGS = (
    CONFIG,
    replace(CONFIG, interest=replace(CONFIG.interest, dedupe_window=2, ttl_ms=5_000.0)),
    replace(
        CONFIG,
        interest=InterestConfig(dict(DEFAULT_EVENT_WEIGHTS), half_life_ms=1e9, history_len=4),
        max_abs_value=1e300,
    ),
)

# ---- hostile JSON values --------------------------------------------------------------------

SPECIAL_STRINGS = (
    "", " ", "NaN", "nan", "Infinity", "-inf", "1e39", "1", "true", "null", "{}", "€" * 100,
    "€" * 85, "2100-01-01T00:00:00Z", "2023-11-14T22:13:20Z", "2024-02-30T00:00:00",
    "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "1970-01-01", "not a date",
    "2023-11-14T22:13:20.123456789Z", "\x00", "\ud800", "a\udfffb", "delete", "Click",
)  # fmt: skip
EXTREME = (1e39, -1e39, 1e300, -1e300, 1e30, 3e38)  # ratings: 3e38 twice overflows float32
SPECIAL_NUMBERS = (
    *EXTREME, -1e30, 1e6, 1e6 + 1, 5e-324, -0.0, 0, -1,
    99_999_999_999_999, 10**14, 10**14 - 1, 2**63, 2**64, 10**30, 10**400,
    float("nan"), float("inf"), float("-inf"),  # json.dumps writes NaN/Infinity, orjson refuses
)  # fmt: skip
RATINGS = st.floats(1, 5) | st.sampled_from(EXTREME)
ODD_CHARS = st.sampled_from(["x", "€", "😀", "\x00", "\ud800", "\U000e0001", "\"", "\\"])


def repeated(chars: st.SearchStrategy[str], most: int = 3_000) -> st.SearchStrategy[str]:
    """Long strings cheaply: one character (ASCII, multibyte, control or a lone surrogate)
    repeated up to ``most`` times; drawing kilobytes character by character is slow."""
    return st.builds(operator.mul, chars | st.characters(), st.integers(0, most))


STRINGS = st.one_of(
    st.text(max_size=12),
    st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3),
    repeated(ODD_CHARS),
    st.sampled_from(SPECIAL_STRINGS),
)
NUMBERS = st.one_of(
    st.integers(-(2**70), 2**70),  # beyond 64 bits orjson reads a float
    st.floats(allow_nan=False, allow_infinity=False),  # NaN and inf: in SPECIAL_NUMBERS
    st.sampled_from(SPECIAL_NUMBERS),
)
LEAVES = st.none() | st.booleans() | NUMBERS | STRINGS
JSON_VALUES = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


def field(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field's value: often one that parses, so the parser gets past it to the next field."""
    return plausible | JSON_VALUES


HOSTILE_FIELDS = {
    "user_id": field(st.sampled_from(USERS) | st.integers(0, 9)),
    "item_id": field(st.sampled_from([*ITEMS, "zz"])),
    "type": field(st.sampled_from(EVENT_TYPES)),
    "ts": field(st.integers(NOW_MS - 10_000, NOW_MS + 1_000) | st.just("2023-11-14T22:13:20Z")),
    "value": field(st.floats(-10, 10)),
    "event_id": field(st.sampled_from(EVENT_IDS[1:])),
    "v": st.sampled_from([1, True, 1.0, "1", 2, 0, None]) | JSON_VALUES,
}


@st.composite
def json_bytes(draw: st.DrawFn, obj: st.SearchStrategy[Any]) -> bytes:
    """``obj`` as JSON bytes the way a careless producer might write it: ASCII-escaped (lone
    surrogates as ``\\ud800``), raw UTF-8 (a lone surrogate as invalid CESU bytes), NaN and
    Infinity as bare words, or cut short."""
    value = draw(obj)
    text = json.dumps(value, ensure_ascii=draw(st.booleans()))
    raw = text.encode("utf-8", "surrogatepass")
    # sampled_from leans to its first entry, as integers lean to 0 (an empty value is its own case)
    if len(raw) > 1 and draw(st.sampled_from([False] * 9 + [True])):
        raw = raw[: draw(st.integers(1, len(raw) - 1))]
    return raw


@st.composite
def valid_events(draw: st.DrawFn) -> Event:
    """A well-formed event of one of the few users, near the broker's time."""
    event_type = draw(st.sampled_from(("view", "click", "cart", "purchase", "rating", "rating",
                                       "skip", "click", "view", "delete")))  # fmt: skip
    return Event(
        user_id=draw(st.sampled_from(USERS)),
        item_id="" if event_type == "delete" else draw(st.sampled_from([*ITEMS, "zz"])),
        type=event_type,
        ts=draw(st.integers(NOW_MS - 10_000, NOW_MS + 1_000)),
        # extremes: refused under the default bound, and overflow the state where it is lifted
        value=draw(RATINGS) if event_type == "rating" else None,
        event_id=draw(st.sampled_from(EVENT_IDS)),
    )


DROP = object()  # a field left out


def mutated(obj: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with ``changes`` made, a :data:`DROP` removing its field."""
    return {k: v for k, v in {**obj, **changes}.items() if v is not DROP}


# Every field drawn on its own: mostly refused at the first field the parser reads.
WILD_OBJECTS = st.builds(
    lambda extra, fields: {**extra, **fields},
    st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=2),
    st.fixed_dictionaries({}, optional=HOSTILE_FIELDS),
)
# A valid event with one or two fields hostile or missing: reaches every field's check.
MUTATED_OBJECTS = st.builds(
    mutated,
    valid_events().map(lambda e: orjson.loads(encode_event(e))),
    st.lists(
        st.sampled_from(sorted(HOSTILE_FIELDS)).flatmap(
            lambda name: st.tuples(st.just(name), HOSTILE_FIELDS[name] | st.just(DROP))
        ),
        min_size=1,
        max_size=2,
    ).map(dict),
)

# ---- messages -------------------------------------------------------------------------------


def own_key(obj: object) -> bytes | None:
    """The key a producer keying by ``user_id`` would send for ``obj``, if it has one."""
    user = obj.get("user_id") if isinstance(obj, dict) else None
    if isinstance(user, bool) or not isinstance(user, (str, int)):
        return None
    return str(user).encode("utf-8", "surrogatepass")


@st.composite
def keyed_values(draw: st.DrawFn) -> tuple[bytes | None, bytes | None]:
    """One message's (key, value): a valid event, a hostile object, arbitrary bytes, an empty
    value or a tombstone; keyed right, by another user, by junk, or not at all."""
    kind = draw(st.sampled_from(["valid"] * 3 + ["mutated"] * 2 + ["wild", "bytes", "empty"]))
    if kind == "valid":
        event = draw(valid_events())
        value: bytes | None = encode_event(event)
        right = event.user_id.encode()
    elif kind in ("mutated", "wild"):
        obj = draw(MUTATED_OBJECTS if kind == "mutated" else WILD_OBJECTS)
        value = draw(json_bytes(st.just(obj)))
        right = own_key(obj)
    else:
        empty = st.sampled_from([b"", None])  # None: a tombstone on the events topic
        value = draw(st.binary(max_size=64) if kind == "bytes" else empty)
        right = draw(st.sampled_from(USERS)).encode()
    key = draw(st.sampled_from(["right"] * 6 + ["other", "junk", "none"]))
    if key == "right":
        return right, value
    if key == "other":
        return draw(st.sampled_from(USERS)).encode(), value
    return (draw(st.binary(max_size=2_000)) if key == "junk" else None), value


@st.composite
def batches(draw: st.DrawFn, most: int = 24) -> list[Message]:
    """A micro-batch as the consumer hands it over: a key always on the same partition, offsets
    increasing per partition, and its tail redelivered from an earlier offset."""
    next_offset = {p: draw(st.integers(0, 10**6)) for p in range(PARTITIONS)}
    placed = []
    for key, value in draw(st.lists(keyed_values(), max_size=most)):
        if key is None:  # the producer's partitioner chose
            partition = draw(st.integers(0, PARTITIONS - 1))
        else:
            partition = zlib.crc32(key) % PARTITIONS
        timestamp = draw(st.sampled_from([BROKER_S] * 8 + [0.0, -1.0]))
        placed.append(Message(key, value, partition, next_offset[partition], timestamp))
        next_offset[partition] += 1
    cut = draw(st.integers(0, len(placed)))
    rewind = draw(st.integers(0, cut))
    return placed[:cut] + [replace(m) for m in placed[rewind:]]  # fresh objects: ids count


def corrupt_tables() -> st.SearchStrategy[dict[bytes, bytes]]:
    """A user table that may hold values no codec version reads (load_user_state starts those
    users afresh)."""
    return st.dictionaries(
        st.sampled_from(USERS).map(str.encode), st.binary(max_size=8).map(b"\xff".__add__),
        max_size=2,
    )


def run(
    batch: Sequence[Message], table: dict[bytes, bytes], config: StepConfig
) -> tuple[ParsedBatch, Applied]:
    """parse_batch then apply_users, as the agent calls them, on a dict table."""
    parsed = parse_batch(batch, CATALOG, config.max_future_ms, config.max_abs_value)
    return parsed, apply_users(parsed, FaustTable(table), REC.item_vector, REC.dim, config)
