"""Rows kept as one flat array and row offsets (compressed sparse rows): how the item
neighbours (models/neighbours.py) and the version's sessions (models/session_neighbours.py)
are laid out, and the two steps every lookup of theirs takes, over a whole batch at once."""

from __future__ import annotations

import numpy as np


def indptr(rows: np.ndarray, n: int) -> np.ndarray:
    """(n + 1,) offsets of ``n`` rows whose entries are listed by row (``rows``: each entry's
    row, ascending)."""
    out = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=out[1:])
    return out


def positions(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The flat positions of ``lengths[i]`` entries from ``starts[i]``, for every i in turn."""
    return np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
