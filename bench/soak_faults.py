"""The faults the soak injects and runs in its plan: SIGKILL and restart of a worker, a broker
freeze, a broker SIGKILL and restart (Apache Kafka: its log is on disk), a zombie worker, scaling
(the workers themselves: bench/soak_cluster.py). Every fault is followed by waiting (with a
deadline) until the group has settled, so each recovery is timed on its own.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

import numpy as np

from soak_cluster import Cluster
from streams.tools.broker import LocalBroker, start_broker, wait_ready
from streams.tools.cluster import WorkerError

def freeze(broker: subprocess.Popen, seconds: float) -> float:
    """SIGSTOP the broker for ``seconds``, then SIGCONT; return how long it was stopped. The
    broker keeps its log in memory only, so a freeze is the one outage it survives."""
    stopped = time.monotonic()
    os.kill(broker.pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)  # the length of the fault, not a wait on anything
    finally:
        os.kill(broker.pid, signal.SIGCONT)
    return time.monotonic() - stopped


def kill_broker_and_restart(broker: LocalBroker, log: Path, timeout: float = 120.0) -> float:
    """SIGKILL the broker and start it again on the same port and log directory (Apache Kafka
    only: Tansu would come back empty); ``broker`` then holds the new process. Returns seconds
    from the kill until it answers again."""
    if broker.engine != "kafka" or broker.data_dir is None:
        raise WorkerError("only Apache Kafka survives a SIGKILL (Tansu keeps its log in memory)")
    killed = time.monotonic()
    os.kill(broker.process.pid, signal.SIGKILL)
    broker.process.wait(30)
    again = start_broker(broker.port, broker.engine, broker.data_dir, log)
    broker.process = again.process
    wait_ready(broker, timeout, log)
    return time.monotonic() - killed


class Faults:
    """Runs the plan against the cluster and broker, and keeps what each fault did."""

    def __init__(self, cluster: Cluster, broker: LocalBroker, args: argparse.Namespace,
                 streaming: Callable[[], bool], broker_log: Path | None = None) -> None:
        self.cluster, self.broker, self.args, self.streaming = cluster, broker, args, streaming
        self.rng = np.random.default_rng(args.seed + 1)
        self.broker_log = broker_log
        self.kills: list[dict] = []
        self.zombies: list[dict] = []
        self.broker_kills: list[dict] = []
        self.scale_steps: list[dict] = []
        self.freezes: list[dict] = []
        self.errors: list[str] = []

    def run(self, fault: str, sent: int) -> str:
        """Inject ``fault`` and wait until the group has settled after it; each row keeps how
        much of the stream was sent when it began and whether it was still being sent."""
        cluster = self.cluster
        when = {"at_sent": sent, "mid_stream": self.streaming(),
                "at_ms": int(time.time() * 1000)}  # beside the broker's timestamps
        if fault == "kill":
            owners = cluster.owners()  # a worker that owns nothing has nothing to lose
            victim = owners[int(self.rng.integers(len(owners)))]
            inside = self.args.guarantee == "exactly_once" and len(self.kills) % 2 == 1
            row = {**cluster.kill_and_restart(victim, self.streaming, inside), **when}
            self.kills.append(row)
            line = (f"SIGKILL {row['worker']} (partitions {row['owned']}"
                    f"{', inside a transaction' if row['inside_transaction'] else ''}) at {sent:,} sent: "
                    f"group ready in {row['ready_s']} s, it consumes in {row['consuming_s']} s")
        elif fault == "freeze":
            before = cluster.events_in()
            stopped = freeze(self.broker.process, self.args.freeze_s)
            resumed = time.monotonic()
            cluster.wait_consuming(before, self.streaming)
            consuming_s = time.monotonic() - resumed
            cluster.settle()
            row = {"freeze_s": round(stopped, 2), "consuming_s": round(consuming_s, 2),
                   "settle_s": round(time.monotonic() - resumed, 2), **when}
            self.freezes.append(row)
            line = (f"broker SIGSTOP {row['freeze_s']} s; after SIGCONT consuming in "
                    f"{row['consuming_s']} s, group settled in {row['settle_s']} s")
        elif fault == "zombie":
            owners = cluster.owners()
            victim = owners[int(self.rng.integers(len(owners)))]
            row = {**cluster.zombie(victim, cluster.base.session_timeout_s), **when}
            self.zombies.append(row)
            line = (f"zombie {row['worker']} (partitions {row['owned']}): taken over in "
                    f"{row['taken_over_s']} s, SIGCONT after {row['stopped_s']} s, group settled "
                    f"in {row['settle_s']} s")
        elif fault == "broker kill":
            before = cluster.events_in()
            down_s = kill_broker_and_restart(self.broker, self.broker_log)
            cluster.wait_consuming(before, self.streaming)
            row = {"answering_s": round(down_s, 2), "settle_s": round(cluster.settle(), 2),
                   **when}
            self.broker_kills.append(row)
            line = (f"broker SIGKILL: answering again after {row['answering_s']} s, group "
                    f"settled in {row['settle_s']} s")
        else:
            before = len(cluster.live)
            if fault == "scale up":
                cluster.add()
            else:
                cluster.retire_oldest()
            row = {"step": f"{before} -> {len(cluster.live)}",
                   "settle_s": round(cluster.settle(), 2), "assignment": cluster.assignment,
                   **when}
            self.scale_steps.append(row)
            line = f"scale {row['step']}: settled in {row['settle_s']} s, {cluster.assignment}"
        return line if when["mid_stream"] else f"{line} (after the stream)"

    def safely(self, fault: str, sent: int) -> str:
        """Run ``fault``; a worker error is recorded, and the group settled before going on."""
        try:
            return self.run(fault, sent)
        except WorkerError as exc:
            self.errors.append(f"{fault}: {exc}")
            self.cluster.settle()
            return f"{fault} FAILED: {exc}"
