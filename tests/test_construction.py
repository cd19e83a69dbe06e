"""Tests of theory.construction: teacher, training sets, paper initialisation, extrapolation error."""

from fractions import Fraction

import gmpy2
import mpmath
import numpy as np
import pytest
import sympy

from ssmpoison.theory import (
    clean_training_set,
    extrapolation_error,
    paper_gap,
    paper_initialisation,
    poisoned_training_set,
    teacher_impulse_response,
    teacher_label,
    teacher_matrices,
)
from ssmpoison.theory import impulse_extrapolation_error
from ssmpoison.theory import impulse
from ssmpoison.verify import published_setting, row_model

THEORY = row_model("theory")


def legacy_global_recipe(seed, state_dim, init_scale, gap_exponent):
    """The paper's recipe verbatim on numpy's global generator (state restored afterwards)."""
    saved = np.random.get_state()
    try:
        np.random.seed(seed)
        a = init_scale * np.random.rand(state_dim)
        a = np.sort(a)[::-1]
        diff = 0.05 / np.exp(gap_exponent * np.log10(1 / init_scale))
        a[1] = a[0] - diff
        return a
    finally:
        np.random.set_state(saved)


ALL_PAPER_RUNS = [(s.horizon, seed) for s in THEORY.settings() for seed in s.seeds]


# --- teacher --------------------------------------------------------------------------


@pytest.mark.parametrize("D", [2, 3, 4, 7, 10, 20])
def test_teacher_impulse_response_closed_form(D):
    K = teacher_impulse_response(D, 25)
    assert K == (D,) + (1,) * 24
    assert all(type(k) is int for k in K)


@pytest.mark.parametrize("D", [2, 5, 10])
def test_teacher_matrices_shape_and_symmetry(D):
    A, B, C = teacher_matrices(D)
    assert A == sympy.diag(1, 0)
    assert C == B.T
    assert sympy.simplify((C * B)[0, 0] - D) == 0


def test_teacher_label_is_the_teacher_output():
    u = (2, Fraction(1, 3), 0, 5)  # y = K*_3*2 + K*_2/3 + K*_1*0 + K*_0*5
    assert teacher_label(u, state_dim=6) == 2 + Fraction(1, 3) + 5 * 6


# --- training sets --------------------------------------------------------------------


@pytest.mark.parametrize("H", [3, 4, 7, 9])
@pytest.mark.parametrize("D", [2, 10, 20])
def test_training_sets(H, D):
    K = teacher_impulse_response(D, H)
    clean = clean_training_set(H, state_dim=D)
    assert clean.inputs == (impulse(H, 0),)
    assert clean.labels == (K[H - 1],) == (1,)
    assert not clean.is_special and clean.is_exact

    poisoned = poisoned_training_set(H, state_dim=D)
    assert poisoned.inputs == (impulse(H, 0), impulse(H, H - 2))
    assert poisoned.labels == (K[H - 1], K[1]) == (1, 1)
    assert poisoned.special_indices() == (1,)


def test_training_sets_default_teacher():
    assert clean_training_set(7) == clean_training_set(7, state_dim=10)
    assert poisoned_training_set(9) == poisoned_training_set(9, state_dim=20)


@pytest.mark.parametrize("bad", [2, 0, "x", 3.0, True])
def test_training_set_validation(bad):
    with pytest.raises(ValueError, match="horizon"):
        clean_training_set(bad)
    with pytest.raises(ValueError, match="horizon"):
        poisoned_training_set(bad)


# --- paper initialisation -------------------------------------------------------------


@pytest.mark.parametrize("H, seed", ALL_PAPER_RUNS)
def test_paper_initialisation_bit_for_bit(H, seed):
    row = published_setting("theory", H)
    args = (seed, row.state_dim, row.init_scale, row.gap_exponent)
    before = np.random.get_state()
    a = paper_initialisation(*args)
    after = np.random.get_state()
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and before[2:] == after[2:]

    expected = legacy_global_recipe(*args)
    assert a.dtype == np.float64 and a.shape == (row.state_dim,)
    assert a.tobytes() == expected.tobytes()
    assert np.array_equal(a, paper_initialisation(*args))
    assert np.all(a[1:] < a[:-1]) and np.all(a > 0)
    diff = 0.05 / np.exp(row.gap_exponent * np.log10(1 / row.init_scale))
    assert a[1] == a[0] - diff
    assert np.all(a <= row.init_scale)


