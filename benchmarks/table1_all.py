"""Benchmark: ``ssmpoison reproduce --row all`` — the whole of Table 1 — against its 15-minute budget.

Every row of :data:`ssmpoison.verify._registry.TABLE1_ROWS` is run at every registered horizon,
exactly as the command runs them (:func:`ssmpoison.verify._table1.reproduce_table1`: the theory
row's certified flows in ``--jobs`` worker processes, the GD rows' seeds, spreads and perturbed
re-runs each in one batch). Printed: the wall time of each row (all its horizons), its share of
the total, and the total against the budget of 900 s on the project's 2-core machine; the
command's own figures (means, ratios) are printed by the command, not here.

Run from the repository root: ``python benchmarks/table1_all.py [--jobs 2] [--budget 900]``.
Exit status 1 when the total exceeds the budget.
"""

from __future__ import annotations

import argparse
import sys
import time

from ssmpoison.verify._registry import TABLE1_ROWS, row_model
from ssmpoison.verify._workers import default_jobs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=default_jobs(), help="worker processes (default: the CPUs)")
    parser.add_argument("--budget", type=float, default=900.0, help="seconds allowed for the whole table")
    args = parser.parse_args(argv)

    times = []
    start = time.perf_counter()
    for name in TABLE1_ROWS:
        model = row_model(name)
        settings = model.settings()
        t = time.perf_counter()
        model.run(settings, jobs=args.jobs)
        times.append((name, [s.horizon for s in settings], time.perf_counter() - t))
        print(f"{name:<10} H = {', '.join(map(str, times[-1][1])):<8} {times[-1][2]:8.1f} s", flush=True)
    total = time.perf_counter() - start
    print(f"{'total':<10} {'':<12} {total:8.1f} s   ({total / args.budget:.0%} of the {args.budget:.0f} s budget, "
          f"--jobs {args.jobs})")
    for name, _, seconds in times:
        print(f"  {name:<10} {seconds / total:6.1%} of the total")
    return 0 if total <= args.budget else 1


if __name__ == "__main__":
    sys.exit(main())
