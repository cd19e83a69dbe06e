"""Replay of saved counterexamples: a corrupted record is refused before anything runs (exit 2, one line naming
the record and the field); a replay that differs names every differing field with both values (exit 1)."""

import copy
import json
import time
from fractions import Fraction

import pytest

import ssmpoison.verify._replay as replay
from ssmpoison.theory import Teacher
from ssmpoison.verify import CleanProblem
from ssmpoison.verify._replay import ReplayDifference, ReplayReport, counterexample_record, load_records
from ssmpoison.verify._search_text import replay_report_text
from ssmpoison.verify.cli import main


@pytest.fixture(scope="module")
def record():
    """A certified extrapolation failure (D = 2, H = 3, teacher -1/2, input e_0): small and fast to replay."""
    s = Fraction(1, 2**10)
    problem = CleanProblem(Teacher((Fraction(-1, 2),), 2), [(1, 0, 0)], (Fraction(1, 2**15), Fraction(1, 2**16)), s)
    saved, certified = counterexample_record(problem, "extrapolation")
    assert certified
    return json.loads(json.dumps(saved))


def _set(record, path, value):
    """A deep copy of ``record`` with the field at ``path`` (keys and list positions) set, or removed for ``...``."""
    out = copy.deepcopy(record)
    *parents, last = path
    node = out
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return out


@pytest.fixture
def no_rerun(monkeypatch):
    """Fail the test if any record is re-run (no flow may start before every record is validated)."""
    monkeypatch.setattr(replay, "counterexample_record", lambda *a, **k: pytest.fail("a record was re-run"))


def _refused(tmp_path, capsys, payload, *, raw=None):
    path = tmp_path / "records.json"
    if raw is not None:
        path.write_bytes(raw)
    else:
        path.write_text(json.dumps(payload))
    start = time.perf_counter()
    status = main(["replay", str(path), "--json", str(tmp_path / "out.json")])
    elapsed = time.perf_counter() - start
    err = capsys.readouterr().err
    assert status == 2 and elapsed < 2
    assert err.count("\n") == 1 and err.startswith("ssmpoison replay: error: ")
    assert not (tmp_path / "out.json").exists()
    return err.removeprefix("ssmpoison replay: error: ").rstrip("\n")


NAN, INF = float("nan"), float("inf")

