"""``streamrec catalog``: the catalog agent, which encodes the items topic for the workers."""

from __future__ import annotations

import signal
import threading
from typing import Annotated, Optional

import typer

from streams.cli.options import Bootstrap, TorchThreads, console, load_settings, user_errors


def catalog(
    bootstrap: Bootstrap = None,
    encoder: Annotated[str, typer.Option(
        help="Content encoder: minilm (the packaged all-MiniLM-L6-v2) or a sentence-transformers "
        "model directory; it must be the one the served model's content vectors were made with "
        "(train --catalog --encoder).")] = "minilm",
    batch: Annotated[int, typer.Option(min=1, max=4096, help="Records read and encoded at once.")] = 64,
    until_idle: Annotated[Optional[float], typer.Option(
        min=0.1, help="Stop once no item record came for this many seconds (the catalog read to "
        "its end); default: run until Ctrl-C.")] = None,
    threads: TorchThreads = 1,
) -> None:
    """Follow the items topic (produce --catalog writes it): refuse a record that is not a v1
    item to the dead-letter topic with its reason, encode the good ones' text in batches, and
    publish each item's content vector on the content topic. Every worker follows that topic and
    serves a new item from its vector, projected into the model's space, before anyone has
    engaged with it; the model must have been trained with --catalog (its projection). Needs the
    content extra (make install has it)."""
    import torch

    from models.content import load_encoder
    from streams.catalog.agent import CatalogAgent
    from streams.kafka_edge.topics import ensure_topics

    torch.set_num_threads(threads)
    settings = load_settings(bootstrap=bootstrap)
    with user_errors():
        ensure_topics(settings)
        agent = CatalogAgent(settings, load_encoder(encoder), encoder, batch)
    console.print(f"catalog: {settings.items_topic} -> {settings.content_topic} with {encoder}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def progress(stats) -> None:  # noqa: ANN001
        console.print(f"catalog: {stats.read:,} read, {stats.encoded:,} encoded, "
                      f"{sum(stats.dead_lettered.values()):,} dead-lettered", highlight=False)

    try:
        with user_errors():
            stats = agent.run(lambda: not stop.is_set(), until_idle, progress)
    except KeyboardInterrupt:
        stats = agent.stats
    finally:
        agent.close()
    console.print(f"catalog: done: {stats.as_dict()}", highlight=False)
