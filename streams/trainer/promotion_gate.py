"""The trainer's promotion gate: what it keeps to judge a new version against the serving one on
the lists workers logged and the feedback to them (models/promotion.py decides).

The trainer reads every events partition, so it can follow each user as the workers do: it
folds the events into the user's state with the serving version (core/interest.py), and keeps
the state right after each event, under the id of the record that event triggered
(:func:`streams.steps.records.rec_id`: the user and the event's position). It reads the records on
the recommendations topic as they come (those of an epsilon-greedy worker: the logs), and the
feedback events that name one by its ``rec_id``. To judge, both versions score the kept states
(the candidate's rebuilt in its item space, as a worker rebuilds them at a hot swap) and the
estimator compares their lists on the logged ones. The trainer's states start at the events it
reads, not at the users' first: both versions are judged from the same ones.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import replace
from typing import Iterable, Sequence

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge

from core.events import DELETE, Event
from core.interest import UserState
from core.state_step import apply_user_events
from models.off_policy import LoggedList, logged_lists
from models.promotion import Decision, GateConfig, decide
from models.scoring import Recommender
from streams.steps.records import rec_id
from streams.settings import Settings
from streams.steps.users import in_model_space

log = logging.getLogger(__name__)

KEEP = 20_000  # newest contexts and logged lists kept
KEEP_USERS = 200_000  # users followed; the least recently active one is dropped past it


class GateMetrics:
    """What the trainer exports on /metrics (``streamrec trainer --metrics-port``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.announced = Counter("streamrec_trainer_versions_announced",
                                 "Versions announced to the workers", registry=self.registry)
        self.held = Counter("streamrec_trainer_versions_held_back", "Versions the gate held "
                            "back", ["reason"], registry=self.registry)  # fmt: skip
        self.snips = Gauge("streamrec_trainer_gate_snips", "The last judged SNIPS estimate",
                           ["version"], registry=self.registry)  # fmt: skip


class GateLog:
    """The contexts, logged lists and feedback the gate judges a candidate on."""

    def __init__(self, settings: Settings, serving: Recommender, config: GateConfig,
                 keep: int = KEEP) -> None:  # fmt: skip
        self.settings, self.config, self.keep = settings, config, keep
        self.serving = serving
        self.states: OrderedDict[str, UserState] = OrderedDict()
        self.contexts: OrderedDict[str, UserState] = OrderedDict()
        self.logged: OrderedDict[str, LoggedList] = OrderedDict()
        self.positives: dict[str, set[str]] = {}

    def take_events(self, events: Iterable[tuple[Event, tuple[int, int]]]) -> None:
        """Fold valid events (with their positions) into their users' states, in order."""
        interest = self.settings.interest
        for event, position in events:
            if event.type == DELETE:  # forgotten: their states and feedback go
                self.states.pop(event.user_id, None)
                continue
            if event.rec_id is not None and interest.weight(event) > 0:
                self.positives.setdefault(event.rec_id, set()).add(event.item_id)
                while len(self.positives) > 2 * self.keep:  # feedback to lists never logged
                    del self.positives[next(iter(self.positives))]
            state = self.states.get(event.user_id) or UserState.empty(self.serving.dim)
            update = apply_user_events(state, [(event, position)], self.serving.item_vector,
                                       interest)  # fmt: skip
            self.states[event.user_id] = state = replace(update.state, model=self.serving.tag)
            self.states.move_to_end(event.user_id)
            if len(self.states) > KEEP_USERS:
                self.states.popitem(last=False)
            if update.applied:
                self._keep(self.contexts, rec_id(event.user_id, *position), state)

    def take_records(self, records: Sequence[dict]) -> None:
        """The logged epsilon-greedy lists among recommendation ``records``."""
        lists, _ = logged_lists(records, self.settings.top_k)
        for rec, logged in lists.items():
            for gone in self._keep(self.logged, rec, logged):
                self.positives.pop(gone, None)  # the list's feedback goes with it

    def _keep(self, kept: OrderedDict, key: str, value: object) -> list[str]:
        """Keep ``key`` newest in ``kept``; returns the oldest keys dropped past the bound."""
        kept[key] = value
        kept.move_to_end(key)
        return [kept.popitem(last=False)[0] for _ in range(len(kept) - self.keep)]

    def judge(self, candidate: Recommender) -> Decision:
        """The gate's decision on ``candidate`` against the serving version."""
        ids = [r for r in self.logged if r in self.contexts]
        if not ids:
            return decide([], [], [], [], self.config)
        k = self.settings.top_k
        targets = []
        for model in (self.serving, candidate):
            states = [in_model_space(self.contexts[r], model.item_vector, model.dim, model.tag)
                      for r in ids]  # fmt: skip
            top = model.top_k(np.stack([s.vector for s in states]), [s.recent for s in states], k)
            targets.append([{model.item_ids[i] for i in row if i >= 0}
                            for row in top.indices.tolist()])  # fmt: skip
        return decide([self.logged[r] for r in ids], [self.positives.get(r, set()) for r in ids],
                      targets[0], targets[1], self.config)  # fmt: skip

    def serve(self, recommender: Recommender) -> None:
        """The promoted version serves from now on: states are rebuilt in it as they are read."""
        self.serving = recommender
        self.states = OrderedDict((u, in_model_space(s, recommender.item_vector, recommender.dim,
                                                     recommender.tag))
                                  for u, s in self.states.items())  # fmt: skip
