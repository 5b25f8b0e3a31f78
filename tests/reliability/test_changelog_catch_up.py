"""A worker killed after writing a batch's state to its local RocksDB but before that state
reached the changelog must not leave the changelog behind for good.

Faust's table puts the value into RocksDB at once and sends the changelog record later. After a
kill in between, the restarted worker's local state already holds the uncommitted batch, so the
replay skips its events as applied; unless the replay writes that state again, the changelog
never gets it and the next worker to restore the partition from the changelog (a takeover, a new
machine) serves the user without those events (or brings back a user who asked to be deleted).
This was the soak's "lost" count under repeated kills and takeovers.
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

KILLED_AFTER_LOCAL_WRITE = 9
# The real worker; on the batch that holds the user "victim" it dies like a SIGKILL right after
# the table writes, before anything (records, changelog) is handed to the broker.
DIES_AFTER_LOCAL_WRITE = """
import os, runpy, sys
import streams.steps.users
real = streams.steps.users.apply_users
def apply_then_die(parsed, *args, **kwargs):
    done = real(parsed, *args, **kwargs)
    if "victim" in parsed.by_user:
        os._exit(9)
    return done
streams.steps.users.apply_users = apply_then_die
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


def test_state_of_a_batch_killed_before_its_changelog_write_reaches_the_next_owner(
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
    dies = start_scripted_worker(settings, DIES_AFTER_LOCAL_WRITE, log)
    try:
        wait_for(lambda: committed_total(settings) == len(events) + len(early), 120,
                 "the first events committed", process=dies)
        produce(settings, event_messages(last))
        assert dies.wait(60) == KILLED_AFTER_LOCAL_WRITE, log.read_text()[-2000:]
    finally:
        stop_process(dies)

    restarted = workers(settings)  # same state dir: its RocksDB holds the killed batch
    wait_until_ready(settings.web_port, timeout=90, process=restarted)
    total = len(events) + len(early) + len(last)
    wait_for(lambda: committed_total(settings) == total, 90, "the replay committed",
             process=restarted)
    stop_process(restarted)

    fresh = settings.model_copy(update={"state_dir": tmp_path / "fresh", "web_port": free_port()})
    next_owner = workers(fresh)  # restores every partition from the changelog alone
    wait_until_ready(fresh.web_port, timeout=90, process=next_owner)
    victim = interest(fresh.web_port, "victim")
    assert victim is not None and victim["count"] == 1, "the killed batch's event is lost"
    assert interest(fresh.web_port, forgotten) is None, "the deleted user came back"
    someone = events[0].user_id
    assert interest(fresh.web_port, someone)["count"] == sum(e.user_id == someone for e in events)
