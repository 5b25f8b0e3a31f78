"""streams.kafka_edge.compat: the Faust version its private uses were read against, and each use still works.

An upgrade of faust-streaming fails here first; recheck streams/kafka_edge/compat.py against the new source.
"""

from __future__ import annotations

import asyncio
import inspect
from importlib.metadata import version
from pathlib import Path

import faust
import faust.stores.rocksdb
import faust.streams
import pytest
from faust.exceptions import NotReady

from streams.kafka_edge import compat, tansu
from streams.worker.views import table_size


def test_the_installed_faust_is_the_one_compat_was_checked_against():
    assert version("faust-streaming") == compat.FAUST_VERSION == "0.15.3"


def test_worker_consumer_uses_the_configured_fetch_wait():
    async def created_wait(fetch_max_wait_ms: int | None) -> int:
        compat.install(fetch_max_wait_ms)
        app = faust.App("compat-test", broker="kafka://127.0.0.1:1", store="memory://")
        consumer = app.consumer._thread._create_worker_consumer(app.transport)  # not started
        try:
            return consumer._fetch_max_wait_ms
        finally:
            await consumer.stop()

    try:
        assert asyncio.run(created_wait(7)) == 7
        assert asyncio.run(created_wait(None)) == 1500  # Faust's own value when not configured
    finally:
        compat.install(None)


def test_a_partitions_database_opens_on_first_use_and_size_counts_its_keys(tmp_path: Path):
    app = faust.App("compat-test", broker="kafka://127.0.0.1:1", store="rocksdb://",
                    datadir=str(tmp_path))  # fmt: skip
    table = app.Table("users", partitions=4, key_type=bytes, value_type=bytes,
                      options={"driver": "rocksdict"})  # fmt: skip
    assert dict(compat.rocksdb_partitions(table)) == {}

    for partition, key in ((1, b"u1"), (1, b"u2"), (3, b"u3")):
        compat.rocksdb_partition(table, partition).put(key, b"state")  # opened on first use
    assert sorted(compat.rocksdb_partitions(table)) == [1, 3]
    assert compat.rocksdb_partitions(table)[1] is compat.rocksdb_partition(table, 1)
    assert table_size(table) == 3


def test_before_the_store_stops_its_databases_are_still_open(tmp_path: Path):
    """Faust's Store.stop lets go of the partitions' databases: a compaction at shutdown must
    run before it (issue 32 #7)."""
    app = faust.App("compat-test", broker="kafka://127.0.0.1:1", store="rocksdb://",
                    datadir=str(tmp_path))  # fmt: skip
    table = app.Table("users", partitions=2, key_type=bytes, value_type=bytes,
                      options={"driver": "rocksdict"})  # fmt: skip
    compat.rocksdb_partition(table, 1).put(b"u1", b"state")
    seen: list = []
    compat.before_store_stops(table, lambda: seen.append(sorted(compat.rocksdb_partitions(table))))
    asyncio.run(table.data.stop())
    assert seen == [[1]] and dict(compat.rocksdb_partitions(table)) == {}


def test_the_kafka_producer_behind_fausts_is_reached_and_not_ready_before_start():
    app = faust.App("compat-test", broker="kafka://127.0.0.1:1", store="memory://")
    with pytest.raises(NotReady):
        compat.kafka_producer(app.producer)
    sentinel = object()
    app.producer._producer = sentinel  # what on_start sets to the started aiokafka producer
    assert compat.kafka_producer(app.producer) is sentinel


def test_a_memory_table_has_no_rocksdb_partitions():
    app = faust.App("compat-test", broker="kafka://127.0.0.1:1", store="memory://")
    table = app.Table("users", partitions=2)
    assert compat.rocksdb_partitions(table) == {} and table_size(table) == 0


def test_compacting_a_partition_leaves_no_byte_of_a_deleted_key_and_keeps_the_rest(tmp_path: Path):
    """A RocksDB delete writes a tombstone; the value, and the key as a file boundary in the
    MANIFEST, stay on disk until a bottommost compaction and a reopen."""
    app = faust.App("compat-test", broker="kafka://127.0.0.1:1", store="rocksdb://",
                    datadir=str(tmp_path))  # fmt: skip
    table = app.Table("users", partitions=2, key_type=bytes, value_type=bytes,
                      options={"driver": "rocksdict"})  # fmt: skip
    gone = b"forget-me-0123456789"

    db = compat.rocksdb_partition(table, 1)
    db.put(gone, b"state of the user to forget")
    db.put(b"kept-user", b"state kept")
    db.flush()
    db.delete(gone)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(gone in p.read_bytes() for p in files)  # the delete alone leaves it there

    assert compat.compact_partition(table, 1) and not compat.compact_partition(table, 0)

    assert [p for p in tmp_path.rglob("*") if p.is_file() and gone in p.read_bytes()] == []
    assert compat.rocksdb_partitions(table)[1].get(b"kept-user") == b"state kept"


class _Subscriptions:
    reassignment_in_progress = False

    def is_assigned(self, tp: object) -> bool:
        return True


