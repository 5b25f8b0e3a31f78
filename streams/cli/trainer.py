"""``streamrec trainer``: the lifelong trainer, a long-running process beside the workers."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from streams.cli.options import Bootstrap, ModelPath, TorchThreads, console, load_settings, user_errors


def trainer(
    bootstrap: Bootstrap = None,
    model_path: ModelPath = None,
    root: Annotated[Path, typer.Option(
        help="Where versions are written (root/VERSION); the workers must read it too.",
    )] = Path("artifacts"),
    every_events: Annotated[int, typer.Option(
        min=1, help="Update after this many new events.",
    )] = 1_000,
    every_s: Annotated[float, typer.Option(
        min=0.1, help="Or after this many seconds, if any event came.",
    )] = 60.0,
    window: Annotated[int, typer.Option(min=1, help="Newest events kept for updates.")] = 100_000,
    reservoir: Annotated[int, typer.Option(
        min=0, help="Older events kept, a uniform sample of all that left the window.",
    )] = 20_000,
    replay: Annotated[int, typer.Option(
        min=0, help="Older examples replayed in each update, so it does not forget.",
    )] = 5_000,
    gate: Annotated[bool, typer.Option(
        help="Announce a version only when the promotion gate passes it: its self-normalised "
        "IPS on the lists an epsilon-greedy worker logged (STREAMREC_EXPLORE=epsilon) and "
        "their feedback is, at 95%, no more than --gate-margin worse than the serving "
        "version's; held-back versions stay in ROOT, unannounced.")] = False,
    gate_min_lists: Annotated[int, typer.Option(
        min=1, help="Logged lists (with a known context) the gate needs to judge.")] = 500,
    gate_margin: Annotated[float, typer.Option(
        min=0, max=1, help="How much worse (relative) still counts as not worse.")] = 0.05,
    metrics_port: Annotated[int, typer.Option(
        min=0, max=65535, help="Serve Prometheus metrics (versions announced, held back and "
        "why, the gate's estimates) on this port; 0 = off.")] = 0,
    threads: TorchThreads = 1,
) -> None:
    """Keep the model learning: read the events topic into a replay buffer, continue the served
    version every EVERY-EVENTS events (or EVERY-S seconds), write each version to ROOT and
    announce it on the model-updates topic for every worker to check and serve. It starts from
    the newest announced version, or MODEL-PATH if none is announced; Ctrl-C stops it.
    With --gate each version must first pass the promotion gate (models/promotion.py)."""
    import torch

    from models.promotion import GateConfig
    from streams.kafka_edge.topics import ensure_topics
    from streams.announcements import newest_announcement
    from streams.trainer.lifelong import Trainer, TrainerConfig

    torch.set_num_threads(threads)
    settings = load_settings(bootstrap=bootstrap, model_path=model_path)
    with user_errors():
        ensure_topics(settings)
        announced = newest_announcement(settings)
        start = Path(announced.path) if announced and Path(announced.path).exists() \
            else settings.model_path  # fmt: skip
        config = TrainerConfig(root, every_events, every_s, window, reservoir, replay,
                               gate=GateConfig(min_lists=gate_min_lists, margin=gate_margin)
                               if gate else None)  # fmt: skip
        running = Trainer(settings, config, start)
        if metrics_port:
            from prometheus_client import start_http_server

            start_http_server(metrics_port, registry=running.metrics.registry)
    console.print(f"trainer: continuing {running.version} from {start}; versions go to {root}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        running.run(stop)
    except KeyboardInterrupt:
        pass
    console.print(f"trainer: {len(running.announced)} versions announced, "
                  f"{len(running.held)} held back by the gate; serving {running.version}")
