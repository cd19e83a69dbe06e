r"""Hypothesis search, outside pytest, for non-special training sets on which greedy low-rank learning or extrapolation fails.

The search space is :func:`ssmpoison.verify.strategies.clean_problems` (non-special by construction, clean
labels from a teacher of dimension D*); the criteria are :class:`ssmpoison.verify.counterexample.SearchCriteria`.
Three phases, each deterministic for a given seed:

1. **Explore.** Hypothesis draws ``budget`` problems (``@seed(seed)``, no database, no
   deadline, no health checks: nothing depends on the clock or on earlier runs). Each distinct
   problem gets a float64 flow (:func:`ssmpoison.verify.counterexample.evaluate`); the outcomes are
   tallied per D, H, N, D*, lowest excited lag ``l*``, status and failed criterion.
2. **Shrink.** For every *slot* — a criterion, a teacher dimension and a regime (``l* = 1``,
   where the entries grow at one common exponential rate, or ``l* >= 2``, the Proposition's
   greedy regime; :func:`ssmpoison.verify.counterexample.regime`) — that failed at least once,
   Hypothesis runs again from the same seed, now raising on the slot's failures: it meets the
   same first failure (every earlier problem is answered from the cache) and shrinks it.
   At most ``shrink_budget`` new flows are run per slot; past that, unseen candidates count as
   passing (the answer is cached, so Hypothesis sees a consistent test), which keeps the run's
   length, and hence its result, independent of the machine's speed.
3. **Certify.** Each shrunk failure is re-run at ``precision_bits`` bits against an independent
   re-run at more bits (:func:`ssmpoison.verify.counterexample.certify_failure`); only certified failures
   are reported as counterexamples. The others are listed under ``explored`` with the reason.

The JSON report has ``counterexamples`` (records of :mod:`verify.replay`, each replayable: the
same computation, hence the same numbers on the same code) and ``explored``.
"""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

from ssmpoison.theory.validation import require_int
from ssmpoison.verify.code_fingerprint import code_fingerprint
from ssmpoison.verify.clean_problem import CleanProblem, encode_number
from ssmpoison.verify.counterexample import CRITERIA, SearchCriteria, evaluate, lowest_gamma_order, regime
from ssmpoison.verify._certification import SEARCH_CERTIFICATION
from ssmpoison.verify._numbers import require_precision_bits
from ssmpoison.verify.replay import counterexample_record, record_lines
from ssmpoison.verify.strategies import INIT_SCALES, TEACHER_GRID, clean_problems

__all__ = ["SearchConfig", "run_search", "report_text", "search_command"]



