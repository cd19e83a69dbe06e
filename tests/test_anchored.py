"""Anchored coordinates (verify.anchored): exact change of variables of the flow of A."""

from fractions import Fraction

import numpy as np
import pytest

from ssmpoison.verify import kernels
from ssmpoison.verify._anchored import anchor_index, anchored_linear_part, from_anchored, neg_grad_anchored, to_anchored, uniform_gain
from ssmpoison.verify import FlowOptions, run_flow


def _exact_setting():
    U = np.array([[1, 0, 2, 0, 0], [0, 1, 0, -1, 0], [3, 0, 0, 1, 0]], dtype=object)
    y = np.array([Fraction(1), Fraction(-1, 2), Fraction(2)], dtype=object)
    a = np.array([[Fraction(1, 3), Fraction(1, 2), Fraction(-1, 5), Fraction(1, 2) - Fraction(1, 10**12)]], dtype=object)
    return U, y, a


def test_coordinates_round_trip_exactly():
    _, _, a = _exact_setting()
    r = anchor_index(a)
    assert r.tolist() == [1]
    z = to_anchored(a, r)
    assert z[0, 1] == a[0, 1] and z[0, 3] == -Fraction(1, 10**12)
    assert (from_anchored(z, r) == a).all()


@pytest.mark.parametrize("kappa", [Fraction(1), Fraction(3, 7)])
def test_right_hand_side_is_the_flow_of_a_in_anchored_coordinates(kappa):
    """dz/dt = T^{-1} (-dL/da) exactly (rational arithmetic), with c_i b_i = kappa."""
    U, y, a = _exact_setting()
    r = anchor_index(a)
    b = np.array([kappa] * a.shape[-1], dtype=object)
    c = np.array([Fraction(1)] * a.shape[-1], dtype=object)
    expected = to_anchored(kernels.neg_grad_a(a, b, c, U, y), r)
    got = neg_grad_anchored(to_anchored(a, r), r, kappa, U, y)
    assert (got == expected).all()


def test_uniform_gain():
    assert uniform_gain([2, 2, 2], [0.5, 0.5, 0.5]) == 1.0
    assert uniform_gain([1, 2], [1, 1]) is None


def test_linear_part_is_the_stiff_part_conjugated_and_bi_orthonormal():
    """-sum_r mu_r p_r q_r^T = T^{-1} (-(2/N) G^T G) T, with q_r . p_s = delta_rs (float64)."""
    U, y, a = _exact_setting()
    U, y, a = U.astype(float), y.astype(float), a.astype(float)
    r = anchor_index(a)
    D = a.shape[-1]
    scale = 2.0 / U.shape[0]
    mu, P, Q = anchored_linear_part(to_anchored(a, r), r, 1.0, U, scale, precision_bits=53)
    np.testing.assert_allclose(np.einsum("brd,bsd->brs", Q, P)[0], np.eye(P.shape[1]), atol=1e-12)
    G = kernels.output_jacobian_a(a, np.ones(D), np.ones(D), U)[0]
    T = np.eye(D)
    T[:, r[0]] = 1.0
    expected = np.linalg.inv(T) @ (-scale * G.T @ G) @ T
    got = -np.einsum("r,rd,re->de", mu[0], P[0], Q[0])
    np.testing.assert_allclose(got, expected, atol=1e-12 * np.abs(expected).max())


def test_anchored_float64_carries_the_ill_conditioned_theory_row():
    """Theory row, H = 9 poisoned, seed 342 (top entries 1e-9 apart, relative): float64 in
    anchored coordinates gets >= 13 correct digits of the extrapolation error; in
    a-coordinates, where every rounding of a_1, a_2 perturbs their gap, at most 10."""
    import mpmath

    from ssmpoison.verify._certify import to_mpf
    from ssmpoison.verify import published_setting
    from ssmpoison.verify._theory_row import _quantity, theory_row_problems

    truth = mpmath.mpf("3.50122318857674102711945102e-2")  # 128 bits, 27 digits certified by 160
    p = dict(theory_row_problems(published_setting("theory", 9), True))[342]
    digits = {}
    for anchored in (True, False):
        run = run_flow(p, FlowOptions(precision_bits=53, rtol=1e-13, anchored=anchored))
        with mpmath.workprec(120):
            a = [to_mpf(v) for v in run.a]
            value = _quantity(published_setting("theory", 9))(a, [1] * len(a), [1] * len(a))
            digits[anchored] = float(-mpmath.log10(abs(value - truth) / truth))
    assert digits[True] >= 13 > 10 >= digits[False], digits


def test_anchors_per_flow_and_shared_anchor_give_the_same_coordinates():
    """Batched flows with different anchors (gathered per flow) and with one anchor (taken by slicing),
    with stage axes in front: the coordinates are those of each flow alone, and round-trip exactly."""
    rng = np.random.default_rng(3)
    a = rng.uniform(-1, 1, size=(5, 3, 6))  # (stages, flows, D)
    for r in (np.array([2, 0, 5]), np.array([4, 4, 4])):
        z = to_anchored(a, r)
        for k in range(3):
            alone = to_anchored(a[:, k], r[k])
            assert np.array_equal(z[:, k], alone)
            assert np.array_equal(z[:, k, r[k]], a[:, k, r[k]])
            assert np.array_equal(np.delete(z[:, k], r[k], axis=-1), np.delete(a[:, k] - a[:, k, r[k], None], r[k], axis=-1))
        assert np.array_equal(from_anchored(z, r), np.where(np.arange(6) == r[:, None], a, z + np.take_along_axis(z, np.broadcast_to(r[:, None], (5, 3, 1)), -1)))
