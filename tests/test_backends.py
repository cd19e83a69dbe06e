"""Generated numeric backends against each other, exact rationals, finite differences, and the kernels."""

from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssmpoison.theory import derive
from ssmpoison.verify import kernels
from ssmpoison.verify._backends import exact_values, generated_functions

QUANTITIES = ("impulse_response", "outputs", "loss", "gamma", "neg_gradient")


@st.composite
def problems(draw, max_d=4, max_h=6, max_n=3):
    D = draw(st.integers(1, max_d))
    H = draw(st.integers(2, max_h))
    N = draw(st.integers(1, max_n))
    train = draw(st.sampled_from(["a", "abc"]))
    # float64 cannot represent products of values near its underflow threshold; the
    # comparison is about the formulas, so magnitudes below 1e-12 are flushed to 0.
    real = st.floats(-1.25, 1.25, allow_nan=False, allow_infinity=False).map(lambda x: 0.0 if abs(x) < 1e-12 else x)
    vec = lambda n: draw(st.lists(real, min_size=n, max_size=n))  # noqa: E731
    a, b, c = vec(D), vec(D), vec(D)
    U = [vec(H) for _ in range(N)]
    y = vec(N)
    return D, H, N, train, a, b, c, U, y


def _as_list(x):
    return [x] if np.ndim(x) == 0 and not isinstance(x, list) else list(x)


def _normwise_rel(x, ref):
    x = np.array([float(v) for v in _as_list(x)])
    ref_f = [mpmath.mpf(v) for v in _as_list(ref)]
    scale = max(abs(v) for v in ref_f)
    diff = max(abs(mpmath.mpf(float(xi)) - ri) for xi, ri in zip(x, ref_f))
    return float(diff / scale) if scale != 0 else float(diff)


@settings(max_examples=60)
@given(problems())
def test_float64_matches_mpmath_50_digits(problem):
    """float64 vs mpmath at 50 digits: normwise relative difference <= 1e-12 for every quantity."""
    D, H, N, train, a, b, c, U, y = problem
    f64 = generated_functions(D, H, N, train, "float64")
    mp = generated_functions(D, H, N, train, "mpmath")
    bits = int(50 * 3.33) + 8
    for q in QUANTITIES:
        ref = getattr(mp, q)(a, b, c, U, y, precision_bits=bits)
        got = getattr(f64, q)(np.array(a), np.array(b), np.array(c), U, y)
        assert _normwise_rel(got, ref) <= 1e-12, q


@settings(max_examples=25)
@given(problems(max_d=3, max_h=5, max_n=2))
def test_mpmath_matches_exact_rationals(problem):
    """mpmath at 50 digits vs exact rational evaluation of the SymPy expressions: agree to 1e-45."""
    D, H, N, train, a, b, c, U, y = problem
    d = derive(D, H, N, train)
    mp = generated_functions(D, H, N, train, "mpmath")
    bits = int(50 * 3.33) + 8
    for q in QUANTITIES:
        exact = exact_values(d, q, a, b, c, U, y)
        got = _as_list(getattr(mp, q)(a, b, c, U, y, precision_bits=bits))
        with mpmath.workprec(400):
            ref = [mpmath.mpf(e.p) / e.q for e in exact]
            scale = max([abs(r) for r in ref] + [mpmath.mpf(1)])
            err = max(abs(g - r) for g, r in zip(got, ref)) / scale
        assert err <= mpmath.mpf("1e-45"), (q, err)


def test_finite_difference_gradient():
    """Central finite differences of the generated loss reproduce the generated -grad L (to 1e-7)."""
    rng = np.random.default_rng(7)
    D, H, N = 3, 5, 2
    f = generated_functions(D, H, N, "abc", "float64")
    a, b, c = rng.uniform(-0.9, 0.9, size=(3, D))
    U, y = rng.normal(size=(N, H)), rng.normal(size=N)
    grad = -f.neg_gradient(a, b, c, U, y)
    theta = np.concatenate([a, b, c])
    eps = 1e-6
    fd = []
    for k in range(3 * D):
        e = np.zeros(3 * D)
        e[k] = eps
        plus, minus = theta + e, theta - e
        fd.append((f.loss(*plus.reshape(3, D), U, y) - f.loss(*minus.reshape(3, D), U, y)) / (2 * eps))
    assert np.allclose(grad, fd, rtol=1e-6, atol=1e-7)


