"""The GD rows' float32 mode (the paper's arithmetic): every array float32, agreement with float64, the CLI's --dtype."""

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from ssmpoison.verify import published_setting
from ssmpoison.verify._gd_data import beyond_problem, nonlinear_problem, nonlinear_test_inputs, stack_problems
from ssmpoison.verify._gd_objectives import beyond_objective, nonlinear_objective
from ssmpoison.verify._gd_optimisers import Adam, AdaptiveStep
from ssmpoison.verify._gd_steppers import BeyondStepper, NonlinearStepper
from ssmpoison.verify._gd_training import train_beyond, train_nonlinear
from ssmpoison.verify._settings import override
from ssmpoison.verify._tf_random import keras_random_normal
from ssmpoison.verify.cli import main

BEYOND = published_setting("beyond", 6).config
NONLINEAR = published_setting("nonlinear", 6).config
ROWS = [("beyond", BEYOND, beyond_problem, BeyondStepper, train_beyond, (200, 201)),
        ("nonlinear", NONLINEAR, nonlinear_problem, NonlinearStepper, train_nonlinear, (4540, 4541))]
UNIT_ROUNDOFF = 2.0**-24  # float32's


def _float_arrays(obj):
    """The floating-point arrays an object holds (its attributes, lists and tuples of arrays included)."""
    out = {}
    for name, value in vars(obj).items():
        items = value if isinstance(value, (list, tuple)) else [value]
        for k, item in enumerate(items):
            if isinstance(item, np.ndarray) and item.dtype.kind == "f":
                out[f"{name}[{k}]"] = item
    return out


@pytest.mark.parametrize("dtype", ["float16", "double", 32, None])
def test_dtype_is_validated(dtype):
    for config in (BEYOND, NONLINEAR):
        with pytest.raises(ValueError, match="^dtype must be 'float64' or 'float32'"):
            replace(config, dtype=dtype)


@pytest.mark.parametrize("row,config,problem,stepper_type,trainer,seeds", ROWS, ids=[r[0] for r in ROWS])
def test_every_array_of_a_float32_run_is_float32(row, config, problem, stepper_type, trainer, seeds):
    cfg = replace(config, dtype="float32")
    problems = [problem(cfg, s, p) for s in seeds for p in (False, True)]
    for params, U, y in problems:
        assert {x.dtype for x in (*params, U, y)} == {np.dtype(np.float32)}
    params, U, y, mask = stack_problems(problems)
    assert {x.dtype for x in (*params, U, y, mask)} == {np.dtype(np.float32)}
    stepper = stepper_type(cfg, params, U, y, mask)
    for t in range(3):
        loss = stepper.loss_and_grad()
        assert loss.dtype == np.float32
        stepper.update(t)
    arrays = _float_arrays(stepper)
    assert {"theta[0]", "grad[0]", "Ucat[0]", "y[0]", "two_over_n[0]", "exponents[0]"} <= set(arrays)
    assert {k for k, v in arrays.items() if v.dtype != np.float32} == set()
    for result in trainer(cfg, seeds, [False, True], 5):
        assert {p.dtype for p in result.params} == {np.dtype(np.float32)}
    # the reference objectives and optimisers keep float32 too
    objective = beyond_objective if row == "beyond" else nonlinear_objective
    loss, grads = objective(params, U, y, mask)
    assert {x.dtype for x in (loss, *grads)} == {np.dtype(np.float32)}
    active = np.ones(len(U), dtype=bool)
    if row == "beyond":
        opt = AdaptiveStep(len(U), cfg.lr, cfg.beta, cfg.lr_eps, dtype="float32")
        stepped = opt.step(params, grads, 0, active)
        assert opt.g.dtype == np.float32
    else:
        opt = Adam(params, cfg.lr, cfg.beta1, cfg.beta2, cfg.eps)
        stepped = opt.step(params, grads, 0, active)
        assert {x.dtype for x in (*opt.m, *opt.v)} == {np.dtype(np.float32)}
    assert {x.dtype for x in stepped} == {np.dtype(np.float32)}
    if row == "nonlinear":
        assert nonlinear_test_inputs(cfg, seeds[0]).dtype == np.float32


