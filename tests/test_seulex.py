"""The SEULEX integrator (verify.seulex) and the structured solves (verify.linalg).

* every extrapolation column has the order it claims, in float64 and at 200 bits;
* the adaptive integrator reaches 1e-30 on a stiff problem with an exact solution at 160 bits;
* the Woodbury and dense solvers agree with numpy.linalg (batched, longdouble, object dtype);
* every termination status and every option check.
"""

import math
from fractions import Fraction

import gmpy2
import numpy as np
import pytest

from ssmpoison.verify._numbers import to_working
from ssmpoison.verify import Status
from ssmpoison.verify._linalg import dense_solver, diag_plus_lowrank_solver, gauss_solve
from ssmpoison.verify._seulex import Seulex, extrapolated_step, step_numbers


@pytest.fixture
def precision():
    """Set the gmpy2 precision for one test and restore it afterwards."""
    ctx = gmpy2.get_context()
    saved = ctx.precision

    def set_bits(bits):
        ctx.precision = bits

    yield set_bits
    ctx.precision = saved


def integrate(fun, make_solver, y0, t0, t_end, *, precision_bits=53, method=Seulex(), **kwargs):
    """SEULEX through the integrator interface (explicit precision; the stiff part as ``make_solver``)."""
    return method.integrate(fun, y0, t0, t_end, precision_bits=precision_bits, make_solver=make_solver, **kwargs)


def mp_array(values):
    return np.array([gmpy2.mpfr(v.item()) for v in np.ravel(values)], dtype=object).reshape(np.shape(values))


# ----------------------------------------------------------------------------- test problems


def riccati_fun(y):
    """``y' = -y^2``, exact solution ``y = y0 / (1 + y0 t)``."""
    return -y * y


def riccati_solver(y):
    return dense_solver((-2 * y)[..., None])


def square_fun(y):
    """``y' = y^2``: ``y = 1 / (1 - t)`` from ``y(0) = 1`` blows up at ``t = 1``."""
    return y * y


def square_solver(y):
    return dense_solver((2 * y)[..., None])


# Linear system u' = -L (u - phi(t)) + phi'(t) with exact solution u = phi(t) = (cos t, sin t),
# made autonomous by the clock variable tau' = 1: y = (u_1, u_2, tau).
L_MATRIX = [[2, 1], [1, 10]]


def linear_fun(y):
    u, tau = y[..., :2], y[..., 2]
    cos, sin = _trig(tau)
    phi, dphi = np.stack([cos, sin], -1), np.stack([-sin, cos], -1)
    L = np.asarray(L_MATRIX, dtype=y.dtype)
    rhs = -((u - phi) @ L.T) + dphi
    return np.concatenate([rhs, np.ones_like(y[..., 2:])], axis=-1)


def linear_solver(y):
    tau = y[..., 2]
    cos, sin = _trig(tau)
    dphi, ddphi = np.stack([-sin, cos], -1), np.stack([-cos, -sin], -1)
    L = np.asarray(L_MATRIX, dtype=y.dtype)
    dtau = dphi @ L.T + ddphi  # d(rhs)/d tau
    J = np.zeros(y.shape + (3,), dtype=y.dtype)  # exact integer zeros for object dtype
    J[..., :2, :2] = -L
    J[..., :2, 2] = dtau
    return dense_solver(J)


def _trig(tau):
    if np.asarray(tau).dtype == object:
        return np.vectorize(gmpy2.cos, otypes=[object])(tau), np.vectorize(gmpy2.sin, otypes=[object])(tau)
    return np.cos(tau), np.sin(tau)


def fixed_step_error(fun, make_solver, y0, exact, t_end, m, k, sequence, precision_bits=53):
    """Max relative error at ``t_end`` of ``m`` fixed macro-steps of order ``k``."""
    y = y0
    h = to_working(t_end, precision_bits) / m
    for _ in range(m):
        y = extrapolated_step(fun, make_solver(y), y, h, k, sequence, precision_bits=precision_bits)
    return max(abs(float((a - b) / b)) for a, b in zip(np.ravel(y), np.ravel(exact)))


def observed_orders(errors):
    return [math.log2(errors[i] / errors[i + 1]) for i in range(len(errors) - 1)]


# ----------------------------------------------------------------------------- orders


