r"""Exact oracle for the clean flows of the theory row (note 00 §8): B = C = 1, training set {e_0}.

Derivation
----------
With B = C = all-ones, the single training sequence ``e_0`` (N = 1, label ``y* > 0``) meets
only ``K_{H-1} = S_{H-1}``, where ``S_m = sum_i a_i^m``. The loss is ``L = (S_{H-1} - y*)^2``
and gradient flow reads

    da_i/dt = -dL/da_i = phi(t) a_i^{H-2},       phi = -2 (H-1) (S_{H-1} - y*),

the same scalar factor ``phi`` for every entry.

* ``H > 3``, ``p = H - 3 >= 1``:  ``d(a_i^{-p})/dt = -p a_i^{-p-1} phi a_i^{H-2} = -p phi``,
  the same for every i. Hence ``a_i^{-p}(t) = x_i - s(t)`` with ``x_i = a_i(0)^{-p}``,
  ``s(0) = 0`` and ``ds/dt = p phi(s)``, where
  ``phi(s) = -2(H-1) (F(s))`` and ``F(s) = sum_i (x_i - s)^{-q} - y*``, ``q = (H-1)/p``.
  On ``s < min_i x_i``, F is increasing and convex, ``F(-inf) = -y* < 0`` and
  ``F -> +inf`` at ``min_i x_i``, so it has exactly one root ``s*``; ``ds/dt = -2p(H-1) F(s)``
  is a scalar autonomous ODE whose only equilibrium ``s*`` is attracting, so
  ``s(t) -> s*`` monotonically and ``a_i(inf) = (x_i - s*)^{-1/p}``.
* ``H = 3``: ``d(log a_i)/dt = phi`` for every i, so ratios are conserved,
  ``a_i(t) = a_i(0) e^{sigma(t)}``; the limit ``S_2 = y*`` gives
  ``a_i(inf) = a_i(0) sqrt(y* / S_2(0))`` and, with ``z = S_2 = S_2(0) e^{2 sigma}``,
  ``dz/dt = -8 z (z - y*)``, which integrates in closed form.

Numerics
--------
The root is computed in the variable ``w = min_i x_i - s > 0`` (the top entry's
``a^{-p}``), with ``d_i = x_i - min_j x_j >= 0``:
``G(w) = sum_i (d_i + w)^{-q} - y*`` is decreasing and convex on ``w > 0`` with the bracket
``[y*^{-1/q}, (D/y*)^{1/q}]`` (the ``d_i = 0`` term alone equals ``y*`` at the left end, every
term is ``<= y*/D`` at the right end). Newton's method started at the left end increases
monotonically to the root (convexity); a bisection safeguard keeps it inside the bracket,
and the result is certified by a sign change of G across a relative interval of
``2^-(wp - cert)`` around it.

Guard bits. In the paper's settings ``x_i ~ 1e12 .. 6e13`` while at the limit
``w = x_1 - s* ~ 1``: forming ``d_i`` (or ``x_i - s*``) cancels about
``log2(max_i x_i / min_i w_i)`` bits (~40–46 bits, 12–14 digits). Since
``min_i w_i >= y*^{-1/q}`` at the root, the loss is at most
``log2(max_i x_i) + log2(y*)/q`` bits; the working precision is ``precision_bits`` plus that,
plus about ``2 log2(D) + 32`` bits for the certificate and the sums. The perturbation of ``w*``
by the rounding of the ``d_i`` is at most their largest error (``|dw*/dd_i|`` sum to 1), so
before the final rounding to ``precision_bits`` the entries carry a relative error of about
``2^-(precision_bits + 20)`` with respect to the exact limit of the flow started from the exact
(binary) ``a0``; the returned values are that limit to about one unit in the last place.

The convergence time is ``t = int_{w_0}^{w_eta} dw / (2p(H-1) (S(w) - y*))`` with
``w_0 = min_i x_i`` and ``S(w_eta) = y* -+ eta``, ``eta = sqrt(threshold)``. The integrand
grows like ``1/(w - w*)`` toward the limit, so the interval is split geometrically toward
``w*``: with ``w = w* + sign * e^v`` the integral is taken over ``v`` in pieces of length 2
(ratio ``e^2`` in ``w - w*``), where the integrand is smooth. Evaluating ``S(w) - y*``
near ``w*`` cancels ``log2(y*/eta)`` bits, added to the guard bits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import gmpy2
import mpmath

from ssmpoison.theory._validation import require_finite_sequence, require_int, require_real

__all__ = [
    "DEFAULT_PRECISION_BITS",
    "ConservationProof",
    "conserved_quantities_proof",
    "clean_limit",
    "clean_convergence_time",
]

#: Default precision (bits) of the values returned by the oracle.
DEFAULT_PRECISION_BITS = 200

_MARGIN_BITS = 24  # extra working bits on top of the cancellation estimate
_PIECE = 2  # length of the quadrature pieces in v = log|w - w*| (ratio e^2 in w - w*)


# ---------------------------------------------------------------------------------------
# Symbolic proof
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConservationProof:
    """Result of :func:`conserved_quantities_proof`; truthy when every identity holds.

    Attributes:
        horizon, state_dim: H and D.
        holds: all identities below simplify to exactly 0.
        loss: ``(S_{H-1} - y)^2`` in the positive symbols ``a_0..a_{D-1}`` and label ``y``.
        rhs: the flow ``-dL/da_i`` (from ``sympy.diff`` of the loss).
        phi: the shared factor ``rhs_i / a_i^{H-2}`` (read off ``rhs_0``).
        phi_residuals: ``rhs_i / a_i^{H-2} - phi`` (0: phi is shared),
            ``phi + 2(H-1)(S_{H-1} - y)`` (0: its closed form) and, for H > 3,
            ``phi(s) + 2(H-1)(sum_i w_i^{-(H-1)/p} - y)`` with ``w_i = x_i - s`` (0: phi in
            terms of s), all simplified.
        conserved: ``a_i^{-p} - a_j^{-p}`` for ``i < j`` (``log a_i - log a_j`` when H = 3).
        conserved_rates: their time derivatives along the flow, simplified (all 0).
        s_rate_residual: ``ds/dt - p phi`` with ``s = a_0(0)^{-p} - a_0^{-p}`` (for H = 3,
            ``d sigma/dt - phi`` with ``sigma = log(a_0 / a_0(0))``), simplified (0).
        phi_of_s: phi as a function of ``s`` and ``x_i = a_i(0)^{-p}`` (of ``sigma`` and
            ``x_i = a_i(0)`` when H = 3).
        reduction_residuals: ``d a_i(s)/dt - rhs_i(a(s))`` for the reconstruction
            ``a_i(s) = (x_i - s)^{-1/p}`` driven by ``ds/dt = p phi(s)`` (for H = 3,
            ``a_i = x_i e^sigma`` with ``d sigma/dt = phi``), simplified (all 0).
    """

    horizon: int
    state_dim: int
    holds: bool
    loss: sympy.Expr
    rhs: tuple
    phi: sympy.Expr
    phi_residuals: tuple
    conserved: tuple
    conserved_rates: tuple
    s_rate_residual: sympy.Expr
    phi_of_s: sympy.Expr
    reduction_residuals: tuple

    def __bool__(self) -> bool:
        return self.holds


def conserved_quantities_proof(horizon: int, state_dim: int) -> ConservationProof:
    """Prove with SymPy, for given H >= 3 and D >= 2, the conservation laws of the clean flow.

    Builds the loss ``(sum_i a_i^{H-1} - y)^2`` with positive symbols, the flow by
    differentiating it, and simplifies to exactly 0: that the flow is ``phi a_i^{H-2}`` with a
    shared ``phi = -2(H-1)(S_{H-1} - y)``; that ``d/dt (a_i^{-p} - a_j^{-p}) = 0``
    (``d/dt log(a_i/a_j) = 0`` for H = 3); that ``ds/dt = p phi``; and that
    ``a_i(s) = (x_i - s)^{-1/p}`` with ``ds/dt = p phi(s)`` solves the flow, where
    ``phi(s) = -2(H-1)(sum_i (x_i - s)^{-(H-1)/p} - y)``.
    """
    import sympy  # only the proof needs SymPy; the oracle's numbers do not

    H = require_int("horizon", horizon, minimum=3)
    D = require_int("state_dim", state_dim, minimum=2)
    a = sympy.symbols(f"a0:{D}", positive=True)
    y = sympy.Symbol("y", positive=True)
    S = sum(ai ** (H - 1) for ai in a)
    loss = (S - y) ** 2
    rhs = tuple(-sympy.diff(loss, ai) for ai in a)

    def rate(expr):
        """Time derivative of ``expr(a)`` along the flow, simplified."""
        return sympy.simplify(sum(sympy.diff(expr, ai) * r for ai, r in zip(a, rhs)))

    phi = sympy.simplify(rhs[0] / a[0] ** (H - 2))
    phi_residuals = tuple(sympy.simplify(r / ai ** (H - 2) - phi) for ai, r in zip(a, rhs)) + (
        sympy.simplify(phi + 2 * (H - 1) * (S - y)),
    )

    pairs = [(i, j) for i in range(D) for j in range(i + 1, D)]
    x = sympy.symbols(f"x0:{D}", positive=True)  # x_i = a_i(0)^{-p}  (a_i(0) when H = 3)
    if H > 3:
        p = H - 3
        conserved = tuple(a[i] ** -p - a[j] ** -p for i, j in pairs)
        s_rate_residual = sympy.simplify(rate(x[0] - a[0] ** -p) - p * phi)
        # Reconstruction a_i(s) = (x_i - s)^{-1/p}; after differentiating in s, write
        # x_i = w_i + s with w_i = a_i^{-p} > 0 so that SymPy may combine the powers.
        s = sympy.Symbol("s", real=True)
        w = sympy.symbols(f"w0:{D}", positive=True)
        a_of_s = [(xi - s) ** sympy.Rational(-1, p) for xi in x]
        on_w = {xi: wi + s for xi, wi in zip(x, w)}
        phi_of_s = phi.subs(dict(zip(a, a_of_s)), simultaneous=True)
        phi_on_w = phi_of_s.subs(on_w, simultaneous=True)
        phi_residuals += (
            sympy.simplify(phi_on_w + 2 * (H - 1) * (sum(wi ** sympy.Rational(-(H - 1), p) for wi in w) - y)),
        )
        reduction_residuals = tuple(
            sympy.simplify(
                (sympy.diff(ai_s, s) * p * phi_of_s - r.subs(dict(zip(a, a_of_s)), simultaneous=True)).subs(
                    on_w, simultaneous=True
                )
            )
            for ai_s, r in zip(a_of_s, rhs)
        )
    else:
        conserved = tuple(sympy.log(a[i]) - sympy.log(a[j]) for i, j in pairs)
        s_rate_residual = sympy.simplify(rate(sympy.log(a[0]) - sympy.log(x[0])) - phi)
        sigma = sympy.Symbol("sigma", real=True)
        a_of_s = [xi * sympy.exp(sigma) for xi in x]
        phi_of_s = phi.subs(dict(zip(a, a_of_s)), simultaneous=True)
        reduction_residuals = tuple(
            sympy.simplify(sympy.diff(ai_s, sigma) * phi_of_s - r.subs(dict(zip(a, a_of_s)), simultaneous=True))
            for ai_s, r in zip(a_of_s, rhs)
        )
    conserved_rates = tuple(rate(q) for q in conserved)

    identities = phi_residuals + conserved_rates + (s_rate_residual,) + reduction_residuals
    return ConservationProof(
        horizon=H,
        state_dim=D,
        holds=all(e == 0 for e in identities),
        loss=loss,
        rhs=rhs,
        phi=phi,
        phi_residuals=phi_residuals,
        conserved=conserved,
        conserved_rates=conserved_rates,
        s_rate_residual=s_rate_residual,
        phi_of_s=phi_of_s,
        reduction_residuals=reduction_residuals,
    )


# ---------------------------------------------------------------------------------------
# Numeric oracle
# ---------------------------------------------------------------------------------------


def _positive_entries(a0) -> list:
    """Validate ``a0`` (positive finite reals); return the entries as exact-as-possible numbers.

    ``int``/``Fraction``/floats are kept exactly; ``mpmath.mpf`` and ``gmpy2.mpfr`` entries are
    kept as given (the validation helpers would round them to float).
    """
    try:
        items = list(a0)
    except TypeError:
        raise ValueError(f"a0 must be a sequence of numbers, got {a0!r}") from None
    checked = require_finite_sequence("a0", items)
    if not checked:
        raise ValueError("a0 must have at least one entry")
    for k, v in enumerate(checked):
        if not v > 0:
            raise ValueError(f"a0[{k}] must be > 0 (the a^-(H-3) reduction needs positive entries), got {v}")
    return [orig if isinstance(orig, (mpmath.mpf, gmpy2.mpfr)) else v for orig, v in zip(items, checked)]


def _mpf(value) -> mpmath.mpf:
    """Convert to ``mpmath.mpf`` at the current working precision (exact for floats and ints)."""
    if isinstance(value, Fraction):
        return mpmath.mpf(value.numerator) / value.denominator
    return mpmath.mpf(value)


class _Reduction:
    """The reduced clean flow for ``H > 3`` at a working precision (used inside ``workprec``).

    ``x_i = a_i(0)^{-p}``, ``d_i = x_i - min x``, ``w = min x - s``; ``S(w) = sum (d_i + w)^{-q}``.
    """

    def __init__(self, a0: list, horizon: int, wp: int):
        self.wp = wp
        self.p = horizon - 3
        self.H = horizon
        x = [_mpf(v) ** -self.p for v in a0]
        self.x_min = min(x)
        self.d = [xi - self.x_min for xi in x]
        self.cert_bits = _certificate_bits(len(a0))

    def entries(self, w) -> list:
        """``a_i = (d_i + w)^{-1/p}``."""
        return [1 / mpmath.root(di + w, self.p) for di in self.d]

    def S(self, w):
        """``S_{H-1} = sum_i (d_i + w)^{-(H-1)/p}``."""
        return mpmath.fsum(ai ** (self.H - 1) for ai in self.entries(w))

    def S_and_dS(self, w):
        """``(S(w), dS/dw)`` with ``dS/dw = -(H-1)/p sum_i (d_i + w)^{-(H-1)/p - 1}``, the entries computed once."""
        terms = [ai ** (self.H - 1) for ai in self.entries(w)]
        derivative = -mpmath.fsum(t / (di + w) for t, di in zip(terms, self.d)) * (mpmath.mpf(self.H - 1) / self.p)
        return mpmath.fsum(terms), derivative

    def _float_start(self, target, lo, hi):
        """A start for :meth:`solve`'s Newton iteration: the root of ``S(w) = target`` in float64 (Newton from
        ``lo``, where ``S`` is convex and decreasing, so the iterates rise monotonically to the root), or ``lo``
        where float64 cannot represent the problem. The start only saves iterations: the root is then
        refined and certified at the working precision."""
        try:
            d = [float(di) for di in self.d]
            y, w, q = float(target), float(lo), (self.H - 1) / self.p
            for _ in range(100):
                terms = [(di + w) ** -q for di in d]
                slope = -q * sum(t / (di + w) for t, di in zip(terms, d))
                step = (sum(terms) - y) / slope
                w_next = w - step
                if not (math.isfinite(w_next) and w_next > 0):
                    return lo
                w = w_next
                if abs(step) <= 1e-14 * w:
                    break
        except (OverflowError, ZeroDivisionError):
            return lo
        start = mpmath.mpf(w)
        return start if lo < start < hi else lo

    def solve(self, target) -> mpmath.mpf:
        """The unique ``w > 0`` with ``S(w) = target > 0``: safeguarded Newton, then certified."""
        q = mpmath.mpf(self.H - 1) / self.p
        lo = target ** (-1 / q)
        hi = (len(self.d) / target) ** (1 / q)
        w = self._float_start(target, lo, hi)
        tol = mpmath.ldexp(1, 4 - self.wp)
        for _ in range(10 * self.wp):
            S, dS = self.S_and_dS(w)
            g = S - target
            if g == 0:
                return w
            if g > 0:
                lo = w
            else:
                hi = w
            cand = w - g / dS
            if not lo < cand < hi:
                cand = (lo + hi) / 2
            if abs(cand - w) <= tol * w or hi - lo <= tol * w:
                w = cand
                break
            w = cand
        else:
            raise RuntimeError(f"root finder did not converge for target {mpmath.nstr(target, 10)}")
        delta = mpmath.ldexp(w, self.cert_bits - self.wp)
        if not (self.S(w - delta) > target > self.S(w + delta)):
            raise RuntimeError(f"root for target {mpmath.nstr(target, 10)} failed its sign-change certificate")
        return w


def _certificate_bits(state_dim: int) -> int:
    """Bits given up by the root's sign-change certificate: G's rounding error grows like D^2."""
    return 2 * max(state_dim, 2).bit_length() + 8


def _working_precision(a0: list, horizon: int, label, precision_bits: int, extra_bits: int = 0) -> int:
    """``precision_bits`` + cancellation estimate ``log2(max x) + log2(y*)/q`` + margins (see module doc)."""
    if horizon == 3:
        return precision_bits + _MARGIN_BITS + extra_bits
    p = horizon - 3
    with mpmath.workprec(64):
        smallest = min(_mpf(v) for v in a0)
        lost = -p * mpmath.log(smallest, 2) + mpmath.log(_mpf(label), 2) * p / (horizon - 1)
    guard = max(0, int(mpmath.ceil(lost)))
    return precision_bits + guard + _certificate_bits(len(a0)) + _MARGIN_BITS + extra_bits


def clean_limit(a0, horizon: int, label=1, precision_bits: int = DEFAULT_PRECISION_BITS) -> list:
    """Limit ``a(inf)`` of the clean flow from ``a(0) = a0`` (B = C = 1, training set {e_0}).

    Arguments:
        a0: initial diagonal, positive finite entries (floats, ints, Fractions, mpf, mpfr).
        horizon: H >= 3.
        label: the label ``y* > 0`` of ``e_0`` (the theory row uses ``K*_{H-1} = 1``).
        precision_bits: precision of the result; the computation runs with the guard bits
            described in the module docstring, so every returned entry is the exact limit
            (for the exact binary ``a0``) correct to about one unit in its last place.

    Returns:
        list of ``mpmath.mpf`` rounded to ``precision_bits`` bits (arithmetic on them follows
        ``mpmath.mp.prec``; raise it to keep their precision).
    """
    entries = _positive_entries(a0)
    H = require_int("horizon", horizon, minimum=3)
    y = require_real("label", label, positive=True)
    precision_bits = require_int("precision_bits", precision_bits, minimum=24)
    wp = _working_precision(entries, H, y, precision_bits)
    with mpmath.workprec(wp):
        if H == 3:
            a = [_mpf(v) for v in entries]
            factor = mpmath.sqrt(_mpf(y) / mpmath.fsum(ai * ai for ai in a))
            limit = [ai * factor for ai in a]
        else:
            red = _Reduction(entries, H, wp)
            limit = red.entries(red.solve(_mpf(y)))
    with mpmath.workprec(precision_bits):
        return [+v for v in limit]


def clean_convergence_time(
    a0, horizon: int, loss_threshold, label=1, precision_bits: int = DEFAULT_PRECISION_BITS
) -> mpmath.mpf:
    """Time at which the clean flow's loss ``(S_{H-1} - y*)^2`` falls to ``loss_threshold``.

    Exact reduction (module docstring): for H = 3 the closed form
    ``t = ln(|z_0 - y*| z_eta / (z_0 eta)) / (8 y*)`` with ``z = S_2``, ``eta = sqrt(threshold)``
    and ``z_eta = y* -+ eta``; for H > 3 the quadrature of ``dt = ds / (p phi(s))`` split
    geometrically toward the limit. Returns 0 when the initial loss is already at or below
    the threshold. The loss decreases monotonically along the flow, so the time is unique.

    Returns:
        ``mpmath.mpf`` rounded to ``precision_bits`` bits.

    Raises:
        RuntimeError: if the quadrature's error estimate exceeds ``2^-(precision_bits/2)``
            relative (it is far smaller in practice).
    """
    entries = _positive_entries(a0)
    H = require_int("horizon", horizon, minimum=3)
    threshold = require_real("loss_threshold", loss_threshold, positive=True)
    y = require_real("label", label, positive=True)
    precision_bits = require_int("precision_bits", precision_bits, minimum=24)
    with mpmath.workprec(64):
        eta_bits = max(0, int(mpmath.ceil(mpmath.log(_mpf(y) / mpmath.sqrt(_mpf(threshold)), 2))))
    wp = _working_precision(entries, H, y, precision_bits, extra_bits=eta_bits)
    with mpmath.workprec(wp):
        y_mp = _mpf(y)
        eta = mpmath.sqrt(_mpf(threshold))
        a = [_mpf(v) for v in entries]
        S0 = mpmath.fsum(ai ** (H - 1) for ai in a)
        if abs(S0 - y_mp) <= eta:
            t = mpmath.mpf(0)
        else:
            z_eta = y_mp - eta if S0 < y_mp else y_mp + eta
            if H == 3:
                t = mpmath.log(abs(S0 - y_mp) * z_eta / (S0 * eta)) / (8 * y_mp)
            else:
                t = _reduced_time(_Reduction(entries, H, wp), y_mp, z_eta, precision_bits)
    with mpmath.workprec(precision_bits):
        return +t


def _reduced_time(red: _Reduction, y, z_eta, precision_bits: int) -> mpmath.mpf:
    """``int dw / (2p(H-1)(S(w) - y))`` from ``w_0 = min x`` to ``S(w) = z_eta`` (H > 3).

    Substituting ``w = w* + sign e^v`` (sign of ``w_0 - w*``), ``S(w) - y`` has the sign
    ``-sign`` (S decreases in w), so ``t = int_{v_eta}^{v_0} e^v / (2p(H-1) |S(w) - y|) dv``.
    """
    w_star = red.solve(y)
    w_eta = red.solve(z_eta)
    w0 = red.x_min
    sign = 1 if w0 > w_star else -1
    v0 = mpmath.log(abs(w0 - w_star))
    v_eta = mpmath.log(abs(w_eta - w_star))
    rate = 2 * red.p * (red.H - 1)

    def integrand(v):
        step = mpmath.exp(v)
        return step / (rate * abs(red.S(w_star + sign * step) - y))

    pieces = max(1, int(mpmath.ceil((v0 - v_eta) / _PIECE)))
    nodes = mpmath.linspace(v_eta, v0, pieces + 1)
    t, err = mpmath.quad(integrand, nodes, method="gauss-legendre", error=True)
    if err > abs(t) * mpmath.ldexp(1, -(precision_bits // 2)):
        raise RuntimeError(f"quadrature error estimate {mpmath.nstr(err, 3)} too large for t = {mpmath.nstr(t, 10)}")
    return t
