"""Saved counterexamples: the JSON record of a certified failure, reading records back, and replaying them.

A record holds the problem exactly (:meth:`ssmpoison.verify._clean_problem.CleanProblem.to_json`), the
criterion that failed, the criteria's thresholds, the float64 screen
(:func:`ssmpoison.verify._counterexample.evaluate`) and the certification
(:func:`ssmpoison.verify._counterexample.certify_failure`), plus the fingerprint of the code that computed
it (:func:`ssmpoison.verify._code_fingerprint.code_fingerprint`). :func:`replay_record` runs the very same
computation again, so on the same code it returns the same record, number for number;
:func:`replay_records` replays a list of records and returns a :class:`ReplayReport` (its text is
rendered by :mod:`ssmpoison.verify._search_text`). Nothing here prints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ssmpoison.verify._certification import SEARCH_CERTIFICATION, CertificationPolicy
from ssmpoison.verify._numbers import require_precision_bits
from ssmpoison.verify._clean_problem import CleanProblem
from ssmpoison.verify._code_fingerprint import code_fingerprint
from ssmpoison.verify._counterexample import SearchCriteria, certify_failure, evaluate, float_digits_agreement, lowest_gamma_order, regime

__all__ = ["CODE", "counterexample_record", "replay_record", "replay_records", "ReplayReport", "load_records"]

#: Fingerprint of the code that computes a record, read when this module is imported (the code in use).
CODE = code_fingerprint("ssmpoison.verify._counterexample")


def counterexample_record(
    problem: CleanProblem, criterion: str, criteria: SearchCriteria = SearchCriteria(), policy: CertificationPolicy = SEARCH_CERTIFICATION
) -> tuple[dict, bool]:
    """The JSON record of a failure of ``criterion`` on ``problem``, and whether it is certified.

    Arguments:
        problem: a non-special clean-label problem.
        criterion: the criterion whose failure is recorded (one of :data:`ssmpoison.verify._counterexample.CRITERIA`).
        criteria: the thresholds of the criteria.
        policy: the certification policy of the re-run (its working precision, checked against more bits).

    Returns:
        ``(record, certified)``: the record (code fingerprint, criterion, D*, regime, problem, l*,
        criteria, float64 screen, certification, float64 digits agreeing with the certified values)
        and whether the certification holds.
    """
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


def _replay_inputs(record) -> tuple:
    """Validate a saved record into what its replay needs: ``(problem, criterion, criteria, precision_bits)``.

    Raises:
        ValueError: ``record`` is not an object, lacks a field, or holds an invalid problem, criteria or precision.
    """
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
    return problem, record["criterion"], criteria, require_precision_bits(certified["precision_bits"], minimum=64)


def replay_record(record) -> dict:
    """Re-run a saved counterexample record: the same computation, so the same numbers.

    Arguments:
        record: a record as written by :func:`counterexample_record` (a JSON object).

    Returns:
        The record computed afresh from the saved problem, criterion, criteria and precision.

    Raises:
        ValueError: the record is malformed (see :func:`replay_records`).
    """
    problem, criterion, criteria, precision_bits = _replay_inputs(record)
    replayed, _ = counterexample_record(problem, criterion, criteria, SEARCH_CERTIFICATION.with_precision(precision_bits))
    return replayed


@dataclass(frozen=True)
class ReplayReport:
    """Saved records, their replays, and whether each replay equals its saved record.

    Arguments:
        saved: the saved records, as read.
        replayed: the records computed afresh (:func:`replay_record`), in the same order.
    """

    saved: tuple
    replayed: tuple

    @property
    def identical(self) -> tuple:
        """Per record: whether the replay equals the saved record, field for field (after a JSON round trip)."""
        return tuple(json.loads(json.dumps(r)) == s for r, s in zip(self.replayed, self.saved))

    @property
    def all_identical(self) -> bool:
        """Whether every replay equals its saved record."""
        return all(self.identical)

    def to_json(self) -> dict:
        """``{"counterexamples": [replayed records], "identical": [bool per record]}``."""
        return {"counterexamples": list(self.replayed), "identical": list(self.identical)}


def replay_records(records, progress=None) -> ReplayReport:
    """Replay every saved record; every record is validated before the first is run.

    Arguments:
        records: a non-empty list of records (e.g. from :func:`load_records`).
        progress: ``None``, or a callable ``progress("replaying", done, total)``, called with
            ``done = 0`` before the first replay and after each one. It cannot change the result.

    Returns:
        The :class:`ReplayReport`.

    Raises:
        ValueError: ``records`` is not a non-empty list, or a record is malformed (not an object, a
            missing field, an invalid problem, criteria or precision), naming what is wrong.
    """
    if not isinstance(records, (list, tuple)) or not records:
        raise ValueError("records must be a non-empty list of counterexample records")
    inputs = [_replay_inputs(r) for r in records]
    total = len(inputs)
    if progress is not None:
        progress("replaying", 0, total)
    replayed = []
    for done, (problem, criterion, criteria, precision_bits) in enumerate(inputs, start=1):
        record, _ = counterexample_record(problem, criterion, criteria, SEARCH_CERTIFICATION.with_precision(precision_bits))
        replayed.append(record)
        if progress is not None:
            progress("replaying", done, total)
    return ReplayReport(saved=tuple(records), replayed=tuple(replayed))


def load_records(path: str) -> list[dict]:
    """Counterexample records of a JSON file: a search report (``counterexamples``), a list, or one record.

    Arguments:
        path: the file.

    Returns:
        The records, as read (a non-empty list).

    Raises:
        ValueError: the file cannot be read, is not JSON, or holds no record.
    """
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
