"""The one follower of the internal topics (streams/worker/followers.py): its failure rule, held
with a stand-in consumer (no broker), its wait for a broker that does not answer yet, and what
the model-updates reader hands the loop."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from types import SimpleNamespace

import pytest

from core.seal import Seal
from streams.announcements import announcement_of, valid_of
from streams.settings import Settings
from streams.worker.followers import Follower, model_follower, taken_by
from streams.worker.refusals import Refusals
from streams.worker.topic_readers import read_announcements
from streams.worker.metrics import PipelineStats
from streams.worker.serving import Serving
from tests.unit.step_helpers import recommender


class Log:
    """A stand-in consumer at the start of a topic holding ``records``: the first poll reads
    them all, later ones wait their timeout and read nothing, as at the end of a topic."""

    def __init__(self, records: list) -> None:
        self.records = records
        self.done = False
        self.closed = threading.Event()

    def poll(self, timeout_ms: int) -> dict:
        if self.done:
            self.closed.wait(timeout_ms / 1000)  # a real poll's wait for new records
            return {}
        self.done = True
        return {("topic", 0): list(self.records)}

    def close(self) -> None:
        self.closed.set()


@pytest.fixture
def loop():
    """An event loop running in a thread of its own, as the worker's runs beside its followers."""
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    runner.join(30)
    loop.close()


def test_a_failed_read_is_logged_and_the_topic_read_again_from_its_start(loop, caplog):
    topic = [SimpleNamespace(key=b"a", value=b"1", offset=0),
             SimpleNamespace(key=b"b", value=b"2", offset=1)]  # fmt: skip
    consumers: list[Log] = []

    def read(records: list) -> tuple[dict, list]:
        if records and len(consumers) == 1:
            raise RuntimeError("a reader that fails once")
        return {r.key.decode(): r.value for r in records}, []

    class AtStart(Follower):
        def connected(self) -> Log:
            consumers.append(Log(topic))
            return consumers[-1]

    taken: list[dict] = []
    arrived = threading.Condition()

    def take(read: dict) -> None:
        assert threading.current_thread() is not follower  # handed to the loop's thread
        with arrived:
            taken.append(dict(read))
            arrived.notify_all()

    follower = AtStart(Settings(), "internal", 1, read, taken_by(take), loop, retry_s=0.01)
    with caplog.at_level(logging.ERROR, logger="streams.worker.followers"):
        follower.start()
        with arrived:
            assert arrived.wait_for(lambda: taken, timeout=30), "nothing read after the failure"
    assert taken == [{"a": b"1", "b": b"2"}]  # the whole topic again, not the rest of it
    assert follower.failures == 1 and "internal follower failed" in caplog.text
    assert len(consumers) == 2 and consumers[0].closed.is_set()
    assert follower.is_alive()  # a failure does not end it
    follower.stop()
    follower.join(30)
    assert not follower.is_alive() and consumers[1].closed.is_set()


def test_the_follower_keeps_trying_while_the_broker_is_unreachable(loop):
    from streams.tools.broker import free_port
    from streams.tools.cluster import wait_for

    unreachable = Settings(bootstrap=f"127.0.0.1:{free_port()}")  # nothing listens there
    follower = model_follower(unreachable, Serving(recommender(), PipelineStats()), loop)
    follower.retry_s = 0.05
    follower.start()
    try:
        wait_for(lambda: follower.connect_failures >= 2, 30, "two failed connects")
        assert follower.is_alive()  # a worker started before its broker still follows later
    finally:
        follower.stop()
        follower.join(30)
    assert not follower.is_alive()


def test_the_newest_announcement_is_served_and_the_served_version_skipped(model_path, loop):
    serving = Serving(recommender(), PipelineStats())
    ready = model_follower(Settings(model_path=model_path), serving, loop).ready
    said = announcement_of(model_path)
    broken = said.model_copy(update={"version": "v-broken", "path": str(model_path / "nope")})
    backlog = [SimpleNamespace(value=v.model_dump_json().encode(), offset=n)
               for n, v in enumerate([broken, said])] + [SimpleNamespace(value=b"{", offset=2)]
    read, bad = read_announcements(backlog)
    assert [(r.offset, why) for r, why, _ in bad] == [(2, "bad_announcement")]
    assert read["serve"] == said  # the newest valid one; the broken one is older
    action = ready(read)
    assert isinstance(action, functools.partial) and action.func == serving.swap
    assert action.args[0].version == said.version  # loaded and checked here, off the loop
    action()
    assert serving.recommender.version == said.version
    assert ready(read) is None  # announced again (a re-read from the start): nothing to do
    refused = ready({"serve": broken})
    assert refused.func.__name__ == "refuse" and refused.args[0] == "v-broken"


