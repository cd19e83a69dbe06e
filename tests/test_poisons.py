"""The damage E(u) of one appended clean-label sequence, its gradient by forward sensitivities, and the optimiser."""

from __future__ import annotations

import math
from fractions import Fraction

import gmpy2
import numpy as np
import pytest
import sympy as sp

from ssmpoison.theory import derive
from ssmpoison.theory._construction import clean_training_set
from ssmpoison.theory._teacher import Teacher
from ssmpoison.verify._poison_opt import optimise_poison, projected_gradient, require_budget, require_norm
from ssmpoison.verify._poisons import (PoisonSetting, _system, certified_damage, damage, damage_fd_gradient,
                                       poisoned_set, special_poison, theory_poison_setting)
from ssmpoison.verify._status import Status


def _small(horizon=4, state_dim=3, a0=(0.6, 0.4, 0.2), train="a", length=8):
    return PoisonSetting(clean_training_set(horizon, state_dim), a0, Teacher((1,), state_dim), length, train=train)


@pytest.mark.parametrize("train", ["a", "abc"])
def test_forcing_is_the_derivative_of_the_flow_in_u_exactly(train):
    """J_u (the sensitivities' forcing) equals d(-grad L)/du_k of the SymPy derivation, label y*(u) substituted."""
    H, D = 4, 2
    setting = _small(H, D, (0.5, 0.25), train)
    u = (Fraction(1, 3), Fraction(-1, 2), Fraction(2, 5), Fraction(1, 7))
    b, c = (Fraction(3, 2), Fraction(1, 2)), (Fraction(2), Fraction(-1, 3))
    d = derive(state_dim=D, horizon=H, samples=2, train=train)
    s = d.symbols
    Kstar = setting.teacher.impulse_response(H)
    label = sum(Kstar[H - 1 - k] * s.u[1][k] for k in range(H))
    theta = list(s.a) + (list(s.b) + list(s.c) if train == "abc" else [])
    neg_grad = [g for name in (("a", "b", "c") if train == "abc" else ("a",)) for g in d.neg_gradient[name]]
    point = {**dict(zip(s.a, (sp.Rational(1, 2), sp.Rational(1, 4)))), s.u[0][0]: 1, s.u[0][1]: 0, s.u[0][2]: 0,
             s.u[0][3]: 0, s.y[0]: 1, **{s.u[1][k]: sp.Rational(u[k].numerator, u[k].denominator) for k in range(H)}}
    bc = {**dict(zip(s.b, b)), **dict(zip(s.c, c))}
    point.update({k: sp.Rational(v.numerator, v.denominator) for k, v in bc.items()})
    exact = [[sp.diff(g.subs(s.y[1], label), s.u[1][k]).xreplace(point) for k in range(H)] for g in neg_grad]
    bits = 200
    with gmpy2.context(precision=bits):
        fixed = PoisonSetting(setting.base, setting.a0, setting.teacher, 8, b, c, train)  # B, C not ones: c_i b_i enter
        u_w = np.array([gmpy2.mpfr(gmpy2.mpq(v.numerator, v.denominator), bits) for v in u], dtype=object)
        fun, _, _, initial, _ = _system(fixed, u_w, bits, True, gmpy2.mpfr(1, bits))
        Y = initial()
        Y[0][:D] = [gmpy2.mpfr(0.5, bits), gmpy2.mpfr(0.25, bits)]
        F = fun(Y)
        for p in range(len(theta)):
            for k in range(H):
                want = exact[p][k]
                got = F[1 + k][p]
                assert abs(got - gmpy2.mpfr(gmpy2.mpq(int(want.p), int(want.q)), bits)) <= gmpy2.mpfr(2) ** -190, (p, k)


def test_zero_poison_gives_the_clean_error_and_the_damage_is_even():
    s = _small()
    u = (0.1, -0.2, 0.3, 0.05)
    clean = certified_damage(s, None)
    zero = damage(s, (0, 0, 0, 0), gradient=False, rtol=1e-10)
    assert zero.status == Status.CONVERGED
    assert float(zero.value) == pytest.approx(float(clean.quantity.value), rel=1e-7)
    plus = damage(s, u, gradient=False, rtol=1e-10)
    minus = damage(s, tuple(-v for v in u), gradient=False, rtol=1e-10)
    assert float(plus.value) == pytest.approx(float(minus.value), rel=1e-7)
    # the certified engine agrees with the sensitivity engine's value
    assert float(certified_damage(s, u).quantity.value) == pytest.approx(float(plus.value), rel=1e-7)


def test_poisoned_set_is_labelled_exactly_by_the_teacher():
    s = theory_poison_setting()
    ts = poisoned_set(s, special_poison(s, 0.3))
    assert ts.samples == 2 and ts.inputs[1][s.horizon - 2] == Fraction(0.3)
    assert ts.labels[1] == Fraction(0.3)  # K*_1 = 1
    with pytest.raises(ValueError, match="u"):
        poisoned_set(s, (1.0, 2.0))


