import orjson
import pytest

from core.events import Event, InvalidEvent, encode_event, parse_event


def raw(**fields) -> bytes:
    base = {"user_id": "u1", "item_id": "i1", "type": "click", "ts": 1_700_000_000_000}
    base.update(fields)
    return orjson.dumps({k: v for k, v in base.items() if v is not ...})


def test_valid_event_and_round_trip():
    event = parse_event(raw(value=4, event_id="e1"))
    assert event == Event("u1", "i1", "click", 1_700_000_000_000, 4.0, "e1")
    assert parse_event(encode_event(event)) == event


def test_iso_timestamps_and_integer_ids():
    event = parse_event(raw(ts="2023-11-14T22:13:20Z", user_id=7, item_id=9))
    assert event.ts == 1_700_000_000_000 and event.user_id == "7" and event.item_id == "9"
    assert parse_event(raw(ts="2023-11-14T22:13:20")).ts == 1_700_000_000_000  # naive = UTC


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "empty"),
        (b"{not json", "bad_json"),
        (b"[1,2]", "bad_json"),
        (raw(type="teleport"), "unknown_type"),
        (raw(type=...), "unknown_type"),
        (raw(ts=...), "bad_ts"),
        (raw(ts="yesterday"), "bad_ts"),
        (raw(ts=-5), "bad_ts"),
        (raw(ts=True), "bad_ts"),
        (raw(user_id=""), "bad_user_id"),
        (raw(user_id=None), "bad_user_id"),
        (raw(item_id="x" * 300), "bad_item_id"),
        (raw(type="rating"), "bad_value"),
        (raw(value="high"), "bad_value"),
        (raw(v=2), "bad_version"),
        (raw(event_id=5), "bad_event_id"),
        (raw(event_id="e" * 1_000_000), "bad_event_id"),  # it would be echoed into the record
        # a duplicate key: parsers disagree on which one wins, a smuggling path
        (b'{"user_id":"u1","item_id":"i1","type":"view","ts":5,"type":"delete"}', "bad_json"),
        (b'{"user_id":"u1","item_id":"i1","type":"view","ts":5,"x":{"a":1,"a" :2}}', "bad_json"),
    ],
)
def test_invalid_events_say_why(value, reason):
    with pytest.raises(InvalidEvent) as info:
        parse_event(value)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        # 100 characters, 300 UTF-8 bytes: the state codec's limit is bytes, not characters
        (raw(item_id="€" * 100), "bad_item_id"),
        (raw(user_id="€" * 100), "bad_user_id"),
        (raw(v=True), "bad_version"),
        (raw(v=1.0), "bad_version"),
        (raw(type="rating", value=1e39), "bad_value"),  # finite in float64, inf in float32
        (raw(type="rating", value=-1e300), "bad_value"),
        (raw(type="rating", value=1e30), "bad_value"),  # finite, but swamps every vector
    ],
)
def test_hostile_values_are_refused(value, reason):
    with pytest.raises(InvalidEvent) as info:
        parse_event(value)
    assert info.value.reason == reason


def test_a_delete_request_needs_only_the_user():
    event = parse_event(b'{"user_id": "u1", "type": "delete", "ts": 5}')
    assert (event.user_id, event.type, event.item_id, event.ts) == ("u1", "delete", "", 5)
    with pytest.raises(InvalidEvent, match="bad_item_id"):
        parse_event(b'{"user_id": "u1", "type": "click", "ts": 5}')


def test_a_key_inside_a_string_is_no_duplicate():
    text = 'type":"delete", "ts": 1, "\\":'  # a value that looks like keys, escapes included
    event = parse_event(raw(event_id=text, extra={"type": [1, {"ts": 2}]}))
    assert event.event_id == text and event.type == "click"
