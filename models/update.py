"""A new version continuing from the previous one: its weights carried over by item id, then a
few passes over the newest events with older ones replayed, in seconds where a retrain
(models/train.py) is minutes, so versions can follow the stream (see docs/evaluation.md)."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from core.events import Event
from core.interest import InterestConfig
from models.artifact import forgetting_entry, forgetting_of, load_model, read_metrics, save_artifact
from models.base import SequenceModel
from models.content import CONTENT_FILE, ContentVectors, fitted
from models.data import recent_examples, replayed_examples
from models.fusion_fit import HELD_OUT, item_vectors, newest, version_neighbours
from models.train import TrainConfig, positive_interactions, train_epoch


def update(
    previous: Path,
    events: Sequence[Event],
    interest: InterestConfig,
    config: TrainConfig,
    out: Path,
    new_positives: int | None = None,
) -> tuple[str, dict[str, Any]]:
    """A new version continuing from the artifact at ``previous``: its weights carried over
    (item rows matched by item id, new items initialised fresh), then ``config.update_passes``
    passes over the newest ``config.recent_events`` positives of ``events`` (the whole log so
    far, for their users' context), with ``config.replay_examples`` older examples drawn at
    random among them so the update does not forget. No early stopping and no ranker: an update is seconds where
    a retrain is minutes, so versions can follow the stream. The parent's content vectors, if
    it has them, are projected into the new version's space (no text is encoded again). Its
    item neighbours' weights are fitted on the newest ``new_positives`` positives, the events
    since ``previous`` (default: the positives beyond the count ``previous`` was trained on,
    right when ``events`` is the whole log), scored with ``previous``. Save to ``out``, return
    (version, metrics)."""
    old, old_ids, old_config = load_model(previous)
    if config.model != old.kind:
        raise ValueError(f"cannot update a {old.kind} artifact as {config.model!r}")
    data = positive_interactions(events, interest, config.min_count)
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    parent = ContentVectors.load(previous / CONTENT_FILE) \
        if (previous / CONTENT_FILE).is_file() else None  # fmt: skip
    model = warm_started(old, old_ids, data.item_ids, parent).to(config.device)
    inputs, targets = recent_examples(data, config.recent_events, model.max_len, model.pad)
    replayed, replayed_targets = replayed_examples(
        data, config.recent_events, config.replay_examples, model.max_len, model.pad,
        config.seed + len(data))  # fmt: skip
    inputs, targets = torch.cat([inputs, replayed]), torch.cat([targets, replayed_targets])
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed + len(data))
    losses = [
        train_epoch(model, optimizer, inputs, targets, config, generator)
        for _ in range(config.update_passes)
    ]
    model = model.cpu().eval()
    metrics = {
        "warm_start_from": old_config["version"],
        "examples": len(inputs),
        "replayed_examples": len(replayed),
        "losses": losses,
        "train_seconds": round(time.perf_counter() - started, 2),
        "n_users": len(data.users),
        "n_items": data.n_items,
        "n_interactions": len(data),
    }
    config_out = {"train": asdict(config), "warm_start_from": old_config["version"],
                  **forgetting_entry(forgetting_of(old_config, interest))}  # fmt: skip
    content = None
    if parent is not None:  # the parent's catalog, projected anew
        with torch.inference_mode():
            vectors = model.item_embeddings().detach().float().numpy()
        content = fitted(parent.item_ids, parent.content, data.item_ids, vectors, parent.encoder)
    new = new_positives if new_positives is not None else \
        len(data) - int(read_metrics(previous).get("n_interactions", len(data)))  # fmt: skip
    neighbours, config_out = version_neighbours(
        item_vectors(old, old_ids, data.item_ids), data, newest(data, min(new, HELD_OUT)),
        interest, config.neighbours, config.neighbour_events, config_out, metrics,
        old_config.get("neighbours"), content)  # fmt: skip
    version = save_artifact(out, model, data.item_ids, config_out, metrics, None,
                            config.ann_min_items, content, neighbours)  # fmt: skip
    return version, metrics


def warm_started(
    previous: SequenceModel, previous_ids: Sequence[str], item_ids: Sequence[str],
    content: ContentVectors | None = None,
) -> SequenceModel:
    """A model of ``previous``'s kind over the catalog ``item_ids``: every weight of
    ``previous``, item embeddings and biases by item id; an item it lacks starts from its
    ``content`` vector projected into ``previous``'s space (what the parent served it with)
    when it has one, else from a fresh init."""
    model = type(previous)(**{**previous.init_args(), "n_items": len(item_ids)})
    per_item = {"items.weight", "item_bias"}
    shared = {k: v for k, v in previous.state_dict().items() if k not in per_item}
    missing, unexpected = model.load_state_dict(shared, strict=False)
    if set(missing) != per_item or unexpected:
        raise ValueError(f"weights do not fit the model: missing {missing}, extra {unexpected}")
    old_row = {item: row for row, item in enumerate(previous_ids)}
    pairs = [(row, old_row[item]) for row, item in enumerate(item_ids) if item in old_row]
    if pairs:
        new_rows, old_rows = (torch.tensor(rows) for rows in zip(*pairs))
        with torch.no_grad():
            model.items.weight[new_rows] = previous.items.weight[old_rows]
            model.item_bias[new_rows] = previous.item_bias[old_rows]
    projected = content.projected() if content is not None else {}
    fresh = [(row, item) for row, item in enumerate(item_ids)
             if item not in old_row and item in projected]  # fmt: skip
    if fresh:
        with torch.no_grad():
            model.items.weight[[row for row, _ in fresh]] = torch.from_numpy(
                np.stack([projected[item] for _, item in fresh])).to(model.items.weight.dtype)
    return model
