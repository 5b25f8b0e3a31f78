"""Item ids as small integers: a catalog's index, so a stored state names an item in one, two or
four bytes instead of its id string.

The index is only meaningful against the catalog it was taken from, so every state stores the
catalog's 32-bit fingerprint; a reader resolves indices only with the codebook of that
fingerprint (:class:`core.codec.UnknownCodebook` otherwise).
"""

from __future__ import annotations

import hashlib
from typing import Iterable


class ItemCodebook:
    """A catalog's item ids in order, each id's code (its index + 1), the catalog's fingerprint."""

    def __init__(self, item_ids: Iterable[str]) -> None:
        self.ids: tuple[str, ...] = tuple(item_ids)
        self.by_code: tuple[str, ...] = ("",) + self.ids  # code 0 is an id stored as a string
        self.code: dict[str, int] = {item: n + 1 for n, item in enumerate(self.ids)}
        digest = hashlib.blake2b(digest_size=4)
        for item in self.ids:
            raw = item.encode()
            digest.update(len(raw).to_bytes(4, "little") + raw)
        # 0 is kept for "no codebook": a state whose ids are all stored as strings
        self.fingerprint: int = int.from_bytes(digest.digest(), "little") or 1

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"ItemCodebook({len(self.ids)} items, fingerprint {self.fingerprint:08x})"

