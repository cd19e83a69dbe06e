"""Gradient-matching poisons of the real-world classifiers: the objective's gradient against finite differences
(float64), the constraints of a crafted poison, the baselines, energy profiles and the audit ranking."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ssmpoison.verify._realworld_layers import build_model  # noqa: E402
from ssmpoison.verify._realworld_poisons import (PoisonConfig, adversarial_gradient, audit_ranking,  # noqa: E402
                                                 craft_poison, energy_profile, last_share, matching_objective,
                                                 random_poison)
from ssmpoison.verify._realworld_training import deterministic_torch  # noqa: E402

deterministic_torch()  # one thread: far faster than two for these small tensors on a shared machine


def _setting(kind, dtype=torch.float64, length=12, count=3):
    model = build_model(kind, 1, 4, seed=0, width=6, state_dim=4).to(dtype)
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.uniform(0.2, 0.8, size=(count, length, 1)), dtype=dtype)
    y = torch.as_tensor(rng.integers(0, 4, size=count))
    x_t = torch.as_tensor(rng.uniform(0, 1, size=(1, length, 1)), dtype=dtype)
    return model, x, y, x_t


@pytest.mark.parametrize("kind", ["s4d", "lru"])
@pytest.mark.parametrize("regulariser", [0.0, 0.7])
def test_matching_objective_gradient_matches_central_differences(kind, regulariser):
    model, x, y, x_t = _setting(kind)
    target = adversarial_gradient(model, x_t, torch.tensor([1]), targeted=True)
    gen = torch.Generator().manual_seed(1)
    delta = (0.1 * torch.randn(x.shape, generator=gen, dtype=torch.float64)).requires_grad_(True)
    (grad,) = torch.autograd.grad(matching_objective(model, x, y, delta, target, regulariser, 2), delta)
    h = 1e-6
    for _ in range(3):
        v = torch.randn(x.shape, generator=gen, dtype=torch.float64)
        plus = matching_objective(model, x, y, (delta + h * v).detach(), target, regulariser, 2).detach()
        minus = matching_objective(model, x, y, (delta - h * v).detach(), target, regulariser, 2).detach()
        numeric = float((plus - minus) / (2 * h))
        analytic = float(torch.sum(grad * v))
        # central differences: error O(h^2 M''') + rounding O(eps M / h) ~ 1e-10 here
        assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(analytic)), (numeric, analytic)


def test_matching_objective_is_zero_when_the_gradients_align():
    model, x, y, _ = _setting("s4d")
    params = [p for p in model.parameters()]
    loss = torch.nn.functional.cross_entropy(model(x), y, reduction="sum")
    own = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])
    value = matching_objective(model, x, y, torch.zeros_like(x), 3.0 * own, 0.0, 2)
    assert abs(float(value.detach())) < 1e-12
    opposite = matching_objective(model, x, y, torch.zeros_like(x), -own, 0.0, 2)
    assert abs(float(opposite.detach()) - 2.0) < 1e-12


@pytest.mark.parametrize("mask_half", [False, True])
def test_crafted_poison_respects_the_budget_the_data_box_and_the_mask(mask_half):
    model, x, y, x_t = _setting("s4d", dtype=torch.float32, length=16)
    x_np = x.numpy().copy()
    x_np[0, :4, 0] = 0.0  # pixels at the box's edge
    mask = None
    if mask_half:
        mask = np.zeros(16, dtype=np.float32)
        mask[:8] = 1
    config = PoisonConfig(epsilon=0.3, steps=15)
    before = [p.detach().clone() for p in model.parameters()]
    delta, objective = craft_poison(model, x_np, y.numpy(), x_t.numpy(), np.array([1]), config, mask=mask, seed=3)
    assert delta.shape == x_np.shape
    assert np.all(np.abs(delta) <= 0.3 + 1e-7)
    assert np.all(x_np + delta >= -1e-7) and np.all(x_np + delta <= 1 + 1e-7)
    if mask_half:
        assert np.all(delta[:, 8:] == 0)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # the model is not changed
    start = float(matching_objective(model, x, y, torch.zeros_like(x), adversarial_gradient(
        model, x_t, torch.tensor([1]), True)).detach())
    assert objective < start  # crafting lowered the objective from the clean samples'


def test_regulariser_moves_the_energy_to_the_last_steps():
    model, x, y, x_t = _setting("lru", dtype=torch.float32, length=16)
    plain = craft_poison(model, x.numpy(), y.numpy(), x_t.numpy(), np.array([1]), PoisonConfig(steps=20), seed=0)[0]
    pushed = craft_poison(model, x.numpy(), y.numpy(), x_t.numpy(), np.array([1]),
                          PoisonConfig(steps=20, regulariser=5.0), seed=0)[0]
    assert last_share(energy_profile(pushed), 2) > 2 * last_share(energy_profile(plain), 2)


def test_random_poison_energy_profile_and_shares():
    x = np.full((4, 10, 1), 0.5, dtype=np.float32)
    delta = random_poison(x, 0.1, seed=0)
    assert np.allclose(np.abs(delta), 0.1)
    profile = energy_profile(delta)
    assert profile.shape == (10,) and np.allclose(profile, 4 * 0.01)
    assert last_share(profile, 2) == pytest.approx(0.2) and last_share(profile, 1) == pytest.approx(0.1)
    assert last_share(np.zeros(10), 2) == 0.0
    clipped = random_poison(np.zeros((2, 5, 1), dtype=np.float32), 0.1, seed=0)
    assert np.all(clipped >= 0)


def test_audit_ranks_end_loaded_samples_first():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(50, 20, 1))
    x[:, -2:] = 0.0
    poisoned = np.array([3, 17, 40])
    x[poisoned, -2:] = 0.5
    audit = audit_ranking(x, poisoned, 2)
    assert audit["auc"] == 1.0 and audit["top_fraction"] == 1.0 and audit["median_rank"] == 2.0
    x[poisoned, -2:] = 0.0  # nothing to see: every score is 0, the AUC is a coin toss
    assert audit_ranking(x, poisoned, 2)["auc"] == 0.5


def test_bad_poison_settings_are_refused():
    with pytest.raises(ValueError, match="epsilon"):
        PoisonConfig(epsilon=0.0)
    with pytest.raises(ValueError, match="last_steps"):
        PoisonConfig(last_steps=0)
    with pytest.raises(ValueError, match="regulariser"):
        PoisonConfig(regulariser=-1.0)
