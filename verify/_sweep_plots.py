"""Figures of sweeps (rendering only): a heat map of one metric over two parameters, or curves over one.

:func:`plot_grid` draws the records of a sweep (parameters and metrics flattened into one
mapping per point, as :func:`flatten` makes them from a store's rows). For the Theorem's checker
(records with ``matches_theorem``) each cell is marked by its verdict and the region where every
condition holds is outlined.
"""

from __future__ import annotations

import math

from ssmpoison.verify._jsonio import save_figure

__all__ = ["flatten", "plot_grid", "plot_curves"]


def _wrapped(title: str) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(title, 80))


def flatten(rows: list[dict]) -> list[dict]:
    """One mapping per stored point: its parameters, its metrics, ``status``, ``reason`` and ``valid`` (status ``done``).

    Arguments:
        rows: :meth:`ssmpoison.verify._store.Store.rows`.

    Returns:
        The flattened records, in the rows' order.
    """
    return [r["params"] | r["metrics"] | {"status": r["status"], "reason": r["reason"], "valid": r["status"] == "done"}
            for r in rows]


_LABELS = {"horizon": "training horizon H", "state_dim": "student dimension D", "extrapolate_to": "extrapolation horizon H'",
           "init_scale": "initialisation scale sd_A", "gap_exponent": "gap exponent k (gap = 0.05 / e^(k log10(1/sd_A)))",
           "seed": "seed"}