@pytest.mark.parametrize("sequence", ["hairer", "harmonic"])
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_column_order_float64_riccati(k, sequence):
    y0 = np.array([1.0])
    exact = np.array([0.5])
    errors = [fixed_step_error(riccati_fun, riccati_solver, y0, exact, 1.0, m, k, sequence) for m in (16, 32, 64)]
    assert all(abs(p - k) <= 0.3 for p in observed_orders(errors)), (errors, observed_orders(errors))


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_column_order_float64_linear(k):
    y0 = np.array([1.0, 0.0, 0.0])  # u(0) = phi(0), tau = 0
    t_end = 1.0
    exact = np.array([math.cos(t_end), math.sin(t_end), t_end])
    errors = [fixed_step_error(linear_fun, linear_solver, y0, exact, t_end, m, k, "hairer") for m in (128, 256, 512)]
    assert all(abs(p - k) <= 0.3 for p in observed_orders(errors)), (errors, observed_orders(errors))


@pytest.mark.parametrize("sequence,k", [("hairer", 8), ("harmonic", 8), ("hairer", 12)])
def test_column_order_200_bits_riccati(precision, sequence, k):
    precision(200)
    y0 = mp_array([1])
    exact = np.array([gmpy2.mpfr(1) / 2], dtype=object)
    errors = [fixed_step_error(riccati_fun, riccati_solver, y0, exact, 1, m, k, sequence, 200) for m in (16, 32, 64)]
    assert all(abs(p - k) <= 0.3 for p in observed_orders(errors)), (errors, observed_orders(errors))


@pytest.mark.parametrize(
    "k,steps",
    [(6, (128, 256, 512)), pytest.param(8, (256, 512, 1024), marks=pytest.mark.slow)],
)
def test_column_order_200_bits_linear(precision, k, steps):
    """The stiff mode (eigenvalue ~ -10) makes the approach to the asymptotic order slow: use small steps."""
    precision(200)
    y0 = mp_array([1, 0, 0])
    t_end = gmpy2.mpfr(1)
    exact = np.array([gmpy2.cos(t_end), gmpy2.sin(t_end), t_end], dtype=object)
    errors = [fixed_step_error(linear_fun, linear_solver, y0, exact, t_end, m, k, "hairer", 200) for m in steps]
    assert all(abs(p - k) <= 0.3 for p in observed_orders(errors)), (errors, observed_orders(errors))


def test_step_numbers():
    assert step_numbers("harmonic", 5) == [1, 2, 3, 4, 5]
    assert step_numbers("hairer", 9) == [1, 2, 3, 4, 6, 8, 12, 16, 24]
    assert step_numbers("stiff", 6) == [6, 8, 12, 16, 24, 32]
    assert step_numbers((2, 3, 5), 5) == [2, 3, 5, 6, 10]
    with pytest.raises(ValueError, match="sequence"):
        step_numbers("fibonacci", 3)


# ----------------------------------------------------------------------------- adaptive accuracy


LAM, MU = 10**4, 50


def stiff_fun(y):
    """``u' = -u^2``, ``v' = -λ(v - u) - u^2``, ``w' = -μ(w - u) - u^2``; exact ``v = w = u = u0/(1 + u0 t)``.

    The stiff components are slaved to the slow one along a *linear* invariant
    manifold, which linearly implicit Euler with the exact frozen Jacobian
    preserves sub-step by sub-step (see the SEULEX module docstring for why a
    curved slow manifold limits the attainable accuracy instead).
    """
    u, v, w = y[..., 0], y[..., 1], y[..., 2]
    return np.stack([-u * u, -LAM * (v - u) - u * u, -MU * (w - u) - u * u], axis=-1)


def stiff_solver(y):
    u = y[..., 0]
    zero = u * 0
    J = np.stack(
        [
            np.stack([-2 * u, zero, zero], -1),
            np.stack([LAM - 2 * u, zero - LAM, zero], -1),
            np.stack([MU - 2 * u, zero, zero - MU], -1),
        ],
        -2,
    )
    return dense_solver(J)


def test_float64_stiff_accuracy_and_batch():
    y0 = np.ones((2, 3))
    y0[1] *= 0.5
    res = integrate(stiff_fun, stiff_solver, y0, 0, 10, rtol=1e-12, atol=1e-12)
    assert res.status == "t_end" and res.t == 10
    exact = np.repeat(np.array([1 / 11, 0.5 / 6])[:, None], 3, axis=1)
    assert np.abs(res.y / exact - 1).max() < 1e-9
    assert res.n_steps < 200 and res.n_fun_evals > res.n_steps


