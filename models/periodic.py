"""A sequence model retrained from scratch on a clock, frozen between: how the peers users would
pick serve (Gorse refits every 60 minutes by default; Metarank's example retrains daily).

:class:`Retrained` trains ``config.model`` (SASRec, GRU4Rec, ...) by the project's own recipe
(:func:`models.train.fit`: leave-one-out split, early stopping on each user's second-to-last
item) on every event before the first tested event of each new ``period`` of event time, and
ranks with it, unchanged, until the next period starts. Periods are aligned to the epoch, so
``1d`` retrains at midnight UTC. A period with no tested event trains nothing: no list would
read that version. Between versions only each user's input sequence moves, as a served model's
does.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable, Sequence

import numpy as np
import torch

from core.events import Event
from core.interest import InterestConfig
from models.base import SequenceModel
from models.baselines import top_k
from models.evaluation import leave_one_out
from models.stream import Stream
from models.train import TrainConfig, fit, positive_interactions

VersionDone = Callable[[int, int, int, float], None]  # done, of total, at event, seconds


class Retrained:
    """A :class:`~models.prequential.Policy`: ranks the model's items the user has not consumed,
    from the user's newest ``config.max_len`` items the model knows; before the first version
    can be trained (10 positive events, a user with 3), it shows nothing."""

    baseline = True

    def __init__(
        self,
        name: str,
        period_s: float,
        interest: InterestConfig,
        config: TrainConfig,
        batch: int = 512,
        on_version: VersionDone | None = None,
    ) -> None:
        """``on_version(done, total, at, seconds)`` hears of each period's version as it is
        made: ``done`` of the ``total`` periods with a test, at event ``at`` of the stream, in
        ``seconds`` (each is a whole training, minutes on a large log)."""
        if not period_s > 0:
            raise ValueError(f"retraining period must be positive, got {period_s}")
        self.name = name
        self.period_ms = period_s * 1000.0
        self.interest = interest
        self.config = replace(config, ranker=False)  # scored by the model alone
        self.batch = batch
        self.train_seconds = 0.0
        self.versions = 0
        self.on_version = on_version

    def fit(self, events: Sequence[Event]) -> tuple[SequenceModel, list[str]] | None:
        """A model trained from scratch on ``events``, and its catalog; None if too few."""
        data = positive_interactions(events, self.interest, self.config.min_count)
        if len(data) < 10:
            return None
        train, val, _ = leave_one_out(data)
        if len(val.targets) == 0:
            return None
        began = time.perf_counter()
        model, _ = fit(train.items, val, data.n_items, self.config, show_progress=False)
        self.train_seconds += time.perf_counter() - began
        self.versions += 1
        return model, data.item_ids

    def run(self, stream: Stream, k: int) -> np.ndarray:
        """(tested events, k) stream item indices, best first, -1 where the list is shorter."""
        stream_index = {item: n for n, item in enumerate(stream.item_ids)}
        out = np.full((int(stream.tested.sum()), k), -1, dtype=np.int64)
        seen: list[list[int]] = [[] for _ in range(stream.n_users)]  # stream item indices
        period, version, row = None, None, 0
        periods = len(np.unique(stream.ts[stream.tested] // self.period_ms))
        done = 0
        pending: list[tuple[int, list[int]]] = []
        for n, (user, item, ts) in enumerate(zip(stream.users, stream.items, stream.ts)):
            if stream.tested[n]:
                if ts // self.period_ms != period:
                    self._score(version, pending, out, k)
                    began = time.perf_counter()
                    period, version = ts // self.period_ms, self.fit(stream.events[:n])
                    done += 1
                    if self.on_version is not None:
                        self.on_version(done, periods, n, time.perf_counter() - began)
                    if version is not None:
                        version = (*version, [stream_index[i] for i in version[1]])
                pending.append((row, list(seen[user])))
                row += 1
                if len(pending) == self.batch:
                    self._score(version, pending, out, k)
            seen[user].append(int(item))
        self._score(version, pending, out, k)
        return out

    @staticmethod
    def _score(
        version: tuple[SequenceModel, list[str], list[int]] | None,
        pending: list[tuple[int, list[int]]],
        out: np.ndarray,
        k: int,
    ) -> None:
        """Fill ``out``'s pending rows from ``version`` (model, its item ids, their stream
        indices); ``pending`` holds (row, the user's items before that event)."""
        if version is not None and pending:
            model, _, to_stream = version
            to_model = {s: m for m, s in enumerate(to_stream)}
            history = np.full((len(pending), model.max_len), model.pad, dtype=np.int64)  # (B, L)
            for b, (_, items) in enumerate(pending):
                known = [to_model[i] for i in items if i in to_model][-model.max_len :]
                if known:
                    history[b, model.max_len - len(known) :] = known
            with torch.inference_mode():
                scores = model.score(model.encode_user(torch.from_numpy(history))).numpy()  # (B, N)
            to_stream = np.asarray(to_stream, dtype=np.int64)
            for b, (r, items) in enumerate(pending):
                row_scores = scores[b].astype(np.float64)
                consumed = [to_model[i] for i in items if i in to_model]
                row_scores[consumed] = -np.inf
                best = top_k(row_scores, k)
                out[r] = np.where(best >= 0, to_stream[best.clip(0)], -1)
        pending.clear()
