"""The jobs a sweep can map over a parameter grid: a registry of data, one entry per job.

A :class:`SweepJob` names its parameters (with their kinds and defaults), its metrics and the
function that computes the metrics of one point from its parameters. Each point is independent
and deterministic: its result is a function of its parameters alone (the paper's initialisation
is seeded by the point's ``seed`` parameter), so a sweep's results do not depend on the backend,
the number of workers or the order in which the points finish. A new job is one
:func:`register_job` call (or one entry below), not a code path.

:func:`run_point` is what a worker runs: it validates nothing twice, times the job and turns a
refused point (a ``ValueError``: the point is outside the job's domain, e.g. a gap that would
unsort the initialisation) into status ``refused`` with its reason, and any other error into
status ``failed``, so that one bad point never stops a sweep.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from ssmpoison.verify._status import Status

__all__ = ["SweepJob", "SWEEP_JOBS", "register_job", "sweep_job", "run_point"]

#: the kinds of a parameter: how a value in a sweep file is read
_KINDS = ("int", "real")


@dataclass(frozen=True)
class SweepJob:
    """A job of the sweep registry.

    Arguments:
        name: the job's name in sweep files (``job = "check"``).
        description: one line: what a point computes.
        params: ``{parameter: (kind, default)}``, kind ``"int"`` or ``"real"``; default ``None``: required.
        metrics: the names of the metrics a point returns, in display order.
        digits: the metrics that are certified digit counts.
        fn: ``fn(params) -> {metric: value}`` (a module-level function, picklable for the workers).
    """

    name: str
    description: str
    params: dict
    metrics: tuple
    digits: tuple
    fn: object

    def point_params(self, values: dict, where: str) -> dict:
        """One point's parameters: ``values`` checked against :attr:`params`, defaults filled in.

        Arguments:
            values: parameter values (from a sweep file's fixed table and one design point).
            where: the start of every error message (e.g. ``sweep file 'x.toml'``).

        Returns:
            ``{parameter: value}`` for every parameter of the job, ints as ``int`` and reals as ``float``.

        Raises:
            ValueError: naming the parameter: unknown, missing without a default, or of the wrong kind.
        """
        unknown = sorted(set(values) - set(self.params))
        if unknown:
            raise ValueError(f"{where}: job {self.name!r} has no parameter {unknown[0]!r} "
                             f"(its parameters: {', '.join(self.params)})")
        out = {}
        for name, (kind, default) in self.params.items():
            value = values.get(name, default)
            if value is None:
                raise ValueError(f"{where}: parameter {name!r} of job {self.name!r} needs a value")
            out[name] = _as_kind(value, kind, f"{where}: parameter {name!r}")
        return out


def _as_kind(value, kind: str, where: str):
    if isinstance(value, bool):
        raise ValueError(f"{where} must be a number, got {value!r}")
    if kind == "int":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            raise ValueError(f"{where} must be an integer, got {value!r}")
        return value
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where} must be a finite real number, got {value!r}")
    return float(value)


#: the parameters of the paper's initialisation (:func:`ssmpoison.verify._check.paper_setting`)
_SETTING = {"horizon": ("int", None), "state_dim": ("int", None), "extrapolate_to": ("int", 20),
            "init_scale": ("real", None), "gap_exponent": ("real", None), "seed": ("int", None)}


def _check_point(p: dict) -> dict:
    """The Theorem's checker on the paper's initialisation: conditions, certified flows, verdict."""
    from ssmpoison.verify._check import check_setting, paper_setting

    params = {k: p[k] for k in _SETTING}
    r = check_setting(paper_setting(**params), clean_tolerance=p["clean_tolerance"])
    return {
        "conditions_hold": r.conditions_hold,
        "all_conditions_hold": r.all_conditions_hold,
        "failing": ",".join(c.name for c in r.conditions if not c.holds),
        "clean": float(r.clean.quantity.value),
        "poisoned": float(r.poisoned.quantity.value),
        "clean_digits": r.clean.quantity.digits,
        "poisoned_digits": r.poisoned.quantity.digits,
        "ratio": r.poisoned_over_clean,
        "clean_status": str(r.clean.status),
        "poisoned_status": str(r.poisoned.status),
        "matches_theorem": r.matches_theorem,
        "outcome_as_predicted": r.outcome_as_predicted,
    }


def _conditions_point(p: dict) -> dict:
    """The Theorem's conditions only (no flows): which hold, the clean bound and the smallest margin."""
    from ssmpoison.theory import conditions
    from ssmpoison.verify._check import paper_setting

    conds = conditions(paper_setting(**{k: p[k] for k in _SETTING}), clean_tolerance=p["clean_tolerance"])
    by = {c.name: c for c in conds}
    margins = [c.margin for c in conds if c.margin == c.margin and c.margin is not None]
    return {
        "conditions_hold": all(c.holds for c in conds if not c.advisory),
        "all_conditions_hold": all(c.holds for c in conds),
        "failing": ",".join(c.name for c in conds if not c.holds),
        "clean_bound": float(by["clean_greedy_bound"].value),
        "smallest_margin": float(min(margins)) if margins else math.nan,
    }


def _clean_limit_point(p: dict) -> dict:
    """The clean flow's exact limit (the oracle of note 03 §2): its two top entries and its extrapolation error."""
    from ssmpoison.theory import extrapolation_error
    from ssmpoison.theory._oracle import clean_limit
    from ssmpoison.verify._check import paper_setting

    setting = paper_setting(**{k: p[k] for k in _SETTING})
    limit = clean_limit(setting.a0, setting.horizon)
    top = sorted((float(v) for v in limit), reverse=True)
    ones = [1] * setting.state_dim
    return {"top_limit": top[0], "second_limit": top[1],
            "clean_error": float(extrapolation_error(limit, ones, ones, setting.state_dim, setting.extrapolate_to))}


def _special_poison_point(p: dict) -> dict:
    """The certified damage of the poison ``budget * e_(H-2)`` appended to the Theorem's clean set, and the clean error."""
    from ssmpoison.verify._poisons import certified_damage, special_poison, theory_poison_setting

    setting = theory_poison_setting(p["horizon"], p["state_dim"], p["seed"], p["extrapolate_to"], p["init_scale"],
                                    p["gap_exponent"])
    poisoned = certified_damage(setting, special_poison(setting, p["budget"]))
    clean = certified_damage(setting, None)
    damage, error = float(poisoned.quantity.value), float(clean.quantity.value)
    return {"damage": damage, "damage_digits": poisoned.quantity.digits, "clean": error,
            "clean_digits": clean.quantity.digits, "ratio": damage / error if error > 0 else math.nan,
            "poisoned_status": str(poisoned.status), "clean_status": str(clean.status)}


SWEEP_JOBS: dict[str, SweepJob] = {}


def register_job(job: SweepJob) -> SweepJob:
    """Add ``job`` to :data:`SWEEP_JOBS` (replacing one of the same name) and return it.

    Arguments:
        job: the job; its parameter kinds must be ``"int"`` or ``"real"``.

    Returns:
        ``job``.

    Raises:
        ValueError: a parameter kind that is not ``"int"`` or ``"real"``.
    """
    for name, (kind, _) in job.params.items():
        if kind not in _KINDS:
            raise ValueError(f"job {job.name!r}: parameter {name!r} has kind {kind!r}, not one of {', '.join(_KINDS)}")
    SWEEP_JOBS[job.name] = job
    return job


register_job(SweepJob(
    "check", "the Theorem's checker (conditions, both certified flows, verdict) on the paper's initialisation",
    _SETTING | {"clean_tolerance": ("real", 1e-2)},
    ("conditions_hold", "all_conditions_hold", "failing", "clean", "poisoned", "clean_digits", "poisoned_digits", "ratio",
     "clean_status", "poisoned_status", "matches_theorem", "outcome_as_predicted"),
    ("clean_digits", "poisoned_digits"), _check_point))
register_job(SweepJob(
    "conditions", "the Theorem's conditions alone (no flows) on the paper's initialisation",
    _SETTING | {"clean_tolerance": ("real", 1e-2)},
    ("conditions_hold", "all_conditions_hold", "failing", "clean_bound", "smallest_margin"), (), _conditions_point))
register_job(SweepJob(
    "special_poison", "the certified damage of budget * e_(H-2) appended to the Theorem's clean set, beside the clean error",
    _SETTING | {"budget": ("real", 1.0)},
    ("damage", "damage_digits", "clean", "clean_digits", "ratio", "poisoned_status", "clean_status"),
    ("damage_digits", "clean_digits"), _special_poison_point))
register_job(SweepJob(
    "clean_limit", "the clean flow's exact limit from its conserved quantities (milliseconds a point)",
    dict(_SETTING), ("top_limit", "second_limit", "clean_error"), (), _clean_limit_point))


def sweep_job(name) -> SweepJob:
    """The registered job called ``name``.

    Raises:
        ValueError: naming ``job`` and the registered names, when there is none.
    """
    if name not in SWEEP_JOBS:
        raise ValueError(f"job must be one of {', '.join(sorted(SWEEP_JOBS))}, got {name!r}")
    return SWEEP_JOBS[name]


def run_point(task: tuple) -> dict:
    """Run one point of a sweep (in a worker).

    Arguments:
        task: ``(job name, params)`` with the params of :meth:`SweepJob.point_params`.

    Returns:
        ``{"status", "metrics", "reason", "seconds"}``: status ``done`` with the job's metrics,
        ``refused`` with the reason when the job raised ``ValueError`` (the point is outside its
        domain), ``failed`` with the error otherwise; ``seconds`` is the job's wall-clock time. The job
        runs without the command's wall-clock budget, so its result does not depend on when it ran.
        A metric that is not a finite number (not evaluated) is stored as ``None`` (JSON ``null``).
    """
    from ssmpoison.verify._budget import without_budget

    name, params = task
    t0 = time.perf_counter()
    try:
        with without_budget():  # a stored point never depends on when it ran (the sweep itself stops at the limit)
            metrics, status, reason = SWEEP_JOBS[name].fn(params), Status.DONE, ""
        metrics = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in metrics.items()}
    except ValueError as exc:
        metrics, status, reason = {}, Status.REFUSED, str(exc)
    except Exception as exc:  # one bad point never stops a sweep; the store says what happened
        metrics, status, reason = {}, Status.FAILED, f"{type(exc).__name__}: {exc}"
    return {"status": str(status), "metrics": metrics, "reason": reason, "seconds": time.perf_counter() - t0}
