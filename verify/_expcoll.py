r"""Exponential collocation for flows whose stiffness is a low-rank symmetric linear part.

For ``y' = f(y)`` we freeze, at the start of each step, a symmetric negative semidefinite
low-rank linear part ``L = -sum_r mu_r v_r v_r^T`` (orthonormal ``v_r``, ``mu_r >= 0``) and
write ``f(y) = L y + g(y)``. The exact variation-of-constants formula over a step ``h``,

    y(t_n + x h) = e^{x h L} y_n + h int_0^x e^{(x - xi) h L} g(y(t_n + xi h)) d xi,

is discretised by interpolating ``g`` on ``M`` Gauss–Legendre nodes ``c_1..c_M`` of (0, 1)
(collocation): with the Lagrange basis ``l_k``,

    y(x) = y_n + sum_r (e^{-x z_r} - 1) v_r (v_r . y_n)
               + h sum_k [ A_k(x) G_k + sum_r v_r (W_{r,k}(x) - A_k(x)) (v_r . G_k) ],

where ``z_r = h mu_r``, ``G_k = g(y(c_k))``, ``A_k(x) = int_0^x l_k`` and
``W_{r,k}(x) = int_0^x e^{-(x - xi) z_r} l_k(xi) d xi`` (closed form below). Because
``e^{x h L} = I + sum_r (e^{-x z_r} - 1) v_r v_r^T`` is exact, the stiff modes never limit
the step: the step is set by the smoothness of ``g`` only. The stage values are found by
Picard iteration (contracting at rate ``~ h |g'|``, small because the stiff part is in
``L``); the end point ``x = 1`` has the collocation order ``2M`` for the non-stiff part.

Weights: ``I_j(x, z) = int_0^x e^{-(x - xi) z} xi^j d xi`` by stable recurrences (forward for
``z >= M``, backward otherwise), then ``W_{r,k}(x) = sum_j Lc_{kj} I_j(x, z_r)`` with
``l_k(xi) = sum_j Lc_{kj} xi^j``, in gmpy2 at the working precision plus 128 guard bits (the
monomial basis is ill-conditioned; the guard bits absorb it). The weights of the exact ``z``
are computed every step, in every type (cheaper than a Picard sweep).

Error estimate (spectral): with ``gamma_n`` the Legendre coefficients of the interpolant of
``g`` — its stiff components damped by ``(1 - e^{-z})/z``, as the end point integrates them —
and their geometric decay rate ``rho`` read from the last four, the Gauss end point (exact
to degree ``2M - 1``) errs by about ``h |gamma_{M-1}| rho^(M+1)``; steps are resized by
``(0.2/err)^{1/(2M+1)}``, at most doubling. Where the coefficients do not decay the estimate
is the top coefficient itself, which rejects the step. Picard iterations that stop
contracting are abandoned early and the step shortened by the observed contraction.

Arithmetic: the explicit working precision ``precision_bits`` selects it (53 bits: float64,
64: longdouble, else object arrays of ``gmpy2.mpfr`` at that precision, in a gmpy2 context the
integrator enters itself; :mod:`ssmpoison.verify._numbers`). The method is used through the interface
of :mod:`ssmpoison.verify._integrator`: an :class:`ExpColl` value holds its parameters,
:meth:`ExpColl.integrate` takes the system, the tolerances and the precision. In float types
the state is carried as ``y + y_lo`` (compensated sums), so rounding does not accumulate
over the steps; the flows of the theory row are ill-conditioned enough for this to matter
(note 00 §8).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from numbers import Real
from typing import Callable, ClassVar

import gmpy2
import mpmath
import numpy as np

from ssmpoison.verify._integrator import IntegrationResult, check_tolerances, require_stiff_part
from ssmpoison.verify._numbers import to_working, to_working_array, working_context, working_dtype
from ssmpoison.verify._status import Status

__all__ = ["ExpColl", "default_nodes", "first_step"]

_GUARD = 128


def default_nodes(precision_bits: int) -> int:
    """Collocation nodes for a working precision: ``M = floor(digits / 2.2)``, clamped to [6, 16]
    (7 for float64, 8 for longdouble, 16 from 128 bits).

    Beyond about 16 nodes the top Legendre coefficients of ``g`` reach the level at which the
    Picard iteration leaves the stages (1e-3 of the tolerance): the estimated decay flattens and
    the steps get shorter, not longer.
    """
    return max(6, min(16, int(precision_bits * math.log10(2) / 2.2)))


@dataclass(frozen=True)
class ExpColl:
    """Exponential collocation (module docstring): its parameters, validated on construction.

    Implements :class:`ssmpoison.verify._integrator.Integrator`; the tolerances, the step budget
    and the working precision are arguments of :meth:`integrate`.

    Arguments:
        nodes: Gauss–Legendre nodes ``M`` (2 to 40); ``None``: :func:`default_nodes` of the precision.
        max_picard: Picard sweeps per step attempt; ``None``: ``2M + 10`` (400 with ``fixed_step``).
        initial_step: first step size; ``None`` picks ``0.01 ‖y0‖ / ‖f(y0)‖``.
        fixed_step: keep ``h = initial_step`` throughout (order-of-convergence tests).

    Raises:
        ValueError: ``nodes`` out of range, or ``fixed_step`` without ``initial_step``.
    """

    name: ClassVar[str] = "exponential collocation"

    nodes: int | None = None
    max_picard: int | None = None
    initial_step: float | None = None
    fixed_step: bool = False

    def __post_init__(self):
        if self.nodes is not None and not (isinstance(self.nodes, int) and 2 <= self.nodes <= 40):
            raise ValueError(f"nodes must be None or an int in [2, 40], got {self.nodes!r}")
        if self.fixed_step and self.initial_step is None:
            raise ValueError("initial_step must be given when fixed_step is True")

    def node_count(self, precision_bits: int) -> int:
        """``M``: ``nodes``, else :func:`default_nodes` of the precision."""
        return self.nodes or default_nodes(precision_bits)

    def sweep_limit(self, precision_bits: int) -> int:
        """The Picard sweeps per step attempt: ``max_picard``, else ``2M + 10`` (400 with ``fixed_step``)."""
        return self.max_picard or (400 if self.fixed_step else 2 * self.node_count(precision_bits) + 10)

    def integrate(
        self,
        fun: Callable,
        y0,
        t0,
        t_end,
        *,
        precision_bits: int,
        rtol: Real,
        atol: Real,
        max_steps: int = 100_000,
        linear_part: Callable | None = None,
        make_solver: Callable | None = None,
        stop: Callable | None = None,
        observe: Callable | None = None,
        blowup: Real | None = None,
        engine=None,
    ) -> IntegrationResult:
        """Integrate ``y' = fun(y)`` (``y`` of shape ``(B, D)``) by exponential collocation.

        Arguments:
            fun, y0, t0, t_end, precision_bits, max_steps: as in
                :meth:`ssmpoison.verify._integrator.Integrator.integrate` (``y`` of shape ``(B, D)``).
            rtol, atol: tolerances of the spectral error estimate (module docstring).
            linear_part: ``linear_part(y) -> (mu, V)``: the frozen low-rank part
                ``L = -sum_r mu_r v_r v_r^T`` at ``y``, ``mu`` of shape ``(B, R)`` (>= 0), ``V`` of
                shape ``(B, R, D)`` with orthonormal rows; or ``(mu, P, Q)`` for
                ``L = -sum_r mu_r p_r q_r^T`` with bi-orthonormal rows (``q_r . p_s = delta_rs``;
                then ``e^{hL} = I + sum_r (e^{-h mu_r} - 1) p_r q_r^T`` likewise).
            make_solver: not used.
            stop, observe, blowup: as in :class:`ssmpoison.verify._integrator.Integrator`.
            engine: ``None`` (the reference path: NumPy and gmpy2), or a compiled engine of the same
                system (:class:`ssmpoison.verify._compiled.AnchoredEngine`: its ``weights(M, h, mu)``
                replace the guarded weights and its ``step(y, mu, P, Q, W - A, A, h)`` returns the sweep
                ``stages -> (incr, g, q . g)`` that replaces ``fun`` and the stiff part's products inside
                the Picard iteration, or, for a multiprecision engine, an object whose ``iterate`` runs
                the whole iteration by the same rule (:func:`_picard_verdict`); an engine whose
                ``numbers`` is not ``None`` carries the state in its own number type, converted from
                ``y0`` and back for ``fun``, ``observe``, ``stop`` and the result; step control and the
                error estimate are the same).

        Returns:
            :class:`~ssmpoison.verify._integrator.IntegrationResult` with ``details["nodes"] = M``.

        Raises:
            ValueError: bad tolerances, or no ``linear_part``.
        """
        check_tolerances(rtol, atol, max_steps)
        linear_part = require_stiff_part(self.name, "linear_part", linear_part)
        with working_context(precision_bits):
            return _integrate(self, fun, linear_part, y0, t0, t_end, precision_bits, rtol, atol, max_steps, stop, observe, blowup,
                              engine)


@functools.lru_cache(maxsize=16)
def _nodes_tables(M: int, precision_bits: int):
    """Gauss–Legendre nodes on (0,1), Lagrange monomial coefficients, z=0 weights, Legendre transform (mpf)."""
    with mpmath.workprec(precision_bits):
        xs, _ = zip(*[(x, w) for x, w in _gauss_legendre(M)])
        c = [(1 + x) / 2 for x in xs]
        V = mpmath.matrix([[ck**j for j in range(M)] for ck in c])  # V[k, j] = c_k^j
        Vinv = V**-1  # l_k(xi) = sum_j Vinv[j, k] xi^j
        Lc = [[Vinv[j, k] for j in range(M)] for k in range(M)]
        points = list(c) + [mpmath.mpf(1)]
        A = [[mpmath.fsum(Lc[k][j] * x ** (j + 1) / (j + 1) for j in range(M)) for k in range(M)] for x in points]
        # Legendre coefficients of the interpolant: P_n(2c_k - 1) Vandermonde inverse
        P = mpmath.matrix([[mpmath.legendre(n, 2 * ck - 1) for n in range(M)] for ck in c])
        Pinv = P**-1
        # projector onto the top two Legendre modes, in node values: P[:, top] @ Pinv[top, :]
        legendre = [[Pinv[n, l] for l in range(M)] for n in range(M)]  # node values -> Legendre coefficients
        return c, points, Lc, A, legendre


def _gauss_legendre(M: int):
    """Nodes and weights of M-point Gauss–Legendre on (-1, 1) at the current mpmath precision."""
    out = []
    for i in range(1, M + 1):
        x = mpmath.cos(mpmath.pi * (i - mpmath.mpf(1) / 4) / (M + mpmath.mpf(1) / 2))
        for _ in range(100):
            p0, p1 = mpmath.mpf(1), x
            for n in range(2, M + 1):
                p0, p1 = p1, ((2 * n - 1) * x * p1 - (n - 1) * p0) / n
            dp = M * (x * p1 - p0) / (x * x - 1)
            dx = p1 / dp
            x -= dx
            if abs(dx) < mpmath.mpf(2) ** (-mpmath.mp.prec + 4):
                break
        out.append((x, 2 / ((1 - x * x) * dp * dp)))
    return sorted(out)


def _monomial_weights(points, M: int, z, precision_bits: int):
    """``I[p, j] = int_0^{x_p} e^{-(x_p - xi) z} xi^j d xi`` for every point x_p and j < M
    (object array of gmpy2; called inside a context of ``precision_bits``).

    Integration by parts gives ``I_j = (x^j - j I_{j-1}) / z`` with ``I_0 = -expm1(-x z) / z``:
    run forward when ``z >= M`` (errors multiplied by ``j/z <= 1``), and backward,
    ``I_{j-1} = (x^j - z I_j) / j``, from ``j = M + J_0`` started at 0 when ``z < M`` (errors
    multiplied by ``z/j < 1``; ``J_0`` is chosen so the starting error is damped below the
    working precision).
    """
    if z >= M:
        powers = _point_powers(points, M, precision_bits, M - 1)
        cols = [np.array([-gmpy2.expm1(-x * z) / z for x in points], dtype=object)]
        for j in range(1, M):
            cols.append((powers[j] - j * cols[-1]) / z)
        return np.stack(cols, axis=1)
    # backward: damping prod_{j=M}^{J} z/j must reach 2^-precision_bits
    J, damp = M, 0.0
    zf = max(float(z), 1e-300)
    while damp > -precision_bits * math.log(2) and J < M + 4 * precision_bits:
        J += 1
        damp += math.log(zf / J) if z > 0 else -math.inf
    powers = _point_powers(points, M, precision_bits, J)
    I = powers[1] * 0
    cols = [None] * M
    for j in range(J, 0, -1):  # I_{j-1} from I_j
        I = (powers[j] - z * I) / j
        if j - 1 < M:
            cols[j - 1] = I
    return np.stack(cols, axis=1)


_POWERS: dict = {}


def _point_powers(points, M: int, precision_bits: int, J: int) -> list:
    """``[x^0, x^1, ..., x^J]`` of the points (object arrays; ``x^0`` the integer 1), by repeated
    multiplication at ``precision_bits``; computed once per node count and precision, extended on demand."""
    powers = _POWERS.get((M, precision_bits))
    if powers is None:
        powers = _POWERS[(M, precision_bits)] = [np.ones_like(np.array(points, dtype=object))]
    if len(powers) <= J:
        xs = np.array(points, dtype=object)
        with gmpy2.context(precision=precision_bits):
            while len(powers) <= J:
                powers.append(powers[-1] * xs)
    return powers


def _weights(M: int, precision_bits: int, z_values):
    """``W[..., p, k]`` for every z in ``z_values`` (array of non-negative numbers), in the working type of ``precision_bits``."""
    dtype = working_dtype(precision_bits)
    guarded_bits = precision_bits + _GUARD
    points, Lc, _ = _gmpy_tables(M, guarded_bits)
    with gmpy2.context(precision=guarded_bits):
        flat = np.asarray(z_values).reshape(-1)
        keys = [_to_gmpy(z) for z in flat]
        unique = {zg: k for k, zg in enumerate(dict.fromkeys(keys))}
        if unique:
            I = np.stack([_monomial_weights(points, M, zg, guarded_bits) for zg in unique])  # (z, p, j)
            # W[p, k] = sum_j I[p, j] Lc[k, j]: cancellation is bounded by the monomial basis's
            # conditioning (< 2^40 up to 24 nodes), far inside the guard bits
            W = (I @ _lagrange_matrix(M, guarded_bits).T)[[unique[zg] for zg in keys]]
        else:
            W = np.empty((0, M + 1, M), dtype=object)
        if dtype == np.float64:  # mpfr -> float64 is correctly rounded
            arr = W.astype(np.float64)
        elif dtype != object:  # hi + lo: 106 bits of every weight, then one rounding to the working type
            hi = W.astype(np.float64)
            lo = (W - hi.astype(object)).astype(np.float64)
            arr = hi.astype(dtype) + lo.astype(dtype)
    if dtype == object:
        with gmpy2.context(precision=precision_bits):
            arr = W * 1  # rounds every entry to the working precision
    return arr.reshape(np.asarray(z_values).shape + (M + 1, M))


@functools.lru_cache(maxsize=64)
def _lagrange_matrix(M: int, guarded_bits: int) -> np.ndarray:
    return np.array(_gmpy_tables(M, guarded_bits)[1], dtype=object)


def _to_gmpy(z):
    """Exact conversion of float64 / longdouble / mpfr to gmpy2.mpfr (at the context precision)."""
    if isinstance(z, type(gmpy2.mpfr(0))):
        return z
    if isinstance(z, np.floating) and z.dtype == np.longdouble:
        hi = float(z)
        return gmpy2.mpfr(hi) + gmpy2.mpfr(float(z - np.longdouble(hi)))
    return gmpy2.mpfr(float(z))


def _mp_to_gmpy(v):
    sign, mant, exp, _ = mpmath.mpf(v)._mpf_ if not isinstance(v, mpmath.mpf) else v._mpf_  # exact, signed
    if not mant:
        return gmpy2.mpfr(0)
    value = gmpy2.mul_2exp(gmpy2.mpfr(int(mant)), int(exp))
    return -value if sign else value


def _cast(v, dtype, object_bits: int):
    """A ``gmpy2.mpfr`` (at more bits than the working type) rounded to ``dtype`` (to ``object_bits`` bits for ``object``)."""
    if dtype == object:
        return gmpy2.mpfr(v, object_bits)
    if dtype == np.float64:
        return float(v)  # mpfr -> float is correctly rounded
    hi = float(v)
    return dtype.type(hi) + dtype.type(float(v - hi))  # longdouble: 106 bits of v, one rounding


def _cast_table(table, dtype, object_bits: int):
    return np.array([[_cast(_mp_to_gmpy(v), dtype, object_bits) for v in row] for row in table], dtype=dtype)


@functools.lru_cache(maxsize=64)
def _gmpy_tables(M: int, guarded_bits: int):
    """Points, Lagrange monomial coefficients and z = 0 weights as ``gmpy2.mpfr`` of ``guarded_bits`` bits.

    Converted under a context of ``guarded_bits`` whatever the caller's (a float64 caller's
    context has 53 bits, which would round the ill-conditioned monomial coefficients and cost
    about 1e-13 in every weight).
    """
    _, points_mp, Lc_mp, A_mp, _ = _nodes_tables(M, guarded_bits)
    with gmpy2.context(precision=guarded_bits):
        return (
            [_mp_to_gmpy(p) for p in points_mp],
            [[_mp_to_gmpy(v) for v in row] for row in Lc_mp],
            [[_mp_to_gmpy(v) for v in row] for row in A_mp],
        )


def _frozen_weights(M: int, precision_bits: int, h, mu, dtype):
    """Weights ``W`` of shape ``mu.shape + (M+1, M)`` for every frozen rate.

    The weights of the exact ``z = h mu`` (in the working type, converted exactly), computed
    with guard bits and rounded once to the working type. (Rounding ``z`` to a grid of cached
    values instead is *not* harmless: the moved fraction of the stiffness stays in the forcing
    ``g``, whose fast transient the collocation polynomial then has to interpolate; with a
    0.5 % grid this cost ~1e-12 relative error on the theory row's flows, in every type.)
    """
    shape = np.asarray(mu).shape
    flat_mu = np.asarray(mu).reshape(-1)
    W = _weights(M, precision_bits, np.array([h * m for m in flat_mu], dtype=dtype))
    return W.reshape(shape + (M + 1, M))


@functools.lru_cache(maxsize=64)
def _working_tables(M: int, precision_bits: int):
    """The ``z = 0`` weights ``A_k(x_p)`` (``(M+1, M)``) and the transform from node values to Legendre
    coefficients (``(M, M)``), rounded once to the working type of ``precision_bits`` from
    ``precision_bits + 128`` bits (read-only arrays)."""
    guarded_bits = precision_bits + _GUARD
    _, _, _, A_mp, legendre_mp = _nodes_tables(M, guarded_bits)
    dtype = working_dtype(precision_bits)
    with gmpy2.context(precision=guarded_bits):
        tables = _cast_table(A_mp, dtype, guarded_bits), _cast_table(legendre_mp, dtype, guarded_bits)
    for table in tables:
        table.flags.writeable = False
    return tables


@functools.lru_cache(maxsize=64)
def _float_nodes(M: int) -> np.ndarray:
    """The Gauss–Legendre nodes on (0, 1) in float64 (those of :func:`_nodes_tables` at 64 bits, without its tables)."""
    with mpmath.workprec(64):
        return np.array([float((1 + x) / 2) for x, _ in _gauss_legendre(M)])


@functools.lru_cache(maxsize=4096)
def _continuation_cached(M: int, ratio: float) -> np.ndarray:
    c = _float_nodes(M)
    X = np.concatenate([[0.0], c, [1.0]])  # points of the last step's polynomial (value 0 at x = 0)
    x = 1.0 + c * ratio  # this step's nodes, in the last step's coordinate
    diff = x[:, None] - X[None, :]  # (M, P)
    denom = X[:, None] - X[None, :]
    np.fill_diagonal(denom, 1.0)
    # l_j(x) = prod_{m != j} (x - X_m) / (X_j - X_m); the factor m = j is replaced by 1 (exact), for all j at once
    factors = np.broadcast_to(diff[:, None, :], (M, X.size, X.size)).copy()  # (M, j, m)
    factors[:, np.arange(X.size), np.arange(X.size)] = 1.0
    L = np.prod(factors, axis=2) / np.prod(denom, axis=1)
    L[:, -1] -= 1.0  # increments from the last step's end point
    return L[:, 1:]  # the value at x = 0 is 0


def _continuation(M: int, ratio: float) -> np.ndarray:
    """``E[k, j]``: the last step's increment polynomial (0 at x = 0, ``incr_j`` at ``c_j`` and 1),
    continued to this step's node ``c_k`` (step ratio ``ratio``), minus its end value: a Picard
    start only (float64 is enough; any start converges to the same collocation solution)."""
    return _continuation_cached(M, float(f"{ratio:.6g}"))


def _first_step(method: ExpColl, y, f0, rtol, atol, scalar):
    """The first step: ``initial_step``, else ``0.01 max(max|y|, atol/rtol) / max|f(y)|`` (``rtol``, ``atol``
    and the result in the working type, ``scalar`` the conversion to it)."""
    if method.initial_step:
        return scalar(method.initial_step)
    return scalar(1) * (0.01 * max(float(np.abs(y).max()), float(atol / rtol)) / max(float(np.abs(f0).max()), 1e-300))


def first_step(method: ExpColl, y0, f0, rtol, atol, precision_bits: int):
    """:meth:`ExpColl.integrate`'s first step from ``y0`` with ``f0 = f(y0)`` and the tolerances ``rtol``,
    ``atol`` (numbers), in the working type of ``precision_bits``."""
    def scalar(v):
        return to_working(v, precision_bits)

    return _first_step(method, to_working_array(y0, precision_bits), f0, scalar(rtol), scalar(atol), scalar)


def _spectral_error(coeffs, h, atol, rtol, end, M: int) -> float:
    """Scaled estimate of the end point's local error from the decay of the Legendre coefficients of ``g``.

    ``coeffs``: ``|gamma_n|`` for ``n = M-4..M-1`` (float64, shape ``(4, B, D)``). With ``gamma_n`` the Legendre coefficients of the interpolant of ``g`` on the step and a
    geometric decay ``|gamma_n| ~ rho^n`` (``rho`` from the last four coefficients, capped at 1),
    the Gauss end point, exact up to degree ``2M - 1``, errs by about
    ``h |gamma_{M-1}| rho^(M+1)`` (the size of the first coefficient it does not integrate).
    Components without decay (noise, or a step too long) get ``rho = 1``: the estimate is then
    the size of the top coefficient, which rejects the step.
    """
    tiny = 1e-300
    with np.errstate(divide="ignore", invalid="ignore"):
        r_odd = np.sqrt(coeffs[3] / np.maximum(coeffs[1], tiny))
        r_even = np.sqrt(coeffs[2] / np.maximum(coeffs[0], tiny))
    rho = np.minimum(np.nan_to_num(np.maximum(r_odd, r_even), nan=1.0, posinf=1.0), 1.0)
    tail = np.maximum(coeffs[3], coeffs[2] * rho)
    e = float(h) * tail * rho ** (M + 1)
    scale = float(atol) + float(rtol) * np.abs(np.asarray(end, dtype=float))
    return float((e / scale).max())


def _integrate(method: ExpColl, fun, linear_part, y0, t0, t_end, precision_bits, rtol, atol, max_steps, stop, observe, blowup,
               engine=None) -> IntegrationResult:
    """:meth:`ExpColl.integrate` inside the working context of ``precision_bits``.

    The weights are those of the exact ``h mu_r``. The state is updated with compensated
    (TwoSum) sums in float types, so the rounding of ``y_n + increment`` does not accumulate
    over the steps.
    """
    # a multiprecision engine works in its own numbers (heyoka ``real``): the state, the scalars and the
    # tables are converted on the way in, the state and the time back for ``fun``, ``observe``, ``stop``
    numbers = None if engine is None else engine.numbers
    if numbers is None:
        y = to_working_array(y0, precision_bits)

        def scalar(v):
            return to_working(v, precision_bits)

        def export(v):
            return v

        export_scalar = export
    else:
        y = numbers.array(y0)
        scalar, export, export_scalar = numbers.scalar, numbers.export, numbers.export_scalar
    dtype = y.dtype
    M = method.node_count(precision_bits)
    K = method.sweep_limit(precision_bits)
    if numbers is None:
        A, legendre = _working_tables(M, precision_bits)  # (M+1, M) and (M, M)
    else:
        _, _, _, A_mp, legendre_mp = _nodes_tables(M, precision_bits + _GUARD)
        A, legendre = numbers.table(A_mp), numbers.table(legendre_mp)
    t = scalar(t0)
    t_end = scalar(t_end)
    rtol, atol = scalar(rtol), scalar(atol)
    one = scalar(1)
    f0 = fun(export(y))
    nfev = 1
    h = _first_step(method, y, f0, rtol, atol, scalar)
    steps = rejected = 0
    status = Status.MAX_STEPS
    y_lo = np.zeros_like(y)
    just_rejected = False
    previous_accept = None  # (h, err) of the last accepted step
    last_poly = None  # (h, increments at c_1..c_M, 1) of the last accepted step: the Picard start
    predict = True
    while steps + rejected < max_steps:
        if t >= t_end:
            status = Status.T_END
            break
        if t + h > t_end:
            h = t_end - t
        mu, *basis = linear_part(y)  # (B, R) and V (B, R, D), or P, Q (bi-orthonormal)
        P, Q = (basis[0], basis[0]) if len(basis) == 1 else basis
        if engine is None:
            W = _frozen_weights(M, precision_bits, h, mu, dtype)  # (B, R, M+1, M)
        else:
            W = engine.weights(M, h, mu)
        # split around y_n: y' = L (y - y_n) + g(y), g(y) = f(y) - L (y - y_n); no decay term, no cancellation
        base = np.broadcast_to(y, (M + 1,) + y.shape)
        stages = np.broadcast_to(y, (M,) + y.shape).copy()
        if last_poly is not None and predict:
            # start from the previous step's collocation polynomial continued into this step
            h_old, increments = last_poly
            ext = _continuation(M, float(h / h_old))
            ext = ext.astype(dtype) if dtype != object else ext.astype(object)
            guess = np.tensordot(ext, increments, axes=([1], [0]))
            if np.all(np.isfinite(np.asarray(guess, dtype=float))):
                stages = stages + guess
        ok = False
        previous = math.inf
        contraction = 0.0  # largest ratio of successive Picard changes above the noise level
        W_minus_A = W - A[None, None]  # (B, R, M+1, M)
        if engine is not None:
            sweep = engine.step(y, mu, P, Q, W_minus_A, A, h)
        iterate = None if engine is None else getattr(sweep, "iterate", None)
        if iterate is not None:  # a multiprecision engine runs the whole iteration, by the same rule
            ok, stages_new, end, end_incr, G, VG, contraction, count = iterate(
                stages, K, atol, rtol, lambda it, change, previous, contraction: _picard_verdict(
                    it, change, previous, contraction, method.fixed_step))
            nfev += count
            if ok:
                stages = stages_new
        for it in range(0 if iterate is not None else K):
            if engine is None:
                F = fun(stages)  # (M, B, D)
                VS = (Q[None] * (stages - y[None])[:, :, None, :]).sum(axis=-1)  # (M, B, R)
                G = F + (mu[None, :, :, None] * VS[..., None] * P[None]).sum(axis=2)  # g = f - L (y - y_n)
                VG = (Q[None] * G[:, :, None, :]).sum(axis=-1)  # (M, B, R)
                AG = np.tensordot(A, G, axes=([1], [0]))  # (M+1, B, D)
                corr = (W_minus_A * VG.transpose(1, 2, 0)[:, :, None, :]).sum(axis=-1)  # (B, R, M+1)
                incr = h * (AG + (corr.transpose(2, 0, 1)[..., None] * P[None]).sum(axis=2))
            else:
                incr, G, VG = sweep(stages)
            nfev += 1
            new = base + incr
            if not np.all(np.isfinite(np.asarray(new, dtype=float))):
                break
            change = float((np.abs(new[:M] - stages) / (atol + rtol * np.abs(new[:M]))).max())
            stages = new[:M]
            ok, abandon, contraction = _picard_verdict(it, change, previous, contraction, method.fixed_step)
            if ok:
                end = new[M]
                end_incr = incr[M]
                break
            if abandon:
                break
            previous = change
        if not ok:
            predict = False  # the continued polynomial may be what failed: start the retry from y_n
            if method.fixed_step:
                raise ArithmeticError(f"Picard iteration did not converge at the fixed step {float(h):.3g}")
            rejected += 1
            h = h * scalar(min(0.5, max(0.1, _PICARD_TARGET / contraction)) if contraction > 0 else 0.25)
            if t + h == t:
                status = Status.STEP_TOO_SMALL
                break
            continue
        # g as the end point integrates it: stiff components damped by (1 - e^-z)/z
        z = np.asarray(h * mu, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            damp = np.where(z > 0, -np.expm1(-z) / z, 1.0)  # (B, R)
        damp = damp.astype(dtype) if dtype != object else np.vectorize(lambda v: gmpy2.mpfr(v, precision_bits), otypes=[object])(damp)
        # in the working type: the top coefficients are far below |g| and must not drown in float64 rounding
        G_eff = G + ((VG * (damp - one)[None])[..., None] * P[None]).sum(axis=2)
        coeffs = np.abs(np.asarray(np.tensordot(legendre[max(0, M - 4):], G_eff, axes=([1], [0])), dtype=float))
        if M < 4:  # too few coefficients to see a decay: no decay assumed (conservative)
            coeffs = np.concatenate([np.zeros((4 - M,) + coeffs.shape[1:]), coeffs])
        err = _spectral_error(coeffs, h, atol, rtol, end, M)
        if err > 1 and not method.fixed_step:
            rejected += 1
            h = h * scalar(max(0.1, (_ERR_TARGET / err) ** (1.0 / (2 * M + 1))))
            just_rejected = True
            continue
        t = t + h
        last_poly = (h, np.concatenate([stages - y[None], end_incr[None]]))
        predict = True
        if dtype != object:  # compensated (TwoSum) update: the state carries y + y_lo
            d = end_incr + y_lo
            s = y + d
            bb = s - y
            y_lo = (y - (s - bb)) + (d - bb)  # TwoSum
            y = s
        else:
            y = end
        steps += 1
        if observe is not None or stop is not None:
            t_out, y_out = export_scalar(t), export(y)
        if observe is not None:
            observe(t_out, y_out)
        if blowup is not None and float(np.abs(y).max()) > blowup:
            status = Status.BLOWUP
            break
        if stop is not None and stop(t_out, y_out):
            status = Status.STOPPED
            break
        if not method.fixed_step:
            k = 1.0 / (2 * M + 1)
            e = max(err, 1e-4)
            fac = min(_MAX_GROWTH, max(0.2, (_ERR_TARGET / e) ** k))
            if previous_accept is not None:
                # predictive (Gustafsson) controller: where the error per step is trending up at
                # a given h (the flow speeding up), continue the trend of the step sizes instead
                # of growing into a rejection
                h_prev, e_prev = previous_accept
                fac = min(fac, max(0.2, float(h / h_prev) * (e_prev / e) ** k * (_ERR_TARGET / e) ** k))
            if just_rejected:
                fac = min(fac, 1.0)  # the estimate just overshot: do not grow straight back into it
            just_rejected = False
            previous_accept = (h, e)
            h = h * scalar(fac)
    return IntegrationResult(export_scalar(t), export(y), status, steps, rejected, nfev, {"nodes": M})


def _picard_verdict(it: int, change: float, previous: float, contraction: float, fixed_step: bool):
    """The Picard iteration's rule after sweep ``it`` (from 0) changed the stages by ``change`` (in units
    of the tolerance; ``previous``: the sweep before's).

    Converged: the change is far below the tolerance (``_PICARD_TOL``), or stagnates at the rounding level
    (at most 0.1 and at least half the previous one). Abandoned (the step is then shortened): from the
    third sweep on, changes above 0.1 shrinking by less than a factor 0.8 (``contraction``, the largest
    ratio of successive changes above 0.1), unless the step is fixed.

    Returns:
        ``(converged, abandon, contraction)``.
    """
    if change <= _PICARD_TOL or (it >= 1 and change <= 1e-1 and change >= 0.5 * previous):
        return True, False, contraction
    if it >= 1 and change > 1e-1:
        contraction = max(contraction, change / previous)
        if it >= 2 and contraction > 0.8 and not fixed_step:
            return False, True, contraction  # not contracting: give up early and shorten the step
    return False, False, contraction


_MAX_GROWTH = 2.0
_ERR_TARGET = 0.2  # steps aim at this fraction of the tolerance (the estimate scales like h^(2M+1))
_PICARD_TARGET = 0.2
_PICARD_TOL = 1e-2  # stages are converged when a sweep changes them by this fraction of the tolerance
