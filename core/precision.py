"""Half-precision storage of state arrays under one power-of-two scale per array.

A user's vector and recent weights are stored as float16 significands times ``2 ** exponent``,
the exponent that of the array's largest magnitude: 11 significant bits relative to the largest
element, float32's range, and half the bytes. The state math keeps its arrays on that grid
(:func:`snap` after every event), so what the codec writes is exactly what it reads back, and a
worker that restarts from the stored state computes bit for bit what one that never stopped did.
Multiplying and dividing by a power of two is exact in binary floating point, so ``snap`` is
idempotent: a snapped array snaps to itself.
"""

from __future__ import annotations

import math

import numpy as np

_EXACT_SCALE = 120  # 2 ** ±e is a normal float32 inside this: one multiply is exact


def exponent_of(values: np.ndarray) -> int:
    """The power of two that brings the largest magnitude into [0.5, 1); 0 for all zeros or
    for a non-finite array (left non-finite, for the caller's check to refuse)."""
    if values.size == 0:
        return 0
    largest = float(np.abs(values).max())
    if largest == 0.0 or not math.isfinite(largest):
        return 0
    return math.frexp(largest)[1]


def _scaled(values: np.ndarray, exponent: int) -> np.ndarray:
    if -_EXACT_SCALE < exponent < _EXACT_SCALE:
        return values * np.float32(2.0**exponent)
    return np.ldexp(values, exponent).astype(np.float32)


def halves(values: np.ndarray) -> tuple[int, np.ndarray]:
    """``(exponent, float16 significands)`` with ``values ≈ significands * 2 ** exponent``."""
    values = np.asarray(values, dtype=np.float32)
    exponent = exponent_of(values)
    return exponent, _scaled(values, -exponent).astype("<f2")


def from_halves(exponent: int, significands: np.ndarray) -> np.ndarray:
    """The float32 array :func:`halves` stands for."""
    return _scaled(significands.astype(np.float32), exponent)


def snap(values: np.ndarray) -> np.ndarray:
    """``values`` rounded onto the stored grid (float32 out)."""
    return from_halves(*halves(values))


# One snap moves an element by at most half the grid's spacing at the top of the scale: 2 ** -12
# of 2 ** exponent, which is at most 2 ** -11 of the largest magnitude.
SNAP_ERROR = 2.0**-11


def within_snaps(actual: np.ndarray, exact: np.ndarray, snaps: int, scale: float) -> bool:
    """Whether state math on the grid is within its rounding of the exact sum: each of ``snaps``
    snaps errs by at most SNAP_ERROR of the vector's size then, and decays with it after, so
    ``scale`` is the decayed sum of the contributions' magnitudes (sum |w_i| d_i max|e_i|)."""
    bound = snaps * SNAP_ERROR * scale + 1e-6 * (1.0 + scale)  # + float32's own rounding
    return bool(np.all(np.abs(np.asarray(actual, np.float64) - exact) <= bound))
