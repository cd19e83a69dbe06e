r"""The poisoned side of the Theorem's conditions: when does the poison make both top entries escape?

The poisoned flow (training set ``{e_0, u† = e_{H-2}}``, labels 1, ``B = C = 1``, loss
``(1/2) (r_n^2 + r_1^2)`` with ``r_n = S_n - 1``, ``r_1 = S_1 - 1``, ``S_q = sum_i a_i^q``,
``n = H - 1``, ``m = H - 2``, ``p = H - 3``) moves every entry by the same scalar equation

    da_i/dt = g(t) a_i^m + h(t),      g = -n r_n,   h = -r_1,                         (1)

so entries never cross and equal entries stay equal (note 03 §6, Lemma P1); in the clean
race's coordinate ``w = a^-p`` the poison's term drains the gap ``w_2 - w_1`` while
``sum a_i < 1`` (Lemma P2: the fast all-ones mode equalises the entries). The gap
``delta = a_1 - a_2`` obeys ``d delta/dt = g q delta``, ``q = (a_1^m - a_2^m)/(a_1 - a_2) -> m a_1^(m-1)``
as the gap closes; linearising about the *merged flow* (the two top entries replaced by their
midpoint, an exact flow of the problem by (1)) gives (P3)

    delta(inf) ~ delta(0) * A,      A = exp( integral_0^inf g(t) m x(t)^(m-1) dt ),      (2)

with ``x(t)`` the merged pair's trajectory; ``A`` does not depend on ``delta(0)``. Carried into
the limit in the coordinate ``w`` this predicts the second entry's limit (:func:`second_limit`),
the learned diagonal (:func:`predicted_limit`) and its extrapolation error, and the upper side
of the gap condition (:func:`escape_gap`). For scaled sets ``{alpha_k e_0}`` and ``{beta_m e_(H-2)}``
the drives carry the weights ``c = sum alpha_k^2`` and ``b = sum beta_m^2`` (:func:`set_weights`):
``g = -c n r_n``, ``h = -b r_1``, with the same zero-loss set (note 03 §7). The conditions built on it
(:func:`poisoned_side_conditions`) are *heuristic* — the linearisation's error is not bounded —
checked numerically (note 03 §6, ``tests/test_poisoned_side.py``): they are advisory and never
decide :attr:`ssmpoison.verify._check.CheckReport.conditions_hold`.

The merged flow is integrated in float64 (SciPy LSODA with the analytic Jacobian, stepped
until both residuals are below ``1e-12``); it is a prediction, not a certified number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ssmpoison.theory._validation import require_finite_sequence, require_int, require_real

__all__ = ["MergedFlow", "PoisonedPrediction", "covers", "merged_pair_flow", "set_weights", "poisoned_prediction", "poisoned_side_conditions",
           "POISONED_SAFETY"]

#: The factor by which the predicted poisoned error must exceed the clean bound (room for the
#: first-order prediction's error).
POISONED_SAFETY = 2.0

_T_MAX = 1e12  # time units; the flows of the sweeps converge by ~1e7
_RESIDUAL_TOL = 1e-12
_MAX_STEPS = 200_000  # |r_n| and |r_1| below this: converged (the integrand of log A is then ~ 1e-12)


@dataclass(frozen=True)
class MergedFlow:
    """The poisoned flow with the two top entries merged (their midpoint, weight 2).

    ``pair_limit`` is the merged pair's limit ``x(inf)``, ``rest_limit`` the other entries'
    limits (in the order given), ``log_amplification`` the integral of ``g m x^(m-1)``,
    ``converged`` whether both residuals fell below the tolerance, ``time`` the end time.
    """

    pair_limit: float
    rest_limit: tuple
    log_amplification: float
    converged: bool
    time: float


def merged_pair_flow(a0, horizon: int, clean_weight=1.0, poison_weight=1.0) -> MergedFlow:
    """Integrate the merged poisoned flow and the gap's log-amplification along it.

    Arguments:
        a0: the initial diagonal, at least two entries, positive, sorted or not; the two largest
            are merged into their midpoint ``x(0)``.
        horizon: the training horizon ``H >= 3`` (``n = H - 1``, ``m = H - 2`` in equation (1)).
        clean_weight: ``c = sum_k alpha_k^2`` of a scaled clean set ``{alpha_k e_0}`` (1 for ``{e_0}``).
        poison_weight: ``b = sum_m beta_m^2`` of a scaled poison set ``{beta_m e_(H-2)}`` (1 for ``{e_(H-2)}``).
            With them the drives of (1) are ``g = -c n r_n`` and ``h = -b r_1`` (the loss's ``1/N`` is
            a change of time, which moves neither the limit nor ``A``).

    Returns:
        The :class:`MergedFlow`: the state ``(x, rest)`` follows (1) with weights ``(2, 1, ..., 1)``
        in ``S_q = 2 x^q + sum rest^q``, and ``log A`` integrates ``g m x^(m-1)``.

    Raises:
        ValueError: naming the parameter, for ``horizon < 3``, fewer than two finite entries or a
            weight that is not a positive real number.
    """
    from scipy.integrate import LSODA  # here only: the exact modules need not pay SciPy's import

    H = require_int("horizon", horizon, minimum=3)
    a = sorted((float(v) for v in require_finite_sequence("a0", a0)), reverse=True)
    if len(a) < 2:
        raise ValueError(f"a0 must have at least two entries, got {len(a)}")
    c = float(require_real("clean_weight", clean_weight, positive=True))
    b = float(require_real("poison_weight", poison_weight, positive=True))
    n, m = H - 1, H - 2
    w = np.array([2.0] + [1.0] * (len(a) - 2))
    z0 = np.array([0.5 * (a[0] + a[1])] + a[2:] + [0.0])

    def parts(v):
        vm = v ** (m - 1) if m >= 1 else np.ones_like(v)
        return 1.0 - np.dot(w, v**n), 1.0 - np.dot(w, v), vm

    def rhs(t, z):
        v = z[:-1]
        rn, r1, vm1 = parts(v)  # rn, r1 are minus the residuals
        g = c * n * rn
        return np.append(g * v**m + b * r1, g * m * vm1[0])

    def jac(t, z):
        v = z[:-1]
        rn, r1, vm1 = parts(v)
        g = c * n * rn
        dg = -c * n * n * w * v ** (n - 1)  # d g / d v
        J = np.zeros((len(z), len(z)))
        J[:-1, :-1] = np.diag(g * m * vm1) + np.outer(v**m, dg) - b * np.outer(np.ones_like(v), w)
        J[-1, :-1] = m * vm1[0] * dg
        if m >= 2:
            J[-1, 0] += g * m * (m - 1) * v[0] ** (m - 2)
        return J

    solver = LSODA(rhs, 0.0, z0, _T_MAX, jac=jac, rtol=1e-10, atol=1e-14)
    converged = False
    for _ in range(_MAX_STEPS):
        if solver.status != "running":
            break
        solver.step()
        rn, r1, _ = parts(solver.y[:-1])
        if max(abs(rn), abs(r1)) < _RESIDUAL_TOL:
            converged = bool(np.all(np.isfinite(solver.y)))
            break
    z = solver.y
    return MergedFlow(float(z[0]), tuple(float(v) for v in z[1:-1]), float(z[-1]), converged, float(solver.t))


@dataclass(frozen=True)
class PoisonedPrediction:
    """The prediction of the poisoned flow's limit from the merged flow (module docstring).

    ``gap`` is ``a_1(0) - a_2(0)``, ``amplification`` is ``A`` of (2), ``gap_limit`` is the linearised
    limit gap ``gap * A``, ``second_limit`` the predicted limit ``beta`` of the second entry
    (:func:`second_limit`), ``limit`` the predicted learned diagonal (sorted
    descending) and ``error`` its extrapolation error; ``merged_error`` is the error of the merged
    flow's own limit (the gap closed); ``merged`` is the merged flow.
    """

    gap: float
    amplification: float
    gap_limit: float
    second_limit: float
    limit: tuple
    error: float
    merged_error: float
    merged: MergedFlow

    def gap_max(self, target: float, extrapolate_to: int, horizon: int) -> float:
        """The largest initial gap whose predicted poisoned error is still at least ``target``.

        Arguments:
            target: the error to reach (``2 E_bound`` in the conditions).
            extrapolate_to: the extrapolation horizon ``H'``.
            horizon: the training horizon ``H``.

        Returns:
            The limit gap found by bisection on its logarithm (the predicted error of
            :func:`predicted_limit` decreases as the gap widens) divided by the amplification;
            0 when even the closed gap misses ``target`` or the merged flow did not converge.
        """
        x, rest, A = self.merged.pair_limit, self.merged.rest_limit, self.amplification
        if not (self.merged.converged and math.isfinite(A) and A > 0):
            return 0.0

        def err(d):
            return _error(predicted_limit(x, rest, d, horizon), extrapolate_to)

        if not err(0.0) >= target:
            return 0.0
        lo, hi = -60.0, math.log(1e6)
        if err(math.exp(hi)) >= target:
            return math.exp(hi) / A
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            if err(math.exp(mid)) >= target:
                lo = mid
            else:
                hi = mid
        return math.exp(lo) / A


def second_limit(pair_limit: float, gap_limit: float, horizon: int) -> float:
    """The predicted second entry's limit: ``beta = (x^-p + p x^-(p+1) gap_limit)^(-1/p)``, ``p = H - 3``.

    The linearised gap is carried to the limit in the clean race's coordinate ``a^-p`` (whose
    differences the clean flow conserves): to first order ``a_2^-p - a_1^-p = p x^-(p+1) gap``,
    and the top entry is taken at ``x``. For ``H = 3`` the coordinate is ``log a``:
    ``beta = x exp(-gap_limit / x)``.

    Arguments:
        pair_limit: the merged pair's limit ``x > 0``.
        gap_limit: the linearised limit gap ``delta(0) A >= 0``.
        horizon: the training horizon ``H >= 3``.

    Returns:
        ``beta`` (equal to ``x`` for a zero gap, decreasing to 0 as the gap grows).
    """
    x, p = pair_limit, horizon - 3
    if p == 0:
        return x * math.exp(-gap_limit / x)
    return (x**-p + p * x ** -(p + 1) * gap_limit) ** (-1.0 / p)


def predicted_limit(pair_limit: float, rest_limit, gap_limit: float, horizon: int) -> tuple:
    """The predicted learned diagonal for a limit gap ``gap_limit`` (sorted descending).

    Arguments:
        pair_limit: the merged pair's limit ``x``.
        rest_limit: the merged flow's other limits (``D - 2`` of them).
        gap_limit: the linearised limit gap.
        horizon: the training horizon ``H``.

    Returns:
        The zero-loss point ``(alpha, beta, r, ..., r)`` of :func:`two_escape_limit` at
        ``beta = second_limit(...)`` where it exists; otherwise (the gap is then small: ``beta``
        near ``x``) the first-order point ``(x + gap/2, x - gap/2, rest...)`` of the merged flow.
    """
    D = len(rest_limit) + 2
    two = two_escape_limit(second_limit(pair_limit, gap_limit, horizon), D, horizon)
    if two is not None:
        return two
    return tuple(sorted([pair_limit + gap_limit / 2, pair_limit - gap_limit / 2, *rest_limit], reverse=True))


def poisoned_prediction(a0, horizon: int, extrapolate_to: int, clean_weight=1.0, poison_weight=1.0) -> PoisonedPrediction:
    """Predict the poisoned flow's limit and its extrapolation error from the merged flow.

    Arguments:
        a0: the initial diagonal (``D >= 3`` entries, positive, a unique largest one).
        horizon: the training horizon ``H >= 3``.
        extrapolate_to: the extrapolation horizon ``H' >= 1``.
        clean_weight, poison_weight: the scaled sets' weights of :func:`merged_pair_flow`.

    Returns:
        The :class:`PoisonedPrediction`; errors are ``max_{1 <= j < H'} |K_j - 1| / D`` with
        ``K_j = sum_i a_i^j`` (``K_0 = D`` is exact). When the merged flow does not converge, or
        the amplification overflows, the gap limit is ``inf`` and the errors ``nan``.

    Raises:
        ValueError: naming the parameter, for a bad horizon, extrapolation horizon or diagonal.
    """
    H = require_int("horizon", horizon, minimum=3)
    J = require_int("extrapolate_to", extrapolate_to, minimum=1)
    a = sorted((float(v) for v in require_finite_sequence("a0", a0)), reverse=True)
    if len(a) < 3:
        raise ValueError(f"a0 must have at least three entries (D >= 3), got {len(a)}")
    flow = merged_pair_flow(a, H, clean_weight, poison_weight)
    gap = a[0] - a[1]
    logA = flow.log_amplification
    A = math.exp(logA) if logA < 700 else math.inf
    x = flow.pair_limit
    if not (flow.converged and math.isfinite(A) and x > 0):
        return PoisonedPrediction(gap, A, math.inf, math.nan, (), math.nan, math.nan, flow)
    gap_limit = gap * A
    merged_error = _error((x, x, *flow.rest_limit), J)
    limit = predicted_limit(x, flow.rest_limit, gap_limit, H)
    return PoisonedPrediction(gap, A, gap_limit, second_limit(x, gap_limit, H), limit, _error(limit, J),
                              merged_error, flow)


def _error(limit, J: int) -> float:
    """``max_{1 <= j < J} |sum_i a_i^j - 1| / D`` (the Theorem's teacher has ``K*_j = 1``; ``K_0 = D`` is exact)."""
    v = np.array(limit, dtype=float)
    with np.errstate(over="ignore", invalid="ignore"):
        errs = [abs(float(np.sum(v**j)) - 1.0) for j in range(1, J)]
    return (max(errs) if errs else 0.0) / len(v)


def two_escape_limit(beta: float, state_dim: int, horizon: int):
    """The zero-loss point ``(alpha, beta, r, ..., r)`` of the poisoned set with second entry ``beta``.

    ``alpha + beta + (D - 2) r = 1`` (``K_1``) and ``alpha^n + beta^n + (D - 2) r^n = 1``
    (``K_{H-1}``), ``n = H - 1``, with ``alpha`` a root in ``[beta, 1]`` found by bisection on the
    second equation with ``r`` from the first.

    Arguments:
        beta: the second entry, ``0 < beta < 1``.
        state_dim: the student dimension ``D``.
        horizon: the training horizon ``H``.

    Returns:
        The point as a tuple, or ``None`` when ``D < 3``, ``beta`` is outside ``(0, 1)`` or the
        equation has no sign change on ``[beta, 1]``.
    """
    D, n = state_dim, horizon - 1
    if D < 3 or not beta > 0 or beta >= 1:
        return None

    def f(alpha):
        r = (1 - alpha - beta) / (D - 2)
        return alpha**n + beta**n + (D - 2) * r**n - 1

    lo, hi = beta, 1.0
    if not (f(lo) < 0 <= f(hi)):
        return None
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if f(mid) < 0:
            lo = mid
        else:
            hi = mid
    alpha = hi
    r = (1 - alpha - beta) / (D - 2)
    return (alpha, beta) + (r,) * (D - 2)


def require_safety(safety) -> float:
    """Validate the safety factor of :data:`POISONED_SAFETY`.

    Arguments:
        safety: a real number ``>= 1``.

    Returns:
        It as a float.

    Raises:
        ValueError: naming ``poisoned_safety`` when it is not a real number ``>= 1``.
    """
    s = float(require_real("poisoned_safety", safety, positive=True))
    if s < 1:
        raise ValueError(f"poisoned_safety must be >= 1, got {s:g}")
    return s


#: The fraction of the merged pair's limit the second entry's predicted limit must reach to count as
#: escaped: the prediction is accurate above it and optimistic well below it (note 03 §6).
ESCAPE_FRACTION = 0.25


def escape_gap(pair_limit: float, amplification: float, horizon: int) -> float:
    """The initial gap at which :func:`second_limit` equals ``ESCAPE_FRACTION * x``: the gap condition's upper side.

    Arguments:
        pair_limit: the merged pair's limit ``x``.
        amplification: ``A`` of (2).
        horizon: the training horizon ``H``.

    Returns:
        The limit gap ``x (f^-p - 1) / p`` (``x log(1/f)`` for ``H = 3``, ``f`` the fraction)
        divided by ``A``.
    """
    x, p, f = pair_limit, horizon - 3, ESCAPE_FRACTION
    limit_gap = x * math.log(1 / f) if p == 0 else x * (f**-p - 1) / p
    return limit_gap / amplification


def covers(construction) -> bool:
    """Whether the poisoned side is derived for ``construction``: scaled copies of ``e_0`` and of ``e_(H-2)``.

    Arguments:
        construction: a :class:`ssmpoison.theory._construction.Construction`, or ``None`` (the Theorem's sets).

    Returns:
        True for ``None`` and for constructions with the default supports (any scales).
    """
    return construction is None or (construction.clean_is_scaled_e0 and construction.poison_support == ("H-2",))


def set_weights(construction) -> tuple:
    """The weights ``(sum_k alpha_k^2, sum_m beta_m^2)`` of the drives of (1) for a scaled construction.

    Arguments:
        construction: a construction :func:`covers`, or ``None`` (the Theorem's sets: ``(1, 1)``).

    Returns:
        The two weights as floats (see :func:`merged_pair_flow`).
    """
    if construction is None:
        return 1.0, 1.0
    return (float(sum(v * v for v in construction.clean_scales)),
            float(sum(v * v for v in construction.poison_scales)))


def poisoned_side_conditions(setting, clean_bound, safety: float = POISONED_SAFETY) -> list:
    """The advisory poisoned-side conditions on ``setting`` (note 03 §6), each with value, threshold, margin.

    Arguments:
        setting: a :class:`ssmpoison.theory._theorem.TheoremSetting` with ``D >= 3`` positive entries
            and a unique largest one, on the Theorem's sets or a construction the poisoned side
            :func:`covers` (scaled copies of ``e_0`` and ``e_(H-2)``: the drives take the weights of
            :func:`set_weights`).
        clean_bound: the derived upper bound ``E_bound`` on the clean flow's extrapolation error.
        safety: the factor (>= 1) by which a predicted poisoned error must exceed ``E_bound``.

    Returns:
        Three :class:`ssmpoison.theory._theorem.Condition` values, provenance "derived here
        (heuristic, checked numerically)", ``advisory=True``: ``poison_can_beat_clean`` (the merged
        flow's error against ``safety * E_bound``), ``both_top_entries_escape`` (the gap against
        its upper threshold :func:`escape_gap`) and ``poisoned_error_exceeds_clean`` (the predicted
        error against ``safety * E_bound``). When the merged flow does not converge they fail,
        not evaluated.

    Raises:
        ValueError: naming the parameter, for ``safety < 1``.
    """
    from ssmpoison.theory._theorem import HEURISTIC, Condition, _fmt

    s = require_safety(safety)
    H, J = setting.horizon, setting.extrapolate_to
    target = s * float(clean_bound)
    pred = poisoned_prediction(setting.a0, H, J, *set_weights(setting.construction))
    names = ("poison_can_beat_clean", "both_top_entries_escape", "poisoned_error_exceeds_clean")
    statements = (
        f"heuristic: with the two top entries merged (the gap closed: the poison at its strongest) the poisoned "
        f"flow's limit extrapolates worse than {s:g}x the clean bound",
        f"heuristic, the upper side of the gap condition: the gap a_1(0) - a_2(0) is below the gap whose "
        f"amplification along the merged flow leaves the second entry's predicted limit at {ESCAPE_FRACTION:g} of the pair's",
        f"heuristic: the predicted poisoned limit (two escaped entries) extrapolates worse than {s:g}x the clean bound",
    )
    if math.isnan(pred.error):
        why = ("not evaluated: the merged flow did not converge" if not pred.merged.converged
               else "not evaluated: the gap's amplification overflows")
        return [Condition(n, st, math.nan, rel, thr, False, why, HEURISTIC, True)
                for n, st, rel, thr in zip(names, statements, (">=", "<=", ">="), (target, math.nan, target))]
    x, A = pred.merged.pair_limit, pred.amplification
    gap_esc = escape_gap(x, A, H)
    gap_max = pred.gap_max(target, J, H)
    out = []
    holds = pred.merged_error >= target
    out.append(Condition(names[0], statements[0], pred.merged_error, ">=", target, bool(holds),
                         f"merged-limit error {_fmt(pred.merged_error)} {'>=' if holds else '<'} {s:g} x clean bound "
                         f"{_fmt(target)} (margin x{_fmt(pred.merged_error / target)}); merged pair's limit {_fmt(x)}",
                         HEURISTIC, True))
    holds = pred.gap <= gap_esc
    out.append(Condition(names[1], statements[1], pred.gap, "<=", gap_esc, bool(holds),
                         f"gap {_fmt(pred.gap)} {'<=' if holds else '>'} {_fmt(gap_esc)} (margin x"
                         f"{_fmt(gap_esc / pred.gap) if pred.gap > 0 else 'inf'}); amplification A = {_fmt(A)}, "
                         f"predicted second limit {_fmt(pred.second_limit)} against {ESCAPE_FRACTION:g} x {_fmt(x)}",
                         HEURISTIC, True))
    holds = pred.error >= target
    out.append(Condition(names[2], statements[2], pred.error, ">=", target, bool(holds),
                         f"predicted poisoned error {_fmt(pred.error)} {'>=' if holds else '<'} {s:g} x clean bound "
                         f"{_fmt(target)} (margin x{_fmt(pred.error / target)}); it holds for gaps up to {_fmt(gap_max)}",
                         HEURISTIC, True))
    return out
