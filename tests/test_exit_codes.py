"""One exit-code convention for every subcommand (README): 0 ran and matched, 1 ran with a negative
outcome, 2 refused input, 3 internal error; JSON output is written whole or not at all."""

from __future__ import annotations

import json
import os

import pytest

from ssmpoison.verify.cli import EXIT_INTERNAL_ERROR, EXIT_NEGATIVE, EXIT_OK, EXIT_REFUSED, main

SMALL_CHECK = ["check", "--horizon", "5", "--state-dim", "3", "--extrapolate-to", "6"]


def test_the_four_codes_are_distinct_and_documented():
    assert (EXIT_OK, EXIT_NEGATIVE, EXIT_REFUSED, EXIT_INTERNAL_ERROR) == (0, 1, 2, 3)
    readme = (os.path.dirname(__file__) + "/../README.md")
    text = open(readme, encoding="utf-8").read()
    for code in ("| 0 |", "| 1 |", "| 2 |", "| 3 |"):
        assert code in text


def test_exit_0_when_the_outcome_matches(tmp_path):
    assert main(["derive", "--horizon", "3", "--state-dim", "2", "--json", str(tmp_path / "d.json")]) == EXIT_OK


def test_exit_1_when_the_outcome_is_negative(capsys):
    assert main([*SMALL_CHECK, "--init", "0.01,0.005,0.002"]) == EXIT_NEGATIVE


def test_exit_2_when_input_is_refused(capsys):
    assert main([*SMALL_CHECK, "--init", "0.01,0.005"]) == EXIT_REFUSED
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "init" in err


def test_exit_3_on_an_internal_error_with_one_line_asking_for_a_report(monkeypatch, capsys):
    from ssmpoison.verify import _derive_report

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(_derive_report, "derive_report", broken)
    assert main(["derive", "--horizon", "3", "--state-dim", "2"]) == EXIT_INTERNAL_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error (RuntimeError): boom" in err
    assert "bug" in err and "ssmpoison derive --horizon 3 --state-dim 2" in err


@pytest.mark.parametrize("value", ["1_0", "\u0663", "3.0", "0x7", "", "7 7"])
def test_integers_are_ascii_decimal_only(value, capsys):
    assert main(["reproduce", "--row", "theory", "--horizon", value]) == EXIT_REFUSED
    assert "horizon must be an integer" in capsys.readouterr().err


def test_an_empty_json_path_is_refused_before_any_work(capsys):
    assert main([*SMALL_CHECK, "--json", ""]) == EXIT_REFUSED
    assert "json: the path is empty" in capsys.readouterr().err


def test_repeated_horizons_run_once(capsys):
    from ssmpoison.verify import _rows

    seen = []
    original = _rows.TheoryRow.run

    def spy(self, settings, **kwargs):
        seen.append(tuple(s.horizon for s in settings))
        return original(self, settings, **kwargs)

    import unittest.mock

    with unittest.mock.patch.object(_rows.TheoryRow, "run", spy):
        assert main(["reproduce", "--row", "theory", "--horizon", "7", "--horizon", "7", "--json", "-"]) == EXIT_OK
    assert seen == [(7,)]
    payload = json.loads(capsys.readouterr().out)
    assert sum(s["horizon"] == 7 for s in payload["summary"]) == 2  # clean and poisoned, once each


def test_json_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    from ssmpoison.verify import _jsonio

    target = tmp_path / "out.json"
    target.write_text('{"previous": true}\n')
    _jsonio.write_json(str(target), {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}

    def fail(*args, **kwargs):  # the disk fills up while the text is written
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_jsonio.os, "fsync", fail)
    with pytest.raises(ValueError, match="json: could not write .*No space left on device"):
        _jsonio.write_json(str(target), {"a": 2})
    assert json.loads(target.read_text()) == {"a": 1}  # the previous file, intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]  # no temporary file left behind


def test_jobs_above_the_cpus_are_capped_with_one_warning(capsys):
    from ssmpoison.verify._workers import capped_jobs, default_jobs

    cores = default_jobs()
    warnings = []
    assert capped_jobs(cores, warnings.append) == cores and warnings == []
    assert capped_jobs(1000, warnings.append) == cores and len(warnings) == 1 and "1000" in warnings[0]
    # a local Dask cluster is capped the same way (1000 worker processes were started for a 2-point sweep)
    assert capped_jobs(1000, warnings.append, "dask_local") == cores
    assert warnings[-1] == f"dask_local = 1000 capped at the {cores} CPUs this process may use"
    assert main(["reproduce", "--row", "theory", "--horizon", "7", "--jobs", "1000", "--json", "-"]) == EXIT_OK
    err = capsys.readouterr().err
    assert f"jobs = 1000 capped at the {cores} CPUs" in err
