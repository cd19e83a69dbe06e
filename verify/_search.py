r"""Hypothesis search, outside pytest, for non-special training sets on which greedy low-rank learning or extrapolation fails.

The search space is :func:`ssmpoison.verify._strategies.clean_problems` (non-special by construction, clean
labels from a teacher of dimension D*); the criteria are :class:`ssmpoison.verify._counterexample.SearchCriteria`.
Three phases, each deterministic for a given seed:

1. **Explore.** Hypothesis draws ``budget`` problems (``@seed(seed)``, no database, no
   deadline, no health checks: nothing depends on the clock or on earlier runs). Each distinct
   problem gets a float64 flow (:func:`ssmpoison.verify._counterexample.evaluate`); the outcomes are
   tallied per D, H, N, D*, lowest excited lag ``l*``, status and failed criterion.
2. **Shrink.** For every *slot* — a criterion, a teacher dimension and a regime (``l* = 1``,
   where the entries grow at one common exponential rate, or ``l* >= 2``, the Proposition's
   greedy regime; :func:`ssmpoison.verify._counterexample.regime`) — that failed at least once,
   Hypothesis runs again from the same seed, now raising on the slot's failures: it meets the
   same first failure (every earlier problem is answered from the cache) and shrinks it.
   At most ``shrink_budget`` new flows are run per slot; past that, unseen candidates count as
   passing (the answer is cached, so Hypothesis sees a consistent test), which keeps the run's
   length, and hence its result, independent of the machine's speed.
3. **Certify.** Each shrunk failure is re-run at ``precision_bits`` bits against an independent
   re-run at more bits (:func:`ssmpoison.verify._counterexample.certify_failure`); only certified failures
   are reported as counterexamples. The others are listed under ``explored`` with the reason.
4. **Classify.** Every certified counterexample is held against the Proposition's hypotheses
   (:func:`ssmpoison.verify._proposition_check.counterexample_hypotheses`): *inside* the hypotheses
   when every hypothesis that concerns its criterion holds (a counterexample to the stated
   result), a *boundary case* otherwise. The JSON's ``hypotheses`` holds the counts and, per
   counterexample (in order), each hypothesis with holds/fails.

:func:`run_search` takes a :class:`SearchConfig` (validated at construction) and returns a
:class:`SearchReport`; its JSON (:meth:`SearchReport.to_json`) has ``counterexamples`` (records of
:mod:`ssmpoison.verify._replay`, each replayable: the same computation, hence the same numbers on
the same code) and ``explored``. Progress is reported to an optional callback; the text of the
report is rendered by :mod:`ssmpoison.verify._search_text`. Nothing here prints.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed

from ssmpoison.theory._validation import require_int
from ssmpoison.verify._budget import budget_expired, budget_seconds_left, wall_clock_budget
from ssmpoison.verify._status import Status
from ssmpoison.verify._clean_problem import CleanProblem, encode_number
from ssmpoison.verify._code_fingerprint import code_fingerprint
from ssmpoison.verify._counterexample import CRITERIA, SearchCriteria, evaluate, lowest_gamma_order, regime
from ssmpoison.verify._certification import SEARCH_CERTIFICATION
from ssmpoison.verify._numbers import require_precision_bits
from ssmpoison.verify._proposition_check import counterexample_hypotheses
from ssmpoison.verify._replay import counterexample_record
from ssmpoison.verify._strategies import INIT_SCALES, TEACHER_GRID, clean_problems

__all__ = ["SearchConfig", "SearchReport", "SlotShrink", "SlotCertification", "run_search", "TALLIES"]

#: The keys the explored problems are tallied by, in the order of the report (``by_<key>`` tables).
TALLIES = ("state_dim", "horizon", "samples", "teacher_dim", "lowest_gamma_order", "init_scale")
#: Flow statuses counted in the report, in its order.
_STATUSES = (Status.CONVERGED.value, Status.DIVERGED.value, Status.TIME_LIMIT.value)
#: The two regimes of a slot (:func:`ssmpoison.verify._counterexample.regime`), in the order slots are shrunk.
_REGIMES = ("l*=1", "l*>=2")


@dataclass(frozen=True)
class SearchConfig:
    """What to search, how much, and by which criteria; validated at construction.

    Arguments:
        budget: number of problems Hypothesis draws in the exploration phase (integer >= 1).
        seed: Hypothesis seed (integer in ``[0, 2^63 - 1]``); equal configurations give equal reports.
        teacher_dims: teacher dimensions D* to draw (a non-empty sequence of integers in
            ``[1, max_state_dim]``; stored sorted, without repeats).
        max_state_dim: largest student dimension D (integer >= 2); D is drawn from ``[max(2, min D*), max_state_dim]``.
        max_horizon: largest horizon H (integer >= 3); H is drawn from ``[3, max_horizon]``.
        max_samples: largest number of sequences N (integer >= 1); N is drawn from ``[1, max_samples]``.
        shrink_budget: new flows allowed while shrinking one slot's failure (integer >= 0).
        precision_bits: working precision, in bits, of the certifying re-run (integer >= 64).
        jobs: processes for the exploration flows (integer >= 1); the report does not depend on it.
        criteria: the thresholds of the two criteria (:class:`ssmpoison.verify._counterexample.SearchCriteria`).

    Raises:
        ValueError: a field out of its range (the message names the field), or a teacher dimension
            above ``max_state_dim``.
    """

    budget: int
    seed: int
    teacher_dims: tuple = (1, 2)
    max_state_dim: int = 6
    max_horizon: int = 8
    max_samples: int = 4
    shrink_budget: int = 120
    precision_bits: int = SEARCH_CERTIFICATION.precision_bits
    jobs: int = 1
    criteria: SearchCriteria = SearchCriteria()

    def __post_init__(self) -> None:
        object.__setattr__(self, "budget", require_int("budget", self.budget, minimum=1))
        object.__setattr__(self, "seed", require_int("seed", self.seed, minimum=0, maximum=2**63 - 1))
        object.__setattr__(self, "max_state_dim", require_int("max_state_dim", self.max_state_dim, minimum=2))
        object.__setattr__(self, "max_horizon", require_int("max_horizon", self.max_horizon, minimum=3))
        object.__setattr__(self, "max_samples", require_int("max_samples", self.max_samples, minimum=1))
        if isinstance(self.teacher_dims, (str, bytes)):
            raise ValueError(f"teacher_dims must be a sequence of integers, got {self.teacher_dims!r}")
        try:
            dims = tuple(self.teacher_dims)
        except TypeError:
            raise ValueError(f"teacher_dims must be a sequence of integers, got {self.teacher_dims!r}") from None
        if not dims:
            raise ValueError("teacher_dims must hold at least one teacher dimension")
        checked = []
        for d in dims:
            d = require_int("teacher_dim", d, minimum=1)
            if d > self.max_state_dim:
                raise ValueError(
                    f"teacher dimension D* = {d} is higher than the largest student dimension D = {self.max_state_dim}"
                )
            checked.append(d)
        object.__setattr__(self, "teacher_dims", tuple(sorted(set(checked))))
        object.__setattr__(self, "shrink_budget", require_int("shrink_budget", self.shrink_budget, minimum=0))
        object.__setattr__(self, "precision_bits", require_precision_bits(self.precision_bits, minimum=64))
        object.__setattr__(self, "jobs", require_int("jobs", self.jobs, minimum=1))
        if not isinstance(self.criteria, SearchCriteria):
            raise ValueError(f"criteria must be a SearchCriteria, got {type(self.criteria).__name__}")

    def strategy(self):
        """The Hypothesis strategy of the searched space (:func:`ssmpoison.verify._strategies.clean_problems`)."""
        return clean_problems(self.teacher_dims, self.max_state_dim, self.max_horizon, self.max_samples)

    def hypothesis_settings(self, phases) -> settings:
        """Hypothesis settings that make a run a function of the seed alone.

        Arguments:
            phases: the Hypothesis phases to run (generation, and shrinking while shrinking).

        Returns:
            ``budget`` examples, no example database, no deadline, no health checks, no blob printed.
        """
        return settings(
            max_examples=self.budget,
            phases=phases,
            database=None,
            deadline=None,
            derandomize=False,
            report_multiple_bugs=False,
            suppress_health_check=list(HealthCheck),
            print_blob=False,
            verbosity=Verbosity.quiet,  # no "reproduce with @seed" line when the wall-clock budget ends a phase
        )

    def space_json(self) -> dict:
        """The searched space in the report's words: ranges of D, H, N, the teacher grid, the initialisation, the inputs."""
        return {
            "state_dim": [max(2, min(self.teacher_dims)), self.max_state_dim],
            "horizon": [3, self.max_horizon],
            "samples": [1, self.max_samples],
            "teacher_dims": list(self.teacher_dims),
            "teacher_entries": [encode_number(v) for v in TEACHER_GRID],
            "init_scales": [encode_number(v) for v in INIT_SCALES],
            "init": "a0_i = ±(k_i/64)·scale, distinct k_i in [1, 64], random signs",
            "inputs": "N distinct sequences, integers in [-3, 3] \\ {0} on a support in {0..H-2-l*} ∪ {H-1} "
            "(random subset or full), u_(H-2) = 0 (non-special), at least one entry at a position <= H-3; "
            "the lowest excited lag l* uniform in [1, H-2]",
            "labels": "clean: the teacher's outputs",
        }


