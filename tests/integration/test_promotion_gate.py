"""The promotion gate through the broker (issue 18): a worker explores with epsilon-greedy, users
answer some of its lists, and the trainer, reading the same topics, judges model versions on
those lists. It finds the context of every logged list it read (the same record ids as the
worker's), passes the serving version itself, holds back a model trained on scrambled items,
and an update it makes goes through the gate before any announcement."""

from __future__ import annotations

import random
import shutil
import threading

import orjson
import pytest

from core.events import Event, encode_event
from core.generator import GeneratorConfig, generate
from models.artifact import load_recommender
from models.promotion import GateConfig
from models.train import TrainConfig, train
from streams.tools.cluster import wait_for, wait_until_ready, worker_stats
from streams.trainer.lifelong import Trainer, TrainerConfig
from tests.helpers import consume, produce

pytestmark = pytest.mark.integration


def scrambled_model(settings, out):
    """A model of the same catalog that learned the wrong items: ids permuted in training."""
    events = generate(GeneratorConfig(n_users=100, n_items=200, events_per_user=30, seed=1))
    ids = [f"i{n}" for n in range(200)]
    shuffled = dict(zip(ids, random.Random(4).sample(ids, len(ids))))
    train([e._replace(item_id=shuffled[e.item_id]) for e in events], settings.interest,
          settings.blend, TrainConfig(model="mf", dim=16, epochs=5), out, show_progress=False)
    return load_recommender(out)


def test_the_gate_judges_versions_on_the_lists_the_worker_logged(settings, workers, tmp_path):
    root = tmp_path / "models"
    shutil.copytree(settings.model_path, root / "start")
    live = settings.model_copy(update={
        "model_path": root / "start", "explore": "epsilon", "explore_epsilon": 0.5,
        "explore_pool": 20, "top_k": 5, "cold_start_events": -1})  # fmt: skip
    wait_until_ready(live.web_port, timeout=90, process=workers(live))
    gate = GateConfig(min_lists=300, min_positives=50)
    trainer = Trainer(live, TrainerConfig(root, every_events=10**9, every_s=3600.0, window=5_000,
                                          reservoir=500, replay=200, gate=gate),
                      root / "start")  # fmt: skip
    stop = threading.Event()
    training = threading.Thread(target=trainer.run, args=(stop,), daemon=True)
    training.start()
    try:
        # the trainer reads records from when it starts: once it has events, it reads records
        warm = [Event("warm", "i1", "click", 1_700_000_000_000, None, "warm-0")]
        produce(live, [(b"warm", encode_event(warm[0]))])
        wait_for(lambda: "warm" in trainer.gate.states, 30, "the trainer reading events")
        history = generate(GeneratorConfig(n_users=60, n_items=200, events_per_user=12, seed=6))
        produce(live, [(e.user_id.encode(), encode_event(e)) for e in history])
        records = [orjson.loads(r.value) for r in consume(
            live.bootstrap, live.recs_topic, len(history) + 1, 60)]  # fmt: skip
        answered = [r for r in records if r["user_id"] != "warm"][:400]
        end = max(e.ts for e in history)
        feedback = [Event(r["user_id"], r["items"][n % 5]["item_id"], "click", end + n, None,
                          f"fb-{n}", r["rec_id"]) for n, r in enumerate(answered)]  # fmt: skip
        produce(live, [(e.user_id.encode(), encode_event(e)) for e in feedback])
        wait_for(lambda: len(trainer.gate.positives) >= len(feedback)
                 and len(trainer.gate.logged) >= len(answered), 60,
                 "the trainer reading the logged lists and their feedback")  # fmt: skip
        assert worker_stats(live.web_port)["applied"] >= len(history)
    finally:
        stop.set()
        training.join(60)

    # every logged list it read has its context: the trainer's record ids are the worker's
    assert set(trainer.gate.logged) <= set(trainer.gate.contexts)
    same = trainer.gate.judge(load_recommender(root / "start"))
    assert same.promote and same.estimates["lists"] >= len(answered)
    assert same.estimates["candidate_snips"] == same.estimates["serving_snips"] > 0
    wrong = trainer.gate.judge(scrambled_model(live, tmp_path / "scrambled"))
    assert not wrong.promote and wrong.reason in ("may_be_worse", "unsupported"), wrong

    # an update goes through the gate: announced only if it passed, held back (and counted)
    # otherwise
    trainer.update()
    assert len(trainer.announced) + len(trainer.held) == 1
    held = trainer.metrics.registry.get_sample_value(
        "streamrec_trainer_versions_held_back_total", {"reason": trainer.held[0][1]}
    ) if trainer.held else 0
    assert held == len(trainer.held)
