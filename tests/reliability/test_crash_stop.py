"""A failure the worker cannot confine to one user (here: the recommendations topic cannot be
written) stops it without committing, so a restart reads the batch again and nothing is lost."""

from __future__ import annotations


import orjson
import pytest

from core.generator import GeneratorConfig, generate
from streams.worker.failure import EXIT_UNCONFINED_FAILURE
from streams.kafka_edge.topics import ensure_topics
from streams.tools.broker import stop_process
from streams.tools.cluster import fetch_json, wait_for, wait_until_ready
from tests.helpers import (
    consume, event_messages, item_vectors, produce, reference_state, start_scripted_worker,
)

pytestmark = pytest.mark.integration

# The real worker, real broker and real RocksDB; only its third publish fails, as a broker that
# refuses the write would make it.
FAULTY_WORKER = """
import runpy, sys
import streams.worker.transaction
real, calls = streams.worker.transaction.send_records, [0]
async def failing(producer, topic, records, seal=None):
    calls[0] += 1
    if calls[0] == 3:
        raise ConnectionError("injected: the recommendations topic cannot be written")
    return await real(producer, topic, records, seal)
streams.worker.transaction.send_records = failing
sys.argv = ["streams", "worker", "--loglevel", "info"]
runpy.run_module("streams", run_name="__main__")
"""


def test_an_unconfined_failure_stops_the_worker_and_a_restart_loses_nothing(
    settings, workers, tmp_path
):
    settings = settings.model_copy(update={"batch_size": 40})
    events = generate(GeneratorConfig(n_users=12, n_items=200, events_per_user=25, seed=5))
    ensure_topics(settings)  # before producing: the broker would auto-create 4 partitions
    produce(settings, event_messages(events))  # a backlog: batches of 40 from the start
    log = tmp_path / "faulty.log"
    faulty = start_scripted_worker(settings, FAULTY_WORKER, log)
    try:
        assert faulty.wait(120) == EXIT_UNCONFINED_FAILURE
    finally:
        stop_process(faulty)
    assert "stopping without commit: ConnectionError: injected" in log.read_text()

    worker = workers(settings)
    wait_until_ready(settings.web_port, timeout=90, process=worker)
    wanted = {e.event_id for e in events}
    records = consume(settings.bootstrap, settings.recs_topic, len(events), timeout=90,
                      done=lambda rs: wanted <= {orjson.loads(r.value)["trigger"]["event_id"]
                                                 for r in rs})
    assert wanted <= {orjson.loads(r.value)["trigger"]["event_id"] for r in records}
    vectors = item_vectors(settings.model_path)
    for user in sorted({e.user_id for e in events}):
        mine = [e for e in events if e.user_id == user]
        expected = reference_state(mine, vectors, settings, 16)
        got = wait_for(lambda: (s := fetch_json(
            f"http://127.0.0.1:{settings.web_port}/users/{user}/interest"))["count"] >= len(mine)
            and s, 30, f"{user} caught up")
        assert got["count"] == expected["count"], f"{user}: applied twice or lost"
        assert got["recent"] == expected["recent"]
