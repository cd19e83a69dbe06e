"""Sweeps: one job mapped over a parameter grid or a random design, resumable, into a results store.

A sweep file (TOML or JSON) names the sweep, its job (a name of
:data:`ssmpoison.verify._sweep_jobs.SWEEP_JOBS`), the parameters it fixes, and its design::

    name = "theorem_H7"
    job = "check"
    metrics = ["matches_theorem", "ratio"]      # optional: the metrics shown (all are stored)

    [fixed]
    horizon = 7
    state_dim = 10
    seed = 242

    [grid]                                      # every combination; the first key varies slowest
    gap_exponent = [1, 2, 3]
    init_scale = [1e-3, 1e-2]

or, instead of ``[grid]``, ``[random]`` with ``points = N``, ``seed = S`` and per parameter either a
list of choices or ``{low = .., high = .., log = true|false}`` (integers for ``int`` parameters are
drawn uniformly in ``[low, high]``). The design is expanded once (:meth:`SweepSpec.points`), each
point gets its index and its key (the canonical JSON of its parameters), and :func:`run_sweep` runs
the points the store does not yet hold with the current code, writing each as it finishes.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

from ssmpoison.theory._validation import require_int
from ssmpoison.verify._budget import budget_expired
from ssmpoison.verify._parallel import Backend, run_unordered
from ssmpoison.verify._store import Store, canonical, table_name
from ssmpoison.verify._sweep_jobs import run_point, sweep_job

__all__ = ["SweepSpec", "SweepReport", "read_sweep_file", "run_sweep", "job_fingerprint"]

_KEYS = {"name", "job", "metrics", "fixed", "grid", "random"}


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep (module docstring).

    Arguments:
        name: the sweep's name (its table in the store).
        job: the job's name.
        fixed: ``{parameter: value}`` for every point.
        grid: ``{parameter: [values]}`` (every combination), or ``None``.
        random: ``{"points": N, "seed": S, parameter: [choices] | {"low", "high", "log"}}``, or ``None``.
        metrics: the metrics to show (default: all of the job's).
        where: the start of error messages (the file's name).

    Raises:
        ValueError: one line naming the key: an unknown key, a job that does not exist, a parameter
            the job does not have or of the wrong kind, both or neither of grid and random, an empty
            axis, a parameter both fixed and varied, or a metric the job does not compute.
    """

    name: str
    job: str
    fixed: dict = field(default_factory=dict)
    grid: dict | None = None
    random: dict | None = None
    metrics: tuple = ()
    where: str = "sweep"

    def __post_init__(self) -> None:
        w = self.where
        try:
            table_name(self.name)
        except ValueError as exc:
            raise ValueError(f"{w}: {exc}") from None
        try:
            job = sweep_job(self.job)
        except ValueError as exc:
            raise ValueError(f"{w}: {exc}") from None
        if not isinstance(self.fixed, dict):
            raise ValueError(f"{w}: fixed must be a table of parameter = value")
        if (self.grid is None) == (self.random is None):
            raise ValueError(f"{w}: give exactly one of the tables grid and random")
        varied = self.grid if self.grid is not None else {k: v for k, v in self.random.items() if k not in ("points", "seed")}
        if not isinstance(varied, dict) or not varied:
            raise ValueError(f"{w}: the design varies no parameter")
        both = sorted(set(varied) & set(self.fixed))
        if both:
            raise ValueError(f"{w}: parameter {both[0]!r} is both fixed and varied")
        if self.grid is not None:
            for k, values in self.grid.items():
                if not isinstance(values, list) or not values:
                    raise ValueError(f"{w}: grid.{k} must be a non-empty list of values")
        else:
            require_int(f"{w}: random.points", self.random.get("points"), minimum=1)
            require_int(f"{w}: random.seed", self.random.get("seed", 0), minimum=0)
            for k, rule in varied.items():
                if isinstance(rule, list):
                    if not rule:
                        raise ValueError(f"{w}: random.{k} must be a non-empty list of choices")
                elif isinstance(rule, dict):
                    extra = sorted(set(rule) - {"low", "high", "log"})
                    if extra or "low" not in rule or "high" not in rule:
                        raise ValueError(f"{w}: random.{k} must be a list of choices or {{low, high[, log]}}")
                    if not _real(rule["low"]) or not _real(rule["high"]) or not rule["low"] <= rule["high"]:
                        raise ValueError(f"{w}: random.{k}: low and high must be numbers with low <= high")
                    if rule.get("log") and not rule["low"] > 0:
                        raise ValueError(f"{w}: random.{k}: a log-uniform range needs low > 0")
                else:
                    raise ValueError(f"{w}: random.{k} must be a list of choices or {{low, high[, log]}}")
        metrics = tuple(self.metrics) or job.metrics
        unknown = [m for m in metrics if m not in job.metrics]
        if unknown:
            raise ValueError(f"{w}: metrics: job {self.job!r} has no metric {unknown[0]!r} "
                             f"(its metrics: {', '.join(job.metrics)})")
        object.__setattr__(self, "metrics", metrics)
        self.points()  # every point's parameters checked once, here

    def points(self) -> list[dict]:
        """The design's points, in order: ``{parameter: value}`` for every parameter of the job.

        Raises:
            ValueError: naming the parameter, when a point's value is not of the job's kind.
        """
        job = sweep_job(self.job)
        if self.grid is not None:
            keys = list(self.grid)
            raw = [dict(zip(keys, combo)) for combo in itertools.product(*(self.grid[k] for k in keys))]
        else:
            import numpy as np

            rng = np.random.default_rng(int(self.random.get("seed", 0)))
            keys = sorted(k for k in self.random if k not in ("points", "seed"))
            raw = []
            for _ in range(int(self.random["points"])):
                raw.append({k: _draw(rng, self.random[k], job.params[k][0] if k in job.params else "real") for k in keys})
        return [job.point_params(self.fixed | p, self.where) for p in raw]

    def to_json(self) -> dict:
        """The sweep file's content (what the store compares on ``--resume``)."""
        out = {"name": self.name, "job": self.job, "fixed": self.fixed, "metrics": list(self.metrics)}
        out.update({"grid": self.grid} if self.grid is not None else {"random": self.random})
        return out


