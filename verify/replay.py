"""Saved counterexamples: the JSON record of a certified failure, reading records back, and replaying them.

A record holds the problem exactly (:meth:`ssmpoison.verify.clean_problem.CleanProblem.to_json`), the
criterion that failed, the criteria's thresholds, the float64 screen
(:func:`ssmpoison.verify.counterexample.evaluate`) and the certification
(:func:`ssmpoison.verify.counterexample.certify_failure`), plus the fingerprint of the code that computed
it (:func:`ssmpoison.verify.code_fingerprint.code_fingerprint`). :func:`replay_record` runs the very same
computation again, so on the same code it returns the same record, number for number.
"""

from __future__ import annotations

import json
from pathlib import Path

from ssmpoison.verify._certification import SEARCH_CERTIFICATION, CertificationPolicy
from ssmpoison.verify._numbers import require_precision_bits
from ssmpoison.verify.clean_problem import CleanProblem
from ssmpoison.verify.code_fingerprint import code_fingerprint
from ssmpoison.verify.counterexample import SearchCriteria, certify_failure, evaluate, float_digits_agreement, lowest_gamma_order, regime

__all__ = ["CODE", "counterexample_record", "replay_record", "load_records", "record_lines", "replay_command"]
#: Fingerprint of the code that computes a record, read when this module is imported (the code in use).
CODE = code_fingerprint("ssmpoison.verify.counterexample")


def counterexample_record(
    problem: CleanProblem, criterion: str, criteria: SearchCriteria = SearchCriteria(), policy: CertificationPolicy = SEARCH_CERTIFICATION
) -> tuple[dict, bool]:
    """The JSON record of a failure of ``criterion`` on ``problem`` (float64 screen and certification), and whether it is certified."""
    outcome = evaluate(problem, criteria)
    certified = certify_failure(problem, criterion, criteria, policy)
    record = {
        "code": CODE,
        "criterion": criterion,
        "teacher_dim": problem.teacher.dim,
        "regime": regime(problem),
        "problem": problem.to_json(),
        "lowest_gamma_order": lowest_gamma_order(problem),
        "criteria": criteria.to_json(),
        "float64": outcome.to_json(),
        "certified": certified.to_json(),
        "float64_agreement_digits": {
            "effective_rank": float_digits_agreement(outcome.effective_rank, certified.effective_rank),
            "extrapolation_error": float_digits_agreement(outcome.extrapolation_error, certified.extrapolation_error),
        },
    }
    return record, certified.certified


def replay_record(record) -> dict:
    """Re-run a saved counterexample record: the same computation, so the same numbers."""
    if not isinstance(record, dict):
        raise ValueError("a counterexample must be a JSON object")
    for key in ("criterion", "problem", "criteria", "certified"):
        if key not in record:
            raise ValueError(f"counterexample has no {key!r} field")
    problem = CleanProblem.from_json(record["problem"])
    stored_criteria = record["criteria"]
    if not isinstance(stored_criteria, dict):
        raise ValueError("counterexample criteria must be a JSON object")
    try:
        criteria = SearchCriteria(**stored_criteria)
    except TypeError as exc:
        raise ValueError(f"counterexample criteria: {exc}") from None
    certified = record["certified"]
    if not isinstance(certified, dict) or "precision_bits" not in certified:
        raise ValueError("counterexample certified must be an object with 'precision_bits'")
    bits = require_precision_bits(certified["precision_bits"], minimum=64)
    replayed, _ = counterexample_record(problem, record["criterion"], criteria, SEARCH_CERTIFICATION.with_precision(bits))
    return replayed


def load_records(path: str) -> list[dict]:
    """Counterexample records of a JSON file: a search report (``counterexamples``), a list, or one record."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ValueError(f"cannot read counterexample file {path!r}: {exc.strerror or exc}") from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"counterexample file {path!r} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if isinstance(payload, dict) and "counterexamples" in payload:
        records = payload["counterexamples"]
    elif isinstance(payload, dict):
        records = [payload]
    else:
        records = payload
    if not isinstance(records, list) or not records:
        raise ValueError(f"counterexample file {path!r} holds no counterexample")
    return records


def record_lines(record: dict) -> list[str]:
    """A counterexample in words and numbers (the same lines for ``search`` and ``replay``)."""
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


def _num(x) -> str:
    return "n/a" if x is None else f"{x:.6g}"


def replay_command(path: str, json_path) -> int:
    """``ssmpoison replay``: re-run every record of FILE, print its numbers; exit 1 if any differs from the file."""
    from ssmpoison.verify.jsonio import write_json

    records = load_records(path)
    replayed = [replay_record(r) for r in records]
    same = [json.loads(json.dumps(r)) == s for r, s in zip(replayed, records)]
    if json_path != "-":
        for k, (record, saved, identical) in enumerate(zip(replayed, records, same)):
            if k:
                print()
            print("\n".join(record_lines(record)))
            print(f"  replay identical to the saved record: {'yes' if identical else 'NO'}")
            if not identical and saved.get("code") != record["code"]:
                print(f"  (the record was saved by other code: fingerprint {saved.get('code')} there, {record['code']} here)")
    if json_path:
        write_json(json_path, {"counterexamples": replayed, "identical": same})
    return 0 if all(same) else 1
