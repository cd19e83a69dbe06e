"""The Theorem as a checker: conditions, both certified flows, and a verdict.

``check_setting(setting)`` evaluates the conditions of :mod:`ssmpoison.theory._theorem`, runs the flow
without and with the poison ``u† = e_{H-2}`` (or the setting's own
:class:`~ssmpoison.theory._construction.Construction`: scaled clean and poison sequences) through :func:`ssmpoison.verify._certified_flow.certified_flows`
(the exact oracle for the clean flow where it applies), and compares the outcome with the
Theorem's prediction: the clean flow extrapolates to ``H'`` (error within the tolerance) and
the poisoned one does not (its error exceeds what the clean flow provably achieves, or it
diverges). When a
condition fails the Theorem predicts nothing; the report still says what the flows did.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from ssmpoison.theory._construction import Construction, clean_training_set, extrapolation_error, paper_initialisation, poisoned_training_set
from ssmpoison.theory._theorem import Condition, TheoremSetting, conditions
from ssmpoison.theory._validation import require_int, require_real
from ssmpoison.verify._certification import CertificationPolicy
from ssmpoison.verify._certified_flow import CertifiedRun, certified_flows, require_reachable
from ssmpoison.verify._flow import FlowOptions, FlowProblem
from ssmpoison.verify._status import Status

__all__ = ["CheckReport", "check_setting", "paper_setting"]

_BLOWUP = FlowOptions().blowup  # an entry this large counts as a diverged flow


def paper_setting(horizon: int, state_dim: int, extrapolate_to: int, init_scale: float, gap_exponent: float, seed: int,
                  construction: Construction | None = None) -> TheoremSetting:
    """The setting with the paper's initialisation (note 00 §6) for any ``H``, ``D``, ``H'``, scale, gap exponent and seed.

    The published ones are the theory row's settings (:mod:`ssmpoison.verify._registry`), each seed with
    ``extrapolate_to`` its extrapolation length. ``construction`` is the training data (``None``: the
    Theorem's ``{e_0}`` and ``u† = e_{H-2}``).
    """
    D = require_int("state_dim", state_dim, minimum=2)
    scale = require_real("init_scale", init_scale, positive=True)
    if not scale >= sys.float_info.min:
        raise ValueError(f"init_scale must be at least {sys.float_info.min:.3g} (a normal float64 number), got {float(scale):g}")
    if not scale < _BLOWUP:
        raise ValueError(f"init_scale must be below {_BLOWUP:g} (the flows' divergence bound), got {float(scale):g}")
    k = require_real("gap_exponent", gap_exponent)
    seed = require_int("seed", seed, minimum=0)
    return TheoremSetting(horizon, tuple(paper_initialisation(seed, D, scale, k)), extrapolate_to, construction)


@dataclass(frozen=True)
class CheckReport:
    """Conditions, the two certified flows and the verdict of one setting."""

    setting: TheoremSetting
    conditions: tuple[Condition, ...]
    clean: CertifiedRun
    poisoned: CertifiedRun
    clean_tolerance: float

    @property
    def conditions_hold(self) -> bool:
        """Every condition that is not advisory holds (the heuristic poisoned-side ones never decide this)."""
        return all(c.holds for c in self.conditions if not c.advisory)

    @property
    def all_conditions_hold(self) -> bool:
        """Every condition holds, the advisory poisoned-side ones included (note 03 §6)."""
        return all(c.holds for c in self.conditions)

    @property
    def clean_bound(self):
        """The derived upper bound on the clean error (``None`` where it does not apply)."""
        for c in self.conditions:
            if c.name == "clean_greedy_bound" and c.value == c.value:  # not NaN
                return c.value
        return None

    @property
    def outcome_as_predicted(self) -> bool:
        """The Theorem's prediction, made quantitative with certified numbers.

        The clean flow generalises: its error is within the tolerance. The poisoned flow does
        not: its error exceeds what the clean flow provably achieves (the larger of the clean
        error and its derived bound), or it diverges. Both errors must carry certified digits.
        """
        c, p = self.clean, self.poisoned
        if c.status != Status.CONVERGED or c.quantity.digits < 1 or not c.quantity.value <= self.clean_tolerance:
            return False
        if p.status == Status.DIVERGED:
            return True  # a poisoned flow that blows up does not extrapolate either
        if p.status != Status.CONVERGED or p.quantity.digits < 1:
            return False
        clean_best = max(float(c.quantity.value), self.clean_bound or 0.0)
        return float(p.quantity.value) > clean_best

    @property
    def poisoned_over_clean(self) -> float | None:
        """Ratio of the certified errors (``None`` unless both flows converged with a non-zero clean error)."""
        c, p = self.clean, self.poisoned
        if c.status == p.status == Status.CONVERGED and c.quantity.value > 0:
            return float(p.quantity.value / c.quantity.value)
        return None

    @property
    def matches_theorem(self) -> bool:
        """The conditions hold and the flows did what the Theorem predicts."""
        return self.conditions_hold and self.outcome_as_predicted

    def verdict(self) -> str:
        failing = [c.name for c in self.conditions if not c.holds and not c.advisory]
        advisory = [c.name for c in self.conditions if not c.holds and c.advisory and c.value == c.value]
        unevaluated = [c.name for c in self.conditions if not c.holds and c.advisory and c.value != c.value]
        did = "did what the Theorem predicts" if self.outcome_as_predicted else "did not do what the Theorem predicts"
        if not failing and not advisory and unevaluated:
            return (f"the Theorem's conditions hold; the advisory condition(s) {', '.join(unevaluated)} could not be "
                    f"evaluated here, so nothing says whether the poison wins; the flows {did}: "
                    f"matches_theorem = {str(self.matches_theorem).lower()}")
        if not failing and advisory:
            return (f"the Theorem's conditions hold but the advisory poisoned-side condition(s) {', '.join(advisory)} fail "
                    f"(the poison is not expected to win); the flows {did}: "
                    f"matches_theorem = {str(self.matches_theorem).lower()}")
        if not failing:
            return f"all conditions hold and the flows {did}: matches_theorem = {str(self.matches_theorem).lower()}"
        return f"condition(s) {', '.join(failing)} fail, so the Theorem predicts nothing here; the flows {did} anyway"

    def to_json(self) -> dict:
        def run(r: CertifiedRun) -> dict:
            return {
                "ext_error": r.quantity.text,
                "certified_digits": r.quantity.digits,
                "run_value": float(r.quantity.value),
                "abs_difference_to_rerun": float(abs(r.quantity.value - r.quantity.reference)),
                "status": r.status,
                "t_converged": r.t_converged,
                "method": r.method,
                "precision_bits": r.precision_bits,
                "reference_bits": r.reference_bits,
            }

        construction = self.setting.construction or Construction()
        return {
            "horizon": self.setting.horizon,
            "state_dim": self.setting.state_dim,
            "extrapolate_to": self.setting.extrapolate_to,
            "init": [float(v) for v in self.setting.a0],
            "construction": construction.to_json(),
            "conditions": [c.to_json() for c in self.conditions],
            "conditions_hold": self.conditions_hold,
            "all_conditions_hold": self.all_conditions_hold,
            "clean": run(self.clean),
            "poisoned": run(self.poisoned),
            "clean_ext_error": self.clean.quantity.text,
            "poisoned_ext_error": self.poisoned.quantity.text,
            "clean_tolerance": self.clean_tolerance,
            "poisoned_over_clean": self.poisoned_over_clean,
            "clean_bound": self.clean_bound,
            "matches_theorem": self.matches_theorem,
            "verdict": self.verdict(),
        }


def check_setting(setting: TheoremSetting, precision_bits: int | None = None, clean_tolerance: float = 1e-2,
                  progress=None) -> CheckReport:
    """Evaluate the conditions, run both flows with certified digits, and compare with the Theorem.

    Arguments:
        setting: horizon, initial diagonal and extrapolation horizon.
        precision_bits: ``None`` for the default certified path, else the working precision in bits.
        clean_tolerance: extrapolation error up to which the clean flow counts as generalising.
        progress: ``progress(label, done, total, note)``, called before and after each flow (or ``None``).

    Returns:
        The :class:`CheckReport` (rendered by :func:`report_text`, or as JSON by its ``to_json``).
    """
    tol = require_real("clean_tolerance", clean_tolerance, positive=True)
    H, D, J = setting.horizon, setting.state_dim, setting.extrapolate_to
    largest = max(abs(float(v)) for v in setting.a0)
    if not largest < _BLOWUP:
        raise ValueError(f"init: every |a_i(0)| must be below {_BLOWUP:g} (the flows' divergence bound), got {largest:g}")
    if len(set(setting.a0)) == 1:
        # the flows keep equal entries equal; the poisoned set asks sum a_i = 1 (K_1) and sum a_i^(H-1) = 1
        # (K_(H-1)), i.e. a = 1/D and D^(2-H) = 1: impossible for D >= 2, H >= 3
        raise ValueError(f"init: all {D} entries are equal ({float(setting.a0[0]):g}): both flows keep them equal, and "
                         "with equal entries the poisoned set cannot be fitted (sum a_i = 1 and sum a_i^(H-1) = 1 have "
                         "no common solution), so its flow cannot converge; give distinct entries")
    if setting.construction is None:
        sets = (clean_training_set(H), poisoned_training_set(H))
    else:
        sets = (setting.construction.clean_set(H, D), setting.construction.poisoned_set(H, D))
    problems = [FlowProblem(ts, setting.a0) for ts in sets]
    policy = CertificationPolicy(precision_bits=precision_bits)
    require_reachable(problems, policy)  # before any run (and any progress bar)
    runs = []
    for k, (name, problem) in enumerate(zip(("clean", "poisoned"), problems)):
        if progress is not None:
            progress("check: flows", k, len(problems), f"running={name}")
        runs += certified_flows([problem], lambda a, b, c: extrapolation_error(a, b, c, D, J), policy)
    if progress is not None:
        progress("check: flows", len(problems), len(problems), "")
    clean, poisoned = runs
    return CheckReport(setting, tuple(conditions(setting, tol)), clean, poisoned, tol)



def report_text(report: CheckReport) -> str:
    """The printed report: conditions, both flows, verdict."""
    s = report.setting
    lines = [f"Theorem check: H = {s.horizon}, D = {s.state_dim}, H' = {s.extrapolate_to}", "", "conditions:"]
    for c in report.conditions:
        margin = f" (margin x{c.margin:.3g})" if c.margin == c.margin and "margin" not in c.detail else ""
        lines.append(f"  [{'ok' if c.holds else 'FAIL'}] {c.name}: {c.detail}{margin}")
        lines.append(f"         {c.statement} ({c.provenance}{'; advisory' if c.advisory else ''})")
    if s.construction is None or s.construction.is_paper:
        lines += [
            "",
            f"clean flow    (e_0)          : extrapolation error {report.clean.value_text()}",
            f"poisoned flow (e_0, e_(H-2)) : extrapolation error {report.poisoned.value_text()}",
        ]
    else:
        c = s.construction
        lines += [
            "",
            f"clean set    {{{c.describe('clean')}}}",
            f"poisoned set {{{c.describe('poisoned')}}}",
            f"clean flow    : extrapolation error {report.clean.value_text()}",
            f"poisoned flow : extrapolation error {report.poisoned.value_text()}",
        ]
    if report.poisoned_over_clean is not None:
        lines.append(f"poisoned / clean = {report.poisoned_over_clean:.3g}; generalisation tolerance {report.clean_tolerance:g}; "
                     f"clean bound {report.clean_bound:.3g}" if report.clean_bound is not None else
                     f"poisoned / clean = {report.poisoned_over_clean:.3g}; generalisation tolerance {report.clean_tolerance:g}")
    lines += ["", "verdict: " + report.verdict()]
    return "\n".join(lines)