def _real(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x and abs(x) != float("inf")


def _draw(rng, rule, kind: str):
    if isinstance(rule, list):
        return rule[int(rng.integers(0, len(rule)))]
    lo, hi = rule["low"], rule["high"]
    if kind == "int":
        return int(rng.integers(int(lo), int(hi) + 1))
    if rule.get("log"):
        import math

        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    return float(rng.uniform(lo, hi))


def read_sweep_file(path: str) -> SweepSpec:
    """Read and validate a sweep file.

    Arguments:
        path: a TOML or JSON file (module docstring).

    Returns:
        The :class:`SweepSpec`.

    Raises:
        ValueError: one line naming the file and the key.
    """
    from ssmpoison.verify._jsonio import read_settings_file

    where = f"sweep file {path!r}"
    data = read_settings_file(path, where)
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r} (keys: {', '.join(sorted(_KEYS))})")
    for key in ("name", "job"):
        if not isinstance(data.get(key), str):
            raise ValueError(f"{where}: {key} must be given as text")
    metrics = data.get("metrics", [])
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        raise ValueError(f"{where}: metrics must be a list of metric names")
    return SweepSpec(data["name"], data["job"], data.get("fixed", {}), data.get("grid"), data.get("random"),
                     tuple(metrics), where)


def job_fingerprint() -> str:
    """The code fingerprint of every job (the modules reachable from the job registry)."""
    from ssmpoison.verify._code_fingerprint import code_fingerprint

    return code_fingerprint("ssmpoison.verify._sweep_jobs", "ssmpoison.verify._check")


