"""Adversarial robustness of the SSM: the closed-form worst case (exact), PGD against it, the ReLU head's bounds."""

from __future__ import annotations

from fractions import Fraction as F

import numpy as np
import pytest
import sympy

from ssmpoison.verify import _kernels as kernels
from ssmpoison.verify import _robust as robust


def _exact_ssm():
    a = np.array([F(1, 2), F(-1, 3), F(2, 5)], dtype=object)
    b = np.array([F(1), F(2), F(-1)], dtype=object)
    c = np.array([F(3), F(1, 7), F(1)], dtype=object)
    u = [F(1), F(-2), F(0), F(1, 3), F(5), F(1)]
    return list(kernels.impulse_response(a, b, c, len(u))), u


@pytest.mark.parametrize("target", [None, F(3), F(-40)])
def test_closed_form_linf_attack_attains_its_bound_exactly_in_rationals(target):
    K, u = _exact_ssm()
    eps = F(1, 10)
    attack = robust.worst_case_attack(K, u, eps, "inf", target=target)
    assert all(isinstance(v, F) for v in (attack.error, attack.bound, *attack.perturbation))
    assert attack.bound == eps * sum(abs(k) for k in K)
    assert attack.error == attack.clean_error + attack.bound  # attained, exactly
    assert max(abs(d) for d in attack.perturbation) == eps
    # no vertex of the box does better (the maximum of a linear function over the box is at a vertex)
    t = attack.clean_output if target is None else target
    H = len(K)
    for mask in range(2**H):
        d = [eps if mask >> k & 1 else -eps for k in range(H)]
        assert abs(sum(K[j] * (u[H - 1 - j] + d[H - 1 - j]) for j in range(H)) - t) <= attack.error


def test_closed_form_l2_attack_attains_its_bound_exactly():
    K, u = _exact_ssm()
    eps = F(1, 10)
    attack = robust.worst_case_attack(K, u, eps, "2", target=F(3))
    assert sympy.simplify(sum(d**2 for d in attack.perturbation) - sympy.Rational(1, 100)) == 0
    assert sympy.simplify(attack.error - attack.clean_error - attack.bound) == 0
    assert sympy.simplify(attack.bound**2 - sympy.Rational(1, 100) * sum(sympy.Rational(k.numerator, k.denominator) ** 2 for k in K)) == 0


def test_exact_l2_attack_with_a_rational_norm_stays_rational_and_a_huge_irrational_one_is_refused():
    # K = (7, 0, 0): ||K||_2 = 7 is rational, so the attack is exact in rationals
    attack = robust.worst_case_attack([7, 0, 0], [1, 0, 1], F(1, 10), "2")
    assert attack.bound == F(7, 10) and list(attack.perturbation) == [0, 0, F(1, 10)]
    # ||K||_2^2 = 2 * 10^400 + 1: irrational, and too large for SymPy's exact square root: refused naming norm
    with pytest.raises(ValueError, match="^norm: the exact l2 budget"):
        robust.worst_case_attack([10**200, 10**200, 1], [1, 0, 1], F(1, 10), "2")


def test_pgd_ends_with_time_limit_when_the_budget_runs_out():
    from ssmpoison.verify._budget import wall_clock_budget
    from ssmpoison.verify._status import Status

    K, u = _exact_ssm()
    assert robust.pgd_attack(K, u, 0.1, steps=7, restarts=2).status is Status.DONE
    with wall_clock_budget(1e-9):
        cut = robust.pgd_attack(K, u, 0.1, steps=7, restarts=2)
        assert robust.pgd_gap_study(count=2, restarts=2, steps=3) == []  # a PGD cut short gives no row
    assert cut.status is Status.TIME_LIMIT and cut.steps == 0 and cut.to_json()["status"] == "time_limit"


