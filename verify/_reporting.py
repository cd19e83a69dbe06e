"""The theory row's result as text: the table of ``ssmpoison reproduce --row theory``.

Rendering only: :func:`theory_row_text` turns a
:class:`~ssmpoison.verify._rows.TheoryRowResult` into the printed table (its JSON is the
result's ``to_json()``). A setting that is not the paper's has no published column.
"""

from __future__ import annotations

from ssmpoison.verify._theory_row import explain_difference

__all__ = ["theory_row_text"]


def _fmt_published(summary: dict) -> str:
    return ", ".join(f"{v['published']:.3g} ({k})" for k, v in summary["published"].items())


def theory_row_text(result, title: str) -> str:
    """The table of a theory-row result: every run with its certified digits, the means, the published values.

    Arguments:
        result: a :class:`~ssmpoison.verify._rows.TheoryRowResult`.
        title: the row's title (its first line, followed by the precision).

    Returns:
        The text, one line per run and per mean, without a final newline.
    """
    precision = result.precision_bits
    mode = "default path (float64 / exact oracle)" if precision is None else f"{precision}-bit precision"
    summaries = result.summaries
    lines = [f"{title} — {mode}"]
    for setting in result.settings:
        H = setting.horizon
        own = "" if setting.is_published else " (no published values)"
        lines += [
            "",
            f"H = {H}, D = {setting.state_dim}, init scale {setting.init_scale:g}, gap exponent {setting.gap_exponent:g}, "
            f"extrapolation error over J = {setting.extrapolation_length}{own}",
            f"  {'seed':>5}  {'condition':<9} {'ext_error (certified digits only)':<42} {'digits':>6}  {'method':<11} "
            f"{'t_converged':>11}  status",
        ]
        for r in result.runs:
            if r.horizon != H:
                continue
            run = r.run
            t = "-" if run.t_converged is None else f"{run.t_converged:.3g}"
            cond = "poisoned" if r.poisoned else "clean"
            lines.append(f"  {r.seed:>5}  {cond:<9} {run.quantity.text:<42} {run.quantity.digits:>6}  {run.method:<11} "
                         f"{t:>11}  {run.status}")
        for s in summaries:
            if s["horizon"] != H:
                continue
            cond = "with u†" if s["poisoned"] else "without u†"
            published = f"published {_fmt_published(s)}" if s["published"] else ""
            if s["mean"] is None:
                lines.append(f"  mean {cond}: no converged run" + (f" ({published})" if published else ""))
                continue
            lines.append(f"  mean {cond}: {s['mean']}" + (f"   published: {_fmt_published(s)}" if published else ""))
            lines += [f"      {line}" for line in explain_difference(s)]
    lines += [
        "",
        f"{len(result.runs)} flows in {result.seconds:.2f} s. Digits are certified by agreement with an independent re-run "
        "(higher precision and tighter tolerance) or the exact oracle; only those digits are printed.",
    ]
    return "\n".join(lines)