CORRUPTIONS = [
    # the problem's sizes
    (("problem", "horizon"), -3, "problem.horizon must be an integer >= 3, got -3"),
    (("problem", "horizon"), 2, "problem.horizon must be an integer >= 3, got 2"),
    (("problem", "horizon"), "3", "problem.horizon must be an integer >= 3, got '3'"),
    (("problem", "horizon"), 3.0, "problem.horizon must be an integer >= 3, got 3.0"),
    (("problem", "horizon"), True, "problem.horizon must be an integer >= 3, got True"),
    (("problem", "horizon"), 4, "problem.inputs[0] has length 3, not the horizon problem.horizon = 4"),
    (("problem", "state_dim"), 0, "problem: state_dim must be >= 1, got 0"),
    (("problem", "state_dim"), 3, "problem: a0 must have the student dimension D = 3 entries, got 2"),
    (("problem", "state_dim"), "2", "problem.state_dim must be an integer >= 1, got '2'"),
    (("problem", "samples"), 2, "problem.samples = 2 is not the number of input sequences (1)"),
    (("problem", "samples"), -1, "problem.samples must be an integer >= 1, got -1"),
    (("problem", "teacher", "dim"), 2, "problem.teacher.dim = 2 is not the number of teacher entries (1)"),
    (("problem", "teacher", "A_star_diagonal", 0), "1/2", 'problem.teacher.A_star_diagonal[0] is "1/2", not "-1/2"'),
    (("problem", "teacher", "weights_c_star_b_star"), [1], "problem.teacher.weights_c_star_b_star is [1], not [1, 1]"),
    (("problem", "teacher", "entries", 0), 2, "problem: teacher entries[0] = 2 must satisfy |alpha| <= 1"),
    (("problem", "teacher"), "-1/2", "problem.teacher must be an object with an 'entries' list"),
    # the inputs: shape and numbers
    (("problem", "inputs", 0), [1, 0, 0, 0], "problem.inputs[0] has length 4, not the horizon problem.horizon = 3"),
    (("problem", "inputs"), [[1, 0, 0], [0, 1]], "problem: inputs[1] has length 2 but inputs[0] has length 3"),
    (("problem", "inputs", 0), 1, "problem.inputs[0] must be a list, got a number"),
    (("problem", "inputs"), {"0": [1, 0, 0]}, "problem.inputs must be a list, got an object"),
    (("problem", "inputs", 0, 0), NAN, "problem: inputs[0][0] must be finite, got nan"),
    (("problem", "inputs", 0, 0), INF, "problem: inputs[0][0] must be finite, got inf"),
    (("problem", "inputs", 0, 0), "one", "problem: inputs[0][0] must be a number or an exact 'p/q' string, got 'one'"),
    (("problem", "inputs", 0, 0), "1", 'problem.inputs[0][0] is "1", not 1'),
    (("problem", "a0", 0), INF, "problem: a0[0] must be finite, got inf"),
    (("problem", "a0", 0), "2/65536", 'problem.a0[0] is "2/65536", not "1/32768"'),
    (("problem", "init_scale"), 0, "problem: init_scale must be > 0, got 0"),
    (("problem", "labels", 0), "1/3", "problem: labels[0] = 1/3 is not the teacher's clean label 1/4"),
    (("problem", "labels", 0), 0.25, 'problem.labels[0] is 0.25, not "1/4"'),
    (("problem", "labels"), ..., "problem has no 'labels' field"),
    (("problem", "a0"), ..., "problem has no 'a0' field"),
    (("problem", "extra"), 1, "problem has an unknown field 'extra'"),
    # the record's own fields
    (("criterion",), "sometimes", "criterion must be one of greedy_low_rank, extrapolation, got 'sometimes'"),
    (("teacher_dim",), 2, "teacher_dim = 2 is not the teacher's dimension D* (1)"),
    (("lowest_gamma_order",), 0, "lowest_gamma_order must be an integer >= 1, got 0"),
    (("lowest_gamma_order",), 2, "lowest_gamma_order = 2 is not the lowest excited lag of the inputs (1)"),
    (("regime",), "l*>=2", "regime = 'l*>=2' is not the regime of the inputs ('l*=1')"),
    (("code",), "not a fingerprint", "code must be a code fingerprint of 16 hexadecimal digits"),
    (("float64",), ..., "counterexample has no 'float64' field"),
    (("notes",), "hand-edited", "counterexample has an unknown field 'notes'"),
    # the criteria
    (("criteria", "rank_margin"), -1, "criteria: rank_margin must be > 0, got -1"),
    (("criteria", "rank_margin"), "1", "criteria.rank_margin must be a finite number, got '1'"),
    (("criteria", "extrapolation_threshold"), NAN, "criteria.extrapolation_threshold must be a finite number, got nan"),
    (("criteria", "extrapolation_factor"), 2.5, "criteria.extrapolation_factor must be an integer >= 1, got 2.5"),
    (("criteria", "escape_fraction"), ..., "criteria has no 'escape_fraction' field"),
    (("criteria", "extrapolation_factor"), 10**6, "criteria.extrapolation_factor = 1000000 gives J = 3000000 lags at H = 3, more than a replay evaluates (100000)"),
    # the float64 screen
    (("float64", "extrapolation_error"), NAN, "float64.extrapolation_error must be a finite number or null, got nan"),
    (("float64", "extrapolation_error"), -INF, "float64.extrapolation_error must be a finite number or null, got -inf"),
    (("float64", "extrapolation_error"), "0.58", "float64.extrapolation_error must be a finite number or null, got '0.58'"),
    (("float64", "extrapolation_error"), 10**400, "float64.extrapolation_error must be a finite number or null"),
    (("float64", "extrapolation_error"), None, "float64.effective_rank and float64.extrapolation_error must be numbers when the status is converged"),
    (("float64", "learned_a"), [0.45], "float64.learned_a must have 2 entries, got 1"),
    (("float64", "learned_a", 1), NAN, "float64.learned_a[1] must be a finite number, got nan"),
    (("float64", "status"), "exploded", "float64.status must be one of converged, diverged, stalled, time_limit, got 'exploded'"),
    (("float64", "steps"), -1, "float64.steps must be an integer >= 0, got -1"),
    (("float64", "t_end"), -1.0, "float64.t_end must be >= 0, got -1.0"),
    (("float64", "precision_bits"), 64, "float64.precision_bits = 64 is not the screen's precision (53)"),
    (("float64", "escaped_entries"), 3, "float64.escaped_entries must be an integer in [0, 2], got 3"),
    (("float64", "failed_criteria"), ["extrapolation", "extrapolation"], "float64.failed_criteria[1] must be one of"),
    # the certification
    (("certified", "precision_bits"), 32, "certified.precision_bits must be an integer >= 64, got 32"),
    (("certified", "precision_bits"), "113", "certified.precision_bits must be an integer >= 64, got '113'"),
    (("certified", "reference_bits"), 32, "certified.reference_bits must be an integer >= 64, got 32"),
    (("certified", "reference_bits"), 177, "certified.reference_bits = 177 is not the precision of its reference run, by certified.statuses (145)"),
    (("certified", "precision_bits"), 145, "certified.precision_bits = 145 is not the precision of the certified run, by certified.statuses (113)"),
    (("certified", "statuses", 1), "177 bits: converged", "certified.statuses[1] is a run at 177 bits, not at 145 (the precision ladder P, P + s, P + 2s of P = 113 bits is 113, 145, 177)"),
    (("certified", "statuses", 0), "53 bits: converged", "certified.statuses[0]: the run precision must be >= 64, got 53"),
    (("certified", "statuses", 0), "1" * 30 + " bits: converged", "certified.statuses[0] must read '<bits> bits: <status>'"),
    (("certified", "statuses"), ["113 bits: converged"], "certified.statuses must have 2 or 3 entries"),
    (("certified", "statuses"), ["113 bits: diverged", "145 bits: converged"], "certified.statuses must end at the second converged run"),
    (("certified", "statuses"), ["113 bits: converged", "145 bits: converged", "177 bits: converged"], "certified.statuses must end at the second converged run"),
    (("certified", "statuses"), ["113 bits: diverged", "145 bits: time_limit", "177 bits: converged"], "certified: fewer than two runs converged"),
    (("certified", "criterion"), "greedy_low_rank", "certified.criterion = 'greedy_low_rank' is not the record's criterion ('extrapolation')"),
    (("certified", "certified"), "yes", "certified.certified must be true or false, got 'yes'"),
    (("certified", "statuses", 0), "113 bits: fine", "certified.statuses[0] must read '<bits> bits: <status>'"),
    (("certified", "learned_a", 0), "about 0.45", "certified.learned_a[0] must be a decimal number written as a string, or '?'"),
    (("certified", "learned_a", 0), 0.447, "certified.learned_a[0] must be a decimal number written as a string, or '?', got 0.447"),
    (("certified", "learned_a", 0), "nan", "certified.learned_a[0] must be a decimal number written as a string"),
    (("certified", "learned_a"), ["?"], "certified.learned_a must have 2 entries, got 1"),
    (("certified", "extrapolation_error", "value"), "Infinity", "certified.extrapolation_error.value must be a decimal number"),
    (("certified", "extrapolation_error", "digits"), -1, "certified.extrapolation_error.digits must be an integer >= 0, got -1"),
    (("certified", "extrapolation_error", "digits"), 0, "certified.extrapolation_error.value is"),
    (("certified", "effective_rank"), None, "certified.effective_rank and certified.extrapolation_error must both be null"),
    (("float64_agreement_digits", "effective_rank"), 17, "float64_agreement_digits.effective_rank must be an integer in [0, 16], got 17"),
]


