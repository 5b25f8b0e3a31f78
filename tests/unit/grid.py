"""Comparing the state math, which keeps its arrays on the stored float16 grid, with exact sums."""

import numpy as np

from core.precision import SNAP_ERROR, within_snaps


def assert_close_on_grid(actual, expected, snaps: int, scale: float | None = None) -> None:
    """Within the rounding of ``snaps`` snaps (:func:`core.precision.within_snaps`); ``scale``
    is the expected vector's largest element if not given (no cancellation on the way)."""
    expected = np.asarray(expected, dtype=np.float64)
    if scale is None:
        scale = float(np.abs(expected).max(initial=0.0))
    assert within_snaps(actual, expected, snaps, scale), (
        f"{np.asarray(actual)} vs {expected}: beyond {snaps} x {SNAP_ERROR} x {scale}")