def test_float64_backend_is_vectorised_over_batches():
    rng = np.random.default_rng(3)
    D, H, N = 2, 4, 2
    f = generated_functions(D, H, N, "a", "float64")
    A = rng.uniform(-1, 1, size=(4, 3, D))
    B = np.ones(D)
    U, y = rng.normal(size=(N, H)), rng.normal(size=N)
    batch = f.neg_gradient(A, B, B, U, y)
    assert batch.shape == (4, 3, D)
    assert np.array_equal(batch[2, 1], f.neg_gradient(A[2, 1], B, B, U, y))


@settings(max_examples=40)
@given(problems())
def test_kernels_match_generated_functions(problem):
    """The hand-vectorised kernels equal the generated float64 functions (to 1e-13 normwise)."""
    D, H, N, train, a, b, c, U, y = problem
    f = generated_functions(D, H, N, train, "float64")
    a, b, c, U, y = (np.array(v, dtype=float) for v in (a, b, c, U, y))
    delta = kernels.residuals(a, b, c, U, y)
    pairs = [
        (kernels.impulse_response(a, b, c, H), f.impulse_response(a, b, c, U, y)),
        (kernels.outputs(a, b, c, U), f.outputs(a, b, c, U, y)),
        (kernels.loss(a, b, c, U, y), f.loss(a, b, c, U, y)),
        (kernels.gamma_coefficients(delta, U), f.gamma(a, b, c, U, y)),
        (
            kernels.neg_grad_a(a, b, c, U, y) if train == "a" else kernels.neg_grad_abc(a, b, c, U, y).ravel(),
            f.neg_gradient(a, b, c, U, y),
        ),
    ]
    for got, ref in pairs:
        got, ref = np.atleast_1d(got), np.atleast_1d(ref)
        scale = max(np.max(np.abs(ref)), 1e-300)
        assert np.max(np.abs(got - ref)) <= 1e-13 * max(scale, 1.0)


def test_kernels_exact_in_rational_arithmetic():
    """On object arrays of Fractions the kernels are exact and equal the SymPy expressions."""
    D, H, N = 3, 5, 2
    d = derive(D, H, N)
    a = [Fraction(1, 3), Fraction(-2, 5), Fraction(3, 7)]
    b = [Fraction(1), Fraction(2), Fraction(-1, 2)]
    c = [Fraction(3, 2), Fraction(1), Fraction(1, 4)]
    U = [[Fraction(k - n, 3) for k in range(H)] for n in range(N)]
    y = [Fraction(1, 2), Fraction(-3)]
    arr = lambda v: np.array(v, dtype=object)  # noqa: E731
    got = kernels.neg_grad_a(arr(a), arr(b), arr(c), arr(U), arr(y))
    exact = exact_values(d, "neg_gradient", a, b, c, U, y)
    assert [Fraction(int(e.p), int(e.q)) for e in exact] == list(got)


