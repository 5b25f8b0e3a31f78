"""The ``fit`` of the evaluator's model versions: each version trained, or updated from the one
before, on the events so far, as a trainer would publish it (models/product.py
:class:`ModelVersions` asks for them in stream order)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from core.events import Event
from core.interest import InterestConfig
from core.items import Item
from models.artifact import load_recommender
from models.blend import Blend
from models.content import PACKAGED_ENCODER
from models.scoring import Recommender
from models.train import TrainConfig, train
from models.update import update


def trainer(
    interest: InterestConfig,
    blend: Blend,
    config: TrainConfig,
    workdir: Path,
    show_progress: bool = False,
    warm_start: bool = False,
    catalog: Sequence[Item] = (),
    encoder: str = PACKAGED_ENCODER,
) -> Callable[[Sequence[Event]], Recommender]:
    """A ``fit`` for :class:`ModelVersions`: train on the events so far, load it for serving.
    With ``warm_start`` every version after the first is an :func:`~models.update.update` of
    the one before (so versions must be asked for in stream order, as the policies do).
    ``catalog``: the first version encodes it (``encoder``) and every version serves a catalog
    item it has no interaction of from its content vector (models/content.py)."""
    last = 0  # events the newest version was fitted on; it lives in version_dir(workdir, last)

    def fit(events: Sequence[Event]) -> Recommender:
        nonlocal last
        out = version_dir(workdir, len(events))
        if warm_start and last:
            if len(events) <= last:
                raise ValueError(f"versions out of order: {len(events)} events after {last}")
            new = sum(interest.weight(e) > 0 for e in events[last:])
            update(version_dir(workdir, last), events, interest, config, out, new_positives=new)
        else:
            train(events, interest, blend, config, out, show_progress=show_progress,
                  catalog=catalog, encoder=encoder)  # fmt: skip
        last = len(events)
        return load_recommender(out)

    return fit


def version_dir(workdir: Path, n_events: int) -> Path:
    """Where :func:`trainer` keeps the version trained on the first ``n_events``."""
    return workdir / f"after-{n_events}-events"
