"""A deletion that leaves nothing (issue 32 #7): after a delete request, no file of the worker's
data dir and no record of a topic the pipeline writes holds the user's id once the stated bounds
have passed (the changelog compacted by the broker within ``forget_within``, the recommendations
and dead letters past their retention), nor after the worker stops."""

from __future__ import annotations

import time

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2

from core.events import Event, encode_event
from streams.kafka_edge.topics import ITEM_TABLE, USER_TABLE
from streams.tools.broker import stop_process
from streams.tools.cluster import wait_for, wait_until_ready, worker_stats
from tests.helpers import consume, produce
from tests.integration.test_forgetting import delete_request, traces

pytestmark = pytest.mark.integration

BOUND_S = 4.0  # forget_within and both retentions: the test waits a few times this


def partition_of(user: str, partitions: int) -> int:
    return (murmur2(user.encode()) & 0x7FFFFFFF) % partitions


def records_holding(bootstrap: str, topic: str, needle: bytes) -> list[str]:
    """Where ``topic`` (all of it, aborted transactions' records too) still holds ``needle``."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             isolation_level="read_uncommitted")  # fmt: skip
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        found: list[str] = []
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, f"{topic} not read to its end"
            for batch in consumer.poll(timeout_ms=200).values():
                found += [f"{topic}/{r.partition}@{r.offset}" for r in batch
                          if needle in (r.key or b"") + (r.value or b"")
                          + b"".join(v for _, v in r.headers or ())]  # fmt: skip
        return found
    finally:
        consumer.close()


def test_nothing_of_a_deleted_user_stays_past_the_stated_bounds(settings, workers):
    settings = settings.model_copy(update={"forget_within": BOUND_S, "recs_retention": BOUND_S,
                                           "dlq_retention": BOUND_S})  # fmt: skip
    gone = "gone-user-5e1d"
    filler = next(u for u in (f"filler-{n}" for n in range(100))
                  if partition_of(u, settings.partitions) == partition_of(gone, settings.partitions))
    worker = workers(settings)
    wait_until_ready(settings.web_port, timeout=90, process=worker)
    now = int(time.time() * 1000)
    clicks = [Event(user, f"i{k}", "click", now + k, None, f"{user}-{k}")
              for user in (gone, filler) for k in range(4)]  # fmt: skip
    bad = (gone.encode(), orjson.dumps({"user_id": gone, "type": "like", "ts": now}))
    produce(settings, [(e.user_id.encode(), encode_event(e)) for e in clicks] + [bad])
    consume(settings.bootstrap, settings.recs_topic, len(clicks), timeout=60)
    topics = [f"{settings.app_id}-{USER_TABLE}-changelog", settings.recs_topic,
              settings.dlq_topic, settings.item_events_topic,
              f"{settings.app_id}-{ITEM_TABLE}-changelog"]  # fmt: skip
    assert records_holding(settings.bootstrap, settings.dlq_topic, gone.encode())  # it finds

    produce(settings, [delete_request(gone, now + 10)])
    wait_for(lambda: worker_stats(settings.web_port)["users_deleted"] == 1, 60, "the delete")
    deleted_at = time.monotonic()
    sent = [0]

    def left() -> list[str]:
        """What still holds the user; each look sends the filler user's next click (a
        changelog partition rolls its segment, and so is compacted, at its next write)."""
        sent[0] += 1
        event = Event(filler, "i1", "click", now + 100 + sent[0], None, f"{filler}-more-{sent[0]}")
        produce(settings, [(filler.encode(), encode_event(event))])
        return traces(settings.state_dir, gone) + [
            place for topic in topics
            for place in records_holding(settings.bootstrap, topic, gone.encode())]

    wait_for(lambda: not left(), 20 * BOUND_S, "no byte of the deleted user left")
    took = time.monotonic() - deleted_at
    assert traces(settings.state_dir, filler)  # the search finds a user who is there
    assert records_holding(settings.bootstrap, topics[0], filler.encode())
    # a delete just before a stop: compacted at the stop if the timer has not done it yet
    produce(settings, [delete_request(filler, now + 10_000)])
    wait_for(lambda: worker_stats(settings.web_port)["users_deleted"] == 2, 60, "the 2nd delete")
    stop_process(worker)
    assert traces(settings.state_dir, gone) == traces(settings.state_dir, filler) == []
    print(f"nothing of the deleted user left {took:.1f} s after the delete (bound {BOUND_S} s)")
