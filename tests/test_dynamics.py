"""Training dynamics: effective rank, metrics along trajectories, the recorded runs and ``ssmpoison dynamics``."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ssmpoison.theory import clean_training_set, extrapolation_error, teacher_impulse_response
from ssmpoison.theory import effective_rank
from ssmpoison.theory import TrainingSet
from ssmpoison.verify import kernels
from ssmpoison.verify.cli import main
from ssmpoison.verify._dynamics import flow_dynamics, gd_dynamics, log_spaced_steps, run_dynamics, theory_dynamics
from ssmpoison.verify import FlowOptions, FlowProblem, run_flow
from ssmpoison.verify import published_setting
from ssmpoison.verify._gd_training import StepObserver, train_beyond
from ssmpoison.verify._gd_objectives import nonlinear_objective
from ssmpoison.verify._gd_data import nonlinear_problem
from ssmpoison.verify._metrics import escape_times, impulse_extrapolation_error, select_points, teacher_extrapolation, trajectory_series


@pytest.fixture(scope="module")
def theory_h7():
    """The theory row's flows at H = 7, seed 242, without and with u† (about half a second)."""
    return {poisoned: theory_dynamics(published_setting("theory", 7), 242, poisoned) for poisoned in (False, True)}


# ---------------------------------------------------------------- effective rank


magnitudes = st.lists(st.floats(min_value=1e-6, max_value=1e3), min_size=1, max_size=12)


@given(magnitudes, st.randoms(use_true_random=False), st.floats(min_value=1e-3, max_value=1e3))
def test_effective_rank_bounds_and_invariances(values, rnd, scale):
    a = np.array(values) * np.where(np.arange(len(values)) % 2, -1, 1)  # signs do not matter
    r = effective_rank(a)
    assert 1 - 1e-12 <= r <= len(values) * (1 + 1e-12)
    perm = list(a)
    rnd.shuffle(perm)
    assert math.isclose(effective_rank(perm), r, rel_tol=1e-12)
    assert math.isclose(effective_rank(a * scale), r, rel_tol=1e-12)


def test_effective_rank_exact_cases():
    assert effective_rank([0.3, 0, 0]) == 1.0
    assert math.isclose(effective_rank([2, -2, 2, 0, 0]), 3.0, rel_tol=1e-15)  # k equal non-zero entries: k
    assert effective_rank([0, 0]) == 0.0
    assert np.allclose(effective_rank([[1, 1], [1, 0]]), [2.0, 1.0])
    p = np.array([0.5, 0.25, 0.25])
    assert math.isclose(effective_rank([2, 1, 1]), math.exp(-(p * np.log(p)).sum()), rel_tol=1e-15)
    assert math.isclose(effective_rank([1e-300, 1e-300]), 2.0) and math.isclose(effective_rank([1e300, 1e300]), 2.0)
    for bad in ([], [1.0, float("nan")], [float("inf")]):
        with pytest.raises(ValueError, match="a "):
            effective_rank(bad)


# ---------------------------------------------------------------- metrics on the theory row


def test_gamma0_vanishes_exactly_along_the_clean_flow(theory_h7):
    s = theory_h7[False].series
    assert s.times.size > 50
    assert np.all(s.gammas[:, 0] == 0.0)  # exactly: e_0 is not special
    # e_0 meets only K_{H-1}: the only non-zero coefficient is gamma^(H-2) = 2(H-1) delta, delta = 1 - sum a^(H-1)
    assert np.all(s.gammas[:, 1:-1] == 0.0)
    delta = 1 - (s.entries ** 6).sum(axis=1)
    assert np.allclose(s.gammas[:, -1], 12 * delta, rtol=1e-12, atol=1e-14)
    assert np.allclose(s.loss, delta**2, rtol=1e-9, atol=1e-20)  # the engine's loss is not from rounded a


