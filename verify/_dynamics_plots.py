"""Figures of recorded training dynamics (:mod:`ssmpoison.verify._dynamics`), as PNG files (matplotlib, Agg).

For every run four figures against time (log axis: gradient-flow time t, or GD step):

* ``entries`` — the magnitudes ``|a_i|`` of the diagonal of A (log axis), entry 1 the
  largest at the start;
* ``effective_rank`` — ``exp(H(p))``, ``p_i = |a_i| / sum_j |a_j|``, with the teacher's;
* ``gammas`` — every ``gamma^(l)``, ``gamma^(0)`` drawn thick (symmetric log axis: the
  coefficients change sign and decay by many orders of magnitude);
* ``loss`` — training loss and extrapolation error (log axis).

Points at time 0 cannot sit on a log axis and are left out of the drawing (they are in the
series). With both conditions, four more figures put clean and poisoned side by side on
shared axes. File names: ``{stem}_{clean|poisoned}_{metric}.png`` and
``{stem}_side_by_side_{metric}.png``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


__all__ = ["METRICS", "plot_dynamics"]

METRICS = ("entries", "effective_rank", "gammas", "loss")

_TITLES = {
    "entries": "entry magnitudes |a_i|",
    "effective_rank": "effective rank of A",
    "gammas": r"coefficients $\gamma^{(l)}$ of $da_i/dt = c_i b_i \sum_l \gamma^{(l)} a_i^l$",
    "loss": "training loss and extrapolation error",
}


def _condition_title(run) -> str:
    from ssmpoison.verify._registry import row_model

    return row_model(run.row).condition_title(run.horizon, run.poisoned)


def _time_label(run) -> str:
    return "gradient-flow time t (log scale)" if run.series.time_name == "t" else "gradient-descent step (log scale)"


def _positive_time(series):
    keep = series.times > 0
    return keep, series.times[keep]


def _draw_entries(ax, run) -> None:
    import matplotlib.pyplot as plt

    keep, t = _positive_time(run.series)
    A = np.abs(run.series.entries[keep])
    D = A.shape[1]
    cmap = plt.get_cmap("viridis")
    for i in range(D):
        ax.plot(t, A[:, i], color=cmap(i / max(D - 1, 1)), lw=1.8 if i == 0 else 1.1, label=f"$a_{{{i + 1}}}$")
    ax.set_yscale("log")
    ax.set_ylabel("|a_i|  (log scale)")
    ax.legend(fontsize=7, ncol=2, loc="upper left", title="entry (by index)", title_fontsize=7)


def _draw_effective_rank(ax, run) -> None:
    keep, t = _positive_time(run.series)
    D = run.series.entries.shape[1]
    ax.plot(t, run.series.effective_rank[keep], color="tab:blue", lw=1.8, label="student")
    ax.axhline(run.teacher_rank, color="tab:red", ls="--", lw=1, label=f"teacher ({run.teacher_rank:g})")
    ax.set_ylim(0, D + 0.5)
    ax.set_ylabel(r"effective rank $\exp(H(p))$, $p_i = |a_i| / \sum_j |a_j|$")
    ax.legend(fontsize=8, loc="lower left")


def _draw_gammas(ax, run) -> None:
    import matplotlib.pyplot as plt

    keep, t = _positive_time(run.series)
    G = run.series.gammas[keep]
    L = G.shape[1]
    cmap = plt.get_cmap("plasma")
    for l in range(L - 1, -1, -1):  # gamma^(0) drawn last, on top
        color = "black" if l == 0 else cmap(l / max(L, 1))
        ax.plot(t, G[:, l], color=color, lw=2.6 if l == 0 else 1.1, label=rf"$\gamma^{{({l})}}$", zorder=3 if l == 0 else 2)
    if not np.any(run.series.gammas[:, 0]):
        ax.text(0.02, 0.04, r"$\gamma^{(0)} \equiv 0$ at every point: no special sequence",
                transform=ax.transAxes, fontsize=8, bbox=dict(facecolor="white", alpha=0.8, lw=0))
    xi = r" with $\xi_n = g'(y_H(u^{(n)}))$" if run.series.xi_factor else ""
    ax.set_ylabel(r"$\gamma^{(l)}$" + xi + "  (symmetric log scale)", fontsize=9)
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], labels[::-1], fontsize=7, ncol=2, loc="best")


def _draw_loss(ax, run) -> None:
    keep, t = _positive_time(run.series)
    ax.plot(t, run.series.loss[keep], color="tab:blue", lw=1.6, label="training loss")
    if run.series.ext_error is not None:
        ax.plot(t, run.series.ext_error[keep], color="tab:orange", lw=1.6, label="extrapolation error")
    ax.set_yscale("log")
    ax.set_ylabel("loss / error  (log scale)")
    ax.legend(fontsize=8, loc="lower left")


_DRAW = {"entries": _draw_entries, "effective_rank": _draw_effective_rank, "gammas": _draw_gammas, "loss": _draw_loss}


def _gamma_scale(ax, runs) -> None:
    """Symmetric log axis shared by the panels: linear within 1e-6 of the largest |gamma| (or the smallest non-zero one)."""
    nonzero = np.concatenate([np.abs(r.series.gammas[r.series.times > 0]).ravel() for r in runs])
    nonzero = nonzero[nonzero > 0]
    if not nonzero.size:
        return
    top, linthresh = float(nonzero.max()), max(float(nonzero.max()) * 1e-6, float(nonzero.min()))
    ax.set_yscale("symlog", linthresh=linthresh, linscale=0.6)
    lo, hi = math.ceil(math.log10(linthresh)), math.ceil(math.log10(top))
    every = max(1, math.ceil((hi - lo + 1) / 5))  # at most ~5 labelled decades per sign
    decades = [10.0**e for e in range(hi, lo - 1, -every)]
    ax.set_yticks([-d for d in decades] + [0.0] + decades[::-1])


def _render(runs, metric: str, label: str | None = None) -> bytes:
    """The PNG of one figure of ``runs`` (:func:`plot_dynamics`), as bytes."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogFormatterSciNotation, LogLocator, NullFormatter

    fig, axes = plt.subplots(1, len(runs), figsize=(6.2 * len(runs), 4.6), sharey=True, squeeze=False)
    for ax, run in zip(axes[0], runs):
        _DRAW[metric](ax, run)
        ax.set_xscale("log")
        lo, hi = ax.get_xlim()
        if hi / lo < 1e3:  # a short log range has at most one labelled decade: label 2x and 5x as well
            ax.xaxis.set_minor_locator(LogLocator(base=10, subs=(2.0, 5.0)))
            ax.xaxis.set_minor_formatter(LogFormatterSciNotation(labelOnlyBase=False))
        else:
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(_time_label(run))
        ax.set_title(_condition_title(run), fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
    if metric == "gammas":
        _gamma_scale(axes[0][0], runs)
    first = runs[0]
    seed = "" if first.seed is None else f", seed {first.seed}"
    name = f"{first.row} row" if label is None else label
    fig.suptitle(f"{name}, H = {first.horizon}{seed}: {_TITLES[metric]}", fontsize=11)
    fig.tight_layout()
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=110)
    finally:
        plt.close(fig)
    return buffer.getvalue()


