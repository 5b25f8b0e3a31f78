"""Which records on the internal topics the cluster's own processes wrote.

The by-item events, the learned item vectors, the content vectors and the model announcements
are written by streamrec's processes and believed by every worker: an outside producer that can
write to them could otherwise freeze an item's statistics, put a fake item into every list or
announce any artifact. With a key shared by the cluster's processes (the ``internal_key``
setting), each such record carries a MAC in its ``streamrec.mac`` header: HMAC-SHA256 over the
topic, the key and the value, each length-prefixed so no two records share the signed bytes,
cut to 16 bytes. A reader with the key takes only records whose MAC it computes again; one
without the key takes all (and the worker says so at start).

The topic is signed too, so a record cannot be replayed onto another internal topic. A record
replayed onto its own topic is the one its writer sent: every reader already skips what it has
applied (by-item positions, fewer vector updates, an older announcement).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import Iterable

MAC_HEADER = "streamrec.mac"
MAC_BYTES = 16  # HMAC-SHA256 truncated, as RFC 2104 allows down to half the hash
_LENGTH = struct.Struct(">I")
_NONE = 0xFFFFFFFF  # the length of an absent key or value (a tombstone), unlike b""


class Seal:
    """Signs and checks internal records with one cluster key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("an internal key needs at least 16 bytes")
        self._key = key

    def mac(self, topic: str, key: bytes | None, value: bytes | None) -> bytes:
        signed = hmac.new(self._key, digestmod=hashlib.sha256)
        for part in (topic.encode(), key, value):
            signed.update(_LENGTH.pack(_NONE if part is None else len(part)))
            signed.update(part or b"")
        return signed.digest()[:MAC_BYTES]

    def headers(self, topic: str, key: bytes | None, value: bytes | None
                ) -> list[tuple[str, bytes]]:  # fmt: skip
        """The headers a record sent to ``topic`` carries."""
        return [(MAC_HEADER, self.mac(topic, key, value))]

    def verifies(self, topic: str, key: bytes | None, value: bytes | None,
                 headers: Iterable[tuple[str, bytes]] | None) -> bool:  # fmt: skip
        """Whether the record carries exactly one MAC and it is this key's."""
        macs = [v for name, v in headers or () if name == MAC_HEADER]
        return len(macs) == 1 and isinstance(macs[0], bytes) and hmac.compare_digest(
            macs[0], self.mac(topic, key, value))


def verified(seal: Seal | None, records: list) -> tuple[list, list]:
    """The records of ``records`` (Kafka client records: topic, key, value, headers) that
    ``seal`` verifies, and those it refused; all of them without a seal."""
    if seal is None:
        return records, []
    kept, refused = [], []
    for record in records:
        good = seal.verifies(record.topic, record.key, record.value, record.headers)
        (kept if good else refused).append(record)
    return kept, refused