def test_float32_initial_weights_are_keras_numbers_themselves():
    """No float64 round trip: C (|kernel| reversed) and the MLP's kernels are Keras' float32 numbers, bit for bit."""
    cfg = replace(NONLINEAR, dtype="float32")
    (a, b, c, W1, W2, W3), _, _ = nonlinear_problem(cfg, 4541, False)
    D, W = cfg.state_dim, cfg.width
    assert np.array_equal(c, np.abs(keras_random_normal((D, 1), cfg.sd_ssm, 4541))[::-1, 0])
    assert np.array_equal(W1, keras_random_normal((1, W), cfg.sd_mlp, 4541)[0])
    assert np.array_equal(W2, keras_random_normal((W, W), cfg.sd_mlp, 4541).T)
    assert np.array_equal(W3, keras_random_normal((W, 1), cfg.sd_mlp, 4541)[:, 0])
    (a64, _, c64, *_), _, _ = nonlinear_problem(NONLINEAR, 4541, False)
    assert np.array_equal(c64, c.astype(np.float64))  # float64 holds the same numbers exactly


@pytest.mark.parametrize("row,config,problem,stepper_type,trainer,seeds", ROWS, ids=[r[0] for r in ROWS])
def test_float32_and_float64_trainers_agree_on_a_short_run(row, config, problem, stepper_type, trainer, seeds):
    """Both start from the same numbers (Keras' float32 weights; the float32 run's inputs are the float64 ones
    rounded, a relative change of at most u = 2^-24). Over T steps each update adds a few roundings of relative
    size u to every parameter and the early dynamics does not amplify them: the beyond row's parameters agree to
    T u relative to each parameter's largest entry, its loss to T u. The non-linear row's float32 Adam is
    TensorFlow's, with its constants in float32: 1 - fl32(beta2) is 1 - beta2 up to a relative u beta2 / (1 - beta2),
    which changes each step (of size about lr) by up to half that; so its parameters agree to T u max|p| +
    T lr u / (2 (1 - beta2)) and its loss to 1e-5. With T = 50: 3.0e-6 relative (beyond), 1.5e-5 absolute
    (non-linear); measured 4.2e-7 and 5.8e-6 (losses 1.2e-7 and 7.6e-7). They must differ (float32 rounds)."""
    T = 50
    tol = T * UNIT_ROUNDOFF
    r64 = trainer(config, seeds, [False, True], T)
    r32 = trainer(replace(config, dtype="float32"), seeds, [False, True], T)
    adam = 0.0 if row == "beyond" else T * config.lr * UNIT_ROUNDOFF / (2 * (1 - config.beta2))
    loss_tol = tol if row == "beyond" else 1e-5
    differ = False
    for a, b in zip(r64, r32):
        assert (a.seed, a.poisoned, a.steps) == (b.seed, b.poisoned, b.steps) == (a.seed, a.poisoned, T)
        for p64, p32 in zip(a.params, b.params):
            assert p32.dtype == np.float32
            assert np.max(np.abs(p64 - p32)) <= tol * np.max(np.abs(p64)) + adam
            differ |= not np.array_equal(p64, p32)
        assert abs(a.train_loss - b.train_loss) <= loss_tol * a.train_loss
    assert differ


def test_dtype_keeps_the_published_setting():
    """--dtype (or a file's dtype) changes the arithmetic, not the setting the published means are of."""
    setting = published_setting("beyond", 6)
    new = override(setting, {"dtype": "float32"}, source="option")
    assert new.config.dtype == "float32" and new.published == setting.published
    assert override(new, {"dtype": "float64"}, source="option") == setting
    other = override(setting, {"dtype": "float32", "seeds": (200,)}, source="option")
    assert other.published is None and other.config.dtype == "float32"


