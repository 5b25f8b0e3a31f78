"""The batch plane: whole fetches of the pipeline's input topics go to one handler each, past
Faust's per-message stream (streams/kafka_edge/compat.py, fix 5, says why); Faust's own
bookkeeping of acked and committed offsets is kept true, so its commits and rebalances work as
for any stream. Checked against the Faust version compat.py names (tests/unit/test_batch_plane.py
pins each private use).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Container, Coroutine, Iterable, Mapping, Sequence

import faust
from aiokafka import ConsumerRecord
from faust.types import TP

from streams.kafka_edge.held_back import HeldBack, HeldRecords, Resume, after_batch, keys_free


# a batch's records by partition, and where each partition's input resumes once they are
# applied (what a transaction commits for the consumer group)
BatchHandler = Callable[[Mapping[TP, Sequence[ConsumerRecord]], Mapping[TP, Resume]],
                        Awaitable[None]]
HELD_MOST = 50_000  # records a partition holds back at most (memory): past it, slices grow
log = logging.getLogger(__name__)


def install_batch_plane(
    app: faust.App,
    handlers: Mapping[str, BatchHandler],
    on_commit_refused: Callable[[set[TP]], None] = lambda tps: None,
    transactional: bool = False,
    on_revoked: Callable[[set[TP]], Awaitable[None]] | None = None,
    on_assigned: Callable[[set[TP]], Awaitable[Mapping[TP, str] | None]] | None = None,
    slices: Mapping[str, int] | None = None,
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
    records come as a batch of their own (a transaction commits one partition's offsets), the
    partitions' batches of a fetch at once (each awaits its own transaction).
    ``on_revoked`` is awaited with the revoked partitions of ``handlers`` once no batch runs;
    ``on_assigned`` with the assigned ones before Faust recovers the tables or seeks to the
    committed offsets (so a transaction the previous owner left pending can be settled first);
    it returns the note committed with each one's offset, if any.
    ``slices`` (transactional only) caps how many records of one key a batch of a topic takes:
    a hot key's backlog is held back and worked off in slices while the other keys' records go
    ahead of it, and each transaction commits its partition's offset only up to the first record
    held back, with a note of what went ahead (streams/kafka_edge/held_back.py): a restart reads
    from there and skips what the note says was applied."""
    if slices and not transactional:
        raise ValueError("slices need transactions: a commit must stop at a held-back record")
    slices = dict(slices or {})
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
        _held_back: dict[TP, HeldRecords] | None = None
        _held_notes: dict[TP, HeldBack] | None = None

        def _held(self) -> dict[TP, HeldRecords]:
            """Each partition's records held back by its slice, for the next batch."""
            if self._held_back is None:
                self._held_back = {}
            return self._held_back

        def _notes(self) -> dict[TP, HeldBack]:
            """Each partition's note of what past its committed offset was applied (read at
            assignment, then kept up to date with each transaction)."""
            if self._held_notes is None:
                self._held_notes = {}
            return self._held_notes

        def _handled_up_to(self) -> dict[TP, int]:
            """Each partition's next offset after the batches handled since it was assigned.
            Faust's read offset cannot say: a seek to the committed offset sets it to the next
            offset to read, a fetch to the last offset read, so a fetch from before a rebalance,
            handled after it, has its last record handled again when the seek reads it anew."""
            if self._handled is None:
                self._handled = {}
            return self._handled

        async def _wait_next_records(self, timeout: float) -> Any:
            if any(tp.topic in handlers for tp in self._held()):
                timeout = 0.0  # what is held back goes on at once, without waiting for a fetch
            records, active = await super()._wait_next_records(timeout)
            work = []
            for topic, handle in handlers.items():
                mine = {tp: records.pop(tp) for tp in [tp for tp in records or ()
                                                       if tp.topic == topic]}  # fmt: skip
                held = any(tp.topic == topic for tp in self._held())
                if mine or held:  # what is held back goes on also when nothing new came
                    work.append((handle, topic, mine))
            generation = self.app.consumer_generation_id
            if transactional:  # the topics' batches at once too, each in its own transactions
                async with self._running():
                    await all_at_once(self._run_batch(handle, topic, mine, active, generation)
                                      for handle, topic, mine in work)  # fmt: skip
                    await self._commit_if_due()
            else:
                for handle, topic, mine in work:
                    async with self._running():
                        await self._run_batch(handle, topic, mine, active, generation)
                        await self._commit_if_due()
            return records, active

        async def _run_batch(self, handle: BatchHandler, topic: str, fetched: dict[TP, Any],
                             active: Container[TP] | None, generation: int) -> None:  # fmt: skip
            """One topic's batch (the caller holds the batch lock)."""
            if (not self.flow_active or self.should_stop
                    or self.app.consumer_generation_id != generation):
                return  # a rebalance: Faust seeks what it keeps back to the commit
            batch = {}
            for tp, records in fetched.items():
                read = max(self._read_offset[tp] or 0, self._handled_up_to().get(tp, 0))
                kept = [r for r in records if r.offset >= read]
                if kept and (active is None or tp in active):
                    batch[tp] = kept
            held = [tp for tp in self._held() if tp.topic == topic
                    and (active is None or tp in active)]  # fmt: skip
            if not batch and not held:
                return
            if transactional:  # each partition's transaction has its own producer: the
                # round trips of one overlap the others' (and their CPU work)
                await all_at_once(self._run_slice(handle, tp, batch.get(tp, []))
                                  for tp in sorted({*batch, *held}))  # fmt: skip
            else:
                await handle(batch, {tp: Resume(rs[-1].offset + 1)
                                     for tp, rs in batch.items()})  # fmt: skip
            for tp, records in batch.items():
                await _ack_records(self, tp, records)
                self._handled_up_to()[tp] = records[-1].offset + 1

        async def _commit_if_due(self) -> None:
            """Faust's commit every ``commit_every`` acked messages, as its own drain does."""
            if self._commit_every is not None and self._n_acked >= self._commit_every:
                self._n_acked = 0
                await self.commit()

        async def _run_slice(self, handle: BatchHandler, tp: TP, fetched: list) -> None:
            """One partition's transaction: what it held back, then what was fetched (less what
            its note says was applied before), at most its slice of each key (more once over
            ``HELD_MOST`` records wait); the rest is held back for the next batch."""
            note = self._notes().get(tp)
            if note is not None and fetched and tp not in self._handled_up_to() and (
                    fetched[0].offset > note.resume().offset):  # fmt: skip
                log.warning("%s: read again from offset %d, past the committed %d: events held "
                            "back in between, if any were there (not only transaction markers), "
                            "were deleted by the topic's retention and are not applied", tp,
                            fetched[0].offset, note.resume().offset)  # fmt: skip
            # one past the last record read (a batch of held records only may be older than
            # what went ahead of it)
            read_end = max(self._handled_up_to().get(tp, 0),
                           fetched[-1].offset + 1 if fetched else 0)  # fmt: skip
            held = self._held().pop(tp, None) or HeldRecords()
            fresh = [r for r in fetched if note is None or not note.applied(r)]
            if not held and not fresh:
                return  # all of it applied before: the committed offset and note still hold
            most = slices.get(tp.topic)
            now = fresh if not most else held.take(
                fresh, max(most, len(held) + len(fresh) - HELD_MOST), keys_free(note, read_end))
            if held:
                self._held()[tp] = held
            note = after_batch(note, read_end, held.heads())
            if note is None:
                self._notes().pop(tp, None)
            else:
                self._notes()[tp] = note
            await handle({tp: now}, {tp: note.resume() if note else Resume(read_end)})

        async def on_partitions_assigned(self, assigned: set[TP], *args: Any,
                                         **kwargs: Any) -> None:  # fmt: skip
            if on_assigned is not None:
                notes = await on_assigned({tp for tp in assigned if tp.topic in handlers})
                for tp, note in (notes or {}).items():
                    held = HeldBack.decode(note)
                    if held is not None:
                        self._notes()[TP(tp.topic, tp.partition)] = held
            await super().on_partitions_assigned(assigned, *args, **kwargs)

        async def on_partitions_revoked(self, revoked: set[TP]) -> None:
            async with self._running():  # a running batch ends (and is acked) first
                mine = {tp for tp in revoked if tp.topic in handlers}
                await self.force_commit(mine)
                for tp in mine:
                    self._handled_up_to().pop(tp, None)
                    self._held().pop(tp, None)  # the next owner reads them from the commit
                    self._notes().pop(tp, None)  # and its note
                doubted = self._refused_since_commit() & mine
                if doubted:
                    on_commit_refused(doubted)
                    self._refused_since_commit().difference_update(doubted)
                if on_revoked is not None:
                    await on_revoked(mine)
                await super().on_partitions_revoked(revoked)

    app.transport.Consumer = BatchConsumer


async def all_at_once(steps: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Await ``steps`` side by side; when one fails, the others are cancelled and awaited
    before the failure goes on (none keeps running past the batch lock into a revocation)."""
    async with asyncio.TaskGroup() as group:
        for step in steps:
            group.create_task(step)


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
