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
from models.scoring import Recommender, ScoredBatch

RECORD_SCHEMA_VERSION = 1


def score(recommender: Recommender, states: Sequence[UserState], k: int) -> ScoredBatch:
    """Top-K for a batch of user states: one matrix product."""
    return recommender.top_k(
        np.stack([s.vector for s in states]),
        [s.recent for s in states],
        k,
        [s.recent_weights for s in states],
    )


class ItemsWriter:
    """The ``items`` JSON of a batch's records, written from :class:`ScoredBatch`'s arrays.

    A per-item dict with a per-explanation dict in it, serialised, cost more than the rest of
    a record (about 40 Python objects and 40 ``round`` calls a record at K = 10 with 3
    explanations). Here each item id's JSON is made once per catalog, the batch's numbers are
    rounded and formatted in one call each, the pieces of every record are laid out in one
    object array by array indexing, and each record is one ``join``: the same JSON
    (tests/unit/test_record_writer.py holds it to the per-item reading).
    """

    def __init__(self, item_ids: Sequence[str]) -> None:
        ids = [orjson.dumps(item) for item in item_ids]
        # catalog index -> the item's opening as the first element or a later one; index -1
        # (no item) -> b"", so an empty slot writes nothing
        self.first = np.array([b'{"item_id":' + i for i in ids] + [b""], dtype=object)
        self.later = np.array([b',{"item_id":' + i for i in ids] + [b""], dtype=object)

    def write(self, scored: ScoredBatch) -> list[bytes]:
        """Each row's ``items`` array as JSON."""
        items, because = scored.indices, scored.because
        rows, slots, n_explain = because.shape
        if rows == 0:
            return []
        shown = items >= 0
        explained = (because >= 0) & shown[..., None]
        pieces = np.empty((rows, slots, 5 + 4 * n_explain), dtype=object)
        pieces[:, :1, 0] = self.first[items[:, :1]]
        pieces[:, 1:, 0] = self.later[items[:, 1:]]
        pieces[..., 1] = _when(shown, b',"score":')
        pieces[..., 2] = _numbers(scored.scores, shown)
        pieces[..., 3] = _when(shown, b',"because":[')
        weights = _numbers(scored.contributions, explained)
        for n in range(n_explain):
            reason = np.where(explained[..., n], because[..., n], -1)
            pieces[..., 4 + 4 * n] = (self.later if n else self.first)[reason]
            pieces[..., 5 + 4 * n] = _when(explained[..., n], b',"weight":')
            pieces[..., 6 + 4 * n] = weights[..., n]
            pieces[..., 7 + 4 * n] = _when(explained[..., n], b"}")
        pieces[..., -1] = _when(shown, b"]}")
        return [b"[" + b"".join(row) + b"]" for row in pieces.reshape(rows, -1).tolist()]


def _when(mask: np.ndarray, text: bytes) -> np.ndarray:
    """``text`` where ``mask``, b"" elsewhere (an object array)."""
    return np.array([b"", text], dtype=object)[mask.astype(np.intp)]


def _numbers(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Each value rounded to 6 decimals as JSON where ``mask``, b"" elsewhere: one rounding and
    one formatting call for the whole array."""
    text = orjson.dumps(np.round(values.astype(np.float64).ravel(), 6),
                        option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].split(b",") if values.size else []
    numbers = np.array([*text, b""], dtype=object)
    return numbers[np.where(mask.ravel(), np.arange(values.size), -1)].reshape(values.shape)


def record_items(rec: ScoredBatch, row: int = 0) -> list[dict[str, Any]]:
    """The ``items`` of row ``row``'s record (what the recommendations view shows), written by
    a writer over just the items it names, not the whole catalog."""
    named = np.unique(np.concatenate([rec.indices[row].ravel(), rec.because[row].ravel()]))
    named = named[named >= 0]
    local = {int(i): n for n, i in enumerate(named.tolist())}

    def remap(indices: np.ndarray) -> np.ndarray:
        return np.vectorize(lambda i: local.get(int(i), -1), otypes=[np.int64])(indices)

    one = ScoredBatch([rec.item_ids[i] for i in named.tolist()], remap(rec.indices[row : row + 1]),
                      rec.scores[row : row + 1], remap(rec.because[row : row + 1]),
                      rec.contributions[row : row + 1])  # fmt: skip
    return orjson.loads(ItemsWriter(one.item_ids).write(one)[0])


def rec_id(user_id: str, partition: int, offset: int) -> str:
    """A record's id: 64 bits of BLAKE2b over the user and the position of the event that
    triggered it, so a record sent again for a replayed event has the id of the first, and a
    feedback event's ``rec_id`` names the list the user saw whichever copy they were shown."""
    raw = f"{user_id}\x00{partition}\x00{offset}".encode()
    return hashlib.blake2b(raw, digest_size=8).hexdigest()


def recommendation_records(
    snapshots: Sequence[Snapshot],
    scored: ScoredBatch,
    model_version: str,
    clock: Callable[[], float] = time.time,
    writer: ItemsWriter | None = None,
) -> list[tuple[bytes, bytes]]:
    """``(key, value)`` records (schema v1, see README) for the recommendations topic, keyed by
    user like the input; ``writer`` is the serving catalog's, kept across batches."""
    items = (writer or ItemsWriter(scored.item_ids)).write(scored)
    out = []
    for snapshot, items_json in zip(snapshots, items):
        event = snapshot.event
        partition, offset = snapshot.position
        value = orjson.dumps(
            {
                "rec_id": rec_id(event.user_id, partition, offset),
                "user_id": event.user_id,
                "items": orjson.Fragment(items_json),
                "model_version": model_version,
                "event_ts": event.ts,
                "emitted_at": int(clock() * 1000),
                "trigger": {"event_id": event.event_id, "partition": partition, "offset": offset},
                "schema_version": RECORD_SCHEMA_VERSION,
            }
        )
        out.append((event.user_id.encode(), value))
    return out
