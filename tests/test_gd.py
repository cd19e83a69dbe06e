"""Batched GD trainers of the "beyond" and "non-linear" rows: gradients, batching, optimisers, statuses."""

import math
from dataclasses import replace

import numpy as np
import pytest

from ssmpoison.verify import kernels
from ssmpoison.verify import _gd_data, _gd_steppers
from ssmpoison.verify._gd_optimisers import Adam, AdaptiveStep
from ssmpoison.verify._gd_objectives import beyond_objective, nonlinear_objective
from ssmpoison.verify._gd_data import beyond_problem, init_ssm, init_stream, nonlinear_problem, nonlinear_test_inputs, paper_sequences
from ssmpoison.verify._gd_training import train_beyond, train_nonlinear
from ssmpoison.verify._mlp import mlp_backward, mlp_forward
from ssmpoison.verify import published_setting

BEYOND = published_setting("beyond", 6).config  # the paper's settings (Table 1)
NONLINEAR = published_setting("nonlinear", 6).config


def _padded_batch(rng, R=2, sizes=(3, 5), H=5, D=4, width=None):
    """Random parameters for R runs and zero-padded per-run data with a mask."""
    n_max = max(sizes)
    U = np.zeros((R, n_max, H))
    y = np.zeros((R, n_max))
    mask = np.zeros((R, n_max))
    for r, n in enumerate(sizes):
        U[r, :n] = rng.normal(size=(n, H))
        y[r, :n] = rng.normal(size=n)
        mask[r, :n] = 1
    params = [rng.uniform(0.2, 0.9, (R, D)), rng.normal(size=(R, D)), rng.normal(size=(R, D))]
    if width is not None:
        params += [rng.normal(size=(R, width)), rng.normal(size=(R, width, width)), rng.normal(size=(R, width))]
    return params, U, y, mask


def _central_differences(objective, params, h=1e-6):
    """d(sum_r L_r)/d theta by central differences, one entry at a time."""
    out = []
    for k, p in enumerate(params):
        g = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            plus = [q.copy() for q in params]
            minus = [q.copy() for q in params]
            plus[k][idx] += h
            minus[k][idx] -= h
            g[idx] = (objective(plus)[0].sum() - objective(minus)[0].sum()) / (2 * h)
        out.append(g)
    return out


def test_beyond_gradients_match_finite_differences():
    params, U, y, mask = _padded_batch(np.random.default_rng(1))
    objective = lambda th: beyond_objective(th, U, y, mask)  # noqa: E731
    _, grads = objective(params)
    for g, fd in zip(grads, _central_differences(objective, params)):
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


def test_padded_batch_equals_unpadded_kernels():
    """A padded run's loss and gradient equal the kernels' on its real sequences alone."""
    params, U, y, mask = _padded_batch(np.random.default_rng(2), sizes=(3, 6))
    loss, grads = beyond_objective(params, U, y, mask)
    for r in range(2):
        n = int(mask[r].sum())
        a, b, c = (p[r] for p in params)
        assert loss[r] == pytest.approx(kernels.loss(a, b, c, U[r, :n], y[r, :n]), rel=1e-13)
        neg = kernels.neg_grad_abc(a, b, c, U[r, :n], y[r, :n])
        np.testing.assert_allclose(-np.stack([g[r] for g in grads]), neg, rtol=1e-12, atol=1e-14)


def test_mlp_gradients_match_finite_differences():
    rng = np.random.default_rng(3)
    weights = [rng.normal(size=(2, 4)), rng.normal(size=(2, 4, 4)), rng.normal(size=(2, 4))]
    y = rng.normal(size=(2, 6))
    target = rng.normal(size=(2, 6))

    def objective(th):
        w, yy = th[:3], th[3]
        f, cache = mlp_forward(w, yy)
        loss = ((f - target) ** 2).sum(axis=1)
        grads, dy = mlp_backward(w, cache, 2 * (f - target))
        return loss, [*grads, dy]

    _, grads = objective([*weights, y])
    for g, fd in zip(grads, _central_differences(objective, [*weights, y])):
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