# -- the result -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SlotShrink:
    """How the shrinking of one slot (criterion, teacher dimension D*, regime) went.

    Arguments:
        criterion: the failed criterion (one of :data:`ssmpoison.verify._counterexample.CRITERIA`).
        teacher_dim: the teacher dimension D* of the slot.
        regime: ``"l*=1"`` or ``"l*>=2"``.
        new_flows: float64 flows run while shrinking (problems not met during exploration).
        found: whether Hypothesis met a failure of the slot again (and shrank it).
        budget_exhausted: whether ``new_flows`` reached the configuration's ``shrink_budget``.
    """

    criterion: str
    teacher_dim: int
    regime: str
    new_flows: int
    budget_exhausted: bool
    found: bool

    def to_json(self) -> dict:
        return {"criterion": self.criterion, "teacher_dim": self.teacher_dim, "regime": self.regime,
                "new_flows": self.new_flows, "budget_exhausted": self.budget_exhausted, "found": self.found}


@dataclass(frozen=True)
class SlotCertification:
    """The certification of one slot's shrunk failure.

    Arguments:
        criterion, teacher_dim, regime: the slot (as in :class:`SlotShrink`).
        certified: whether the failure is certified by the high-precision re-runs.
        reason: the certification's reason (why it is, or is not, certified).
        problem: the shrunk problem's JSON when it is not certified (a certified one is a counterexample), else ``None``.
    """

    criterion: str
    teacher_dim: int
    regime: str
    certified: bool
    reason: str
    problem: dict | None = None

    def to_json(self) -> dict:
        out = {"criterion": self.criterion, "teacher_dim": self.teacher_dim, "regime": self.regime,
               "certified": self.certified, "reason": self.reason}
        return out if self.certified else out | {"problem": self.problem}