@pytest.mark.parametrize("args,needle", [
    (["--dtype", "float32"], "dtype (--dtype) does not apply to the theory row"),
    (["--row", "theory", "--horizon", "7", "--dtype", "float64"], "dtype (--dtype) does not apply to the theory row"),
    (["--row", "beyond", "--dtype", "float16"], "dtype must be 'float64' or 'float32'"),
    (["--row", "all", "--dtype", "float32"], "dtype cannot be given with --row all"),
])
def test_dtype_refused_in_one_line(args, needle):
    proc = subprocess.run([sys.executable, "-m", "ssmpoison.verify.cli", "reproduce", *args], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and needle in proc.stderr


@pytest.mark.parametrize("dtype", [None, "float64", "float32"])
def test_reproduce_says_which_dtype_it_ran(dtype, capsys, tmp_path):
    path = tmp_path / "out.json"
    extra = [] if dtype is None else ["--dtype", dtype]
    assert main(["reproduce", "--row", "beyond", "--horizon", "6", "--draws", "0", *extra, "--json", str(path)]) == 0
    out = capsys.readouterr().out
    payload = json.loads(path.read_text())
    ran = dtype or "float64"
    assert payload["dtype"] == ran
    assert f"J = 40, {ran}" in out
    assert ("float32 here as in the paper" in out) == (ran == "float32")
    clean, poisoned = payload["summary"]
    assert clean["published"] == 0.194 and poisoned["published"] == 16.61  # the paper's setting, either arithmetic


def test_keras_adam_step_is_adam_in_tensorflows_order():
    """The float32 step (TensorFlow's ApplyAdam order, constants in float32) equals the float64 reference Adam up
    to float32 rounding (bound as in the test above: (t + 2) u max|p| + (t + 1) lr u / (2 (1 - beta2))); the
    reference Adam takes that very step for float32 parameters and leaves frozen runs alone."""
    from ssmpoison.verify._gd_steppers import keras_adam_step

    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-7
    rng = np.random.default_rng(3)
    start = rng.normal(size=(2, 7))
    p64 = [start.copy()]
    opt64 = Adam(p64, lr, b1, b2, eps)
    p32 = [start.astype(np.float32)]
    opt32 = Adam(p32, lr, b1, b2, eps)
    theta, m, v = p32[0][0].copy(), np.zeros(7, np.float32), np.zeros(7, np.float32)
    active = np.array([True, False])
    scale = np.max(np.abs(start))
    for t in range(30):
        g = rng.normal(size=(2, 7))
        p64 = opt64.step(p64, [g], t, np.array([True, True]))
        g32 = g.astype(np.float32)
        p32 = opt32.step(p32, [g32], t, active)
        keras_adam_step(theta, m, v, g32[0].copy(), t, lr, b1, b2, eps)
        assert theta.dtype == m.dtype == v.dtype == np.float32
        bound = (t + 2) * UNIT_ROUNDOFF * scale + (t + 1) * lr * UNIT_ROUNDOFF / (2 * (1 - b2))
        assert np.max(np.abs(theta - p64[0][0])) <= bound
    assert np.array_equal(p32[0][0], theta)  # the same operations, bit for bit
    assert np.array_equal(p32[0][1], start[1].astype(np.float32))  # the frozen run is untouched
    assert not np.array_equal(theta, p64[0][0].astype(np.float32))  # rounded differently from float64


def test_fused_float32_nonlinear_stepper_equals_the_reference_loop():
    """In float32 the fused stepper and nonlinear_objective + Adam (both TensorFlow's Adam order) agree to float32
    rounding: the two compute the gradient in different orders, so 40 steps of relative roundings u each allow
    40 u ~ 2.4e-6 relative to each parameter's largest entry."""
    cfg = replace(NONLINEAR, dtype="float32")
    problems = [nonlinear_problem(cfg, s, p) for s, p in [(4540, False), (4541, True)]]
    params, U, y, mask = stack_problems(problems)
    stepper = NonlinearStepper(cfg, params, U, y, mask)
    opt = Adam(params, cfg.lr, cfg.beta1, cfg.beta2, cfg.eps)
    ref = [p.copy() for p in params]
    for t in range(40):
        loss_f = stepper.loss_and_grad()
        loss_r, grads = nonlinear_objective(ref, U, y, mask)
        np.testing.assert_allclose(loss_f, loss_r, rtol=1e-5)
        stepper.update(t)
        ref = opt.step(ref, grads, t, np.array([True, True]))
        for p_f, p_r in zip(stepper.p, ref):
            assert p_f.dtype == p_r.dtype == np.float32
            assert np.max(np.abs(p_f - p_r)) <= 40 * UNIT_ROUNDOFF * np.max(np.abs(p_r))


def test_dynamics_names_the_arithmetic_it_ran():
    """A float32 setting's recorded dynamics say float32 (the method comes from the setting, not the row)."""
    import dataclasses

    from ssmpoison.verify._dynamics import run_dynamics
    from ssmpoison.verify._registry import row_model

    model = row_model("beyond")
    setting = model.setting(6)
    s32 = dataclasses.replace(setting, config=dataclasses.replace(setting.config, dtype="float32"))
    assert model.dynamics_method(setting) == "gradient descent, float64"
    result = run_dynamics("beyond", s32, condition="clean")
    assert result.method == "gradient descent, float32"
