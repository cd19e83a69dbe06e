"""The "beyond" and "non-linear" rows of Table 1 (note 00 §6): runs, summaries, tables, JSON.

A row at one setting (:class:`~ssmpoison.verify._settings.GDRowSetting`; the paper's are
:mod:`ssmpoison.verify._registry`'s) trains its seeds without and with the special sequences
(:func:`ssmpoison.verify._gd_training.train_beyond` / :func:`ssmpoison.verify._gd_training.train_nonlinear`, all runs in one batch)
and reports, for each condition, the mean extrapolation error over the runs that converged
(the loss reached ``tol`` and the extra steps were made); runs that diverged, stalled or ran
out of steps are listed with their status and kept out of the mean, with their count shown.

Every run starts where the paper's run started: the training data are replayed from numpy's
legacy generator, and the initial weights are those of the paper's Keras initialisers,
replayed bit for bit from TensorFlow's stateless stream (:mod:`ssmpoison.verify._tf_random`).
The *spread* repeats the row with ``draws`` further initialisation draws per seed (the
stream of the seed pair ``[seed, d]``, same data) and gives the distribution of the four-seed
mean over those draws: how much the published mean would move with the initialisation alone.

**Robustness of each run.** Each run of draw 0 is re-run K times, in the same batch, from its
own initial weights perturbed multiplicatively, ``p <- p (1 + eps xi)`` with ``xi ~ N(0, 1)``
drawn from ``(seed, condition, k)`` (:func:`ssmpoison.verify._gd_data.perturb_initial`). The
*outcome* of a run is its status, its number of learned state entries (``|a_i| >=``
:data:`LEARNED_LEVEL`, the dynamics' escape level) and, for a converged run, the class of its
extrapolation error: within a factor :data:`ERROR_FACTOR` of the unperturbed run's. A re-run
*differs* when any of the three differs (:func:`same_outcome`); a run is *robust* when none of
its K re-runs differs, else a *knife edge* (:func:`run_robustness`). Per condition, the mean over
seeds of the k-th re-runs gives K samples of the mean under the perturbations
(:func:`perturbation_means`). When the ratio of the means with / without special sequences is
below :data:`RATIO_LEVEL`, the knife-edge runs are named, each with the range of the ratio when that
run alone takes its re-runs' errors; a knife edge one of whose re-runs lifts the ratio to
:data:`RATIO_LEVEL` is *responsible* for it (:func:`responsible_knife_edges`).

**Skipped seeds.** A setting's ``skipped_seeds`` (the seeds the paper's list skips) are run on
request in a second batch (draw 0 and their perturbed re-runs, no spread) and reported beside
the published seeds, with means of their own, out of the published comparison.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np

from ssmpoison.theory._validation import require_int, require_real
from ssmpoison.verify._gd_config import BeyondConfig
from ssmpoison.verify._settings import GDRowSetting
from ssmpoison.verify._gd_training import RunResult, train_beyond, train_nonlinear
from ssmpoison.verify._status import Status

__all__ = [
    "LEARNED_LEVEL",
    "ERROR_FACTOR",
    "RATIO_LEVEL",
    "DEFAULT_PERTURBATIONS",
    "DEFAULT_PERTURBATION_SIZE",
    "learned_entries",
    "same_outcome",
    "run_robustness",
    "perturbation_means",
    "perturbation_ratios",
    "responsible_knife_edges",
    "GDRowResult",
    "run_gd_row",
    "condition_summary",
    "spread_summary",
    "spread_ratios",
    "row_text",
    "row_json",
    "robustness_json",
    "gd_row_text",
    "FOOTERS",
]

LEARNED_LEVEL = 0.5
"""A state entry is *learned* when ``|a_i| >= LEARNED_LEVEL``: the dynamics' escape level
(:data:`ssmpoison.verify._dynamics.ESCAPE_LEVEL`; initialisations are ~1e-3 to 0.1, the teacher's entries 1)."""
ERROR_FACTOR = 3.0
"""Two converged runs with the same learned entries are in the same extrapolation-error class when their
errors are within this factor of each other."""
RATIO_LEVEL = 10.0
"""The ratio of the means with / without special sequences that the paper's claim needs (Table 1: >= 10x)."""
DEFAULT_PERTURBATIONS = 8
"""K, the perturbed re-runs of each run by default (``reproduce --perturbations``)."""
DEFAULT_PERTURBATION_SIZE = 1e-7
"""eps, the relative size of the perturbations by default: float32's rounding level."""


@dataclass
class GDRowResult:
    """One row at one setting: its own runs (initialisation draw 0), the spread runs, the perturbed re-runs,
    the skipped seeds' runs, the wall time.

    Arguments:
        row: the row's name; setting: the setting run; runs: the runs of draw 0; spread_runs: those of
        draws ``1..draws``; draws: the spread's draws per seed; seconds: wall time of the batch(es);
        perturbation_runs: the perturbed re-runs of ``runs`` (``RunResult.perturbation = 1..K``);
        perturbations: K; perturbation_size: eps; skipped_runs, skipped_perturbation_runs: the runs of the
        setting's skipped seeds (draw 0) and their perturbed re-runs (empty unless requested).
    """

    row: str
    setting: GDRowSetting
    runs: list[RunResult]
    spread_runs: list[RunResult] = field(default_factory=list)
    draws: int = 0
    seconds: float = 0.0
    perturbation_runs: list[RunResult] = field(default_factory=list)
    perturbations: int = 0
    perturbation_size: float = 0.0
    skipped_runs: list[RunResult] = field(default_factory=list)
    skipped_perturbation_runs: list[RunResult] = field(default_factory=list)

    @property
    def horizon(self) -> int:
        return self.setting.horizon

    @property
    def config(self):
        return self.setting.config

    @property
    def seeds(self) -> tuple:
        return self.setting.seeds

    @property
    def published(self) -> dict | None:
        return self.setting.published


def run_gd_row(setting: GDRowSetting, *, row: str | None = None, draws: int | None = None, max_steps: int | None = None,
               progress=None, perturbations: int | None = None, perturbation_size: float | None = None,
               skipped_seeds: bool = False) -> GDRowResult:
    """Train the row at ``setting``: its seeds with initialisation draw 0, draws ``1..draws`` for the spread
    and K perturbed re-runs of each run of draw 0, all in one batch; then, if asked, the setting's skipped
    seeds (draw 0 and their K re-runs) in a second batch.

    Arguments:
        setting: the row's setting at one horizon (its config says which trainer runs).
        row: the name the result carries (default ``"beyond"`` or ``"nonlinear"`` by the config).
        draws: further initialisation draws per seed (default the setting's).
        max_steps: updates allowed per run (default the setting's step budget).
        progress: ``progress(finished_runs, total_runs, step)``, called as the batches advance.
        perturbations: K >= 0, perturbed re-runs per run (default :data:`DEFAULT_PERTURBATIONS`).
        perturbation_size: eps >= 0, their relative size (default :data:`DEFAULT_PERTURBATION_SIZE`).
        skipped_seeds: also run the setting's ``skipped_seeds``.

    Raises:
        ValueError: naming the argument.
    """
    if not isinstance(setting, GDRowSetting):
        raise ValueError(f"setting must be a GDRowSetting, got {type(setting).__name__}")
    beyond = isinstance(setting.config, BeyondConfig)
    row = ("beyond" if beyond else "nonlinear") if row is None else row
    draws = setting.draws if draws is None else require_int("draws", draws, minimum=0)
    budget = setting.step_budget if max_steps is None else require_int("max_steps", max_steps, minimum=0)
    K = DEFAULT_PERTURBATIONS if perturbations is None else require_int("perturbations", perturbations, minimum=0)
    eps = DEFAULT_PERTURBATION_SIZE if perturbation_size is None else float(
        require_real("perturbation_size", perturbation_size, nonnegative=True))
    skipped = setting.skipped_seeds if skipped_seeds else ()
    first = len(setting.seeds) * 2 * (draws + 1 + K)
    total = first + len(skipped) * 2 * (1 + K)
    trainer = train_beyond if beyond else train_nonlinear
    start = time.perf_counter()

    def callback(offset, size):
        return None if progress is None else (lambda t, active: progress(offset + size - active, total, t))

    results = trainer(setting.config, setting.seeds, [False, True], budget, progress=callback(0, first),
                      init_draws=range(draws + 1), perturbations=K, perturbation_size=eps)
    extra = trainer(setting.config, skipped, [False, True], budget, progress=callback(first, total - first),
                    perturbations=K, perturbation_size=eps) if skipped else []
    seconds = time.perf_counter() - start
    own = [r for r in results if r.init_draw == 0 and not r.perturbation]
    spread = [r for r in results if r.init_draw > 0]
    perturbed = [r for r in results if r.perturbation]
    return GDRowResult(row, setting, own, spread, draws, seconds, perturbed, K, eps,
                       [r for r in extra if not r.perturbation], [r for r in extra if r.perturbation])


# ---------------------------------------------------------------- robustness


def learned_entries(run: RunResult, level: float = LEARNED_LEVEL) -> int:
    """The number of state entries of a run's final ``a`` with ``|a_i| >= level`` (0 for non-finite entries)."""
    a = np.abs(np.asarray(run.params[0], dtype=float))
    return int(np.sum(np.isfinite(a) & (a >= level)))


def same_outcome(reference: RunResult, other: RunResult, factor: float = ERROR_FACTOR) -> bool:
    """Whether ``other`` lands in the outcome of ``reference``.

    Same status, same :func:`learned_entries`, and, when ``reference`` converged, extrapolation errors
    ``e, e'`` with ``1/factor <= e'/e <= factor`` (equal, if either is 0 or not finite).
    """
    if other.status != reference.status or learned_entries(other) != learned_entries(reference):
        return False
    if reference.status != Status.CONVERGED:
        return True
    x, y = reference.ext_error, other.ext_error
    if not (math.isfinite(x) and math.isfinite(y)) or x == 0 or y == 0:
        return x == y or (math.isnan(x) and math.isnan(y))
    return 1 / factor <= y / x <= factor


def _label(differ: int, K: int) -> str | None:
    if not K:
        return None
    return "robust" if not differ else f"knife edge ({differ} of {K} perturbed runs differ)"


def run_robustness(run: RunResult, perturbed: list[RunResult]) -> dict:
    """The robustness of one run under its perturbed re-runs (those of ``perturbed`` with its seed and condition).

    Returns:
        ``seed``, ``poisoned``, ``status``, ``learned`` (:func:`learned_entries`), ``ext_error``, ``perturbations``
        (K), ``differ`` (how many re-runs do not satisfy :func:`same_outcome`), ``differing`` (their k),
        ``robust`` (``differ == 0``; ``None`` when K = 0), ``label`` (``"robust"``, ``"knife edge (x of K
        perturbed runs differ)"`` or ``None``), ``learned_counts`` and ``statuses`` of the re-runs, and
        ``ext_error_min``, ``ext_error_median``, ``ext_error_max`` over the converged re-runs (``None`` if none).
    """
    mine = sorted((p for p in perturbed if p.seed == run.seed and p.poisoned == run.poisoned), key=lambda p: p.perturbation)
    differing = [p.perturbation for p in mine if not same_outcome(run, p)]
    errors = np.array([p.ext_error for p in mine if p.status == Status.CONVERGED and math.isfinite(p.ext_error)])
    counts: dict[str, int] = {}
    for n in sorted(learned_entries(p) for p in mine):
        counts[str(n)] = counts.get(str(n), 0) + 1
    return {
        "seed": run.seed,
        "poisoned": run.poisoned,
        "status": run.status,
        "learned": learned_entries(run),
        "ext_error": _finite_or_none(run.ext_error),
        "perturbations": len(mine),
        "differ": len(differing),
        "differing": differing,
        "robust": None if not mine else not differing,
        "label": _label(len(differing), len(mine)),
        "learned_counts": counts,
        "statuses": {s: sum(p.status == s for p in mine) for s in sorted({p.status for p in mine})},
        "ext_error_min": float(errors.min()) if len(errors) else None,
        "ext_error_median": float(np.median(errors)) if len(errors) else None,
        "ext_error_max": float(errors.max()) if len(errors) else None,
    }


def _means_by(runs: list[RunResult], key) -> dict[tuple[int, bool], float]:
    """``(key(run), poisoned) -> mean ext error`` over the converged runs."""
    groups: dict[tuple[int, bool], list[float]] = {}
    for r in runs:
        if r.status == Status.CONVERGED:
            groups.setdefault((key(r), r.poisoned), []).append(r.ext_error)
    return {k: float(np.mean(v)) for k, v in groups.items()}


def perturbation_means(perturbed: list[RunResult], poisoned: bool) -> dict | None:
    """The mean over seeds (converged re-runs) of the k-th perturbed re-runs of one condition, for each k.

    Returns:
        ``poisoned``, ``samples`` (the k with a converged re-run), ``min``, ``median``, ``max`` of those means;
        ``None`` without perturbed runs of the condition.
    """
    if not any(r.poisoned == poisoned for r in perturbed):
        return None
    means = np.array([m for (k, p), m in sorted(_means_by(perturbed, lambda r: r.perturbation).items()) if p == poisoned])
    out = {"poisoned": poisoned, "samples": len(means)}
    if len(means):
        out.update(min=float(means.min()), median=float(np.median(means)), max=float(means.max()))
    return out


def perturbation_ratios(perturbed: list[RunResult]) -> dict | None:
    """For each k, the mean with special sequences over the mean without (converged k-th re-runs): how often it
    is at least :data:`RATIO_LEVEL`, its min, median and max; ``None`` when no k has both means."""
    means = _means_by(perturbed, lambda r: r.perturbation)
    ratios = np.array([means[(k, True)] / means[(k, False)] for k in sorted({k for k, _ in means})
                       if (k, True) in means and (k, False) in means and means[(k, False)] != 0])
    if not len(ratios):
        return None
    return {"samples": len(ratios), "at_least_10x": int((ratios >= RATIO_LEVEL).sum()), "min": float(ratios.min()),
            "median": float(np.median(ratios)), "max": float(ratios.max())}


def responsible_knife_edges(runs: list[RunResult], perturbed: list[RunResult]) -> list[dict] | None:
    """When the ratio of the means with / without special sequences is below :data:`RATIO_LEVEL`: its knife-edge runs.

    For each converged knife-edge run, the ratio is recomputed with that run's error replaced by each of its
    converged re-runs' errors in turn (the other runs as they are): the run is *responsible* when one of its
    re-runs alone lifts the ratio to :data:`RATIO_LEVEL` or more.

    Returns:
        ``None`` when the ratio is at least :data:`RATIO_LEVEL` or undefined; else the :func:`run_robustness` of
        every converged knife-edge run (responsible ones first), each with ``ratio_min``, ``ratio_max`` (over its
        re-runs' errors), ``ratio_at_least_10x`` (how many of its re-runs give a ratio >= :data:`RATIO_LEVEL`) and
        ``responsible``; an empty list when no run is a knife edge (the ratio is robust to these perturbations).
    """
    means = _means_by(runs, lambda r: 0)
    if (0, False) not in means or (0, True) not in means or means[(0, False)] == 0:
        return None
    if means[(0, True)] / means[(0, False)] >= RATIO_LEVEL:
        return None
    out = []
    for run in runs:
        rob = run_robustness(run, perturbed)
        if run.status != Status.CONVERGED or rob["robust"] is not False:
            continue
        ratios = []
        for p in perturbed:
            if p.seed == run.seed and p.poisoned == run.poisoned and p.status == Status.CONVERGED and math.isfinite(p.ext_error):
                m = _means_by([dataclasses.replace(r, ext_error=p.ext_error) if r is run else r for r in runs], lambda r: 0)
                if m[(0, False)]:
                    ratios.append(m[(0, True)] / m[(0, False)])
        rob.update(ratio_min=min(ratios, default=None), ratio_max=max(ratios, default=None),
                   ratio_at_least_10x=sum(x >= RATIO_LEVEL for x in ratios), responsible=any(x >= RATIO_LEVEL for x in ratios))
        out.append(rob)
    return sorted(out, key=lambda x: not x["responsible"])


# ---------------------------------------------------------------- summaries


def _finite_or_none(x: float):
    return float(x) if math.isfinite(x) else None


def condition_summary(runs: list[RunResult], poisoned: bool, published: dict | None) -> dict:
    """Mean over the converged runs of one condition, the excluded runs and the published value."""
    sel = [r for r in runs if r.poisoned == poisoned]
    ok = [r for r in sel if r.status == Status.CONVERGED]
    excluded = [r for r in sel if r.status != Status.CONVERGED]
    out = {
        "poisoned": poisoned,
        "mean": float(np.mean([r.ext_error for r in ok])) if ok else None,
        "median": float(np.median([r.ext_error for r in ok])) if ok else None,
        "runs": len(ok),
        "excluded": len(excluded),
        "excluded_statuses": {s: sum(r.status == s for r in excluded) for s in sorted({r.status for r in excluded})},
        "published": None if published is None else published[poisoned],
    }
    if out["mean"] is not None and out["published"] is not None:
        out["ratio_to_published"] = out["mean"] / out["published"]
    return out


def spread_summary(spread_runs: list[RunResult], seeds, poisoned: bool, published: dict | None) -> dict | None:
    """Distribution over initialisation draws of the four-seed mean (converged runs only).

    For each draw the mean of the converged runs of the seeds is one sample; the summary gives
    the median, the 10 % and 90 % quantiles and the range of those samples, the fraction of
    samples below the published value (its percentile), and how many spread runs were excluded.
    """
    sel = [r for r in spread_runs if r.poisoned == poisoned]
    if not sel:
        return None
    by_draw: dict[int, list[float]] = {}
    for r in sel:
        if r.status == Status.CONVERGED:
            by_draw.setdefault(r.init_draw, []).append(r.ext_error)
    means = np.array([np.mean(v) for v in by_draw.values()])
    excluded = [r for r in sel if r.status != Status.CONVERGED]
    out = {
        "poisoned": poisoned,
        "draws": len({r.init_draw for r in sel}),
        "samples": len(means),
        "excluded": len(excluded),
        "excluded_statuses": {s: sum(r.status == s for r in excluded) for s in sorted({r.status for r in excluded})},
        "run_median": float(np.median([r.ext_error for r in sel if r.status == Status.CONVERGED])) if len(means) else None,
    }
    if len(means):
        out.update(median=float(np.median(means)), q10=float(np.quantile(means, 0.1)), q90=float(np.quantile(means, 0.9)),
                   min=float(means.min()), max=float(means.max()))
        if published is not None:
            out["published_percentile"] = float(100.0 * np.mean(means < published[poisoned]))
    return out


def spread_ratios(spread_runs: list[RunResult]) -> dict | None:
    """Per initialisation draw, the four-seed mean with special sequences over the one without
    (converged runs only): how often it is at least 10, and its median."""
    means: dict[tuple[int, bool], list[float]] = {}
    for r in spread_runs:
        if r.status == Status.CONVERGED:
            means.setdefault((r.init_draw, r.poisoned), []).append(r.ext_error)
    ratios = [np.mean(means[(d, True)]) / np.mean(means[(d, False)])
              for d in sorted({d for d, _ in means}) if (d, True) in means and (d, False) in means]
    if not ratios:
        return None
    ratios = np.array(ratios)
    return {"draws": len(ratios), "at_least_10x": int((ratios >= 10).sum()), "median": float(np.median(ratios)),
            "min": float(ratios.min()), "max": float(ratios.max())}


def _arithmetic(dtype: str) -> str:
    """What the printed notes say about the arithmetic of a run in ``dtype``."""
    return "float32 here as in the paper" if dtype == "float32" else "float64 here, float32 in the paper"


def _verdict(summary: dict, spread: dict | None, runs: list[RunResult] = (), dtype: str = "float64") -> list[str]:
    """Plain-language comparison of our mean with the published one."""
    pub, mean = summary["published"], summary["mean"]
    if pub is None or mean is None:
        return []
    ratio = mean / pub
    lines = [f"ours / published = {ratio:.3g}" + (" (within 3x)" if 1 / 3 <= ratio <= 3 else " (NOT within 3x)")]
    ok = [r for r in runs if r.poisoned == summary["poisoned"] and r.status == Status.CONVERGED]
    if not 1 / 3 <= ratio <= 3 and ok:
        top = max(ok, key=lambda r: r.ext_error)
        share = top.ext_error / sum(r.ext_error for r in ok)
        rest = [r.ext_error for r in ok if r is not top]
        lines.append(f"seed {top.seed} alone gives {share:.0%} of the sum (ext error {top.ext_error:.3g})"
                     + (f"; the mean of the other {len(rest)} is {np.mean(rest):.3g}" if rest else ""))
    if spread and spread.get("samples"):
        pct = spread["published_percentile"]
        inside = spread["min"] <= pub <= spread["max"]
        where = "inside" if inside else "outside"
        lines.append(
            f"the published mean is {where} the spread of the four-seed mean over {spread['samples']} further "
            f"initialisation draws (percentile {pct:.0f}); the runs above start from the paper's own initial weights "
            f"(TensorFlow's stream replayed), so a difference from the published mean comes from the arithmetic "
            f"({_arithmetic(dtype)}" + ("" if dtype == "float64" else ", in another order of operations")
            + "), not from the draw."
        )
    return lines


def _ratio_line(summaries) -> str | None:
    clean, poisoned = summaries
    if clean["mean"] is None or poisoned["mean"] is None or clean["mean"] == 0:
        return None
    line = f"with / without special sequences: {poisoned['mean'] / clean['mean']:.3g}x"
    if clean["published"] is not None:
        line += f" (published {poisoned['published'] / clean['published']:.3g}x)"
    return line


def _setting_line(result: GDRowResult) -> str:
    c, H = result.config, result.horizon
    if isinstance(c, BeyondConfig):
        return (f"H = {H}, D = {c.state_dim}, sd_A {c.sd_a:g}, sd_BC {c.sd_bc:g}, k = {c.gap_k:g}, warm start {c.warm_start:g}, "
                f"{c.n_baseline} baseline (positions {','.join(map(str, c.baseline_positions))}) + {c.n_special} special, "
                f"lr {c.lr:g}, tol {c.tol:g}, +{c.extra_steps} steps (reported after {c.reported_extra_steps}), J = {c.extrapolation_length}, "
                f"{c.dtype}")
    return (f"H = {H}, D = {c.state_dim}, sd_SSM {c.sd_ssm:g}, k = {c.gap_k:g}, warm start {c.warm_start:g}, width {c.width}, "
            f"sd_MLP {c.sd_mlp:g}, {c.n_baseline} baseline + {c.n_special} special, Adam lr {c.lr:g}, tol {c.tol:g}, "
            f"+{c.extra_steps} steps (reported after {c.reported_extra_steps}), {c.ext_samples} test sequences of length {c.extrapolation_length}, "
            f"{c.dtype}")


def _fmt(x, spec=".4g") -> str:
    return "-" if x is None or not math.isfinite(x) else format(x, spec)


def _run_lines(runs: list[RunResult], perturbed: list[RunResult]) -> list[str]:
    """The table of runs: one line each, with its learned entries and its robustness label."""
    lines = [f"  {'seed':>5}  {'condition':<9} {'ext_error':>11}  {'status':<10} {'steps':>8} {'reached_at':>10}  "
             f"{'train_loss':>10}  {'largest |a_i|':<19}  {'learned':>7}  robustness"]
    for r in runs:
        cond = "poisoned" if r.poisoned else "clean"
        reached = "-" if r.reached_at is None else str(r.reached_at)
        top = np.sort(np.abs(np.asarray(r.params[0], dtype=float)))[::-1][:3]
        label = run_robustness(r, perturbed)["label"] or "-"
        lines.append(f"  {r.seed:>5}  {cond:<9} {_fmt(r.ext_error, '.4e'):>11}  {r.status:<10} {r.steps:>8} {reached:>10}  "
                     f"{_fmt(r.train_loss, '.3e'):>10}  {', '.join(f'{x:.3f}' for x in top):<19}  "
                     f"{learned_entries(r):>7}  {label}")
    return lines


def _robustness_detail(rob: dict) -> str:
    """One knife-edge run's statistics, in words."""
    cond = "with special" if rob["poisoned"] else "without special"
    counts = ", ".join(f"{n} in {c}" for n, c in rob["learned_counts"].items())
    errors = ("no converged re-run" if rob["ext_error_median"] is None else
              f"ext error {rob['ext_error_min']:.3g} - {rob['ext_error_max']:.3g} (median {rob['ext_error_median']:.3g})")
    statuses = "" if set(rob["statuses"]) <= {Status.CONVERGED} else "; statuses " + ", ".join(
        f"{n} {k}" for k, n in rob["statuses"].items())
    return (f"seed {rob['seed']} {cond}: {rob['label']}: itself {rob['learned']} learned, ext error {_fmt(rob['ext_error'], '.3g')}; "
            f"re-runs: learned {counts}; {errors}{statuses}")


def _robustness_lines(result: GDRowResult) -> list[str]:
    """The perturbation statistics of a row: the knife-edge runs, the means under the perturbations, and the
    knife-edge runs behind a ratio below :data:`RATIO_LEVEL`."""
    K = result.perturbations
    if not K:
        return []
    robs = [run_robustness(r, result.perturbation_runs) for r in result.runs]
    edges = [x for x in robs if x["robust"] is False]
    lines = [f"  robustness: {K} re-runs of each run from its initial weights times (1 + eps xi), eps = {result.perturbation_size:g}, "
             f"xi ~ N(0, 1); outcome = status, learned entries (|a_i| >= {LEARNED_LEVEL:g}) and ext error within a factor "
             f"{ERROR_FACTOR:g}; {sum(x['robust'] is True for x in robs)} of {len(robs)} runs robust"]
    lines += [f"      {_robustness_detail(x)}" for x in edges]
    parts = []
    for p in (False, True):
        m = perturbation_means(result.perturbation_runs, p)
        if m and m["samples"]:
            parts.append(f"{'with' if p else 'without'} special {m['min']:.3g} / {m['median']:.3g} / {m['max']:.3g}")
    if parts:
        lines.append(f"  under the perturbations, four-seed mean (min / median / max over the {K} re-runs): " + "; ".join(parts))
    pr = perturbation_ratios(result.perturbation_runs)
    if pr:
        lines.append(f"      with / without >= {RATIO_LEVEL:g}x in {pr['at_least_10x']} of {pr['samples']} (median {pr['median']:.3g}x, "
                     f"range {pr['min']:.3g}x - {pr['max']:.3g}x)")
    responsible = responsible_knife_edges(result.runs, result.perturbation_runs)
    if responsible is not None:
        if not responsible:
            lines.append(f"  with / without is below {RATIO_LEVEL:g}x and no run is a knife edge: the ratio is robust to "
                         "perturbations of this size")
        elif not any(x["responsible"] for x in responsible):
            lines.append(f"  with / without is below {RATIO_LEVEL:g}x, and no knife-edge run alone lifts it to {RATIO_LEVEL:g}x")
        for x in responsible:
            what = "knife-edge run responsible" if x["responsible"] else "also a knife edge, not responsible"
            span = "" if x["ratio_min"] is None else (
                f": with its re-runs' errors the ratio is {x['ratio_min']:.3g}x - {x['ratio_max']:.3g}x "
                f"(>= {RATIO_LEVEL:g}x in {x['ratio_at_least_10x']} of {x['perturbations']})")
            lines.append(f"  with / without is below {RATIO_LEVEL:g}x; {what}: seed {x['seed']} "
                         f"{'with' if x['poisoned'] else 'without'} special, {x['label']}{span}")
    return lines


def _skipped_lines(result: GDRowResult) -> list[str]:
    """The runs of the skipped seeds, their means and robustness (out of the published comparison)."""
    if not result.skipped_runs:
        return []
    seeds = ", ".join(map(str, result.setting.skipped_seeds))
    lines = [f"  skipped seeds of the paper's list ({seeds}), run here and kept out of the means above:"]
    lines += _run_lines(result.skipped_runs, result.skipped_perturbation_runs)
    for p in (False, True):
        s = condition_summary(result.skipped_runs, p, None)
        excl = "" if not s["excluded"] else ", " + ", ".join(f"{n} {k}" for k, n in s["excluded_statuses"].items()) + " excluded"
        lines.append(f"  skipped seeds' mean {'with' if p else 'without'} special: {_fmt(s['mean'])} over {s['runs']} "
                     f"converged run(s){excl}")
    ratio = _ratio_line([condition_summary(result.skipped_runs, p, None) for p in (False, True)])
    if ratio:
        lines.append(f"  skipped seeds' {ratio}")
    both = condition_summary(result.runs + result.skipped_runs, False, None), condition_summary(
        result.runs + result.skipped_runs, True, None)
    ratio = _ratio_line(both)
    if ratio:
        lines.append(f"  published and skipped seeds together: means {_fmt(both[0]['mean'])} / {_fmt(both[1]['mean'])}, {ratio}")
    return lines


def row_text(result: GDRowResult) -> str:
    """The human-readable table of one row at one horizon."""
    lines = ["", _setting_line(result)]
    lines += _run_lines(result.runs, result.perturbation_runs)
    summaries = [condition_summary(result.runs, p, result.published) for p in (False, True)]
    spreads = [spread_summary(result.spread_runs, result.seeds, p, result.published) for p in (False, True)]
    for s, sp in zip(summaries, spreads):
        cond = "with special" if s["poisoned"] else "without special"
        excl = "none excluded" if not s["excluded"] else (
            f"{s['excluded']} excluded: " + ", ".join(f"{n} {k}" for k, n in s["excluded_statuses"].items()))
        pub = "" if s["published"] is None else f"   published: {s['published']:.4g}"
        lines.append(f"  mean {cond}: {_fmt(s['mean'])} over {s['runs']} converged run(s), {excl}{pub}")
        for line in _verdict(s, sp, result.runs, result.config.dtype):
            lines.append(f"      {line}")
        if sp and sp.get("samples"):
            sexcl = "" if not sp["excluded"] else (
                f"; {sp['excluded']} of {sp['draws'] * len(result.seeds)} spread runs excluded (" +
                ", ".join(f"{n} {k}" for k, n in sp["excluded_statuses"].items()) + ")")
            lines.append(f"      spread over {sp['draws']} further initialisation draws per seed: four-seed mean median "
                         f"{sp['median']:.4g}, 10-90% {sp['q10']:.4g} - {sp['q90']:.4g}, range {sp['min']:.4g} - {sp['max']:.4g}; "
                         f"median single run {sp['run_median']:.4g}{sexcl}")
    ratio = _ratio_line(summaries)
    if ratio:
        lines.append(f"  {ratio}")
    sr = spread_ratios(result.spread_runs)
    if sr:
        lines.append(f"  over the spread draws: with / without >= 10x in {sr['at_least_10x']} of {sr['draws']} draws "
                     f"(median {sr['median']:.3g}x, range {sr['min']:.3g}x - {sr['max']:.3g}x)")
    lines += _robustness_lines(result)
    lines += _skipped_lines(result)
    first = len(result.runs) + len(result.spread_runs) + len(result.perturbation_runs)
    skipped = len(result.skipped_runs) + len(result.skipped_perturbation_runs)
    lines.append(f"  {first} runs in one batch" + (f" and {skipped} of the skipped seeds in a second" if skipped else "")
                 + f", {result.seconds:.1f} s")
    return "\n".join(lines)


def _run_json(r: RunResult, row: str, horizon: int, draw: bool = False, perturbation: bool = False) -> dict:
    out = {
        "row": row,
        "horizon": horizon,
        "seed": r.seed,
        "poisoned": r.poisoned,
        "ext_error": _finite_or_none(r.ext_error),
        "train_loss": _finite_or_none(r.train_loss),
        "steps": r.steps,
        "status": r.status,
    }
    if draw:
        out["init_draw"] = r.init_draw
    if perturbation:
        out["perturbation"] = r.perturbation
        out["learned"] = learned_entries(r)
    return out


def robustness_json(result: GDRowResult) -> dict:
    """The robustness of one setting's runs as data: the perturbations' K and eps, the outcome's definition, per
    run :func:`run_robustness`, per condition :func:`perturbation_means`, :func:`perturbation_ratios` and
    :func:`responsible_knife_edges`; the same for the skipped seeds' runs."""
    out = {
        "horizon": result.horizon,
        "perturbations": result.perturbations,
        "perturbation_size": result.perturbation_size,
        "learned_level": LEARNED_LEVEL,
        "error_factor": ERROR_FACTOR,
        "runs": [run_robustness(r, result.perturbation_runs) for r in result.runs],
        "means": [m for p in (False, True) if (m := perturbation_means(result.perturbation_runs, p)) is not None],
        "ratios": perturbation_ratios(result.perturbation_runs),
        "responsible_knife_edges": responsible_knife_edges(result.runs, result.perturbation_runs),
    }
    if result.skipped_runs:
        out["skipped_runs"] = [run_robustness(r, result.skipped_perturbation_runs) for r in result.skipped_runs]
    return out


def row_json(results: list[GDRowResult]) -> dict:
    """Machine-readable form of one row (all its horizons): ``dtype`` is the arithmetic the runs trained in
    (``"float64"`` or ``"float32"``; the settings' ``dtype``, joined by ``","`` if they differ), and every run
    carries ``row``, ``horizon``, ``seed``, ``poisoned``, ``ext_error``, ``train_loss``, ``steps`` and ``status``.

    ``robustness`` holds one :func:`robustness_json` per setting and ``perturbation_runs`` the perturbed re-runs
    (with ``perturbation`` k and ``learned``); the skipped seeds' runs are in ``skipped_runs`` (their perturbed
    re-runs in ``skipped_perturbation_runs``) and their means in ``skipped_summary``, never in ``summary``."""
    row = results[0].row
    dtype = ",".join(dict.fromkeys(res.config.dtype for res in results))
    payload = {"row": row, "dtype": dtype, "runs": [], "summary": [], "spread": [], "spread_runs": [], "seconds": {},
               "robustness": [], "perturbation_runs": [], "skipped_runs": [], "skipped_summary": [],
               "skipped_perturbation_runs": []}
    for res in results:
        payload["runs"] += [_run_json(r, row, res.horizon) for r in res.runs]
        payload["robustness"].append(robustness_json(res))
        payload["perturbation_runs"] += [_run_json(r, row, res.horizon, perturbation=True) for r in res.perturbation_runs]
        payload["skipped_runs"] += [_run_json(r, row, res.horizon) for r in res.skipped_runs]
        payload["skipped_perturbation_runs"] += [_run_json(r, row, res.horizon, perturbation=True)
                                                 for r in res.skipped_perturbation_runs]
        if res.skipped_runs:
            payload["skipped_summary"] += [{"horizon": res.horizon, "seeds": list(res.setting.skipped_seeds),
                                            **condition_summary(res.skipped_runs, p, None)} for p in (False, True)]
        for p in (False, True):
            payload["summary"].append({"horizon": res.horizon, **condition_summary(res.runs, p, res.published)})
            spread = spread_summary(res.spread_runs, res.seeds, p, res.published)
            if spread is not None:
                payload["spread"].append({"horizon": res.horizon, **spread})
        ratios = spread_ratios(res.spread_runs)
        if ratios is not None:
            payload["spread_ratios"] = payload.get("spread_ratios", []) + [{"horizon": res.horizon, **ratios}]
        payload["spread_runs"] += [_run_json(r, row, res.horizon, draw=True) for r in res.spread_runs]
        payload["seconds"][str(res.horizon)] = round(res.seconds, 3)
    return payload


FOOTERS = {
    "beyond": (
        "Training data: the paper's own sequences (numpy's legacy generator seeded as in its code). "
        "Initialisation: the paper's own initial weights (its Keras initialisers' draws, replayed bit for bit from "
        "TensorFlow's stateless stream for the seed pair [seed, 0]; then sorted, gap, warm start as in its code); "
        "the spread shows how much the four-seed mean moves with further draws (seed pairs [seed, d]). As in the paper's code, the adaptive step is normalised by the gradient of the "
        "whole recurrent matrix and the values are taken at its last logged step ({reported} of the {extra} extra steps). "
        "{arithmetic}."
    ),
    "nonlinear": (
        "Training and test data: the paper's own sequences (numpy's legacy generator seeded as in its code). "
        "Initialisation: the paper's own initial weights for the SSM and the MLP layers (its Keras initialisers' "
        "draws, replayed bit for bit from TensorFlow's stateless stream for the seed pair [seed, 0]); the spread shows "
        "how much the four-seed mean moves with further draws (seed pairs [seed, d]). A clean run either learns one state entry near 1 (small error) or two entries "
        "(error ~0.1-0.8), and a few runs stall at the saddle where the network's output is ~0 (gradient < 1e-8); "
        "one such run decides a four-seed mean. Values are taken at the paper's last logged step ({reported} of {extra}). "
        "{arithmetic}."
    ),
}


def gd_row_text(kind: str, results: list[GDRowResult], title: str) -> str:
    """The printed form of a GD row (``kind`` ``"beyond"`` or ``"nonlinear"``) at its settings: ``title``, one
    table per setting (:func:`row_text`), and the note on data and initialisation."""
    config = results[0].config
    dtypes = dict.fromkeys(res.config.dtype for res in results)
    arithmetic = "; ".join(_arithmetic(d) for d in dtypes)
    if kind == "beyond" and "float64" in dtypes:
        arithmetic += " (benchmarks/gd_rows.py: the means move by about 1%; --dtype float32 runs the paper's)"
    elif "float64" in dtypes:
        arithmetic += " (--dtype float32 runs the paper's)"
    footer = FOOTERS[kind].format(reported=config.reported_extra_steps, extra=config.extra_steps, arithmetic=arithmetic)
    return "\n".join([title, *(row_text(res) for res in results), "\n" + footer])