@pytest.mark.parametrize("path,value,message", CORRUPTIONS, ids=[".".join(map(str, c[0])) + f"={c[1]!r}"[:40] for c in CORRUPTIONS])
def test_a_corrupted_record_is_refused_naming_record_and_field_before_anything_runs(record, tmp_path, capsys, no_rerun, path, value, message):
    """The corrupted record is the second of a search report: the message names record 1 and the field."""
    report = {"counterexamples": [record, _set(record, path, value)], "explored": {}}
    line = _refused(tmp_path, capsys, report)
    assert line.startswith("record 1: ") and message in line, line


def test_a_special_training_set_is_refused(record, tmp_path, capsys, no_rerun):
    """u_(H-2) != 0 with its clean label: a valid problem, but not one the search judges."""
    special = _set(_set(record, ("problem", "inputs", 0, 1), 1), ("problem", "labels", 0), "-1/4")
    line = _refused(tmp_path, capsys, [special])
    assert line == "record 0: problem.inputs[0] are special (u_(H-2) != 0): the search judges non-special sets only"


def test_the_replay_certifies_at_the_base_of_the_saved_precision_ladder(record):
    """When the run at P did not converge the record names P + s and P + 2s; the replay re-runs the ladder from P."""
    shifted = _set(_set(_set(record, ("certified", "statuses"), ["113 bits: time_limit", "145 bits: converged", "177 bits: converged"]),
                        ("certified", "precision_bits"), 145), ("certified", "reference_bits"), 177)
    assert replay._replay_inputs(shifted)[3] == 113 and replay._replay_inputs(record)[3] == 113
    base_256 = _set(_set(_set(record, ("certified", "statuses"), ["256 bits: converged", "320 bits: converged"]),
                         ("certified", "precision_bits"), 256), ("certified", "reference_bits"), 320)
    assert replay._replay_inputs(base_256)[3] == 256


