"""The decay settings the evaluator sweeps (``streamrec evaluate --half-life``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from core.durations import format_duration
from core.forgetting import parse_scale
from core.interest import InterestConfig


@dataclass(frozen=True)
class HalfLife:
    """A decay setting to sweep: event-time seconds, or a count of the user's own events."""

    seconds: float = math.inf
    events: float | None = None

    @classmethod
    def parse(cls, text: str) -> HalfLife:
        """``20ev`` is 20 of the user's own events; anything else a duration (``6h``, ``inf``).
        Raises ValueError saying what is wrong."""
        scale, clock = parse_scale(text)
        return cls(events=scale) if clock == "events" else cls(seconds=scale)

    @property
    def label(self) -> str:
        return f"{self.events:g}ev" if self.events is not None else format_duration(self.seconds)

    @property
    def forgets(self) -> bool:
        return self.events is not None or math.isfinite(self.seconds)

    def applied_to(self, interest: InterestConfig) -> InterestConfig:
        return replace(interest, half_life_ms=self.seconds * 1000.0, half_life_events=self.events)