@dataclass(frozen=True)
class SweepReport:
    """What one run of a sweep did.

    ``points`` is the design's size, ``skipped`` the points already stored with this code,
    ``other_code`` the stored points computed by other code (re-run and replaced), ``ran`` the
    points run (and stored) now, ``done``/``refused``/``failed`` their statuses, ``stored`` the points now in the
    store (by status), ``fingerprint`` the code's fingerprint and ``seconds`` the wall-clock time;
    ``time_limit`` says that the command's wall-clock budget ended the sweep before every point ran
    (``--resume`` completes it).
    """

    name: str
    job: str
    store: str
    backend: str
    points: int
    skipped: int
    other_code: int
    ran: int
    done: int
    refused: int
    failed: int
    stored: dict
    fingerprint: str
    seconds: float
    time_limit: bool = False

    def to_json(self) -> dict:
        """The report as JSON-ready values."""
        return dict(self.__dict__)

    def text(self) -> str:
        """The report as lines of text."""
        lines = [f"sweep {self.name} ({self.job}, {self.points} points) into {self.store} on {self.backend}:",
                 f"  ran {self.ran} points ({self.done} done, {self.refused} refused, {self.failed} failed) in "
                 f"{self.seconds:.1f} s; {self.skipped} already stored with this code"]
        if self.other_code:
            lines.append(f"  {self.other_code} stored points were computed by other code: re-run and replaced")
        if self.time_limit:
            lines.append(f"  stopped at the time limit with {self.points - sum(self.stored.values())} points to go: "
                         "--resume completes the sweep")
        lines.append("  in the store: " + ", ".join(f"{n} {s}" for s, n in sorted(self.stored.items())))
        return "\n".join(lines)


def run_sweep(spec: SweepSpec, store: Store, backend: Backend = Backend(), resume: bool = False, progress=None) -> SweepReport:
    """Run the points of ``spec`` that ``store`` does not hold, writing each as it finishes.

    Arguments:
        spec: the sweep.
        store: the results store.
        backend: where the points run (:class:`ssmpoison.verify._parallel.Backend`).
        resume: complete a sweep already in the store: skip its points stored with this code's
            fingerprint (statuses ``done`` and ``refused``), re-run the ``failed`` ones and those
            computed by other code. Without it a store that already holds points of this sweep is refused.
        progress: ``None``, or ``progress(done, failed, total)`` called before the first point
            and after each one (``done`` counts every finished point, ``failed`` those that failed).

    When the command's wall-clock budget (:mod:`ssmpoison.verify._budget`) passes, no further point is
    waited for: the points in flight are stopped and lost, the stored ones kept, and the report says
    ``time_limit`` (a point never runs under a shortened budget, so a stored point never depends on it).

    Returns:
        The :class:`SweepReport`.

    Raises:
        ValueError: the store holds points of this sweep and ``resume`` is false, or holds a sweep of
            this name made from another file.
    """
    t0 = time.perf_counter()
    job = sweep_job(spec.job)
    points = spec.points()
    fingerprint = job_fingerprint()
    store.open_sweep(spec.name, spec.job, spec.to_json(), len(points), points[0], job.metrics)
    held = store.stored(spec.name)
    if held and not resume:
        raise ValueError(f"sweep {spec.name!r}: the store {store.path!r} already holds {len(held)} of its points "
                         "(pass --resume to complete it, or give another --store)")
    keys = [canonical(p) for p in points]
    todo, skipped, other = [], 0, 0
    for i, key in enumerate(keys):
        status, fp = held.get(key, (None, None))
        if status in ("done", "refused") and fp == fingerprint:
            skipped += 1
            continue
        if status is not None and fp != fingerprint:
            other += 1
        todo.append(i)
    counts = {"done": 0, "refused": 0, "failed": 0}
    if progress is not None:
        progress(0, 0, len(todo))
    tasks = [(spec.job, points[i]) for i in todo]
    stopped = False
    results = run_unordered(run_point, tasks, backend)
    try:
        for n, (j, result) in enumerate(results, start=1):
            i = todo[j]
            store.put(spec.name, i, keys[i], points[i], result, fingerprint)
            counts[result["status"]] += 1
            if progress is not None:
                progress(n, counts["failed"], len(todo))
            if n < len(todo) and budget_expired():
                stopped = True
                break
    finally:
        results.close()  # stops the workers still running
    stored = {}
    for s, _ in store.stored(spec.name).values():
        stored[s] = stored.get(s, 0) + 1
    return SweepReport(spec.name, spec.job, store.path, backend.label, len(points), skipped, other, sum(counts.values()),
                       counts["done"], counts["refused"], counts["failed"], stored, fingerprint,
                       time.perf_counter() - t0, stopped)
