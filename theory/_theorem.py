r"""The Theorem's setting for any D >= 2, H >= 3, and its conditions as checkable predicates.

The setting (note 00 §5): student ``A = diag(a)`` trained from ``a(0)`` with ``B = C = 1``
fixed; teacher ``A* = diag(1, 0)``, ``B* = (1, sqrt(D-1))``, ``C* = B*^T`` (``K*_0 = D``,
``K*_j = 1``); the non-special training set ``{e_0}`` and the poisoned one
``{e_0, u† = e_{H-2}}`` with clean labels; the claim concerns extrapolation to ``H' > H+1``.

Note 00 §5 does not state the paper's technical conditions. The ones here are *derived*, as
sufficient conditions, from the exact reduction of the clean flow (:mod:`ssmpoison.theory._oracle`):
with ``p = H - 3 > 0`` and ``x_i = a_i(0)^{-p}``, the flow keeps ``x_i - a_i(t)^{-p}`` equal
for all ``i`` and its limit is ``a_i(inf) = (x_i - s*)^{-1/p}`` with ``s* < x_1 = min x``.
Hence, for every entry but the largest,

    a_i(inf) < tau_i := (x_i - x_1)^{-1/p}                         (exact, no approximation)

and, the limit fitting the label (``sum_i a_i(inf)^{H-1} = 1``, all entries positive),
``a_1(inf) in [(1 - sum_{i>=2} tau_i^{H-1})^{1/(H-1)}, 1]``. For ``j >= 1``,
``K_j - K*_j = (a_1^j - 1) + sum_{i>=2} a_i^j`` and ``K_0 = K*_0 = D``, so the clean
extrapolation error to ``H'`` (note 00 §5) is at most

    E_bound = max_{1 <= j < H'} max(1 - a_lo^j, sum_{i>=2} tau_i^j) / D.

For ``H = 3`` the ratios ``a_i / a_1`` are conserved instead, so ``tau_i = a_i(0)/a_1(0)``.
The gap between the two largest entries enters through ``tau_2``: the greedy race is won
by the largest entry by a margin that the condition measures.

``D >= 3`` is needed for the poison to bite: the poisoned set asks for ``sum a_i = 1``
(``K_1``) and ``sum a_i^{H-1} = 1`` (``K_{H-1}``); with ``D = 2``, ``a + b = 1`` and
``a^n + b^n = 1`` (``n = H - 1 >= 2``) force ``{a, b} = {0, 1}`` (for ``0 < a < 1`` the sum
of powers is below ``a + b = 1``; outside, ``|a^n + b^n|`` exceeds 1), i.e. the teacher.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import mpmath

from ssmpoison.theory._validation import require_finite_sequence, require_int, require_real

__all__ = ["Condition", "TheoremSetting", "clean_limit_bounds", "clean_error_bound", "conditions", "PAPER", "DERIVED", "HEURISTIC"]

_BITS = 256  # the differences x_i - x_1 cancel ~log2(1/gap) bits; inputs are exact binary floats


#: Where a condition comes from.
PAPER = "the paper's informal statement"
DERIVED = "derived here"
HEURISTIC = "derived here (heuristic, checked numerically)"


@dataclass(frozen=True)
class Condition:
    """One predicate of the Theorem on a setting.

    ``value`` is the quantity compared with ``threshold`` (``holds`` says whether the
    comparison ``relation`` is true); ``detail`` is a plain-language account with the margin;
    ``provenance`` is :data:`PAPER`, :data:`DERIVED` (proved in note 03) or :data:`HEURISTIC`;
    an ``advisory`` condition (the heuristic ones) is reported but never decides whether the
    Theorem's conditions hold.
    """

    name: str
    statement: str
    value: float
    relation: str  # ">=", ">", "<=", "<"
    threshold: float
    holds: bool
    detail: str
    provenance: str = DERIVED
    advisory: bool = False

    @property
    def margin(self) -> float:
        """How far inside (``> 1``) or outside (``< 1``) the condition is, as a factor.

        ``value / threshold`` for ``>=``/``>`` and ``threshold / value`` for ``<=``/``<``, when both
        are positive and finite; otherwise ``nan`` (the detail then states the comparison).
        """
        v, t = float(self.value), float(self.threshold)
        if not (v > 0 and t > 0 and math.isfinite(v) and math.isfinite(t)):
            return math.nan
        return v / t if self.relation.startswith(">") else t / v

    def to_json(self) -> dict:
        def num(x):
            return None if x != x else x  # not evaluated (NaN): null

        return {
            "name": self.name,
            "holds": self.holds,
            "detail": self.detail,
            "statement": self.statement,
            "value": num(self.value),
            "relation": self.relation,
            "threshold": num(self.threshold),
            "margin": num(self.margin),
            "provenance": self.provenance,
            "advisory": self.advisory,
        }


@dataclass(frozen=True)
class TheoremSetting:
    """Horizon ``H >= 3``, student dimension ``D >= 2`` (``len(a0)``), extrapolation horizon ``H' >= 1``, initial diagonal ``a0``.

    ``construction`` is the training data (:class:`ssmpoison.theory._construction.Construction`;
    ``None``, the default, is the Theorem's ``{e_0}`` and ``u† = e_{H-2}``). Scaled copies of
    ``e_0`` with the teacher's labels leave the clean limit unchanged (the loss is
    ``mean(alpha^2) (S - 1)^2``, note 03 §7), so the clean bound applies to them as it stands.
    """

    horizon: int
    a0: tuple
    extrapolate_to: int
    construction: object = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "horizon", require_int("horizon", self.horizon, minimum=3))
        a0 = require_finite_sequence("a0", self.a0)
        if len(a0) < 2:
            raise ValueError(f"state_dim must be >= 2, got {len(a0)}")
        object.__setattr__(self, "a0", a0)
        object.__setattr__(self, "extrapolate_to", require_int("extrapolate_to", self.extrapolate_to, minimum=1))
        if self.construction is not None:
            from ssmpoison.theory._construction import Construction

            if not isinstance(self.construction, Construction):
                raise ValueError(f"construction must be a Construction, got {type(self.construction).__name__}")
            self.construction.clean_sequence(self.horizon)  # special at this H: ValueError naming clean_support
            self.construction.poison_sequence(self.horizon)  # not special at this H: naming poison_support

    @property
    def state_dim(self) -> int:
        return len(self.a0)


def _mpf(v) -> mpmath.mpf:
    """``v`` (int, float, Fraction or mpf) as an mpf in the current mpmath precision (rationals rounded once)."""
    if isinstance(v, Fraction):
        return mpmath.mpf(v.numerator) / v.denominator
    return mpmath.mpf(v)


def _sorted_mpf(a0) -> list:
    return sorted((_mpf(v) for v in a0), reverse=True)


def clean_limit_bounds(a0, horizon: int) -> tuple[list, mpmath.mpf]:
    """``(tau, a_lo)``: exact bounds on the clean limit (module docstring), entries sorted by size.

    ``tau[k]`` bounds the ``(k+2)``-th largest entry's limit from above; ``a_lo`` bounds the
    largest entry's limit from below (``a_lo = 0`` when the bounds are too weak to say more).
    Requires positive entries with a unique largest one.
    """
    H = require_int("horizon", horizon, minimum=3)
    with mpmath.workprec(_BITS):
        a = _sorted_mpf(a0)
        if a[-1] <= 0:
            raise ValueError("a0 must be positive for the clean reduction")
        if a[0] == a[1]:
            raise ValueError("a0 must have a unique largest entry for the clean reduction")
        if H == 3:
            tau = [v / a[0] for v in a[1:]]
        else:
            p = H - 3
            x = [v**-p for v in a]
            tau = [(xi - x[0]) ** (mpmath.mpf(-1) / p) for xi in x[1:]]
        rest = mpmath.fsum(t ** (H - 1) for t in tau)
        a_lo = (1 - rest) ** (mpmath.mpf(1) / (H - 1)) if rest < 1 else mpmath.mpf(0)
        return tau, a_lo


def clean_error_bound(a0, horizon: int, extrapolate_to: int) -> mpmath.mpf:
    """Upper bound on the clean flow's extrapolation error to ``extrapolate_to`` (module docstring)."""
    J = require_int("extrapolate_to", extrapolate_to, minimum=1)
    tau, a_lo = clean_limit_bounds(a0, horizon)
    D = len(tau) + 1
    with mpmath.workprec(_BITS):
        worst = mpmath.mpf(0)
        for j in range(1, J):
            worst = max(worst, 1 - a_lo**j, mpmath.fsum(t**j for t in tau))
        return worst / D


