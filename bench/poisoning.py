"""A poisoning run (issue 32): two workers with a cluster key take the inputs of the findings on
every internal topic and a hostile stream on the events topic; then the end state is checked.

    .venv/bin/python bench/poisoning.py [--bootstrap H:P] [--out bench/results]

The broker is a local Apache Kafka (one KRaft node) unless ``--bootstrap`` names one; both
workers, the broker and this script run on the same machine. Sent, in this order, none of it
with the cluster's MAC: by-item records naming 65,540 events partitions, four at offset 2**62
and fifteen malformed ones; model announcements with a zero sha256, an artifact outside the
model root, a rollback and garbage; item vectors for ten never-seen items 1.45x as long as the
catalog's longest, one with 4e9 updates for a real item, one of another dimension and 200 of
65,535 dimensions; content vectors for new items; and on the events topic the soak's hostile
kinds, a 1 MB event id, duplicate JSON keys and one user's burst of 20,000 events (finding 6).
A legitimate version is announced with the key before, legitimate events go before and after;
one forged vector goes first, so the workers' memory is measured once their dead-letter producers
run (what the vectors cost, not that fixed start).
Writes bench/results/poisoning.{json,md}: one row per check.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import orjson
from kafka import KafkaConsumer

from core.events import Event, encode_event
from core.generator import GeneratorConfig, generate
from core.item_stats import ItemStats, apply_item_events
from core.report import write_report
from models.train import TrainConfig, train
from streams.announcements import announce, announcement_of
from streams.kafka_edge.topics import ensure_topics
from streams.settings import Settings
from streams.tools.broker import free_port, start_local_broker, stop_process
from streams.tools.cluster import fetch_json, start_worker, wait_for, wait_until_ready, worker_stats

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the run's modules beside this one
from poisons import (  # noqa: E402
    FAKES,
    hostile_events,
    poison_announcements,
    poison_by_item,
    poison_vectors,
    send,
)

KEY = "the poisoning run's cluster key"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def long_request_line(port: int) -> int:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/stats/?{'x' * 100_000}", timeout=5)
        return 200
    except urllib.error.HTTPError as exc:
        return exc.code


def dead_letters(settings: Settings, count: int) -> Counter:
    """The dead letters (at least ``count``, or what came in 120 s) by source topic and reason."""
    consumer = KafkaConsumer(settings.dlq_topic, bootstrap_servers=settings.bootstrap,
                             auto_offset_reset="earliest", enable_auto_commit=False)  # fmt: skip
    found: Counter = Counter()
    deadline = time.monotonic() + 120
    while sum(found.values()) < count and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            for record in batch:
                headers = dict(record.headers)
                source = headers["streamrec.source"].decode().rsplit("/", 2)[0]
                found[source, headers["streamrec.reason"].decode()] += 1
    consumer.close()
    return found


def recommended(settings: Settings, count: int) -> list[dict]:
    consumer = KafkaConsumer(settings.recs_topic, bootstrap_servers=settings.bootstrap,
                             auto_offset_reset="earliest", isolation_level="read_committed",
                             enable_auto_commit=False)  # fmt: skip
    got: list[dict] = []
    deadline = time.monotonic() + 120
    while len(got) < count and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            got += [orjson.loads(r.value) for r in batch if r.value]
    consumer.close()
    return got


def run(bootstrap: str, work: Path) -> list[dict]:
    tag = uuid.uuid4().hex[:8]
    root = work / "models"
    generated = generate(GeneratorConfig(n_users=80, n_items=40, events_per_user=8, seed=5))
    first, later = generated[: len(generated) // 2], generated[len(generated) // 2 :]
    end = max(e.ts for e in generated)
    burst = [Event("hot", first[n % len(first)].item_id, "click", end + n, None, f"hot-{n}")
             for n in range(20_000)]  # fmt: skip
    history = generated + burst
    for name, events in (("v1", first), ("v2", generated), ("outside", first)):
        where = (work if name == "outside" else root) / name
        train(events, Settings().interest, Settings().blend,
              TrainConfig(model="mf", dim=16, epochs=3), where, show_progress=False)
    settings = Settings(bootstrap=bootstrap, app_id=f"poison-{tag}", events_topic=f"ev-{tag}",
                        recs_topic=f"recs-{tag}", model_updates_topic=f"updates-{tag}",
                        partitions=2, model_path=root / "v1", model_root=root,
                        state_dir=work / "state-1", web_port=free_port(), top_k=5,
                        item_learning=True, internal_key=KEY)  # fmt: skip
    second = settings.model_copy(update={"state_dir": work / "state-2", "web_port": free_port()})
    ensure_topics(settings)
    workers = [start_worker(one, work / f"worker-{n}.log") for n, one in
               enumerate((settings, second))]  # fmt: skip
    ports = [settings.web_port, second.web_port]
    try:
        for port, process in zip(ports, workers):
            wait_until_ready(port, timeout=120, process=process)
        stats = lambda: [worker_stats(p) for p in ports]  # noqa: E731
        send(bootstrap, settings.events_topic, [(e.user_id.encode(), encode_event(e))
                                                for e in first])  # fmt: skip
        wait_for(lambda: sum(s["applied"] for s in stats()) >= len(first), 120, "first half")
        announce(settings, announcement_of(root / "v2"))  # signed: the legitimate version
        version = announcement_of(root / "v2").version
        wait_for(lambda: all(s["model_version"] == version for s in stats()), 60, "v2 served")
        real_item = first[0].item_id
        # one forgery first, so each worker's dead-letter producer has started: its fixed cost
        # is not what the vectors cost
        warm_up = send(bootstrap, settings.item_vectors_topic, [(b"warm-up", b"forged")])
        dead_letters(settings, len(workers))
        rss_before = [rss_mb(w.pid) for w in workers]
        sent = poison_vectors(settings, root / "v2", real_item)
        sent[settings.item_vectors_topic] += warm_up
        vectors = sum(sent.values())
        wait_for(lambda: all(s["item_vectors_refused"] + s["content_vectors_refused"]
                             >= vectors for s in stats()), 120, "the vectors refused")
        rss_after = [rss_mb(w.pid) for w in workers]  # finding 3: 200 x 65,535 numbers
        sent[settings.item_events_topic] = poison_by_item(settings, real_item)
        sent[settings.model_updates_topic] = poison_announcements(settings, root / "v2",
                                                                  work / "outside")  # fmt: skip
        # every record refused: by-item ones by the item path that owns them, the followed
        # topics' by each worker
        letters = {topic: n * (1 if topic == settings.item_events_topic else len(workers))
                   for topic, n in sent.items()}  # fmt: skip
        expected = hostile_events(settings, first[0])
        code = long_request_line(ports[0])
        send(bootstrap, settings.events_topic, [(e.user_id.encode(), encode_event(e))
                                                for e in burst + later])  # fmt: skip
        hostile = sum(expected.values())
        wait_for(lambda: sum(s["events_in"] for s in stats()) >= len(history) + hostile, 180,
                 "every event read")  # fmt: skip
        wait_for(lambda: sum(s["dead_lettered"].get("bad_mac", 0) for s in stats())
                 >= sum(letters.values()), 300, "the internal poison refused")  # fmt: skip
        final = stats()
        found = dead_letters(settings, sum(letters.values()) + hostile)
        alive = all(w.poll() is None for w in workers)
        records = recommended(settings, len(history))
        shown = {i["item_id"] for r in records for i in r["items"]}
        half_life_ms = settings.popularity_half_life_s * 1000.0
        mismatched = []
        for item in sorted({e.item_id for e in history}):
            mine = [e for e in history if e.item_id == item]
            want, _ = apply_item_events(ItemStats(), [
                (e.type, e.ts, settings.interest.weight(e), (0, n), None)
                for n, e in enumerate(mine)], half_life_ms)  # fmt: skip
            got = fetch_json(f"http://127.0.0.1:{ports[0]}/items/{item}/stats")
            if (got["impressions"], got["positives"]) != (want.impressions, want.positives):
                mismatched.append(item)
        events_dead = Counter()
        for s in final:
            events_dead.update({r: c for r, c in s["dead_lettered"].items() if r != "bad_mac"})
    finally:
        for process in workers:
            stop_process(process, timeout=30)
    logs = "".join((work / f"worker-{n}.log").read_text(errors="replace") for n in range(2))
    return [
        {"check": "both workers alive", "expected": "yes", "found": "yes" if alive else "no",
         "ok": alive},
        {"check": "model version served", "expected": version,
         "found": ", ".join(s["model_version"] for s in final),
         "ok": all(s["model_version"] == version for s in final)},
        {"check": "fake items in records", "expected": "0 of " + str(len(records)),
         "found": str(len(shown & {*FAKES, *(f"huge-{n}" for n in range(200))})),
         "ok": not shown & set(FAKES)},
        {"check": "items whose statistics differ from the reference count", "expected": "0",
         "found": str(len(mismatched)), "ok": not mismatched},
        {"check": "internal records without the MAC dead-lettered (bad_mac), by topic",
         "expected": letters,
         "found": {topic: found[topic, "bad_mac"] for topic in letters},
         "ok": all(found[topic, "bad_mac"] == n for topic, n in letters.items())},
        {"check": "bad_mac counted on /stats/ (both workers)",
         "expected": str(sum(letters.values())),
         "found": str(sum(s["dead_lettered"].get("bad_mac", 0) for s in final)),
         "ok": sum(s["dead_lettered"].get("bad_mac", 0) for s in final) == sum(letters.values())},
        {"check": "hostile events dead-lettered, by reason", "expected": dict(expected),
         "found": dict(events_dead), "ok": events_dead == expected},
        {"check": "vectors refused on each worker (item + content)",
         "expected": f">= {vectors}",
         "found": ", ".join(str(s["item_vectors_refused"] + s["content_vectors_refused"])
                            for s in final),
         "ok": all(s["item_vectors_refused"] + s["content_vectors_refused"] >= vectors
                   for s in final)},
        {"check": "announcements refused on each worker", "expected": ">= 1",
         "found": ", ".join(str(s["models_refused"]) for s in final),
         "ok": all(s["models_refused"] >= 1 for s in final)},
        {"check": "worker RSS growth from the vectors, MB", "expected": "< 20",
         "found": ", ".join(f"{a - b:.1f}" for a, b in zip(rss_after, rss_before)),
         "ok": all(a - b < 20 for a, b in zip(rss_after, rss_before))},
        {"check": "100 KB request line", "expected": "400, no traceback",
         "found": f"{code}, {logs.count('Traceback')} tracebacks",
         "ok": code == 400 and "Traceback" not in logs},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", help="use this broker instead of starting a local one")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="poisoning-"))
    broker = None if args.bootstrap else start_local_broker("kafka", work)
    try:
        rows = run(args.bootstrap or broker.bootstrap, work)
    finally:
        if broker is not None:
            stop_process(broker.process, timeout=30)
    for row in rows:
        print(("ok  " if row["ok"] else "FAIL") + f"  {row['check']}: {row['found']}")
    write_report(args.out, "poisoning", rows, {
        "check": lambda r: r["check"], "expected": lambda r: str(r["expected"]),
        "found": lambda r: str(r["found"]), "ok": lambda r: "yes" if r["ok"] else "NO"})
    print(f"work folder (worker logs): {work}")


if __name__ == "__main__":
    main()