def test_nonlinear_gradients_match_finite_differences():
    params, U, y, mask = _padded_batch(np.random.default_rng(4), sizes=(4, 7), width=3)
    objective = lambda th: nonlinear_objective(th, U, y, mask)  # noqa: E731
    _, grads = objective(params)
    assert len(grads) == 6
    for g, fd in zip(grads, _central_differences(objective, params)):
        np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-7)


def test_adaptive_step_by_hand():
    """g_0 = 0.2*5 = 1, lr_0 = 0.01/(sqrt(1/0.2)+1e-6); g_1 = 0.8 + 0.2*10 = 2.8, lr_1 = 0.01/(sqrt(2.8/0.36)+1e-6)."""
    opt = AdaptiveStep(1, lr=0.01)
    params = [np.array([[1.0, 2.0]]), np.array([[0.5, 0.5]])]
    active = np.array([True])
    g0 = [np.array([[3.0, 4.0]]), np.zeros((1, 2))]  # sum of norms 5
    params = opt.step(params, g0, 0, active)
    lr0 = 0.01 / (math.sqrt(5.0) + 1e-6)
    np.testing.assert_allclose(params[0], [[1 - 3 * lr0, 2 - 4 * lr0]], rtol=1e-15)
    g1 = [np.array([[0.0, 6.0]]), np.array([[0.0, 8.0]])]  # sum of norms 6 + 8 = 14
    params = opt.step(params, g1, 1, active)
    lr1 = 0.01 / (math.sqrt((0.8 * 1.0 + 0.2 * 14.0) / 0.36) + 1e-6)
    np.testing.assert_allclose(params[0], [[1 - 3 * lr0, 2 - 4 * lr0 - 6 * lr1]], rtol=1e-15)
    np.testing.assert_allclose(params[1], [[0.5, 0.5 - 8 * lr1]], rtol=1e-15)
    # a frozen run keeps its parameters and its state
    before = opt.g.copy()
    frozen = opt.step(params, g1, 2, np.array([False]))
    np.testing.assert_array_equal(frozen[0], params[0])
    np.testing.assert_array_equal(opt.g, before)


def test_adam_first_step_is_signed_lr():
    """At t = 0, m/(sqrt v) = sign(g): the step is lr * sign(g) up to eps."""
    p = [np.array([[1.0, -1.0, 0.0]])]
    opt = Adam(p, lr=0.01, eps=1e-12)
    out = opt.step(p, [np.array([[2.0, -3.0, 0.0]])], 0, np.array([True]))
    np.testing.assert_allclose(out[0], [[0.99, -0.99, 0.0]], rtol=1e-10)


def test_batched_training_equals_single_runs():
    """Mixed clean/poisoned batch (padding, runs frozen at different steps) == each run alone."""
    cfg = replace(BEYOND, extra_steps=50, log_period=1)
    batch = train_beyond(cfg, [200, 201], [False, True], 12000)
    assert {r.status for r in batch} == {"converged"}
    assert len({r.steps for r in batch}) > 1  # runs stopped at different steps
    for r in batch:
        (single,) = train_beyond(cfg, [r.seed], [r.poisoned], 12000)
        assert (single.steps, single.status, single.reached_at) == (r.steps, r.status, r.reached_at)
        assert single.steps == single.reached_at + 50
        for p, q in zip(single.params, r.params):
            np.testing.assert_allclose(p, q, rtol=1e-11, atol=1e-14)
        assert single.ext_error == pytest.approx(r.ext_error, rel=1e-9)


def test_nonlinear_batched_equals_single_runs():
    cfg = replace(NONLINEAR, extra_steps=5, log_period=1)
    batch = train_nonlinear(cfg, [4540], [False, True], 300)
    for r in batch:
        (single,) = train_nonlinear(cfg, [r.seed], [r.poisoned], 300)
        assert (single.steps, single.status) == (r.steps, r.status)
        for p, q in zip(single.params, r.params):
            np.testing.assert_allclose(p, q, rtol=1e-10, atol=1e-14)


