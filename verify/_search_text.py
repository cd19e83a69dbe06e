"""Text of the search and replay results: what ``ssmpoison search`` and ``ssmpoison replay`` print.

Rendering only: every number comes from a :class:`ssmpoison.verify._search.SearchReport`, a
:class:`ssmpoison.verify._replay.ReplayReport` or a counterexample record, formatted here.
"""

from __future__ import annotations

import json

__all__ = ["record_lines", "hypothesis_lines", "search_report_text", "replay_report_text"]


def _num(x) -> str:
    return "n/a" if x is None else f"{x:.6g}"


def record_lines(record: dict) -> list[str]:
    """A counterexample record in words and numbers (the same lines for ``search`` and ``replay``).

    Arguments:
        record: a counterexample record (:func:`ssmpoison.verify._replay.counterexample_record`).

    Returns:
        The lines: the failure and the sizes, the problem, the float64 screen, the certified values.
    """
    p, f, c = record["problem"], record["float64"], record["certified"]
    t = p["teacher"]
    lines = [
        f"{record['criterion']} fails  (D = {p['state_dim']}, H = {p['horizon']}, N = {p['samples']}, D* = {t['dim']}, "
        f"lowest excited lag l* = {record['lowest_gamma_order']})",
        f"  teacher entries {t['entries']}  (A* = diag{tuple(t['A_star_diagonal'])}, c*b* = {t['weights_c_star_b_star']})",
        f"  inputs {p['inputs']}",
        f"  labels {p['labels']}",
        f"  init scale {p['init_scale']}, a0 = {p['a0']}",
        f"  float64: status {f['status']} after {f['steps']} steps (t = {f['t_end']:.4g}), learned a = "
        f"[{', '.join(f'{v:.6g}' for v in f['learned_a'])}], effective rank {_num(f['effective_rank'])}, "
        f"extrapolation error {_num(f['extrapolation_error'])}",
        f"  certified ({c['precision_bits']} bits against {c['reference_bits']} bits): learned a = [{', '.join(c['learned_a'])}]",
    ]
    if c["effective_rank"] is not None:
        lines.append(
            f"  certified effective rank {c['effective_rank']['value']} ({c['effective_rank']['digits']} digits), "
            f"extrapolation error {c['extrapolation_error']['value']} ({c['extrapolation_error']['digits']} digits)"
        )
    if not c["certified"]:
        lines.append(f"  NOT certified: {c['reason']}")
    return lines


def hypothesis_lines(entry: dict) -> list[str]:
    """A counterexample's standing against the Proposition's hypotheses: inside or boundary case, each hypothesis.

    Arguments:
        entry: one item of a search report's classification (``criterion``, ``inside_hypotheses``,
            ``failing``, ``hypotheses``).

    Returns:
        One line for the standing, one per hypothesis (holds/fails, its numbers, its provenance).
    """
    if entry["inside_hypotheses"]:
        head = "  INSIDE the Proposition's hypotheses: a counterexample to the stated result"
    else:
        head = f"  boundary case: outside the Proposition's hypotheses ({', '.join(entry['failing'])} fail(s))"
    out = [head]
    for h in entry["hypotheses"]:
        out.append(f"    [{'holds' if h['holds'] else 'fails'}] {h['name']}: {h['detail']} ({h['provenance']})")
    return out


def search_report_text(report) -> str:
    """The text ``ssmpoison search`` prints.

    Arguments:
        report: a :class:`ssmpoison.verify._search.SearchReport`.

    Returns:
        The criteria, the explored space and its tallies, the shrinking, every certified
        counterexample (:func:`record_lines`) and every shrunk failure that was not certified.
    """
    config = report.config
    lines = ["Criteria:"] + [f"  - {line}" for line in config.criteria.lines()]
    s = config.space_json()
    lines += [
        "",
        f"Explored (seed {config.seed}, budget {config.budget}): {report.examples} examples drawn, {report.distinct} distinct; "
        f"D in {s['state_dim']}, H in {s['horizon']}, N in {s['samples']}, D* in {s['teacher_dims']}, init scales {s['init_scales']}",
        f"  flow statuses: {', '.join(f'{k} {v}' for k, v in report.statuses.items())}; nothing escaped in {report.nothing_escaped}"
        + ("" if report.examples == config.budget else
           f"\n  the wall-clock budget (--time-limit) ran out after {report.examples} of {config.budget} draws"),
        f"  float64 failures: {', '.join(f'{k} {v}' for k, v in report.screened_failures.items())}",
    ]
    for table, rows in report.tallies.items():
        cells = "  ".join(f"{k}: {v['examples']} ({v['converged']} conv, {v['greedy_low_rank']} greedy, {v['extrapolation']} extrap)" for k, v in rows.items())
        lines.append(f"  by {table.removeprefix('by_')}: {cells}")
    for s in report.shrinking:
        lines.append(f"  shrinking {s.criterion} D*={s.teacher_dim} {s.regime}: {s.new_flows} new flows")
    lines.append("")
    if not report.counterexamples:
        lines.append("No certified counterexample found.")
    else:
        lines.append(f"{len(report.counterexamples)} certified counterexample(s): {report.inside_hypotheses} inside the "
                     f"Proposition's hypotheses, {report.boundary_cases} boundary case(s) (a hypothesis of their criterion fails)")
        for k, record in enumerate(report.counterexamples):
            lines += [""] + record_lines(record)
            if k < len(report.classification):
                lines += hypothesis_lines(report.classification[k])
    for c in report.certification:
        if not c.certified:
            lines.append(f"  (shrunk {c.criterion} D*={c.teacher_dim} {c.regime} failure not certified: {c.reason})")
    return "\n".join(lines)


def replay_report_text(report) -> str:
    """The text ``ssmpoison replay`` prints.

    Arguments:
        report: a :class:`ssmpoison.verify._replay.ReplayReport`.

    Returns:
        Per record, blank-line separated: the replayed record (:func:`record_lines`), whether it
        equals the saved one and, when it does not, one line per differing field (the record's
        index from 0, the field's path, the saved and the re-run value, as JSON) and, when the
        code fingerprints differ, both fingerprints.
    """
    differences = report.differences
    blocks = []
    for k, (record, saved, identical) in enumerate(zip(report.replayed, report.saved, report.identical)):
        lines = record_lines(record)
        if identical:
            lines.append("  replay identical to the saved record: yes")
        else:
            mine = [d for d in differences if d.record == k]
            lines.append(f"  replay identical to the saved record: NO (record {k}: {len(mine)} field(s) differ)")
            lines += [f"    record {k} {d.field}: saved {_json(d.saved)}, re-run {_json(d.rerun)}" for d in mine]
        if not identical and saved.get("code") != record["code"]:
            lines.append(f"  (the record was saved by other code: fingerprint {saved.get('code')} there, {record['code']} here)")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _json(value) -> str:
    """A saved or re-run value as JSON text (every digit of a float; strings quoted)."""
    return json.dumps(value)
