"""The hot-key run (issue 32 #6): other users' end-to-end latency while one user sends a burst,
with the batch plane's slices off and on (``STREAMREC_USER_SLICE``).

    .venv/bin/python bench/hotkey.py [--burst 20000] [--background 300] [--seconds 15]
        [--slices 0 200] [--bootstrap H:P]

One worker (exactly-once, 4 partitions, fetch wait 10 ms, an MF model over a generated
1,682-item catalog, d = 64) on a local Apache Kafka unless ``--bootstrap`` names a broker; the
broker, the worker, the producers and the consumer all run on this machine. Other users' events
go at ``--background`` per second, paced by the clock: first alone for ``--seconds`` (quiet),
then while one user's ``--burst`` events are sent flat out, until the last of the burst's
records arrived. Latency is per event, from its send to its record read by a read_committed
consumer (bench/latency.py's). Writes bench/results/hotkey.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from kafka import KafkaProducer

from core.events import Event
from core.generator import GeneratorConfig, generate
from core.report import write_report
from models.train import TrainConfig, train
from streams.kafka_edge.topics import ensure_topics
from streams.settings import Settings
from streams.tools.broker import free_port, start_local_broker, stop_process
from streams.tools.cluster import WorkerError, start_worker, wait_for, wait_until_ready

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the latency benchmark beside this
from latency import CATALOG, LATENCY_COLUMNS, Arrivals, send, summarise  # noqa: E402


def phase(settings: Settings, arrivals: Arrivals, background: list[Event], rate: float,
          burst: list[Event], tag: str) -> tuple[dict[str, float], dict[str, float]]:
    """Send ``background`` at ``rate`` and, beside it, ``burst`` flat out; wait for every
    record; return what was sent of each (event id -> send time)."""
    sent_burst: dict[str, float] = {}
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap, linger_ms=0)
    hot = threading.Thread(target=lambda: sent_burst.update(
        send(producer, settings, burst, None, f"{tag}-hot")), daemon=True)  # fmt: skip
    if burst:
        hot.start()
    quiet_producer = KafkaProducer(bootstrap_servers=settings.bootstrap, linger_ms=0)
    sent = send(quiet_producer, settings, background, rate, f"{tag}-bg")
    if burst:
        hot.join()
    try:
        wait_for(lambda: all(e in arrivals.seen for e in [*sent, *sent_burst]), 300,
                 "every record")  # fmt: skip
    except WorkerError as exc:
        print(f"{tag}: {exc}; reporting the records that came", flush=True)
    producer.close()
    quiet_producer.close()
    return sent, sent_burst


def run_variant(base: Settings, work: Path, slice_: int, args: argparse.Namespace,
                replay: list[Event]) -> list[dict]:
    tag = uuid.uuid4().hex[:8]
    settings = base.model_copy(update={
        "app_id": f"hotkey-{tag}", "events_topic": f"events-{tag}", "recs_topic": f"recs-{tag}",
        "state_dir": work / tag / "state", "web_port": free_port(), "user_slice": slice_})
    ensure_topics(settings)
    worker = start_worker(settings, work / tag / "worker.log")
    try:
        wait_until_ready(settings.web_port, timeout=120, process=worker)
        arrivals = Arrivals(settings)
        arrivals.start()
        count = int(args.background * args.seconds)
        users = [e for e in replay if e.user_id != "hot"]
        send(KafkaProducer(bootstrap_servers=settings.bootstrap), settings, users[:400], 200,
             f"{tag}-warm")  # fmt: skip
        quiet, _ = phase(settings, arrivals, users[:count], args.background, [], f"{tag}-quiet")
        end = max(e.ts for e in replay)
        burst = [Event("hot", replay[n % len(replay)].item_id, "click", end + n, None)
                 for n in range(args.burst)]  # fmt: skip
        loud, hot = phase(settings, arrivals, users[count : 2 * count], args.background, burst,
                          f"{tag}-burst")  # fmt: skip
        arrivals.stopping.set()
        arrivals.join()
        name = f"user_slice={slice_}" if slice_ else "no slices"
        rows = [{**summarise(name, "others, quiet", quiet, arrivals)},
                {**summarise(name, "others, during the burst", loud, arrivals)},
                {**summarise(name, f"the hot user's {args.burst:,}", hot, arrivals)}]
        for row in rows:
            print(row, flush=True)
        return rows
    finally:
        stop_process(worker, timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=20_000, help="the hot user's events")
    parser.add_argument("--background", type=float, default=300.0, help="others' events/s")
    parser.add_argument("--seconds", type=float, default=15.0, help="of background per phase")
    parser.add_argument("--slices", type=int, nargs="+", default=[0, 200],
                        help="the user_slice of each variant (0: off)")
    parser.add_argument("--bootstrap", help="use this broker instead of starting a local one")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hotkey-"))
    broker = None if args.bootstrap else start_local_broker("kafka", work)
    bootstrap = args.bootstrap or broker.bootstrap
    rows: list[dict] = []
    try:
        events = generate(CATALOG)
        model = work / "model"
        train(events[: len(events) // 2], Settings().interest, Settings().blend,
              TrainConfig(model="mf", dim=64, epochs=5), model, show_progress=False)
        base = Settings(bootstrap=bootstrap, partitions=4, model_path=model,
                        fetch_max_wait_ms=10, explain=0)  # fmt: skip
        for slice_ in args.slices:
            rows += run_variant(base, work, slice_, args, events[len(events) // 2 :])
    finally:
        if broker is not None:
            stop_process(broker.process, timeout=30)
    write_report(args.out, "hotkey", rows, {
        "variant": lambda r: r["profile"],
        "events": lambda r: r["offered"],
        "sent": lambda r: f"{r['events']:,}",
        "received": lambda r: f"{r['received']:,}",
        **LATENCY_COLUMNS,
    })


if __name__ == "__main__":
    main()
