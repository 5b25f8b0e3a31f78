"""``streamrec``: run the broker, workers, producers, consumers, training and the demo.

Every network command takes ``--bootstrap`` (env ``STREAMREC_BOOTSTRAP``), so it runs the same
against the embedded broker or Apache Kafka. Any setting can also come from ``STREAMREC_*`` env,
read here and nowhere below (:func:`streams.cli.options.load_settings`).

The app is assembled here from the command modules, which import only
:mod:`streams.cli.options`, never this package: every command is registered whichever way the
CLI is started (``streamrec``, ``python -m streams``, ``python -m streams.cli``).
"""

from __future__ import annotations

import typer

from streams.cli import (
    catalog, cluster, demo, evaluate, events, ope, promote, simulate, train, trainer,
)

app = typer.Typer(
    help="Real-time recommendations on Kafka: events -> decayed interest -> Torch top-K.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
# in the order `streamrec --help` lists them
for command in (
    cluster.broker,
    cluster.topics,
    cluster.worker,
    cluster.health,
    cluster.up,
    events.produce,
    events.tail,
    train.train,
    trainer.trainer,
    catalog.catalog,
    demo.demo,
):
    app.command()(command)
app.command("evaluate")(evaluate.evaluate_command)
app.command("simulate")(simulate.simulate_command)
app.command("ope")(ope.ope_command)
train.models_app.command("promote")(promote.models_promote)
app.add_typer(train.models_app, name="models")

__all__ = ["app"]
