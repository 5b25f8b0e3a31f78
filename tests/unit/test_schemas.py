"""docs/schemas/ against the code: the event schema accepts what ``parse_event`` accepts and
rejects what it rejects (generated and hostile events), and written records validate.

JSON Schema cannot count UTF-8 bytes or read ISO-8601 as Python does; there the worker is
stricter, the schema says so, and a disagreement must be one of those (``_known_gap``).
Integers are checked strictly (1.0 is not one), as the worker does and as the schema says.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, validators

from core.events import EVENT_TYPES, Event, InvalidEvent, encode_event, parse_event
from core.generator import GeneratorConfig, generate
from core.interest import Snapshot
from models.exploration import Exploration
from streams.steps import records
from tests.unit.step_helpers import plain_top_k
from tests.unit.test_record_writer import random_recommender, random_states

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
STRICT = validators.extend(Draft202012Validator, type_checker=Draft202012Validator.TYPE_CHECKER
                           .redefine("integer", lambda _, x: type(x) is int))  # fmt: skip


def schema(name: str) -> Draft202012Validator:
    loaded = json.loads((SCHEMAS / name).read_text())
    Draft202012Validator.check_schema(loaded)
    return STRICT(loaded)


EVENT = schema("event.v1.schema.json")
RECORD = schema("recommendation.v1.schema.json")

hostile = (st.none() | st.booleans() | st.floats() | st.lists(st.integers(), max_size=2)
           | st.just({}))
ids = (st.text(min_size=0, max_size=300) | st.integers(-(2**70), 2**70)
       | st.text("é€𝄞", max_size=260))  # the last: over 255 UTF-8 bytes in few characters
moments = st.datetimes(datetime(1960, 1, 1), datetime(2100, 1, 1), timezones=st.just(timezone.utc)
                       | st.none() | st.just(timezone(timedelta(hours=-5))))  # fmt: skip
times = (st.integers(-10, 2 * 10**14) | st.floats(-1e3, 2e14) | moments.map(datetime.isoformat)
         | st.text(max_size=12) | st.sampled_from(["2020-01-01", "2020-13-01T00:00", "1Z"]))
FIELDS = ("user_id", "item_id", "type", "ts", "value", "event_id", "rec_id", "v")
ANY = {
    "user_id": ids | hostile, "item_id": ids | hostile,
    "type": st.sampled_from(EVENT_TYPES) | st.text(max_size=8) | hostile,
    "ts": times | hostile,
    "value": st.floats(-2e6, 2e6) | st.integers(-(10**7), 10**7) | st.text(max_size=3) | hostile,
    "event_id": st.text(max_size=5) | hostile, "rec_id": ids | hostile,
    "v": st.sampled_from([1, 1.0, 2, 0, "1", True]) | hostile,
}
short_ids = st.text(min_size=1, max_size=12) | st.integers(0, 10**9)
VALID = st.fixed_dictionaries(
    {"user_id": short_ids, "item_id": short_ids, "type": st.sampled_from(EVENT_TYPES),
     "ts": st.integers(0, 10**13) | moments.filter(lambda m: m.year > 1970).map(datetime.isoformat),
     "value": st.floats(-10, 10)},
    optional={"event_id": st.text(max_size=5), "rec_id": short_ids, "v": st.just(1)},
)
# valid events, and valid events with a field or two made hostile or taken away
EVENTS = VALID | st.builds(
    lambda base, changed, dropped: {k: v for k, v in (base | changed).items() if k not in dropped},
    VALID, st.fixed_dictionaries({}, optional=ANY).filter(lambda d: len(d) <= 2),
    st.sets(st.sampled_from(FIELDS), max_size=1),
)  # fmt: skip


def _known_gap(doc: dict, reason: str) -> bool:
    """A rejection the schema cannot express: an ISO string Python cannot read or that lies
    outside epoch ms, or an id over 255 UTF-8 bytes in at most 255 characters."""
    if reason == "bad_ts":
        return isinstance(doc.get("ts"), str)
    field = reason.removeprefix("bad_")
    raw = doc.get(field)
    return field in ("user_id", "item_id", "rec_id", "event_id") and isinstance(raw, str) and (
        len(raw.encode()) > 255)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EVENTS)
def test_the_event_schema_agrees_with_parse_event(obj):
    raw = json.dumps(obj, ensure_ascii=False).encode()
    try:
        parse_event(raw)
        reason = None
    except InvalidEvent as exc:
        reason = exc.reason
    try:
        doc = orjson.loads(raw)  # what the worker sees (NaN and the like do not decode)
    except orjson.JSONDecodeError:
        assert reason == "bad_json"
        return
    valid = EVENT.is_valid(doc)
    if reason is None:
        assert valid, list(EVENT.iter_errors(doc))
    elif valid:
        assert _known_gap(doc, reason), (reason, doc)


@pytest.mark.parametrize("text", [
    b'{"user_id":"u","item_id":"i","type":"view","ts":1}',
    b'{"user_id":7,"type":"delete","ts":"2024-05-01T10:00:00Z"}',
    b'{"user_id":"u","item_id":"i","type":"rating","ts":1,"value":4.5,"v":1,"extra":[1]}',
    b'{"user_id":"u","item_id":"i","type":"click","ts":1,"rec_id":"0123456789abcdef"}',
])
def test_hand_written_valid_events_are_valid_both_ways(text):
    parse_event(text)
    assert EVENT.is_valid(orjson.loads(text))


@pytest.mark.parametrize("text", [
    b'{"user_id":"u","type":"view","ts":1}',  # no item
    b'{"user_id":"u","item_id":"i","type":"rating","ts":1}',  # a rating without a value
    b'{"user_id":"u","item_id":"i","type":"rating","ts":1,"value":null}',
    b'{"user_id":"","item_id":"i","type":"view","ts":1}',
    b'{"user_id":"u","item_id":"i","type":"like","ts":1}',
    b'{"user_id":"u","item_id":"i","type":"view","ts":100000000000000}',
    b'{"user_id":"u","item_id":"i","type":"view","ts":true}',
    b'{"user_id":"u","item_id":"i","type":"view","ts":1,"v":2}',
    b'{"user_id":"u","item_id":"i","type":"view","ts":1,"v":1.0}',
    b'{"user_id":1.0,"item_id":"i","type":"view","ts":1}',
    b'{"user_id":"u","item_id":"i","type":"view","ts":1,"value":1000001}',
    b'{"user_id":"u","item_id":"i","type":"view","ts":1,"event_id":5}',
])
def test_hostile_events_are_invalid_both_ways(text):
    with pytest.raises(InvalidEvent):
        parse_event(text)
    assert not EVENT.is_valid(orjson.loads(text))


def test_generated_logs_are_valid_events():
    for event in generate(GeneratorConfig(n_users=5, events_per_user=20, seed=4)):
        assert EVENT.is_valid(orjson.loads(encode_event(event)))


@pytest.mark.parametrize("exploration", [None, Exploration("epsilon", 2), Exploration("ucb", 1)])
def test_written_records_validate(exploration):
    rng = np.random.default_rng(11)
    rec = random_recommender(explain=3)
    states = random_states(rec, 20, rng)
    scored = plain_top_k(rec, states, 6)
    if exploration is not None:  # what the slates step fills in when a policy explores
        scored = replace(scored, propensity=rng.uniform(0.01, 1, scored.indices.shape),
                         source=rng.integers(0, 4, scored.indices.shape).astype(np.int8))
    snapshots = [Snapshot(Event(f"u{n}", "x", "click", 1000 + n, None, f"e{n}" if n % 2 else None),
                          (n % 3, n), s) for n, s in enumerate(states)]  # fmt: skip
    out = records.recommendation_records(snapshots, scored, rec.version, exploration=exploration)
    for _, value in out:
        record = orjson.loads(value)
        assert RECORD.is_valid(record), list(RECORD.iter_errors(record))
    broken = orjson.loads(out[0][1]) | {"schema_version": 2}
    assert not RECORD.is_valid(broken)
