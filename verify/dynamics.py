"""Training dynamics of one run, recorded and measured: the ``ssmpoison dynamics`` job.

Greedy low-rank learning made visible (SPEC §3): which entry of A escapes first, how the
effective rank evolves, what gamma^(0) does. A run is recorded at many points and the
metrics of :mod:`verify.metrics` are computed at each:

* **Any gradient flow** (:func:`flow_dynamics`): the flow of any :class:`ssmpoison.verify.flow.FlowProblem`
  (any training set, initialisation, B and C), integrated by :func:`ssmpoison.verify.flow.run_flow`
  with every accepted step recorded; up to ``points`` of those steps are kept
  (:func:`ssmpoison.verify.metrics.select_points`: spread over log-time and over change).
* **The theory row** (:func:`theory_dynamics`): the paper's flows (SPEC §5–6) without or
  with the poison u† = e_{H-2}, for any seed of the paper's initialisation; extrapolation
  error over J = 20 (``ssmpoison.theory.construction.extrapolation_error``).
* **The GD rows** (:func:`gd_dynamics`): one seed of the "beyond" or "non-linear" row trained
  by :mod:`verify.gd` (all requested conditions in one batch), the parameters observed at
  log-spaced steps (:func:`log_spaced_steps`) plus the final step. In the non-linear row the
  residuals are the network's, ``delta_n = y*_n - g(y_H(u^(n)))``, and every gamma^(l) carries
  the slopes ``xi_n = g'(y_H(u^(n)))`` of the ReLU head (SPEC §3).

Figures are drawn by :mod:`verify.dynamics_plots`. Everything here is deterministic: the
same arguments give the same series and the same JSON.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ssmpoison.theory.construction import THEORY_ROW, extrapolation_error, paper_initialisation
from ssmpoison.theory.effective_rank import effective_rank
from ssmpoison.theory.training_set import TrainingSet
from ssmpoison.theory.validation import require_int
from ssmpoison.verify.flow import FlowOptions, FlowProblem, FlowResult, run_flow
from ssmpoison.verify.metrics import DynamicsSeries, escape_times, select_points, teacher_extrapolation, trajectory_series

__all__ = [
    "ROWS",
    "CONDITIONS",
    "DEFAULT_POINTS",
    "ESCAPE_LEVEL",
    "DynamicsRun",
    "flow_dynamics",
    "theory_problem",
    "theory_dynamics",
    "log_spaced_steps",
    "gd_dynamics",
    "run_dynamics",
    "dynamics_command",
]

ROWS = ("theory", "beyond", "nonlinear")
CONDITIONS = ("clean", "poisoned", "both")
DEFAULT_POINTS = 400
"""Most points kept per run (flows record every accepted step; GD rows observe this many steps)."""
ESCAPE_LEVEL = 0.5
"""An entry has *escaped* once ``|a_i| >= ESCAPE_LEVEL`` (initialisations are ~1e-3 to 0.1; teachers' entries are 1)."""


@dataclass(frozen=True)
class DynamicsRun:
    """One recorded run: which run it is, how it ended, and its :class:`~ssmpoison.verify.metrics.DynamicsSeries`.

    ``end`` is the time (flows) or number of updates (GD) at which training stopped;
    ``teacher_rank`` the effective rank of the teacher's A (1 for every row of the paper).
    """

    row: str
    horizon: int
    seed: int | None
    poisoned: bool
    status: str
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
    :func:`ssmpoison.verify.metrics.teacher_extrapolation` of a teacher's impulse response.
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


def _theory_config(horizon) -> dict:
    H = require_int("horizon", horizon)
    if H not in THEORY_ROW:
        raise ValueError(f"horizon must be one of {', '.join(map(str, sorted(THEORY_ROW)))} for the theory row, got {H}")
    return THEORY_ROW[H]


def theory_problem(horizon: int, seed: int, poisoned: bool) -> FlowProblem:
    """The theory row's flow (SPEC §5–6) for any ``seed`` of the paper's initialisation at ``horizon``."""
    from ssmpoison.verify.theory_row import theory_row_problems

    cfg = _theory_config(horizon)
    seed = require_int("seed", seed, minimum=0, maximum=2**32 - 1)
    published = dict(theory_row_problems(cfg["horizon"], bool(poisoned)))
    if seed in published:
        return published[seed]
    a0 = paper_initialisation(seed, cfg["state_dim"], cfg["init_scale"], cfg["gap_exponent"])
    return FlowProblem(next(iter(published.values())).training_set, tuple(a0))


def theory_dynamics(horizon: int, seed: int | None = None, poisoned: bool = False, points: int = DEFAULT_POINTS,
                    extrapolate_to: int | None = None) -> DynamicsRun:
    """The recorded flow of the theory row (only A trained, B = C = 1) without or with u† = e_{H-2}.

    ``seed`` defaults to the row's first published seed; the extrapolation error is the
    paper's (SPEC §5) over ``extrapolate_to`` steps (default the row's J = 20).
    """
    cfg = _theory_config(horizon)
    seed = cfg["seeds"][0] if seed is None else seed
    J = cfg["extrapolation_length"] if extrapolate_to is None else require_int("extrapolate_to", extrapolate_to, minimum=1)
    D = cfg["state_dim"]
    problem = theory_problem(cfg["horizon"], seed, poisoned)
    result, series = flow_dynamics(problem, extrapolation=lambda a, b, c: extrapolation_error(a, b, c, D, J), points=points)
    return DynamicsRun("theory", cfg["horizon"], int(seed), bool(poisoned), result.status, float(result.t),
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


def _gd_config(row: str, horizon, extrapolate_to):
    from ssmpoison.verify.gd_rows import GD_ROWS, supported_horizons

    horizons = supported_horizons(row)
    H = require_int("horizon", horizon)
    if H not in horizons:
        raise ValueError(f"horizon must be one of {', '.join(map(str, horizons))} for the {row} row, got {H}")
    spec = GD_ROWS[row][H]
    config = spec["config"]
    if extrapolate_to is not None:
        config = dataclasses.replace(config, ext_length=require_int("extrapolate_to", extrapolate_to, minimum=1))
    return spec, config


def _network_residuals_and_slopes(params, U, y):
    """``delta_n = y*_n - g(y_H(u^(n)))`` and ``xi_n = g'(y_H(u^(n)))`` for the SSM + ReLU head."""
    from ssmpoison.verify.gd import ssm_outputs
    from ssmpoison.verify.mlp import mlp_backward, mlp_forward

    a, b, c, *weights = params
    heads = tuple(w[None] for w in weights)
    yH = ssm_outputs(a[None], b[None], c[None], U[None])
    f, cache = mlp_forward(heads, yH)
    _, xi = mlp_backward(heads, cache, np.ones_like(yH))
    return y - f[0], xi[0]


def gd_dynamics(row: str, horizon: int, seed: int | None = None, conditions=(False, True),
                points: int = DEFAULT_POINTS, max_steps: int | None = None, extrapolate_to: int | None = None,
                progress=None) -> list[DynamicsRun]:
    """One seed of a GD row (``"beyond"`` or ``"nonlinear"``), each condition in ``conditions``
    (False = without, True = with special sequences), trained in one batch and observed at
    :func:`log_spaced_steps` of the step budget plus the final step.

    ``max_steps`` defaults to the row's budget (:func:`ssmpoison.verify.gd_rows.step_budget`);
    ``progress(step, active_runs)`` is passed to the trainer.
    """
    from ssmpoison.verify.gd import StepObserver, beyond_problem, nonlinear_extrapolation_error, nonlinear_problem, \
        nonlinear_test_inputs, train_beyond, train_nonlinear
    from ssmpoison.verify.gd_rows import step_budget

    if row not in ("beyond", "nonlinear"):
        raise ValueError(f"row must be 'beyond' or 'nonlinear' for gradient descent, got {row!r}")
    spec, config = _gd_config(row, horizon, extrapolate_to)
    seed = spec["seeds"][0] if seed is None else require_int("seed", seed, minimum=0, maximum=2**32 - 1)
    flags = list(conditions)
    points = require_int("points", points, minimum=2)
    budget = step_budget(config) if max_steps is None else require_int("max_steps", max_steps, minimum=0)

    recorded: dict[int, list] = {r: [] for r in range(len(flags))}

    def look(step, runs, params, loss):
        for k, r in enumerate(runs):
            point = tuple(p[k] for p in params)
            if np.isfinite(loss[k]) and all(np.isfinite(p).all() for p in point):
                recorded[int(r)].append((step, point, float(loss[k])))

    trainer, problem = (train_beyond, beyond_problem) if row == "beyond" else (train_nonlinear, nonlinear_problem)
    results = trainer(config, [seed], flags, budget, progress=progress,
                      observer=StepObserver(log_spaced_steps(budget, points), look))
    runs = []
    for r, (result, poisoned) in enumerate(zip(results, flags)):
        pts = recorded[r]
        final = tuple(np.asarray(p) for p in result.params)
        if (not pts or pts[-1][0] < result.steps) and np.isfinite(result.train_loss) \
                and all(np.isfinite(p).all() for p in final):
            pts.append((result.steps, final, result.train_loss))
        _, U, y = problem(config, seed, poisoned)
        training_set = TrainingSet(tuple(map(tuple, U.tolist())), tuple(y.tolist()))
        trajectory = [(step, p[0], p[1], p[2], loss) for step, p, loss in pts]
        if row == "beyond":
            series = trajectory_series(trajectory, training_set, time_name="step",
                                       extrapolation=teacher_extrapolation(np.ones(config.ext_length)))
        else:
            tests = nonlinear_test_inputs(config, seed)
            pairs = [_network_residuals_and_slopes(p, U, y) for _, p, _ in pts]
            series = trajectory_series(trajectory, training_set, time_name="step",
                                       residuals=[d for d, _ in pairs], xi=[x for _, x in pairs],
                                       extrapolation=[nonlinear_extrapolation_error(config, tests, p) for _, p, _ in pts])
        runs.append(DynamicsRun(row, config.horizon, seed, bool(poisoned), result.status, float(result.steps),
                                effective_rank([1]), series))
    return runs


# ---------------------------------------------------------------- the CLI job


def _conditions(condition: str) -> tuple[bool, ...]:
    if condition not in CONDITIONS:
        raise ValueError(f"condition must be one of {', '.join(CONDITIONS)}, got {condition!r}")
    return {"clean": (False,), "poisoned": (True,), "both": (False, True)}[condition]


def run_dynamics(row: str, horizon, seed=None, condition: str = "both", extrapolate_to=None,
                 points: int = DEFAULT_POINTS, progress=None) -> list[DynamicsRun]:
    """The recorded runs of ``row`` at ``horizon`` for ``condition`` (clean, poisoned or both).

    ``progress`` (theory row: ``progress(flows_done)``; GD rows: ``progress(step, active_runs)``).
    """
    if row not in ROWS:
        raise ValueError(f"row must be one of {', '.join(ROWS)}, got {row!r}")
    flags = _conditions(condition)
    if row == "theory":
        runs = []
        for poisoned in flags:
            runs.append(theory_dynamics(horizon, seed, poisoned, points, extrapolate_to))
            if progress is not None:
                progress(1)
        return runs
    return gd_dynamics(row, horizon, seed, flags, points, extrapolate_to=extrapolate_to, progress=progress)


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


def dynamics_command(row: str, horizon, seed, condition: str, out: str, json_path: str | None,
                     extrapolate_to=None, stem: str | None = None) -> int:
    """The ``dynamics`` subcommand: validate everything, record the runs, draw the figures, print, write JSON."""
    from tqdm import tqdm

    from ssmpoison.verify.dynamics_plots import plot_dynamics
    from ssmpoison.verify.jsonio import write_json

    if row not in ROWS:
        raise ValueError(f"row must be one of {', '.join(ROWS)}, got {row!r}")
    flags = _conditions(condition)
    if row == "theory":
        cfg = _theory_config(horizon)
        horizon = cfg["horizon"]
        seed = cfg["seeds"][0] if seed is None else require_int("seed", seed, minimum=0, maximum=2**32 - 1)
    else:
        spec, config = _gd_config(row, horizon, None)
        horizon = config.horizon
        seed = spec["seeds"][0] if seed is None else require_int("seed", seed, minimum=0, maximum=2**32 - 1)
    if extrapolate_to is not None:
        extrapolate_to = require_int("extrapolate_to", extrapolate_to, minimum=1)
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out: {out!r} exists and is not a directory")
    if json_path not in (None, "-") and not Path(json_path).parent.exists():
        raise ValueError(f"json: directory {str(Path(json_path).parent)!r} does not exist")
    stem = f"{row}_H{horizon}_seed{seed}" if stem is None else stem
    if not stem or any(ch in stem for ch in "/\\") or stem.startswith("."):
        raise ValueError(f"stem must be a plain file-name stem, got {stem!r}")

    start = time.perf_counter()
    if row == "theory":
        with tqdm(total=len(flags), desc="gradient flows", unit="flow", file=sys.stderr, leave=False) as bar:
            runs = run_dynamics(row, horizon, seed, condition, extrapolate_to, progress=bar.update)
    else:
        with tqdm(desc=f"{row} row, GD", unit="step", file=sys.stderr, leave=False) as bar:
            def progress(step, active):
                bar.update(step - bar.n)
                bar.set_postfix(active=active)
            runs = run_dynamics(row, horizon, seed, condition, extrapolate_to, progress=progress)
    seconds_runs = time.perf_counter() - start
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = plot_dynamics(runs, out_dir, stem)
    seconds = time.perf_counter() - start

    if json_path != "-":
        print(f"Dynamics of the {row} row, H = {horizon}, seed {seed} "
              f"({'gradient flow, float64' if row == 'theory' else 'gradient descent, float64'})")
        for run in runs:
            print("\n".join(_summary_lines(run)))
        print(f"{len(figures)} figures in {out_dir}/: " + ", ".join(p.name for p in figures))
        print(f"runs {seconds_runs:.2f} s, with figures {seconds:.2f} s")
    if json_path:
        write_json(json_path, {
            "row": row,
            "horizon": horizon,
            "seed": seed,
            "condition": condition,
            "escape_level": ESCAPE_LEVEL,
            "figures": [p.name for p in figures],
            "runs": [r.to_json() for r in runs],
        })
    return 0 if all(r.status == "converged" for r in runs) else 1
