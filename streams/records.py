"""The last steps of a micro-batch: score the touched users, and the output records (schema v1).

Plain functions over plain values, like streams/steps.py, so what a record says is tested without
a broker (tests/unit/test_steps.py, tests/unit/test_feedback.py).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Callable, Sequence

import numpy as np
import orjson

from core.interest import Snapshot, UserState
from models.scoring import Recommendation, Recommender

RECORD_SCHEMA_VERSION = 1


def score(recommender: Recommender, states: Sequence[UserState], k: int) -> list[Recommendation]:
    """Top-K for a batch of user states: one matrix product."""
    return recommender.top_k(
        np.stack([s.vector for s in states]),
        [s.recent for s in states],
        k,
        [s.recent_weights for s in states],
    )


def record_items(rec: Recommendation) -> list[dict[str, Any]]:
    """The ``items`` of a record (and of the recommendations view)."""
    return [
        {
            "item_id": item,
            "score": round(item_score, 6),
            "because": [{"item_id": i, "weight": w} for i, w in because],
        }
        for item, item_score, because in zip(rec.item_ids, rec.scores, rec.because)
    ]


def rec_id(user_id: str, partition: int, offset: int) -> str:
    """A record's id: 64 bits of BLAKE2b over the user and the position of the event that
    triggered it, so a record sent again for a replayed event has the id of the first, and a
    feedback event's ``rec_id`` names the list the user saw whichever copy they were shown."""
    raw = f"{user_id}\x00{partition}\x00{offset}".encode()
    return hashlib.blake2b(raw, digest_size=8).hexdigest()


def recommendation_record(
    snapshot: Snapshot, rec: Recommendation, model_version: str, emitted_at: int
) -> bytes:
    """The output record, schema v1 (see README)."""
    event = snapshot.event
    return orjson.dumps(
        {
            "rec_id": rec_id(event.user_id, *snapshot.position),
            "user_id": event.user_id,
            "items": record_items(rec),
            "model_version": model_version,
            "event_ts": event.ts,
            "emitted_at": emitted_at,
            "trigger": {
                "event_id": event.event_id,
                "partition": snapshot.position[0],
                "offset": snapshot.position[1],
            },
            "schema_version": RECORD_SCHEMA_VERSION,
        }
    )


def recommendation_records(
    snapshots: Sequence[Snapshot],
    recs: Sequence[Recommendation],
    model_version: str,
    clock: Callable[[], float] = time.time,
) -> list[tuple[bytes, bytes]]:
    """``(key, value)`` records for the recommendations topic, keyed by user like the input."""
    return [
        (
            snapshot.event.user_id.encode(),
            recommendation_record(snapshot, rec, model_version, int(clock() * 1000)),
        )
        for snapshot, rec in zip(snapshots, recs)
    ]
