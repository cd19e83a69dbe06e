"""Saved counterexamples: the JSON record of a certified failure, reading records back, and replaying them.

A record holds the problem exactly (:meth:`ssmpoison.verify._clean_problem.CleanProblem.to_json`), the
criterion that failed, the criteria's thresholds, the float64 screen
(:func:`ssmpoison.verify._counterexample.evaluate`) and the certification
(:func:`ssmpoison.verify._counterexample.certify_failure`), plus the fingerprint of the code that computed
it (:func:`ssmpoison.verify._code_fingerprint.code_fingerprint`). :func:`replay_record` runs the very same
computation again, so on the same code it returns the same record, number for number;
:func:`replay_records` replays a list of records and returns a :class:`ReplayReport`, which names
every field whose re-run value differs from the saved one (:class:`ReplayDifference`; its text is
rendered by :mod:`ssmpoison.verify._search_text`). Nothing here prints.

A record is validated completely before anything is run (:func:`load_records`,
:func:`replay_records`): every field of its layout, its type, its range, and its consistency with
the problem it holds; a malformed record is refused with one line naming the record (its index
in the file, from 0) and the field.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ssmpoison.verify._certification import SEARCH_CERTIFICATION, CertificationPolicy
from ssmpoison.verify._numbers import require_precision_bits
from ssmpoison.verify._clean_problem import CleanProblem
from ssmpoison.verify._code_fingerprint import code_fingerprint
from ssmpoison.verify._counterexample import (
    CRITERIA,
    SEARCH_FLOW_OPTIONS,
    SearchCriteria,
    certify_failure,
    evaluate,
    float_digits_agreement,
    lowest_gamma_order,
    regime,
)
from ssmpoison.verify._flow import FLOW_STATUSES
from ssmpoison.verify._status import Status

__all__ = ["CODE", "MAX_EXTRAPOLATION_LENGTH", "counterexample_record", "replay_record", "replay_records", "ReplayReport", "ReplayDifference", "load_records"]

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


#: The longest extrapolation length ``J = extrapolation_factor * H`` a replayed record may ask for (the search's is 2H <= 16
#: by default): each replay evaluates the learned impulse response over J lags at up to ``P + 2s`` bits.
MAX_EXTRAPOLATION_LENGTH = 100_000

#: The fields of a record (:func:`counterexample_record`), those the replay needs first.
_RECORD_FIELDS = ("criterion", "problem", "criteria", "certified", "code", "teacher_dim", "regime", "lowest_gamma_order",
                  "float64", "float64_agreement_digits")
#: The fields of a saved problem (:meth:`ssmpoison.verify._clean_problem.CleanProblem.to_json`) and of its teacher.
_PROBLEM_FIELDS = ("state_dim", "horizon", "samples", "teacher", "inputs", "labels", "init_scale", "a0")
_TEACHER_FIELDS = ("dim", "entries", "A_star_diagonal", "weights_c_star_b_star")
#: The fields of the float64 screen (:meth:`ssmpoison.verify._counterexample.Outcome.to_json`).
_FLOAT64_FIELDS = ("precision_bits", "status", "t_end", "steps", "train_loss", "learned_a", "escaped_entries",
                   "effective_rank", "extrapolation_error", "failed_criteria")
#: The fields of the certification (:meth:`ssmpoison.verify._counterexample.CertifiedFailure.to_json`).
_CERTIFIED_FIELDS = ("criterion", "certified", "reason", "precision_bits", "reference_bits", "statuses", "learned_a",
                     "effective_rank", "extrapolation_error")
_CRITERIA_FIELDS = tuple(f.name for f in dataclasses.fields(SearchCriteria))
_REGIMES = ("l*=1", "l*>=2")
_CODE = re.compile(r"[0-9a-f]{16}")
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_RUN_STATUS = re.compile(r"([0-9]{1,9}) bits: ([a-z_]+)")
_STATUSES = frozenset(s.value for s in Status)


def _json_kind(value) -> str:
    """The JSON type of a value, in words (``"a number"``, ``"a list"``, ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__


def _shown(value, spell=repr) -> str:
    """``spell(value)`` cut to 80 characters: a value quoted in a one-line message."""
    text = spell(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _require_fields(name: str, value, fields) -> None:
    """``value`` is a JSON object with every one of ``fields`` (checked in their order) and no other."""
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a JSON object, got {_json_kind(value)}")
    for key in fields:
        if key not in value:
            raise ValueError(f"{name} has no {key!r} field")
    for key in value:
        if key not in fields:
            raise ValueError(f"{name} has an unknown field {_shown(key)}")


def _int(name: str, value, minimum: int, maximum: int | None = None) -> int:
    """A JSON integer (not a boolean, a float or a string) in ``[minimum, maximum]``."""
    bounds = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be an integer {bounds}, got {_shown(value)}")
    return value


def _number(name: str, value, *, nonnegative: bool = False, optional: bool = False):
    """A finite JSON number (``null`` too when ``optional``), ``>= 0`` when ``nonnegative``."""
    if value is None and optional:
        return None
    finite = isinstance(value, (int, float)) and not isinstance(value, bool)
    if finite:
        try:
            finite = math.isfinite(float(value))
        except OverflowError:
            finite = False
    if not finite:
        raise ValueError(f"{name} must be a finite number{' or null' if optional else ''}, got {_shown(value)}")
    if nonnegative and value < 0:
        raise ValueError(f"{name} must be >= 0, got {_shown(value)}")
    return value


def _list(name: str, value, length: int | None = None) -> list:
    """A JSON list (of ``length`` items when given)."""
    if not isinstance(value, list):
        raise ValueError(f"{name} must be a list, got {_json_kind(value)}")
    if length is not None and len(value) != length:
        raise ValueError(f"{name} must have {length} entries, got {len(value)}")
    return value


def _same(name: str, saved, defined, what: str) -> None:
    """A saved field that the problem determines must be what it determines."""
    if saved != defined:
        raise ValueError(f"{name} = {_shown(saved)} is not {what} ({_shown(defined)})")


def _field_path(parent: str, key) -> str:
    return f"{parent}[{key}]" if isinstance(key, int) else (f"{parent}.{key}" if parent else str(key))


def _walk(saved, rerun, path: str):
    """``(path, saved, rerun)`` for every leaf that differs (a whole value where the shapes differ; ``None`` for an absent field)."""
    if isinstance(saved, dict) and isinstance(rerun, dict):
        for key in [*saved, *(k for k in rerun if k not in saved)]:
            yield from _walk(saved.get(key), rerun.get(key), _field_path(path, key))
    elif isinstance(saved, list) and isinstance(rerun, list) and len(saved) == len(rerun):
        for k, (s, r) in enumerate(zip(saved, rerun)):
            yield from _walk(s, r, _field_path(path, k))
    elif not _equal_leaves(saved, rerun):
        yield path, saved, rerun


def _equal_leaves(a, b) -> bool:
    """Equal JSON values: numbers by value (``1 == 1.0``), everything else by type and value (``true != 1``)."""
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return a == b
    return type(a) is type(b) and a == b


def _problem(payload) -> CleanProblem:
    """The saved problem, rebuilt by its constructor and checked field by field (see :func:`_replay_inputs`)."""
    if not isinstance(payload, dict):
        raise ValueError(f"problem must be a JSON object, got {_json_kind(payload)}")
    for key in _PROBLEM_FIELDS:
        if key not in payload and key != "labels":  # the labels are checked once the problem is built
            raise ValueError(f"problem has no {key!r} field")
    teacher = payload["teacher"]
    if not isinstance(teacher, dict) or not isinstance(teacher.get("entries"), list):
        raise ValueError("problem.teacher must be an object with an 'entries' list")
    rows = _list("problem.inputs", payload["inputs"])
    for n, row in enumerate(rows):
        _list(f"problem.inputs[{n}]", row)
    try:  # the constructors' own validation: sizes, finite numbers, the teacher, a0, init_scale
        problem = CleanProblem.from_json({k: v for k, v in payload.items() if k != "labels"})
    except ValueError as exc:
        raise ValueError(f"problem: {exc}") from None
    _int("problem.state_dim", payload["state_dim"], 1)
    horizon = _int("problem.horizon", payload["horizon"], 3)
    for n, row in enumerate(rows):
        if len(row) != horizon:
            raise ValueError(f"problem.inputs[{n}] has length {len(row)}, not the horizon problem.horizon = {horizon}")
    _same("problem.samples", _int("problem.samples", payload["samples"], 1), problem.samples, "the number of input sequences")
    _require_fields("problem.teacher", teacher, _TEACHER_FIELDS)
    _same("problem.teacher.dim", _int("problem.teacher.dim", teacher["dim"], 1), problem.teacher.dim, "the number of teacher entries")
    if problem.is_special:
        raise ValueError(f"problem.inputs{list(problem.training_set.special_indices())} are special (u_(H-2) != 0): "
                         "the search judges non-special sets only")
    try:
        lowest_gamma_order(problem)
    except ValueError as exc:
        raise ValueError(f"problem: {exc}") from None
    if "labels" not in payload:
        raise ValueError("problem has no 'labels' field")
    _require_fields("problem", payload, _PROBLEM_FIELDS)
    try:  # the labels: one per sequence, the teacher's clean labels
        CleanProblem.from_json(payload)
    except ValueError as exc:
        raise ValueError(f"problem: {exc}") from None
    for path, saved, canonical in _walk(payload, json.loads(json.dumps(problem.to_json())), "problem"):
        raise ValueError(f"{path} is {_shown(saved, json.dumps)}, not {_shown(canonical, json.dumps)} as the problem defines and records write it")
    return problem


def _criteria(payload) -> SearchCriteria:
    """The saved thresholds: JSON numbers that :class:`~ssmpoison.verify._counterexample.SearchCriteria` accepts."""
    _require_fields("criteria", payload, _CRITERIA_FIELDS)
    for key in _CRITERIA_FIELDS:
        if key == "extrapolation_factor":
            _int(f"criteria.{key}", payload[key], 1)
        else:
            _number(f"criteria.{key}", payload[key])
    try:
        return SearchCriteria(**payload)
    except ValueError as exc:
        raise ValueError(f"criteria: {exc}") from None


def _certified_text(name: str, value) -> None:
    """A certified decimal string, or ``"?"`` (nothing certified)."""
    if not isinstance(value, str) or not (value == "?" or _DECIMAL.fullmatch(value)):
        raise ValueError(f"{name} must be a decimal number written as a string, or '?', got {_shown(value)}")


def _certified(payload, criterion: str, state_dim: int) -> int:
    """The saved certification (see :func:`_replay_inputs`); returns the base ``P`` of its precision ladder (the replay's)."""
    _require_fields("certified", payload, _CERTIFIED_FIELDS)
    _same("certified.criterion", payload["criterion"], criterion, "the record's criterion")
    if not isinstance(payload["certified"], bool):
        raise ValueError(f"certified.certified must be true or false, got {_shown(payload['certified'])}")
    if not isinstance(payload["reason"], str):
        raise ValueError(f"certified.reason must be a string, got {_json_kind(payload['reason'])}")
    bits = _int("certified.precision_bits", payload["precision_bits"], 64)
    reference = _int("certified.reference_bits", payload["reference_bits"], 64)
    statuses = _list("certified.statuses", payload["statuses"])
    if len(statuses) not in (2, 3):
        raise ValueError(f"certified.statuses must have 2 or 3 entries (one per run of the precision ladder), got {len(statuses)}")
    runs = []
    for k, text in enumerate(statuses):
        match = _RUN_STATUS.fullmatch(text) if isinstance(text, str) else None
        if match is None or match.group(2) not in _STATUSES:
            raise ValueError(f"certified.statuses[{k}] must read '<bits> bits: <status>', got {_shown(text)}")
        runs.append((int(match.group(1)), match.group(2)))
    base = require_precision_bits(runs[0][0], name="certified.statuses[0]: the run precision", minimum=64)
    ladder = SEARCH_CERTIFICATION.with_precision(base).precision_ladder()
    for k, (run_bits, _) in enumerate(runs):
        if run_bits != ladder[k]:
            raise ValueError(f"certified.statuses[{k}] is a run at {run_bits} bits, not at {ladder[k]} "
                             f"(the precision ladder P, P + s, P + 2s of P = {base} bits is {', '.join(map(str, ladder))})")
    converged = [b for b, status in runs if status == Status.CONVERGED]
    if len(converged) == 2 and runs[-1][1] != Status.CONVERGED or len(converged) > 2 or (len(converged) < 2 and len(runs) < 3):
        raise ValueError("certified.statuses must end at the second converged run, or list all 3 runs of the ladder")
    expected = tuple(converged) if len(converged) == 2 else ladder[:2]
    _same("certified.precision_bits", bits, expected[0], "the precision of the certified run, by certified.statuses")
    _same("certified.reference_bits", reference, expected[1], "the precision of its reference run, by certified.statuses")
    if len(converged) < 2 and (payload["certified"] or any(v is not None for v in (payload["effective_rank"], payload["extrapolation_error"]))
                               or payload["learned_a"] != ["?"] * state_dim):
        raise ValueError("certified: fewer than two runs converged (certified.statuses), so nothing can be certified: "
                         "certified.certified must be false, learned_a all '?', effective_rank and extrapolation_error null")
    for k, text in enumerate(_list("certified.learned_a", payload["learned_a"], state_dim)):
        _certified_text(f"certified.learned_a[{k}]", text)
    present = []
    for key in ("effective_rank", "extrapolation_error"):
        value = payload[key]
        present.append(value is not None)
        if value is None:
            continue
        _require_fields(f"certified.{key}", value, ("value", "digits"))
        _certified_text(f"certified.{key}.value", value["value"])
        digits = _int(f"certified.{key}.digits", value["digits"], 0)
        if (digits == 0) != (value["value"] == "?"):
            raise ValueError(f"certified.{key}.value is {_shown(value['value'])} with {digits} certified digits ('?' means 0 digits, and only that)")
    if present[0] != present[1]:
        raise ValueError("certified.effective_rank and certified.extrapolation_error must both be null or both be values")
    if payload["certified"] and not all(present):
        raise ValueError("certified.certified is true but no certified value is saved")
    return base


def _float64(payload, state_dim: int) -> None:
    """The saved float64 screen (see :func:`_replay_inputs`)."""
    _require_fields("float64", payload, _FLOAT64_FIELDS)
    _same("float64.precision_bits", _int("float64.precision_bits", payload["precision_bits"], 1), SEARCH_FLOW_OPTIONS.precision_bits,
          "the screen's precision")
    status = payload["status"]
    if status not in FLOW_STATUSES:
        raise ValueError(f"float64.status must be one of {', '.join(FLOW_STATUSES)}, got {_shown(status)}")
    _number("float64.t_end", payload["t_end"], nonnegative=True)
    _int("float64.steps", payload["steps"], 0)
    _number("float64.train_loss", payload["train_loss"], nonnegative=True)
    for k, v in enumerate(_list("float64.learned_a", payload["learned_a"], state_dim)):
        _number(f"float64.learned_a[{k}]", v)
    _int("float64.escaped_entries", payload["escaped_entries"], 0, state_dim)
    erank = _number("float64.effective_rank", payload["effective_rank"], nonnegative=True, optional=True)
    error = _number("float64.extrapolation_error", payload["extrapolation_error"], nonnegative=True, optional=True)
    failed = _list("float64.failed_criteria", payload["failed_criteria"])
    for k, name in enumerate(failed):
        if name not in CRITERIA or name in failed[:k]:
            raise ValueError(f"float64.failed_criteria[{k}] must be one of {', '.join(CRITERIA)}, each once, got {_shown(name)}")
    if status == Status.CONVERGED and (erank is None or error is None):
        raise ValueError("float64.effective_rank and float64.extrapolation_error must be numbers when the status is converged")
    if status != Status.CONVERGED and (erank is not None or error is not None or failed):
        raise ValueError(f"float64.effective_rank, extrapolation_error and failed_criteria must be empty when the status is {status}")


def _replay_inputs(record) -> tuple:
    """Validate a saved record completely into what its replay needs: ``(problem, criterion, criteria, precision_bits)``.

    Every field of the record's layout (:func:`counterexample_record`) is checked, nothing is run:
    the fields the replay needs (``criterion``, ``problem``, ``criteria``, ``certified``) are
    present, then every other field, and no unknown field; the criterion is known; the problem is
    rebuilt by its own constructor (:meth:`ssmpoison.verify._clean_problem.CleanProblem.from_json`:
    equal-length finite inputs, a stable teacher of dimension D* <= D, ``a0`` and ``init_scale``,
    clean labels), is non-special and excites some lag ``l >= 1``, and each stored size
    (``state_dim``, ``horizon`` >= 3, ``samples`` >= 1, the teacher's ``dim``) is an integer that
    is what the problem defines, every saved number of the problem written as
    :meth:`~ssmpoison.verify._clean_problem.CleanProblem.to_json` writes it; ``teacher_dim``,
    ``regime`` and ``lowest_gamma_order`` are the problem's; the criteria are JSON numbers that
    :class:`ssmpoison.verify._counterexample.SearchCriteria` accepts, with an extrapolation length
    ``J = extrapolation_factor * H`` of at most :data:`MAX_EXTRAPOLATION_LENGTH` lags; the float64
    screen holds finite numbers (D learned entries, ``null`` rank and error unless it converged),
    a flow status and known criteria; the certification's statuses read ``"<bits> bits: <status>"``
    and are the runs of the precision ladder ``P, P + s, P + 2s`` (``P >= 64`` bits,
    :meth:`ssmpoison.verify._certification.CertificationPolicy.precision_ladder`) up to the second
    that converged, its ``precision_bits`` and ``reference_bits`` are those two runs' (``P`` and
    ``P + s`` when fewer converged, and then nothing is certified), its D learned entries and its
    values are decimal strings (or ``"?"``, no certified digit); the code fingerprint has 16
    hexadecimal digits; the float64 agreement digits are integers in ``[0, 16]``.

    Arguments:
        record: one saved record (anything JSON can hold).

    Returns:
        ``(problem, criterion, criteria, precision_bits)``, ``precision_bits`` the base ``P`` of the
        certification's ladder (the precision the search certified at; the certified run's own
        precision unless the run at ``P`` did not converge).

    Raises:
        ValueError: one line naming the field that is wrong (a dotted path such as
            ``problem.horizon`` or ``float64.learned_a[2]``) and the value found.
    """
    if not isinstance(record, dict):
        raise ValueError(f"a counterexample must be a JSON object, got {_json_kind(record)}")
    _require_fields("counterexample", record, _RECORD_FIELDS)
    criterion = record["criterion"]
    if not isinstance(criterion, str) or criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {', '.join(CRITERIA)}, got {_shown(criterion)}")
    problem = _problem(record["problem"])
    criteria = _criteria(record["criteria"])
    length = criteria.extrapolation_length(problem.horizon)
    if length > MAX_EXTRAPOLATION_LENGTH:
        raise ValueError(f"criteria.extrapolation_factor = {criteria.extrapolation_factor} gives J = {length} lags at H = "
                         f"{problem.horizon}, more than a replay evaluates ({MAX_EXTRAPOLATION_LENGTH})")
    precision_bits = _certified(record["certified"], criterion, problem.state_dim)
    code = record["code"]
    if not isinstance(code, str) or not _CODE.fullmatch(code):
        raise ValueError(f"code must be a code fingerprint of 16 hexadecimal digits, got {_shown(code)}")
    _same("teacher_dim", _int("teacher_dim", record["teacher_dim"], 1), problem.teacher.dim, "the teacher's dimension D*")
    _same("lowest_gamma_order", _int("lowest_gamma_order", record["lowest_gamma_order"], 1), lowest_gamma_order(problem),
          "the lowest excited lag of the inputs")
    if record["regime"] not in _REGIMES:
        raise ValueError(f"regime must be one of {', '.join(_REGIMES)}, got {_shown(record['regime'])}")
    _same("regime", record["regime"], regime(problem), "the regime of the inputs")
    _float64(record["float64"], problem.state_dim)
    agreement = record["float64_agreement_digits"]
    _require_fields("float64_agreement_digits", agreement, ("effective_rank", "extrapolation_error"))
    for key in ("effective_rank", "extrapolation_error"):
        _int(f"float64_agreement_digits.{key}", agreement[key], 0, 16)
    return problem, criterion, criteria, precision_bits


def _validated(records) -> list[tuple]:
    """:func:`_replay_inputs` of every record, in order; a failure names the record's index (from 0)."""
    inputs = []
    for k, record in enumerate(records):
        try:
            inputs.append(_replay_inputs(record))
        except ValueError as exc:
            raise ValueError(f"record {k}: {exc}") from None
    return inputs


def replay_record(record) -> dict:
    """Re-run a saved counterexample record: the same computation, so the same numbers.

    Arguments:
        record: a record as written by :func:`counterexample_record` (a JSON object).

    Returns:
        The record computed afresh from the saved problem, criterion, criteria and precision.

    Raises:
        ValueError: the record is malformed (see :func:`replay_records`); nothing is run then.
    """
    problem, criterion, criteria, precision_bits = _replay_inputs(record)
    replayed, _ = counterexample_record(problem, criterion, criteria, SEARCH_CERTIFICATION.with_precision(precision_bits))
    return replayed


@dataclass(frozen=True)
class ReplayDifference:
    """One saved number (or other field) that its replay does not reproduce.

    Arguments:
        record: the record's index in the file (from 0).
        field: the field, as a path into the record: keys joined by dots, list positions in
            brackets, e.g. ``float64.extrapolation_error``, ``certified.learned_a[1]``,
            ``certified.effective_rank.value``.
        saved: the saved value (JSON), ``None`` where the saved record has no such field.
        rerun: the re-run's value (JSON), ``None`` where the re-run has no such field.
    """

    record: int
    field: str
    saved: object
    rerun: object

    def to_json(self) -> dict:
        """``{"record": k, "field": ..., "saved": ..., "rerun": ...}``."""
        return {"record": self.record, "field": self.field, "saved": self.saved, "rerun": self.rerun}


@dataclass(frozen=True)
class ReplayReport:
    """Saved records, their replays, and every field in which a replay differs from its saved record.

    Arguments:
        saved: the saved records, as read.
        replayed: the records computed afresh (:func:`replay_record`), in the same order.
    """

    saved: tuple
    replayed: tuple

    @property
    def differences(self) -> tuple:
        """Every :class:`ReplayDifference`, record by record, fields in the record's order.

        The replay is compared with its saved record, both after a JSON round trip, leaf by leaf:
        numbers by value (``1`` equals ``1.0``), strings, booleans and ``null`` by type and
        value; where the two differ in shape (a list of another length, an object for ``null``)
        the whole value is one difference.
        """
        return tuple(
            ReplayDifference(k, path, saved, rerun)
            for k, (record, saved_record) in enumerate(zip(self.replayed, self.saved))
            for path, saved, rerun in _walk(json.loads(json.dumps(saved_record)), json.loads(json.dumps(record)), "")
        )

    @property
    def identical(self) -> tuple:
        """Per record: whether the replay equals the saved record, field for field (no :attr:`differences`)."""
        differing = {d.record for d in self.differences}
        return tuple(k not in differing for k in range(len(self.replayed)))

    @property
    def all_identical(self) -> bool:
        """Whether every replay equals its saved record."""
        return all(self.identical)

    def to_json(self) -> dict:
        """``{"counterexamples": [replayed records], "identical": [bool per record], "differences": [...]}``.

        ``differences`` lists every :class:`ReplayDifference` as ``{"record", "field", "saved", "rerun"}``
        (empty when every replay is identical).
        """
        return {
            "counterexamples": list(self.replayed),
            "identical": list(self.identical),
            "differences": [d.to_json() for d in self.differences],
        }


def replay_records(records, progress=None) -> ReplayReport:
    """Replay every saved record; every record is validated completely before the first is run.

    Arguments:
        records: a non-empty list of records (e.g. from :func:`load_records`).
        progress: ``None``, or a callable ``progress("replaying", done, total)``, called with
            ``done = 0`` before the first replay and after each one. It cannot change the result.

    Returns:
        The :class:`ReplayReport`.

    Raises:
        ValueError: ``records`` is not a non-empty list, or a record is malformed: one line
            ``record k: <field> ...`` naming the record's index (from 0) and the field
            (:func:`_replay_inputs` lists the checks). Nothing is run then.
    """
    if not isinstance(records, (list, tuple)) or not records:
        raise ValueError("records must be a non-empty list of counterexample records")
    inputs = _validated(records)
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
    """Counterexample records of a JSON file, each validated completely (nothing is run).

    The file holds a search report (an object with a ``counterexamples`` list, as
    ``ssmpoison search --json`` writes it), a list of records, or one record (an object).

    Arguments:
        path: the file.

    Returns:
        The records, as read (a non-empty list of valid records).

    Raises:
        ValueError: one line: the file cannot be read, is not UTF-8 text, is not JSON, is not an
            object or a list, or holds no record; or a record is malformed (``record k: <field> ...``,
            see :func:`replay_records`).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read counterexample file {path!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"counterexample file {path!r} is not UTF-8 text (not a JSON file)") from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"counterexample file {path!r} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of more digits than Python converts, nesting too deep
        raise ValueError(f"counterexample file {path!r} is not valid JSON ({str(exc) or type(exc).__name__})") from None
    if isinstance(payload, dict) and "counterexamples" in payload:
        records = payload["counterexamples"]
        if not isinstance(records, list):
            raise ValueError(f"counterexample file {path!r}: 'counterexamples' must be a list of records, got {_json_kind(records)}")
    elif isinstance(payload, (dict, list)):
        records = [payload] if isinstance(payload, dict) else payload
    else:
        raise ValueError(f"counterexample file {path!r} must hold a search report, a list of records or one record "
                         f"(a JSON object or list), got {_json_kind(payload)}")
    if not records:
        raise ValueError(f"counterexample file {path!r} holds no counterexample")
    _validated(records)
    return records