@dataclass(frozen=True)
class SearchReport:
    """What a search found: the certified counterexamples and an account of everything explored.

    Arguments:
        config: the search's configuration (seed, budget, space, criteria).
        code: fingerprint of the code the search ran on (:func:`ssmpoison.verify._code_fingerprint.code_fingerprint`).
        examples: problems drawn (``budget``, fewer when the command's wall-clock budget passed; Hypothesis
            may draw a problem more than once).
        distinct: distinct problems drawn and screened, each by one float64 flow (fewer when the wall-clock budget
            passed).
        statuses: the flows' statuses, ``{"converged": n, "diverged": n, "time_limit": n}``.
        nothing_escaped: screened flows in which no entry escaped (nothing learned: no criterion judged).
        screened_failures: float64 failures per criterion, over the distinct problems.
        tallies: ``{"by_<key>": {value: {"examples", "converged", <criterion>...}}}`` for each key of
            :data:`TALLIES`, values in increasing order.
        shrinking: one :class:`SlotShrink` per slot that failed during exploration.
        certification: one :class:`SlotCertification` per shrunk failure.
        counterexamples: the certified failures, as replayable records (:func:`ssmpoison.verify._replay.counterexample_record`).
        classification: per counterexample, in order, ``{"criterion", "inside_hypotheses", "failing", "hypotheses"}``
            (:func:`ssmpoison.verify._proposition_check.counterexample_hypotheses`; ``failing`` names the failing
            hypotheses that concern the criterion, ``hypotheses`` lists all with holds/fails).
    """

    config: SearchConfig
    code: str
    examples: int
    distinct: int
    statuses: dict
    nothing_escaped: int
    screened_failures: dict
    tallies: dict
    shrinking: tuple
    certification: tuple
    counterexamples: tuple
    classification: tuple = ()

    @property
    def inside_hypotheses(self) -> int:
        """Counterexamples inside the Proposition's hypotheses (counterexamples to the stated result)."""
        return sum(c["inside_hypotheses"] for c in self.classification)

    @property
    def boundary_cases(self) -> int:
        """Counterexamples outside the Proposition's hypotheses (some hypothesis of their criterion fails)."""
        return len(self.classification) - self.inside_hypotheses

    @property
    def shrink_flows(self) -> int:
        """New float64 flows run while shrinking, over every slot."""
        return sum(s.new_flows for s in self.shrinking)

    def to_json(self) -> dict:
        """The JSON report: ``counterexamples`` (replayable records) and ``explored``, keys in a fixed order."""
        explored = {
            "code": self.code,
            "seed": self.config.seed,
            "budget": self.config.budget,
            "examples": self.examples,
            "distinct": self.distinct,
            "space": self.config.space_json(),
            "criteria": self.config.criteria.to_json(),
            "statuses": dict(self.statuses),
            "nothing_escaped": self.nothing_escaped,
            "screened_failures": dict(self.screened_failures),
            **{name: {k: dict(v) for k, v in rows.items()} for name, rows in self.tallies.items()},
            "shrinking": [s.to_json() for s in self.shrinking],
            "certification": [c.to_json() for c in self.certification],
            "shrink_flows": self.shrink_flows,
        }
        hypotheses = {
            "inside_hypotheses": self.inside_hypotheses,
            "boundary_cases": self.boundary_cases,
            "counterexamples": [dict(c) for c in self.classification],
        }
        return {"counterexamples": list(self.counterexamples), "hypotheses": hypotheses, "explored": explored}


