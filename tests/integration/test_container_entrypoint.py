"""The image's entrypoint, run in the venv exactly as the container runs it: ENTRYPOINT + CMD with
the image's and compose's environment, the HEALTHCHECK command, and a clean stop on SIGTERM
(offsets committed: a restart re-reads nothing)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from streams.tools.broker import free_port, stop_process
from streams.kafka_edge.transactions import isolation_level
from streams.tools.cluster import settings_env, wait_for, worker_stats
from core.generator import GeneratorConfig, generate
from tests.helpers import consume, event_messages, produce
from tests.unit.test_deploy import compose, dockerfile_instructions, image_env

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent  # the venv's console scripts, like /opt/streamrec/bin


def container_env(settings, tmp_path: Path) -> dict[str, str]:
    """Image ENV, then the compose worker's environment, then what differs on this machine:
    the broker, the model, the state volume, a free port and this test's own topics."""
    compose_env = {
        k: str(v) for k, v in compose()["services"]["worker"]["environment"].items()
        if "${" not in str(v)
    }
    here = settings_env(settings)
    local = {k: here[k] for k in here if k not in image_env() and k not in compose_env}
    return {
        **os.environ,
        **image_env(),
        **compose_env,
        **local,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "STREAMREC_BOOTSTRAP": settings.bootstrap,
        "STREAMREC_MODEL_PATH": str(settings.model_path),
        "STREAMREC_STATE_DIR": str(tmp_path / "data" / "state"),
        "STREAMREC_WEB_PORT": str(free_port()),
    }


def container_command() -> list[str]:
    instructions = dict(dockerfile_instructions())
    return json.loads(instructions["ENTRYPOINT"]) + json.loads(instructions["CMD"])


def healthy(env: dict[str, str]) -> bool:
    health = json.loads(dict(dockerfile_instructions())["HEALTHCHECK"].split("CMD", 1)[1])
    return subprocess.run(health, env=env, capture_output=True, timeout=30).returncode == 0


def test_entrypoint_serves_passes_healthcheck_and_stops_cleanly_on_sigterm(settings, tmp_path):
    env = container_env(settings, tmp_path)
    assert env["STREAMREC_WEB_HOST"] == "0.0.0.0"
    port = int(env["STREAMREC_WEB_PORT"])

    def start(n: int) -> subprocess.Popen:
        return subprocess.Popen(container_command(), env=env, stdout=open(tmp_path / f"w{n}.log",
                                "wb"), stderr=subprocess.STDOUT, start_new_session=True)

    assert not healthy(env)  # nothing answers before the worker is up (checked before it
    worker = start(0)        # starts: a worker on Apache Kafka can be up within one check)
    try:
        wait_for(lambda: healthy(env), 90, "the image's HEALTHCHECK to pass", process=worker)
        wait_for(lambda: (worker_stats(port) or {}).get("assigned"), 60, "partitions")
        events = generate(GeneratorConfig(n_users=10, n_items=200, events_per_user=5, seed=5))
        produce(settings, event_messages(events))
        # committed: under exactly-once a record is readable uncommitted a moment before its
        # transaction (and the offsets in it) commits, and a SIGTERM then aborts it
        consume(settings.bootstrap, settings.recs_topic, len(events), timeout=60,
                isolation=isolation_level(settings.processing_guarantee))
        worker.send_signal(signal.SIGTERM)  # what `docker stop` sends to the entrypoint
        assert worker.wait(30) == 0  # compose's stop_grace_period
    finally:
        stop_process(worker)

    restarted = start(1)
    try:
        wait_for(lambda: healthy(env), 90, "the restarted worker's HEALTHCHECK", process=restarted)
        marker = generate(GeneratorConfig(n_users=1, n_items=200, events_per_user=1, seed=6))
        # its own event_id: the generator's "u0-0" repeats the first run's, a retry to dedupe
        marker = [e._replace(event_id="marker-after-restart") for e in marker]
        produce(settings, event_messages(marker))
        consume(settings.bootstrap, settings.recs_topic, len(events) + 1, timeout=60,
                isolation=isolation_level(settings.processing_guarantee))
        stats = wait_for(lambda: (worker_stats(port) or {}).get("applied") and worker_stats(port),
                         30, "the marker event to be applied")
        # only the marker: offsets were committed on SIGTERM, nothing is read twice
        assert (stats["events_in"], stats["duplicates_skipped"]) == (1, 0)
    finally:
        stop_process(restarted)
