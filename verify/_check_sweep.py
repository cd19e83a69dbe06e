"""Where the Theorem's prediction holds: a sweep of the checker over initialisation scale and gap.

:func:`sweep_scale_gap` runs :func:`ssmpoison.verify._check.check_setting` on a grid of the paper's
initialisation (scale ``sd_A``, gap exponent ``k``, one seed) and returns one record per grid
point; :func:`sweep_summary` counts them; :func:`plot_sweep` (rendering only) draws the outcome:
for each grid point the ratio of the certified poisoned and clean errors, marked by whether the
conditions hold and whether the verdict matches the Theorem. Nothing here prints.

Run as ``python -m ssmpoison.verify._check_sweep --horizon 7 --state-dim 10 --out sweep.png``
(the command line is :mod:`ssmpoison.verify._check_sweep_main`).
"""

from __future__ import annotations

import math

from ssmpoison.verify._check import check_setting, paper_setting

__all__ = ["sweep_scale_gap", "sweep_summary", "plot_sweep"]


def sweep_scale_gap(horizon: int, state_dim: int, extrapolate_to: int, scales, gap_exponents, seed: int, progress=None) -> list[dict]:
    """Check the Theorem on every grid point (gap exponent, scale) of the paper's initialisation.

    Arguments:
        horizon: training horizon H.
        state_dim: student dimension D.
        extrapolate_to: extrapolation horizon H'.
        scales: initialisation scales ``sd_A``.
        gap_exponents: gap exponents ``k`` (gap ``0.05 / e^(k log10(1/sd_A))``).
        seed: seed of the paper's initialisation.
        progress: ``None``, or a callable ``progress("sweep", done, total)``, called with
            ``done = 0`` before the first grid point and after each one.

    Returns:
        One record per grid point, gap exponents outer, scales inner: ``scale``, ``gap_exponent``,
        ``valid`` (whether the initialisation exists: a gap that would unsort the draws has none)
        and, when valid, ``conditions_hold`` (the conditions that are not advisory), ``all_conditions_hold``
        (the advisory poisoned-side ones too), the failing condition names, the certified clean and
        poisoned errors with their digits, their ratio, ``matches_theorem`` and ``outcome_as_predicted``.
        A point whose setting :func:`ssmpoison.verify._check.paper_setting` rejects is not valid.
    """
    out = []
    total = len(gap_exponents) * len(scales)
    if progress is not None:
        progress("sweep", 0, total)
    for k in gap_exponents:
        for s in scales:
            rec = {"scale": float(s), "gap_exponent": float(k)}
            try:
                setting = paper_setting(horizon, state_dim, extrapolate_to, s, k, seed)
            except ValueError:  # the gap would unsort the draws: no such initialisation
                rec.update(valid=False)
            else:
                r = check_setting(setting)
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
        records: the records of :func:`sweep_scale_gap`.

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


def plot_sweep(records: list[dict], path: str, title: str) -> None:
    """Draw a sweep: heat map of log10(poisoned / clean) over (scale, gap exponent), the verdict marked per cell.

    The region where every condition holds, the advisory poisoned-side ones included, is outlined.

    Arguments:
        records: the records of :func:`sweep_scale_gap`.
        path: the image file to write (its format from the suffix, e.g. PNG).
        title: the figure's title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    scales = sorted({r["scale"] for r in records})
    gaps = sorted({r["gap_exponent"] for r in records})
    grid = np.full((len(gaps), len(scales)), np.nan)
    fig, ax = plt.subplots(figsize=(7, 4.8))
    for r in records:
        i, j = gaps.index(r["gap_exponent"]), scales.index(r["scale"])
        if r.get("valid") and r.get("ratio"):
            grid[i, j] = math.log10(r["ratio"])
    im = ax.imshow(grid, origin="lower", cmap="coolwarm", vmin=-1.5, vmax=1.5, aspect="auto")
    for r in records:
        i, j = gaps.index(r["gap_exponent"]), scales.index(r["scale"])
        if not r.get("valid"):
            mark = "·"
        elif r["matches_theorem"]:
            mark = "✓"
        elif r["conditions_hold"]:
            mark = "✗"  # conditions hold, outcome differs: the prediction fails
        else:
            mark = "○" if r["outcome_as_predicted"] else "–"
        ax.text(j, i, mark, ha="center", va="center", fontsize=11)
    inside = {(gaps.index(r["gap_exponent"]), scales.index(r["scale"])) for r in records
              if r.get("valid") and r.get("all_conditions_hold")}
    for i, j in inside:  # the region's outline: the cell edges without a neighbour inside
        for di, dj, xs, ys in ((1, 0, (j - .5, j + .5), (i + .5, i + .5)), (-1, 0, (j - .5, j + .5), (i - .5, i - .5)),
                               (0, 1, (j + .5, j + .5), (i - .5, i + .5)), (0, -1, (j - .5, j - .5), (i - .5, i + .5))):
            if (i + di, j + dj) not in inside:
                ax.plot(xs, ys, color="black", lw=2)
    ax.set_xticks(range(len(scales)), [f"{s:.0e}" for s in scales], rotation=45)
    ax.set_yticks(range(len(gaps)), [f"{k:g}" for k in gaps])
    ax.set_xlabel("initialisation scale sd_A")
    ax.set_ylabel("gap exponent k (gap = 0.05 / e^(k log10(1/sd_A)))")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, label="log10(poisoned error / clean error)")
    fig.text(0.01, 0.055, "✓ conditions hold, prediction holds   ✗ conditions hold, prediction fails   "
             "outlined: advisory ones hold too", fontsize=7.5)
    fig.text(0.01, 0.015, "○ / – a condition fails (outcome as predicted / not)     · no such initialisation", fontsize=7.5)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":  # pragma: no cover - the command line lives in the CLI layer
    from ssmpoison.verify._check_sweep_main import main

    raise SystemExit(main())
