"""Where the Theorem's prediction holds: a sweep of the checker over two parameters of a setting.

:func:`sweep_checks` runs :func:`ssmpoison.verify._check.check_setting` on a grid of the paper's
initialisation over two of its parameters (e.g. scale ``sd_A`` × gap exponent ``k``, or ``D`` × ``H``)
and returns one record per grid point; :func:`sweep_summary` counts them; :func:`plot_sweep` (rendering only) draws the outcome:
for each grid point the ratio of the certified poisoned and clean errors, marked by whether the
conditions hold and whether the verdict matches the Theorem. Nothing here prints.

Run as ``python -m ssmpoison.verify._check_sweep --horizon 7 --state-dim 10 --out sweep.png``
(the command line is :mod:`ssmpoison.verify._check_sweep_main`).
"""

from __future__ import annotations

import math

from ssmpoison.verify._check import check_setting, paper_setting

__all__ = ["AXES", "sweep_checks", "sweep_summary", "plot_sweep"]


#: The parameters a sweep may vary (the arguments of :func:`ssmpoison.verify._check.paper_setting`).
AXES = ("horizon", "state_dim", "extrapolate_to", "init_scale", "gap_exponent", "seed")


def sweep_checks(base: dict, x: tuple, y: tuple, progress=None) -> list[dict]:
    """Check the Theorem on every point of a two-parameter grid of the paper's initialisation.

    Arguments:
        base: the fixed parameters, every name of :data:`AXES` (``horizon``, ``state_dim``,
            ``extrapolate_to``, ``init_scale``, ``gap_exponent`` — gap ``0.05 / e^(k log10(1/sd_A))`` —
            and ``seed``); the two varied ones may be left out.
        x: ``(name, values)``: the inner axis, a name of :data:`AXES`.
        y: ``(name, values)``: the outer axis, another name of :data:`AXES`.
        progress: ``None``, or a callable ``progress("sweep", done, total)``, called with
            ``done = 0`` before the first grid point and after each one.

    Returns:
        One record per grid point, ``y`` outer, ``x`` inner: every parameter of :data:`AXES`,
        ``valid`` (whether the point can be checked: a gap that would unsort the draws has no
        initialisation, and a flow that cannot reach its tolerance within the time limit is refused;
        ``reason`` then says which) and, when valid, ``conditions_hold`` (the conditions that are not advisory), ``all_conditions_hold``
        (the advisory poisoned-side ones too), the failing condition names, the certified clean and
        poisoned errors with their digits, their ratio, ``matches_theorem`` and ``outcome_as_predicted``.

    Raises:
        ValueError: an axis name not in :data:`AXES`, the same name on both axes, or a fixed
            parameter missing.
    """
    (xn, xs), (yn, ys) = x, y
    for name in (xn, yn):
        if name not in AXES:
            raise ValueError(f"sweep axis must be one of {', '.join(AXES)}, got {name!r}")
    if xn == yn:
        raise ValueError(f"sweep axes must differ, got {xn!r} twice")
    missing = [n for n in AXES if n not in (xn, yn) and n not in base]
    if missing:
        raise ValueError(f"sweep: fixed parameter(s) {', '.join(missing)} missing")
    out = []
    total = len(xs) * len(ys)
    if progress is not None:
        progress("sweep", 0, total)
    for yv in ys:
        for xv in xs:
            params = {n: base.get(n) for n in AXES} | {xn: xv, yn: yv}
            rec = dict(params)
            try:
                r = check_setting(paper_setting(**params))
            except ValueError as exc:  # no such initialisation (the gap would unsort the draws), or out of reach
                rec.update(valid=False, reason=str(exc))
            else:
                rec.update(
                    valid=True,
                    conditions_hold=r.conditions_hold,
                    all_conditions_hold=r.all_conditions_hold,
                    failing=[c.name for c in r.conditions if not c.holds],
                    clean=float(r.clean.quantity.value),
                    poisoned=float(r.poisoned.quantity.value),
                    clean_digits=r.clean.quantity.digits,
                    poisoned_digits=r.poisoned.quantity.digits,
                    ratio=r.poisoned_over_clean,
                    matches_theorem=r.matches_theorem,
                    outcome_as_predicted=r.outcome_as_predicted,
                )
            out.append(rec)
            if progress is not None:
                progress("sweep", len(out), total)
    return out


