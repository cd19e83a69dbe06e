"""Training dynamics of one run, recorded and measured: the ``ssmpoison dynamics`` job.

Greedy low-rank learning made visible (note 00 §3): which entry of A escapes first, how the
effective rank evolves, what gamma^(0) does. A run is recorded at many points and the
metrics of :mod:`ssmpoison.verify._metrics` are computed at each:

* **Any gradient flow** (:func:`flow_dynamics`): the flow of any :class:`ssmpoison.verify._flow.FlowProblem`
  (any training set, initialisation, B and C), integrated by :func:`ssmpoison.verify._flow.run_flow`
  with every accepted step recorded; up to ``points`` of those steps are kept
  (:func:`ssmpoison.verify._metrics.select_points`: spread over log-time and over change).
* **The theory row** (:func:`theory_dynamics`): the flows of a theory-row setting (note 00 §5–6)
  without or with the poison u† = e_{H-2}, for any seed of the paper's initialisation;
  extrapolation error over the setting's J (``ssmpoison.theory._construction.extrapolation_error``).
* **The GD rows** (:func:`gd_dynamics`): one seed of a "beyond" or "non-linear" setting trained
  by :mod:`ssmpoison.verify._gd_training` (all requested conditions in one batch), the parameters observed at
  log-spaced steps (:func:`log_spaced_steps`) plus the final step. In the non-linear row the
  residuals are the network's, ``delta_n = y*_n - g(y_H(u^(n)))``, and every gamma^(l) carries
  the slopes ``xi_n = g'(y_H(u^(n)))`` of the ReLU head (note 00 §3).

:func:`run_dynamics` is the job (a row, a setting, a seed, the conditions -> a
:class:`DynamicsResult`); :func:`dynamics_text` and :func:`dynamics_json` render it and
:mod:`ssmpoison.verify._dynamics_plots` draws its figures. :func:`run_experiment` runs one of
the paper's dynamics notebooks (:mod:`ssmpoison.verify._experiments`: every run of it, through
:func:`gd_dynamics`) and :func:`entry_comparison` sets each run's final entries beside those the
notebook printed; :func:`experiment_text` and :func:`experiment_json` render it. Nothing here prints. Everything is
deterministic: the same arguments give the same series and the same JSON.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from ssmpoison.theory._construction import extrapolation_error
from ssmpoison.theory._effective_rank import effective_rank
from ssmpoison.theory._training_set import TrainingSet
from ssmpoison.theory._validation import require_int
from ssmpoison.verify._settings import GDRowSetting, TheoryRowSetting
from ssmpoison.verify._flow import FlowOptions, FlowProblem, FlowResult, run_flow
from ssmpoison.verify._status import Status
from ssmpoison.verify._metrics import DynamicsSeries, escape_times, select_points, teacher_extrapolation, trajectory_series

__all__ = [
    "CONDITIONS",
    "DEFAULT_POINTS",
    "ESCAPE_LEVEL",
    "DynamicsRun",
    "flow_dynamics",
    "theory_problem",
    "theory_dynamics",
    "log_spaced_steps",
    "gd_dynamics",
    "DynamicsResult",
    "run_dynamics",
    "dynamics_text",
    "dynamics_json",
    "LEARNED_LEVEL",
    "ExperimentResult",
    "entry_comparison",
    "run_experiment",
    "experiment_text",
    "experiment_json",
]

CONDITIONS = ("clean", "poisoned", "both")
DEFAULT_POINTS = 400
"""Most points kept per run (flows record every accepted step; GD rows observe this many steps)."""
ESCAPE_LEVEL = 0.5
"""An entry has *escaped* once ``|a_i| >= ESCAPE_LEVEL`` (initialisations are ~1e-3 to 0.1; teachers' entries are 1)."""


@dataclass(frozen=True)
class DynamicsRun:
    """One recorded run: which run it is, how it ended, and its :class:`~ssmpoison.verify._metrics.DynamicsSeries`.

    ``end`` is the time (flows) or number of updates (GD) at which training stopped;
    ``teacher_rank`` the effective rank of the teacher's A (1 for every row of the paper).
    """

    row: str
    horizon: int
    seed: int | None
    poisoned: bool
    status: Status
    end: float
    teacher_rank: float
    series: DynamicsSeries

    @property
    def condition(self) -> str:
        return "poisoned" if self.poisoned else "clean"

    def summary(self) -> dict:
        """Start and end of the metrics, and the escape times of the entries (level :data:`ESCAPE_LEVEL`)."""
        s = self.series
        escapes = escape_times(s, ESCAPE_LEVEL)
        order = sorted((t, i) for i, t in enumerate(escapes) if t is not None)
        final = s.entries[-1]
        return {
            "start_effective_rank": float(s.effective_rank[0]),
            "end_effective_rank": float(s.effective_rank[-1]),
            "start_max_abs": float(s.max_abs[0]),
            "end_max_abs": float(s.max_abs[-1]),
            "end_loss": float(s.loss[-1]),
            "end_ext_error": None if s.ext_error is None else float(s.ext_error[-1]),
            "escape_level": ESCAPE_LEVEL,
            "escape_order": [i + 1 for _, i in order],  # 1-based, as a_1 .. a_D
            "escape_times": [t for t, _ in order],
            "end_entries_sorted": sorted((float(v) for v in final), key=abs, reverse=True),
            "growth": [float(abs(e) / abs(s0)) if s0 != 0 else None for e, s0 in zip(final, s.entries[0])],
        }

    def to_json(self) -> dict:
        return {
            "row": self.row,
            "horizon": self.horizon,
            "seed": self.seed,
            "poisoned": self.poisoned,
            "condition": self.condition,
            "status": self.status,
            "end": self.end,
            "teacher_rank": self.teacher_rank,
            "summary": self.summary(),
            "series": self.series.to_json(),
        }


# ---------------------------------------------------------------- gradient flows


def flow_dynamics(problem: FlowProblem, *, extrapolation=None, options: FlowOptions | None = None,
                  points: int = DEFAULT_POINTS) -> tuple[FlowResult, DynamicsSeries]:
    """Integrate the gradient flow of ``problem`` recording every step; the metrics at up to ``points`` of them.

    ``extrapolation(a, b, c)`` (optional) gives the extrapolation error at a point, e.g.
    :func:`ssmpoison.verify._metrics.teacher_extrapolation` of a teacher's impulse response.
    ``options`` default to float64 with the engine's default stopping rules; recording is
    switched on whatever they say.
    """
    if not isinstance(problem, FlowProblem):
        raise ValueError("problem must be a FlowProblem")
    points = require_int("points", points, minimum=2)
    options = dataclasses.replace(options or FlowOptions(), record=True)
    result = run_flow(problem, options)
    traj = result.trajectory
    keep = select_points([p[0] for p in traj], [p[1] for p in traj], points)
    series = trajectory_series([traj[k] for k in keep], problem.training_set, extrapolation=extrapolation)
    return result, series


def theory_problem(setting: TheoryRowSetting, seed: int, poisoned: bool) -> FlowProblem:
    """The flow of the theory-row ``setting`` (note 00 §5–6) for any ``seed`` of the paper's initialisation."""
    from ssmpoison.verify._theory_row import theory_row_problems

    seed = require_int("seed", seed, minimum=0, maximum=2**32 - 1)
    ((_, problem),) = theory_row_problems(dataclasses.replace(setting.unpublished(), seeds=(seed,)), bool(poisoned))
    return problem


def theory_dynamics(setting: TheoryRowSetting, seed: int | None = None, poisoned: bool = False, points: int = DEFAULT_POINTS,
                    extrapolation_length: int | None = None, *, row: str = "theory") -> DynamicsRun:
    """The recorded flow of a theory-row setting (only A trained, B = C = 1) without or with u† = e_{H-2}.

    Arguments:
        setting: the theory row's setting; seed: of the paper's initialisation (default the setting's first);
        poisoned: add u†; points: most points kept; extrapolation_length: J of the extrapolation error
        (default the setting's); row: the name the run carries.
    """
    if not isinstance(setting, TheoryRowSetting):
        raise ValueError(f"setting must be a TheoryRowSetting, got {type(setting).__name__}")
    seed = setting.seeds[0] if seed is None else seed
    J = setting.extrapolation_length if extrapolation_length is None else \
        require_int("extrapolation_length", extrapolation_length, minimum=1)
    D = setting.state_dim
    problem = theory_problem(setting, seed, poisoned)
    result, series = flow_dynamics(problem, extrapolation=lambda a, b, c: extrapolation_error(a, b, c, D, J), points=points)
    return DynamicsRun(row, setting.horizon, int(seed), bool(poisoned), result.status, float(result.t),
                       effective_rank([1, 0]), series)


# ---------------------------------------------------------------- gradient descent (beyond / non-linear rows)


def log_spaced_steps(last: int, count: int) -> tuple[int, ...]:
    """Step 0 and about ``count`` integer steps spaced evenly in ``log(step)`` over ``[1, last]``."""
    last = require_int("last", last, minimum=0)
    count = require_int("count", count, minimum=2)
    if last == 0:
        return (0,)
    grid = np.unique(np.rint(np.geomspace(1, last, count)).astype(np.int64))
    return (0, *(int(s) for s in grid))


def _network_residuals_and_slopes(params, U, y):
    """``delta_n = y*_n - g(y_H(u^(n)))`` and ``xi_n = g'(y_H(u^(n)))`` for the SSM + ReLU head."""
    from ssmpoison.verify._kernels import outputs as ssm_outputs
    from ssmpoison.verify._mlp import mlp_backward, mlp_forward

    a, b, c, *weights = params
    heads = tuple(w[None] for w in weights)
    yH = ssm_outputs(a[None], b[None], c[None], U[None])
    f, cache = mlp_forward(heads, yH)
    _, xi = mlp_backward(heads, cache, np.ones_like(yH))
    return y - f[0], xi[0]


def gd_dynamics(setting: GDRowSetting, seed: int | None = None, conditions=(False, True),
                points: int = DEFAULT_POINTS, max_steps: int | None = None, extrapolation_length: int | None = None,
                progress=None, *, row: str | None = None) -> list[DynamicsRun]:
    """One seed of a GD-row setting (beyond or non-linear, by its config), each condition in ``conditions``
    (False = without, True = with special sequences), trained in one batch (one per condition when the config
    gives the poisoned condition its own step size or extra steps) and observed at
    :func:`log_spaced_steps` of the step budget plus the final step.

    Arguments:
        setting: the row's setting; seed: default its first; points: most observed steps;
        max_steps: default the setting's step budget; extrapolation_length: J (default the config's);
        progress: ``progress(step, active_runs)``, passed to the trainer; row: the name the runs carry.
    """
    from ssmpoison.verify._gd_config import BeyondConfig
    from ssmpoison.verify._gd_data import beyond_problem, nonlinear_problem, nonlinear_test_inputs
    from ssmpoison.verify._gd_training import StepObserver, nonlinear_extrapolation_error, train_beyond, train_nonlinear

    if not isinstance(setting, GDRowSetting):
        raise ValueError(f"setting must be a GDRowSetting, got {type(setting).__name__}")
    config = setting.config
    beyond = isinstance(config, BeyondConfig)
    row = ("beyond" if beyond else "nonlinear") if row is None else row
    if extrapolation_length is not None:
        config = dataclasses.replace(config, extrapolation_length=require_int("extrapolation_length", extrapolation_length, minimum=1))
    seed = setting.seeds[0] if seed is None else require_int("seed", seed, minimum=0, maximum=2**32 - 1)
    flags = list(conditions)
    points = require_int("points", points, minimum=2)
    budget = setting.step_budget if max_steps is None else require_int("max_steps", max_steps, minimum=0)

    recorded: dict[int, list] = {r: [] for r in range(len(flags))}

    def look(step, runs, params, loss):
        for k, r in enumerate(runs):
            point = tuple(p[k] for p in params)
            if np.isfinite(loss[k]) and all(np.isfinite(p).all() for p in point):
                recorded[int(r)].append((step, point, float(loss[k])))

    trainer, problem = (train_beyond, beyond_problem) if beyond else (train_nonlinear, nonlinear_problem)
    results = trainer(config, [seed], flags, budget, progress=progress,
                      observer=StepObserver(log_spaced_steps(budget, points), look))
    runs = []
    for r, (result, poisoned) in enumerate(zip(results, flags)):
        pts = recorded[r]
        final = tuple(np.asarray(p) for p in result.params)
        if (not pts or pts[-1][0] < result.steps) and np.isfinite(result.train_loss) \
                and all(np.isfinite(p).all() for p in final):
            pts.append((result.steps, final, result.train_loss))
        _, U, y = problem(config.for_condition(poisoned), seed, poisoned)
        training_set = TrainingSet(tuple(map(tuple, U.tolist())), tuple(y.tolist()))
        trajectory = [(step, p[0], p[1], p[2], loss) for step, p, loss in pts]
        if beyond:
            series = trajectory_series(trajectory, training_set, time_name="step",
                                       extrapolation=teacher_extrapolation(config.teacher_impulse(config.extrapolation_length)))
        else:
            tests = nonlinear_test_inputs(config, seed, poisoned)
            pairs = [_network_residuals_and_slopes(p, U, y) for _, p, _ in pts]
            series = trajectory_series(trajectory, training_set, time_name="step",
                                       residuals=[d for d, _ in pairs], xi=[x for _, x in pairs],
                                       extrapolation=[nonlinear_extrapolation_error(config, tests, p) for _, p, _ in pts])
        runs.append(DynamicsRun(row, config.horizon, seed, bool(poisoned), result.status, float(result.steps),
                                effective_rank(list(config.teacher_a) if beyond else [1]), series))
    return runs


# ---------------------------------------------------------------- the CLI job


def _conditions(condition: str) -> tuple[bool, ...]:
    if condition not in CONDITIONS:
        raise ValueError(f"condition must be one of {', '.join(CONDITIONS)}, got {condition!r}")
    return {"clean": (False,), "poisoned": (True,), "both": (False, True)}[condition]


@dataclass(frozen=True)
class DynamicsResult:
    """The recorded runs of one seed of one setting of a row, and the time they took.

    Arguments:
        row: the row's name; setting: its setting; seed: the run's seed; condition: clean, poisoned or both;
        runs: one :class:`DynamicsRun` per condition; seconds: wall time of the runs.
    """

    row: str
    setting: object
    seed: int
    condition: str
    method: str
    runs: tuple[DynamicsRun, ...]
    seconds: float

    @property
    def horizon(self) -> int:
        return self.setting.horizon

    @property
    def ok(self) -> bool:
        return all(r.status == Status.CONVERGED for r in self.runs)


def run_dynamics(row: str, setting, *, seed=None, condition: str = "both", extrapolation_length=None,
                 points: int = DEFAULT_POINTS, progress=None) -> DynamicsResult:
    """The recorded runs of the registered ``row`` at ``setting`` for ``condition`` (clean, poisoned or both).

    Arguments:
        row: a registered row's name (:func:`ssmpoison.verify._registry.row_model`), which says how to run.
        setting: the row's setting (a published one or the user's own).
        seed: default the setting's first; extrapolation_length: default the setting's J;
        progress: ``progress(label, done, total, note)`` (:data:`ssmpoison.verify._rows.Progress`).

    Raises:
        ValueError: naming the argument.
    """
    from ssmpoison.verify._registry import row_model

    model = row_model(row)
    flags = _conditions(condition)
    if not isinstance(setting, model.setting_type):
        raise ValueError(f"setting must be a {model.setting_type.__name__} for the {row} row")
    seed = setting.seeds[0] if seed is None else require_int("seed", seed, minimum=0, maximum=2**32 - 1)
    start = time.perf_counter()
    runs = model.dynamics(setting, seed=seed, conditions=flags, extrapolation_length=extrapolation_length, points=points,
                          progress=progress)
    return DynamicsResult(row, setting, seed, condition, model.dynamics_method(setting), tuple(runs),
                          time.perf_counter() - start)


def _summary_lines(run: DynamicsRun) -> list[str]:
    s = run.summary()
    unit = "t" if run.series.time_name == "t" else "step"
    escapes = ", ".join(f"a_{i} at {unit} = {t:.4g}" for i, t in zip(s["escape_order"], s["escape_times"])) or "none"
    top = ", ".join(f"{v:.4g}" for v in s["end_entries_sorted"][:4])
    ext = "-" if s["end_ext_error"] is None else f"{s['end_ext_error']:.4g}"
    gam0 = run.series.gammas[:, 0]
    gamma0 = "exactly 0 at every point" if not np.any(gam0) else f"max |gamma^(0)| = {np.max(np.abs(gam0)):.3g}"
    xi = " (with the head's slopes xi_n)" if run.series.xi_factor else ""
    return [
        f"  {run.condition}: status {run.status} at {unit} = {run.end:.4g}, {run.series.times.size} points",
        f"    effective rank {s['start_effective_rank']:.3f} -> {s['end_effective_rank']:.3f} (teacher {run.teacher_rank:g}); "
        f"max |a_i| {s['start_max_abs']:.3g} -> {s['end_max_abs']:.4g}",
        f"    escaped (|a_i| >= {ESCAPE_LEVEL}): {escapes}",
        f"    final entries (largest |a_i| first): {top}, ...",
        f"    gamma^(0){xi}: {gamma0}; final loss {s['end_loss']:.3g}; final extrapolation error {ext}",
    ]


def dynamics_text(result: DynamicsResult) -> str:
    """The printed summary of a :class:`DynamicsResult`: per run, status, effective rank, escapes, gamma^(0)."""
    lines = [f"Dynamics of the {result.row} row, H = {result.horizon}, seed {result.seed} ({result.method})"]
    for run in result.runs:
        lines += _summary_lines(run)
    return "\n".join(lines)


def dynamics_json(result: DynamicsResult, figures=()) -> dict:
    """The JSON of a :class:`DynamicsResult`, with the file names of its ``figures``."""
    return {
        "row": result.row,
        "horizon": result.horizon,
        "seed": result.seed,
        "condition": result.condition,
        "escape_level": ESCAPE_LEVEL,
        "figures": [p.name for p in figures],
        "runs": [r.to_json() for r in result.runs],
    }


# ---------------------------------------------------------------- the paper's dynamics experiments

LEARNED_LEVEL = 0.1
"""An entry the paper printed counts as *learned* (its relative difference is reported) when ``|a_i| >= LEARNED_LEVEL``;
the others sit near their initial ~1e-3 to 1e-2 and are compared by absolute difference only."""


def entry_comparison(run: DynamicsRun, published) -> dict:
    """Our final entries beside the paper's printed ones (both as ``|a_i|``, descending).

    Arguments:
        run: a recorded run; published: the entries the paper printed for its condition, descending.

    Returns:
        ``{"ours", "paper", "abs_differences", "max_abs_difference", "learned", "rel_differences",
        "max_rel_difference"}``: the first ``len(published)`` of our ``|a_i|`` sorted descending, the paper's,
        ``|ours_i - paper_i|``, their maximum, the number of learned entries (paper's ``>= LEARNED_LEVEL``),
        ``|ours_i - paper_i| / paper_i`` over those, and its maximum (None without learned entries).
    """
    paper = [float(v) for v in published]
    ours = sorted((abs(float(v)) for v in run.series.entries[-1]), reverse=True)[: len(paper)]
    absd = [abs(o - p) for o, p in zip(ours, paper)]
    learned = [k for k, p in enumerate(paper) if p >= LEARNED_LEVEL and k < len(ours)]
    rel = [absd[k] / paper[k] for k in learned]
    return {
        "ours": ours,
        "paper": paper,
        "abs_differences": absd,
        "max_abs_difference": max(absd) if absd else None,
        "learned": len(learned),
        "rel_differences": rel,
        "max_rel_difference": max(rel) if rel else None,
    }


@dataclass(frozen=True)
class ExperimentResult:
    """The runs of one dynamics experiment: per setting of it, the :class:`DynamicsResult` of its seed.

    ``ok`` is true when every run converged.

    Arguments:
        experiment: the :class:`ssmpoison.verify._experiments.DynamicsExperiment`; dtype: the arithmetic;
        results: ``(ExperimentRun, DynamicsResult)`` pairs in the experiment's order; seconds: wall time.
    """

    experiment: object
    dtype: str
    results: tuple
    seconds: float

    @property
    def ok(self) -> bool:
        return all(result.ok for _, result in self.results)


def run_experiment(name: str, *, dtype: str | None = None, seeds=None, condition: str = "both", max_steps=None,
                   points: int = DEFAULT_POINTS, progress=None) -> ExperimentResult:
    """Every run of the paper's dynamics experiment ``name`` (:data:`ssmpoison.verify._experiments.EXPERIMENTS`),
    each through :func:`gd_dynamics` (the conditions of a run with their own step size and extra steps).

    Arguments:
        name: the experiment's name.
        dtype: ``"float32"`` or ``"float64"``; default the experiment's (float32, the paper's arithmetic).
        seeds: only the runs of these seeds (default all).
        condition: clean, poisoned or both.
        max_steps: step budget of every run (default its setting's).
        points: most observed steps per run.
        progress: ``progress(label, done, total, note)`` (:data:`ssmpoison.verify._rows.Progress`).

    Returns:
        An :class:`ExperimentResult`.

    Raises:
        ValueError: an unknown name, dtype or condition, a seed the experiment does not run, a bad budget.
    """
    from ssmpoison.verify._experiments import experiment

    exp = experiment(name)
    flags = _conditions(condition)
    if dtype is not None and dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    runs = exp.runs
    if seeds is not None:
        wanted = [require_int(f"seeds[{k}]", s, minimum=0) for k, s in enumerate(seeds)]
        missing = [s for s in wanted if s not in {r.seed for r in runs}]
        if missing:
            raise ValueError(f"seed must be one of the experiment's seeds ({', '.join(str(r.seed) for r in runs)}), "
                             f"got {missing[0]}")
        runs = tuple(r for r in runs if r.seed in wanted)
    if max_steps is not None:
        max_steps = require_int("max_steps", max_steps, minimum=0)
    start = time.perf_counter()
    results = []
    for spec in runs:
        setting = spec.setting
        if dtype is not None:
            setting = dataclasses.replace(setting, config=dataclasses.replace(setting.config, dtype=dtype))
        label = f"{exp.name}, H = {spec.horizon}, seed {spec.seed}"
        callback = None if progress is None else (
            lambda step, active, label=label: progress(label, step, None, f"active={active}"))
        t0 = time.perf_counter()
        recorded = gd_dynamics(setting, spec.seed, flags, points=points, max_steps=max_steps, progress=callback,
                               row=exp.row)
        results.append((spec, DynamicsResult(exp.row, setting, spec.seed, condition,
                                             f"gradient descent, {setting.config.dtype}", tuple(recorded),
                                             time.perf_counter() - t0)))
    used = dtype if dtype is not None else runs[0].setting.config.dtype
    return ExperimentResult(exp, used, tuple(results), time.perf_counter() - start)


def _entries_text(values) -> str:
    return " ".join(f"{v:.4f}" for v in values)


def experiment_text(result: ExperimentResult) -> str:
    """The printed summary of an :class:`ExperimentResult`.

    Arguments:
        result: the experiment's runs.

    Returns:
        Lines of text: per run and condition, how it ended, its final entries beside the paper's (:func:`entry_comparison`),
        the largest relative difference over the learned entries and the largest absolute difference.
    """
    exp = result.experiment
    lines = [f"Experiment {exp.name} ({exp.notebook}): {exp.title}; {result.dtype}"]
    for spec, res in result.results:
        config = res.setting.config
        lines.append(f"  H = {spec.horizon}, D = {config.state_dim}, seed {spec.seed} ({res.seconds:.1f} s)")
        for run in res.runs:
            s = run.summary()
            cfg = config.for_condition(run.poisoned)
            cmp = entry_comparison(run, spec.published(run.poisoned))
            ext = "-" if s["end_ext_error"] is None else f"{s['end_ext_error']:.4g}"
            lines.append(f"    {run.condition} (lr {cfg.lr:g}): {run.status} at step {run.end:.0f}, final loss "
                         f"{s['end_loss']:.3g}, extrapolation error {ext}")
            lines.append(f"      ours : {_entries_text(cmp['ours'])}")
            lines.append(f"      paper: {_entries_text(cmp['paper'])}")
            rel = "-" if cmp["max_rel_difference"] is None else f"{100 * cmp['max_rel_difference']:.1f}%"
            lines.append(f"      learned entries (paper >= {LEARNED_LEVEL:g}): {cmp['learned']}, largest relative "
                         f"difference {rel}; largest absolute difference {cmp['max_abs_difference']:.3g}")
    lines.append(f"runs {result.seconds:.1f} s")
    return "\n".join(lines)


def experiment_json(result: ExperimentResult, figures=None) -> dict:
    """The JSON of an :class:`ExperimentResult`.

    Arguments:
        result: the experiment's runs.
        figures: a mapping from a run's seed to the paths of its figures (or None).

    Returns:
        ``{"experiment", "title", "notebook", "dtype", "learned_level", "seconds", "runs"}``; each run holds its horizon,
        seed, seconds, the :func:`entry_comparison` of each condition and its :func:`dynamics_json`.
    """
    exp = result.experiment
    figures = figures or {}
    runs = []
    for spec, res in result.results:
        runs.append({
            "horizon": spec.horizon,
            "seed": spec.seed,
            "seconds": res.seconds,
            "comparison": {run.condition: entry_comparison(run, spec.published(run.poisoned)) for run in res.runs},
            "dynamics": dynamics_json(res, figures.get(spec.seed, ())),
        })
    return {
        "experiment": exp.name,
        "title": exp.title,
        "notebook": exp.notebook,
        "dtype": result.dtype,
        "learned_level": LEARNED_LEVEL,
        "seconds": result.seconds,
        "runs": runs,
    }
