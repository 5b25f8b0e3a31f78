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
    threads: TorchThreads = 1,
) -> None:
    """Keep the model learning: read the events topic into a replay buffer, continue the served
    version every EVERY-EVENTS events (or EVERY-S seconds), write each version to ROOT and
    announce it on the model-updates topic for every worker to check and serve. It starts from
    the newest announced version, or MODEL-PATH if none is announced; Ctrl-C stops it."""
    import torch

    from streams.broker import ensure_topics
    from streams.model_updates import newest_announcement
    from streams.trainer import Trainer, TrainerConfig

    torch.set_num_threads(threads)
    settings = load_settings(bootstrap=bootstrap, model_path=model_path)
    with user_errors():
        ensure_topics(settings)
        announced = newest_announcement(settings)
        start = Path(announced.path) if announced and Path(announced.path).exists() \
            else settings.model_path  # fmt: skip
        config = TrainerConfig(root, every_events, every_s, window, reservoir, replay)
        running = Trainer(settings, config, start)
    console.print(f"trainer: continuing {running.version} from {start}; versions go to {root}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        running.run(stop)
    except KeyboardInterrupt:
        pass
    console.print(f"trainer: {len(running.announced)} versions announced; serving "
                  f"{running.version}")  # fmt: skip