def _agreement_digits(g, fd):
    g, fd = np.asarray(g), np.asarray(fd)
    scale = max(abs(v) for v in g)
    worst = max(abs(x - y) for x, y in zip(g, fd))
    return -math.log10(float(worst / scale)) if worst else math.inf


def test_gradient_matches_finite_differences_fast():
    """A small setting in float64: sensitivities and central differences (step 1e-4) agree to 4 digits."""
    s = _small()
    u = (0.1, -0.2, 0.3, 0.05)
    d = damage(s, u, 53, rtol=1e-10)
    assert d.status == Status.CONVERGED and d.gradient[-1] == 0  # u_(H-1) meets K_0 = D, which A does not move
    fd = damage_fd_gradient(s, u, 1e-4, 53, rtol=1e-10)
    assert _agreement_digits(d.gradient, fd) >= 4


@pytest.mark.slow
@pytest.mark.parametrize("setting, u", [
    (_small(4, 3, (0.6, 0.4, 0.2)), (0.1, -0.2, 0.3, 0.05)),
    (_small(5, 3, (0.5, 0.45, 0.1), length=10), (0.0, 0.2, -0.1, 0.4, 0.3)),
    (_small(4, 2, (0.6, 0.3), train="abc"), (0.2, 0.1, -0.3, 0.2)),
])
def test_gradient_matches_finite_differences_at_113_bits(setting, u):
    """dE/du by sensitivities against central differences (step 1e-6) at 113 bits: >= 8 digits agree."""
    d = damage(setting, u, 113, rtol=1e-20)
    assert d.status == Status.CONVERGED
    fd = damage_fd_gradient(setting, u, 1e-6, 113, rtol=1e-20)
    assert _agreement_digits(d.gradient, fd) >= 8


def test_bad_budget_and_norm_are_refused():
    for bad in (0, -1, float("nan"), float("inf"), "x"):
        with pytest.raises(ValueError, match="budget"):
            require_budget(bad)
    for bad in ("1", "3", "", None):
        with pytest.raises(ValueError, match="norm"):
            require_norm(bad)
    assert require_norm("inf") == "inf" and require_norm(2) == "2"


def test_projected_gradient_removes_the_outward_radial_part():
    u = np.array([0.0, 1.0])
    g = projected_gradient([0.5, 2.0], u, 1.0, "2", [0, 1])
    assert np.allclose(g, [0.5, 0.0])
    g = projected_gradient([0.5, -2.0], u, 1.0, "2", [0, 1])  # pointing inwards: kept
    assert np.allclose(g, [0.5, -2.0])
    g = projected_gradient([0.5, 2.0], u, 1.0, "inf", [0, 1])
    assert np.allclose(g, [0.5, 0.0])


@pytest.mark.slow
def test_optimiser_respects_the_budget_beats_the_special_poison_and_is_deterministic():
    s = _small(4, 3, (0.6, 0.4, 0.2))
    r = optimise_poison(s, 0.5, "2", restarts=1, seed=3, max_iterations=8)
    assert np.linalg.norm(r.u) <= 0.5 * (1 + 1e-9)
    assert r.search_damage >= float(damage(s, special_poison(s, 0.5), gradient=False, rtol=1e-10).value) * (1 - 1e-6)
    assert r.poisoned.quantity.digits >= 6 and r.special.quantity.digits >= 6
    again = optimise_poison(s, 0.5, "2", restarts=1, seed=3, max_iterations=8, certify=False)
    assert again.u == r.u


def test_non_special_optimiser_keeps_the_special_entry_zero_and_the_box():
    s = _small(4, 3, (0.6, 0.4, 0.2))
    ns = optimise_poison(s, 0.5, "inf", non_special=True, restarts=1, seed=0, max_iterations=1, certify=False)
    assert ns.u[s.horizon - 2] == 0 and max(abs(v) for v in ns.u) <= 0.5 * (1 + 1e-9)
    assert len(ns.starts) == 1 and ns.starts[0][0][s.horizon - 2] == 0
    assert ns.search_damage == max(d for _, _, d, _ in ns.starts)