def test_every_record_is_validated_before_the_first_is_rerun(record, no_rerun):
    with pytest.raises(ValueError, match=r"^record 2: problem.horizon must be an integer >= 3, got -3$"):
        replay.replay_records([record, record, _set(record, ("problem", "horizon"), -3)])
    with pytest.raises(ValueError, match=r"^problem.horizon must be an integer >= 3, got -3$"):  # one record: no index
        replay.replay_record(_set(record, ("problem", "horizon"), -3))


@pytest.mark.parametrize(
    "raw,message",
    [
        (b"", "is not valid JSON (Expecting value at line 1)"),
        (b"{not json", "is not valid JSON"),
        (b"\xff\xfe\x00{", "is not UTF-8 text"),
        (b"3", "must hold a search report, a list of records or one record (a JSON object or list), got a number"),
        (b'"record"', "got a string"),
        (b"null", "got null"),
        (b"[]", "holds no counterexample"),
        (b'{"counterexamples": []}', "holds no counterexample"),
        (b'{"counterexamples": {"0": {}}}', "'counterexamples' must be a list of records, got an object"),
        (b"[1, 2]", "record 0: a counterexample must be a JSON object, got a number"),
        (b"[[]]", "record 0: a counterexample must be a JSON object, got a list"),
        (b"{}", "record 0: counterexample has no 'criterion' field"),
        (b"[" * 100_000 + b"]" * 100_000, "is not valid JSON"),
        (b"[" + b"1" * 5000 + b"]", "is not valid JSON"),
    ],
    ids=["empty", "not-json", "binary", "number", "string", "null", "empty-list", "empty-report", "report-object",
         "list-of-numbers", "list-of-lists", "empty-object", "deep", "huge-integer"],
)
def test_a_file_of_the_wrong_kind_is_refused_with_one_line(tmp_path, capsys, no_rerun, raw, message):
    assert message in _refused(tmp_path, capsys, None, raw=raw)