def test_paper_initialisation_relative_gaps():
    """Note 00 §8: relative gaps ~1.5e-5 (H = 7) and ~1e-9 (H = 9)."""
    for H, (lo, hi) in {7: (1.5e-5, 2e-5), 9: (1e-9, 1.2e-9)}.items():
        row = published_setting("theory", H)
        for seed in row.seeds:
            a = paper_initialisation(seed, row.state_dim, row.init_scale, row.gap_exponent)
            assert lo <= (a[0] - a[1]) / a[0] <= hi


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(seed=-1), "seed"),
        (dict(seed=2**32), "seed"),
        (dict(seed=1.5), "seed"),
        (dict(state_dim=1), "state_dim"),
        (dict(state_dim="ten"), "state_dim"),
        (dict(init_scale=0.0), "init_scale"),
        (dict(init_scale=-1e-3), "init_scale"),
        (dict(init_scale=float("inf")), "init_scale"),
        (dict(gap_exponent=float("nan")), "gap_exponent"),
        (dict(gap_exponent=100), "gap_exponent"),  # diff below the resolution of a[0]
        (dict(gap_exponent=-5), "gap_exponent"),  # diff > a[0]: a[1] < 0
        (dict(init_scale=0.1, gap_exponent=0), "gap_exponent"),  # diff = 0.05 pushes a[1] below a[2]
    ],
)
def test_paper_initialisation_validation(kwargs, name):
    args = dict(seed=242, state_dim=10, init_scale=0.001, gap_exponent=5) | kwargs
    with pytest.raises(ValueError, match=name) as info:
        paper_initialisation(**args)
    assert "\n" not in str(info.value)


# --- extrapolation error --------------------------------------------------------------


def test_extrapolation_error_exact():
    a = [Fraction(1), Fraction(1, 2)]
    # K = (2, 3/2, 5/4, 9/8), K* = (2, 1, 1, 1): max gap 1/2, scale 2.
    err = extrapolation_error(a, [1, 1], [1, 1], 2, 4)
    assert err == Fraction(1, 4) and isinstance(err, Fraction)
    assert extrapolation_error([1, 0, 0], [1, 1, 1], [1, 1, 1], 3, 20) == 0
    assert isinstance(extrapolation_error([1, 0, 0], [1, 1, 1], [1, 1, 1], 3, 20), Fraction)


def test_extrapolation_error_teacher_embedding_is_zero():
    """A student equal to the teacher padded with zeros has zero error."""
    D = 5
    a = [1, 0, 0, 0, 0]
    b = [1, 2, 0, 0, 0]  # c_i b_i = (1, 4): sum 5 = D
    c = [1, 2, 0, 0, 0]
    assert extrapolation_error(a, b, c, D, 20) == 0


def test_extrapolation_error_number_types_agree():
    a_float = np.array([0.999, 0.25, 0.125, 0.0625])
    ones = [1, 1, 1, 1]
    exact = extrapolation_error([Fraction(v) for v in a_float], ones, ones, 4, 20)
    as_float = extrapolation_error(a_float, np.ones(4), np.ones(4), 4, 20)
    assert isinstance(as_float, np.floating)
    assert abs(float(exact) - as_float) <= 1e-15
    with mpmath.workprec(200):
        as_mpf = extrapolation_error([mpmath.mpf(v) for v in a_float], ones, ones, 4, 20)
        assert isinstance(as_mpf, mpmath.mpf)
        assert abs(as_mpf - mpmath.mpf(exact.numerator) / exact.denominator) < mpmath.mpf(2) ** -190
    with gmpy2.context(precision=200):
        as_mpfr = extrapolation_error(np.array([gmpy2.mpfr(v) for v in a_float], dtype=object), ones, ones, 4, 20)
        assert abs(as_mpfr - gmpy2.mpq(exact.numerator, exact.denominator)) < gmpy2.mpfr(2) ** -190


@pytest.mark.parametrize(
    "args, name",
    [
        (([1, 2], [1, 1], [1, 1], 3, 20), "a"),
        (([1, 2, 3], [1, 1], [1, 1, 1], 3, 20), "b"),
        (([1, 2, 3], [1, 1, 1], [1, float("nan"), 1], 3, 20), "c"),
        (([1, 2, 3], [1, 1, 1], [1, 1, 1], 1, 20), "state_dim"),
        (([1, 2, 3], [1, 1, 1], [1, 1, 1], 3, 0), "length"),
        ((5, [1, 1, 1], [1, 1, 1], 3, 20), "a"),
    ],
)
def test_extrapolation_error_validation(args, name):
    with pytest.raises(ValueError, match=rf"^{name}"):
        extrapolation_error(*args)