def sweep_summary(records: list[dict]) -> dict:
    """Counts of a sweep.

    Arguments:
        records: the records of :func:`sweep_checks`.

    Returns:
        ``{"settings": grid points, "inside_conditions": valid points where every condition that is not
        advisory holds, "match_theorem": those of them whose verdict matches the Theorem,
        "inside_all_conditions": valid points where every condition holds (the advisory poisoned-side
        ones too), "match_inside_all": those of them whose verdict matches}``.
    """
    hold = [r for r in records if r.get("valid") and r["conditions_hold"]]
    every = [r for r in hold if r.get("all_conditions_hold")]
    return {"settings": len(records), "inside_conditions": len(hold),
            "match_theorem": sum(1 for r in hold if r["matches_theorem"]),
            "inside_all_conditions": len(every), "match_inside_all": sum(1 for r in every if r["matches_theorem"])}


_LABELS = {"horizon": "training horizon H", "state_dim": "student dimension D", "extrapolate_to": "extrapolation horizon H'",
           "init_scale": "initialisation scale sd_A", "gap_exponent": "gap exponent k (gap = 0.05 / e^(k log10(1/sd_A)))",
           "seed": "seed"}


def plot_sweep(records: list[dict], path: str, title: str, x: str = "init_scale", y: str = "gap_exponent") -> None:
    """Draw a sweep: heat map of log10(poisoned / clean) over two of its parameters, the verdict marked per cell.

    The region where every condition holds, the advisory poisoned-side ones included, is outlined.

    Arguments:
        records: the records of :func:`sweep_checks`.
        path: the image file to write (its format from the suffix, e.g. PNG).
        title: the figure's title.
        x: the parameter on the horizontal axis (the sweep's inner axis).
        y: the parameter on the vertical axis.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    scales = sorted({r[x] for r in records})
    gaps = sorted({r[y] for r in records})
    grid = np.full((len(gaps), len(scales)), np.nan)
    fig, ax = plt.subplots(figsize=(7, 4.8))
    for r in records:
        i, j = gaps.index(r[y]), scales.index(r[x])
        if r.get("valid") and r.get("ratio"):
            grid[i, j] = math.log10(r["ratio"])
    im = ax.imshow(grid, origin="lower", cmap="coolwarm", vmin=-1.5, vmax=1.5, aspect="auto")
    for r in records:
        i, j = gaps.index(r[y]), scales.index(r[x])
        if not r.get("valid"):
            mark = "·"
        elif r["matches_theorem"]:
            mark = "✓"
        elif r["conditions_hold"]:
            mark = "✗"  # conditions hold, outcome differs: the prediction fails
        else:
            mark = "○" if r["outcome_as_predicted"] else "–"
        ax.text(j, i, mark, ha="center", va="center", fontsize=11)
    inside = {(gaps.index(r[y]), scales.index(r[x])) for r in records
              if r.get("valid") and r.get("all_conditions_hold")}
    for i, j in inside:  # the region's outline: the cell edges without a neighbour inside
        for di, dj, xs, ys in ((1, 0, (j - .5, j + .5), (i + .5, i + .5)), (-1, 0, (j - .5, j + .5), (i - .5, i - .5)),
                               (0, 1, (j + .5, j + .5), (i - .5, i + .5)), (0, -1, (j - .5, j - .5), (i - .5, i + .5))):
            if (i + di, j + dj) not in inside:
                ax.plot(xs, ys, color="black", lw=2)
    def ticks(name, values):
        return [f"{v:.0e}" if name == "init_scale" else f"{v:g}" for v in values]

    ax.set_xticks(range(len(scales)), ticks(x, scales), rotation=45 if x == "init_scale" else 0)
    ax.set_yticks(range(len(gaps)), ticks(y, gaps))
    ax.set_xlabel(_LABELS[x])
    ax.set_ylabel(_LABELS[y])
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, label="log10(poisoned error / clean error)")
    fig.text(0.01, 0.055, "✓ conditions hold, prediction holds   ✗ conditions hold, prediction fails   "
             "outlined: advisory ones hold too", fontsize=7.5)
    fig.text(0.01, 0.015, "○ / – a condition fails (outcome as predicted / not)     · no such initialisation, or past the time limit", fontsize=7.5)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":  # pragma: no cover - the command line lives in the CLI layer
    from ssmpoison.verify._check_sweep_main import main

    raise SystemExit(main())