def test_poisoned_problem_extends_clean_problem():
    cfg = BEYOND
    (a, b, c), U, y = beyond_problem(cfg, 7, False)
    (a2, b2, c2), U2, y2 = beyond_problem(cfg, 7, True)
    assert U.shape == (8, 6) and U2.shape == (18, 6)
    np.testing.assert_array_equal(U2[:8], U)
    np.testing.assert_array_equal(y, U.sum(axis=1))
    assert (U[:, 2:] == 0).all() and (U2[8:, [0, 1, 2, 3, 5]] == 0).all() and (U2[8:, 4] != 0).all()
    np.testing.assert_array_equal(a, a2)
    assert a[1] == pytest.approx(a[0] - 0.05 / math.exp(15), abs=1e-16)
    assert a.min() >= 0.1 and b.min() >= 0.1 and c.min() >= 0
    # other initialisation draws change the parameters, never the data
    (a3, _, _), U3, _ = beyond_problem(cfg, 7, True, init_draw=3)
    np.testing.assert_array_equal(U3, U2)
    assert not np.array_equal(a3, a)


def test_nonlinear_teacher_labels():
    cfg = NONLINEAR
    _, U, y = nonlinear_problem(cfg, 3, True)
    np.testing.assert_allclose(y, 7.5 * np.maximum(U.sum(axis=1), 0), rtol=1e-14)


def test_status_diverged_with_huge_lr():
    (r,) = train_beyond(replace(BEYOND, lr=1e3), [200], [True], 1000)
    assert r.status == "diverged" and r.steps < 1000


def test_status_max_steps():
    (r,) = train_beyond(BEYOND, [200], [False], 5)
    assert r.status == "max_steps" and r.steps == 5 and r.reached_at is None and r.train_loss > 0.01


def test_status_stalled_at_a_critical_point():
    """A network whose output weights are all zero has zero gradient everywhere: it cannot move."""
    cfg = NONLINEAR
    orig = _gd_data.nonlinear_problem

    def dead(config, seed, poisoned, init_draw=0):
        (a, b, c, W1, W2, W3), U, y = orig(config, seed, poisoned, init_draw)
        return (a, b, c, W1, W2, np.zeros_like(W3)), U, y

    _gd_data.nonlinear_problem = dead
    try:
        (r,) = train_nonlinear(cfg, [4540], [False], 20)
    finally:
        _gd_data.nonlinear_problem = orig
    assert r.status == "stalled" and r.steps == 20 and r.reached_at is None

def test_determinism():
    cfg = replace(NONLINEAR, extra_steps=0)
    one = train_nonlinear(cfg, [11], [True], 50)
    two = train_nonlinear(cfg, [11], [True], 50)
    for p, q in zip(one[0].params, two[0].params):
        np.testing.assert_array_equal(p, q)
    assert one == two


def test_progress_callback():
    calls = []
    train_beyond(BEYOND, [1], [False], 3, progress=lambda t, n: calls.append((t, n)))
    assert calls == [(0, 1), (3, 1)]  # (step, runs still active): at step 3 the budget is spent


@pytest.mark.parametrize(
    "kwargs",
    [dict(horizon=2), dict(state_dim=1), dict(sd_a=0.0), dict(lr=-1.0), dict(beta=1.0), dict(tol=float("nan")),
     dict(n_special=0), dict(extra_steps=-1), dict(baseline_positions=(0, 4)), dict(baseline_positions=(0, 0)),
     dict(baseline_positions=(7,)), dict(horizon=True)],
)
def test_beyond_config_validation(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs)).split("_")[0]):
        replace(BEYOND, **kwargs)


