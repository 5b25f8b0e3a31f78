"""The batch plane: whole fetches of the pipeline's input topics go to one handler each, past
Faust's per-message stream (streams/kafka_edge/compat.py, fix 5, says why); Faust's own
bookkeeping of acked and committed offsets is kept true, so its commits and rebalances work as
for any stream. Checked against the Faust version compat.py names (tests/unit/test_batch_plane.py
pins each private use).
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Container, Mapping, Sequence

import faust
from aiokafka import ConsumerRecord
from faust.types import TP


BatchHandler = Callable[[Mapping[TP, Sequence[ConsumerRecord]]], Awaitable[None]]


def install_batch_plane(
    app: faust.App,
    handlers: Mapping[str, BatchHandler],
    on_commit_refused: Callable[[set[TP]], None] = lambda tps: None,
    transactional: bool = False,
    on_revoked: Callable[[set[TP]], Awaitable[None]] | None = None,
    on_assigned: Callable[[set[TP]], Awaitable[None]] | None = None,
) -> None:
    """From now on ``app``'s consumer hands every fetch of a topic of ``handlers`` (its active
    partitions' aiokafka records, by partition) to that topic's handler, one batch at a time,
    and acks them once it returns; call before the app's consumer is created (before the worker
    starts). ``on_commit_refused`` hears, at revocation, of the partitions whose last offset
    commit failed (on the way, in a batch's or the periodic commit, or at revocation): this
    worker may have been put out of the group (a zombie), so what it wrote for them since may be
    older than what their new owner wrote. (A commit refused in an ordinary rebalance counts
    too: the cost is a longer restore, never a wrong state.) ``transactional``: the handlers'
    transactions commit their topics' offsets, so Faust commits none of them (a commit of its
    own could land after a later transaction's and move the group back), and each partition's
    records come as a batch of their own (a transaction commits one partition's offsets).
    ``on_revoked`` is awaited with the revoked partitions of ``handlers`` once no batch runs;
    ``on_assigned`` with the assigned ones before Faust recovers the tables or seeks to the
    committed offsets (so a transaction the previous owner left pending can be settled first)."""
    base = app.transport.Consumer

    class BatchConsumer(base):  # type: ignore[misc, valid-type]
        _batch_running: asyncio.Lock | None = None
        _refused: set[TP] | None = None

        def _running(self) -> asyncio.Lock:
            if self._batch_running is None:
                self._batch_running = asyncio.Lock()
            return self._batch_running

        def _refused_since_commit(self) -> set[TP]:
            """Partitions of ``handlers`` whose last offset commit failed. Faust cannot say:
            a failed commit has already popped its acks and advanced its committed offsets."""
            if self._refused is None:
                self._refused = set()
            return self._refused

        async def _commit(self, offsets: Mapping[TP, int]) -> bool:
            if transactional:
                offsets = {tp: offset for tp, offset in offsets.items()
                           if tp.topic not in handlers}  # fmt: skip
                if not offsets:
                    return True
            done = await super()._commit(offsets)
            mine = {tp for tp in offsets if tp.topic in handlers}
            if done:
                self._refused_since_commit().difference_update(mine)
            else:
                self._refused_since_commit().update(mine)
            return done

        _handled: dict[TP, int] | None = None

        def _handled_up_to(self) -> dict[TP, int]:
            """Each partition's next offset after the batches handled since it was assigned.
            Faust's read offset cannot say: a seek to the committed offset sets it to the next
            offset to read, a fetch to the last offset read, so a fetch from before a rebalance,
            handled after it, has its last record handled again when the seek reads it anew."""
            if self._handled is None:
                self._handled = {}
            return self._handled

        async def _wait_next_records(self, timeout: float) -> Any:
            records, active = await super()._wait_next_records(timeout)
            for topic, handle in handlers.items():
                mine = {tp: records.pop(tp) for tp in [tp for tp in records or ()
                                                       if tp.topic == topic]}  # fmt: skip
                if mine:
                    await self._run_batch(handle, mine, active)
            return records, active

        async def _run_batch(
            self, handle: BatchHandler, fetched: dict[TP, Any], active: Container[TP] | None
        ) -> None:
            generation = self.app.consumer_generation_id
            async with self._running():
                if (not self.flow_active or self.should_stop
                        or self.app.consumer_generation_id != generation):
                    return  # a rebalance: Faust seeks what it keeps back to the commit
                batch = {}
                for tp, records in fetched.items():
                    read = max(self._read_offset[tp] or 0, self._handled_up_to().get(tp, 0))
                    kept = [r for r in records if r.offset >= read]
                    if kept and (active is None or tp in active):
                        batch[tp] = kept
                if not batch:
                    return
                for part in ([{tp: records} for tp, records in batch.items()]
                             if transactional else [batch]):  # fmt: skip
                    await handle(part)
                for tp, records in batch.items():
                    await _ack_records(self, tp, records)
                    self._handled_up_to()[tp] = records[-1].offset + 1
                if self._commit_every is not None and self._n_acked >= self._commit_every:
                    self._n_acked = 0
                    await self.commit()

        async def on_partitions_assigned(self, assigned: set[TP], *args: Any,
                                         **kwargs: Any) -> None:  # fmt: skip
            if on_assigned is not None:
                await on_assigned({tp for tp in assigned if tp.topic in handlers})
            await super().on_partitions_assigned(assigned, *args, **kwargs)

        async def on_partitions_revoked(self, revoked: set[TP]) -> None:
            async with self._running():  # a running batch ends (and is acked) first
                mine = {tp for tp in revoked if tp.topic in handlers}
                await self.force_commit(mine)
                for tp in mine:
                    self._handled_up_to().pop(tp, None)
                doubted = self._refused_since_commit() & mine
                if doubted:
                    on_commit_refused(doubted)
                    self._refused_since_commit().difference_update(doubted)
                if on_revoked is not None:
                    await on_revoked(mine)
                await super().on_partitions_revoked(revoked)

    app.transport.Consumer = BatchConsumer


async def _ack_records(consumer: Any, tp: TP, records: Sequence[ConsumerRecord]) -> None:
    """What Faust's ``_drain_messages`` and ``ack`` do per message, for a whole fetch."""
    committed = consumer._committed_offset[tp]
    read = consumer._read_offset[tp]
    index, acked = consumer._acked_index[tp], consumer._acked[tp]
    new = []
    for record in records:
        offset = record.offset
        if read and offset - read > 1:  # compacted away, or a transaction marker
            # the missing offsets only (the drain loop's ``offset`` end doubles the present one)
            await consumer._add_gap(tp, read + 1, offset - 1)
        read = offset
        if (committed is None or offset >= committed) and offset not in index:
            new.append(offset)
    index.update(new)
    acked.extend(new)
    consumer._n_acked += len(new)
    consumer._read_offset[tp] = read
