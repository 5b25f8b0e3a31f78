"""``streamrec simulate``: exploration policies against a click simulator (models/simulation.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from streams.cli.options import console

POLICIES = ("greedy", "random", "epsilon", "ucb", "thompson")  # --help must not load Torch


def simulate_command(
    steps: Annotated[int, typer.Option(min=100, help="Lists shown per policy.")] = 100_000,
    policy: Annotated[Optional[list[str]], typer.Option(
        help=f"Policies to run (repeat); default all: {', '.join(POLICIES)}.")] = None,
    budget: Annotated[int, typer.Option(min=0, help="Slots of 10 that may explore.")] = 1,
    epsilon: Annotated[float, typer.Option(min=0, max=1, help="epsilon-greedy's rate.")] = 0.1,
    users: Annotated[int, typer.Option(min=100, help="Simulated users.")] = 1000,
    items: Annotated[int, typer.Option(min=50, help="Catalog size.")] = 500,
    seed: Annotated[int, typer.Option(help="World seed (same users, items, clicks).")] = 0,
    out: Annotated[Path, typer.Option(help="Directory for simulation.{json,md,png}.")] = Path(
        "simulation"),
) -> None:
    """Synthetic users with hidden, drifting preferences are shown 10 items per step by the
    worker's scoring code and each policy (greedy, uniform random, epsilon-greedy, UCB,
    Thompson sampling), and click by those preferences. Reports clicks, regret against an oracle
    that knows the preferences, catalog coverage and intra-list diversity (JSON, a table, plots
    of cumulative clicks and coverage), and checks the logged propensities: from the
    epsilon-greedy logs, IPS estimates of greedy's and epsilon=0.3's click rates against their
    true rates on the same lists."""
    from rich.progress import Progress

    from models.exploration import Exploration
    from models.simulation import World, epsilon_ips, simulate
    from models.simulation_report import write_simulation

    chosen = policy or list(POLICIES)
    unknown = sorted(set(chosen) - set(POLICIES))
    if unknown:
        raise typer.BadParameter(f"unknown policy {unknown}; choose from {', '.join(POLICIES)}")
    world = World(users=users, items=items, seed=seed)
    results, ope = [], []
    with Progress(console=console, disable=not console.is_terminal) as progress:
        for name in chosen:
            task = progress.add_task(name, total=steps)
            config = Exploration(name if name != "random" else "greedy", budget, epsilon)
            result = simulate(world, name, config, steps, keep_log=name == "epsilon",
                              progress=lambda n, task=task: progress.advance(task, n))  # fmt: skip
            results.append(result)
            if result.log is not None:
                ope = [epsilon_ips(result.log, config, target, 10) for target in (0.0, 0.3)]
    console.print(write_simulation(results, ope, out))
    for check in ope:
        error = abs(check["ips"] - check["true"]) / check["true"]
        console.print(f"off-policy, epsilon={check['target_epsilon']:g} from epsilon={epsilon:g} "
                      f"logs: IPS {check['ips']:.5f}, SNIPS {check['snips']:.5f}, true "
                      f"{check['true']:.5f} (IPS off by {error:.1%})")
    console.print(f"wrote {out}/simulation.json, .md, simulation-clicks.png, simulation-coverage.png")
