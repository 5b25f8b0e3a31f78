"""The item path: a fetch of the by-item topic into the item statistics, in one transaction.

The user path sends every event it applied to ``<events topic>.by-item``, keyed by item, so each
item's events land in one partition whatever user they came from. :meth:`ItemPath.process` takes
whole fetches of it through the batch plane, as the user path does of the events, runs the pure
steps of streams/steps/items.py (parse, count exactly once per event position, move the item's
vector with online item learning) and commits the batch's
:class:`~streams.worker.transaction.BatchTransaction`: the statistics on the item table's
changelog and in RocksDB, the learned vectors on ``<events topic>.item-vectors`` (which every
worker follows), bad records dead-lettered.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, Mapping, Sequence

from models.item_learning import OnlineItems
from streams.kafka_edge.held_back import Resume
from streams.kafka_edge.transactions import Outlet
from streams.settings import Settings
from streams.steps.items import ItemRecords, apply_items, parse_item_records
from streams.steps.parse import Fetched
from streams.worker.failure import stop_without_commit
from streams.worker.metrics import PipelineStats
from streams.worker.remade import Remade
from streams.worker.serving import Serving
from streams.worker.transaction import (
    BatchTransaction,
    DeadLetterTopic,
    TableStore,
    consumed_offsets,
    keys_by_partition,
)

log = logging.getLogger(__name__)

EndsAsker = Callable[[list[int]], Awaitable[Mapping[int, int]]]


class ItemPath:
    """What the item path keeps between batches: the counters and, with online item learning,
    the learner of the served artifact (made once per artifact)."""

    def __init__(self, settings: Settings, store: TableStore,
                 outlet: Outlet, serving: Serving, stats: PipelineStats,
                 ask_events_ends: EndsAsker) -> None:  # fmt: skip
        """``ask_events_ends(partitions)``: the events topic's end (next offset) of each."""
        self.settings, self.store, self.outlet = settings, store, outlet
        self.dead_letters = DeadLetterTopic(settings.dlq_topic, settings.dlq_max_bytes)
        self.interest = settings.interest  # built once: a property makes a new one each time
        self.half_life_ms = settings.popularity_half_life_s * 1000.0
        self.serving, self.stats = serving, stats
        self.seal = settings.seal  # built once, as ``interest``
        self.ask_events_ends = ask_events_ends
        self.events_ends: dict[int, int] = {}  # as last heard; only ever grows
        self.logged: set[str] = set()  # dead-letter reasons logged once already
        self.learner = Remade(lambda artifact: OnlineItems(
            artifact.vectors, artifact.index, artifact.tag, settings.item_learning_config,
            serving.lineage))  # fmt: skip

    async def take(self, fetched: Mapping[Any, Sequence[Any]],
                   resume_at: Mapping[Any, Resume] | None = None) -> None:  # fmt: skip
        """The batch plane's handler: a table or broker failure stops the worker unacked."""
        try:
            await self.process([Fetched.of(r) for batch in fetched.values() for r in batch],
                               resume_at)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - a table or broker failure
            stop_without_commit(exc)

    async def within_events(self, batch: Sequence[Fetched], parsed: ItemRecords) -> ItemRecords:
        """``parsed`` without the positions past the events topic's end, asked of the broker
        only when a record claims one past the end last heard (a busy topic: about once a
        batch, one request)."""
        claimed = parsed.claimed()
        if any(offset >= self.events_ends.get(p, 0) for p, offset in claimed.items()):
            for partition, end in (await self.ask_events_ends(sorted(claimed))).items():
                self.events_ends[partition] = max(end, self.events_ends.get(partition, 0))
        return parsed.within(self.events_ends, batch)

    async def process(self, batch: Sequence[Fetched],
                      resume_at: Mapping[Any, Resume] | None = None) -> None:  # fmt: skip
        """One fetch; returns once every record is counted and committed, or dead-lettered."""
        settings = self.settings
        learner = self.learner(self.serving.artifact) if settings.item_learning else None
        parsed = await self.within_events(batch, parse_item_records(
            batch, self.interest, settings.max_abs_value,
            (learner.dim, learner.tag) if learner else None, settings.partitions,
            self.seal))  # fmt: skip
        by_item, last, dead, interests, _ = parsed
        tx = BatchTransaction(self.store, keys_by_partition(last, batch), self.outlet,
                              self.dead_letters, consumed_offsets(batch, resume_at))  # fmt: skip
        done = apply_items(by_item, tx, self.half_life_ms,
                           bind=lambda item: tx.bind(batch[last[item]].partition),
                           learner=learner, interests=interests,
                           by_position=settings.processing_guarantee != "exactly_once")  # fmt: skip
        if settings.item_learning:
            tx.send(settings.item_vectors_topic,
                    [(item.encode(), vector) for item, vector in done.vectors.items()],
                    self.seal)
        for message, exc in [*dead, *done.dead]:
            tx.dead_letter(message, exc)
        await tx.commit()
        for _, exc in [*dead, *done.dead]:
            self.stats.dead_lettered[exc.reason] += 1
            if exc.reason not in self.logged:  # a flood of them must not flood the log
                self.logged.add(exc.reason)
                log.warning("by-item record dead-lettered (%s; the first of its kind): %s",
                            exc.reason, exc.detail[:200])  # fmt: skip
        self.stats.item_events_applied += done.applied
        self.stats.item_events_duplicates += done.duplicates
        self.stats.item_vectors_learned += len(done.vectors)
