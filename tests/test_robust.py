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