def test_full_matrix_impulse_response_is_the_kernels_on_a_diagonal_and_exact_otherwise():
    K, _ = _exact_ssm()
    A = [[F(1, 2), 0, 0], [0, F(-1, 3), 0], [0, 0, F(2, 5)]]
    assert list(robust.lti_impulse_response(A, [1, 2, -1], [3, F(1, 7), 1], 6)) == K
    # a non-diagonal (Jordan) block: K_j = C A^j B with A = [[l, 1], [0, l]], B = (0, 1), C = (1, 0) is j l^(j-1)
    lam = F(1, 3)
    Kj = robust.lti_impulse_response([[lam, 1], [0, lam]], [0, 1], [1, 0], 6)
    assert list(Kj) == [0] + [j * lam ** (j - 1) for j in range(1, 6)]
    with pytest.raises(ValueError, match="C"):
        robust.lti_impulse_response([[1]], [1], [1, 2], 3)


@pytest.mark.parametrize("bad", [-1, -0.001, float("nan"), float("inf"), "x"])
def test_bad_epsilon_is_refused_naming_epsilon(bad):
    K, u = _exact_ssm()
    with pytest.raises(ValueError, match="epsilon"):
        robust.worst_case_attack(K, u, bad)
    with pytest.raises(ValueError, match="epsilon"):
        robust.pgd_attack(K, u, bad)
    with pytest.raises(ValueError, match="norm"):
        robust.worst_case_error(K, 1, "1")


def test_closed_form_equals_pgd_over_50_restarts_on_20_random_ssms_and_pgd_never_exceeds_it():
    rows = robust.pgd_gap_study(count=20, restarts=50, epsilon=0.1, seed=0)
    assert len(rows) == 40 and {r["norm"] for r in rows} == {"inf", "2"}
    assert max(r["state_dim"] for r in rows) <= 20 and max(r["horizon"] for r in rows) <= 40
    for r in rows:
        assert abs(r["relative_gap"]) <= 1e-6, r
        assert r["pgd"] <= r["closed_form"] * (1 + 1e-12), r  # never above the maximum, up to float64 rounding


def test_pgd_from_zero_at_a_zero_residual_stalls_and_the_closed_form_does_not():
    rng = np.random.default_rng(1)
    a, b, c, u, _ = robust.random_diagonal_ssm(rng)
    K = kernels.impulse_response(a, b, c, u.size)
    y = float(kernels.response_outputs(K, u[None, :])[0])
    for norm in robust.NORMS:
        closed = robust.worst_case_attack(K, u, 0.1, norm, target=y)
        stalled = robust.pgd_attack(K, u, 0.1, norm, target=y, random_start=False, restarts=1, steps=200)
        started = robust.pgd_attack(K, u, 0.1, norm, target=y, random_start=True, restarts=5)
        assert closed.clean_error == 0 and closed.error > 0.01
        assert stalled.error == 0.0 and not np.any(stalled.perturbation)
        assert started.error == pytest.approx(closed.error, rel=1e-9)


def test_relu_head_certified_bounds_are_above_pgd_and_the_exact_worst_case_is_reached():
    rng = np.random.default_rng(7)
    for trial in range(10):
        a, b, c, u, t = robust.random_diagonal_ssm(rng, 10, 20)
        K = kernels.impulse_response(a, b, c, u.size)
        W = 6
        head = (rng.standard_normal(W), rng.standard_normal((W, W)), rng.standard_normal(W))
        for norm in robust.NORMS:
            bounds = robust.head_bounds(K, u, 0.2, head, norm, target=t)
            pgd = robust.pgd_attack(K, u, 0.2, norm, target=t, head=head, restarts=100, seed=trial)
            tol = 1e-12 * max(1.0, bounds.exact)
            assert pgd.error <= bounds.exact + tol
            assert bounds.exact <= bounds.interval + tol and bounds.exact <= bounds.lipschitz + tol
            # PGD reaches the worst case when it sits at an end of the interval; at the kink y = 0 (trial 6)
            # its fixed steps circle the maximum and stop short (by < 1e-3 relative here)
            assert pgd.error >= 0.99 * bounds.exact
            y0 = float(kernels.response_outputs(K, u[None, :])[0])
            ends = [abs(float(robust._head(head, y)) - t) for y in (y0 - bounds.radius, y0 + bounds.radius)]
            if max(ends) == bounds.exact:
                assert pgd.error == pytest.approx(bounds.exact, rel=1e-9)