# -- progress -------------------------------------------------------------------------------------
def _phase(progress, name: str, total: int):
    """Announce phase ``name`` (``total`` flows at most) to ``progress``; returns ``step(n)``, n more flows done."""
    if progress is None:
        return lambda n=1: None
    done = 0
    progress(name, 0, total)

    def step(n: int = 1) -> None:
        nonlocal done
        done += n
        progress(name, done, total)

    return step


# -- exploration ----------------------------------------------------------------------------------
class _OutOfTime(BaseException):
    """The command's wall-clock budget passed while Hypothesis drew problems.

    A ``BaseException``: Hypothesis lets it through at once instead of taking it for a failing example
    (which it would replay, and call flaky when the replay passes)."""


def _draw(config: SearchConfig) -> list[CleanProblem]:
    """The ``budget`` problems Hypothesis draws from the seed, in drawing order (repeats included); the ones
    drawn so far when the command's wall-clock budget passes (a prefix of the full list)."""
    drawn: list[CleanProblem] = []

    @hypothesis_seed(config.seed)
    @config.hypothesis_settings([Phase.generate])
    @given(config.strategy())
    def collect(problem):
        if budget_expired():
            raise _OutOfTime
        drawn.append(problem)

    try:
        collect()
    except _OutOfTime:
        pass
    return drawn


