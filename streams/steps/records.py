"""The last steps of a micro-batch: serve the touched users' lists, and the output records
(schema v1). The query view serves a stored user's list through the same path
(:func:`serve_stored`), so it answers what the worker would send.

Plain functions over plain values, like streams/steps/users.py, so what a record says is tested
without a broker (tests/unit/test_steps.py, tests/unit/test_feedback.py).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Callable, Sequence

import numpy as np
import orjson

from core.interest import Snapshot, UserState
from models.scoring import Recommender, ScoredBatch
from models.exploration import Exploration, seed_of
from models.item_board import ItemBoard
from models.slates import EXPLORE, NEW, SOURCES, TRENDING, ListRules, serve_lists

RECORD_SCHEMA_VERSION = 1


def serve(recommender: Recommender, snapshots: Sequence[Snapshot], k: int, rules: ListRules,
          board: ItemBoard | None, ids: Sequence[str]) -> ScoredBatch:  # fmt: skip
    """The batch's lists as ``rules`` choose them (models/slates.py), each row's draws seeded
    by its record's id ``ids[b]``, so a replay of the log reproduces them."""
    return serve_lists(recommender, [s.state for s in snapshots], k, rules, board,
                       [seed_of(i) for i in ids], [s.event.ts for s in snapshots])  # fmt: skip


def serve_stored(recommender: Recommender, user_id: str, state: UserState, k: int,
                 rules: ListRules, board: ItemBoard | None) -> tuple[ScoredBatch, str]:  # fmt: skip
    """The list :func:`serve` gives the record of the user's last applied event, from their
    stored ``state``, and that record's id: the draws are seeded by it
    (``rec_id(user_id, *state.position)``) and trending is read at ``state.last_ts``, so the
    answer is deterministic and is the record's own list as long as the model and the item
    statistics have not moved since (an impression moves the position, not ``last_ts``)."""
    id_ = rec_id(user_id, *state.position)
    return serve_lists(recommender, [state], k, rules, board, [seed_of(id_)],
                       [state.last_ts]), id_  # fmt: skip


class ItemsWriter:
    """The ``items`` JSON of a batch's records, written from :class:`ScoredBatch`'s arrays.

    A per-item dict with a per-explanation dict in it, serialised, cost more than the rest of
    a record (a few Python objects and a ``round`` call per item and explanation; the stage
    costs are in docs/benchmarks.md). Here each item id's JSON is made once per catalog, the
    batch's numbers are rounded and formatted in one call each, the pieces of every record are
    laid out in one object array by array indexing, and each record is one ``join``: the same
    JSON (tests/unit/test_record_writer.py holds it to the per-item reading).
    """

    def __init__(self, item_ids: Sequence[str]) -> None:
        ids = [orjson.dumps(item) for item in item_ids]
        # catalog index -> the item's opening as the first element or a later one; index -1
        # (no item) -> b"", so an empty slot writes nothing
        self.first = np.array([b'{"item_id":' + i for i in ids] + [b""], dtype=object)
        self.later = np.array([b',{"item_id":' + i for i in ids] + [b""], dtype=object)
        self.sources = np.array([b',"explored":%s,"source":"%s"' % (
            b"true" if n in (EXPLORE, NEW) else b"false", name.encode())
            for n, name in enumerate(SOURCES)] + [b""], dtype=object)  # fmt: skip

    def write(self, scored: ScoredBatch) -> list[bytes]:
        """Each row's ``items`` array as JSON."""
        items, because = scored.indices, scored.because
        rows, slots, n_explain = because.shape
        if rows == 0:
            return []
        shown = items >= 0
        explained = (because >= 0) & shown[..., None]
        propensity = np.ones(items.shape) if scored.propensity is None else scored.propensity
        source = np.zeros(items.shape, np.intp) if scored.source is None else scored.source
        pieces = np.empty((rows, slots, 8 + 4 * n_explain), dtype=object)
        pieces[:, :1, 0] = self.first[items[:, :1]]
        pieces[:, 1:, 0] = self.later[items[:, 1:]]
        pieces[..., 1] = _when(shown, b',"score":')
        pieces[..., 2] = _numbers(scored.scores, shown)
        pieces[..., 3] = _when(shown, b',"propensity":')
        pieces[..., 4] = _numbers(propensity, shown)
        pieces[..., 5] = self.sources[np.where(shown, source, -1)]
        pieces[..., 6] = _when(shown, b',"because":[')
        weights = _numbers(scored.contributions, explained)
        for n in range(n_explain):
            reason = np.where(explained[..., n], because[..., n], -1)
            pieces[..., 7 + 4 * n] = (self.later if n else self.first)[reason]
            pieces[..., 8 + 4 * n] = _when(explained[..., n], b',"weight":')
            pieces[..., 9 + 4 * n] = weights[..., n]
            pieces[..., 10 + 4 * n] = _when(explained[..., n], b"}")
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
                      rec.contributions[row : row + 1],
                      None if rec.propensity is None else rec.propensity[row : row + 1],
                      None if rec.source is None else rec.source[row : row + 1])  # fmt: skip
    return orjson.loads(ItemsWriter(one.item_ids).write(one)[0])


