"""Forgetting functions: how much an event of a user still counts at a given age.

The design writes a user's interest as ``x_u(t) = x_u * e^{-g(t)}``; the weight an event keeps at
age ``t`` is ``e^{-g(t)}``. Ages run on one of two clocks: ``time`` (milliseconds of event time)
or ``events`` (how many later events of the same user there are). Ages are measured from the
user's newest event, as the interest state holds its vector (core/interest.py), so an event
just applied weighs 1 under every family. For the exponential the choice does not matter (the
vector is normalised before scoring); for the others on the time clock it does: a user idle past
a ``window`` still has their last window's events at full weight, where ages from the moment of
the request would have forgotten them all. Measuring from the newest event keeps a returning
user's list made of their own history rather than empty; the generator draws by the same
convention, so the fit's recovery test cannot tell the two apart.

Families, and what each costs a worker:

- ``exponential`` (g linear, the half-life ``h``): ``2 ** (-t / h)``. One (D,) vector per user,
  updated lazily and exactly by one multiply-add per event, in any arrival order
  (core/state_step.py). The only family with that property: ``w(a + b) = w(a) w(b)``.
- ``power`` (hyperbolic forgetting): ``(1 + t / tau) ** -alpha``. A long tail: old events fade
  slowly but never as fast as an exponential.
- ``window`` (g = -log of a linear ramp): ``max(0, 1 - t / W)``. Nothing older than ``W``.
- ``growth`` (g grows exponentially, ``g = e^{t/tau} - 1``): ``exp(-(e^{t/tau} - 1))``. Nearly
  flat while ``t << tau``, then a fast, smooth cut: a soft window.

The non-exponential families are not multiplicative, so no single decayed vector can be
carried forward: they are computed exactly from the user's kept recent events (item, time,
weight), ``O(history_len * D)`` per recomputation and ``history_len`` (time, weight) pairs of
state per user; exact within the kept ``history_len`` events, older ones dropped. (A power law
could instead be approximated by a few exponentials kept side by side, lazily and in any
order; not implemented here.)

Dropped: the design's example ``g(t) = alpha * e^{-beta t}``. Its weight
``exp(-alpha e^{-beta t})`` *rises* with age from ``e^{-alpha}`` to 1: old events end up
counting the most and nothing is ever forgotten, so over a long history it is the no-decay
vector with the newest events damped by at most ``e^{-alpha}``. That is not a forgetting
function, and :meth:`Forgetting.parse` says so when asked for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.durations import format_duration, parse_duration

FAMILIES = ("exponential", "power", "window", "growth")
CLOCKS = ("time", "events")
# the name of each family's scale in a spec, and the short names a spec may use for a family
_SCALE_KEY = {"exponential": "h", "power": "tau", "window": "w", "growth": "tau"}
_ALIASES = {"exp": "exponential", "pow": "power", "linear": "window"}
_SPEC_HELP = "like exp:2ev, exp:6h, power:tau=1d,alpha=0.7, window:30ev or growth:tau=20ev"


@dataclass(frozen=True)
class Forgetting:
    """A forgetting function: a family, its scale on a clock, and the power law's exponent.

    ``scale`` is the half-life (exponential), ``tau`` (power, growth) or the window ``W``, in
    milliseconds on the ``time`` clock or in events on the ``events`` clock. ``alpha`` is read
    by ``power`` only. ``exponential`` with an infinite scale never forgets.
    """

    family: str = "exponential"
    scale: float = 2.0
    clock: str = "events"
    alpha: float = 1.0

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown forgetting family {self.family!r}; choose from "
                             f"{', '.join(FAMILIES)}")  # fmt: skip
        if self.clock not in CLOCKS:
            raise ValueError(f"unknown clock {self.clock!r}; choose from {', '.join(CLOCKS)}")
        if not self.scale > 0 or (math.isinf(self.scale) and self.family != "exponential"):
            raise ValueError(f"{self.family}'s {_SCALE_KEY[self.family]} must be positive and "
                             f"finite, got {self.scale}")  # fmt: skip
        if not (self.alpha > 0 and math.isfinite(self.alpha)):
            raise ValueError(f"alpha must be positive and finite, got {self.alpha}")

    @classmethod
    def exponential(cls, half_life_ms: float, half_life_events: float | None) -> Forgetting:
        """Today's decay of an :class:`core.interest.InterestConfig` (its two half-life
        fields): on the events clock when ``half_life_events`` is set."""
        if half_life_events is not None:
            return cls("exponential", float(half_life_events), "events")
        return cls("exponential", float(half_life_ms), "time")

    @property
    def is_exponential(self) -> bool:
        """Whether the worker's lazy, one-vector state computes this function exactly."""
        return self.family == "exponential"

    def weights(self, ages: np.ndarray) -> np.ndarray:
        """The weight each event keeps at ``ages`` (ms or events, by the clock; >= 0): 1 at
        age 0, never increasing with age."""
        ages = np.asarray(ages, dtype=np.float64)
        if self.family == "exponential":
            return 2.0 ** (-ages / self.scale)
        if self.family == "power":
            return (1.0 + ages / self.scale) ** -self.alpha
        if self.family == "window":
            return np.maximum(0.0, 1.0 - ages / self.scale)
        with np.errstate(over="ignore"):  # e^{t/tau} overflows to inf: weight 0, as it should
            return np.exp(-np.expm1(ages / self.scale))

    def decays(self, times: np.ndarray) -> np.ndarray:
        """(T,) weights of a user's time-ordered events at the newest one (the ages from
        ``times`` in ms, or from the count of later events on the events clock)."""
        if self.clock == "events":
            return self.weights(np.arange(len(times) - 1, -1, -1, dtype=np.float64))
        return self.weights(times[-1] - times)

    @property
    def label(self) -> str:
        """The spec :meth:`parse` reads back: ``exp:2ev``, ``power:tau=1d,alpha=0.7``."""
        if self.clock == "events":
            scale = f"{self.scale:g}ev"
        else:
            scale = format_duration(self.scale / 1000.0)
        short = {"exponential": "exp"}.get(self.family, self.family)
        if self.family == "power":
            return f"power:tau={scale},alpha={self.alpha:g}"
        if self.family == "growth":
            return f"growth:tau={scale}"
        return f"{short}:{scale}"

    @classmethod
    def parse(cls, text: str) -> Forgetting:
        """``FAMILY:SCALE`` or ``FAMILY:key=value,...``: a scale ending in ``ev`` counts the
        user's own events, any other is a duration of event time (``90``, ``6h``, ``7d``).
        Raises ValueError saying what is wrong."""
        spec = text.strip().lower()
        name, colon, rest = spec.partition(":")
        family = _ALIASES.get(name, name)
        if family in ("design", "alpha-exp", "double-exp"):
            raise ValueError("g(t) = alpha*e^(-beta*t) is not offered: its weight grows with "
                             "age, so it never forgets (core/forgetting.py)")  # fmt: skip
        if family not in FAMILIES:
            raise ValueError(f"{text!r}: unknown forgetting family {name!r}; choose from "
                             f"exp, power, window, growth ({_SPEC_HELP})")  # fmt: skip
        if not colon or not rest:
            raise ValueError(f"{text!r} has no parameters; write it {_SPEC_HELP}")
        key = _SCALE_KEY[family]
        given = dict(_key_value(part, key, text) for part in rest.split(","))
        allowed = {key, "alpha"} if family == "power" else {key}
        unknown = sorted(set(given) - allowed)
        if unknown:
            raise ValueError(f"{text!r}: {family} takes {', '.join(sorted(allowed))}, "
                             f"not {', '.join(unknown)}")  # fmt: skip
        if key not in given:
            raise ValueError(f"{text!r}: {family} needs {key}=… ({_SPEC_HELP})")
        scale, clock = _scale(given[key], text)
        alpha = 1.0
        if "alpha" in given:
            try:
                alpha = float(given["alpha"])
            except ValueError:
                raise ValueError(f"{text!r}: alpha must be a number") from None
        return cls(family, scale, clock, alpha)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (an infinite scale is ``None``), for an artifact's config."""
        return {"family": self.family, "clock": self.clock,
                "scale": self.scale if math.isfinite(self.scale) else None,
                "alpha": self.alpha, "label": self.label}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Forgetting:
        scale = data.get("scale")
        return cls(str(data["family"]), math.inf if scale is None else float(scale),
                   str(data["clock"]), float(data.get("alpha", 1.0)))  # fmt: skip


def _key_value(part: str, default_key: str, text: str) -> tuple[str, str]:
    """``key=value``, or a bare value for the family's scale."""
    key, equals, value = part.partition("=")
    if not equals:
        return default_key, key.strip()
    if not key.strip() or not value.strip():
        raise ValueError(f"{text!r}: {part!r} is not key=value")
    return key.strip(), value.strip()


def parse_scale(text: str) -> tuple[float, str]:
    """(scale, clock) of ``20ev`` (events) or a duration (``6h``: seconds of event time), as
    ``--half-life`` and forgetting specs write a scale. Raises ValueError saying what is wrong."""
    text = text.strip().lower()
    if not text.endswith("ev"):
        return parse_duration(text), "time"
    try:
        events = float(text[:-2])
    except ValueError:
        raise ValueError(f"{text!r} is not a count of events like 20ev") from None
    if not events > 0:
        raise ValueError(f"a half-life or scale must be positive, got {text!r}")
    return events, "events"


def _scale(value: str, text: str) -> tuple[float, str]:
    """(scale, clock) of a spec's scale: events, or milliseconds of event time."""
    try:
        scale, clock = parse_scale(value)
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None
    return (scale, clock) if clock == "events" else (scale * 1000.0, clock)
