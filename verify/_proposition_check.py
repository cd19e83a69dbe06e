"""The Proposition as a checker: its hypotheses, the certified flow, and a verdict.

``check_proposition(problem)`` evaluates the hypotheses of :mod:`ssmpoison.theory._proposition` on a
non-special clean-label problem (:class:`ssmpoison.verify._clean_problem.CleanProblem`), runs its
gradient flow with certified digits (:func:`ssmpoison.verify._certified_flow.certified_flows`: the
effective rank and the extrapolation error of the limit), records the order in which the entries
escape (a float64 flow recorded along the way), and compares with the Proposition: greedy low-rank
learning (learned effective rank at most ``D* + rank_margin``, entries escaping largest first) when
the greedy hypotheses hold, and extrapolation (error over ``extrapolation_factor * H`` lags within
the threshold) when all hold. The thresholds are the search's
(:class:`ssmpoison.verify._counterexample.SearchCriteria`).

:func:`load_problem` reads a problem from a JSON file (a problem object as ``search`` writes it, or
a counterexample record holding one) or from a settings file (TOML or JSON with the keys
``teacher``, ``inputs``, ``a0`` and optionally ``state_dim``, ``init_scale``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ssmpoison.theory._effective_rank import effective_rank
from ssmpoison.theory._proposition import Hypothesis, proposition_hypotheses
from ssmpoison.theory._teacher import Teacher
from ssmpoison.verify._certification import CertificationPolicy
from ssmpoison.verify._certified_flow import CertifiedRun, certified_flows
from ssmpoison.verify._clean_problem import CleanProblem, decode_number
from ssmpoison.verify._counterexample import SearchCriteria
from ssmpoison.verify._jsonio import read_settings_file
from ssmpoison.verify._status import Status

__all__ = ["PropositionReport", "check_proposition", "load_problem", "problem_from_settings", "proposition_report_text",
           "counterexample_hypotheses"]


def counterexample_hypotheses(problem: CleanProblem, criterion: str) -> tuple[bool, list[Hypothesis]]:
    """Whether a failure of ``criterion`` on ``problem`` lies inside the Proposition's hypotheses, and the hypotheses.

    A failure of greedy low-rank learning is judged against the hypotheses that concern it; a
    failure of extrapolation against all of them.

    Arguments:
        problem: the non-special problem.
        criterion: ``"greedy_low_rank"`` or ``"extrapolation"``.

    Returns:
        ``(inside, hypotheses)``: ``inside`` when every relevant hypothesis holds (a counterexample
        to the stated result), else a boundary case.
    """
    hyps = proposition_hypotheses(problem.teacher, problem.inputs, problem.a0)
    relevant = [h for h in hyps if criterion == "extrapolation" or h.concerns == "greedy_low_rank"]
    return all(h.holds for h in relevant), hyps


@dataclass(frozen=True)
class PropositionReport:
    """Hypotheses, the certified flow and the verdict on one problem.

    Arguments:
        problem: the checked problem.
        hypotheses: the Proposition's hypotheses on it.
        rank: the certified run whose quantity is the learned effective rank.
        error: the certified run whose quantity is the extrapolation error over ``J`` lags.
        escape_times: per entry, the float64 time at which ``|a_i|`` reached the escape level (``None``: never).
        criteria: the thresholds.
    """

    problem: CleanProblem
    hypotheses: tuple
    rank: CertifiedRun
    error: CertifiedRun
    escape_times: tuple
    criteria: SearchCriteria

    @property
    def greedy_hypotheses_hold(self) -> bool:
        return all(h.holds for h in self.hypotheses if h.concerns == "greedy_low_rank")

    @property
    def hypotheses_hold(self) -> bool:
        return all(h.holds for h in self.hypotheses)

    @property
    def converged(self) -> bool:
        return self.rank.status == Status.CONVERGED and self.error.status == Status.CONVERGED

    @property
    def escape_order(self) -> tuple:
        """Entries (numbered from 1) in the order they escaped."""
        hit = [(t, i) for i, t in enumerate(self.escape_times) if t is not None]
        return tuple(i + 1 for _, i in sorted(hit))

    @property
    def largest_first(self) -> bool:
        """The escaped entries are the largest ``|a_i(0)|``, escaping in decreasing order of ``|a_i(0)|``."""
        order = self.escape_order
        by_size = sorted(range(len(self.problem.a0)), key=lambda i: -abs(self.problem.a0[i]))
        return bool(order) and list(order) == [i + 1 for i in by_size[: len(order)]]

    @property
    def greedy(self) -> bool:
        """Certified: the learned effective rank is at most ``D* + rank_margin`` (with at least one digit)."""
        q = self.rank.quantity
        return self.converged and q.digits >= 1 and float(q.value) <= self.problem.teacher.dim + self.criteria.rank_margin

    @property
    def extrapolates(self) -> bool:
        """Certified: the extrapolation error is within the threshold (with at least one digit)."""
        q = self.error.quantity
        return self.converged and q.digits >= 1 and float(q.value) <= self.criteria.extrapolation_threshold

    @property
    def matches_proposition(self) -> bool:
        """Every hypothesis holds and the flow is greedy and extrapolates."""
        return self.hypotheses_hold and self.greedy and self.extrapolates

    def verdict(self) -> str:
        failing = [h.name for h in self.hypotheses if not h.holds]
        if not self.converged:
            return f"the flow did not converge ({self.rank.status}): nothing to judge"
        did = (f"the flow {'is' if self.greedy else 'is not'} greedy (effective rank {self.rank.quantity.text} vs "
               f"D* + {self.criteria.rank_margin:g} = {self.problem.teacher.dim + self.criteria.rank_margin:g}) and "
               f"{'extrapolates' if self.extrapolates else 'does not extrapolate'}")
        if not failing:
            return f"all hypotheses hold and {did}: matches_proposition = {str(self.matches_proposition).lower()}"
        greedy_failing = [h.name for h in self.hypotheses if not h.holds and h.concerns == "greedy_low_rank"]
        scope = ("the Proposition predicts nothing here" if greedy_failing else
                 "the Proposition predicts greedy learning but not extrapolation here")
        return f"hypothesis(es) {', '.join(failing)} fail, so {scope}; {did}"

    def to_json(self) -> dict:
        def run(r: CertifiedRun) -> dict:
            return {"value": r.quantity.text, "certified_digits": r.quantity.digits, "status": r.status,
                    "method": r.method, "precision_bits": r.precision_bits, "reference_bits": r.reference_bits}

        return {
            "problem": self.problem.to_json(),
            "hypotheses": [h.to_json() for h in self.hypotheses],
            "hypotheses_hold": self.hypotheses_hold,
            "greedy_hypotheses_hold": self.greedy_hypotheses_hold,
            "criteria": self.criteria.to_json(),
            "learned_a": [str(v) for v in self.error.limit],
            "effective_rank": run(self.rank),
            "extrapolation_error": run(self.error),
            "extrapolation_length": self.criteria.extrapolation_length(self.problem.horizon),
            "escape_times": list(self.escape_times),
            "escape_order": list(self.escape_order),
            "largest_first": self.largest_first,
            "greedy": self.greedy,
            "extrapolates": self.extrapolates,
            "matches_proposition": self.matches_proposition,
            "verdict": self.verdict(),
        }


def check_proposition(problem: CleanProblem, precision_bits: int | None = None, criteria: SearchCriteria = SearchCriteria(),
                      progress=None) -> PropositionReport:
    """Evaluate the hypotheses, run the flow with certified digits, and compare with the Proposition.

    Arguments:
        problem: a non-special clean-label problem.
        precision_bits: ``None`` for the certified fast path, else the working precision in bits.
        criteria: the thresholds of greedy learning and extrapolation (the search's by default).
        progress: ``progress(label, done, total, note)`` around each flow (or ``None``).

    Returns:
        The :class:`PropositionReport`.

    Raises:
        ValueError: a problem that is not a :class:`CleanProblem`, or a special one (naming ``inputs``).
    """
    if not isinstance(problem, CleanProblem):
        raise ValueError(f"problem must be a CleanProblem, got {type(problem).__name__}")
    if problem.is_special:
        raise ValueError(f"inputs{list(problem.training_set.special_indices())} are special (u_(H-2) != 0): the "
                         "Proposition concerns non-special training sets")
    from ssmpoison.verify._dynamics import flow_dynamics
    from ssmpoison.verify._metrics import escape_times

    hyps = tuple(proposition_hypotheses(problem.teacher, problem.inputs, problem.a0))
    policy = CertificationPolicy(precision_bits=precision_bits)
    J = criteria.extrapolation_length(problem.horizon)
    fp = problem.flow_problem()
    steps = ("effective rank", "extrapolation error", "escape order")
    if progress is not None:
        progress("proposition: flows", 0, 3, f"running={steps[0]}")
    (rank,) = certified_flows([fp], lambda a, b, c: effective_rank([float(v) for v in a]), policy)
    if progress is not None:
        progress("proposition: flows", 1, 3, f"running={steps[1]}")
    (error,) = certified_flows([fp], lambda a, b, c: problem.teacher.extrapolation_error(a, length=J), policy)
    if progress is not None:
        progress("proposition: flows", 2, 3, f"running={steps[2]}")
    _, series = flow_dynamics(fp)
    times = tuple(None if t is None else float(t) for t in escape_times(series, criteria.escape_level(problem)))
    if progress is not None:
        progress("proposition: flows", 3, 3, "")
    return PropositionReport(problem, hyps, rank, error, times, criteria)



def proposition_report_text(report: PropositionReport) -> str:
    """The printed report: the problem, the hypotheses with provenance, the flow, the verdict."""
    p = report.problem
    lines = [
        f"Proposition check: D = {p.state_dim}, H = {p.horizon}, N = {p.samples}, teacher entries "
        f"{[str(v) for v in p.teacher.entries]} (D* = {p.teacher.dim})",
        f"  inputs {[list(map(str, row)) for row in p.inputs]}, a0 = {[f'{float(v):.4g}' for v in p.a0]}",
        "",
        "hypotheses:",
    ]
    for h in report.hypotheses:
        lines.append(f"  [{'ok' if h.holds else 'FAIL'}] {h.name}: {h.detail}")
        lines.append(f"         {h.statement} ({h.provenance}; concerns {h.concerns})")
    order = ", ".join(f"a_{i}" for i in report.escape_order) or "none"
    lines += [
        "",
        f"learned effective rank : {report.rank.value_text()} (greedy when <= D* + {report.criteria.rank_margin:g})",
        f"extrapolation error    : {report.error.value_text()} over J = {report.criteria.extrapolation_length(p.horizon)} lags "
        f"(extrapolates when <= {report.criteria.extrapolation_threshold:g})",
        f"escape order           : {order} ({'largest |a_i(0)| first' if report.largest_first else 'not largest first'})",
        "",
        "verdict: " + report.verdict(),
    ]
    return "\n".join(lines)


# -- reading a problem -----------------------------------------------------------------------------
def _list(name: str, value) -> list:
    if not isinstance(value, list):
        raise ValueError(f"{name} must be a list, got {value!r}")
    return value


def problem_from_settings(settings: dict) -> CleanProblem:
    """A problem from flat settings: ``teacher`` (entries), ``inputs`` (lists), ``a0``, optional ``state_dim``, ``init_scale``.

    Numbers may be exact ``"p/q"`` strings. ``init_scale`` defaults to ``max |a0_i|``.

    Raises:
        ValueError: a missing or unknown key, a malformed value, or a special set (naming it).
    """
    if not isinstance(settings, dict):
        raise ValueError("config must be a table of settings")
    known = ("teacher", "inputs", "a0", "state_dim", "init_scale")
    for key in settings:
        if key not in known:
            raise ValueError(f"config: unknown key {key!r} (known: {', '.join(known)})")
    for key in ("teacher", "inputs", "a0"):
        if key not in settings:
            raise ValueError(f"config: key {key!r} is missing")
    teacher = settings["teacher"]
    if isinstance(teacher, dict):
        teacher = teacher.get("entries")
    entries = tuple(decode_number(f"teacher[{k}]", v) for k, v in enumerate(_list("teacher", teacher)))
    a0 = tuple(decode_number(f"a0[{k}]", v) for k, v in enumerate(_list("a0", settings["a0"])))
    rows = [tuple(decode_number(f"inputs[{n}][{k}]", v) for k, v in enumerate(_list(f"inputs[{n}]", row)))
            for n, row in enumerate(_list("inputs", settings["inputs"]))]
    from ssmpoison.theory._validation import require_int

    D = require_int("state_dim", settings.get("state_dim", len(a0)), minimum=1)
    scale = settings.get("init_scale")
    scale = max(abs(v) for v in a0) if scale is None else decode_number("init_scale", scale)
    problem = CleanProblem(Teacher(entries, D), rows, a0, scale)
    _require_non_special(problem)
    return problem


def _require_non_special(problem: CleanProblem) -> None:
    special = problem.training_set.special_indices()
    if special:
        raise ValueError(f"inputs{list(special)}: the training set is special (u_(H-2) != 0 in sequence "
                         f"{special[0]}); the Proposition concerns non-special sets")


def load_problem(path: str, kind: str = "training_set") -> CleanProblem:
    """Read a non-special problem.

    Arguments:
        path: the file.
        kind: ``"training_set"`` — a JSON problem object (:meth:`CleanProblem.to_json`, as ``search``
            writes it) or a counterexample record holding one under ``"problem"``; ``"config"`` — a TOML
            or JSON settings file (:func:`problem_from_settings`).

    Returns:
        The :class:`CleanProblem`.

    Raises:
        ValueError: one line naming the file or the field: unreadable, malformed, or special.
    """
    name = "training_set" if kind == "training_set" else "config"
    payload = read_settings_file(path, name)
    if kind == "config":
        return problem_from_settings(payload)
    if "problem" in payload and isinstance(payload["problem"], dict):
        payload = payload["problem"]
    try:
        problem = CleanProblem.from_json(payload)
    except ValueError as exc:
        raise ValueError(f"training_set: {exc}") from None
    _require_non_special(problem)
    return problem
