"""What the lifelong trainer learns from: the newest events, and a uniform sample of the older.

Continuing a model on the newest events alone makes it forget what only older events taught it
(docs/evaluation.md: the ML-1M part's late windows fell behind item-kNN that way, and replaying
older examples in each update fixed it). The buffer keeps the newest ``window`` events in
arrival order and, of every event that has left the window, a reservoir sample of ``reservoir``
(Vitter's algorithm R: each of the n events so far is in it with probability reservoir / n).
Memory is bounded by the two sizes however long the trainer runs.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Iterable

from core.events import Event


class ReplayBuffer:
    """The newest ``window`` events and a uniform ``reservoir`` sample of the ones before."""

    def __init__(self, window: int, reservoir: int, seed: int = 0) -> None:
        if window < 1 or reservoir < 0:
            raise ValueError(f"window must be >= 1 and reservoir >= 0, not {window}, {reservoir}")
        self.window: deque[Event] = deque()
        self.window_size, self.reservoir_size = window, reservoir
        self.reservoir: list[Event] = []
        self.left = 0  # events that have left the window
        self.seen = 0
        self.new_since_update = 0
        self.random = random.Random(seed)

    def extend(self, events: Iterable[Event]) -> None:
        for event in events:
            self.window.append(event)
            self.seen += 1
            self.new_since_update += 1
            if len(self.window) > self.window_size:
                self._keep_older(self.window.popleft())

    def _keep_older(self, event: Event) -> None:
        self.left += 1
        if len(self.reservoir) < self.reservoir_size:
            self.reservoir.append(event)
            return
        slot = self.random.randrange(self.left)
        if slot < self.reservoir_size:
            self.reservoir[slot] = event

    def forget(self, user_id: str) -> None:
        """Drop every event of ``user_id`` (a delete request: nothing of theirs is learned
        from again)."""
        self.window = deque(e for e in self.window if e.user_id != user_id)
        self.reservoir = [e for e in self.reservoir if e.user_id != user_id]

    def updated(self) -> None:
        """An update has learned from everything in the buffer so far."""
        self.new_since_update = 0

    def window_events(self) -> list[Event]:
        return list(self.window)

    def reservoir_events(self) -> list[Event]:
        return list(self.reservoir)

    def events(self) -> list[Event]:
        """Reservoir and window together in event-time order (what an update reads)."""
        return sorted([*self.reservoir, *self.window], key=lambda event: event.ts)