def test_gamma0_of_the_poisoned_flow_is_the_special_residual(theory_h7):
    s = theory_h7[True].series
    # {e_0, e_{H-2}}: gamma^(0) = (2/N) delta_2 with delta_2 = 1 - sum_i a_i (N = 2), near 1 at the start
    assert np.allclose(s.gammas[:, 0], 1 - s.entries.sum(axis=1), rtol=1e-9, atol=1e-13)
    assert s.gammas[0, 0] > 0.99


def test_clean_flow_one_entry_escapes_rank_falls_to_one(theory_h7):
    run = theory_h7[False]
    s, summary = run.series, run.summary()
    assert run.status == "converged"
    assert summary["escape_order"] == [1]  # the largest entry, alone
    assert s.effective_rank[0] > 7 and s.effective_rank[-1] < 1.1
    assert abs(s.entries[-1, 0] - 1) < 1e-9
    growth = np.abs(s.entries[-1]) / np.abs(s.entries[0])
    assert growth[2:].max() < 1.2  # every entry but the two top ones stays near its start
    assert s.ext_error[-1] == pytest.approx(float(extrapolation_error(s.entries[-1], [1] * 10, [1] * 10, 10, 20)))


def test_poisoned_flow_entries_move_together_rank_stays_high(theory_h7):
    s = theory_h7[True].series
    assert s.effective_rank[-1] > 4
    # the gamma^(0) phase: every entry pushed by the same drift to about 1/D; the head start is erased
    k = int(np.searchsorted(s.times, 1.0))
    top, low = s.entries[k].max(), s.entries[k].min()
    assert 0.09 < low and top / low < 1.02 and s.entries[0].max() / s.entries[0].min() > 10
    assert s.effective_rank[k] > 9.99
    assert len(theory_h7[True].summary()["escape_order"]) >= 2


def test_escape_time_grows_like_a0_to_the_one_minus_l_star():
    """Only gamma^(H-2) acts in the clean theory row: the escape time is ~ a(0)^(1-l*), l* = H-2."""
    H = 6
    starts = [1e-2, 2e-2, 4e-2]
    times = []
    for x in starts:
        result = run_flow(FlowProblem(clean_training_set(H), (x,)), FlowOptions(record=True))
        series = trajectory_series(result.trajectory, clean_training_set(H))
        times.append(escape_times(series, 0.5)[0])
    slope = np.polyfit(np.log(starts), np.log(times), 1)[0]
    assert slope == pytest.approx(1 - (H - 2), abs=0.01)
    # and the constant: T = a(0)^(-(H-3)) / (2 (H-1) (H-3)) while delta ~ 1
    assert times[0] == pytest.approx(starts[0] ** -(H - 3) / (2 * (H - 1) * (H - 3)), rel=1e-2)


def test_metrics_of_a_high_precision_flow_are_computed_in_its_precision():
    """A 113-bit flow converges to a loss ~1e-65: residuals and gammas must come out at that precision, not float64's."""
    H = 5
    result, series = flow_dynamics(FlowProblem(clean_training_set(H), (0.3, 0.2)), options=FlowOptions(precision_bits=113))
    assert result.status == "converged" and series.loss[-1] < 1e-60
    delta = math.sqrt(series.loss[-1])
    assert abs(series.gammas[-1, -1]) == pytest.approx(2 * (H - 1) * delta, rel=1e-6)  # gamma^(H-2) = 2(H-1) delta
    assert np.all(series.gammas[:, 0] == 0.0)


def test_same_seed_same_json():
    h7 = published_setting("theory", 7)
    one = [r.to_json() for r in run_dynamics("theory", h7, seed=243, condition="both").runs]
    two = [r.to_json() for r in run_dynamics("theory", h7, seed=243, condition="both").runs]
    assert json.dumps(one) == json.dumps(two)


# ---------------------------------------------------------------- general training sets and helpers


