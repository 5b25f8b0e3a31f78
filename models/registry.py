"""Model kinds by name: the CLI, artifacts and contract tests all discover models here."""

from __future__ import annotations

from models.base import SequenceModel
from models.gru import GRU4Rec
from models.mf import InterestMF, MatrixFactorization
from models.sasrec import SASRec

MODEL_KINDS: dict[str, type[SequenceModel]] = {
    cls.kind: cls for cls in (MatrixFactorization, InterestMF, GRU4Rec, SASRec)
}


def model_kind(name: str) -> type[SequenceModel]:
    """The model class called ``name``: one check and one message for every place that takes a
    kind by name (the CLI's --model, a training config, an artifact's config.json)."""
    try:
        return MODEL_KINDS[name]
    except (KeyError, TypeError):  # TypeError: a kind that is not even a string
        raise ValueError(f"unknown model {name!r}; one of {sorted(MODEL_KINDS)}") from None