def rec_id(user_id: str, partition: int, offset: int) -> str:
    """A record's id: 64 bits of BLAKE2b over the user and the position of the event that
    triggered it, so a record sent again for a replayed event has the id of the first, and a
    feedback event's ``rec_id`` names the list the user saw whichever copy they were shown."""
    raw = f"{user_id}\x00{partition}\x00{offset}".encode()
    return hashlib.blake2b(raw, digest_size=8).hexdigest()


def sources_shown(scored: ScoredBatch) -> tuple[int, int]:
    """How many slots of the batch show an explored item, and how many rows trend."""
    if scored.source is None:
        return 0, 0
    explored = np.isin(scored.source[scored.indices >= 0], (EXPLORE, NEW)).sum()
    return int(explored), int((scored.source == TRENDING).any(axis=1).sum())


def policy_of(exploration: Exploration | None) -> dict[str, Any]:
    """What a record says of the policy that chose it: its name and budget (greedy: 0, no slot
    explores), and epsilon's rate (what off-policy evaluation needs: models/off_policy.py)."""
    if exploration is None or exploration.policy == "greedy":
        return {"policy": "greedy", "budget": 0}
    said: dict[str, Any] = {"policy": exploration.policy, "budget": exploration.budget}
    if exploration.policy == "epsilon":
        said["epsilon"] = exploration.epsilon
    return said


def record_ids(snapshots: Sequence[Snapshot]) -> list[str]:
    """Each snapshot's record id (:func:`rec_id`)."""
    return [rec_id(s.event.user_id, *s.position) for s in snapshots]


def recommendation_records(
    snapshots: Sequence[Snapshot],
    scored: ScoredBatch,
    model_version: str,
    clock: Callable[[], float] = time.time,
    writer: ItemsWriter | None = None,
    ids: Sequence[str] | None = None,
    exploration: Exploration | None = None,
) -> list[tuple[bytes, bytes]]:
    """``(key, value)`` records (schema v1, docs/formats.md) for the recommendations topic, keyed by
    user like the input; ``writer`` is the serving catalog's, kept across batches; ``ids`` the
    records' :func:`rec_id` if already made; ``exploration`` the policy that chose the lists."""
    items = (writer or ItemsWriter(scored.item_ids)).write(scored)
    ids = ids or record_ids(snapshots)
    policy = orjson.Fragment(orjson.dumps(policy_of(exploration)))
    out = []
    for snapshot, items_json, id_ in zip(snapshots, items, ids):
        event = snapshot.event
        partition, offset = snapshot.position
        value = orjson.dumps(
            {
                "rec_id": id_,
                "user_id": event.user_id,
                "items": orjson.Fragment(items_json),
                "model_version": model_version,
                "event_ts": event.ts,
                "emitted_at": int(clock() * 1000),
                "trigger": {"event_id": event.event_id, "partition": partition, "offset": offset},
                "exploration": policy,
                "schema_version": RECORD_SCHEMA_VERSION,
            }
        )
        out.append((event.user_id.encode(), value))
    return out