def plot_grid(records: list[dict], path: str, title: str, x: str, y: str, color: str = "ratio", log: bool = True) -> None:
    """Draw a sweep: heat map of one metric over two parameters (their values on the axes, in order).

    For the Theorem's checker (records with ``matches_theorem``) each cell is marked by its verdict
    and the region where every condition holds, the advisory poisoned-side ones included, is outlined;
    for other jobs a cell whose point was refused or failed is marked ``·``. Points that share
    ``(x, y)`` (a third varied parameter) are averaged.

    Arguments:
        records: flattened records (:func:`flatten`).
        path: the image file to write (its format from the suffix, e.g. PNG).
        title: the figure's title.
        x: the parameter on the horizontal axis.
        y: the parameter on the vertical axis.
        color: the numeric metric that colours a cell.
        log: colour by ``log10`` of the metric (non-positive values are left blank).

    Raises:
        ValueError: naming ``x``, ``y`` or ``color`` when no record has it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    for name, key in (("x", x), ("y", y)):
        if not any(key in r for r in records):
            raise ValueError(f"{name}: no point has the parameter {key!r}")
    if not any(color in r for r in records):
        raise ValueError(f"color: no point has the metric {color!r}")
    xs = sorted({r[x] for r in records})
    ys = sorted({r[y] for r in records})
    sums, counts = np.zeros((len(ys), len(xs))), np.zeros((len(ys), len(xs)))
    for r in records:
        v = r.get(color) if r.get("valid") else None
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and (v > 0 or not log):
            i, j = ys.index(r[y]), xs.index(r[x])
            sums[i, j] += math.log10(v) if log else v
            counts[i, j] += 1
    with np.errstate(invalid="ignore"):
        grid = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    check = any("matches_theorem" in r for r in records)
    fig, ax = plt.subplots(figsize=(7, 4.8))
    if check and color == "ratio" and log:
        im = ax.imshow(grid, origin="lower", cmap="coolwarm", vmin=-1.5, vmax=1.5, aspect="auto")
    else:
        im = ax.imshow(grid, origin="lower", cmap="viridis", aspect="auto")
    for r in records:
        i, j = ys.index(r[y]), xs.index(r[x])
        if not r.get("valid"):
            mark = "·"
        elif not check:
            continue
        elif r["matches_theorem"]:
            mark = "✓"
        elif r["conditions_hold"]:
            mark = "✗"  # conditions hold, outcome differs: the prediction fails
        else:
            mark = "○" if r["outcome_as_predicted"] else "–"
        ax.text(j, i, mark, ha="center", va="center", fontsize=11)
    inside = {(ys.index(r[y]), xs.index(r[x])) for r in records if r.get("valid") and r.get("all_conditions_hold")}
    for i, j in inside:  # the region's outline: the cell edges without a neighbour inside
        for di, dj, lx, ly in ((1, 0, (j - .5, j + .5), (i + .5, i + .5)), (-1, 0, (j - .5, j + .5), (i - .5, i - .5)),
                               (0, 1, (j + .5, j + .5), (i - .5, i + .5)), (0, -1, (j - .5, j - .5), (i - .5, i + .5))):
            if (i + di, j + dj) not in inside:
                ax.plot(lx, ly, color="black", lw=2)

    def ticks(name, values):
        return [f"{v:.0e}" if name == "init_scale" else f"{v:g}" if isinstance(v, (int, float)) else str(v)
                for v in values]

    ax.set_xticks(range(len(xs)), ticks(x, xs), rotation=45 if x == "init_scale" else 0)
    ax.set_yticks(range(len(ys)), ticks(y, ys))
    ax.set_xlabel(_LABELS.get(x, x))
    ax.set_ylabel(_LABELS.get(y, y))
    ax.set_title(_wrapped(title), fontsize=10)
    label = "log10(poisoned error / clean error)" if check and color == "ratio" else color
    fig.colorbar(im, ax=ax, label=f"log10({label})" if log and label == color else label)
    if check:
        fig.text(0.01, 0.055, "✓ conditions hold, prediction holds   ✗ conditions hold, prediction fails   "
                 "outlined: advisory ones hold too", fontsize=7.5)
        fig.text(0.01, 0.015, "○ / – a condition fails (outcome as predicted / not)     · no such initialisation, "
                 "or past the time limit", fontsize=7.5)
    else:
        fig.text(0.01, 0.015, "· the point was refused or failed", fontsize=7.5)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    save_figure(fig, path)


def plot_curves(records: list[dict], path: str, title: str, x: str, color: str, params, log: bool = True) -> None:
    """Draw a sweep as curves: one metric against one parameter, one curve per value of the other varied parameters.

    Arguments:
        records: flattened records (:func:`flatten`); refused or failed points are left out.
        path: the image file to write (its format from the suffix, e.g. PNG).
        title: the figure's title.
        x: the parameter on the horizontal axis (log scale when all its values are positive and span a factor of 10 or more).
        color: the numeric metric on the vertical axis.
        params: the sweep's parameter names (those other than ``x`` that vary label the curves).
        log: a log scale on the vertical axis (non-positive values are left out).

    Raises:
        ValueError: naming ``x`` or ``color`` when no record has it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not any(x in r for r in records):
        raise ValueError(f"x: no point has the parameter {x!r}")
    if not any(color in r for r in records):
        raise ValueError(f"color: no point has the metric {color!r}")
    varied = [k for k in params if k != x and len({repr(r.get(k)) for r in records}) > 1]
    curves: dict = {}
    for r in records:
        v = r.get(color) if r.get("valid") else None
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and (v > 0 or not log):
            curves.setdefault(tuple(r[k] for k in varied), []).append((r[x], v))
    fig, ax = plt.subplots(figsize=(7, 4.8))
    for values, pts in sorted(curves.items()):
        pts.sort()
        label = ", ".join(f"{k} = {v:g}" if isinstance(v, (int, float)) else f"{k} = {v}" for k, v in zip(varied, values))
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=label or None)
    xs = [r[x] for r in records if isinstance(r.get(x), (int, float))]
    if xs and min(xs) > 0 and max(xs) >= 10 * min(xs):
        ax.set_xscale("log")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(_LABELS.get(x, x))
    ax.set_ylabel(color)
    ax.set_title(_wrapped(title), fontsize=10)
    if any(curves) and len(curves) <= 12:
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)

