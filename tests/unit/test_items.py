"""core/items.py, the v1 item record, against docs/schemas/item.v1.schema.json: the schema accepts
what ``parse_item`` accepts and rejects what it rejects (generated and hostile records), and a
record survives encoding.

JSON Schema cannot count UTF-8 bytes, read ISO-8601 as Python does, or strip whitespace as
Python's ``str.strip`` does; there the worker is stricter, and a disagreement must be one of
those (``_known_gap``).
"""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.items import InvalidItem, Item, encode_item, item_text, parse_item
from tests.unit.test_schemas import moments, schema

ITEM = schema("item.v1.schema.json")

hostile = st.none() | st.booleans() | st.floats() | st.integers() | st.just({})
labels = st.lists(st.text(max_size=6) | st.sampled_from([" ", "", "x" * 256]), max_size=4) \
    | st.lists(st.just("a"), min_size=60, max_size=70)  # fmt: skip
VALID = st.fixed_dictionaries(
    {"item_id": st.text(min_size=1, max_size=12) | st.integers(0, 10**9)},
    optional={"title": st.text(max_size=20), "text": st.text(max_size=40),
              "categories": labels, "tags": labels,
              "ts": st.integers(0, 10**13) | moments.map(lambda m: m.isoformat()),
              "v": st.just(1)},  # fmt: skip
)
ANY = {"item_id": st.text(max_size=300) | hostile, "title": st.text(max_size=3) | hostile,
       "text": st.text(max_size=3) | hostile, "categories": labels | hostile,
       "tags": labels | hostile, "ts": st.text(max_size=10) | hostile,
       "v": st.sampled_from([1, 1.0, 2, "1", True]) | hostile}  # fmt: skip
RECORDS = VALID | st.builds(lambda base, changed: base | changed, VALID,
                            st.fixed_dictionaries({}, optional=ANY).filter(lambda d: len(d) <= 2))


def _known_gap(doc: dict, reason: str) -> bool:
    """A rejection the schema cannot express: an ISO string Python cannot read or outside epoch
    ms, an id over 255 UTF-8 bytes in at most 255 characters, or text only Python calls blank."""
    if reason == "bad_ts":
        return isinstance(doc.get("ts"), str)
    if reason == "bad_item_id":
        raw = doc.get("item_id")
        return isinstance(raw, str) and len(raw.encode()) > 255
    return reason == "no_content"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RECORDS)
def test_the_item_schema_agrees_with_parse_item(obj):
    raw = json.dumps(obj, ensure_ascii=False).encode()
    try:
        parse_item(raw)
        reason = None
    except InvalidItem as exc:
        reason = exc.reason
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        assert reason == "bad_json"
        return
    valid = ITEM.is_valid(doc)
    if reason is None:
        assert valid, list(ITEM.iter_errors(doc))
    elif valid:
        assert _known_gap(doc, reason), (reason, doc)


@pytest.mark.parametrize("text, reason", [
    (b"", "empty"),
    (b"[1]", "bad_json"),
    (b'{"item_id":"i"}', "no_content"),
    (b'{"item_id":"i","title":"  ","categories":[" "]}', "no_content"),
    (b'{"item_id":"","title":"t"}', "bad_item_id"),
    (b'{"item_id":"i","title":7}', "bad_title"),
    (b'{"item_id":"i","tags":"a|b"}', "bad_tags"),
    (b'{"item_id":"i","title":"t","ts":"yesterday"}', "bad_ts"),
    (b'{"item_id":"i","title":"t","v":2}', "bad_version"),
])
def test_a_bad_record_says_why(text, reason):
    with pytest.raises(InvalidItem) as caught:
        parse_item(text)
    assert caught.value.reason == reason


def test_a_record_survives_encoding_and_its_labels_are_distinct_in_order():
    item = parse_item(b'{"item_id":42,"title":"Alien (1979)","categories":["Horror","Sci-Fi",'
                      b'"Horror"," "],"tags":["space"],"ts":"1979-05-25"}')  # fmt: skip
    assert item == Item("42", "Alien (1979)", "", ("Horror", "Sci-Fi"), ("space",), 296438400000)
    assert parse_item(encode_item(item)) == item
    assert ITEM.is_valid(orjson.loads(encode_item(item)))
    assert item_text(item) == "Alien (1979). Horror, Sci-Fi, space"