class _Fetcher:
    """What aiokafka's Fetcher.fetched_records reads of itself: one prefetched partition."""

    def __init__(self, tp: object) -> None:
        self._subscriptions = _Subscriptions()
        self._records = {tp: self}
        self.consumed = False
        self._wait_consume_future = None

    def _notify(self, future: object) -> None:
        pass

    def check_raise(self) -> None:  # what a drained non-data entry does
        self.consumed = True


@pytest.mark.parametrize("wrapped, drained", [(False, True), (True, False)])
def test_an_empty_live_set_drains_nothing_from_the_paused_partitions(wrapped, drained):
    """aiokafka reads an empty collection of partitions as "all"; Faust empties its live set
    while recovery pauses the active partitions, and would drop what was drained of standbys."""
    from aiokafka.consumer.fetcher import Fetcher
    from faust.types import TP

    standby = TP("changelog", 2)
    live: set = set()
    fetcher = _Fetcher(standby)
    partitions = compat.LivePartitions(live) if wrapped else live
    asyncio.run(Fetcher.fetched_records(fetcher, partitions, timeout=0))
    assert fetcher.consumed is drained and (standby in fetcher._records) is not drained
    live.add(standby)  # resumed: the view follows the live set
    assert standby in compat.LivePartitions(live) and bool(compat.LivePartitions(set()))


def test_install_routes_faust_fetches_through_the_live_view():
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    compat.install(100)
    assert AIOKafkaConsumerThread._fetch_records is compat._fetch_live_records
    assert "active_partitions" in inspect.signature(compat._fetch_records).parameters


def test_a_highwater_the_fetch_never_tells_stops_recovery_instead_of_undercounting(monkeypatch):
    """Falling back to Tansu's ListOffsets (the last batch's base offset + 1) would end recovery
    before the changelog does."""
    from faust.types import TP

    class Silent:
        def __init__(self, **kwargs: object) -> None: ...
        async def start(self) -> None: ...
        async def stop(self) -> None: ...
        def assign(self, tps: object) -> None: ...
        def seek(self, tp: object, offset: int) -> None: ...
        def highwater(self, tp: object) -> None:
            return None
        async def getmany(self, timeout_ms: int) -> dict:
            return {}

    monkeypatch.setattr("aiokafka.AIOKafkaConsumer", Silent)
    monkeypatch.setattr(tansu, "_FETCH_TIMEOUT_S", 0.3)
    with pytest.raises(compat.HighwaterUnknown):
        asyncio.run(compat.fetch_highwaters(["127.0.0.1:1"], {TP("changelog", 0): 6}))


@pytest.mark.parametrize(
    "engine, read_committed, asked",
    [("tansu", False, "fetch"), ("kafka", False, None), ("tansu", True, "committed"),
     ("kafka", True, "committed")],
)
def test_recovery_asks_a_fetch_on_tansu_only(monkeypatch, engine, read_committed, asked):
    """Tansu's undercounting ListOffsets is corrected on Tansu alone; on Apache Kafka recovery
    takes what ListOffsets said, or under exactly-once the last committed record."""
    from types import SimpleNamespace

    from faust.types import TP

    listed = {TP("changelog", 0): 6}
    calls = []

    async def fetch(bootstrap, listed, auth):  # noqa: ANN001
        calls.append("fetch")
        return {tp: end + 9 for tp, end in listed.items()}

    async def committed(bootstrap, listed, auth):  # noqa: ANN001
        calls.append("committed")
        return {tp: end - 1 for tp, end in listed.items()}

    async def listed_ends(self, partitions):  # noqa: ANN001
        return listed

    monkeypatch.setattr(compat, "fetch_highwaters", fetch)
    monkeypatch.setattr(compat, "committed_ends", committed)
    monkeypatch.setattr(compat, "_listed_highwaters", listed_ends)
    conf = SimpleNamespace(broker=[SimpleNamespace(host="127.0.0.1", port=1)],
                           broker_credentials=None, ssl_context=None)  # fmt: skip
    thread = SimpleNamespace(consumer=SimpleNamespace(in_transaction=False),
                             app=SimpleNamespace(conf=conf))  # fmt: skip
    compat.install(None, read_committed=read_committed, broker_engine=engine)
    try:
        ends = asyncio.run(compat._highwaters(thread, list(listed)))
    finally:
        compat.install(None)
    assert calls == ([asked] if asked else [])
    assert ends == {"fetch": {TP("changelog", 0): 15}, "committed": {TP("changelog", 0): 5},
                    None: listed}[asked]  # fmt: skip


def test_a_broker_is_tansu_by_the_setting_or_else_by_its_cluster_id():
    assert tansu.named_tansu("auto", "tansu_cluster")
    assert not tansu.named_tansu("auto", "MkU3OEVBNTcwNTJENDM2Qk")  # a KRaft cluster id
    assert tansu.named_tansu("tansu", None) and not tansu.named_tansu("kafka", "tansu_cluster")