def test_high_precision_stiff_accuracy(precision):
    precision(160)
    y0 = mp_array([1, 1, 1])
    tol = Fraction(1, 10**34)
    res = integrate(stiff_fun, stiff_solver, y0, 0, 10, precision_bits=160, rtol=tol, atol=tol)
    assert res.status == "t_end"
    u = 1 / gmpy2.mpfr(11)
    exact = np.array([u, u, u], dtype=object)
    rel = max(abs((res.y - exact) / exact))
    assert rel < gmpy2.mpfr("1e-30"), rel
    assert isinstance(res.y[0], type(u)) and res.y[0].precision == 160


def test_longdouble_keeps_precision():
    y0 = np.array([1, 1, 1], dtype=np.longdouble)
    res = integrate(stiff_fun, stiff_solver, y0, 0, 1, precision_bits=64, rtol=1e-17, atol=1e-17)
    assert res.y.dtype == np.longdouble
    u = np.longdouble(1) / 2
    assert abs(res.y[0] / u - 1) < 1e-16  # beyond float64's 1.1e-16 relative spacing


# ----------------------------------------------------------------------------- structured solves


def _dense_reference(d, G, scale, h, r):
    J = np.einsum("...i,ij->...ij", d, np.eye(d.shape[-1])) - scale * np.swapaxes(G, -1, -2) @ G
    A = np.eye(d.shape[-1]) - h * J
    return np.linalg.solve(A, r[..., None])[..., 0]


@pytest.mark.parametrize("batch", [(), (3,), (2, 4)])
def test_woodbury_matches_numpy(batch):
    rng = np.random.default_rng(7)
    D, N = 9, 3
    d, G, r = rng.normal(size=batch + (D,)), rng.normal(size=batch + (N, D)), rng.normal(size=batch + (D,))
    for h in (0.01, 0.7, 25.0):
        x = diag_plus_lowrank_solver(d, G, 2 / N)(h, r)
        ref = _dense_reference(d, G, 2 / N, h, r)
        assert np.abs(x - ref).max() < 1e-12 * max(1, np.abs(ref).max())


def test_woodbury_object_and_longdouble_match_numpy(precision):
    precision(200)
    rng = np.random.default_rng(11)
    D, N = 7, 2
    d, G, r = rng.normal(size=(2, D)), rng.normal(size=(2, N, D)), rng.normal(size=(2, D))
    ref = _dense_reference(d, G, 1.0, 0.3, r)
    x_obj = diag_plus_lowrank_solver(mp_array(d), mp_array(G), Fraction(1))(gmpy2.mpfr("0.3"), mp_array(r))
    assert x_obj.dtype == object and isinstance(x_obj[0, 0], type(gmpy2.mpfr(1)))
    assert np.abs(x_obj.astype(float) - ref).max() < 1e-12
    ld = np.longdouble
    x_ld = diag_plus_lowrank_solver(d.astype(ld), G.astype(ld), 1)(ld("0.3"), r.astype(ld))
    assert x_ld.dtype == np.longdouble and np.abs(x_ld.astype(float) - ref).max() < 1e-12


def test_woodbury_exact_at_high_precision(precision):
    """Residual of the 200-bit solve is at the 200-bit level (no float64 constant slipped in)."""
    precision(200)
    rng = np.random.default_rng(3)
    D, N = 6, 2
    d, G, r = mp_array(rng.normal(size=D)), mp_array(rng.normal(size=(N, D))), mp_array(rng.normal(size=D))
    scale, h = Fraction(2, 3), gmpy2.mpfr(1) / 7
    x = diag_plus_lowrank_solver(d, G, scale)(h, r)
    Gx = G @ x
    residual = x - h * (d * x - (G.T @ Gx) * 2 / 3) - r  # (I - hJ) x - r
    assert max(abs(residual)) < gmpy2.mpfr(2) ** -190


