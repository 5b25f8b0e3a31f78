"""Start worker processes and wait on their state: used by the demo, the tests and operators."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from pydantic import SecretStr

from streams.settings import Settings


class WorkerError(RuntimeError):
    """A worker exited or did not become ready in time."""


def settings_env(settings: Settings) -> dict[str, str]:
    """The env that makes a child process read the same settings."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is None:  # unset optional: the child's default is the same
            continue
        key = f"STREAMREC_{name.upper()}"
        if isinstance(value, SecretStr):  # str() is its mask: the child would run with that
            value = value.get_secret_value()
        env[key] = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return env


def child_env(settings: Settings, environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` with its ``STREAMREC_*`` replaced by ``settings``: a child's CLI reads exactly
    the settings its parent runs with, never a variable the parent's own settings did not take
    (an unset optional field stays unset)."""
    inherited = {k: v for k, v in environ.items() if not k.startswith("STREAMREC_")}
    return {**inherited, **settings_env(settings)}


def start_worker(settings: Settings, log_path: Path, loglevel: str = "info") -> subprocess.Popen:
    """Run ``streamrec worker`` as a child process with ``settings``; stop it with stop_process."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**child_env(settings, os.environ), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "streams", "worker", "--loglevel", loglevel],
        env=env,
        stdout=open(log_path, "ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def auth_headers(token: SecretStr | None) -> dict[str, str]:
    """The header a worker with ``api_token`` asks for; none without a token. The token stays a
    SecretStr until here, so no repr or traceback on the way shows it."""
    return {} if token is None else {"Authorization": f"Bearer {token.get_secret_value()}"}


def fetch_json(url: str, timeout: float = 2.0, token: SecretStr | None = None) -> Any:
    request = urllib.request.Request(url, headers=auth_headers(token))
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def worker_stats(web_port: int, token: SecretStr | None = None) -> dict[str, Any] | None:
    """The worker's /stats/ or None while its web server is not up. A 401 raises WorkerError at
    once: the token will not change while a caller waits for readiness."""
    try:
        return fetch_json(f"http://127.0.0.1:{web_port}/stats/", token=token)
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            given = "a wrong token" if token else "no token"
            raise WorkerError(f"worker on web port {web_port} refused {given} (401)") from None
        return None
    except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
        return None


def wait_for(
    condition: Callable[[], Any],
    timeout: float,
    what: str,
    interval: float = 0.1,
    process: subprocess.Popen | None = None,
) -> Any:
    """Poll ``condition`` until it returns something truthy; raise with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if process is not None and process.poll() is not None:
            raise WorkerError(f"process exited with {process.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            raise WorkerError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)  # poll interval; the condition is what we wait on


def is_ready(stats: dict[str, Any] | None) -> bool:
    return bool(stats and stats["assigned"] and not stats["rebalancing"] and stats["recovered"])


def wait_until_ready(
    web_port: int,
    timeout: float = 60.0,
    process: subprocess.Popen | None = None,
    token: SecretStr | None = None,
) -> float:
    """Block until the worker owns partitions and has recovered its tables; return seconds.
    ``token``: the worker's ``api_token``, if it has one."""
    started = time.monotonic()
    wait_for(
        lambda: is_ready(worker_stats(web_port, token)),
        timeout,
        f"worker on web port {web_port} to become ready",
        process=process,
    )
    return time.monotonic() - started


def exited(processes: list[subprocess.Popen]) -> str | None:
    """Which of ``processes`` has exited, and how; None while all run."""
    for process in processes:
        if process.poll() is not None:
            return f"pid {process.pid} exited with {process.returncode}"
    return None


def wait_until_all_assigned(
    web_ports: list[int],
    partitions: int,
    timeout: float,
    processes: list[subprocess.Popen],
    token: SecretStr | None = None,
) -> dict[int, list[int]]:
    """Block until the workers together own every partition, none rebalancing; return the
    assignment by web port (a worker may own none when there are more workers than partitions)."""

    def assignment() -> dict[int, list[int]] | None:
        if gone := exited(processes):
            raise WorkerError(gone)
        stats = {port: worker_stats(port, token) for port in web_ports}
        if any(s is None or s["rebalancing"] or not s["recovered"] for s in stats.values()):
            return None
        owned = {port: s["assigned"] for port, s in stats.items()}
        every = sorted(p for parts in owned.values() for p in parts)
        return owned if every == list(range(partitions)) else None

    what = f"{len(web_ports)} workers to own all {partitions} partitions"
    return wait_for(assignment, timeout, what)


@dataclass
class LocalCluster:
    """What ``streamrec up`` started; written to ``<workdir>/cluster.json`` once it is ready."""

    bootstrap: str
    workers: list[dict[str, Any]]  # pid, web_port, url, state_dir, log, partitions
    broker_pid: int | None = None

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))


def start_cluster(
    settings: Settings, n_workers: int, workdir: Path, processes: list[subprocess.Popen]
) -> LocalCluster:
    """Start ``n_workers`` workers, each with its own state dir and web port, and wait until they
    own every partition. Started processes are appended to ``processes`` as they start, so the
    caller can stop them whatever happens."""
    from streams.kafka_edge.topics import ensure_topics
    from streams.tools.broker import free_port

    ensure_topics(settings)
    members = []
    for n in range(n_workers):
        own = settings.model_copy(
            update={"state_dir": workdir / f"worker-{n}" / "state", "web_port": free_port()}
        )
        log = workdir / f"worker-{n}" / "worker.log"
        processes.append(start_worker(own, log))
        members.append({"pid": processes[-1].pid, "web_port": own.web_port,
                        "url": f"http://127.0.0.1:{own.web_port}", "state_dir": str(own.state_dir),
                        "log": str(log)})
    workers = processes[-n_workers:]
    owned = wait_until_all_assigned(
        [m["web_port"] for m in members],
        settings.partitions,
        60 + 15 * n_workers,
        workers,
        settings.api_token,
    )
    for member in members:
        member["partitions"] = owned[member["web_port"]]
    return LocalCluster(settings.bootstrap, members)