@dataclass(frozen=True)
class SearchConfig:
    """What to search and how much.

    Args:
        budget: number of problems Hypothesis draws in the exploration phase (>= 1).
        seed: Hypothesis seed (>= 0); equal seeds give equal reports.
        teacher_dims: teacher dimensions D* to draw (each in ``[1, max_state_dim]``).
        max_state_dim, max_horizon, max_samples: upper bounds of D (>= 2), H (>= 3), N (>= 1).
        shrink_budget: new flows allowed while shrinking one failure (>= 0).
        precision_bits: bits of the certifying re-run (>= 64).
        jobs: processes for the exploration flows (>= 1).
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "budget", require_int("budget", self.budget, minimum=1))
        object.__setattr__(self, "seed", require_int("seed", self.seed, minimum=0, maximum=2**63 - 1))
        object.__setattr__(self, "max_state_dim", require_int("max_state_dim", self.max_state_dim, minimum=2))
        object.__setattr__(self, "max_horizon", require_int("max_horizon", self.max_horizon, minimum=3))
        object.__setattr__(self, "max_samples", require_int("max_samples", self.max_samples, minimum=1))
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

    def strategy(self):
        return clean_problems(self.teacher_dims, self.max_state_dim, self.max_horizon, self.max_samples)

    def hypothesis_settings(self, phases) -> settings:
        """Settings that make a run a function of the seed alone."""
        return settings(
            max_examples=self.budget,
            phases=phases,
            database=None,
            deadline=None,
            derandomize=False,
            report_multiple_bugs=False,
            suppress_health_check=list(HealthCheck),
            print_blob=False,
        )

    def space_json(self) -> dict:
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


# -- exploration ----------------------------------------------------------------------------------
def _draw(config: SearchConfig) -> list[CleanProblem]:
    drawn: list[CleanProblem] = []

    @hypothesis_seed(config.seed)
    @config.hypothesis_settings([Phase.generate])
    @given(config.strategy())
    def collect(problem):
        drawn.append(problem)

    collect()
    return drawn


def _evaluate_all(problems, criteria, jobs: int, progress) -> list:
    if jobs == 1 or len(problems) < 2 * jobs:
        out = []
        for p in problems:
            out.append(evaluate(p, criteria))
            progress(1)
        return out
    from joblib import Parallel, delayed

    out = []
    for outcome in Parallel(n_jobs=jobs, return_as="generator")(delayed(evaluate)(p, criteria) for p in problems):
        out.append(outcome)
        progress(1)
    return out


def _tally(problems, outcomes) -> dict:
    def new():
        return Counter({"examples": 0, "converged": 0, **{c: 0 for c in CRITERIA}})

    tables = {key: {} for key in ("state_dim", "horizon", "samples", "teacher_dim", "lowest_gamma_order", "init_scale")}
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
            row["converged"] += o.status == "converged"
            for c in o.failures:
                row[c] += 1
    return {f"by_{name}": {k: dict(v) for k, v in sorted(rows.items(), key=lambda kv: _sort_key(kv[0]))} for name, rows in tables.items()}


def _sort_key(text: str):
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


def _shrink(config: SearchConfig, criteria: SearchCriteria, slot: tuple, cache: dict, progress):
    """Shrink the slot's first failure; returns ``(minimal problem or None, new flows run)``."""
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
            outcome = cache[problem] = evaluate(problem, criteria)
            fresh += 1
            progress(1)
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


def _slot_name(slot: tuple) -> str:
    return f"{slot[0]} D*={slot[1]} {slot[2]}"


# -- the search -----------------------------------------------------------------------------------
def _silent(phase: str, total: int):
    return contextlib.nullcontext(lambda n: None)


def run_search(config: SearchConfig, criteria: SearchCriteria = SearchCriteria(), progress=_silent) -> dict:
    """Explore, shrink and certify (module docstring); returns the JSON report.

    ``progress(phase, total)`` is a context manager yielding ``step(n)`` (n more flows done).
    """
    drawn = _draw(config)
    distinct = list(dict.fromkeys(drawn))
    with progress("exploring", len(distinct)) as step:
        outcomes = _evaluate_all(distinct, criteria, config.jobs, step)
    cache = dict(zip(distinct, outcomes))

    slots = [(c, d, r) for d in config.teacher_dims for r in ("l*=1", "l*>=2") for c in CRITERIA]
    failing = [s for s in slots if any(s[0] in o.failures and _slot_of(p, s[0]) == s for p, o in cache.items())]
    shrunk, shrinking = [], []
    for slot in failing:
        with progress(f"shrinking {_slot_name(slot)}", config.shrink_budget) as step:
            minimal, fresh = _shrink(config, criteria, slot, cache, step)
        name = dict(criterion=slot[0], teacher_dim=slot[1], regime=slot[2])
        shrinking.append({**name, "new_flows": fresh, "budget_exhausted": fresh >= config.shrink_budget, "found": minimal is not None})
        if minimal is not None:
            shrunk.append((name, minimal))
    counterexamples, certification = [], []
    with progress("certifying", len(shrunk)) as step:
        for name, minimal in shrunk:
            record, ok = counterexample_record(minimal, name["criterion"], criteria, SEARCH_CERTIFICATION.with_precision(config.precision_bits))
            step(1)
            certification.append({**name, "certified": ok, "reason": record["certified"]["reason"]}
                                 | ({} if ok else {"problem": record["problem"]}))
            if ok:
                counterexamples.append(record)

    statuses = Counter(o.status for o in outcomes)
    screened = Counter(c for o in outcomes for c in o.failures)
    explored = {
        "code": code_fingerprint("ssmpoison.verify.search"),
        "seed": config.seed,
        "budget": config.budget,
        "examples": len(drawn),
        "distinct": len(distinct),
        "space": config.space_json(),
        "criteria": criteria.to_json(),
        "statuses": {s: statuses.get(s, 0) for s in ("converged", "diverged", "time_limit")},
        "nothing_escaped": sum(o.escaped == 0 for o in outcomes),
        "screened_failures": {c: screened.get(c, 0) for c in CRITERIA},
        **_tally(distinct, outcomes),
        "shrinking": shrinking,
        "certification": certification,
        "shrink_flows": sum(s["new_flows"] for s in shrinking),
    }
    return {"counterexamples": counterexamples, "explored": explored}