def test_dense_solver_and_gauss_solve():
    rng = np.random.default_rng(5)
    J = rng.normal(size=(4, 5, 5))
    r = rng.normal(size=(4, 5))
    x = dense_solver(J)(0.4, r)
    ref = np.linalg.solve(np.eye(5) - 0.4 * J, r[..., None])[..., 0]
    assert np.abs(x - ref).max() < 1e-12
    A = np.array([[0.0, 1.0], [1.0, 0.0]])  # needs pivoting
    assert np.allclose(gauss_solve(A, np.array([[2.0], [3.0]]))[:, 0], [3.0, 2.0])


# ----------------------------------------------------------------------------- statuses


def test_status_t_end():
    res = integrate(riccati_fun, riccati_solver, np.array([1.0]), 0, 3, rtol=1e-10, atol=1e-10)
    assert res.status == "t_end" and res.t == 3 and abs(res.y[0] - 0.25) < 1e-9


def test_status_stopped_and_observe():
    seen = []
    res = integrate(
        riccati_fun,
        riccati_solver,
        np.array([1.0]),
        0,
        float("inf"),
        rtol=1e-10,
        atol=1e-10,
        stop=lambda t, y: y[0] < 0.1,
        observe=lambda t, y: seen.append(t),
    )
    assert res.status == "stopped" and res.y[0] < 0.1 and res.t > 9
    assert len(seen) == res.n_steps and seen == sorted(seen) and seen[-1] == res.t


def test_status_blowup():
    res = integrate(square_fun, square_solver, np.array([1.0]), 0, 2, rtol=1e-8, atol=1e-8, blowup=1e6)
    assert res.status == "blowup" and abs(res.y[0]) > 1e6
    assert 1 - 1e-5 < res.t < 1  # y = 1 / (1 - t)


def test_status_max_steps():
    res = integrate(riccati_fun, riccati_solver, np.array([1.0]), 0, 100, rtol=1e-8, atol=1e-12, max_steps=3)
    assert res.status == "max_steps" and res.n_steps + res.n_rejected == 3 and res.t < 100


def test_rejects_non_finite_and_recovers():
    """A too-large first step that produces NaN/inf is retried with smaller steps."""
    res = integrate(square_fun, square_solver, np.array([1.0]), 0, 0.5, method=Seulex(initial_step=5.0), rtol=1e-8, atol=1e-12)
    assert res.status == "t_end" and abs(res.y[0] - 2) < 1e-6 and res.n_rejected >= 1


def test_bad_interval():
    with pytest.raises(ValueError, match="t_end"):
        integrate(riccati_fun, riccati_solver, np.array([1.0]), 1, 0, rtol=1e-8, atol=1e-12)


# ----------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    "field,value",
    [
        ("rtol", 0.0),
        ("rtol", -1e-3),
        ("rtol", float("nan")),
        ("atol", -1.0),
        ("max_order", 2),
        ("max_order", 4.5),
        ("sequence", "fibonacci"),
        ("sequence", (3, 2)),
        ("sequence", (0, 1, 2)),
        ("initial_step", 0.0),
        ("max_step", -1.0),
        ("max_steps", 0),
        ("max_steps", True),
        ("safety", 1.5),
        ("min_factor", 1.0),
        ("max_factor", 0.5),
        ("order_decrease", 0.0),
        ("order_increase", 2.0),
        ("filter_error", "magic"),
    ],
)
def test_bad_options_name_the_field(field, value):
    """Control parameters are checked by ``Seulex(...)``; tolerances and budget by ``integrate``."""
    with pytest.raises(ValueError, match=rf"^{field}\b"):
        if field in ("rtol", "atol", "max_steps"):
            integrate(riccati_fun, riccati_solver, np.array([1.0]), 0, 1, **{"rtol": 1e-8, "atol": 1e-12, field: value})
        else:
            Seulex(**{field: value})


def test_make_solver_is_required():
    with pytest.raises(ValueError, match="^make_solver"):
        Seulex().integrate(riccati_fun, np.array([1.0]), 0, 1, precision_bits=53, rtol=1e-8, atol=1e-12)


def test_statuses_are_status_members():
    res = integrate(riccati_fun, riccati_solver, np.array([1.0]), 0, 3, rtol=1e-10, atol=1e-10)
    assert isinstance(res.status, Status) and res.status is Status.T_END


def test_to_working_is_exact(precision):
    assert to_working(Fraction(1, 3), 64) == np.longdouble(1) / 3
    precision(300)
    third = to_working(Fraction(1, 3), 300)
    assert third.precision == 300 and abs(third * 3 - 1) < gmpy2.mpfr(2) ** -295
