"""``streamrec demo``: the whole pipeline on one machine (streams/tools/demo.py runs it)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from streams.cli.options import (
    Engine,
    console,
    load_settings,
    model_option,
    stop_on_signals,
    user_errors,
)


def demo(
    users: Annotated[int, typer.Option(help="Synthetic users.")] = 200,
    events_per_user: Annotated[int, typer.Option(help="Events per user.")] = 50,
    rate: Annotated[
        float, typer.Option(min=0, help="Replay rate, events/s (0 = flat out).")
    ] = 1000.0,
    workdir: Annotated[Path, typer.Option(help="Where state, model and logs go.")] = Path(".demo"),
    bootstrap: Annotated[
        Optional[str], typer.Option(help="Use this broker instead of starting a local one.")
    ] = None,
    model: Annotated[str, model_option("Model kind to train and serve.")] = "sasrec",
    engine: Engine = "auto",
    stay: Annotated[
        Optional[bool], typer.Option(
            "--stay/--no-stay", help="After the replay, keep the broker and the worker's web "
            "console up until Ctrl-C (default: when run from a terminal).")
    ] = None,
) -> None:
    """Broker, topics, model, worker, replay, live recommendations; all shut down at the end
    (from a terminal, once you press Ctrl-C: until then the worker's web console, whose address
    it prints, shows the pipeline, any user and why they got each item).
    The broker is Apache Kafka where a JDK 17 runs it (its jars fetched by make install), else
    the embedded Tansu; the first line says which. The worker runs exactly-once on Apache Kafka
    (STREAMREC_PROCESSING_GUARANTEE, unless set to at_least_once) and at-least-once on Tansu,
    which has no transactions; its line says which.

    Other settings (STREAMREC_DIM, STREAMREC_PARTITIONS, ...) come from env.
    """
    from streams.tools.demo import run_demo

    settings = load_settings()
    stop_on_signals()  # whichever way it ends, the broker and the worker stop with it
    if stay is None:
        stay = sys.stdin.isatty()
    with user_errors():
        code = run_demo(
            users, events_per_user, rate, workdir, bootstrap, console, model, settings, engine,
            stay,
        )
    raise typer.Exit(code)
