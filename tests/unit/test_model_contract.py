"""Every registered model kind honours the shared interface (auto-discovered from the registry)."""

import numpy as np
import pytest
import torch

from models.artifact import load_model, save_artifact
from models.data import training_windows
from models.evaluation import HeldOut
from models.registry import MODEL_KINDS
from models.train import TrainConfig, fit

KINDS = sorted(MODEL_KINDS)
N, D, L = 30, 8, 6


def synthetic_sequences(n_users: int = 40, seed: int = 0) -> list[np.ndarray]:
    """Users walk the catalog in steps of +1 from a random start: a learnable next item."""
    rng = np.random.default_rng(seed)
    return [(rng.integers(N) + np.arange(12)) % N for _ in range(n_users)]


def held_out(sequences: list[np.ndarray]) -> HeldOut:
    return HeldOut(
        [s[:-1] for s in sequences],
        [np.arange(len(s) - 1) for s in sequences],
        [np.ones(len(s) - 1, np.float32) for s in sequences],
        np.array([s[-1] for s in sequences]),
    )


def build(kind: str, seed: int = 0):
    torch.manual_seed(seed)
    return MODEL_KINDS[kind](n_items=N, dim=D, max_len=L).eval()


def test_registry_finds_every_model():
    assert {"mf", "gru", "sasrec"} <= set(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_shapes(kind):
    model = build(kind)
    history = torch.tensor([[N, N, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10]])  # (B=2, L), left-padded
    assert model.encode(history).shape == (2, L, D)
    assert model.encode_user(history).shape == (2, D)
    assert model.score(model.encode_user(history)).shape == (2, N)
    assert model.item_embeddings().shape == (N, D)
    assert model.item_biases().shape == (N,)


@pytest.mark.parametrize("kind", KINDS)
def test_encoder_is_causal(kind):
    """The state at position t ignores later items: training on every position relies on it."""
    model = build(kind)
    a = torch.tensor([[1, 2, 3, 4, 5, 6]])
    b = torch.tensor([[1, 2, 3, 9, 9, 9]])
    with torch.inference_mode():
        torch.testing.assert_close(model.encode(a)[:, :3], model.encode(b)[:, :3])
        assert not torch.allclose(model.encode(a)[:, 3:], model.encode(b)[:, 3:])


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(kind, tmp_path):
    model = build(kind)
    version = save_artifact(tmp_path, model, [f"i{n}" for n in range(N)], {}, {}, ann_min_items=10)
    loaded, item_ids, config = load_model(tmp_path)
    history = torch.tensor([[N, 3, 4, 5, 6, 7]])
    with torch.inference_mode():
        torch.testing.assert_close(
            loaded.score(loaded.encode_user(history)), model.score(model.encode_user(history))
        )
    assert (config["kind"], config["version"], item_ids[:2]) == (kind, version, ["i0", "i1"])
    assert (tmp_path / "ann.faiss").is_file()  # 30 items >= ann_min_items=10


@pytest.mark.parametrize("kind", KINDS)
def test_seeded_training_is_deterministic(kind):
    sequences = synthetic_sequences()
    config = TrainConfig(model=kind, dim=D, max_len=L, epochs=2, batch_size=16, seed=3)
    first, _ = fit(sequences, held_out(sequences), N, config, show_progress=False)
    second, _ = fit(sequences, held_out(sequences), N, config, show_progress=False)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        torch.testing.assert_close(a, b, msg=name)


@pytest.mark.parametrize("kind", KINDS)
def test_a_few_steps_lower_the_loss(kind):
    model = build(kind)
    inputs, targets = training_windows(synthetic_sequences(), L, model.pad)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    with torch.no_grad():
        before = model.loss(inputs, targets).item()
    model.train()
    for _ in range(20):
        loss = model.loss(inputs, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        after = model.loss(inputs, targets).item()
    assert after < 0.9 * before, (before, after)
