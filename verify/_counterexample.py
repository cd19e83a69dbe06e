r"""Criteria of greedy low-rank learning and extrapolation, their float64 evaluation, and certified failures.

For a non-special clean-label problem (:class:`~ssmpoison.verify._clean_problem.CleanProblem`: teacher of
dimension D*, student ``A = diag(a)`` trained by gradient flow from ``a0`` with ``B = C = 1``),
the flow's limit ``a(inf)`` is judged by two criteria (:class:`SearchCriteria`), both defined only
when learning happened: some entry *escaped*, ``|a_i(inf)| >= escape_fraction * min_k |alpha_k|``
(the teacher's smallest entry is at least 1/4 and the initialisation at most 2^-7 in the searched
space, so an escaped entry is unambiguous; when the initialisation already fits the labels, e.g.
labels that vanish, nothing escapes and there is no implicit bias to judge):

* **greedy low-rank learning fails** when ``erank(a(inf)) > D* + rank_margin`` (note 00 §3's
  effective rank, :func:`ssmpoison.theory._effective_rank.effective_rank`). The default margin of one whole entry
  keeps the unescaped entries, which sit near the initialisation and raise ``erank`` a little
  (at most to about D* + 0.9 for D = 6 at scale 2^-7), from counting as a failure;
* **extrapolation fails** when the extrapolation error (note 00 §5) over ``J = extrapolation_factor * H``
  lags exceeds ``extrapolation_threshold``. Entries left at the initialisation contribute at
  most ``max |a0_i| <= 2^-7`` to it, so the default 0.1 is far above what the initialisation
  alone can cause.

Both are defined only for flows that *converged* (training loss below the working precision's
threshold, :class:`ssmpoison.verify._flow.FlowOptions`); flows that diverge or run out of steps or time
are counted, never judged.

A float64 run is the search's screen (:func:`evaluate`). A failure is then *certified*
(:func:`certify_failure`) under the certification policy
:data:`ssmpoison.verify._certification.SEARCH_CERTIFICATION`: two independent high-precision
runs, at ``P`` bits and at ``P + s`` bits, ``s = max(32, P/4)`` (each with its precision's own
tolerance and loss threshold; should one of them not converge within its step budget, a third
at ``P + 2s`` bits stands in for it, and the record names the precisions used): the certified digits
of a quantity are its agreement between them (:func:`ssmpoison.verify._certify.certify`), capped by what
the evaluation carries (``effective_rank`` is evaluated in float64: 14 digits), and the failure
counts only if the certified interval ``min(x, ref) * (1 - 10^-d)`` still lies beyond the
threshold.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import mpmath
import numpy as np

from ssmpoison.theory._effective_rank import effective_rank
from ssmpoison.theory._validation import require_int, require_real
from ssmpoison.verify._certification import SEARCH_CERTIFICATION, CertificationPolicy
from ssmpoison.verify._numbers import require_precision_bits
from ssmpoison.verify._status import Status
from ssmpoison.verify._certify import certify, digits_supported, to_mpf
from ssmpoison.verify._clean_problem import CleanProblem
from ssmpoison.verify._flow import FlowOptions, run_flow

__all__ = [
    "CRITERIA",
    "SearchCriteria",
    "Outcome",
    "CertifiedFailure",
    "SEARCH_FLOW_OPTIONS",
    "lowest_gamma_order",
    "regime",
    "evaluate",
    "certify_failure",
]

#: The two criteria, by name.
CRITERIA = ("greedy_low_rank", "extrapolation")

#: float64 flows of the search: the default loss threshold of float64, a step budget that every
#: converging flow of the searched space meets (measured: < 400 steps) and stuck flows exhaust fast.
SEARCH_FLOW_OPTIONS = FlowOptions(precision_bits=53, max_steps=400, compiled=False)  # the report is reproduced bit for bit


@dataclass(frozen=True)
class SearchCriteria:
    """Thresholds of the two criteria (see the module docstring).

    Arguments:
        rank_margin: greedy learning fails when ``erank > D* + rank_margin`` (> 0).
        escape_fraction: an entry escaped when ``|a_i| >= escape_fraction * min |alpha|`` (in (0, 1]).
        extrapolation_threshold: extrapolation fails when the error exceeds it (> 0).
        extrapolation_factor: the error is taken over ``J = extrapolation_factor * H`` lags (>= 1).
    """

    rank_margin: float = 1.0
    escape_fraction: float = 0.5
    extrapolation_threshold: float = 0.1
    extrapolation_factor: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "rank_margin", float(require_real("rank_margin", self.rank_margin, positive=True)))
        fraction = float(require_real("escape_fraction", self.escape_fraction, positive=True))
        if fraction > 1:
            raise ValueError(f"escape_fraction must be <= 1, got {fraction}")
        object.__setattr__(self, "escape_fraction", fraction)
        threshold = require_real("extrapolation_threshold", self.extrapolation_threshold, positive=True)
        object.__setattr__(self, "extrapolation_threshold", float(threshold))
        object.__setattr__(self, "extrapolation_factor", require_int("extrapolation_factor", self.extrapolation_factor, minimum=1))

    def extrapolation_length(self, horizon: int) -> int:
        return self.extrapolation_factor * horizon

    def escape_level(self, problem: CleanProblem) -> float:
        return self.escape_fraction * float(min(abs(v) for v in problem.teacher.entries))

    def lines(self) -> list[str]:
        """The criteria in words, as printed by ``ssmpoison search``."""
        return [
            f"greedy low-rank learning fails: effective rank of the learned A > D* + {self.rank_margin:g} "
            f"(judged when some |a_i| >= {self.escape_fraction:g} x the teacher's smallest |alpha|)",
            f"extrapolation fails: extrapolation error over J = {self.extrapolation_factor}H lags "
            f"(max_j |K_j - K*_j| / max_j |K*_j|) > {self.extrapolation_threshold:g}",
            "both judged only on flows that converged (training loss below the float64 threshold "
            f"{SEARCH_FLOW_OPTIONS.effective_loss_tol:.1e}); failures are re-run at high precision and "
            "reported only when certified",
        ]

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def lowest_gamma_order(problem: CleanProblem) -> int:
    """``l* = min { l >= 1 : u^(n)_{H-2-l} != 0 for some n }``: the lowest ``gamma^(l)`` the inputs can make non-zero.

    For a non-special set ``gamma^(0) = 0`` and, near a small initialisation,
    ``da_i/dt ~ gamma^(l*) a_i^{l*}``: the escape time of entry i grows like
    ``a_i(0)^{1 - l*}`` for ``l* >= 2`` but only like ``log(1/a_i(0))`` for ``l* = 1`` (no head start).
    """
    H = problem.horizon
    lags = [H - 2 - k for row in problem.inputs for k, u in enumerate(row) if u != 0 and k <= H - 3]
    if not lags:
        raise ValueError("the inputs have no entry at a position <= H-3: gamma^(l), l >= 1, vanish identically")
    return min(lags)


def regime(problem: CleanProblem) -> str:
    """``"l*=1"`` (common exponential growth: no head start) or ``"l*>=2"`` (the Proposition's greedy regime)."""
    return "l*=1" if lowest_gamma_order(problem) == 1 else "l*>=2"


@dataclass(frozen=True)
class Outcome:
    """The float64 screen of one problem.

    ``status`` is the flow's (:data:`ssmpoison.verify._flow.FLOW_STATUSES`); ``failures`` lists
    the criteria that fail (empty when none, or when undefined); ``effective_rank`` and
    ``extrapolation_error`` are ``None`` unless the flow converged.
    """

    status: Status
    learned_a: tuple
    train_loss: float
    t_end: float
    steps: int
    escaped: int
    effective_rank: float | None
    extrapolation_error: float | None
    failures: tuple

    def to_json(self) -> dict:
        return {
            "precision_bits": SEARCH_FLOW_OPTIONS.precision_bits,
            "status": self.status,
            "t_end": self.t_end,
            "steps": self.steps,
            "train_loss": self.train_loss,
            "learned_a": list(self.learned_a),
            "escaped_entries": self.escaped,
            "effective_rank": self.effective_rank,
            "extrapolation_error": self.extrapolation_error,
            "failed_criteria": list(self.failures),
        }


def _failures(problem: CleanProblem, criteria: SearchCriteria, escaped: int, erank: float, error: float) -> tuple:
    if escaped == 0:  # nothing was learned (e.g. labels the initialisation already fits): no bias to judge
        return ()
    out = []
    if erank > problem.teacher.dim + criteria.rank_margin:
        out.append("greedy_low_rank")
    if error > criteria.extrapolation_threshold:
        out.append("extrapolation")
    return tuple(out)


def evaluate(problem: CleanProblem, criteria: SearchCriteria = SearchCriteria()) -> Outcome:
    """Run the float64 flow of a non-special problem and judge its limit by both criteria."""
    if problem.is_special:
        raise ValueError(
            f"inputs{list(problem.training_set.special_indices())} are special (u_(H-2) != 0): the search judges non-special sets only"
        )
    with np.errstate(all="ignore"):  # diverging flows overflow on the way; their status says so
        result = run_flow(problem.flow_problem(), SEARCH_FLOW_OPTIONS)
    a = tuple(float(v) for v in result.a)
    escaped = sum(abs(v) >= criteria.escape_level(problem) for v in a)
    common = dict(status=result.status, learned_a=a, train_loss=float(result.loss), t_end=float(result.t), steps=result.steps, escaped=escaped)
    if result.status != Status.CONVERGED:
        return Outcome(**common, effective_rank=None, extrapolation_error=None, failures=())
    erank = effective_rank(a)
    error = float(problem.teacher.extrapolation_error(a, length=criteria.extrapolation_length(problem.horizon)))
    return Outcome(**common, effective_rank=erank, extrapolation_error=error, failures=_failures(problem, criteria, escaped, erank, error))


@dataclass(frozen=True)
class CertifiedFailure:
    """A failure re-run at ``precision_bits`` and certified against a ``reference_bits`` re-run.

    ``certified`` is True when both runs converged and the certified value of the failed
    criterion's quantity lies beyond its threshold; ``reason`` says why not otherwise.
    """

    criterion: str
    precision_bits: int
    reference_bits: int
    statuses: tuple
    learned_a: tuple  # certified decimal strings ("?" where nothing is certified)
    effective_rank: object  # ssmpoison.verify._certify.Certified or None
    extrapolation_error: object
    certified: bool
    reason: str

    def to_json(self) -> dict:
        def cert(c):
            return None if c is None else {"value": c.text, "digits": c.digits}

        return {
            "criterion": self.criterion,
            "certified": self.certified,
            "reason": self.reason,
            "precision_bits": self.precision_bits,
            "reference_bits": self.reference_bits,
            "statuses": list(self.statuses),
            "learned_a": list(self.learned_a),
            "effective_rank": cert(self.effective_rank),
            "extrapolation_error": cert(self.extrapolation_error),
        }


def _beyond(c, threshold: float) -> bool:
    """The certified interval of ``c`` lies above ``threshold``."""
    if c.digits < 1:
        return False
    low = min(c.value, c.reference) * (1 - mpmath.mpf(10) ** -c.digits)
    return low > threshold


def certify_failure(
    problem: CleanProblem, criterion: str, criteria: SearchCriteria = SearchCriteria(), policy: CertificationPolicy = SEARCH_CERTIFICATION
) -> CertifiedFailure:
    """Re-run ``problem`` at high precision (module docstring) and certify ``criterion``'s failure.

    Arguments:
        problem: the non-special problem.
        criterion: one of :data:`CRITERIA`.
        criteria: the thresholds.
        policy: the precisions of the runs (its ``precision_ladder``, ``precision_bits`` >= 64)
            and their step budget.

    Returns:
        :class:`CertifiedFailure`.

    Raises:
        ValueError: an unknown criterion, or a policy below 64 bits (or the fast path).
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {', '.join(CRITERIA)}, got {criterion!r}")
    if policy.fast_path:
        raise ValueError("policy must have precision_bits (>= 64): the fast path certifies no failure")
    require_precision_bits(policy.precision_bits, minimum=64)
    fp = problem.flow_problem()
    ladder = policy.precision_ladder()
    bits, ref_bits = ladder[0], ladder[1]
    converged, tried = [], []
    for p in ladder:
        result = run_flow(fp, policy.flow_options(p))
        tried.append((p, result.status))
        if result.status == Status.CONVERGED:
            converged.append(result)
            if len(converged) == 2:
                break
    statuses = tuple(f"{p} bits: {status}" for p, status in tried)
    if len(converged) < 2:
        return CertifiedFailure(criterion, bits, ref_bits, statuses, ("?",) * len(fp.a0), None, None, False,
                                f"fewer than two high-precision runs converged ({'; '.join(statuses)})")
    run, ref = converged
    bits, ref_bits = run.precision_bits, ref.precision_bits
    cap = digits_supported(bits)
    a_run, a_ref = [to_mpf(v) for v in run.a], [to_mpf(v) for v in ref.a]
    learned = tuple(certify(x, r, cap).text for x, r in zip(a_run, a_ref))
    erank = certify(effective_rank(np.array([float(v) for v in a_run])), effective_rank(np.array([float(v) for v in a_ref])), digits_supported(53))
    J = criteria.extrapolation_length(problem.horizon)
    with mpmath.workprec(bits + 16):
        err_run = problem.teacher.extrapolation_error(a_run, length=J)
    with mpmath.workprec(ref_bits + 16):
        err_ref = problem.teacher.extrapolation_error(a_ref, length=J)
    error = certify(err_run, err_ref, cap)
    escaped = sum(abs(v) >= criteria.escape_level(problem) for v in a_run)
    if escaped == 0:
        ok, reason = False, "no entry escaped in the high-precision run"
    elif criterion == "greedy_low_rank":
        ok = _beyond(erank, problem.teacher.dim + criteria.rank_margin)
        reason = "" if ok else f"certified effective rank {erank.text} ({erank.digits} digits) is not certainly above D* + {criteria.rank_margin:g}"
    else:
        ok = _beyond(error, criteria.extrapolation_threshold)
        reason = "" if ok else f"certified extrapolation error {error.text} ({error.digits} digits) is not certainly above {criteria.extrapolation_threshold:g}"
    return CertifiedFailure(criterion, bits, ref_bits, statuses, learned, erank, error, ok, reason)


def float_digits_agreement(value: float, certified) -> int:
    """Significant digits on which the float64 screen agrees with a certified value (0 to 16)."""
    if certified is None or value is None:
        return 0
    return certify(value, certified.reference, 16).digits if math.isfinite(value) else 0