def test_jacobian_structure_matches_finite_differences():
    """J = diag(d) - (2/N) G^T G is the Jacobian of a -> -dL/da."""
    rng = np.random.default_rng(11)
    D, H, N = 4, 6, 3
    a, b, c = rng.uniform(-0.8, 0.8, size=(3, D))
    U, y = rng.normal(size=(N, H)), rng.normal(size=N)
    d, G = kernels.jacobian_a(a, b, c, U, y)
    J = np.diag(d) - (2 / N) * G.T @ G
    eps = 1e-6
    fd = np.stack(
        [(kernels.neg_grad_a(a + eps * e, b, c, U, y) - kernels.neg_grad_a(a - eps * e, b, c, U, y)) / (2 * eps) for e in np.eye(D)],
        axis=1,
    )
    assert np.allclose(J, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_rejected(bad):
    f = generated_functions(2, 3, 1, "a", "float64")
    with pytest.raises(ValueError, match="must be finite"):
        f.loss([bad, 0.1], [1, 1], [1, 1], [[1, 0, 0]], [1])
    mp = generated_functions(2, 3, 1, "a", "mpmath")
    with pytest.raises(ValueError, match="must be finite"):
        mp.loss([0.1, 0.2], [1, 1], [1, 1], [[1, 0, 0]], [bad])


# ---------------------------------------------------------------- the reference formulas: one copy, every input form


def _fractions(rng, *shape, den=7):
    return np.array([Fraction(int(v), den) for v in rng.integers(-9, 10, size=shape).ravel()], dtype=object).reshape(shape)


def test_per_run_inputs_equal_shared_inputs_exactly():
    """Per-run inputs (R, N_max, H) with zero padding and ``samples`` give, exactly, each run's shared-input values."""
    rng = np.random.default_rng(21)
    R, D, H, sizes = 2, 3, 5, (2, 4)
    a, b, c = (_fractions(rng, R, D) for _ in range(3))
    U = np.zeros((R, max(sizes), H), dtype=object)
    y = np.zeros((R, max(sizes)), dtype=object)
    xi = np.zeros((R, max(sizes)), dtype=object)
    for r, n in enumerate(sizes):
        U[r, :n], y[r, :n], xi[r, :n] = _fractions(rng, n, H), _fractions(rng, n), _fractions(rng, n)
    n = np.array(sizes)
    delta = kernels.residuals(a, b, c, U, y)
    gam = kernels.gamma_coefficients(delta, U, xi, samples=n)
    w = kernels.output_weights(delta, U, xi, samples=n)
    neg = kernels.neg_gradient(a, b, c, U, delta, xi, samples=n)
    for r, m in enumerate(sizes):
        Ur, yr, xr = U[r, :m], y[r, :m], xi[r, :m]
        assert list(kernels.outputs(a[r], b[r], c[r], U[r])[:m]) == list(kernels.outputs(a[r], b[r], c[r], Ur))
        dr = kernels.residuals(a[r], b[r], c[r], Ur, yr)
        assert list(delta[r, :m]) == list(dr) and not any(delta[r, m:])
        assert list(gam[r]) == list(kernels.gamma_coefficients(dr, Ur, xr))
        assert list(w[r]) == list(kernels.output_weights(dr, Ur, xr))
        assert neg[r].tolist() == kernels.neg_gradient(a[r], b[r], c[r], Ur, dr, xr).tolist()


def test_neg_gradient_is_the_gamma_form_exactly():
    """-dL/da = c b sum_l gamma^(l) a^l and -dL/db, -dL/dc from w_j, with and without xi; the bare-SSM forms agree."""
    rng = np.random.default_rng(22)
    D, H, N = 3, 5, 4
    a, b, c = (_fractions(rng, D) for _ in range(3))
    U, y, xi = _fractions(rng, N, H), _fractions(rng, N), _fractions(rng, N)
    delta = kernels.residuals(a, b, c, U, y)
    for x in (None, xi):
        gam = kernels.gamma_coefficients(delta, U, x)
        w = kernels.output_weights(delta, U, x)
        scaled = delta if x is None else delta * x
        assert list(w) == [sum(2 * scaled[n] * U[n, H - 1 - j] for n in range(N)) / N for j in range(H)]
        assert list(gam) == [(l + 1) * w[l + 1] for l in range(H - 1)]
        neg = kernels.neg_gradient(a, b, c, U, delta, x)
        for i in range(D):
            assert neg[0, i] == c[i] * b[i] * sum(gam[l] * a[i] ** l for l in range(H - 1))
            assert neg[1, i] == c[i] * sum(w[j] * a[i] ** j for j in range(H))
            assert neg[2, i] == b[i] * sum(w[j] * a[i] ** j for j in range(H))
    assert kernels.neg_grad_abc(a, b, c, U, y).tolist() == kernels.neg_gradient(a, b, c, U, delta).tolist()
    assert list(kernels.neg_grad_a(a, b, c, U, y)) == list(kernels.neg_grad_abc(a, b, c, U, y)[0])
    # float64: the a-only form is bit for bit the a-part of the full one
    af, bf, cf, Uf, yf = (np.asarray(v, dtype=float) for v in (a, b, c, U, y))
    assert np.array_equal(kernels.neg_grad_a(af, bf, cf, Uf, yf), kernels.neg_grad_abc(af, bf, cf, Uf, yf)[0])


def test_neg_grad_a_matrix_diagonal_is_neg_grad_a_exactly():
    rng = np.random.default_rng(23)
    D, H, N = 3, 5, 3
    a, b, c = (_fractions(rng, D) for _ in range(3))
    U, y = _fractions(rng, N, H), _fractions(rng, N)
    G = kernels.neg_grad_a_matrix(a, b, c, U, kernels.residuals(a, b, c, U, y))
    assert [G[i, i] for i in range(D)] == list(kernels.neg_grad_a(a, b, c, U, y))
    # off the diagonal: b_p c_q sum_{m+l<=H-2} a_p^m a_q^l w_{m+l+1}
    w = kernels.output_weights(kernels.residuals(a, b, c, U, y), U)
    p, q = 0, 2
    assert G[p, q] == b[p] * c[q] * sum(a[p] ** m * a[q] ** l * w[m + l + 1]
                                        for m in range(H - 1) for l in range(H - 1) if m + l <= H - 2)
