"""The paper's dynamics experiments: the config options they need, the registry, and ``dynamics --experiment``."""

import json
from dataclasses import replace

import numpy as np
import pytest

from ssmpoison.theory._construction import with_paper_gap
from ssmpoison.verify import _gd_data, _gd_steppers, kernels, published_setting
from ssmpoison.verify._dynamics import LEARNED_LEVEL, entry_comparison, run_experiment
from ssmpoison.verify._experiments import EXPERIMENTS, DynamicsExperiment, ExperimentRun, experiment
from ssmpoison.verify._gd_config import BeyondConfig, NonlinearConfig
from ssmpoison.verify._gd_data import beyond_problem, nonlinear_problem, nonlinear_test_inputs, paper_sequences
from ssmpoison.verify._gd_objectives import beyond_objective
from ssmpoison.verify._gd_optimisers import AdaptiveStep
from ssmpoison.verify._gd_training import beyond_extrapolation_error, train_beyond, train_nonlinear
from ssmpoison.verify.cli import main

BEYOND = published_setting("beyond", 6).config
BEYOND_10 = published_setting("beyond", 10).config
NONLINEAR = published_setting("nonlinear", 6).config


# ---------------------------------------------------------------- config

@pytest.mark.parametrize("kwargs", [
    {"special_positions": (1,)},  # H-2 = 4 missing
    {"special_positions": (4, 4)},
    {"special_positions": (4, 6)},
    {"special_positions": (4, -1)},
    {"special_positions": 4},
    {"lr_poisoned": 0.0},
    {"lr_poisoned": float("nan")},
    {"extra_steps_poisoned": -1},
    {"extra_steps_poisoned": 1.5},
    {"extra_gaps": (1.01,) * 9},  # at most D - 2 = 8
    {"extra_gaps": (0.0,)},
    {"extra_gaps": 1.01},
    {"teacher_a": ()},
    {"teacher_a": (1.0, float("inf"))},
    {"teacher_a": (0.5, 0.5)},  # repeated: the teacher's dimension is the number of distinct entries
    {"teacher_a": (0.5, 0.0)},
    {"teacher_a": (1.5,)},  # unstable
    {"fix_bc": 1},
])
def test_new_config_fields_are_validated(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        replace(BEYOND, **kwargs)


def test_the_gd_teacher_is_the_theory_teacher_with_d_star_equal_to_d():
    from ssmpoison.theory._teacher import Teacher
    from ssmpoison.verify._gd_config import teacher_impulse

    for a in ((1.0,), (0.99, 0.8), (0.99, 0.8, 0.5, 0.3)):
        K = teacher_impulse(a, 12)
        assert K.dtype == np.float64 and list(K) == [float(k) for k in Teacher(a, len(a)).impulse_response(12)]
        assert K[0] == len(a) and K[1] == pytest.approx(sum(a), rel=1e-15)
    assert list(teacher_impulse((1.0,), 5)) == [1.0] * 5 and teacher_impulse((0.5,), 0).shape == (0,)


def test_nonlinear_ext_seed_offset_may_be_none_but_not_negative():
    assert replace(NONLINEAR, ext_seed_offset=None).ext_seed_offset is None
    with pytest.raises(ValueError, match="ext_seed_offset"):
        replace(NONLINEAR, ext_seed_offset=-1)


def test_special_positions_default_follows_the_horizon():
    assert BEYOND.special_positions is None and BEYOND.special_support == (4,)
    assert replace(BEYOND, special_positions=[4]) == BEYOND  # (H-2,) is stored as the default
    two = replace(BEYOND, special_positions=(5, 4))
    assert two.special_positions == (4, 5) and two.special_support == (4, 5)
    assert replace(BEYOND, horizon=10, state_dim=20).special_support == (8,)


def test_for_condition():
    assert BEYOND.for_condition(False) is BEYOND and BEYOND.for_condition(True) is BEYOND
    cfg = replace(BEYOND, lr_poisoned=0.001, extra_steps_poisoned=300)
    assert cfg.for_condition(False) is cfg
    poisoned = cfg.for_condition(True)
    assert (poisoned.lr, poisoned.extra_steps, poisoned.lr_poisoned, poisoned.extra_steps_poisoned) == (0.001, 300, None, None)
    assert replace(cfg, lr_poisoned=None).for_condition(True).lr == BEYOND.lr
    with pytest.raises(ValueError, match="poisoned"):
        cfg.for_condition(1)


# ---------------------------------------------------------------- defaults keep Table 1's problems

def _old_sequences(seed, H, n_baseline, positions, n_special):
    """paper_sequences as it was before special_positions: one N(0,1) at H-2 per special sequence."""
    rs = np.random.RandomState(seed)
    base = np.zeros((n_baseline, H))
    base[:, sorted(positions)] = rs.normal(0.0, 1.0, size=(n_baseline, len(positions)))
    special = np.zeros((n_special, H))
    special[:, H - 2] = rs.normal(0.0, 1.0, size=n_special)
    return base, special


@pytest.mark.parametrize("row,horizon", [("beyond", 6), ("beyond", 10), ("nonlinear", 6)])
def test_defaults_leave_the_table1_problems_bit_identical(row, horizon):
    setting = published_setting(row, horizon)
    cfg = setting.config
    problem = beyond_problem if row == "beyond" else nonlinear_problem
    explicit = replace(cfg, special_positions=(horizon - 2,), extra_gaps=(), lr_poisoned=None, extra_steps_poisoned=None)
    for seed in setting.seeds[:2]:
        base, special = _old_sequences(seed, horizon, cfg.n_baseline, cfg.baseline_positions, cfg.n_special)
        new_base, new_special = paper_sequences(seed, horizon, cfg.n_baseline, cfg.baseline_positions, cfg.n_special)
        assert np.array_equal(base, new_base) and np.array_equal(special, new_special)
        for poisoned in (False, True):
            params, U, y = problem(cfg, seed, poisoned)
            params2, U2, y2 = problem(explicit, seed, poisoned)
            old_U = np.vstack([base, special]) if poisoned else base
            assert np.array_equal(U, old_U.astype(cfg.dtype)) and np.array_equal(U2, U)
            if row == "beyond":
                assert np.array_equal(y, U.sum(axis=1)) and np.array_equal(y2, y)
            else:
                assert np.array_equal(y2, y)
            for p, q in zip(params, params2):
                assert np.array_equal(p, q)
            sd_a, sd_bc = (cfg.sd_a, cfg.sd_bc) if row == "beyond" else (cfg.sd_ssm, cfg.sd_ssm)
            a0, b0, c0 = _gd_data._keras_ssm(seed, 0, cfg.state_dim, sd_a, sd_bc, cfg.dtype)
            old = (with_paper_gap(np.sort(np.abs(a0))[::-1], sd_a, cfg.gap_k) + cfg.warm_start,
                   with_paper_gap(np.sort(np.abs(b0))[::-1], sd_a, cfg.gap_k) + cfg.warm_start, np.abs(c0))
            for p, q in zip(params[:3], old):
                assert np.array_equal(p, q)


def test_default_extrapolation_error_is_the_old_one():
    rng = np.random.default_rng(3)
    for _ in range(50):
        a, b, c = (rng.uniform(-1.1, 1.1, 6) for _ in range(3))
        K = kernels.impulse_response(a[None], b[None], c[None], 40)[0]
        assert beyond_extrapolation_error((a, b, c), 40) == float(np.abs(K - 1.0).max())
        assert beyond_extrapolation_error((a, b, c), 40, (1.0,)) == beyond_extrapolation_error((a, b, c), 40)


# ---------------------------------------------------------------- the new options

def test_special_sequences_at_two_positions_draw_as_generate_inputs():
    base, special = paper_sequences(105, 6, 8, (0, 1), 10, special_positions=(5, 4))
    rs = np.random.RandomState(105)
    for row in base:  # the paper's loop: per sequence, one N(0,1) per non-zero position, ascending
        assert np.array_equal(row[[0, 1]], rs.normal(0, 1, size=(2, 1))[:, 0])
    for row in special:
        assert np.array_equal(row[[4, 5]], rs.normal(0, 1, size=(2, 1))[:, 0])
        assert not row[:4].any()


def test_teacher_labels_extra_gaps_and_extrapolation_error():
    cfg = replace(BEYOND, teacher_a=(0.99, 0.8, 0.5), extra_gaps=(1.01, 1.05), warm_start=0.0)
    (a, b, c), U, y = beyond_problem(cfg, 302, True)
    h = np.zeros(len(U))  # the teacher's recurrence h <- A* h + B* u, y = C* h, each state separately
    expected = np.zeros(len(U))
    for ai in cfg.teacher_a:
        h = np.zeros(len(U))
        for k in range(U.shape[1]):
            h = ai * h + U[:, k]
        expected += h
    np.testing.assert_allclose(y, expected, rtol=1e-13, atol=1e-13)
    diff = a[0] - a[1]
    np.testing.assert_allclose([a[0] - a[2], a[0] - a[3]], [1.01 * diff, 1.05 * diff], rtol=1e-6)
    np.testing.assert_allclose([b[0] - b[2], b[0] - b[3]], [1.01 * diff, 1.05 * diff], rtol=1e-6)
    assert np.all(np.diff(a[3:]) <= 0)  # the rest stays sorted
    teacher = (np.array([0.99, 0.8, 0.5]), np.ones(3), np.ones(3))
    assert beyond_extrapolation_error(teacher, 40, cfg.teacher_a) < 1e-15
    shifted = (np.array([0.99, 0.8, 0.5]), np.array([1.0, 1.0, 1.3]), np.ones(3))
    assert beyond_extrapolation_error(shifted, 40, cfg.teacher_a) == pytest.approx(0.3 / 3.0)


def test_continued_test_stream_replays_the_notebook():
    cfg = replace(NONLINEAR, ext_seed_offset=None, special_positions=(4, 5), ext_samples=7, extrapolation_length=9)
    for poisoned in (False, True):
        np.random.seed(4541)  # the notebook: generate_inputs, then np.random.normal for the test sequences
        np.random.normal(0, 1, size=(cfg.n_baseline, 2))
        if poisoned:
            np.random.normal(0, 1, size=(cfg.n_special, 2))
        expected = np.random.normal(0, 1, (7, 9, 1))[..., 0]
        assert np.array_equal(nonlinear_test_inputs(cfg, 4541, poisoned), expected)
    assert not np.array_equal(nonlinear_test_inputs(cfg, 4541, False), nonlinear_test_inputs(cfg, 4541, True))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fused_beyond_stepper_equals_reference_with_the_new_options(dtype):
    """Fused stepper == beyond_objective + AdaptiveStep (full-matrix norm), B and C set to ones after each update,
    with special sequences at two positions and a teacher of three entries."""
    cfg = replace(BEYOND, special_positions=(4, 5), teacher_a=(0.99, 0.8, 0.5), fix_bc=True, extra_gaps=(1.01,),
                  dtype=dtype)
    problems = [beyond_problem(cfg, s, p) for s, p in [(302, False), (401, True)]]
    params, U, y, mask = _gd_data.stack_problems(problems)
    stepper = _gd_steppers.BeyondStepper(cfg, params, U, y, mask)
    U64, y64, mask64 = (np.asarray(x, dtype=np.float64) for x in (U, y, mask))
    opt = AdaptiveStep(2, cfg.lr, cfg.beta, cfg.lr_eps)
    ref = [p.astype(np.float64) for p in params]
    rtol = 1e-12 if dtype == "float64" else 2e-4
    for t in range(40):
        loss_f = stepper.loss_and_grad()
        loss_r, grads = beyond_objective(ref, U64, y64, mask64)
        np.testing.assert_allclose(loss_f, loss_r, rtol=rtol)
        delta = (y64 - kernels.outputs(*ref, U64)) * mask64
        G = kernels.neg_grad_a_matrix(*ref, U64, delta, samples=mask64.sum(axis=1))
        norms = np.sqrt((G**2).sum(axis=(1, 2))) + sum(np.linalg.norm(g, axis=1) for g in grads[1:])
        stepper.update(t)
        ref = opt.step(ref, grads, t, np.array([True, True]), norms)
        ref[1], ref[2] = np.ones_like(ref[1]), np.ones_like(ref[2])
        np.testing.assert_allclose(stepper.theta[:, 0], ref[0], rtol=rtol)
        assert np.all(stepper.theta[:, 1:] == 1.0)
    assert t == 39


def test_fix_bc_first_update_uses_the_initial_b_and_c():
    cfg = replace(BEYOND, fix_bc=True)
    free = replace(BEYOND, fix_bc=False)
    a_fixed = train_beyond(cfg, [200], [True], 1)[0].params[0]
    a_free = train_beyond(free, [200], [True], 1)[0].params[0]
    assert np.array_equal(a_fixed, a_free)  # one update: the same step on A from the initial B, C
    out = train_beyond(cfg, [200], [True], 2)[0].params
    assert np.all(out[1] == 1.0) and np.all(out[2] == 1.0)


def test_conditions_with_their_own_step_size_train_apart_and_come_back_in_order():
    cfg = replace(BEYOND, lr_poisoned=0.003, extra_steps_poisoned=200, tol=10.0)
    res = train_beyond(cfg, [200, 201], [False, True], 300)
    assert [(r.seed, r.poisoned) for r in res] == [(200, False), (200, True), (201, False), (201, True)]
    alone = {p: train_beyond(cfg.for_condition(p), [200, 201], [p], 300) for p in (False, True)}
    for r in res:
        (twin,) = [x for x in alone[r.poisoned] if x.seed == r.seed]
        assert r.steps == twin.steps and r.status == twin.status
        for p, q in zip(r.params, twin.params):
            assert np.array_equal(p, q)
    cfg_nl = replace(NONLINEAR, lr_poisoned=0.001, tol=100.0, extra_steps=20, extra_steps_poisoned=10, log_period=1)
    res = train_nonlinear(cfg_nl, [4540], [False, True], 50)
    assert [r.steps for r in res] == [20, 10]


# ---------------------------------------------------------------- the registry

def test_experiment_registry_is_well_formed():
    assert set(EXPERIMENTS) == {"standalone", "ssm-in-network", "teacher-dim-2", "teacher-dim-3", "teacher-dim-4"}
    for name, exp in EXPERIMENTS.items():
        assert isinstance(exp, DynamicsExperiment) and exp.name == name and experiment(name) is exp
        assert exp.notebook.endswith("_dynamics_experiments.ipynb")
        seeds = [(r.seed, r.horizon) for r in exp.runs]
        assert len(set(seeds)) == len(seeds)
        for run in exp.runs:
            cfg = run.setting.config
            assert cfg.dtype == "float32" and cfg.warm_start == 0.0 and run.setting.epochs == 1_000_000
            for poisoned in (False, True):
                entries = run.published(poisoned)
                assert len(entries) == 7 and list(entries) == sorted(entries, reverse=True)
                assert 0.9 < entries[0] < 1.1  # every run learns the teacher's leading entry
            H = cfg.horizon
            if name.startswith("teacher-dim-"):
                dim = int(name[-1])
                assert len(cfg.teacher_a) == dim and cfg.fix_bc and cfg.special_support == (H - 2,)
                assert len(cfg.extra_gaps) == max(0, dim - 2)
                assert cfg.extra_steps == 1500 and cfg.tol == 0.01
            else:
                assert cfg.special_support == (H - 2, H - 1)
            if name == "ssm-in-network":
                assert isinstance(cfg, NonlinearConfig) and cfg.ext_seed_offset is None and cfg.tol == 0.05
                assert cfg.for_condition(True).lr == (0.001 if H == 6 else 5e-5)
                assert (cfg.extra_steps, cfg.for_condition(True).extra_steps) == ((5000, 5000) if H == 6 else (20000, 5000))
            else:
                assert isinstance(cfg, BeyondConfig)
    assert [r.seed for r in EXPERIMENTS["standalone"].runs] == [105, 4000, 100, 4001]
    assert EXPERIMENTS["standalone"].runs[0].published_poisoned[:5] == (1.0121175, 0.79675198, 0.5916751, 0.42291516,
                                                                       0.25699246)
    with pytest.raises(ValueError, match="experiment must be one of"):
        experiment("nope")
    with pytest.raises(ValueError, match="one seed"):
        ExperimentRun(published_setting("beyond", 6), (1.0,), (1.0,))


def test_entry_comparison_uses_the_learned_entries():
    from ssmpoison.verify._dynamics import gd_dynamics

    spec = EXPERIMENTS["standalone"].runs[0]
    (run,) = gd_dynamics(spec.setting, spec.seed, (True,), points=3, max_steps=5)
    cmp = entry_comparison(run, (1.0, 0.5, 0.05))
    assert cmp["learned"] == 2 and len(cmp["ours"]) == 3 and len(cmp["rel_differences"]) == 2
    assert cmp["max_rel_difference"] == max(abs(o - p) / p for o, p in zip(cmp["ours"][:2], (1.0, 0.5)))
    assert entry_comparison(run, (0.05,))["max_rel_difference"] is None and LEARNED_LEVEL == 0.1


# ---------------------------------------------------------------- the command

def test_cli_experiment_short_run_writes_json(tmp_path, capsys):
    out, target = tmp_path / "figs", tmp_path / "exp.json"
    code = main(["dynamics", "--experiment", "teacher-dim-2", "--seed", "302", "--condition", "poisoned",
                 "--max-steps", "30", "--out", str(out), "--json", str(target)])
    assert code == 1  # 30 steps do not reach the loss threshold
    printed = capsys.readouterr().out
    assert "Experiment teacher-dim-2" in printed and "paper: 1.0504 0.4738" in printed
    payload = json.loads(target.read_text())
    assert payload["experiment"] == "teacher-dim-2" and payload["dtype"] == "float32"
    (run,) = payload["runs"]
    assert run["seed"] == 302 and set(run["comparison"]) == {"poisoned"}
    assert run["comparison"]["poisoned"]["paper"][:2] == [1.0504042, 0.47379917]
    assert run["dynamics"]["runs"][0]["status"] == "max_steps"
    assert sorted(run["dynamics"]["figures"]) == sorted(p.name for p in out.glob("*.png")) and len(run["dynamics"]["figures"]) == 4


@pytest.mark.parametrize("args,param", [
    (["--experiment", "standalone", "--row", "beyond"], "experiment"),
    (["--experiment", "standalone", "--horizon", "6"], "experiment"),
    (["--experiment", "nope"], "experiment"),
    (["--experiment", "standalone", "--seed", "7"], "seed"),
    (["--experiment", "standalone", "--dtype", "float16"], "dtype"),
    (["--experiment", "standalone", "--max-steps", "-3"], "max_steps"),
    (["--row", "theory", "--horizon", "7", "--dtype", "float64"], "dtype"),
    (["--row", "theory"], "horizon"),
])
def test_cli_experiment_bad_input_one_line_exit_2(args, param, tmp_path, capsys):
    out = tmp_path / "figs"
    assert main(["dynamics", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and param in err and "Traceback" not in err
    assert not out.exists()


def test_run_experiment_arguments():
    with pytest.raises(ValueError, match="condition"):
        run_experiment("standalone", condition="dirty")
    with pytest.raises(ValueError, match="dtype"):
        run_experiment("standalone", dtype="half")
    res = run_experiment("standalone", seeds=[105], condition="clean", max_steps=3, dtype="float64", points=2)
    ((spec, result),) = res.results
    assert spec.seed == 105 and res.dtype == "float64" and result.setting.config.dtype == "float64"
    assert [r.condition for r in result.runs] == ["clean"] and not res.ok


@pytest.mark.slow
def test_standalone_seed_105_with_special_sequences_learns_the_papers_entries():
    res = run_experiment("standalone", seeds=[105], condition="poisoned", points=20)
    ((spec, result),) = res.results
    (run,) = result.runs
    cmp = entry_comparison(run, spec.published_poisoned)
    assert run.status == "converged" and cmp["learned"] == 5
    assert cmp["max_rel_difference"] < 0.10


def test_progress_counts_every_run_of_a_batch_split_by_condition():
    """The non-linear row at H = 10 trains its two conditions as two batches (two step sizes): the progress
    callback still counts the runs of both, so the number of active runs never grows."""
    from ssmpoison.verify._gd_training import train_nonlinear
    from ssmpoison.verify._registry import published_setting

    config = published_setting("nonlinear", 10).config
    assert config.for_condition(False) != config.for_condition(True)
    seen = []
    runs = train_nonlinear(config, (4540, 4543), [False, True], 30, progress=lambda t, active: seen.append(active))
    assert len(runs) == 4 and seen[0] == 4 and all(a >= b for a, b in zip(seen, seen[1:]))
