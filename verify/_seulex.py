"""Extrapolated linearly implicit Euler (SEULEX) for stiff autonomous ODEs, in any precision.

The method (Deuflhard 1985; Hairer & Wanner, *Solving ODEs II*, §IV.9)
----------------------------------------------------------------------
For ``y' = f(y)`` and a macro-step ``y0 -> y(t + h)``, freeze the Jacobian
``J = f'(y0)`` and, for a step-number sequence ``n_1 < n_2 < ...``, take ``n_j``
linearly implicit Euler sub-steps of size ``h_j = h / n_j``::

    (I - h_j J) Δ_i = h_j f(y_i),    y_{i+1} = y_i + Δ_i,    i = 0 .. n_j - 1,

giving ``T_{j,1} = y_{n_j}``. For any fixed matrix ``J`` this is a smooth one-step
method of order 1 whose error has an asymptotic expansion in powers of ``h_j``
(not ``h_j^2``), so the Aitken–Neville scheme in powers of ``h``::

    T_{j,k+1} = T_{j,k} + (T_{j,k} - T_{j-1,k}) / (n_j / n_{j-k} - 1)

eliminates one term per column: ``T_{j,k}`` has order ``k`` and the diagonal
``T_{k,k}`` is the order-``k`` result. Linearly implicit Euler is L-stable and
the extrapolated values inherit good stability (``A(α)``-stable with ``α`` close
to 90°), which makes the scheme suitable for stiff problems at any order.

Error and step/order control (Hairer & Wanner, §II.9 and §IV.9)
---------------------------------------------------------------
``err_k = ‖T_{k,k} - T_{k,k-1}‖`` estimates the local error of the order-``k-1``
value, ``O(h^k)``, in the scaled **max norm**::

    ‖e‖ = max_i |e_i| / (atol + rtol · max(|y0_i|, |y1_i|)),

where the maximum runs over every component *and over all leading batch axes*
(one shared step size for a batch of independent systems). The optimal step for
column ``k`` is ``H_k = h · safety · err_k^{-1/k}`` (clamped to
``[min_factor, max_factor] · h``); with the work ``A_k`` of computing ``T_{k,k}``
(one Jacobian, ``n_i`` right-hand sides and solves and one factorisation per
column), the order is chosen to minimise the work per unit step ``W_k = A_k / H_k``.
For a target order ``k`` the step is accepted in the first column of the window
``k-1, k, k+1`` whose estimate is ``≤ 1``; it is rejected early when convergence
within the window is not to be expected: ``err_{k+1}`` is predicted from the
observed contraction of the last two estimates (or, without one, from the
Hairer–Wanner heuristic ``err_{i+1} ≈ err_i n_1 / n_{i+1}``, i.e. reject when
``err_{k-1} > n_k n_{k+1} / n_1^2`` or ``err_k > n_{k+1} / n_1``). After an
acceptance in column ``j`` the next target is ``j-1`` if
``W_{j-1} < order_decrease · W_j``, ``j+1`` if ``W_j < order_increase · W_{j-1}``,
and ``j`` otherwise (``H_{j+1} ≈ H_j A_{j+1} / A_j``). A step whose columns
contain non-finite values is rejected and retried with half the step size;
after a rejection neither the order nor the step size may increase.

Stiff components at tight tolerances (``sequence``, ``filter_error``)
--------------------------------------------------------------------
For a stiff component driven by slow forcing (``σ' = -λ σ + g(t)``) the start of
every Euler column is off the *discrete* slow manifold by ``O(h_j g'/λ)``. The
resulting transient ``∝ (1 + h_j λ)^{-n_j}`` is a power series in ``h_j`` only
while ``h_j |λ| < 1``; columns with ``n_j < h|λ|`` leave a residue of size
``~g'/λ^2`` in the stiff component that does not shrink with ``h`` and only slowly
with the column. Below ~1e-20 on the SSM flows this residue dominates the raw
estimate and the step size collapses (the controller shrinks ``h``, which does not
help). Two measures, both on by default for arbitrary precision:

* the step-number sequence ``"stiff"`` = 6, 8, 12, 16, … drops the columns with
  one to four sub-steps, whose transients are the large ones (``n_j ≥ 6`` makes
  ``(1 + h_j|λ|)^{-n_j}`` tiny once ``h|λ| ≫ 6``); the doubling growth keeps the
  weights of the first columns small at high order;
* the error estimate is filtered before the norm is taken, because a residue in a
  strongly damped component does not propagate:

  - ``"propagated"`` (default): ``(I - h J/m)^{-m} (T_{j,j} - T_{j,j-1})`` with
    ``m = min(n_j, 8)``, the error carried through one step of the linearised
    flow by ``m`` implicit Euler steps (the matrices are those of the columns with
    ``n = m``, already factorised); stiff components (``Re hλ ≪ -1``) are damped
    by ``≈ e^{hλ}`` or ``(m/|hλ|)^m``, slow ones are unchanged;
  - ``"implicit"``: Shampine's filter ``(I - h J)^{-1} (…)`` (as in RADAU5);
  - ``"none"``: the raw estimate of Hairer & Wanner.

  Like Shampine's, the filters assume no mode grows with ``hλ > 1`` (its error
  would be damped rather than amplified); use ``"none"`` for such problems. The
  output itself may carry a stiff-component error above the tolerance (it decays
  in the following steps).

On the stiff poisoned SSM flows at high precision, Hairer's sequence with the raw
estimate stalls at steps ``h ~ 1/|λ|``; the propagated filter removes the stall and the
``"stiff"`` sequence cuts the steps further (``benchmarks/seulex_poisoned.py`` measures it).

Arithmetic
----------
The working precision is the explicit argument ``precision_bits`` of
:meth:`Seulex.integrate` (:mod:`ssmpoison.verify._numbers`): 53 bits compute in ``float64``,
64 bits in ``numpy.longdouble``, anything else in ``object`` arrays of ``gmpy2.mpfr``
at that precision (the integrator enters a gmpy2 context of that precision itself; the
caller's context is left alone). All constants (extrapolation coefficients, tolerances,
times) are converted to the working type with
:func:`ssmpoison.verify._numbers.to_working`, so nothing is rounded to float64 on the
way. Only the control logic (error ratios, step factors) runs in Python floats, which
does not affect the accuracy of the solution.

The integrator is used through the interface of :mod:`ssmpoison.verify._integrator`: a
:class:`Seulex` value holds the control parameters, :meth:`Seulex.integrate` takes the
system, the tolerances and the precision.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from numbers import Real
from typing import Callable, ClassVar

import numpy as np

from ssmpoison.verify._integrator import IntegrationResult, check_tolerances, require_stiff_part
from ssmpoison.verify._numbers import abs_max, all_finite, to_working, to_working_array, working_context, working_dtype
from ssmpoison.verify._status import Status

__all__ = [
    "Seulex",
    "extrapolated_step",
    "step_numbers",
    "default_max_order",
]

SEQUENCES = ("hairer", "harmonic", "stiff")
FILTERS = ("propagated", "implicit", "none")
PROPAGATION_STEPS = 8  # Euler sub-steps of the "propagated" error filter


def default_max_order(precision_bits: int) -> int:
    """Default highest extrapolation column for a working precision of ``precision_bits`` mantissa bits.

    High precision needs high order: ``precision_bits // 5`` columns, at least 12 and at most 40
    (12 for float64 and x86 longdouble, 25 at 128 bits, 40 from 200 bits). The
    work-based order control only climbs as high as pays off.
    """
    return max(12, min(40, precision_bits // 5))


def step_numbers(sequence, count: int) -> list[int]:
    """The first ``count`` step numbers of a sequence.

    ``"hairer"``: 1,2,3,4,6,8,12,16,...; ``"harmonic"``: 1,2,3,4,5,...; ``"stiff"``:
    6,8,12,16,24,... (Hairer's sequence from 6); a tuple of at least two increasing
    positive ints is used as given and continued by ``n_j = max(2 n_{j-2}, n_{j-1} + 1)``.
    """
    if sequence == "harmonic":
        return list(range(1, count + 1))
    if isinstance(sequence, str):
        sequence = {"hairer": (1, 2, 3, 4), "stiff": (6, 8)}.get(sequence, sequence)
    if not _valid_custom_sequence(sequence):
        raise ValueError(f"sequence: expected one of {SEQUENCES} or an increasing tuple of ints, got {sequence!r}")
    seq = list(sequence)
    while len(seq) < count:
        seq.append(max(2 * seq[-2], seq[-1] + 1))
    return seq[:count]


def _valid_custom_sequence(sequence) -> bool:
    return (
        isinstance(sequence, tuple)
        and len(sequence) >= 2
        and all(isinstance(n, int) and not isinstance(n, bool) for n in sequence)
        and sequence[0] >= 1
        and all(a < b for a, b in zip(sequence, sequence[1:]))
    )


# ----------------------------------------------------------------------------- the integrator value


@dataclass(frozen=True)
class Seulex:
    """The SEULEX integrator (module docstring): its control parameters, validated on construction.

    Implements :class:`ssmpoison.verify._integrator.Integrator`; the tolerances, the step budget
    and the working precision are arguments of :meth:`integrate`.

    Arguments:
        max_order: highest extrapolation column; ``None`` chooses :func:`default_max_order`
            of the working precision. At least 3.
        sequence: step-number sequence: ``"hairer"`` (1,2,3,4,6,8,12,...), ``"stiff"``
            (6,8,12,16,24,...), ``"harmonic"`` (1,2,3,4,...) or an increasing tuple of ints
            (continued like Hairer's, ``n_j = 2 n_{j-2}``). ``None`` picks ``"hairer"`` for
            float64 / longdouble and ``"stiff"`` for arbitrary precision. The harmonic sequence
            is cheapest per order but its extrapolation amplifies rounding errors by the
            Lebesgue constant ``~3.5^k``; the doubling sequences keep that constant near 200 at
            every order. Starting at ``n_1 = 6`` keeps the stiff-mode residue (module
            docstring) out of the tableau.
        initial_step: first step size; ``None`` picks ``0.01 ‖y0‖ / ‖f(y0)‖``.
        max_step: upper bound on the step size (``None``: unbounded).
        safety: factor on the predicted optimal step ``h err^{-1/k}``.
        min_factor, max_factor: bounds on the ratio of consecutive step sizes.
        order_decrease, order_increase: work-ratio thresholds of the order choice.
        filter_error: ``"propagated"`` (default), ``"implicit"`` or ``"none"``: how the error
            estimate is filtered before the norm is taken (module docstring).

    Raises:
        ValueError: a parameter out of range (the message names it).
    """

    name: ClassVar[str] = "seulex"

    max_order: int | None = None
    sequence: str | tuple | None = None
    initial_step: Real | None = None
    max_step: Real | None = None
    safety: float = 0.9
    min_factor: float = 0.02
    max_factor: float = 10.0
    order_decrease: float = 0.8
    order_increase: float = 0.9
    filter_error: str = "propagated"

    def __post_init__(self):
        def positive(x):
            return isinstance(x, Real) and not isinstance(x, bool) and math.isfinite(x) and x > 0

        if self.max_order is not None and not (
            isinstance(self.max_order, int) and not isinstance(self.max_order, bool) and 3 <= self.max_order <= 60
        ):
            raise ValueError(f"max_order must be None or an int in [3, 60], got {self.max_order!r}")
        if self.sequence is not None and self.sequence not in SEQUENCES and not _valid_custom_sequence(self.sequence):
            raise ValueError(f"sequence must be one of {SEQUENCES} or an increasing int tuple, got {self.sequence!r}")
        if self.initial_step is not None and not positive(self.initial_step):
            raise ValueError(f"initial_step must be None or a positive finite number, got {self.initial_step!r}")
        if self.max_step is not None and not positive(self.max_step):
            raise ValueError(f"max_step must be None or a positive finite number, got {self.max_step!r}")
        if not (positive(self.safety) and self.safety <= 1):
            raise ValueError(f"safety must be in (0, 1], got {self.safety!r}")
        if not (positive(self.min_factor) and self.min_factor < 1):
            raise ValueError(f"min_factor must be in (0, 1), got {self.min_factor!r}")
        if not (positive(self.max_factor) and self.max_factor > 1):
            raise ValueError(f"max_factor must be a finite number > 1, got {self.max_factor!r}")
        if not (positive(self.order_decrease) and self.order_decrease <= 1):
            raise ValueError(f"order_decrease must be in (0, 1], got {self.order_decrease!r}")
        if not (positive(self.order_increase) and self.order_increase <= 1):
            raise ValueError(f"order_increase must be in (0, 1], got {self.order_increase!r}")
        if self.filter_error not in FILTERS:
            raise ValueError(f"filter_error must be one of {FILTERS}, got {self.filter_error!r}")

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
    ) -> IntegrationResult:
        """Integrate the autonomous system ``y' = fun(y)`` from ``(t0, y0)`` towards ``t_end > t0``.

        Arguments:
            fun, y0, t0, t_end, precision_bits, max_steps, stop, observe, blowup: as in
                :meth:`ssmpoison.verify._integrator.Integrator.integrate`.
            rtol, atol: tolerances of the scaled max norm (module docstring).
            linear_part: not used (SEULEX solves with the full Jacobian).
            make_solver: ``make_solver(y) -> solve`` with ``solve(h, r) = (I - h J(y))^{-1} r``
                (e.g. :func:`ssmpoison.verify._linalg.diag_plus_lowrank_solver`); called once per
                accepted state and reused across rejected attempts.

        Returns:
            :class:`~ssmpoison.verify._integrator.IntegrationResult` with ``details``
            ``n_solves``, ``n_jacobians``, ``order_counts`` (accepted steps per order),
            ``final_order`` and ``final_step`` (the step size the controller proposed next).

        Raises:
            ValueError: bad tolerances, ``t_end <= t0`` or no ``make_solver``.
        """
        check_tolerances(rtol, atol, max_steps)
        make_solver = require_stiff_part(self.name, "make_solver", make_solver)
        with working_context(precision_bits):
            return _integrate(self, fun, make_solver, y0, t0, t_end, precision_bits, rtol, atol, max_steps, stop, observe, blowup)


# ----------------------------------------------------------------------------- the extrapolation tableau


class _Tableau:
    """Step numbers, Aitken–Neville coefficients and work model for columns ``1..kmax``."""

    def __init__(self, sequence, kmax: int, precision_bits: int):
        self.kmax = kmax
        self.n = [0] + step_numbers(sequence, kmax)  # 1-based: n[j]
        # coef[j][k] = 1 / (n_j / n_{j-k} - 1) = n_{j-k} / (n_j - n_{j-k}), exact, then cast.
        self.coef = [
            [None] + [to_working(Fraction(self.n[j - k], self.n[j] - self.n[j - k]), precision_bits) for k in range(1, j)]
            for j in range(kmax + 1)
        ]
        # Work of T_{j,j} in units of one f evaluation = one solve = one factorisation = one Jacobian:
        # A_1 = jac + n_1 (f + solve) + dec, A_j = A_{j-1} + (n_j - 1) f + n_j solves + dec.
        self.work = [0.0, 2.0 + 2 * self.n[1]]
        for j in range(2, kmax + 1):
            self.work.append(self.work[-1] + 2 * self.n[j])

    def euler(self, fun, solve, y, f0, h, j):
        """``T_{j,1}`` from ``n_j`` linearly implicit Euler sub-steps of size ``h / n_j``.

        Returns ``(T_{j,1}, f evaluations, solves)``.
        """
        nj = self.n[j]
        hj = h / nj
        z = y + solve(hj, hj * f0)
        for _ in range(nj - 1):
            z = z + solve(hj, hj * fun(z))
        return z, nj - 1, nj

    def extend(self, prev_row, t_j1, j):
        """Row ``j`` of the tableau, ``[T_{j,1}, ..., T_{j,j}]``, from row ``j-1``."""
        row = [t_j1]
        for k in range(1, j):
            row.append(row[k - 1] + (row[k - 1] - prev_row[k - 1]) * self.coef[j][k])
        return row


def extrapolated_step(fun, solve, y, h, k: int, sequence: str = "hairer", *, precision_bits: int):
    """One fixed macro-step of order ``k``: the diagonal value ``T_{k,k}`` for step ``h`` from ``y``.

    Used to measure the order of each column.

    Arguments:
        fun: ``fun(y) -> f(y)``.
        solve: ``solve(h, r) = (I - h J)^{-1} r`` for the Jacobian ``J`` at ``y`` (:mod:`ssmpoison.verify._linalg`).
        y: the state, in the working type of ``precision_bits``.
        h: the step, in the working type (see :func:`ssmpoison.verify._numbers.to_working`).
        k: the order (the number of columns).
        sequence: the step-number sequence (:func:`step_numbers`).
        precision_bits: the working precision.

    Returns:
        ``T_{k,k}``, in the working type.
    """
    y = np.asarray(y)
    with working_context(precision_bits):
        tab = _Tableau(sequence, k, precision_bits)
        f0 = fun(y)
        row = []
        for j in range(1, k + 1):
            row = tab.extend(row, tab.euler(fun, solve, y, f0, h, j)[0], j)
        return row[-1]


# ----------------------------------------------------------------------------- the integrator


def _integrate(method: Seulex, fun, make_solver, y0, t0, t_end, precision_bits, rtol, atol, max_steps, stop, observe, blowup) -> IntegrationResult:
    """:meth:`Seulex.integrate` inside the working context of ``precision_bits``."""
    y = to_working_array(y0, precision_bits)
    dtype = working_dtype(precision_bits)
    t, t_end = to_working(t0, precision_bits), to_working(t_end, precision_bits)
    if not t_end > t:
        raise ValueError("t_end must be greater than t0")
    kmax = method.max_order or default_max_order(precision_bits)
    sequence = method.sequence or ("stiff" if dtype == object else "hairer")
    tab = _Tableau(sequence, kmax, precision_bits)
    ctl = _Controller(method, tab, rtol, atol, precision_bits)
    h_max = None if method.max_step is None else to_working(method.max_step, precision_bits)

    counts = Counter()  # accepted steps per order
    stats = {"f": 1, "solve": 0, "jac": 0}
    f0 = fun(y)
    solve = None
    if method.initial_step is not None:
        h = to_working(method.initial_step, precision_bits)
    else:
        d0, d1 = ctl.norm(y, y, y), ctl.norm(f0, y, y)
        h = to_working(0.01 * d0 / d1 if d0 > 1e-5 and d1 > 1e-5 else 1e-6, precision_bits)
    # Initial target order from the tolerance; the work-based control adjusts it.
    k = max(2, min(kmax - 1, int(0.3 * -math.log10(float(rtol))) + 2))
    n_rej, last_rejected, status = 0, False, None

    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        while status is None:
            if counts.total() + n_rej >= max_steps:
                status = Status.MAX_STEPS
                break
            if h_max is not None and h > h_max:
                h = h_max
            reaches_end = not (t + h < t_end)
            if reaches_end:
                h = t_end - t
            if not (t + h > t):
                status = Status.STEP_TOO_SMALL
                break
            if solve is None:
                solve = make_solver(y)
                stats["jac"] += 1
            if f0 is None:
                f0 = fun(y)
                stats["f"] += 1

            accepted_in, y_new, fac = ctl.attempt(fun, solve, y, f0, h, k, stats)
            if accepted_in is None:
                n_rej += 1
                k, factor = ctl.after_reject(k, fac)
                h, last_rejected = h * to_working(factor, precision_bits), True
                continue

            y, t = y_new, (t_end if reaches_end else t + h)
            solve = f0 = None
            counts[accepted_in] += 1
            if observe is not None:
                observe(t, y)
            if blowup is not None and abs_max(y) > blowup:
                status = Status.BLOWUP
            elif stop is not None and stop(t, y):
                status = Status.STOPPED
            elif reaches_end:
                status = Status.T_END
            k, factor = ctl.after_accept(k, accepted_in, fac, last_rejected)
            last_rejected = False
            if not reaches_end:
                h = h * to_working(factor, precision_bits)

    return IntegrationResult(
        t=t,
        y=y,
        status=status,
        n_steps=counts.total(),
        n_rejected=n_rej,
        n_fun_evals=stats["f"],
        details={
            "n_solves": stats["solve"],
            "n_jacobians": stats["jac"],
            "order_counts": dict(sorted(counts.items())),
            "final_order": k,
            "final_step": h,
        },
    )


class _Controller:
    """One macro-step attempt with its convergence window, and the order / step-size choice."""

    def __init__(self, method: Seulex, tab: _Tableau, rtol, atol, precision_bits: int):
        self.opt, self.tab = method, tab
        self.rtol, self.atol = to_working(rtol, precision_bits), to_working(atol, precision_bits)

    def norm(self, e, y_old, y_new) -> float:
        """Scaled max norm ``max |e| / (atol + rtol max(|y_old|, |y_new|))`` over all axes."""
        scale = self.atol + self.rtol * np.maximum(np.abs(y_old), np.abs(y_new))
        return float(abs_max(e / scale))

    def _filtered(self, diff, solve, h, j, stats):
        if self.opt.filter_error == "implicit":
            stats["solve"] += 1
            return solve(h, diff)
        if self.opt.filter_error == "propagated":
            m = min(self.tab.n[j], PROPAGATION_STEPS)
            hm = h / m
            for _ in range(m):
                diff = solve(hm, diff)
            stats["solve"] += m
        return diff

    def attempt(self, fun, solve, y, f0, h, k, stats):
        """Build the tableau row by row up to column ``k+1``.

        Returns ``(j, T_jj, fac)`` when column ``j`` of the window ``k-1..k+1``
        converged, ``(None, None, fac)`` on rejection; ``fac[j]`` is the step-size
        factor ``H_j / h`` predicted from each column's error (empty after
        non-finite values).
        """
        opt, tab = self.opt, self.tab
        fac, errs, row = {}, {}, []
        for j in range(1, k + 2):
            t_j1, n_f, n_s = tab.euler(fun, solve, y, f0, h, j)
            stats["f"] += n_f
            stats["solve"] += n_s
            if not all_finite(t_j1):
                return None, None, {}
            row = tab.extend(row, t_j1, j)
            if j == 1 or j < k - 2:  # estimates are needed from column k-2 on (work of the order choice)
                continue
            err = self.norm(self._filtered(row[-1] - row[-2], solve, h, j, stats), y, row[-1])
            if not math.isfinite(err):
                return None, None, {}
            ratio = opt.max_factor if err == 0 else opt.safety * err ** (-1.0 / j)
            fac[j] = min(opt.max_factor, max(opt.min_factor, ratio))
            errs[j] = err
            if j < k - 1:
                continue
            if err <= 1:
                return j, row[-1], fac
            if j == k + 1 or self._hopeless(errs, j, k + 1):
                return None, None, fac
        raise AssertionError("unreachable: column k+1 always decides")

    def _hopeless(self, errs, j, last):
        """Convergence monitor: is ``err_last ≤ 1`` out of reach, judging from column ``j``?

        Predicts ``err_last`` from the observed contraction ``err_j / err_{j-1}`` between
        the last two columns when it is below 1, and otherwise from Hairer–Wanner's
        heuristic ``err_{i+1} ≈ err_i · n_1 / n_{i+1}``.
        """
        n = self.tab.n
        rate = errs[j] / errs[j - 1] if j - 1 in errs and 0 < errs[j] < errs[j - 1] else None
        predicted = errs[j]
        for i in range(j + 1, last + 1):
            predicted *= rate if rate is not None else n[1] / n[i]
        return predicted > 1

    def _work(self, fac):
        """Work per unit step ``W_j = A_j / H_j`` (up to the common factor ``1/h``)."""
        return {j: self.tab.work[j] / f for j, f in fac.items()}

    def _clamp(self, k):
        return max(2, min(k, self.tab.kmax - 1))

    def after_reject(self, k, fac):
        """New target order and step factor after a rejected attempt (never larger than before)."""
        if not fac:  # non-finite values
            return k, 0.5
        work, j = self._work(fac), max(fac)
        k_new = j - 1 if j - 1 in work and work[j - 1] < self.opt.order_decrease * work[j] else j
        k_new = self._clamp(min(k, k_new))
        return k_new, min(fac.get(k_new, fac[j]), fac[j])

    def after_accept(self, k, j, fac, last_rejected):
        """New target order and step factor after acceptance in column ``j`` (target was ``k``)."""
        work, opt = self._work(fac), self.opt
        k_new = k if j == k + 1 and k in work and work[k] < work[j] else j
        if k_new - 1 in work and work[k_new - 1] < opt.order_decrease * work[k_new]:
            k_new -= 1
        elif k_new == j and (j - 1 not in work or work[j] < opt.order_increase * work[j - 1]):
            k_new = j + 1
        k_new = self._clamp(k_new)
        factor = fac[k_new] if k_new in fac else fac[j] * self.tab.work[k_new] / self.tab.work[j]
        if last_rejected:
            k_new, factor = min(k_new, k), min(factor, 1.0)
        return k_new, factor
