"""Comparing the state math, which keeps its arrays on the stored grid, with exact sums."""

import numpy as np

from core.precision import SNAP_ERROR


def assert_close_on_grid(actual, expected, snaps: int, scale: float | None = None) -> None:
    """Within the rounding of ``snaps`` snaps (:func:`within_snaps`); ``scale``
    is the expected vector's largest element if not given (no cancellation on the way)."""
    expected = np.asarray(expected, dtype=np.float64)
    if scale is None:
        scale = float(np.abs(expected).max(initial=0.0))
    assert within_snaps(actual, expected, snaps, scale), (
        f"{np.asarray(actual)} vs {expected}: beyond {snaps} x {SNAP_ERROR} x {scale}")


def within_snaps(actual: np.ndarray, exact: np.ndarray, snaps: int, scale: float) -> bool:
    """Whether state math on the grid is within its rounding of the exact sum: each of ``snaps``
    snaps errs by at most SNAP_ERROR of the vector's size then, and decays with it after, so
    ``scale`` is the decayed sum of the contributions' magnitudes (sum |w_i| d_i max|e_i|)."""
    bound = snaps * SNAP_ERROR * scale + 1e-6 * (1.0 + scale)  # + float32's own rounding
    return bool(np.all(np.abs(np.asarray(actual, np.float64) - exact) <= bound))
