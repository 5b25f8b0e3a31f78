"""The user path: a fetch of the events topic, from parsed events to records, in one transaction.

Each fetch comes whole from the batch plane (streams/kafka_edge/compat.py) to
:meth:`UserPath.process`, which reads top to bottom in data-path order over the pure steps of
streams/steps: parse and group by user, apply each user's events to their stored state, expire
users past the TTL, score every touched user in one matrix product and write their records, send
the applied events on to the item path, dead-letter what was refused, and commit the batch's
:class:`~streams.worker.transaction.BatchTransaction`. Faust acks the fetch when it returns.
"""

from __future__ import annotations

import time

from typing import Any, Mapping, Sequence

from models.item_board import ItemBoard
from streams.kafka_edge.held_back import HeldBack, Resume
from streams.kafka_edge.transactions import Outlet
from streams.settings import Settings
from streams.steps import records
from streams.steps.items import item_event_records
from streams.steps.parse import Fetched, ParsedBatch, parse_batch
from streams.steps.users import Applied, apply_users
from streams.worker.failure import stop_without_commit
from streams.worker.metrics import PipelineStats, WorkerMetrics
from streams.worker.remade import Remade
from streams.worker.retention import Retention
from streams.worker.serving import Serving
from streams.worker.transaction import (
    BatchTransaction,
    DeadLetterTopic,
    TableStore,
    consumed_offsets,
    keys_by_partition,
)


class UserPath:
    """What the user path keeps between batches: the served model, the item board, the TTL's
    watermarks, the counters, and each catalog's item JSON (made once per catalog)."""

    def __init__(self, settings: Settings, store: TableStore,
                 outlet: Outlet,
                 serving: Serving, board: ItemBoard | None, retention: Retention,
                 stats: PipelineStats, metrics: WorkerMetrics) -> None:  # fmt: skip
        self.settings, self.config, self.rules = settings, settings.steps, settings.list_rules
        self.store, self.outlet = store, outlet
        self.seal = settings.seal  # signs the by-item records (None: no internal key)
        self.dead_letters = DeadLetterTopic(settings.dlq_topic, settings.dlq_max_bytes)
        self.serving, self.board, self.retention = serving, board, retention
        self.stats, self.metrics = stats, metrics
        self.writer = Remade(records.ItemsWriter)  # by the catalog's item ids

    async def take(self, fetched: Mapping[Any, Sequence[Any]],
                   resume_at: Mapping[Any, Resume] | None = None) -> None:  # fmt: skip
        """The batch plane's handler: a failure no step could confine stops the worker before
        anything of the batch is acked."""
        try:
            await self.process([Fetched.of(r) for batch in fetched.values() for r in batch],
                               resume_at)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - what apply_users could not confine
            stop_without_commit(exc)

    async def process(self, batch: Sequence[Fetched],
                      resume_at: Mapping[Any, Resume] | None = None) -> None:  # fmt: skip
        """One fetch; returns once every event is applied and committed, or dead-lettered."""
        config, stats = self.config, self.stats
        started = time.perf_counter()
        recommender, older_codebooks = self.serving.active  # one model for the whole batch
        stats.events_in += len(batch)
        self.metrics.batch_size.observe(len(batch))
        parsed = parse_batch(batch, recommender.index, config.max_future_ms, config.max_abs_value)
        stats.next_offsets.update(parsed.next_offsets)
        stats.unknown_items += parsed.unknown_items  # scored with no vector contribution
        tx = BatchTransaction(self.store, keys_by_partition(parsed.last_index, batch), self.outlet,
                              self.dead_letters, consumed_offsets(batch, resume_at))  # fmt: skip
        done = apply_users(parsed, tx, recommender.item_vector, recommender.dim, config,
                           bind=lambda index: tx.bind(batch[index].partition),
                           codebook=recommender.codebook, model_tag=recommender.tag,
                           older_codebooks=older_codebooks)  # fmt: skip
        expired = self.expire(parsed, done, tx, [r.held for r in (resume_at or {}).values()
                                                 if r.held is not None])  # fmt: skip
        explored = trending = 0  # slots of this batch's records that explored; trending lists
        if done.snapshots:
            ids = records.record_ids(done.snapshots)  # each list's draws are seeded by its id
            with self.metrics.scoring.time():
                recs = records.serve(recommender, done.snapshots, config.top_k, self.rules,
                                     self.board, ids)  # fmt: skip
            writer = self.writer(recommender.item_ids)
            tx.send(self.settings.recs_topic, records.recommendation_records(
                done.snapshots, recs, recommender.version, writer=writer, ids=ids,
                exploration=self.rules.exploration))  # fmt: skip
            explored, trending = records.sources_shown(recs)
        if self.settings.item_stats:  # the item statistics count what the users' states did
            interests = done.interests if self.settings.item_learning else None
            tx.send(self.settings.item_events_topic,
                    item_event_records(done.item_events, interests, recommender.tag), self.seal)
        refused = [*parsed.dead, *done.dead]
        for message, exc in refused:
            tx.dead_letter(message, exc)
        await tx.commit()
        stats.batch_seconds.append(time.perf_counter() - started)
        self.metrics.observe_sent(parsed.produced)
        self.count(done, refused, expired, explored, trending)

    def count(self, done: Applied, refused: list, expired: int, explored: int,
              trending: int) -> None:  # fmt: skip
        """The batch's counts, once it is committed: a count a caller sees (applied == events
        in, a user expired) is then already true in the table."""
        stats = self.stats
        for _, exc in refused:
            stats.dead_lettered[exc.reason] += 1
        stats.rebased += done.rebased
        stats.duplicates_skipped += done.duplicates
        stats.repeated_ids += done.repeated_ids
        stats.applied += done.applied
        stats.recommendations_out += len(done.snapshots)
        stats.items_explored += explored
        stats.trending_lists += trending
        stats.users_deleted += len(done.deleted)
        stats.users_expired += expired

    def expire(self, parsed: ParsedBatch, done: Applied, tx: BatchTransaction,
               held: Sequence[HeldBack] = ()) -> int:  # fmt: skip
        """Delete requests were applied by the state step; here the TTL sweeps, in event time,
        into this batch's tombstones, sparing the users ``held`` back. Returns the users
        expired."""
        self.retention.forgot({parsed.by_user[key.decode()][0][1][0] for key in done.deleted})
        if not self.retention.expires:
            return 0  # no TTL: no per-event watermark work on the hot path
        self.retention.observe(parsed)
        return self.retention.sweep(tx.delete_in, lambda key: any(h.holds(key) for h in held),
                                    set(parsed.next_offsets))  # fmt: skip