@pytest.mark.parametrize("argv, field", [
    (["--budget", "0"], "budget"),
    (["--budget", "-0.5"], "budget"),
    (["--budget", "nan"], "budget"),
    (["--budget", "inf"], "budget"),
    ([], "budget"),
    (["--budget", "1", "--norm", "1"], "norm"),
    (["--budget", "1", "--restarts", "-1"], "restarts"),
    (["--budget", "1", "--target-error", "0"], "target_error"),
    (["--budget", "1", "--horizon", "2"], "horizon"),
    (["--budget", "1", "--train", "b"], "train"),
    (["--budget", "1", "--max-steps", "0"], "max_steps"),
    (["--budget", "1", "--evaluation-time", "-1"], "evaluation_time"),
])
def test_cli_refuses_bad_input_with_one_line(argv, field, capsys, tmp_path):
    from ssmpoison.verify.cli import main

    out = tmp_path / "r.json"
    assert main(["poison", *argv, "--json", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ssmpoison poison: error: ") and field in err[0]
    assert not out.exists()


def test_cli_config_keys_must_agree_with_the_options(capsys, tmp_path):
    from ssmpoison.verify.cli import main

    config = tmp_path / "p.toml"
    config.write_text("budget = 0.5\nnorm = 'inf'\n")
    assert main(["poison", "--config", str(config), "--budget", "1"]) == 2
    assert "budget given twice" in capsys.readouterr().err
    config.write_text("budget = 0.5\ncolour = 1\n")
    assert main(["poison", "--config", str(config)]) == 2
    assert "unknown key 'colour'" in capsys.readouterr().err


def test_a_step_budget_ends_an_evaluation_with_its_status_and_the_state_where_it_stopped():
    s = _small()
    d = damage(s, (0.1, -0.2, 0.3, 0.05), 53, gradient=False, rtol=1e-10, max_steps=3)
    assert d.status == Status.MAX_STEPS and math.isnan(d.value) and d.gradient is None
    assert math.isfinite(d.end_value) and d.to_json()["damage_at_end"] == float(d.end_value)
    full = damage(s, (0.1, -0.2, 0.3, 0.05), 53, gradient=False, rtol=1e-10)
    assert full.status == Status.CONVERGED and full.end_value == full.value


def test_warm_starts_are_rescaled_onto_the_sphere_and_failed_evaluations_are_counted():
    """The search works in u / rho: a warm start is put on ||u|| = rho; an evaluation that runs out
    of its step budget is counted under its status (damage 0), not hung on; bad starts are refused."""
    s = _small(4, 3, (0.6, 0.4, 0.2))
    rho = 0.25
    starved = optimise_poison(s, rho, "2", restarts=0, max_iterations=1, certify=False, max_steps=2,
                              starts=[(1.0, -2.0, 3.0, 0.5)])
    assert len(starved.starts) == 2 and np.linalg.norm(starved.starts[1][0]) == pytest.approx(rho, rel=1e-12)
    assert starved.evaluations["not_converged"].get("max_steps", 0) >= 2 and starved.search_damage == 0.0
    assert starved.to_json()["damage"] is None and not starved.converged
    with pytest.raises(ValueError, match="starts"):
        optimise_poison(s, rho, starts=[(1.0, 2.0)], certify=False)
    with pytest.raises(ValueError, match="evaluation_time"):
        optimise_poison(s, rho, evaluation_time=0, certify=False)


@pytest.mark.slow
def test_the_poison_found_is_never_below_its_starts():
    """The best of the starts' and the ends' damages: at least rho e_(H-2)'s and the warm start's."""
    s = _small(4, 3, (0.6, 0.4, 0.2))
    rho = 0.25
    r = optimise_poison(s, rho, "2", restarts=0, max_iterations=1, certify=False, starts=[(1.0, -2.0, 3.0, 0.5)])
    assert np.linalg.norm(r.u) <= rho * (1 + 1e-9)
    special = float(damage(s, special_poison(s, rho), gradient=False, rtol=1e-8).value)
    warm = float(damage(s, r.starts[1][0], gradient=False, rtol=1e-8).value)
    assert r.search_damage >= max(special, warm) * (1 - 1e-6)
    assert r.evaluations["evaluations"] >= 2 and r.to_json()["evaluations"] == r.evaluations


@pytest.mark.slow
def test_cli_trains_a_b_and_c(tmp_path):
    """``poison --train abc``: the search and the certified runs with A, B, C trained; the JSON says so."""
    import json

    from ssmpoison.verify.cli import main

    out = tmp_path / "p.json"
    code = main(["poison", "--horizon", "4", "--state-dim", "2", "--budget", "0.5", "--train", "abc", "--restarts", "0",
                 "--json", str(out)])
    payload = json.loads(out.read_text())
    assert code == 0 and payload["train"] == "abc" and payload["damage"]["status"] == "converged"
    assert payload["damage"]["certified_digits"] >= 6 and payload["evaluations"]["evaluations"] >= 1


@pytest.mark.slow
def test_projected_search_runs_no_flow_outside_the_ball(monkeypatch):
    """With ``project`` a trial point outside the ball is evaluated at its projection: every flow has ||u|| <= rho."""
    import ssmpoison.verify._poison_opt as opt

    s = _small(4, 3, (0.6, 0.4, 0.2))
    sizes = []
    real = opt.damage

    def recording(setting, u, *args, **kwargs):
        sizes.append(float(np.linalg.norm(np.asarray(u, dtype=float))))
        return real(setting, u, *args, **kwargs)

    monkeypatch.setattr(opt, "damage", recording)
    r = optimise_poison(s, 0.25, "2", restarts=0, max_iterations=3, certify=False, project=True)
    assert sizes and max(sizes) <= 0.25 * (1 + 1e-12) and np.linalg.norm(r.u) <= 0.25 * (1 + 1e-9)
