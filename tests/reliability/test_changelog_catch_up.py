"""A worker killed inside a batch's commit, after the broker has the batch's changelog records
and output but before RocksDB has its states, leaves a local state behind the changelog: the
restarted worker and the next owner (restoring from the changelog alone) must both end in the
state of a worker that never crashed.

The batch transaction (streams/worker/transaction.py) writes RocksDB only once every delivery is
done, so this is the one window in which local state and changelog differ; Faust's recovery
brings the local state up to the changelog, and the replayed batch finds its events applied.
"""

from __future__ import annotations

import urllib.error

import pytest
from aiokafka.partitioner import DefaultPartitioner

from core.events import Event
from core.generator import GeneratorConfig, generate
from streams.kafka_edge.topics import admin, ensure_topics
from streams.tools.broker import free_port, stop_process
from streams.tools.cluster import fetch_json, wait_for, wait_until_ready
from tests.helpers import event_messages, produce, start_scripted_worker

pytestmark = pytest.mark.integration

KILLED_BEFORE_LOCAL_WRITE = 9
# The real worker; on the batch that writes the user "victim" it dies like a SIGKILL once every
# delivery is done (changelog, records), before the commit writes RocksDB.
DIES_BEFORE_LOCAL_WRITE = """
import os, runpy, sys
from streams.worker.transaction import BatchTransaction
real = BatchTransaction.write_local
def write_or_die(self, last_offsets):
    if any(b"victim" in writes for writes in self.writes.values()):
        os._exit(9)
    return real(self, last_offsets)
BatchTransaction.write_local = write_or_die
sys.argv = ["streams", "worker", "--loglevel", "info"]
runpy.run_module("streams", run_name="__main__")
"""


def same_partition_user(user: str, partitions: int) -> str:
    """A user id whose messages land on ``user``'s partition, so both of the last two messages
    come in one fetch and one batch."""
    pick = DefaultPartitioner()
    wanted = pick(user.encode(), list(range(partitions)), list(range(partitions)))
    return next(f"forgotten-{n}" for n in range(1000)
                if pick(f"forgotten-{n}".encode(), list(range(partitions)),
                        list(range(partitions))) == wanted)


def committed_total(settings) -> int:
    client = admin(settings.bootstrap)
    try:
        offsets = client.list_group_offsets(settings.app_id).get(settings.app_id, {})
    finally:
        client.close()
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == settings.events_topic)


def interest(port: int, user: str) -> dict | None:
    try:
        return fetch_json(f"http://127.0.0.1:{port}/users/{user}/interest")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def test_a_batch_killed_between_its_deliveries_and_its_local_write_is_neither_lost_nor_doubled(
    settings, workers, tmp_path
):
    forgotten = same_partition_user("victim", settings.partitions)
    events = generate(GeneratorConfig(n_users=10, n_items=200, events_per_user=20, seed=8))
    early = [Event(forgotten, "i3", "click", events[0].ts + n, event_id=f"f-{n}")
             for n in range(3)]
    last = [Event(forgotten, None, "delete", events[-1].ts + 1, event_id="f-delete"),
            Event("victim", "i7", "click", events[-1].ts + 2, event_id="v-0")]
    ensure_topics(settings)
    produce(settings, event_messages(events + early))

    log = tmp_path / "dies.log"
    dies = start_scripted_worker(settings, DIES_BEFORE_LOCAL_WRITE, log)
    try:
        wait_for(lambda: committed_total(settings) == len(events) + len(early), 120,
                 "the first events committed", process=dies)
        produce(settings, event_messages(last))
        assert dies.wait(60) == KILLED_BEFORE_LOCAL_WRITE, log.read_text()[-2000:]
    finally:
        stop_process(dies)

    restarted = workers(settings)  # same state dir: its RocksDB lacks the killed batch
    wait_until_ready(settings.web_port, timeout=90, process=restarted)
    total = len(events) + len(early) + len(last)
    wait_for(lambda: committed_total(settings) == total, 90, "the replay committed",
             process=restarted)
    victim = interest(settings.web_port, "victim")
    assert victim is not None and victim["count"] == 1, "the restarted worker lost or doubled it"
    assert interest(settings.web_port, forgotten) is None, "the deleted user came back"
    stop_process(restarted)

    fresh = settings.model_copy(update={"state_dir": tmp_path / "fresh", "web_port": free_port()})
    next_owner = workers(fresh)  # restores every partition from the changelog alone
    wait_until_ready(fresh.web_port, timeout=90, process=next_owner)
    victim = interest(fresh.web_port, "victim")
    assert victim is not None and victim["count"] == 1, "the killed batch's event is lost"
    assert interest(fresh.web_port, forgotten) is None, "the deleted user came back"
    someone = events[0].user_id
    assert interest(fresh.web_port, someone)["count"] == sum(e.user_id == someone for e in events)
