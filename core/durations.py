"""Durations as people type them (``90``, ``15min``, ``6h``, ``7d``, ``inf``) and as reports show
them: one unit table, so what a flag accepts and what a result label says always agree."""

from __future__ import annotations

import math

_UNITS = {"s": 1, "min": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``15min``, ``6h``, ``7d`` or ``inf``.

    Raises ValueError saying what is wrong; the CLI shows it as a usage error.
    """
    text = text.strip().lower()
    if text in ("inf", "infinity"):
        return math.inf
    # longest unit first, so a one-letter unit never takes the end of a longer one's name
    for unit in sorted(_UNITS, key=len, reverse=True):
        if text.endswith(unit):
            number, scale = text[: -len(unit)], _UNITS[unit]
            break
    else:
        number, scale = text, 1
    try:
        seconds = float(number) * scale
    except ValueError:
        raise ValueError(f"{text!r} is not a duration like 3600, 6h, 7d or inf") from None
    if not seconds > 0:  # also rejects nan; every duration the CLI reads is a half-life
        raise ValueError(f"a half-life must be positive, got {text!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest label :func:`parse_duration` reads back: ``6h``, ``1.5d``, ``90s``, ``inf``."""
    if math.isinf(seconds):
        return "inf"
    for unit, size in sorted(_UNITS.items(), key=lambda unit_size: unit_size[1], reverse=True):
        if seconds >= size:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
