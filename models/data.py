"""From an event log to what the models train and are evaluated on: per-user item sequences.

Items are indexed 0..N-1 in catalog order; index N is padding, and sequences are padded on the
left so the newest item is always last (the worker's recent-items window has the same shape).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from core.events import Event


@dataclass(frozen=True)
class Interactions:
    """Each user's kept events in event-time order, as item indices with times and weights."""

    item_ids: list[str]
    users: list[str]
    items: list[np.ndarray]  # per user, (T_u,) int64 item indices
    times: list[np.ndarray]  # per user, (T_u,) int64 ms
    weights: list[np.ndarray]  # per user, (T_u,) float32 event weights

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def __len__(self) -> int:
        return sum(len(s) for s in self.items)


def interactions(
    events: Sequence[Event],
    keep: Callable[[Event], bool],
    weight: Callable[[Event], float],
    min_count: int = 1,
) -> Interactions:
    """Kept events grouped by user; with ``min_count`` > 1 an iterated k-core filter.

    ``events`` must be in event-time order (``read_events`` sorts them); ties keep log order.
    """
    kept = [e for e in events if keep(e)]
    while min_count > 1:
        per_user = Counter(e.user_id for e in kept)
        per_item = Counter(e.item_id for e in kept)
        core = [
            e for e in kept if per_user[e.user_id] >= min_count and per_item[e.item_id] >= min_count
        ]
        if len(core) == len(kept):
            break
        kept = core
    item_ids = sorted({e.item_id for e in kept})
    index = {item: i for i, item in enumerate(item_ids)}
    by_user: dict[str, list[Event]] = {}
    for e in kept:
        by_user.setdefault(e.user_id, []).append(e)
    users = sorted(by_user)
    return Interactions(
        item_ids=item_ids,
        users=users,
        items=[np.array([index[e.item_id] for e in by_user[u]], dtype=np.int64) for u in users],
        times=[np.array([e.ts for e in by_user[u]], dtype=np.int64) for u in users],
        weights=[np.array([weight(e) for e in by_user[u]], dtype=np.float32) for u in users],
    )


def left_pad(history: Sequence[int], max_len: int, pad: int) -> list[int]:
    """The last ``max_len`` items, padded on the left to exactly ``max_len``."""
    history = list(history)[-max_len:]
    return [pad] * (max_len - len(history)) + history


def training_windows(
    sequences: Sequence[np.ndarray], max_len: int, pad: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-item windows: inputs (W, L) and targets (W, L), pad where there is no target.

    Each sequence is cut from its end into windows of ``max_len`` targets; window ``j`` feeds
    items ``s[t-1]`` to predict ``s[t]``, so every item after the first is a target exactly once.
    """
    inputs, targets = [], []
    for seq in sequences:
        for end in range(len(seq), 1, -max_len):
            start = max(1, end - max_len)
            inputs.append(left_pad(seq[start - 1 : end - 1].tolist(), max_len, pad))
            targets.append(left_pad(seq[start:end].tolist(), max_len, pad))
    if not inputs:
        raise ValueError("no user has two or more events to learn a next item from")
    return torch.tensor(inputs), torch.tensor(targets)


def popularity(sequences: Sequence[np.ndarray], n_items: int) -> np.ndarray:
    """(N,) interaction counts."""
    counts = np.zeros(n_items, dtype=np.float32)
    for seq in sequences:
        np.add.at(counts, seq, 1.0)
    return counts


def recent_examples(
    data: Interactions, n_recent: int, max_len: int, pad: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-item examples whose target is among the newest ``n_recent`` events (ties at the
    cut kept): inputs (W, L), the items before the target, and targets (W, L), pad but the last.

    What a warm-started update trains on: the new events, each in its user's full context.
    """
    times = np.concatenate(data.times) if len(data) else np.zeros(0, dtype=np.int64)
    since = np.sort(times)[-n_recent] if 0 < n_recent <= len(times) else np.iinfo(np.int64).min
    inputs, last = [], []
    for seq, seq_times in zip(data.items, data.times):
        at = np.flatnonzero(seq_times >= since)
        at = at[at > 0]
        if len(at):
            padded = np.concatenate([np.full(max_len, pad, dtype=np.int64), seq])
            # row t of the windows is padded[t : t + max_len]: the max_len items before seq[t]
            inputs.append(np.lib.stride_tricks.sliding_window_view(padded, max_len)[at])
            last.append(seq[at])
    if not inputs:
        raise ValueError("no recent event has an earlier one of its user to learn from")
    targets = np.full((sum(len(t) for t in last), max_len), pad, dtype=np.int64)
    targets[:, -1] = np.concatenate(last)
    return torch.from_numpy(np.concatenate(inputs)), torch.from_numpy(targets)


def replayed_examples(
    data: Interactions, n_recent: int, n_replay: int, max_len: int, pad: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``n_replay`` next-item examples drawn at random (seeded) from those whose target is
    *older* than the newest ``n_recent`` events: what an update replays beside
    :func:`recent_examples`, so it does not forget what only older events taught. Same shapes."""
    times = np.concatenate(data.times) if len(data) else np.zeros(0, dtype=np.int64)
    # the same cut as recent_examples: with n_recent >= every event, all are recent, none older
    since = np.sort(times)[-n_recent] if 0 < n_recent <= len(times) else np.iinfo(np.int64).min
    older = [np.flatnonzero(seq_times < since) for seq_times in data.times]
    older = [at[at > 0] for at in older]
    counts = np.array([len(at) for at in older])
    total = int(counts.sum())
    empty = torch.zeros((0, max_len), dtype=torch.int64)
    if total == 0 or n_replay <= 0:
        return empty, empty
    picked = np.sort(np.random.default_rng(seed).choice(total, min(n_replay, total),
                                                        replace=False))  # fmt: skip
    user_of = np.searchsorted(np.cumsum(counts), picked, side="right")
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    inputs = np.full((len(picked), max_len), pad, dtype=np.int64)
    targets = np.full((len(picked), max_len), pad, dtype=np.int64)
    for row, (user, n) in enumerate(zip(user_of, picked - first[user_of])):
        seq, t = data.items[user], older[user][n]
        context = seq[max(0, t - max_len) : t]
        inputs[row, max_len - len(context) :] = context
        targets[row, -1] = seq[t]
    return torch.from_numpy(inputs), torch.from_numpy(targets)
