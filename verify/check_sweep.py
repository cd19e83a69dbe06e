"""Where the Theorem's prediction holds: a sweep of the checker over initialisation scale and gap.

``sweep_scale_gap`` runs :func:`ssmpoison.verify.check.check_setting` on a grid of the paper's
initialisation (scale ``sd_A``, gap exponent ``k``, one seed) and ``plot_sweep`` draws the
outcome: for each grid point the ratio of the certified poisoned and clean errors, marked by
whether the conditions hold and whether the verdict matches the Theorem.

Run as ``python -m verify.check_sweep --horizon 7 --state-dim 10 --out sweep.png``.
"""

from __future__ import annotations

import argparse
import math

from ssmpoison.theory.theorem import conditions
from ssmpoison.theory.validation import require_int
from ssmpoison.verify.check import check_setting, paper_setting

__all__ = ["sweep_scale_gap", "plot_sweep"]


def sweep_scale_gap(horizon: int, state_dim: int, extrapolate_to: int, scales, gap_exponents, seed: int, progress=None) -> list[dict]:
    """One record per grid point: scale, gap exponent, ``valid`` (the initialisation exists),
    ``conditions_hold``, failing condition names, certified errors, ratio and ``matches_theorem``."""
    out = []
    for k in gap_exponents:
        for s in scales:
            rec = {"scale": float(s), "gap_exponent": float(k)}
            try:
                setting = paper_setting(horizon, state_dim, extrapolate_to, s, k, seed)
            except ValueError:  # the gap would unsort the draws: no such initialisation
                rec.update(valid=False)
                out.append(rec)
                if progress:
                    progress(1)
                continue
            r = check_setting(setting)
            rec.update(
                valid=True,
                conditions_hold=r.conditions_hold,
                failing=[c.name for c in conditions(setting) if not c.holds],
                clean=float(r.clean.quantity.value),
                poisoned=float(r.poisoned.quantity.value),
                clean_digits=r.clean.quantity.digits,
                poisoned_digits=r.poisoned.quantity.digits,
                ratio=r.poisoned_over_clean,
                matches_theorem=r.matches_theorem,
                outcome_as_predicted=r.outcome_as_predicted,
            )
            out.append(rec)
            if progress:
                progress(1)
    return out


def plot_sweep(records: list[dict], path: str, title: str) -> None:
    """Heat map of log10(poisoned / clean) over (scale, gap exponent), with the verdict marked per cell."""
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
    ax.set_xticks(range(len(scales)), [f"{s:.0e}" for s in scales], rotation=45)
    ax.set_yticks(range(len(gaps)), [f"{k:g}" for k in gaps])
    ax.set_xlabel("initialisation scale sd_A")
    ax.set_ylabel("gap exponent k (gap = 0.05 / e^(k log10(1/sd_A)))")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, label="log10(poisoned error / clean error)")
    fig.text(0.01, 0.055, "✓ conditions hold, prediction holds     ✗ conditions hold, prediction fails", fontsize=7.5)
    fig.text(0.01, 0.015, "○ / – a condition fails (outcome as predicted / not)     · no such initialisation", fontsize=7.5)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--horizon", default="7")
    p.add_argument("--state-dim", default="10")
    p.add_argument("--extrapolate-to", default="20")
    p.add_argument("--seed", default="242")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    H, D = require_int("horizon", args.horizon, minimum=3), require_int("state_dim", args.state_dim, minimum=2)
    J, seed = require_int("extrapolate_to", args.extrapolate_to, minimum=1), require_int("seed", args.seed, minimum=0)
    scales = [10.0 ** (e / 4) for e in range(-14, -3)]  # 3.2e-4 .. 1.8e-1
    gaps = [1, 2, 3, 4, 5, 6, 8, 10]
    from tqdm import tqdm

    with tqdm(total=len(scales) * len(gaps), desc="sweep", unit="setting") as bar:
        records = sweep_scale_gap(H, D, J, scales, gaps, seed, progress=bar.update)
    plot_sweep(records, args.out, f"Theorem check, H = {H}, D = {D}, H' = {J}, seed {seed}")
    hold = [r for r in records if r.get("valid") and r["conditions_hold"]]
    print(f"{len(records)} settings, {len(hold)} inside the conditions, "
          f"{sum(1 for r in hold if r['matches_theorem'])} of those match the Theorem")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
