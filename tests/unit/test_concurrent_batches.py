"""The batch plane's transactions of one fetch side by side (issue 33): each partition's, and
each topic's, run at once, and a failure of one cancels the others before it goes on."""

from __future__ import annotations

import asyncio

from faust.types import TP

from streams.kafka_edge import batch_plane
from tests.unit.test_batch_plane import EVENTS, new_app, record


def waiting_for_each_other(app, topics: list, fetched: dict, monkeypatch) -> list:
    """Install handlers for ``topics`` that each wait until two batches have begun (one after
    the other, the first waits out its deadline and fails); run one fetch; return what began."""
    begun: list = []

    async def handle(batch, resume_at):
        begun.extend(batch)

        async def both() -> None:
            while len(begun) < 2:
                await asyncio.sleep(0.001)

        await asyncio.wait_for(both(), 5)

    batch_plane.install_batch_plane(app, {topic: handle for topic in topics}, transactional=True)
    consumer = app.consumer
    consumer.flow_active = True

    async def fetch(self, timeout):
        return dict(fetched), None

    monkeypatch.setattr(type(consumer).__mro__[1], "_wait_next_records", fetch)
    asyncio.run(consumer._wait_next_records(1.0))
    return begun


def test_the_partitions_transactions_of_a_fetch_run_at_once(monkeypatch):
    """Issue 33: one after the other, a fetch of four partitions waited four transactions' round
    trips before its last record went out."""
    fetched = {TP(EVENTS, 0): [record(0)], TP(EVENTS, 1): [record(0, partition=1)]}
    begun = waiting_for_each_other(new_app(), [EVENTS], fetched, monkeypatch)
    assert sorted(tp.partition for tp in begun) == [0, 1]


def test_the_topics_batches_of_a_fetch_run_at_once_too(monkeypatch):
    """The item path's transaction waited for the user path's before the next fetch."""
    fetched = {TP(EVENTS, 0): [record(0)], TP("by-item", 0): [record(0, topic="by-item")]}
    begun = waiting_for_each_other(new_app(), [EVENTS, "by-item"], fetched, monkeypatch)
    assert sorted(tp.topic for tp in begun) == ["by-item", EVENTS]


def test_a_batch_that_fails_cancels_the_others_before_the_failure_goes_on(monkeypatch):
    """Review of the concurrent transactions: a failure of one partition's batch must not leave
    the others running unawaited past the batch lock (a revocation would then stop their
    producers mid-transaction)."""
    app = new_app()
    ended: list = []

    async def handle(batch, resume_at):
        [tp] = batch
        if tp.partition == 0:
            raise RuntimeError("a bug in one partition's batch")
        try:
            await asyncio.sleep(5)
        finally:
            ended.append("cancelled" if asyncio.current_task().cancelling() else "ran on")

    batch_plane.install_batch_plane(app, {EVENTS: handle}, transactional=True)
    consumer = app.consumer
    consumer.flow_active = True

    async def fetch(self, timeout):
        return {TP(EVENTS, 0): [record(0)], TP(EVENTS, 1): [record(0, partition=1)]}, None

    monkeypatch.setattr(type(consumer).__mro__[1], "_wait_next_records", fetch)

    async def fetch_once() -> list:
        try:
            await consumer._wait_next_records(1.0)
        except Exception as exc:  # noqa: BLE001 - the failure, as it leaves the batch plane
            assert "a bug" in repr(exc) or any("a bug" in repr(e) for e in exc.exceptions)
            return list(ended)  # what the other batch had done by then
        raise AssertionError("the failure did not go on")

    assert asyncio.run(fetch_once()) == ["cancelled"]
