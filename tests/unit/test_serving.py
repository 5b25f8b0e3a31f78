"""Serving an announced model (issue 17): what is refused, what a swap keeps, and how a state
built in the old model's space is rebased on load, exactly once."""

import shutil

import numpy as np
import pytest
import torch

from core.codec import decode_state
from core.interest import UserState, rebase
from core.state_step import apply_user_events
from models.artifact import load_recommender, read_config
from models.blend import Blend
from models.mf import MatrixFactorization
from models.scoring import Recommender
from streams.steps.users import apply_users, in_model_space
from streams.steps.parse import parse_batch
from streams.worker.metrics import PipelineStats
from streams.announcements import Announcement, announcement_of
from core.interest import InterestConfig
from streams.worker.serving import ModelRefused, Serving, load_checked
from tests.unit.grid import assert_close_on_grid
from tests.unit.step_helpers import CONFIG, ITEMS, FaustTable, event, messages, recommender


def other_space(version: str = "v2", items=ITEMS) -> Recommender:
    """The step tests' catalog in another space: item k points along axis 3 - k."""
    model = MatrixFactorization(n_items=len(items), dim=4, max_len=5)
    with torch.no_grad():
        model.items.weight[: len(items)] = torch.eye(4).flip(0)[: len(items)]
    return Recommender(model, items, version, Blend())


def test_a_good_artifact_loads_and_a_tampered_or_mislabelled_one_is_refused(model_path, tmp_path):
    version = read_config(model_path)["version"]
    assert load_checked(model_path, version, Blend(), InterestConfig()).version == version
    with pytest.raises(ModelRefused, match="not"):
        load_checked(model_path, "0" * 12, Blend(), InterestConfig())
    tampered = tmp_path / "tampered"
    shutil.copytree(model_path, tampered)
    (tampered / "items.json").write_text('["i0"]')
    with pytest.raises(ModelRefused, match="items.json"):
        load_checked(tampered, version, Blend(), InterestConfig())
    with pytest.raises(ModelRefused):
        load_checked(tmp_path / "missing", version, Blend(), InterestConfig())


def test_an_announcement_names_the_artifact_and_round_trips(model_path):
    said = announcement_of(model_path)
    assert said.version == read_config(model_path)["version"] and len(said.sha256) == 64
    assert Announcement.model_validate_json(said.model_dump_json()) == said


def test_a_swap_serves_the_new_model_and_keeps_the_old_catalog_for_reading(model_path):
    stats = PipelineStats()
    holder = Serving(recommender(), stats)
    new = load_recommender(model_path)
    holder.swap(new)
    assert holder.recommender is new and stats.model_swaps == 1
    [swap] = stats.as_dict()["swaps"]  # what the console lists
    assert (swap["version"], swap["was"]) == (new.version, recommender().version)
    assert [c.fingerprint for c in holder.active.older_codebooks] == [recommender().codebook.fingerprint]
    holder.refuse("v9", "checksum")
    assert (stats.models_refused, holder.last_refusal) == (1, "v9: checksum")


def apply_in(rec: Recommender, batch, table: dict, older=()):
    return apply_users(parse_batch(batch, set(ITEMS)), FaustTable(table),
                             rec.item_vector, rec.dim, CONFIG, codebook=rec.codebook,
                             model_tag=rec.tag, older_codebooks=older)  # fmt: skip


def test_a_state_of_the_old_model_is_rebased_on_load_and_a_replay_stays_exactly_once():
    old, new = recommender(), other_space()
    table: dict = {}
    apply_in(old, messages(event("u", "a", 0), event("u", "b", 500)), table)
    assert decode_state(table[b"u"], [old.codebook]).model == old.tag
    later = messages(event("u", "c", 900), first_offset=2)
    done = apply_in(new, later, table, [old.codebook])
    stored = decode_state(table[b"u"], [new.codebook])
    assert done.rebased == 1 and stored.model == new.tag and stored.count == 3
    lived = UserState.empty(4)  # the same events, lived through in the new model's space
    for n, e in enumerate([event("u", "a", 0), event("u", "b", 500), event("u", "c", 900)]):
        lived = apply_user_events(lived, [(e, (0, n))], new.item_vector, CONFIG.interest).state
    assert_close_on_grid(stored.vector, lived.vector, 6)
    again = apply_in(new, later, table, [old.codebook])  # redelivered after a crash
    assert (again.applied, again.rebased) == (0, 0)
    assert decode_state(table[b"u"], [new.codebook]).count == 3


def test_a_state_from_before_states_named_their_model_is_taken_as_it_is():
    state, *_ = apply_user_events(UserState.empty(4), [(event("u", "a", 0), (0, 0))],
                                  recommender().item_vector, CONFIG.interest)  # fmt: skip
    assert state.model == 0
    taken = in_model_space(state, other_space().item_vector, 4, 77)
    np.testing.assert_array_equal(taken.vector, state.vector)
    assert taken.model == 77
    assert in_model_space(taken, other_space().item_vector, 4, 77) is taken  # already in it
    rebased = in_model_space(
        UserState(**{**{f: getattr(state, f) for f in UserState.__slots__}, "model": 5}),
        other_space().item_vector, 4, 77)  # fmt: skip
    np.testing.assert_array_equal(rebased.vector, rebase(state, other_space().item_vector, 4).vector)



def test_the_batch_quantiles_the_console_shows_are_over_the_newest_batches():
    stats = PipelineStats()
    assert stats.as_dict()["batch_seconds"] == {"p50": None, "p99": None}
    stats.batch_seconds.extend([9.0] * 500 + [float(n) for n in range(1, 1001)])
    assert len(stats.batch_seconds) == 1000  # the oldest 500 (9 s each) are gone
    assert stats.batch_quantiles() == {"p50": 501.0, "p99": 991.0}