def _evaluate_within(task):
    """:func:`evaluate` of ``(problem, criteria, deadline)`` until the wall-clock ``deadline`` (``time.time()``; ``inf``: none), for a worker."""
    problem, criteria, deadline = task
    seconds = deadline - time.time()
    with wall_clock_budget(None if math.isinf(seconds) else max(seconds, 1e-9)):
        return evaluate(problem, criteria)


def _evaluate_all(problems, criteria, jobs: int, step) -> list:
    """The float64 screen of every problem, in order (``jobs`` processes when there are enough problems)."""
    if jobs == 1 or len(problems) < 2 * jobs:
        out = []
        for p in problems:
            if budget_expired():  # the command's wall-clock budget: the problems screened so far
                break
            out.append(evaluate(p, criteria))
            step(1)
        return out
    from ssmpoison.verify._parallel import Backend, run_ordered

    # joblib workers (the one way to run many jobs): they ignore SIGINT and die with this process;
    # they are fresh interpreters, so each task carries the command's wall-clock deadline
    deadline = time.time() + budget_seconds_left()
    out = []
    for outcome in run_ordered(_evaluate_within, [(p, criteria, deadline) for p in problems], Backend("joblib", jobs)):
        if budget_expired():
            break
        out.append(outcome)
        step(1)
    return out


def _tally(problems, outcomes) -> dict:
    """Per key of :data:`TALLIES` and value: examples, converged flows and failures per criterion."""

    def new():
        return Counter({"examples": 0, "converged": 0, **{c: 0 for c in CRITERIA}})

    tables = {key: {} for key in TALLIES}
    for p, o in zip(problems, outcomes):
        keys = {
            "state_dim": p.state_dim,
            "horizon": p.horizon,
            "samples": p.samples,
            "teacher_dim": p.teacher.dim,
            "lowest_gamma_order": lowest_gamma_order(p),
            "init_scale": encode_number(p.init_scale),
        }
        for table, value in keys.items():
            row = tables[table].setdefault(str(value), new())
            row["examples"] += 1
            row["converged"] += o.status == Status.CONVERGED
            for c in o.failures:
                row[c] += 1
    return {f"by_{name}": {k: dict(v) for k, v in sorted(rows.items(), key=lambda kv: _sort_key(kv[0]))} for name, rows in tables.items()}


def _sort_key(text: str):
    """Numbers (integers, fractions) in increasing order, then any other text."""
    try:
        return (0, Fraction(text))
    except ValueError:
        return (1, text)


# -- shrinking ------------------------------------------------------------------------------------
class _SlotFailure(Exception):
    """Raised inside the Hypothesis test when a problem fails the slot being shrunk."""

    def __init__(self, problem: CleanProblem):
        super().__init__("slot failure")
        self.problem = problem


def _shrink(config: SearchConfig, slot: tuple, cache: dict, step):
    """Shrink the slot's first failure.

    Returns:
        ``(minimal problem or None, new flows run)``; ``cache`` (problem -> outcome) gains the new flows.
    """
    criterion = slot[0]
    fresh = 0

    def fails(problem: CleanProblem) -> bool:
        nonlocal fresh
        if _slot_of(problem)[1:] != slot[1:]:
            return False
        outcome = cache.get(problem)
        if outcome is None:
            if fresh >= config.shrink_budget:
                return False
            outcome = cache[problem] = evaluate(problem, config.criteria)
            fresh += 1
            step(1)
        return criterion in outcome.failures

    @hypothesis_seed(config.seed)
    @config.hypothesis_settings([Phase.generate, Phase.shrink])
    @given(config.strategy())
    def hunt(problem):
        if fails(problem):
            raise _SlotFailure(problem)

    try:
        hunt()
    except _SlotFailure as found:
        return found.problem, fresh
    return None, fresh


