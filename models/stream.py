"""A time-ordered event log as the prequential evaluator and its policies see it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from core.events import Event


@dataclass(frozen=True)
class Stream:
    """A time-ordered log as integer arrays, plus the events themselves for the product."""

    events: list[Event]
    users: np.ndarray  # (E,) user index
    items: np.ndarray  # (E,) item index into item_ids
    ts: np.ndarray  # (E,) event time, ms
    item_ids: list[str]
    tested: np.ndarray  # (E,) bool: after the warm-up, and the user has an earlier event

    @classmethod
    def of(cls, events: Sequence[Event], warmup: float, catalog: Sequence[str] = ()) -> Stream:
        """``catalog``: item ids to index even if no event names them (a model's items), so
        every list a product policy shows can be written down."""
        if not 0 <= warmup < 1:
            raise ValueError(f"warm-up must be a share in [0, 1), got {warmup}")
        events = sorted(events, key=lambda e: e.ts)  # stable: ties keep log order
        user_index: dict[str, int] = {}
        item_index: dict[str, int] = {item: n for n, item in enumerate(dict.fromkeys(catalog))}
        users = np.array([user_index.setdefault(e.user_id, len(user_index)) for e in events])
        items = np.array([item_index.setdefault(e.item_id, len(item_index)) for e in events])
        _, first = np.unique(users, return_index=True)
        tested = np.arange(len(events)) >= int(warmup * len(events))
        tested[first] = False
        if not tested.any():
            raise ValueError("no event to test: the log needs users with two or more events")
        ts = np.array([e.ts for e in events], dtype=np.int64)
        return cls(list(events), users, items, ts, list(item_index), tested)

    @property
    def n_users(self) -> int:
        return int(self.users.max()) + 1

    @property
    def warmup_events(self) -> list[Event]:
        return self.events[: int(np.argmax(self.tested))] if self.tested.any() else self.events


def positives(events: Sequence[Event], min_rating: float | None) -> list[Event]:
    """Positive-only stream: ratings below ``min_rating`` are dropped (other types kept)."""
    if min_rating is None:
        return list(events)
    return [e for e in events if e.type != "rating" or (e.value or 0.0) >= min_rating]
