"""Block floating point for state arrays: 16-bit integers under one power-of-two scale per array.

A user's vector and recent weights are stored as ``int16 * 2 ** (exponent - 14)``, the exponent
that of the array's largest magnitude, so every element is a multiple of 2 ** -14 of the largest
element's power of two: 15 bits of precision relative to the largest element, float32's range,
half its bytes. The state math keeps its arrays on that grid (:func:`snapped` after every
event), so what the codec writes is exactly what it reads back, and a worker that restarts from
the stored state computes bit for bit what one that never stopped did.

Against a float16 per element (tried first), the block form rounds the large elements, the ones
that decide a dot product, 8 times finer, can hold no inf or NaN, and takes fewer numpy calls a
snap, which matters at several snaps per event.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

FRACTION_BITS = 14  # |int| <= 2 ** 14 <= int16's range
# One snap moves an element by at most half a step, 2 ** (exponent - 15), which is at most
# 2 ** -14 of the largest magnitude (that is above 2 ** (exponent - 1)).
SNAP_ERROR = 2.0**-FRACTION_BITS
MIN_EXPONENT, MAX_EXPONENT = -110, 126  # smaller is stored as zeros; larger is refused
# 2 ** e as float32 for e in -126..127, indexed by e + 126 (a batch's rows take theirs at once)
POWERS = np.array([2.0**e for e in range(-126, 128)], dtype=np.float32)
_POWERS = {e: POWERS[e + 126] for e in range(-126, 128)}
# the ufunc's own reduction: ndarray.max() adds a Python wrapper per call, and this runs twice
# per event
_largest = np.maximum.reduce


class Blocks(NamedTuple):
    """An array as stored: ``integers * 2 ** (exponent - FRACTION_BITS)``."""

    exponent: int
    integers: np.ndarray  # whole numbers, |x| <= 2 ** FRACTION_BITS (int16 once stored)


def exponent_of(values: np.ndarray) -> int | None:
    """The least power of two above every magnitude; None for a non-finite array, and
    MIN_EXPONENT for one that is all zeros or negligibly small."""
    largest = float(_largest(np.abs(values))) if values.size else 0.0
    if not math.isfinite(largest):
        return None
    return max(MIN_EXPONENT, math.frexp(largest)[1])


def snapped(values: np.ndarray) -> tuple[np.ndarray, Blocks | None]:
    """``values`` rounded onto the stored grid (float32), with its stored form; the form is None
    (and the values as given) when the array is not finite or too large to store."""
    exponent = exponent_of(values)
    if exponent is None or exponent > MAX_EXPONENT:
        return values, None
    integers = np.rint(values * _POWERS[FRACTION_BITS - exponent])
    return integers * _POWERS[exponent - FRACTION_BITS], Blocks(exponent, integers)


def snap(values: np.ndarray) -> np.ndarray:
    """``values`` rounded onto the stored grid (float32 out; as given if it cannot be stored)."""
    return snapped(np.asarray(values, dtype=np.float32))[0]


def to_blocks(values: np.ndarray) -> Blocks:
    """The stored form of an array (snapped on the way if it was not on the grid)."""
    stored = snapped(np.asarray(values, dtype=np.float32))[1]
    if stored is None:
        raise ValueError("a non-finite or too large array cannot be stored")
    return stored


def from_blocks(exponent: int, integers: np.ndarray) -> np.ndarray:
    """The float32 array a stored form stands for (finite for any int16 and valid exponent)."""
    if not MIN_EXPONENT <= exponent <= MAX_EXPONENT:
        raise ValueError(f"exponent {exponent} outside {MIN_EXPONENT}..{MAX_EXPONENT}")
    return integers.astype(np.float32) * _POWERS[exponent - FRACTION_BITS]