def test_worst_case_error_without_target_is_the_dual_norm_times_epsilon():
    K, u = _exact_ssm()
    assert robust.worst_case_error(K, F(1, 4), "inf") == F(1, 4) * sum(abs(k) for k in K)
    attack = robust.worst_case_attack(K, u, F(1, 4), "inf")
    assert attack.clean_error == 0 and attack.error == attack.bound
    floats = [float(k) for k in K]
    assert robust.worst_case_error(floats, 0.25, "2") == pytest.approx(0.25 * np.linalg.norm(floats), rel=1e-15)


# ---------------------------------------------------------------- the robust loss and adversarial training

from ssmpoison.theory._robust_loss import derive_robust  # noqa: E402
from ssmpoison.verify import _robust_training as training  # noqa: E402

_POINT = {"a": (F(1, 2), F(-1, 3)), "b": (F(1), F(2)), "c": (F(3), F(-1, 2)),
          "u": ((F(1), F(0), F(2)), (F(-1), F(1, 2), F(1))), "y": (F(1), F(-3)), "epsilon": F(1, 10)}


def _substitutions(d, point, eta=None):
    sub = {d.epsilon: sp_rational(point["epsilon"])}
    for name in ("a", "b", "c", "y"):
        sub.update({s: sp_rational(v) for s, v in zip(getattr(d, name), point[name])})
    for row_s, row_v in zip(d.u, point["u"]):
        sub.update({s: sp_rational(v) for s, v in zip(row_s, row_v)})
    if eta is not None:
        sub[d.eta] = sp_rational(eta)
    return sub


def sp_rational(v):
    v = F(v)
    return sympy.Rational(v.numerator, v.denominator)


def _numeric(point, norm, smoothing=0, dtype=object):
    conv = (lambda v: F(v)) if dtype == object else float
    arr = lambda vals: np.array([conv(v) for v in vals], dtype=dtype)  # noqa: E731
    U = np.array([[conv(v) for v in row] for row in point["u"]], dtype=dtype)
    return (arr(point["a"]), arr(point["b"]), arr(point["c"]), U, arr(point["y"]), conv(point["epsilon"]), norm, smoothing)


def test_robust_loss_gradient_from_sympy_equals_the_numeric_one_exactly_for_linf():
    d = derive_robust(2, 3, 2, "inf")
    sub = _substitutions(d, _POINT)
    symbolic = [sympy.nsimplify(g.xreplace(sub)) for g in d.neg_gradient]
    numeric = training.neg_grad_robust(*_numeric(_POINT, "inf"))
    assert [sp_rational(v) for v in numeric] == symbolic  # exact rationals
    assert sp_rational(training.robust_loss(*_numeric(_POINT, "inf"))) == d.loss.xreplace(sub)


@pytest.mark.parametrize("norm,smoothing", [("2", 0), ("inf", F(1, 1000)), ("2", F(1, 1000))])
def test_robust_loss_gradient_from_sympy_equals_the_numeric_one_for_l2_and_smoothed(norm, smoothing):
    d = derive_robust(2, 3, 2, norm, smoothing=bool(smoothing))
    sub = _substitutions(d, _POINT, smoothing if smoothing else None)
    symbolic = [float(g.xreplace(sub).evalf(30)) for g in d.neg_gradient]
    numeric = training.neg_grad_robust(*_numeric(_POINT, norm, float(smoothing), dtype=np.float64))
    np.testing.assert_allclose(numeric, symbolic, rtol=1e-13)


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_sympy_gradient_of_the_robust_loss_is_the_stated_closed_form(norm):
    assert derive_robust(2, 3, 2, norm).verify()


def test_robust_loss_at_zero_epsilon_is_the_standard_loss_and_bad_epsilon_is_refused():
    args = _numeric(_POINT, "inf")
    a, b, c, U, y = args[:5]
    assert training.robust_loss(a, b, c, U, y, 0) == kernels.loss(a, b, c, U, y)
    assert list(training.neg_grad_robust(a, b, c, U, y, 0)) == list(kernels.neg_grad_a(a, b, c, U, y))
    for bad in (-1, float("nan")):
        with pytest.raises(ValueError, match="epsilon"):
            training.neg_grad_robust(a, b, c, U, y, bad)