def test_a_rollback_announced_before_the_swap_ran_is_still_served(model_path, loop):
    """The follower compares with what the loop will serve once its hand-overs ran, not what it
    serves now: serving X, A announced (its swap queued on the loop), then X again: X must go
    back in. A refusal changes nothing served: a good artifact later announced under the refused
    version is still served (a corrupt copy refused, then the real one promoted)."""
    serving = Serving(recommender(), PipelineStats())
    ready = model_follower(Settings(model_path=model_path), serving, loop).ready
    first = serving.recommender.version
    good = announcement_of(model_path)
    to_new = ready({"serve": good})  # handed over, not yet run
    back = good.model_copy(update={"version": first})  # its files are not that version's
    rollback = ready({"serve": back})
    assert to_new.func == serving.swap and rollback is not None, "the rollback was skipped"
    assert rollback.func.__name__ == "refuse"
    assert ready({"serve": good}) is None  # what the loop will serve already

    fresh = model_follower(Settings(model_path=model_path), Serving(recommender(), PipelineStats()),
                         loop).ready
    corrupt = good.model_copy(update={"path": str(model_path / "nope")})  # good's version
    assert fresh({"serve": corrupt}).func.__name__ == "refuse"
    assert fresh({"serve": good}).func.__name__ == "swap", "the refused version stuck"


def test_an_announcement_is_served_only_from_the_model_root_and_with_its_manifests_hash(
        model_path, loop, tmp_path):  # fmt: skip
    import shutil

    settings = Settings(model_path=model_path)  # the root: the directory model_path is in
    serving = Serving(recommender(), PipelineStats())
    ready = model_follower(settings, serving, loop).ready
    said = announcement_of(model_path)
    forged = said.model_copy(update={"sha256": "0" * 64})  # issue 32: served before
    refused = ready({"serve": forged})
    assert refused.func.__name__ == "refuse" and "sha256" in refused.args[1]
    elsewhere = tmp_path / "elsewhere" / "copy"
    shutil.copytree(model_path, elsewhere)
    outside = ready({"serve": announcement_of(elsewhere)})  # a good artifact, outside the root
    assert outside.func.__name__ == "refuse" and "outside the model root" in outside.args[1]
    assert ready({"serve": said}).func == serving.swap


def test_a_restarted_worker_serves_the_newest_announcement_that_loads(model_path, tmp_path):
    """A refused announcement leaves its peers on the one before: so must a worker's start."""
    from streams.worker.model_choice import first_that_loads

    settings = Settings(model_path=model_path)
    good = announcement_of(model_path)
    broken = good.model_copy(update={"version": "v-broken", "path": str(model_path / "nope")})
    configured = recommender()
    assert first_that_loads([good, broken], settings, configured).version == good.version
    assert first_that_loads([broken], settings, configured) is configured
    assert first_that_loads([], settings, configured) is configured


class Sent:
    """A stand-in producer of the dead letters: what it was given, by topic."""

    def __init__(self) -> None:
        self.letters: list = []
        self.arrived = threading.Condition()

    def send(self, topic: str, key, value, headers) -> SimpleNamespace:
        with self.arrived:
            self.letters.append((topic, key, value, dict(headers)))
            self.arrived.notify_all()
        return SimpleNamespace(get=lambda timeout: None)

    def close(self, timeout: float) -> None:
        pass

    def wait(self, count: int) -> list:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.letters) >= count, timeout=30)
        return self.letters


