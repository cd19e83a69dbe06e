"""Exponential collocation: exact weights, design order 2M, stiff accuracy at high precision."""

import math

import gmpy2
import numpy as np
import pytest

from ssmpoison.verify import Status
from ssmpoison.verify._expcoll import ExpColl, _continuation_cached, _nodes_tables, _weights

S2 = 1 / math.sqrt(2)


def _problem(mu, dtype):
    """y' = -mu v v^T y + g(y), v = (1, 1)/sqrt 2, g(y) = (-y_1^2, -y_1 y_2): smooth, stiff along v for large mu."""
    if dtype == object:
        v = np.array([gmpy2.sqrt(gmpy2.mpfr(2)) / 2] * 2, dtype=object)
        m = gmpy2.mpfr(mu)
    else:
        v = np.array([S2, S2], dtype=dtype)
        m = dtype(mu)

    def fun(y):
        lin = -m * (y * v).sum(axis=-1)[..., None] * v
        return lin + np.stack([-y[..., 0] * y[..., 0], -y[..., 0] * y[..., 1]], axis=-1)

    def linear_part(y):
        B = y.shape[0]
        return np.array([[m]] * B, dtype=y.dtype), np.broadcast_to(v, (B, 1, 2)).copy()

    return fun, linear_part


@pytest.mark.parametrize("z", [0.0, 1e-3, 0.7, 5.0, 50.0, 1e5])
def test_weights_integrate_exponentials_exactly(z):
    """sum_k W_k(1) = (1 - e^-z)/z: the weights reproduce the exact integral of a constant."""
    with gmpy2.context(gmpy2.get_context(), precision=200):
        W = _weights(6, 200, np.array([gmpy2.mpfr(z)], dtype=object))[0]
        exact = (1 - gmpy2.exp(-gmpy2.mpfr(z))) / z if z else gmpy2.mpfr(1)
        assert abs(sum(W[6]) - exact) < gmpy2.mpfr(2) ** -190


@pytest.mark.parametrize("M", [2, 3])
def test_design_order_two_m(M):
    """Fixed steps h, h/2 at 200 bits: the global error falls by 2^(2M) (order 2M) on a smooth problem."""
    with gmpy2.context(gmpy2.get_context(), precision=200):
        fun, lin = _problem(1.0, object)
        y0 = np.array([[gmpy2.mpfr("0.8"), gmpy2.mpfr("0.3")]], dtype=object)

        def solve(h):
            method = ExpColl(nodes=M, initial_step=h, fixed_step=True)
            return method.integrate(fun, y0, 0, 1, precision_bits=200, rtol=1e-50, atol=1e-50, linear_part=lin).y

        ref = solve(1 / 256)
        errs = [float(np.abs(solve(h) - ref).max()) for h in (1 / 4, 1 / 8)]
    order = math.log2(errs[0] / errs[1])
    assert abs(order - 2 * M) < 0.5, (errs, order)


def test_stiff_accuracy_high_precision():
    """mu = 1e6 (stiff): adaptive runs at two tolerances agree to the tighter one, in 160-bit arithmetic."""
    with gmpy2.context(gmpy2.get_context(), precision=160):
        fun, lin = _problem(1e6, object)
        y0 = np.array([[gmpy2.mpfr("0.8"), gmpy2.mpfr("0.3")]], dtype=object)
        loose = ExpColl().integrate(fun, y0, 0, 50, precision_bits=160, rtol=1e-25, atol=1e-28, linear_part=lin)
        tight = ExpColl().integrate(fun, y0, 0, 50, precision_bits=160, rtol=1e-40, atol=1e-43, linear_part=lin)
        assert loose.status == tight.status == "t_end"
        rel = float((np.abs(loose.y - tight.y) / np.abs(tight.y)).max())
    assert rel < 1e-22
    assert tight.n_steps < 200  # steps are not limited by the stiff rate (1e6 over 50 time units)


def test_options_validation():
    fun, lin = _problem(1.0, np.float64)
    y0 = np.array([[0.8, 0.3]])
    with pytest.raises(ValueError, match="rtol"):
        ExpColl().integrate(fun, y0, 0, 1, precision_bits=53, rtol=0, atol=1e-14, linear_part=lin)
    with pytest.raises(ValueError, match="initial_step"):
        ExpColl(fixed_step=True)
    with pytest.raises(ValueError, match="^linear_part"):
        ExpColl().integrate(fun, y0, 0, 1, precision_bits=53, rtol=1e-10, atol=1e-14)


def test_float64_run_ends_with_a_status_member():
    fun, lin = _problem(1e3, np.float64)
    res = ExpColl().integrate(fun, np.array([[0.8, 0.3]]), 0, 5, precision_bits=53, rtol=1e-10, atol=1e-14, linear_part=lin)
    assert isinstance(res.status, Status) and res.status is Status.T_END


@pytest.mark.parametrize("precision_bits", [53, 64, 128])
def test_weights_of_a_step_equal_those_of_each_rate_alone(precision_bits):
    """The weights of all the rates of a step (batched, repeated rates computed once) are, entry for
    entry, those of each rate computed alone: backward recurrence (z < M), forward (z >= M), z = 0."""
    dtype = np.float64 if precision_bits == 53 else (np.longdouble if precision_bits == 64 else object)
    M = 7
    zs = [0.0, 1e-17, 0.43, 6.9, 7.0, 7.5e4, 0.43]
    z = np.array(zs, dtype=dtype) if dtype is not object else np.array([gmpy2.mpfr(v, precision_bits) for v in zs], dtype=object)
    batched = _weights(M, precision_bits, z.reshape(7, 1))
    assert batched.shape == (7, 1, M + 1, M)
    for k in range(7):
        alone = _weights(M, precision_bits, z[k : k + 1])[0]
        assert (batched[k, 0] == alone).all()


@pytest.mark.parametrize("M", [2, 7, 16])
def test_picard_start_basis_is_the_lagrange_basis(M):
    """The continuation matrix (all the Lagrange basis polynomials at once, the omitted factor an exact 1)
    equals the products of the other factors taken one basis polynomial at a time."""
    c = np.array([float(v) for v in _nodes_tables(M, 64)[0]])
    X = np.concatenate([[0.0], c, [1.0]])
    for ratio in (0.37, 1.0, 2.0):
        x = 1.0 + c * ratio
        diff = x[:, None] - X[None, :]
        denom = X[:, None] - X[None, :]
        np.fill_diagonal(denom, 1.0)
        L = np.empty((M, X.size))
        for j in range(X.size):
            L[:, j] = np.prod(np.delete(diff, j, axis=1), axis=1) / np.prod(denom[j])
        L[:, -1] -= 1.0
        assert np.array_equal(_continuation_cached(M, ratio), L[:, 1:])
