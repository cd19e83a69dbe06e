"""The real-world SSM layers (S4D, LRU): the convolution forms against the step-by-step recurrences, LRU's
stability under any parameter update, shapes, determinism of the initialisation."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from ssmpoison.verify._realworld_layers import LRU, S4D, SequenceClassifier, build_model  # noqa: E402

#: float64 agreement of the FFT convolution with the recurrence (both are exact up to rounding: the
#: observed difference is ~1e-15 relative; 1e-10 leaves room for the FFT's log L growth)
TOLERANCE = 1e-10
from ssmpoison.verify._realworld_training import deterministic_torch  # noqa: E402

deterministic_torch()  # one thread: far faster than two for these small tensors on a shared machine


def _random_u(batch, length, channels, seed):
    return torch.randn(batch, length, channels, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("length", [1, 7, 64])
def test_s4d_kernel_convolution_equals_the_recurrence(length):
    layer = S4D(5, state_dim=8, dt_min=1e-2, dt_max=0.5, generator=torch.Generator().manual_seed(1)).double()
    with torch.no_grad():  # move off the initialisation so the test is not about special values
        layer.log_a_real.add_(0.3 * torch.randn(layer.log_a_real.shape, dtype=torch.float64))
        layer.a_imag.add_(torch.randn(layer.a_imag.shape, dtype=torch.float64))
    u = _random_u(3, length, 5, 2)
    conv, rec = layer(u), layer.recurrence(u)
    assert conv.shape == rec.shape == (3, length, 5)
    assert torch.max(torch.abs(conv - rec)) <= TOLERANCE * torch.max(torch.abs(rec))


def test_s4d_kernel_is_the_impulse_response():
    layer = S4D(2, state_dim=4, generator=torch.Generator().manual_seed(0)).double()
    impulse = torch.zeros(1, 10, 2, dtype=torch.float64)
    impulse[0, 0] = 1
    with torch.no_grad():
        response = layer.recurrence(impulse)[0].T - layer.d[:, None] * impulse[0].T
        assert torch.allclose(response, layer.kernel(10), rtol=0, atol=1e-12)


def test_s4d_lin_initialisation():
    layer = S4D(3, state_dim=6, generator=torch.Generator().manual_seed(0))
    a_bar, _, _ = layer.discretised()
    assert torch.allclose(torch.exp(layer.log_a_real), torch.full((3, 3), 0.5))
    assert torch.allclose(layer.a_imag[0], torch.pi * torch.arange(3.0))
    assert torch.all(torch.abs(a_bar) < 1)
    dt = torch.exp(layer.log_dt)
    assert torch.all((dt >= 1e-3 * (1 - 1e-6)) & (dt <= 1e-1 * (1 + 1e-6)))


@pytest.mark.parametrize("length", [1, 9, 64])
def test_lru_convolution_equals_the_recurrence(length):
    layer = LRU(4, state_dim=6, generator=torch.Generator().manual_seed(3)).double()
    u = _random_u(2, length, 4, 5)
    conv, rec = layer(u), layer.recurrence(u)
    assert conv.shape == rec.shape == (2, length, 4)
    assert torch.max(torch.abs(conv - rec)) <= TOLERANCE * torch.max(torch.abs(rec))


def test_lru_eigenvalues_stay_strictly_inside_the_unit_circle_after_random_updates():
    layer = LRU(4, state_dim=16, generator=torch.Generator().manual_seed(0))
    optimiser = torch.optim.Adam(layer.parameters(), lr=0.5)  # steps of size <= ~0.5 whatever the gradient
    generator = torch.Generator().manual_seed(1)
    for step in range(12):
        with torch.no_grad():  # large random jumps, including towards |λ| -> 1 (ν_log -> -inf)
            layer.nu_log.add_(torch.randn(layer.nu_log.shape, generator=generator) * 3 - 2)
            layer.theta_log.add_(torch.randn(layer.theta_log.shape, generator=generator) * 0.5)
        loss = layer(torch.randn(2, 8, 4, generator=generator)).pow(2).sum()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()  # and gradient steps
        modulus = torch.abs(layer.eigenvalues())
        assert torch.all(torch.isfinite(modulus)) and torch.all(modulus < 1), step  # in float32: |λ| <= exp(-nu_min) = 1 - 1e-4
        gamma = layer.gamma()
        assert torch.all(gamma > 0) and torch.allclose(gamma**2 + modulus**2, torch.ones_like(gamma), atol=1e-5)
    assert torch.min(layer.nu_log) < -15  # the test did reach the region where a plain exp(-exp(ν)) rounds to 1


def test_lru_initial_moduli_lie_in_the_ring():
    layer = LRU(2, state_dim=200, r_min=0.5, r_max=0.9, generator=torch.Generator().manual_seed(0))
    modulus = torch.abs(layer.eigenvalues())
    assert torch.all((modulus >= 0.5 - 1e-4) & (modulus <= 0.9 + 1e-4))


@pytest.mark.parametrize("kind", ["s4d", "lru"])
@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_classifier_shapes_and_seeded_initialisation(kind, pooling):
    model = build_model(kind, 1, 10, seed=4, width=8, state_dim=4, layers=2, pooling=pooling)
    assert model(torch.rand(5, 64, 1)).shape == (5, 10)
    again = build_model(kind, 1, 10, seed=4, width=8, state_dim=4, layers=2, pooling=pooling)
    other = build_model(kind, 1, 10, seed=5, width=8, state_dim=4, layers=2, pooling=pooling)
    same = [torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters())]
    differ = [torch.equal(a, b) for a, b in zip(model.parameters(), other.parameters())]
    assert all(same) and not all(differ)


def test_last_pooling_reads_only_the_past():
    model = build_model("s4d", 1, 3, seed=0, width=4, state_dim=4, pooling="last").double()
    u = torch.rand(1, 16, 1, dtype=torch.float64)
    v = u.clone()
    v[0, -1] += 1.0
    assert not torch.allclose(model(u), model(v))  # the last step reaches the decoder directly


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="model must be one of"):
        SequenceClassifier("mamba", 1, 10)
    with pytest.raises(ValueError, match="state_dim"):
        S4D(3, state_dim=5)
    with pytest.raises(ValueError, match="r_min"):
        LRU(3, r_min=0.9, r_max=0.5)


def test_training_is_deterministic_for_a_seed_and_learns():
    pytest.importorskip("sklearn")
    from ssmpoison.verify._realworld_data import load_digit_sequences
    from ssmpoison.verify._realworld_training import TrainConfig, accuracy, train_classifier

    data = load_digit_sequences(limit=200)
    assert data.x_train.shape[1:] == (64, 1) and data.classes == 10 and len(data.y_test) == 50
    assert data.x_train.min() >= 0 and data.x_train.max() <= 1
    config = TrainConfig(width=8, state_dim=4, epochs=6, learning_rate=2e-2, pooling="last")
    first, complete = train_classifier("lru", data.x_train, data.y_train, 10, 7, config)
    again, _ = train_classifier("lru", data.x_train, data.y_train, 10, 7, config)
    assert complete and all(torch.equal(a, b) for a, b in zip(first.parameters(), again.parameters()))
    assert accuracy(first, data.x_train, data.y_train) > 0.2  # it learns (chance: 0.1; measured 0.3)
    stopped, complete = train_classifier("lru", data.x_train, data.y_train, 10, 7, config, should_stop=lambda: True)
    assert not complete