# -- text -----------------------------------------------------------------------------------------
def report_text(report: dict, criteria: SearchCriteria) -> str:
    e = report["explored"]
    lines = ["Criteria:"] + [f"  - {line}" for line in criteria.lines()]
    s = e["space"]
    lines += [
        "",
        f"Explored (seed {e['seed']}, budget {e['budget']}): {e['examples']} examples drawn, {e['distinct']} distinct; "
        f"D in {s['state_dim']}, H in {s['horizon']}, N in {s['samples']}, D* in {s['teacher_dims']}, init scales {s['init_scales']}",
        f"  flow statuses: {', '.join(f'{k} {v}' for k, v in e['statuses'].items())}; nothing escaped in {e['nothing_escaped']}",
        f"  float64 failures: {', '.join(f'{k} {v}' for k, v in e['screened_failures'].items())}",
    ]
    for name in ("state_dim", "horizon", "samples", "teacher_dim", "lowest_gamma_order", "init_scale"):
        rows = e[f"by_{name}"]
        cells = "  ".join(f"{k}: {v['examples']} ({v['converged']} conv, {v['greedy_low_rank']} greedy, {v['extrapolation']} extrap)" for k, v in rows.items())
        lines.append(f"  by {name}: {cells}")
    for s in e["shrinking"]:
        lines.append(f"  shrinking {s['criterion']} D*={s['teacher_dim']} {s['regime']}: {s['new_flows']} new flows")
    lines.append("")
    if not report["counterexamples"]:
        lines.append("No certified counterexample found.")
    else:
        lines.append(f"{len(report['counterexamples'])} certified counterexample(s):")
        for record in report["counterexamples"]:
            lines += [""] + record_lines(record)
    for c in e["certification"]:
        if not c["certified"]:
            lines.append(f"  (shrunk {c['criterion']} D*={c['teacher_dim']} {c['regime']} failure not certified: {c['reason']})")
    return "\n".join(lines)


# -- CLI entry point -----------------------------------------------------------------------------
@contextlib.contextmanager
def _tqdm_progress(phase: str, total: int):
    from tqdm import tqdm

    with tqdm(total=total, desc=phase, unit="flow", file=sys.stderr, leave=False, dynamic_ncols=True) as bar:
        yield bar.update


def search_command(budget, seed, teacher_dim, json_path, jobs="1") -> int:
    """``ssmpoison search``: run, print the criteria and the report (unless JSON goes to stdout), write JSON."""
    from ssmpoison.verify.jsonio import write_json

    dims = (1, 2) if teacher_dim is None else (require_int("teacher_dim", teacher_dim, minimum=1),)
    config = SearchConfig(budget=budget, seed=seed, teacher_dims=dims, jobs=jobs)
    criteria = SearchCriteria()
    report = run_search(config, criteria, _tqdm_progress)
    if json_path != "-":
        print(report_text(report, criteria))
    if json_path:
        write_json(json_path, report)
    return 0