def figure_names(stem: str, conditions) -> list[str]:
    """The file names :func:`plot_dynamics` writes for runs of ``conditions`` (``clean``, ``poisoned``)."""
    names = [f"{stem}_{condition}_{metric}.png" for condition in conditions for metric in METRICS]
    if len(conditions) > 1:
        names += [f"{stem}_side_by_side_{metric}.png" for metric in METRICS]
    return names


def plot_dynamics(runs, out_dir, stem: str, label: str | None = None, jobs: int = 1) -> list[Path]:
    """Draw every figure of ``runs`` (one or two :class:`ssmpoison.verify._dynamics.DynamicsRun`) into ``out_dir``.

    The figures are rendered in ``jobs`` worker processes (:func:`ssmpoison.verify._workers.worker_pool`) when
    ``jobs > 1``; this process writes each file atomically (a complete file or none), so the files are the same
    bytes whatever ``jobs`` is.

    Arguments:
        runs: the recorded runs (one or two conditions of one seed).
        out_dir: an existing directory.
        stem: the file-name stem (:func:`figure_names`).
        label: what the figures' titles call the runs (default ``"{row} row"``, e.g. an experiment's name).
        jobs: the processes rendering the figures (>= 1).

    Returns:
        The paths of the figures written.
    """
    from ssmpoison.verify._jsonio import atomic_path

    out_dir = Path(out_dir)
    names = figure_names(stem, [run.condition for run in runs])
    figures = [([run], metric) for run in runs for metric in METRICS]
    if len(runs) > 1:
        figures += [(list(runs), metric) for metric in METRICS]
    if jobs > 1 and len(figures) > 1:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401  (imported once here: the forked workers inherit it)

        from ssmpoison.verify._workers import worker_pool

        with worker_pool(min(jobs, len(figures))) as pool:
            futures = [pool.submit(_render, fig_runs, metric, label) for fig_runs, metric in figures]
            images = [f.result() for f in futures]
    else:
        images = [_render(fig_runs, metric, label) for fig_runs, metric in figures]
    paths = []
    for name, image in zip(names, images):
        with atomic_path(out_dir / name) as tmp:
            Path(tmp).write_bytes(image)
        paths.append(out_dir / name)
    return paths