def test_robust_flow_at_zero_epsilon_is_the_engines_flow_and_positive_epsilon_stops_at_a_kink():
    from ssmpoison.theory._construction import poisoned_training_set
    from ssmpoison.verify._flow import FlowProblem, run_flow

    ts = poisoned_training_set(4, 3)
    a0 = (0.3, 0.2, 0.1)
    flow = training.robust_flow(ts, a0, 0)
    engine = run_flow(FlowProblem(ts, a0))
    assert flow.stop == "converged"
    np.testing.assert_allclose(flow.a, np.asarray(engine.a, dtype=float), rtol=1e-7)
    robust = training.robust_flow(ts, a0, 0.01)
    check = training.robust_flow(ts, a0, 0.01, method="LSODA")
    assert robust.stop == check.stop and robust.stop.startswith("kink")
    np.testing.assert_allclose(robust.a, check.a, rtol=1e-8)


@pytest.mark.slow
def test_robust_training_table_on_the_paper_setting():
    rows = training.robust_training_table()
    by = {(r.poisoned, r.flow.epsilon, r.flow.norm): r for r in rows}
    assert all(r.digits >= 6 for r in rows)
    assert by[(False, 0.0, "inf")].engine_digits >= 6 and by[(True, 0.0, "inf")].engine_digits >= 6
    assert by[(False, 0.0, "inf")].flow.error < 0.01 < by[(True, 0.0, "inf")].flow.error
    for (poisoned, eps, norm), r in by.items():
        if eps > 0:  # adversarial training from the paper's small initialisation learns nothing of the clean rule
            assert r.flow.error == pytest.approx(0.1, abs=1e-3)


# ---------------------------------------------------------------- the command line

import json  # noqa: E402

from ssmpoison.verify.cli import main  # noqa: E402


