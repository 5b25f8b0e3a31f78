"""What a batch derives from the served model, made once per model instead of once per batch."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

Source = TypeVar("Source")
Value = TypeVar("Value")


class Remade(Generic[Source, Value]):
    """``make(source)``, made again only when called with another object than last time (by
    identity: a hot swap hands the paths a new model, and only then is the value stale)."""

    def __init__(self, make: Callable[[Source], Value]) -> None:
        self.make = make
        self.source: object = object()  # matches nothing
        self.value: Value | None = None

    def __call__(self, source: Source) -> Value:
        if source is not self.source:
            self.source, self.value = source, self.make(source)
        return self.value  # type: ignore[return-value]
