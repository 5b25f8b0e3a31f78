"""Every benchmark's output: the raw rows as JSON and a markdown table, side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable


def write_report(
    out: Path, name: str, rows: list[dict], columns: dict[str, Callable[[dict], str]]
) -> str:
    """Write ``out/name.json`` (rows) and ``out/name.md`` (one column per ``columns`` entry,
    header -> cell formatter); return and print the markdown."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(rows, indent=2))
    lines = [
        "| " + " | ".join(columns) + " |",
        "|---|" + "---:|" * (len(columns) - 1),
        *("| " + " | ".join(cell(row) for cell in columns.values()) + " |" for row in rows),
    ]
    table = "\n".join(lines) + "\n"
    (out / f"{name}.md").write_text(table)
    print(table, end="")
    return table
