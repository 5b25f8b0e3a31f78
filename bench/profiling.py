"""Where a worker's time goes: py-spy samples of running processes, summarised by function and by
the package the time is spent in.

Used by bench/throughput.py ``--profile``; writes ``<name>.txt`` (py-spy's collapsed stacks, for
flamegraph tools or speedscope) and returns the summary.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

# Which layer a frame's file belongs to; the first match wins.
LAYERS = [
    ("streamrec", re.compile(r"(^|/)(core|streams|models|bench)/")),
    ("faust", re.compile(r"(^|/)faust/")),
    ("mode", re.compile(r"(^|/)mode/")),
    ("quixstreams", re.compile(r"(^|/)quixstreams/")),
    ("kafka client", re.compile(r"(^|/)(aiokafka|kafka|confluent_kafka)/")),
    ("torch", re.compile(r"(^|/)torch/")),
    ("numpy", re.compile(r"(^|/)numpy/")),
    ("asyncio + selectors", re.compile(r"(^|/)(asyncio/|selectors\.py)")),
    ("logging", re.compile(r"(^|/)logging/")),
]
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^:]*)(:\d+)?\)$")


class Profiler:
    """py-spy record on ``pids`` until :meth:`stop`."""

    def __init__(self, out: Path, name: str, pids: list[int], rate: int = 100) -> None:
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        out.mkdir(parents=True, exist_ok=True)
        self.files = [out / f"{name}-{pid}.txt" for pid in pids]
        self.processes = [
            subprocess.Popen(
                [spy, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "--gil",
                 "--output", str(path)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            for pid, path in zip(pids, self.files)
        ]

    def stop(self) -> dict:
        for process in self.processes:
            process.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        for process in self.processes:
            process.wait(30)
        return summarise(self.files)


def layer(file: str) -> str:
    return next((name for name, pattern in LAYERS if pattern.search(file)), "other")


def summarise(files: list[Path], top: int = 12) -> dict:
    """Self time by function and by layer, and the share of samples inside our agent."""
    by_function: Counter[str] = Counter()
    by_layer: Counter[str] = Counter()
    total = 0
    for path in files:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            frames = stack.split(";")
            samples = int(count)
            total += samples
            match = FRAME.match(frames[-1])
            function, file = (match["function"], match["file"]) if match else (frames[-1], "")
            by_function[f"{function} ({Path(file).name})"] += samples
            by_layer[layer(file)] += samples
    share = {k: round(v / total, 3) for k, v in by_layer.most_common()} if total else {}
    return {
        "samples": total,
        "self_by_layer": share,
        "self_top": [[name, round(v / total, 3)] for name, v in by_function.most_common(top)],
        "files": [str(path) for path in files],
    }
