"""The hot-key run (issue 32 #6): other users' end-to-end latency while one user sends a burst,
with the batch plane's slices off and on (``STREAMREC_USER_SLICE``).

    .venv/bin/python bench/hotkey.py [--burst 20000] [--background 300] [--seconds 15]
        [--slices 0 200 20] [--burst-from process] [--bootstrap H:P]

One worker (exactly-once, 4 partitions, fetch wait 10 ms, an MF model over a generated
1,682-item catalog, d = 64) on a local Apache Kafka unless ``--bootstrap`` names a broker; the
broker, the worker, the producers and the consumer all run on this machine. Other users' events
go at ``--background`` per second, paced by the clock: first alone for ``--seconds`` (quiet),
then while one user's ``--burst`` events are sent flat out, until the last of the burst's
records arrived. Latency is per event, from its send to its record read by a read_committed
consumer (bench/latency.py's). Writes bench/results/hotkey.{json,md}.

The variants run in the order given, each with its own worker and topics, on one broker that
keeps warming up (a cold broker's quiet phase is slower): a ratio of a later variant is
measured against a faster quiet phase, so the default order runs the product's default last.

The burst comes from a process of its own (``--burst-from process``, the default), its messages
encoded before it starts, sent by librdkafka (confluent-kafka, the bench extra) batching them
(``linger.ms`` 5), as a client sending thousands of events a second would: in the process that
paces the others' events and reads the records, a thread encoding and sending one request per
message in Python took the interpreter from the consumer whose clock stamps every arrival, and
a core of the two from the broker and the worker, so the load generator's own cost counted as
the worker's latency. ``--burst-from thread`` is that older arrangement.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from kafka import KafkaProducer
from kafka.partitioner.default import murmur2

from core.events import Event, encode_event
from core.generator import GeneratorConfig, generate
from core.report import write_report
from models.train import TrainConfig, train
from streams.kafka_edge.topics import ensure_topics
from streams.settings import Settings
from streams.tools.broker import free_port, start_local_broker, stop_process
from streams.tools.cluster import WorkerError, start_worker, wait_for, wait_until_ready

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the latency benchmark beside this
from latency import CATALOG, LATENCY_COLUMNS, Arrivals, send, summarise  # noqa: E402


def burst_process(bootstrap: str, topic: str, burst: list[Event], tag: str, ready, go,
                  out) -> None:  # fmt: skip
    """The burst, flat out, from a process of its own: every message encoded first (then
    ``ready`` is set), then sent once ``go`` is set, by librdkafka (batching, partitioned as
    Java's and kafka-python's clients do); puts event id -> send time on ``out``."""
    from confluent_kafka import Producer  # the bench extra

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5,
                         "partitioner": "murmur2_random"})  # fmt: skip
    messages = [(f"{tag}-{n}", event.user_id.encode(),
                 encode_event(event._replace(event_id=f"{tag}-{n}")))
                for n, event in enumerate(burst)]  # fmt: skip
    ready.set()
    go.wait()
    sent = {}
    for event_id, key, value in messages:
        sent[event_id] = time.time()
        producer.produce(topic, value, key)
        producer.poll(0)
    producer.flush()
    out.put(sent)


def phase(settings: Settings, arrivals: Arrivals, background: list[Event], rate: float,
          burst: list[Event], tag: str, burst_from: str = "process",
          ) -> tuple[dict[str, float], dict[str, float]]:  # fmt: skip
    """Send ``background`` at ``rate`` and, beside it, ``burst`` flat out; wait for every
    record; return what was sent of each (event id -> send time)."""
    sent_burst: dict[str, float] = {}
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap, linger_ms=0)
    if burst_from == "process":
        spawn = multiprocessing.get_context("spawn")
        ready, go, out = spawn.Event(), spawn.Event(), spawn.Queue()
        hot = spawn.Process(target=burst_process, args=(
            settings.bootstrap, settings.events_topic, burst, f"{tag}-hot", ready, go, out),
            daemon=True)  # fmt: skip
    else:
        hot = threading.Thread(target=lambda: sent_burst.update(
            send(producer, settings, burst, None, f"{tag}-hot")), daemon=True)  # fmt: skip
    if burst:
        hot.start()
        if burst_from == "process":
            if not ready.wait(timeout=120):
                raise WorkerError("the burst's process did not get ready in 120 s")
            go.set()
    quiet_producer = KafkaProducer(bootstrap_servers=settings.bootstrap, linger_ms=0)
    sent = send(quiet_producer, settings, background, rate, f"{tag}-bg")
    if burst:
        if burst_from == "process":
            sent_burst.update(out.get(timeout=300))
        hot.join()
    try:
        wait_for(lambda: all(e in arrivals.seen for e in [*sent, *sent_burst]), 300,
                 "every record")  # fmt: skip
    except WorkerError as exc:
        print(f"{tag}: {exc}; reporting the records that came", flush=True)
    producer.close()
    quiet_producer.close()
    return sent, sent_burst


def beside_hot(sent: dict[str, float], events: list[Event], partitions: int) -> dict[str, float]:
    """Of ``sent`` (ids ending in the index of their event in ``events``), the events of users
    whose partition is the hot user's, as Java's and kafka-python's default partitioner puts
    them."""
    def partition(user: str) -> int:
        return (murmur2(user.encode()) & 0x7FFFFFFF) % partitions

    hot = partition("hot")
    return {event_id: at for event_id, at in sent.items()
            if partition(events[int(event_id.rsplit("-", 1)[1])].user_id) == hot}


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
                          f"{tag}-burst", args.burst_from)  # fmt: skip
        arrivals.stopping.set()
        arrivals.join()
        name = f"user_slice={slice_}" if slice_ else "no slices"
        quiet_near = beside_hot(quiet, users[:count], settings.partitions)
        loud_near = beside_hot(loud, users[count : 2 * count], settings.partitions)
        rows = [{**summarise(name, "others, quiet", quiet, arrivals)},
                {**summarise(name, "others, during the burst", loud, arrivals)},
                {**summarise(name, "others in the hot partition, quiet", quiet_near, arrivals)},
                {**summarise(name, "others in the hot partition, during the burst", loud_near,
                             arrivals)},
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
    parser.add_argument("--slices", type=int, nargs="+", default=[0, 200, 20],
                        help="the user_slice of each variant (0: off)")
    parser.add_argument("--burst-from", choices=("process", "thread"), default="process",
                        help="send the burst from a process of its own (batching, encoded "
                        "first) or from a thread of the measuring process (one request a "
                        "message, as before)")
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
