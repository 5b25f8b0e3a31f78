"""Model kinds by name: the CLI, artifacts and contract tests all discover models here."""

from __future__ import annotations

from models.base import SequenceModel
from models.gru import GRU4Rec
from models.mf import InterestMF, MatrixFactorization
from models.sasrec import SASRec

MODEL_KINDS: dict[str, type[SequenceModel]] = {
    cls.kind: cls for cls in (MatrixFactorization, InterestMF, GRU4Rec, SASRec)
}