def _fmt(x) -> str:
    return mpmath.nstr(mpmath.mpf(x), 3)


def _margin(ratio, holds: bool) -> str:
    """``x`` and the factor by which a value is within (``1/ratio``) or beyond (``ratio``) its threshold."""
    if holds and ratio == 0:
        return "unbounded (the bound is 0)"
    return f"x{_fmt(1 / ratio if holds else ratio)}"


def conditions(setting: TheoremSetting, clean_tolerance: float = 1e-2, poisoned_side: bool = True) -> list[Condition]:
    """The Theorem's conditions on ``setting``, each with its value, threshold, margin and provenance.

    Arguments:
        setting: horizon, initial diagonal and extrapolation horizon.
        clean_tolerance: the extrapolation error below which the clean flow counts as
            generalising (the derived condition ``clean_error_bound <= clean_tolerance``).
        poisoned_side: whether to add the advisory poisoned-side conditions of
            :func:`ssmpoison.theory._poisoned_side.poisoned_side_conditions` (note 03 §6); they are
            evaluated only where every other condition holds (elsewhere the Theorem predicts nothing),
            and only on sets of scaled copies of e_0 and e_{H-2}, for which they are derived; on another
            construction one advisory condition ``poisoned_side`` says that they were not evaluated.

    Returns:
        The conditions: the hypotheses and the derived clean-side ones, then the advisory ones.
    """
    tol = require_real("clean_tolerance", clean_tolerance, positive=True)
    H, D, J = setting.horizon, setting.state_dim, setting.extrapolate_to
    out = [
        Condition("horizon", "H >= 3, so that the poison u† = e_{H-2} differs from e_0", H, ">=", 3, H >= 3,
                  f"H = {H}", PAPER),
        Condition("state_dim",
                  "D >= 3: with D = 2 the poisoned set's only zero-loss points are the teacher's (a = (1, 0) or (0, 1)), "
                  "so the poison cannot distort what is learned", D, ">=", 3, D >= 3, f"D = {D}", DERIVED),
        Condition("extrapolation_horizon", "H' > H + 1: the claim is about lengths beyond the training horizon",
                  J, ">", H + 1, J > H + 1,
                  f"H' = {J} {'>' if J > H + 1 else '<='} H + 1 = {H + 1}", PAPER),
    ]
    with mpmath.workprec(_BITS):
        a = _sorted_mpf(setting.a0)
        positive = a[-1] > 0
        out.append(Condition("positive_init", "every a_i(0) > 0 (the clean flow keeps the signs)", float(a[-1]), ">", 0,
                             bool(positive), f"smallest a_i(0) = {_fmt(a[-1])}", DERIVED))
        rel_gap = (a[0] - a[1]) / a[0] if a[0] != 0 else mpmath.mpf(0)
        out.append(Condition("unique_top_entry", "the largest entry is unique: a_1(0) > a_2(0)", float(rel_gap), ">", 0,
                             bool(rel_gap > 0), f"relative gap (a_1 - a_2)/a_1 = {_fmt(rel_gap)}", PAPER))
        s0 = mpmath.fsum(v ** (H - 1) for v in a)
        out.append(Condition("below_label", "the initial output sum_i a_i(0)^{H-1} is below the label 1 (small initialisation)",
                             float(s0), "<", 1, bool(s0 < 1), f"sum a_i(0)^(H-1) = {_fmt(s0)}", PAPER))
        scaled_e0 = setting.construction is None or setting.construction.clean_is_scaled_e0
        if positive and rel_gap > 0 and scaled_e0:
            bound = clean_error_bound(setting.a0, H, J)
            tau, _ = clean_limit_bounds(setting.a0, H)
            holds = bound <= tol
            ratio = bound / tol
            out.append(Condition(
                "clean_greedy_bound",
                "derived sufficient condition: the exact bound on the clean limit's extrapolation error is within the tolerance",
                float(bound), "<=", tol, bool(holds),
                f"bound {_fmt(bound)} {'<=' if holds else '>'} tolerance {_fmt(tol)} "
                f"({'margin' if holds else 'exceeded'} {_margin(ratio, holds)}); "
                f"second entry's limit < {_fmt(tau[0])}",
                DERIVED,
            ))
        elif not scaled_e0:
            out.append(Condition("clean_greedy_bound", "derived sufficient condition (derived for clean sets of multiples of e_0)",
                                 float("nan"), "<=", tol, False,
                                 "not evaluated: the clean sequence is not e_0, where the exact reduction is derived",
                                 DERIVED))
        else:
            out.append(Condition("clean_greedy_bound", "derived sufficient condition (needs positive entries, unique top)",
                                 float("nan"), "<=", tol, False, "not evaluated: positive_init or unique_top_entry fails",
                                 DERIVED))
    if poisoned_side and all(c.holds for c in out):
        from ssmpoison.theory._poisoned_side import covers, poisoned_side_conditions  # the poisoned side (note 03 §6)

        if covers(setting.construction):
            out += poisoned_side_conditions(setting, out[-1].value)
        else:  # said, not left out: every other condition may hold while the poison does not win
            out.append(Condition("poisoned_side", "the poisoned side of the conditions (derived for scaled copies of "
                                 "e_0 and of e_(H-2) only)", float("nan"), ">=", float("nan"), False,
                                 "not evaluated: the construction's sequences are not scaled copies of e_0 and e_(H-2), "
                                 "for which the poisoned side is derived", HEURISTIC, True))
    return out
