"""``streamrec ope``: off-policy estimates from a running pipeline's logs (streams/trainer/off_policy_logs.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from streams.cli.options import console, load_settings, user_errors


def ope_command(
    target: Annotated[Optional[list[float]], typer.Option(
        min=0, max=1, help="Target epsilon to estimate (repeat); 0 is greedy. Default: 0 and "
        "the logged epsilon's double (at most 1).")] = None,
    bootstrap: Annotated[Optional[str], typer.Option(help="Kafka bootstrap host:port.")] = None,
    idle_timeout: Annotated[float, typer.Option(
        min=0.5, help="Stop reading a topic after this many seconds with nothing new.")] = 5.0,
    out: Annotated[Optional[Path], typer.Option(help="Also write the estimates as JSON here.")
                   ] = None,
) -> None:
    """Estimate, from the records an epsilon-greedy worker logged (STREAMREC_EXPLORE=epsilon:
    each item's propensity and whether it was explored) and the feedback events that answer them
    (events carrying the record's rec_id), the per-slot positive rate another epsilon, or
    greedy, would have had: IPS and self-normalised IPS with 95% bootstrap intervals. Reads the
    recommendations and events topics (STREAMREC_RECS_TOPIC, STREAMREC_EVENTS_TOPIC) from
    their start; nothing is committed."""
    from rich.table import Table

    from streams.trainer.off_policy_logs import evaluate_logs

    settings = load_settings(bootstrap=bootstrap)
    with user_errors():
        result = evaluate_logs(settings, target or None, idle_timeout)
        if not result["epsilon_records"]:
            raise ValueError(f"no epsilon-greedy records on {settings.recs_topic} "
                             f"({result['records']} records of other policies)")
    eps = result["logged_epsilon"]
    table = Table(title=f"off-policy estimates from {result['epsilon_records']:,} lists logged "
                        f"at epsilon {', '.join(f'{e:g}' for e in eps)}; observed per-slot "
                        f"positive rate {result['observed_rate']:.5f}")  # fmt: skip
    for column in ("target epsilon", "IPS", "95% CI", "SNIPS", "95% CI"):
        table.add_column(column, justify="right")
    for row in result["estimates"]:
        table.add_row(f"{row['target_epsilon']:g}", f"{row['ips']:.5f}",
                      "{:.5f} .. {:.5f}".format(*row["ips_ci"]), f"{row['snips']:.5f}",
                      "{:.5f} .. {:.5f}".format(*row["snips_ci"]))  # fmt: skip
    console.print(table)
    console.print(f"{result['feedback_events']:,} feedback events; "
                  f"{result['lists_with_positives']:,} lists with a positive")
    if out is not None:
        out.write_text(json.dumps(result, indent=2))
        console.print(f"wrote {out}")