@pytest.mark.parametrize("kwargs", [dict(width=0), dict(sd_mlp=0), dict(beta2=1.5), dict(eps=0), dict(ext_samples=0)])
def test_nonlinear_config_validation(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        replace(NONLINEAR, **kwargs)


def test_train_argument_validation():
    with pytest.raises(ValueError, match="seeds"):
        train_beyond(BEYOND, [], [False], 1)
    with pytest.raises(ValueError, match="poisoned_flags"):
        train_beyond(BEYOND, [1], [0], 1)
    with pytest.raises(ValueError, match="max_steps"):
        train_beyond(BEYOND, [1], [False], -1)
    with pytest.raises(ValueError, match="config"):
        train_nonlinear(BEYOND, [1], [False], 1)
    with pytest.raises(ValueError, match="init_draws"):
        train_beyond(BEYOND, [1], [False], 1, init_draws=[-1])
    with pytest.raises(ValueError, match="horizon"):
        published_setting("beyond", 7)
    assert published_setting("beyond", 10).config.state_dim == 20
    with pytest.raises(ValueError, match="full_matrix_norm"):
        replace(BEYOND, full_matrix_norm=1)
    with pytest.raises(ValueError, match="log_period"):
        replace(NONLINEAR, log_period=0)


# ---------------------------------------------------------------- the paper's procedure, detail by detail


def test_paper_sequences_replay_generate_inputs():
    """The code draws, per sequence, normal(0, 1, size=(rows, 1)) from the seeded legacy generator."""
    H, seed = 6, 204
    np.random.seed(seed)
    base = np.zeros((8, H))
    for i in range(8):
        base[i, [0, 1]] = np.random.normal(0, 1, size=(2, 1))[:, 0]
    special = np.zeros((10, H))
    for i in range(10):
        special[i, H - 2] = np.random.normal(0, 1, size=(1, 1))[0, 0]
    ours = paper_sequences(seed, H, 8, (1, 0), 10)
    np.testing.assert_array_equal(ours[0], base)
    np.testing.assert_array_equal(ours[1], special)


def test_nonlinear_test_inputs_replay_the_code():
    cfg = replace(NONLINEAR, ext_samples=30)
    np.random.seed(4541 + 12)
    expected = np.random.normal(0, 1, (30, 40, 1))[..., 0]
    np.testing.assert_array_equal(nonlinear_test_inputs(cfg, 4541), expected)


def test_shared_stream_initialisation_structure():
    """Keras' stateless seeded initialisers: B and C hold the same draws, A's diagonal is z[::D+1]."""
    D = 5
    z = init_stream(3, D * D)
    a, b, c = init_ssm(z, D, 0.01, 0.001, 5.0, 0.1)
    np.testing.assert_array_equal(c, np.abs(0.001 * z[:D])[::-1])
    np.testing.assert_allclose(np.sort(b - 0.1)[::-1][2:], np.sort(c)[::-1][2:], rtol=1e-12)
    np.testing.assert_allclose(np.sort(a - 0.1)[::-1][2:], np.sort(np.abs(0.01 * z[:: D + 1]))[::-1][2:], rtol=1e-12)
    # the rows start from Keras' own weights: fl32(fl32(sd) z_j), z the float32 stream of [seed, 0]
    (a, b, c, W1, W2, W3), _, _ = nonlinear_problem(NONLINEAR, 9, False)
    zz = init_stream(9, 225).astype(np.float32)
    keras = lambda sd, n: (zz[:n] * np.float32(sd)).astype(float)  # noqa: E731
    np.testing.assert_array_equal(W1, keras(0.03, 15))
    np.testing.assert_array_equal(W3, W1)
    np.testing.assert_array_equal(W2.T, keras(0.03, 225).reshape(15, 15))  # Keras kernel (input x output)
    np.testing.assert_array_equal(c, np.abs(keras(0.01, 10))[::-1])
    diagonal = np.sort(np.abs(keras(0.01, 100)[::11]))[::-1]  # the recurrent kernel's diagonal, sorted
    np.testing.assert_array_equal(a[[0, *range(2, 10)]], diagonal[[0, *range(2, 10)]] + 0.001)  # a[1] is the gap's


def test_further_draws_and_the_literal_reading_take_their_own_numbers_from_the_stream():
    """Draw d > 0 takes Keras' kernels from the stream of the seed pair [seed, d]; with
    shared_init_stream=False every parameter takes consecutive, disjoint numbers of that stream."""
    from ssmpoison.verify._tf_random import keras_random_normal

    D = BEYOND.state_dim
    (a, b, c), _, _ = beyond_problem(BEYOND, 7, False, init_draw=3)
    np.testing.assert_array_equal(c, np.abs(keras_random_normal((D, 1), BEYOND.sd_bc, (7, 3))[::-1, 0]).astype(float))
    literal = replace(BEYOND, shared_init_stream=False)
    (a, b, c), _, _ = beyond_problem(literal, 7, False, init_draw=3)
    z = init_stream(7, 3 * D, 3)
    np.testing.assert_array_equal(c, np.abs(BEYOND.sd_bc * z[2 * D:]))
    np.testing.assert_array_equal(b[2:], np.sort(np.abs(BEYOND.sd_bc * z[D:2 * D]))[::-1][2:] + BEYOND.warm_start)
    (_, _, _, W1, W2, W3), _, _ = nonlinear_problem(replace(NONLINEAR, shared_init_stream=False), 9, False)
    zz = init_stream(9, 30 + 15 + 225 + 15)
    np.testing.assert_array_equal(W1, NONLINEAR.sd_mlp * zz[30:45])
    np.testing.assert_array_equal(W2, NONLINEAR.sd_mlp * zz[45:270].reshape(15, 15))
    np.testing.assert_array_equal(W3, NONLINEAR.sd_mlp * zz[270:])


def test_reported_extra_steps_follow_the_logging_period():
    assert BEYOND.reported_extra_steps == 1401
    assert NONLINEAR.reported_extra_steps == 4901
    assert replace(BEYOND, log_period=1).reported_extra_steps == 1500
    assert replace(BEYOND, extra_steps=0).reported_extra_steps == 0
    assert replace(BEYOND, extra_steps=100).reported_extra_steps == 1
    assert replace(BEYOND, extra_steps=101).reported_extra_steps == 101


def _keras_rnn_loss(A, b, c, U, y):
    """Loss of Keras' SimpleRNN + Dense with a full recurrent matrix (row-vector convention)."""
    h = np.zeros((U.shape[0], A.shape[0]))
    for k in range(U.shape[1]):
        h = U[:, k : k + 1] * b[None, :] + h @ A
    return np.mean((h @ c - y) ** 2)


def test_a_matrix_gradient_matches_finite_differences():
    rng = np.random.default_rng(5)
    D, H, N = 4, 5, 6
    a, b, c = rng.uniform(0.2, 0.9, D), rng.normal(size=D), rng.normal(size=D)
    U, y = rng.normal(size=(N, H)), rng.normal(size=N)
    delta = y - kernels.outputs(a, b, c, U)
    G = -kernels.neg_grad_a_matrix(a, b, c, U, delta)
    fd = np.zeros((D, D))
    h = 1e-6
    for i in range(D):
        for j in range(D):
            E = np.zeros((D, D))
            E[i, j] = h
            A = np.diag(a)
            fd[i, j] = (_keras_rnn_loss(A + E, b, c, U, y) - _keras_rnn_loss(A - E, b, c, U, y)) / (2 * h)
    np.testing.assert_allclose(G, fd, rtol=1e-6, atol=1e-9)
    _, grads = beyond_objective([a[None], b[None], c[None]], U[None], y[None], np.ones((1, N)))
    np.testing.assert_allclose(np.diag(G), grads[0][0], rtol=1e-12)


@pytest.mark.parametrize("full", [False, True])
def test_fused_beyond_trainer_equals_reference_loop(full):
    """The fused stepper == beyond_objective + AdaptiveStep (with the full-matrix norm when asked)."""
    cfg = replace(BEYOND, full_matrix_norm=full)
    problems = [beyond_problem(cfg, s, p) for s, p in [(200, False), (201, True)]]
    params, U, y, mask = _gd_data.stack_problems(problems)
    stepper = _gd_steppers.BeyondStepper(cfg, params, U, y, mask)
    opt = AdaptiveStep(2, cfg.lr, cfg.beta, cfg.lr_eps)
    ref = [p.copy() for p in params]
    for t in range(40):
        loss_f = stepper.loss_and_grad()
        loss_r, grads = beyond_objective(ref, U, y, mask)
        np.testing.assert_allclose(loss_f, loss_r, rtol=1e-12)
        norms = None
        if full:
            delta = (y - kernels.outputs(*ref, U)) * mask
            G = kernels.neg_grad_a_matrix(*ref, U, delta, samples=mask.sum(axis=1))
            norms = np.sqrt((G**2).sum(axis=(1, 2))) + sum(np.linalg.norm(g, axis=1) for g in grads[1:])
        stepper.update(t)
        ref = opt.step(ref, grads, t, np.array([True, True]), norms)
        for k in range(3):
            np.testing.assert_allclose(stepper.theta[:, k], ref[k], rtol=1e-12)


def test_fused_nonlinear_trainer_equals_reference_loop():
    cfg = NONLINEAR
    problems = [nonlinear_problem(cfg, s, p) for s, p in [(4540, False), (4541, True)]]
    params, U, y, mask = _gd_data.stack_problems(problems)
    stepper = _gd_steppers.NonlinearStepper(cfg, params, U, y, mask)
    opt = Adam(params, cfg.lr, cfg.beta1, cfg.beta2, cfg.eps)
    ref = [p.copy() for p in params]
    for t in range(40):
        loss_f = stepper.loss_and_grad()
        loss_r, grads = nonlinear_objective(ref, U, y, mask)
        np.testing.assert_allclose(loss_f, loss_r, rtol=1e-12)
        for g_f, g_r in zip(stepper.gp, grads):
            np.testing.assert_allclose(g_f, g_r, rtol=1e-10, atol=1e-18)
        stepper.update(t)
        ref = opt.step(ref, grads, t, np.array([True, True]))
        for p_f, p_r in zip(stepper.p, ref):
            np.testing.assert_allclose(p_f, p_r, rtol=1e-10, atol=1e-16)


def test_reference_outputs_and_extrapolation_error_keep_the_trainers_bits():
    """The one copy of y_H (per-run inputs) and of the extrapolation error give the bits the trainers gave
    before they were shared: einsum outputs, and ``max_j |K_j - 1|`` from the kernels' impulse response."""
    from ssmpoison.verify._gd_training import beyond_extrapolation_error
    from ssmpoison.verify._kernels import outputs as ssm_outputs

    rng = np.random.default_rng(41)
    for _ in range(200):
        R, N, H, D = (int(v) for v in rng.integers(1, [4, 25, 12, 12]))
        a, b, c = (rng.normal(size=(R, D)) for _ in range(3))
        U = rng.normal(size=(R, N, H))
        K = kernels.impulse_response(a, b, c, H)
        assert np.array_equal(ssm_outputs(a, b, c, U), np.einsum("rj,rnj->rn", K, U[..., ::-1]))
    for k in range(200):
        dtype = (np.float64, np.float32)[k % 2]
        D, J = int(rng.integers(1, 21)), int(rng.integers(2, 60))
        a, b, c = (rng.uniform(-1.1, 1.1, D).astype(dtype) for _ in range(3))
        if k % 13 == 0:
            b[0] = np.inf
        with np.errstate(all="ignore"):
            old = np.abs(kernels.impulse_response(a[None], b[None], c[None], J) - 1.0).max(axis=1)[0]
        new = beyond_extrapolation_error((a, b, c), J)
        assert (np.isnan(old) and np.isnan(new)) or float(old) == new