def test_extrapolation_error_is_the_kernels_impulse_response_bit_for_bit():
    """The one extrapolation error evaluates K_j exactly as the kernels do: equal bits in float64 and float32
    (with B, C trained; J >= 2), NaN propagated, exact on Fractions."""
    from ssmpoison.verify import kernels
    rng = np.random.default_rng(31)
    for k in range(400):
        D, J = int(rng.integers(1, 25)), int(rng.integers(2, 45))  # J = 1: numpy sums >= 8 terms pairwise
        dtype = (np.float64, np.float32)[k % 2]
        a, b, c = (rng.uniform(-1.2, 1.2, D).astype(dtype) for _ in range(3))
        target = [float(v) for v in rng.normal(size=J)]
        if k % 9 == 0:
            a[0] = np.nan
        with np.errstate(all="ignore"):
            ref = np.abs(kernels.impulse_response(a, b, c, J) - np.asarray(target, dtype=dtype)).max() / dtype(
                max(abs(t) for t in target))
            ours = impulse_extrapolation_error(list(a), list(b), list(c), target)
        assert np.isnan(ref) == np.isnan(ours)
        assert np.isnan(ref) or ref == ours
    a, b, c = ([Fraction(int(v), 5) for v in rng.integers(-5, 6, 4)] for _ in range(3))
    K = kernels.impulse_response(*(np.array(v, dtype=object) for v in (a, b, c)), 6)
    target = teacher_impulse_response(4, 6)
    assert extrapolation_error(a, b, c, 4, 6) == max(abs(x - t) for x, t in zip(K, target)) / 4


def test_paper_gap_is_the_one_rule():
    """diff = 0.05 / exp(k log10(1/s)) in the paper's numpy form, used by the theory row and the GD rows."""
    from ssmpoison.verify._gd_data import init_ssm, init_stream

    assert paper_gap(0.002, 4) == 0.05 / np.exp(4 * np.log10(1 / 0.002))
    assert paper_gap(1e-2, 2) == pytest.approx(0.05 / np.exp(4))
    a = paper_initialisation(7, 10, 0.002, 4)
    assert a[1] == a[0] - paper_gap(0.002, 4)
    for D, sd_a, sd_bc, k in ((6, 2e-3, 1e-3, 4.0), (12, 0.02, 0.005, 2.0), (8, 0.03, 0.03, 0.7)):
        z = init_stream(3, D * D)
        ga, gb, _ = init_ssm(z, D, sd_a, sd_bc, k, 0.0)
        sa = np.sort(np.abs(sd_a * z[:: D + 1][:D]))[::-1]
        sb = np.sort(np.abs(sd_bc * z[:D]))[::-1]
        assert ga[1] == sa[0] - paper_gap(sd_a, k) and gb[1] == sb[0] - paper_gap(sd_a, k)
    with pytest.raises(ValueError, match="^init_scale"):
        paper_gap(0.0, 5)
    with pytest.raises(ValueError, match="^gap_exponent"):
        paper_gap(1e-3, -1e6)


# --- published settings ----------------------------------------------------------------


def test_theory_row_settings():
    assert THEORY.horizons == (7, 9)
    h7, h9 = THEORY.setting(7), THEORY.setting(9)
    assert (h7.state_dim, h7.init_scale, h7.gap_exponent, h7.seeds) == (10, 0.001, 5, (242, 243, 244, 246))
    assert (h9.state_dim, h9.init_scale, h9.gap_exponent, h9.seeds) == (20, 0.005, 10, (342, 344, 345, 346))
    assert h7.published(False) == {"poster": 1.34e-3, "code": 1.27e-3}
    assert h7.published(True) == {"poster": 4.1e-2, "code": 5.01e-2}
    assert h9.published(False) == {"code": 7.34e-3}
    assert h9.published(True) == {"code": 3.51e-2}
    assert (h7.final_time_clean, h7.final_time_poisoned) == (1e11, 1e4)
    assert (h9.final_time_clean, h9.final_time_poisoned) == (1e13, 1e7)
    assert all(s.extrapolation_length == 20 and s.horizon == H for H, s in zip(THEORY.horizons, THEORY.settings()))
    assert list(h7.published(False)) == ["poster", "code"]  # the order the tables print them in


@pytest.mark.parametrize("D", [2, 3, 10, 20])
def test_teacher_gains_are_read_off_the_matrices(D):
    """The integer impulse response equals C* A*^j B* computed in SymPy, for every j."""
    A, B, C = teacher_matrices(D)
    K = teacher_impulse_response(D, 8)
    for j in range(8):
        assert sympy.simplify((C * A**j * B)[0, 0] - K[j]) == 0