@pytest.mark.parametrize("argv", [
    ["robust", "attack", "--epsilon", "-1"],
    ["robust", "attack", "--epsilon", "nan"],
    ["robust", "attack", "--epsilon", "-0.5", "--a", "1/2", "--input", "1,2"],
    ["robust", "train", "--epsilon", "0,nan"],
    ["robust", "train", "--epsilon=-1e-3"],
    ["robust", "attack", "--epsilon", "1e308"],  # float64 PGD: a uniform draw in [-eps, eps] overflowed
    ["robust", "selective", "--epsilon", "1e7"],
    ["robust", "train", "--epsilon", "0,1e308"],  # (|r| + eps S)^2 overflowed; a[0] was blamed after the flows
])
def test_bad_epsilon_exits_2_with_one_line_naming_epsilon(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "epsilon" in err


def test_robust_attack_study_and_exact_attack_from_the_command_line(capsys):
    assert main(["robust", "attack", "--count", "3", "--restarts", "5", "--norm", "2", "--json", "-"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["ok"] and len(payload["rows"]) == 3 and payload["largest_relative_gap"] <= 1e-6
    assert main(["robust", "attack", "--a", "1/2,-1/3", "--input", "1,2,3", "--epsilon", "1/10", "--target", "1",
                 "--json", "-"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["K"] == ["2", "1/6", "13/36"] and payload["exact"]["bound"] == "91/360"
    assert F(payload["exact"]["error"]) == abs(F(241, 36) - 1) + F(91, 360)
    assert main(["robust", "attack", "--b", "1,2"]) == 2


def test_robust_attack_and_selective_end_with_time_limit_and_exit_1(tmp_path, capsys):
    big = ["robust", "attack", "--count", "1000", "--horizon", "1000", "--restarts", "10000", "--steps", "10000",
           "--state-dim", "64", "--time-limit", "0.5", "--json", "-"]
    assert main(big) == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["status"] == "time_limit" and len(payload["rows"]) < 2000 and not payload["ok"]
    figure = tmp_path / "s.png"
    assert main(["robust", "selective", "--horizons", "999,1000", "--restarts", "1000", "--steps", "10000",
                 "--time-limit", "0.5", "--figure", str(figure), "--json", "-"]) == 1
    assert json.loads(capsys.readouterr().out)["status"] == "time_limit" and not figure.exists()


def test_robust_attack_on_one_ssm_refuses_exact_numbers_too_large_before_any_work(capsys):
    a = ",".join(f"0.{12 + i}" for i in range(64))
    assert main(["robust", "attack", "--a", a, "--input", ",".join(["0.7"] * 1000)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: input: the exact impulse response" in err and "at most 4000" in err
    assert main(["robust", "attack", "--a", ",".join(["1/2"] * 65), "--input", "1,2"]) == 2
    assert "a must have at most 64 entries" in capsys.readouterr().err


def test_robust_train_from_the_command_line(capsys):
    argv = ["robust", "train", "--horizon", "4", "--state-dim", "3", "--init-scale", "0.3", "--gap-exponent", "1",
            "--epsilon", "0.01", "--norm", "inf", "--seed", "1", "--json", "-"]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["complete"] and len(payload["rows"]) == 2
    assert all(r["digits"] >= 6 and r["stop"].startswith("kink") for r in payload["rows"])


def test_robust_train_ends_within_its_time_limit_and_an_unbracketed_event_is_a_failure_not_a_refusal(capsys):
    import time

    start = time.monotonic()
    assert main(["robust", "train", "--time-limit", "1", "--json", "-"]) == 1  # the theory row's H = 7 flows
    payload = json.loads(capsys.readouterr().out)
    assert time.monotonic() - start < 20 and not payload["complete"]
    assert payload["rows"][-1]["stop"] == "time_limit" and payload["rows"][-1]["digits"] == 0
    # H = 4, D = 3, l2, eps = 0.01, clean set: LSODA's event root is not bracketed on its interpolant (SciPy's
    # brentq raised "f(a) and f(b) must have different signs", refused as bad input); now the row says "failed"
    from ssmpoison.verify._robust_training import robust_training_table

    rows = robust_training_table((0.01,), ("2",), horizon=4, state_dim=3)
    assert rows[0].check.stop == "failed" and rows[0].digits == 0


def test_sliding_flow_stays_on_the_zero_residual_and_below_the_threshold_still_learns():
    from ssmpoison.theory._construction import clean_training_set, paper_initialisation

    a0 = paper_initialisation(242, 10, 0.001, 5)
    ts = clean_training_set(7, 10)
    flow = training.robust_flow_sliding(ts, a0, 1e-15, "inf")
    assert flow.stop == "sliding at t_max"
    assert flow.loss < 1e-18  # on the kink r = 0
    assert flow.error < 0.0011  # below the standard flow's 0.00118: the penalty shrinks the small entries
    above = training.robust_flow(ts, a0, 3e-15, "inf", method="LSODA")  # above eps* ~ 6 a_1^5: nothing escapes
    assert above.stop == "kink K_j = 0" and above.error == pytest.approx(0.1, abs=1e-6)


# ---------------------------------------------------------------- the selective SSM

from ssmpoison.verify import _selective as selective  # noqa: E402


def test_selective_input_gradient_is_the_finite_difference_one():
    model = selective.SelectiveSSM(w=3.0)
    u = np.random.default_rng(3).standard_normal(30)
    _, grad = selective.selective_input_gradient(model, u[None])
    h = 1e-6
    fd = [(selective.selective_output(model, (u + h * e)[None])[0] - selective.selective_output(model, (u - h * e)[None])[0])
          / (2 * h) for e in np.eye(30)]
    np.testing.assert_allclose(grad[0], fd, rtol=0, atol=1e-7 * np.max(np.abs(fd)))


def test_selective_ssm_with_a_constant_step_is_the_lti_one_and_pgd_attains_its_bound():
    frozen = selective.SelectiveSSM(w=0.0)
    u = np.random.default_rng(4).standard_normal(40)
    K = frozen.lti_response(40)
    assert selective.selective_output(frozen, u[None])[0] == pytest.approx(float(K @ u[::-1]), rel=1e-12)
    assert selective.selective_pgd(frozen, u, 0.1, restarts=3, steps=20) == pytest.approx(
        float(robust.worst_case_error(K, 0.1)), rel=1e-12)
    rows = selective.selective_growth((10, 40), 0.1, selective.SelectiveSSM(w=3.0), restarts=5, steps=30)
    assert all(r["selective_pgd"] > r["lti_bound"] for r in rows)  # the input-dependent step enlarges the worst case
    with pytest.raises(ValueError, match="A"):
        selective.SelectiveSSM(A=(0.1,))


def test_robust_selective_from_the_command_line(tmp_path, capsys):
    figure = tmp_path / "sel.png"
    argv = ["robust", "selective", "--horizons", "10,30", "--gain", "0,3", "--restarts", "3", "--steps", "20",
            "--figure", str(figure), "--json", "-"]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert set(payload["curves"]) == {"0", "3"} and figure.stat().st_size > 0
    zero = payload["curves"]["0"]
    assert all(r["selective_pgd"] == pytest.approx(r["lti_bound"], rel=1e-9) for r in zero)
    # eps = 0: every worst case is 0, and no power law fits it (log 0 made the JSON write fail: exit 3)
    assert main(["robust", "selective", "--epsilon", "0", "--horizons", "5,10", "--restarts", "2", "--steps", "3",
                 "--json", "-"]) == 0
    assert all(f["power"] is None for f in json.loads(capsys.readouterr().out)["fits"].values())
    assert main(["robust", "selective", "--figure", ""]) == 2  # was written as '.png' in the working directory
    assert "figure: the path is empty" in capsys.readouterr().err
    assert main(["robust", "selective", "--epsilon=-0.1"]) == 2
    assert "epsilon" in capsys.readouterr().err


# ---------------------------------------------------------------- AdS against no AdS and a fixed gain

from ssmpoison.verify import _ads as ads  # noqa: E402


@pytest.mark.parametrize("kind", ads.HEADS)
def test_ads_heads_worst_case_and_training_gradient(kind):
    rng = np.random.default_rng(0)
    U, t = ads._data(rng, 16, 10)
    H, D, eps = 10, 4, 0.1
    r = np.random.default_rng(5)
    a, b, c, p = r.uniform(0.1, 0.9, D), r.normal(0, .5, D), r.normal(0, .5, D), 0.7

    def loss(a, b, c, p):
        K = kernels.impulse_response(a, b, c, H)
        y0 = U[:, ::-1] @ K
        R = eps * np.abs(K).sum()
        s = ads._worst(kind, p, y0, R, t, 401)
        return np.mean((ads._head(kind, p, y0 + s * R)[0] - t) ** 2)

    # the linear heads' worst case is at an end of the interval, exactly as the closed form says
    if kind != "ads":
        K = kernels.impulse_response(a, b, c, H)
        y0 = U[:, ::-1] @ K
        gain = 1.0 if kind == "none" else p
        closed = np.mean((np.abs(gain * y0 - t) + abs(gain) * eps * np.abs(K).sum()) ** 2)
        assert loss(a, b, c, p) == pytest.approx(closed, rel=1e-12)
    # the training gradient (at the maximiser, Danskin) is the finite-difference one of the worst-case loss
    value, grads = ads._robust_gradient(kind, [a, b, c, np.array(p)], eps, U, t, 401)
    assert value == pytest.approx(loss(a, b, c, p), rel=1e-12)
    h, e = 1e-7, np.eye(D)
    fd = [[(loss(*(x + h * e[i] if k == m else x for m, x in enumerate((a, b, c))), p)
            - loss(*(x - h * e[i] if k == m else x for m, x in enumerate((a, b, c))), p)) / (2 * h) for i in range(D)]
          for k in range(3)]
    for k in range(3):
        np.testing.assert_allclose(grads[k], fd[k], rtol=0, atol=1e-6)
    if kind != "none":
        assert float(grads[3]) == pytest.approx((loss(a, b, c, p + h) - loss(a, b, c, p - h)) / (2 * h), abs=1e-6)


def test_ads_table_runs_and_every_head_is_reported():
    rows = ads.ads_table(train_epsilons=(0.1,), seeds=(0,), epochs=200, samples=16)
    assert [r["head"] for r in rows] == list(ads.HEADS)
    assert all(r["robust"] >= r["clean"] for r in rows)
