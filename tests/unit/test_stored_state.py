"""A stored value the codec cannot read costs that user's history, never the worker: the batch
step and the views load it the same way (streams.steps.users.load_user_state)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from core.codebook import ItemCodebook
from core.codec import decode_state, encode_state
from core.interest import UserState
from streams.steps.parse import parse_batch
from tests.unit.step_helpers import ITEMS, apply, event, messages


def test_a_truncated_state_of_an_unknown_catalog_starts_afresh(caplog: pytest.LogCaptureFixture):
    """A value naming a catalog the worker lacks, and cut short: the retry without its items
    fails too, and must cost the user's history, not stop the worker on every restart."""
    other = ItemCodebook(["x", "y"])
    stored = UserState(np.ones(4, np.float32), 5, 1, ("x",), (0, 0), (1.0,))
    table = {b"u1": encode_state(stored, other)[:-3]}
    with caplog.at_level(logging.ERROR, logger="streams.steps.users"):
        done = apply(parse_batch(messages(event("u1", "a", 1)), set(ITEMS)), table)
    assert "unreadable state" in caplog.text
    assert done.applied == 1 and decode_state(table[b"u1"]).count == 1