def test_a_follower_with_a_seal_reads_only_the_clusters_records_and_dead_letters_the_rest(
        loop, caplog):  # fmt: skip
    """Issue 32: a follower counted what it refused but dead-lettered nothing, and logged each
    poll. Every refused record now has a dead letter with its reason, where it came from and
    which worker refused it, a count per reason, and one log line per topic and reason."""
    seal = Seal(b"k" * 16)
    signed = SimpleNamespace(topic="internal", key=b"a", value=b"1", offset=0, partition=0,
                             headers=seal.headers("internal", b"a", b"1"))  # fmt: skip
    forged = [SimpleNamespace(topic="internal", key=b"b", value=b"2", offset=1, partition=0,
                              headers=[]),
              SimpleNamespace(topic="internal", key=b"c", value=b"3", offset=2, partition=0,
                              headers=seal.headers("other", b"c", b"3"))]  # another topic's

    class AtStart(Follower):
        def connected(self) -> Log:
            return Log([signed, *forged])

    taken: list[dict] = []
    counted: list[int] = []
    arrived = threading.Condition()

    def note(into: list, what) -> None:
        with arrived:
            into.append(what)
            arrived.notify_all()

    sent, stats, settings = Sent(), PipelineStats(), Settings()
    refusals = Refusals(settings, stats, loop, new_producer=lambda: sent)
    refusals.start()
    follower = AtStart(settings, "internal", 1,
                       lambda records: ({r.key.decode(): r.value for r in records}, []),
                       taken_by(functools.partial(note, taken)), loop,
                       functools.partial(note, counted), seal=seal,
                       refusals=refusals)  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="streams.worker.refusals"):
        follower.start()
        try:
            with arrived:
                assert arrived.wait_for(lambda: taken and counted, timeout=30)
            letters = sent.wait(2)
        finally:
            follower.stop()
            follower.join(30)
            refusals.stop()
            refusals.join(30)
    assert taken == [{"a": b"1"}] and counted == [2]
    assert [(topic, key, headers["streamrec.reason"], headers["streamrec.source"])
            for topic, key, _, headers in letters] == [
        (settings.dlq_topic, b"b", b"bad_mac", b"internal/0/1"),
        (settings.dlq_topic, b"c", b"bad_mac", b"internal/0/2")]  # fmt: skip
    assert all(h["streamrec.refused_by"] == settings.canonical_url.encode()
               for *_, h in letters)  # fmt: skip
    assert stats.dead_lettered["bad_mac"] == 2 and caplog.text.count("refused a record") == 1


def test_what_the_loop_refuses_is_dead_lettered_with_the_record_it_was_read_from(loop):
    sent, stats, settings = Sent(), PipelineStats(), Settings()
    refusals = Refusals(settings, stats, loop, new_producer=lambda: sent)
    refusals.start()
    follower = Follower(settings, "vectors", 1, lambda records: ({}, []), lambda read: None,
                        loop, refusals=refusals)  # fmt: skip
    record = SimpleNamespace(topic="vectors", key=b"x", value=b"v", offset=7, partition=0)
    large = SimpleNamespace(topic="vectors", key=b"z", value=b"w" * 300_000, offset=8,
                            partition=0)  # fmt: skip
    follower.run_on_loop(lambda: {"x": ("refused_item_vector", "too long"),
                                  "y": ("refused_item_vector", "too long"),
                                  "z": ("refused_item_vector", "too wide")},
                         {b"x": record, b"z": large})  # fmt: skip
    letters = sent.wait(3)
    refusals.stop()
    refusals.join(30)
    assert [(key, value, h["streamrec.source"]) for _, key, value, h in letters[:2]] == [
        (b"x", b"v", b"vectors/0/7"), (b"y", None, b"vectors/-1/-1")]  # fmt: skip
    # every worker dead-letters it: a large forgery is cut small, its size and hash kept
    _, _, value, headers = letters[2]
    assert len(value) < 16 * 1024 and headers["streamrec.size"] == b"300000"


def test_an_announcement_without_the_clusters_mac_is_not_valid(model_path):
    seal = Seal(b"k" * 16)
    value = announcement_of(model_path).model_dump_json().encode()

    def record(headers) -> SimpleNamespace:
        return SimpleNamespace(topic="updates", key=b"serve", value=value, offset=0,
                               headers=headers)  # fmt: skip

    assert valid_of([record(seal.headers("updates", b"serve", value))], seal)
    assert not valid_of([record([])], seal)
    assert valid_of([record([])])  # without a key, every announcement is believed
