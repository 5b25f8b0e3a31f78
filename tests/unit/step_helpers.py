"""What the step tests share: a four-item catalog along the axes, messages as Faust hands them,
and a table that logs its accesses."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.events import Event, encode_event
from core.interest import InterestConfig
from models.blend import Blend
from models.mf import MatrixFactorization
from models.scoring import Recommender
from streams.steps.parse import ParsedBatch, StepConfig
from streams.steps.users import apply_users

ITEMS = ["a", "b", "c", "d"]
CONFIG = StepConfig(InterestConfig(half_life_ms=1000.0, history_len=3), 2, "every")


@dataclass(frozen=True)
class Message:
    """The attributes of a Faust message the steps read."""

    key: bytes | None
    value: bytes
    partition: int = 0
    offset: int = 0
    timestamp: float = 1.0
    topic: str = "events"
    headers: tuple[tuple[str, bytes], ...] = ()


def recommender() -> Recommender:
    model = MatrixFactorization(n_items=len(ITEMS), dim=4, max_len=5)
    with torch.no_grad():
        model.items.weight[: len(ITEMS)] = torch.eye(4)  # item k points along axis k
    return Recommender(model, ITEMS, "v1", Blend())


def event(user: str, item: str, ts: int, event_id: str | None = None) -> Event:
    return Event(user, item, "click", ts, None, event_id)


def messages(*events: Event, partition: int = 0, first_offset: int = 0) -> list[Message]:
    return [
        Message(e.user_id.encode(), encode_event(e), partition, first_offset + n, 100.0 + n)
        for n, e in enumerate(events)
    ]


class Table(dict):
    """A dict that logs each access, to check the order of binds and table reads/writes."""

    def __init__(self, log: list, *args: object) -> None:
        super().__init__(*args)
        self.log = log

    def get(self, key: bytes) -> bytes | None:
        self.log.append(("get", key))
        return super().get(key)

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.log.append(("set", key))
        super().__setitem__(key, value)


class FaustTable:
    """A dict as the steps see Faust's table: deleting a missing key is no error (Faust sends
    the changelog a tombstone either way)."""

    def __init__(self, data: dict) -> None:
        self.data = data

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.data[key] = value

    def __delitem__(self, key: bytes) -> None:
        if key in self.data:
            del self.data[key]


def apply(parsed: ParsedBatch, table: dict, config: StepConfig = CONFIG, bind=None):
    rec = recommender()
    return apply_users(
        parsed, FaustTable(table), rec.item_vector, rec.dim, config,
        **({"bind": bind} if bind else {}),
    )




def plain_top_k(recommender: Recommender, states, k: int):
    """The model's own top-K for ``states``, no list rule applied: what ``records.serve`` gives
    with the default ``ListRules`` (the tests' plain lists; nothing served goes through here)."""
    import numpy as np

    return recommender.top_k(np.stack([s.vector for s in states]), [s.recent for s in states], k,
                             [s.recent_weights for s in states])  # fmt: skip
