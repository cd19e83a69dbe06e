"""Human-readable tables and JSON for the ``reproduce`` job."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

from ssmpoison.theory.construction import THEORY_ROW
from ssmpoison.verify.jsonio import write_json
from ssmpoison.verify.theory_row import explain_difference, row_summary, run_theory_row

__all__ = ["reproduce_theory_row"]


def _fmt_published(summary: dict) -> str:
    return ", ".join(f"{v['published']:.3g} ({k})" for k, v in summary["published"].items())


def reproduce_theory_row(horizons, precision_bits, jobs: int, json_path: str | None) -> int:
    """Run the theory row, print the table (unless JSON goes to stdout), write JSON; exit 0 if every run converged."""
    start = time.perf_counter()
    total = 8 * len(horizons)
    with tqdm(total=total, desc="theory row flows", unit="flow", file=sys.stderr, leave=False) as bar:
        runs = run_theory_row(horizons, precision_bits, progress=bar.update, parallel=jobs)
    elapsed = time.perf_counter() - start
    summaries = [row_summary(runs, H, p) for H in horizons for p in (False, True)]
    quiet = json_path == "-"
    if not quiet:
        mode = "default path (float64 / exact oracle)" if precision_bits is None else f"{precision_bits}-bit precision"
        print(f"Theory row of Table 1 — gradient flow, only A trained, B = C = 1 — {mode}")
        for H in horizons:
            cfg = THEORY_ROW[H]
            print(
                f"\nH = {H}, D = {cfg['state_dim']}, init scale {cfg['init_scale']}, gap exponent {cfg['gap_exponent']}, "
                f"extrapolation error over J = {cfg['extrapolation_length']}"
            )
            print(f"  {'seed':>5}  {'condition':<9} {'ext_error (certified digits only)':<42} {'digits':>6}  {'method':<11} {'t_converged':>11}  status")
            for r in runs:
                if r.horizon != H:
                    continue
                run = r.run
                t = "-" if run.t_converged is None else f"{run.t_converged:.3g}"
                cond = "poisoned" if r.poisoned else "clean"
                print(f"  {r.seed:>5}  {cond:<9} {run.quantity.text:<42} {run.quantity.digits:>6}  {run.method:<11} {t:>11}  {run.status}")
            for s in summaries:
                if s["horizon"] != H:
                    continue
                cond = "with u†" if s["poisoned"] else "without u†"
                if s["mean"] is None:
                    print(f"  mean {cond}: no converged run (published {_fmt_published(s)})")
                    continue
                print(f"  mean {cond}: {s['mean']}   published: {_fmt_published(s)}")
                for line in explain_difference(s):
                    print(f"      {line}")
        print(f"\n{len(runs)} flows in {elapsed:.2f} s. Digits are certified by agreement with an independent re-run "
              "(higher precision and tighter tolerance) or the exact oracle; only those digits are printed.")
    if json_path:
        write_json(
            json_path,
            {
                "row": "theory",
                "precision_bits": precision_bits if precision_bits is not None else 53,
                "runs": [r.to_json() for r in runs],
                "summary": summaries,
            },
        )
    return 0 if all(r.run.status == "converged" for r in runs) else 1
