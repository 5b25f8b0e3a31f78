"""The MAC of internal records (core/seal.py): what it signs, and what it refuses."""

from __future__ import annotations

from types import SimpleNamespace

import orjson
import pytest

from core.interest import InterestConfig
from core.seal import MAC_HEADER, Seal, verified
from streams.steps.items import parse_item_records
from tests.unit.step_helpers import Message

SEAL = Seal(b"k" * 16)


def test_a_record_verifies_only_on_its_topic_with_its_key_and_value():
    headers = SEAL.headers("t.by-item", b"a", b"value")
    assert SEAL.verifies("t.by-item", b"a", b"value", headers)
    assert not SEAL.verifies("t.item-vectors", b"a", b"value", headers)  # replayed elsewhere
    assert not SEAL.verifies("t.by-item", b"b", b"value", headers)
    assert not SEAL.verifies("t.by-item", b"a", b"valuf", headers)
    assert not Seal(b"j" * 16).verifies("t.by-item", b"a", b"value", headers)  # another key


def test_the_signed_parts_cannot_slide_into_each_other():
    # without the lengths, (key "ab", value "c") and (key "a", value "bc") would sign alike
    assert SEAL.mac("t", b"ab", b"c") != SEAL.mac("t", b"a", b"bc")
    assert SEAL.mac("t", b"a", None) != SEAL.mac("t", b"a", b"")  # a tombstone is not b""


@pytest.mark.parametrize("headers", [None, [], [(MAC_HEADER, b"0" * 16)],
                                     [(MAC_HEADER, "text")]])  # fmt: skip
def test_a_record_without_a_valid_mac_is_refused(headers):
    assert not SEAL.verifies("t", b"a", b"v", headers)


def test_two_macs_on_one_record_are_refused_even_if_one_is_right():
    good = SEAL.headers("t", b"a", b"v")
    assert not SEAL.verifies("t", b"a", b"v", good + [(MAC_HEADER, b"x" * 16)])


def test_a_short_key_is_refused():
    with pytest.raises(ValueError, match="16 bytes"):
        Seal(b"short")


def test_verified_keeps_the_signed_records_and_counts_the_rest():
    def record(value: bytes, headers) -> SimpleNamespace:
        return SimpleNamespace(topic="t", key=b"a", value=value, headers=headers)

    good = record(b"v", SEAL.headers("t", b"a", b"v"))
    forged = record(b"w", [])
    assert verified(SEAL, [good, forged]) == ([good], [forged])
    assert verified(None, [good, forged]) == ([good, forged], [])  # no key: all are taken


def test_a_by_item_record_without_the_clusters_mac_is_dead_lettered():
    """Issue 32 #4: a forged position (offset 2**62) froze an item's statistics; with a key,
    an outside producer's record is refused before its position is believed."""
    value = orjson.dumps({"i": "a", "t": "click", "ts": 10, "v": None, "p": 0, "o": 2**62,
                          "h": None})  # fmt: skip
    forged = Message(b"a", value, topic="events.by-item")
    signed = Message(b"a", value, topic="events.by-item",
                     headers=tuple(SEAL.headers("events.by-item", b"a", value)))
    by_item, _, dead, _, _ = parse_item_records([forged, signed], InterestConfig(), seal=SEAL)
    assert [exc.reason for _, exc in dead] == ["bad_mac"]
    assert len(by_item["a"]) == 1
    assert len(parse_item_records([forged], InterestConfig()).by_item["a"]) == 1  # no key
