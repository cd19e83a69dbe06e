"""The whole of Table 1: every row of :data:`ssmpoison.verify._registry.TABLE1_ROWS` at every published horizon.

:func:`reproduce_table1` runs the rows through their row models and returns their results as
values (:class:`Table1Result`); :func:`table1_text` renders them, with one summary line per row
and horizon assembled from the rows' values (their JSON payloads).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ssmpoison.verify._registry import TABLE1_ROWS, row_model

__all__ = ["Table1Result", "reproduce_table1", "table1_text"]


@dataclass(frozen=True)
class Table1Result:
    """The results of the rows of Table 1, in order, and the wall time of the whole table."""

    rows: tuple
    seconds: float

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    def to_json(self) -> dict:
        return {"row": "all", "rows": [r.to_json() for r in self.rows], "seconds": round(self.seconds, 3)}


def reproduce_table1(*, precision_bits: int | None = None, jobs: int = 1, progress=None, perturbations: int | None = None,
                     perturbation_size: float | None = None, skipped_seeds: bool = False) -> Table1Result:
    """Run every row of Table 1 at every published horizon.

    Arguments:
        precision_bits: working precision of the rows it applies to (the theory row); ``None``: the default path.
        jobs: worker processes for the rows that use them.
        progress: ``progress(label, done, total, note)`` (:data:`ssmpoison.verify._rows.Progress`).
        perturbations, perturbation_size: K perturbed re-runs of each run and their relative size, for the GD rows
            (``None``: their defaults; :func:`ssmpoison.verify._gd_rows.run_gd_row`).
        skipped_seeds: also run the seeds the paper's lists skip, in the GD rows.

    Returns:
        A :class:`Table1Result`.
    """
    start = time.perf_counter()
    results = []
    for name in TABLE1_ROWS:
        model = row_model(name)
        bits = precision_bits if model.precision_applies else None
        gd = {} if not model.perturbations_apply else {"perturbations": perturbations, "perturbation_size": perturbation_size,
                                                 "skipped_seeds": skipped_seeds}
        results.append(model.run(model.settings(), progress=progress, precision_bits=bits, jobs=jobs, **gd))
    return Table1Result(tuple(results), time.perf_counter() - start)


def table1_text(result: Table1Result) -> str:
    """Every row's table, then Table 1 in one summary: our means without / with special sequences, published beside."""
    lines = ["", "Table 1 — mean extrapolation error, ours (published)",
             f"  {'row':<10} {'H':>3}  {'without special':<28} {'with special':<28} ratio"]
    for r in result.rows:
        by_horizon: dict[int, dict[bool, tuple]] = {}
        for H, poisoned, mean, mean_text, pub_text in row_model(r.row).table1_cells(r):
            by_horizon.setdefault(H, {})[poisoned] = (mean_text, pub_text, mean)
        for H, conds in by_horizon.items():
            (m0, p0, v0), (m1, p1, v1) = conds[False], conds[True]
            ratio = f"{v1 / v0:.3g}x" if v0 and v1 is not None else "-"
            lines.append(f"  {r.row:<10} {H:>3}  {m0 + ' (' + p0 + ')':<28} {m1 + ' (' + p1 + ')':<28} {ratio}")
    texts = [row_model(r.row).text(r) for r in result.rows]
    return "\n\n".join(texts) + "\n" + "\n".join(lines) + f"\n\nWhole of Table 1 in {result.seconds:.1f} s."
