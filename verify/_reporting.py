"""The theory row's result as text: the table of ``ssmpoison reproduce --row theory``.

Rendering only: :func:`theory_row_text` turns a
:class:`~ssmpoison.verify._rows.TheoryRowResult` into the printed table (its JSON is the
result's ``to_json()``). A setting that is not the paper's has no published column.
"""

from __future__ import annotations

import statistics

from ssmpoison.verify._theory_row import explain_difference

__all__ = ["theory_row_text"]


def _fmt_published(summary: dict) -> str:
    return ", ".join(f"{v['published']:.3g} ({k})" for k, v in summary["published"].items())


def _robustness_lines(result) -> list[str]:
    """The clean flows' robustness labels (exact oracle) and the clean mean under the perturbations."""
    from ssmpoison.verify._gd_rows import ERROR_FACTOR, LEARNED_LEVEL

    K = result.perturbations
    if not K or not result.robustness:
        return []
    lines = ["", f"Robustness (clean flows, by their exact oracle): {K} re-runs of each from a(0)(1 + eps xi), eps = "
             f"{result.perturbation_size:g}, xi ~ N(0, 1); outcome = learned entries (|a_i| >= {LEARNED_LEVEL:g}) and ext "
             f"error within a factor {ERROR_FACTOR:g}. The poisoned flows have no oracle and are not labelled."]
    for setting in result.settings:
        robs = [x for x in result.robustness if x["horizon"] == setting.horizon]
        for x in robs:
            skipped = " (skipped seed)" if x["seed"] in setting.skipped_seeds else ""
            lines.append(f"  H = {setting.horizon} seed {x['seed']}{skipped}: {x['label']}; ext error {x['ext_error']:.4g}, "
                         f"re-runs {x['ext_error_min']:.4g} - {x['ext_error_max']:.4g} (median {x['ext_error_median']:.4g})")
        own = [x for x in robs if x["seed"] in setting.seeds]
        if own:
            means = [sum(x["ext_errors"][k] for x in own) / len(own) for k in range(K)]
            lines.append(f"  H = {setting.horizon}: the clean mean under the perturbations (min / median / max over the "
                         f"{K} re-runs) {min(means):.4g} / {statistics.median(means):.4g} / {max(means):.4g}")
    return lines


def _skipped_lines(result) -> list[str]:
    """The runs of the skipped seeds and their means, out of the published comparison."""
    if not result.skipped_runs:
        return []
    lines = ["", "Skipped seeds of the paper's lists, run here and kept out of the means above:"]
    for r in result.skipped_runs:
        run = r.run
        lines.append(f"  H = {r.horizon} seed {r.seed:>5}  {'poisoned' if r.poisoned else 'clean':<9} {run.quantity.text:<42} "
                     f"digits {run.quantity.digits}  {run.status}")
    by_horizon: dict[int, dict[bool, dict]] = {}
    for s in result.skipped_summaries:
        by_horizon.setdefault(s["horizon"], {})[s["poisoned"]] = s
    for H, pair in by_horizon.items():
        seeds = ", ".join(map(str, pair[False]["seeds"]))
        clean, poisoned = (pair[p]["mean"] or "no converged run" for p in (False, True))
        lines.append(f"  H = {H}, the skipped seeds' means (seeds {seeds}): clean {clean}, poisoned {poisoned}")
    return lines


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
    lines += _robustness_lines(result)
    lines += _skipped_lines(result)
    lines += [
        "",
        f"{len(result.runs) + len(result.skipped_runs)} flows in {result.seconds:.2f} s. Digits are certified by agreement with an independent re-run "
        "(higher precision and tighter tolerance) or the exact oracle; only those digits are printed.",
    ]
    return "\n".join(lines)