def _slot_of(problem: CleanProblem, criterion: str = "") -> tuple:
    return (criterion, problem.teacher.dim, regime(problem))


# -- the search -----------------------------------------------------------------------------------
def run_search(config: SearchConfig, progress=None) -> SearchReport:
    """Explore, shrink and certify (module docstring).

    Arguments:
        config: what to search (a validated :class:`SearchConfig`).
        progress: ``None``, or a callable ``progress(phase, done, total)`` told of every flow run:
            called with ``done = 0`` when a phase starts (``"exploring"``, ``"shrinking <slot>"``,
            ``"certifying"``; ``total`` is the phase's number of flows, at most), then after each
            flow with the flows done so far. It cannot change the result.

    Returns:
        The :class:`SearchReport`; equal configurations give equal reports (whatever ``jobs``).

    Raises:
        ValueError: ``config`` is not a :class:`SearchConfig`.
    """
    if not isinstance(config, SearchConfig):
        raise ValueError(f"config must be a SearchConfig, got {type(config).__name__}")
    criteria = config.criteria
    drawn = _draw(config)
    distinct = list(dict.fromkeys(drawn))
    outcomes = _evaluate_all(distinct, criteria, config.jobs, _phase(progress, "exploring", len(distinct)))
    distinct = distinct[:len(outcomes)]  # fewer when the wall-clock budget passed
    cache = dict(zip(distinct, outcomes))

    slots = [(c, d, r) for d in config.teacher_dims for r in _REGIMES for c in CRITERIA]
    failing = [s for s in slots if any(s[0] in o.failures and _slot_of(p, s[0]) == s for p, o in cache.items())]
    shrunk, shrinking = [], []
    for slot in failing:
        step = _phase(progress, f"shrinking {slot[0]} D*={slot[1]} {slot[2]}", config.shrink_budget)
        minimal, fresh = _shrink(config, slot, cache, step)
        shrinking.append(SlotShrink(*slot, new_flows=fresh, budget_exhausted=fresh >= config.shrink_budget, found=minimal is not None))
        if minimal is not None:
            shrunk.append((slot, minimal))
    counterexamples, certification = [], []
    step = _phase(progress, "certifying", len(shrunk))
    for slot, minimal in shrunk:
        record, ok = counterexample_record(minimal, slot[0], criteria, SEARCH_CERTIFICATION.with_precision(config.precision_bits))
        step(1)
        certification.append(SlotCertification(*slot, certified=ok, reason=record["certified"]["reason"],
                                                problem=None if ok else record["problem"]))
        if ok:
            counterexamples.append(record)
    classification = []
    for record in counterexamples:
        inside, hyps = counterexample_hypotheses(CleanProblem.from_json(record["problem"]), record["criterion"])
        classification.append({"criterion": record["criterion"], "inside_hypotheses": inside,
                               "failing": [h.name for h in hyps if not h.holds
                                           and (record["criterion"] == "extrapolation" or h.concerns == "greedy_low_rank")],
                               "hypotheses": [h.to_json() for h in hyps]})

    statuses = Counter(o.status for o in outcomes)
    screened = Counter(c for o in outcomes for c in o.failures)
    return SearchReport(
        config=config,
        code=code_fingerprint("ssmpoison.verify._search"),
        examples=len(drawn),
        distinct=len(distinct),
        statuses={s: statuses.get(s, 0) for s in _STATUSES},
        nothing_escaped=sum(o.escaped == 0 for o in outcomes),
        screened_failures={c: screened.get(c, 0) for c in CRITERIA},
        tallies=_tally(distinct, outcomes),
        shrinking=tuple(shrinking),
        certification=tuple(certification),
        counterexamples=tuple(counterexamples),
        classification=tuple(classification),
    )