def test_any_non_special_training_set_has_gamma0_zero_and_series_match_kernels():
    rng = np.random.default_rng(3)
    H, D = 6, 4
    U = rng.normal(size=(3, H))
    U[:, H - 2] = 0.0  # non-special
    U[:, H - 1] = 0.0  # the last input meets K_0 = sum c_i b_i, which A cannot change
    K_star = [2.0] + [0.9**j + 0.3**j for j in range(1, 12)]
    y = U[:, ::-1] @ np.array(K_star[:H])
    ts = TrainingSet(tuple(map(tuple, U)), tuple(y))
    a0 = (0.05, 0.04, 0.03, 0.02)
    result = run_flow(FlowProblem(ts, a0), FlowOptions(record=True, loss_tol=1e-10))
    assert result.status == "converged" and np.allclose(result.a[:2], [0.9, 0.3], atol=1e-3)  # the teacher's entries
    series = trajectory_series(result.trajectory, ts, extrapolation=teacher_extrapolation(K_star))
    assert np.all(series.gammas[:, 0] == 0.0)
    t, a, b, c, loss = result.trajectory[len(result.trajectory) // 2]
    gam = kernels.gamma_coefficients(kernels.residuals(a, b, c, U, y), U)
    k = len(result.trajectory) // 2
    assert np.array_equal(series.gammas[k], gam) and series.loss[k] == loss and series.times[k] == t
    # the Proposition: da/dt = c b sum_l gamma^(l) a^l with these coefficients
    rhs = (c * b * sum(gam[l] * a**l for l in range(H - 1)))
    direct = kernels.neg_grad_a(a, b, c, U, y)
    assert np.allclose(rhs, direct, rtol=0, atol=1e-13 * np.abs(gam).max())
    assert series.ext_error[k] == impulse_extrapolation_error(a, b, c, K_star)


def test_impulse_extrapolation_error_is_the_papers_on_the_theory_teacher():
    a = np.array([0.99, 0.02, -0.01])
    D, J = 3, 20
    ours = impulse_extrapolation_error(a, np.ones(D), np.ones(D), teacher_impulse_response(D, J))
    assert ours == pytest.approx(float(extrapolation_error(a, [1] * D, [1] * D, D, J)), rel=1e-14)
    with pytest.raises(ValueError, match="teacher_response"):
        teacher_extrapolation([0, 0])


def test_select_points_keeps_ends_and_the_escape():
    t = np.concatenate([[0.0], np.geomspace(1, 1e10, 500), 1e10 + np.linspace(1, 10, 500)])
    a = np.concatenate([np.full(501, 1e-3), np.linspace(1e-3, 1, 500)])[:, None]
    keep = select_points(t, a, 100)
    assert keep[0] == 0 and keep[-1] == len(t) - 1 and len(keep) <= 101 and keep == sorted(set(keep))
    assert sum(k > 500 for k in keep) >= 30  # the escape, short on a log-time axis, keeps its share
    assert sum(k <= 500 for k in keep) >= 30


def test_log_spaced_steps():
    steps = log_spaced_steps(10**6, 50)
    assert steps[0] == 0 and steps[1] == 1 and steps[-1] == 10**6
    ratios = np.diff(np.log(steps[10:]))
    assert np.allclose(ratios, ratios.mean(), rtol=0.05)


# ---------------------------------------------------------------- the GD rows


def test_step_observer_sees_the_parameters_of_that_step():
    cfg = published_setting("beyond", 6).config
    seen = {}

    def look(step, runs, params, loss):
        seen[step] = (runs, params, loss)

    train_beyond(cfg, [200], [False, True], 40, observer=StepObserver((0, 7, 40, 7), look))
    assert sorted(seen) == [0, 7, 40]
    for s in (7, 40):
        direct = train_beyond(cfg, [200], [False, True], s)
        runs, params, loss = seen[s]
        assert list(runs) == [0, 1]
        for r in runs:
            assert all(np.array_equal(p[r], q) for p, q in zip(params, direct[r].params))
            assert loss[r] == direct[r].train_loss


def test_nonlinear_row_gammas_carry_xi_and_vanish_without_special_sequences():
    clean, poisoned = gd_dynamics(published_setting("nonlinear", 6), 4541, (False, True), points=30, max_steps=300)
    for run in (clean, poisoned):
        assert run.series.xi_factor and run.series.time_name == "step"
        assert run.series.times[0] == 0 and run.series.times[-1] == 300
    assert np.all(clean.series.gammas[:, 0] == 0.0)
    assert np.all(poisoned.series.gammas[:, 0] != 0.0)
    # at the start, -dL/da = c b sum_l gamma_xi^(l) a^l with the recorded gamma_xi (note 00 §3 with xi)
    (a, b, c, W1, W2, W3), U, y = nonlinear_problem(published_setting("nonlinear", 6).config, 4541, True)
    _, grads = nonlinear_objective([p[None] for p in (a, b, c, W1, W2, W3)], U[None], y[None], np.ones((1, len(y))))
    gam = poisoned.series.gammas[0]
    assert np.allclose(-grads[0][0], c * b * sum(gam[l] * a**l for l in range(5)), rtol=1e-10, atol=1e-300)


# ---------------------------------------------------------------- the command line


def test_cli_writes_figures_and_json(tmp_path, capsys):
    out, target = tmp_path / "figs", tmp_path / "series.json"
    assert main(["dynamics", "--row", "theory", "--horizon", "7", "--condition", "clean", "--out", str(out),
                 "--json", str(target)]) == 0
    printed = capsys.readouterr().out
    assert "effective rank" in printed and "escaped" in printed
    pngs = sorted(out.glob("*.png"))
    assert len([p for p in pngs if "_clean_" in p.name]) >= 3
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
    payload = json.loads(target.read_text())
    assert sorted(payload["figures"]) == [p.name for p in pngs]
    (run,) = payload["runs"]
    series = run["series"]
    T = series["points"]
    assert all(len(series[k]) == T for k in ("times", "max_abs", "effective_rank", "loss", "ext_error", "gammas", "entries"))
    assert all(len(g) == 6 for g in series["gammas"]) and all(g[0] == 0.0 for g in series["gammas"])
    assert run["summary"]["escape_order"] == [1] and run["summary"]["end_effective_rank"] < 1.1


def test_figures_rendered_in_worker_processes_are_the_same_files(tmp_path):
    """plot_dynamics with jobs = 2 (figures rendered in forked workers, written here) writes the same bytes
    under the same names as with jobs = 1."""
    from ssmpoison.verify._dynamics_plots import plot_dynamics

    result = run_dynamics("theory", published_setting("theory", 7), seed=242, condition="clean")
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    serial = plot_dynamics(result.runs, one, "s", jobs=1)
    forked = plot_dynamics(result.runs, two, "s", jobs=2)
    assert [p.name for p in serial] == [p.name for p in forked] and len(serial) == 4
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(serial, forked))
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in forked)  # no temporary file left