def test_an_unreadable_file_is_refused_with_one_line(tmp_path, capsys, no_rerun):
    for path, message in ((tmp_path / "missing.json", "No such file or directory"), (tmp_path, "Is a directory")):
        assert main(["replay", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "cannot read counterexample file" in err and message in err


def test_load_records_returns_valid_records_as_read(record, tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"counterexamples": [record, record], "explored": {"anything": 1}}))
    assert load_records(str(path)) == [record, record]


def test_differences_name_every_differing_leaf_with_both_values():
    saved = {"code": "a" * 16, "float64": {"t_end": 1.0, "steps": 3, "learned_a": [0.5, 0.25], "ok": True, "rank": None},
             "certified": {"learned_a": ["1.0e-1", "?"], "value": {"value": "2.5e-1", "digits": 2}}}
    rerun = {"code": "a" * 16, "float64": {"t_end": 1, "steps": 4, "learned_a": [0.5, 0.125], "ok": 1, "rank": 1.5},
             "certified": {"learned_a": ["1.0e-1", "?", "?"], "value": None}}
    report = ReplayReport(saved=(saved, saved), replayed=(saved, rerun))
    assert [(d.record, d.field, d.saved, d.rerun) for d in report.differences] == [
        (1, "float64.steps", 3, 4),
        (1, "float64.learned_a[1]", 0.25, 0.125),
        (1, "float64.ok", True, 1),  # a boolean is not the number 1
        (1, "float64.rank", None, 1.5),
        (1, "certified.learned_a", ["1.0e-1", "?"], ["1.0e-1", "?", "?"]),  # another shape: the whole value
        (1, "certified.value", {"value": "2.5e-1", "digits": 2}, None),
    ]
    assert report.identical == (True, False) and not report.all_identical  # t_end 1.0 == 1: numbers by value
    assert report.to_json()["differences"][0] == {"record": 1, "field": "float64.steps", "saved": 3, "rerun": 4}
    assert ReplayDifference(0, "code", "x", "y").to_json() == {"record": 0, "field": "code", "saved": "x", "rerun": "y"}


def test_an_altered_saved_number_exits_1_naming_exactly_that_field_with_both_values(record, tmp_path, capsys):
    """Record 1 of 2 has its float64 error and its certified error altered: both are named, with saved and re-run values."""
    float64_error = record["float64"]["extrapolation_error"]
    certified_error = record["certified"]["extrapolation_error"]["value"]
    altered = _set(_set(record, ("float64", "extrapolation_error"), 0.6), ("certified", "extrapolation_error", "value"), "5.9e-1")
    saved = tmp_path / "saved.json"
    saved.write_text(json.dumps({"counterexamples": [record, altered]}))
    out = tmp_path / "replayed.json"
    assert main(["replay", str(saved), "--json", str(out)]) == 1
    text = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["identical"] == [True, False]
    assert result["differences"] == [
        {"record": 1, "field": "float64.extrapolation_error", "saved": 0.6, "rerun": float64_error},
        {"record": 1, "field": "certified.extrapolation_error.value", "saved": "5.9e-1", "rerun": certified_error},
    ]
    first, second = text.rstrip("\n").split("\n\n")
    assert first.endswith("replay identical to the saved record: yes") and "differ" not in first
    assert second.splitlines()[-3:] == [
        "  replay identical to the saved record: NO (record 1: 2 field(s) differ)",
        f"    record 1 float64.extrapolation_error: saved 0.6, re-run {json.dumps(float64_error)}",
        f'    record 1 certified.extrapolation_error.value: saved "5.9e-1", re-run "{certified_error}"',
    ]


def test_an_identical_replay_lists_no_difference_and_other_code_is_named(record):
    report = ReplayReport(saved=(record, dict(record, code="0" * 16)), replayed=(record, record))
    assert report.to_json()["differences"] == [{"record": 1, "field": "code", "saved": "0" * 16, "rerun": record["code"]}]
    text = replay_report_text(report)
    assert f'    record 1 code: saved "{"0" * 16}", re-run "{record["code"]}"' in text
    assert ReplayReport(saved=(record,), replayed=(record,)).to_json()["differences"] == []
