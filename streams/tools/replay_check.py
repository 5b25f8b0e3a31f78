"""Prove the evaluator measures the product: the same events through the broker and a worker give
the same recommendation records as the library path the evaluator runs.

The events go to fresh topics (a run id in every name), so the check can run against a shared
Kafka without touching other data. The worker's record for a user's event is what the user sees
until their next event, so it must hold the same items, in the same order, as the list the
evaluator's product policy tests that next event against.

With exploration on, the evaluator's candidates for the list (the model's top K and the pool
after it) are explored here with the seed of the worker's record id, as the worker did
(models/slates.py), so the check proves the worker's draws are the library's. It holds for the
policies that read no item statistics (greedy, epsilon with ``explore_new_items = 0``): the
worker reads them a little after the fact, the evaluator at once. Cold start is off for the same
reason.
"""

from __future__ import annotations

import shutil
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from models.artifact import load_recommender
from models.exploration import explore, seed_of
from models.product import ModelVersions, ProductPolicy
from models.stream import Stream
from streams.kafka_edge.topics import ensure_topics
from streams.tools.broker import free_port, start_local_broker, stop_process
from streams.tools.cluster import start_worker, wait_until_ready
from streams.tools.consumer import recommendation_records
from core.events import Event
from streams.tools.producer import produce_events, to_message
from streams.settings import Settings


@dataclass
class CheckResult:
    events: int
    records: int  # emitted by the worker
    compared: int  # records followed by another event of the same user
    identical: int
    differing: list[str] = field(default_factory=list)  # event ids, first few
    explored: int = 0  # records with an explored item

    @property
    def passed(self) -> bool:
        return self.records == self.events and self.identical == self.compared > 0


def checked_settings(settings: Settings) -> Settings:
    """``settings`` as the check runs them: cold start off, and no policy that reads the item
    statistics (their timing differs between a worker and the evaluator)."""
    if settings.explore in ("ucb", "thompson"):
        raise ValueError(f"--through-kafka checks greedy and epsilon lists; {settings.explore} "
                         "reads item statistics the worker has later than the evaluator")
    return settings.model_copy(update={"cold_start_events": -1, "explore_new_items": 0})


def evaluator_lists(
    events: Sequence[Event], settings: Settings, model_path: Path
) -> dict[str, list[str]]:
    """The evaluator's product-policy list tested on each event, keyed by the user's previous
    event: the worker's record for that previous event is what the user saw. Exploring, the
    model's candidates for it instead (to explore with the record's seed)."""
    recommender = load_recommender(model_path)
    stream = Stream.of(events, warmup=0.0, catalog=recommender.item_ids)
    versions = ModelVersions(lambda _: recommender, stream, first=0)
    product = ProductPolicy("product", versions, settings.interest, settings.blend)
    lists = product.run(stream, settings.list_rules.exploration.candidates(settings.top_k))
    previous: dict[str, str] = {}
    out = {}
    row = 0
    for n, event in enumerate(stream.events):
        if stream.tested[n]:
            out[previous[event.user_id]] = [stream.item_ids[i] for i in lists[row] if i >= 0]
            row += 1
        previous[event.user_id] = event.event_id
    return out


def check_through_kafka(
    events: Sequence[Event],
    settings: Settings,
    model_path: Path,
    workdir: Path,
    bootstrap: str | None = None,
    timeout_s: float = 300.0,
) -> CheckResult:
    """Replay ``events`` (time-ordered) through a broker (a local one unless ``bootstrap``) and one
    worker serving ``model_path``; compare every record with :func:`evaluator_lists`."""
    run = uuid.uuid4().hex[:8]
    settings = checked_settings(settings)
    workdir.mkdir(parents=True, exist_ok=True)
    events = [e._replace(event_id=f"check-{run}-{n}") for n, e in enumerate(events)]
    processes = []
    try:
        if bootstrap is None:
            shutil.rmtree(workdir / "broker-data", ignore_errors=True)
            broker = start_local_broker("auto", workdir)
            processes.append(broker.process)
            bootstrap = broker.bootstrap
            settings = settings.model_copy(update={
                "processing_guarantee": broker.guarantee(settings.processing_guarantee)})
        settings = settings.model_copy(
            update={
                "bootstrap": bootstrap,
                "app_id": f"streamrec-check-{run}",
                "events_topic": f"check-{run}-events",
                "recs_topic": f"check-{run}-recommendations",
                "model_path": model_path,
                "state_dir": workdir / "state",
                "web_port": free_port(),
                "emit": "every",
            }
        )
        ensure_topics(settings)
        worker = start_worker(settings, workdir / "worker.log")
        processes.append(worker)
        wait_until_ready(
            settings.web_port, timeout=120, process=worker, token=settings.api_token
        )
        sender = threading.Thread(
            target=produce_events, args=(settings, [to_message(e) for e in events], 0.0)
        )
        sender.start()
        emitted: dict[str, dict] = {}
        for record in recommendation_records(settings, from_beginning=True, idle_timeout=60):
            emitted[record["trigger"]["event_id"]] = record
            if len(emitted) == len(events):
                break
        sender.join(timeout_s)
    finally:
        for process in reversed(processes):
            stop_process(process)
    expected = evaluator_lists(events, settings, model_path)
    differing = [
        event_id
        for event_id, items in expected.items()
        if [i["item_id"] for i in emitted.get(event_id, {"items": []})["items"]]
        != explored(items, emitted.get(event_id), settings)
    ]
    explored_records = sum(any(i["explored"] for i in r["items"]) for r in emitted.values())
    return CheckResult(len(events), len(emitted), len(expected), len(expected) - len(differing),
                       differing[:10], explored_records)  # fmt: skip


def explored(candidates: list[str], record: dict | None, settings: Settings) -> list[str]:
    """The list the worker should have sent for ``record``: ``candidates`` explored with the
    record's seed (greedy: the first K)."""
    exploration = settings.list_rules.exploration
    if record is None or exploration.candidates(settings.top_k) == settings.top_k:
        return candidates[: settings.top_k]
    ranked = np.arange(len(candidates))
    ones = np.ones(len(candidates))
    slate = explore(ranked, settings.top_k, exploration, ones, ones, seed_of(record["rec_id"]))
    return [candidates[i] for i in slate.items.tolist() if i >= 0]