@pytest.mark.parametrize(
    "args,param",
    [
        (["--row", "nope", "--horizon", "7"], "row"),
        (["--horizon", "8"], "horizon"),
        (["--horizon", "seven"], "horizon"),
        (["--row", "beyond", "--horizon", "7"], "horizon"),
        (["--horizon", "7", "--condition", "dirty"], "condition"),
        (["--horizon", "7", "--seed", "-1"], "seed"),
        (["--horizon", "7", "--seed", "nan"], "seed"),
        (["--horizon", "7", "--extrapolate-to", "0"], "extrapolate_to"),
        (["--horizon", "7", "--stem", "a/b"], "stem"),
        (["--horizon", "7", "--json", "/nonexistent-dir/x.json"], "json"),
    ],
)
def test_dynamics_bad_input_one_line_exit_2(args, param, tmp_path, capsys):
    out = tmp_path / "figs"
    assert main(["dynamics", "--out", str(out), *args]) == 2
    captured = capsys.readouterr()
    assert len(captured.err.strip().splitlines()) == 1 and param in captured.err and "Traceback" not in captured.err
    assert not out.exists()  # nothing ran, nothing written


def test_dynamics_bad_input_from_the_shell(tmp_path):
    (tmp_path / "file").write_text("")
    proc = subprocess.run([sys.executable, "-m", "ssmpoison.verify.cli", "dynamics", "--horizon", "7", "--out", str(tmp_path / "file")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "out" in proc.stderr
