"""The Theorem checker: verdicts on the paper's settings and on settings that violate a condition."""

import pytest

from ssmpoison.theory import TheoremSetting
from ssmpoison.verify._check import check_setting, paper_setting, report_text


def test_paper_setting_h7_matches_the_theorem():
    r = check_setting(paper_setting(7, 10, 20, 0.001, 5, 242))
    assert r.conditions_hold and r.matches_theorem
    assert r.clean.method == "oracle" and r.clean.quantity.digits >= 10
    assert r.poisoned.quantity.digits >= 8
    assert r.poisoned_over_clean >= 10
    data = r.to_json()
    assert data["matches_theorem"] is True
    assert {c["name"] for c in data["conditions"]} >= {"extrapolation_horizon", "unique_top_entry", "clean_greedy_bound"}
    assert "matches_theorem = true" in report_text(r)


@pytest.mark.parametrize(
    "a0,H,J,failing",
    [
        ((0.01, 0.005, 0.002), 5, 6, "extrapolation_horizon"),
        ((0.01, 0.01, 0.002), 5, 20, "unique_top_entry"),
        ((1.2, 0.5, 0.2), 5, 20, "below_label"),
    ],
)
def test_violated_conditions_are_named_and_the_flows_still_reported(a0, H, J, failing):
    r = check_setting(TheoremSetting(H, a0, J))
    assert not r.conditions_hold and not r.matches_theorem
    assert failing in {c.name for c in r.conditions if not c.holds}
    assert r.clean.status == r.poisoned.status == "converged"
    assert r.clean.quantity.digits >= 8 and r.poisoned.quantity.digits >= 8
    assert f"{failing} " in r.verdict() or f"{failing}," in r.verdict()


def test_cli_check_paper_setting_json(tmp_path, capsys):
    import json

    from ssmpoison.verify.cli import main

    out = tmp_path / "check.json"
    args = ["check", "--horizon", "7", "--state-dim", "10", "--extrapolate-to", "20", "--init-scale", "0.001",
            "--gap-exponent", "5", "--seed", "242", "--json", str(out)]
    assert main(args) == 0
    data = json.loads(out.read_text())
    assert data["matches_theorem"] is True
    assert all(c["holds"] for c in data["conditions"])
    assert float(data["poisoned_ext_error"]) >= 10 * float(data["clean_ext_error"])
    assert "verdict:" in capsys.readouterr().out


def test_cli_check_reports_a_failing_condition_with_exit_one(capsys):
    from ssmpoison.verify.cli import main

    assert main(["check", "--horizon", "5", "--state-dim", "3", "--extrapolate-to", "6", "--init", "0.01,0.005,0.002"]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] extrapolation_horizon" in out and "predicts nothing" in out


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--horizon", "2", "--state-dim", "10", "--extrapolate-to", "20"], "horizon must be >= 3"),
        (["--horizon", "7", "--state-dim", "1", "--extrapolate-to", "20"], "state_dim must be >= 2"),
        (["--horizon", "7", "--state-dim", "10", "--extrapolate-to", "0"], "extrapolate_to must be >= 1"),
        (["--horizon", "7", "--state-dim", "10", "--extrapolate-to", "20", "--init-scale", "nan"], "init_scale must be finite"),
        (["--horizon", "7", "--state-dim", "10", "--extrapolate-to", "20", "--init-scale", "-1"], "init_scale must be > 0"),
        (["--horizon", "5", "--state-dim", "3", "--extrapolate-to", "20", "--init", "0.01,0.01"], "init must have D = 3"),
    ],
)
def test_cli_check_bad_input_is_one_line_exit_two(extra, message, capsys):
    from ssmpoison.verify.cli import main

    assert main(["check", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_two_dimensional_student_cannot_be_poisoned():
    """D = 2 fails the state_dim condition, and indeed the poisoned flow learns the teacher (error ~ 0)."""
    r = check_setting(TheoremSetting(5, (0.02, 0.01), 20))
    assert [c.name for c in r.conditions if not c.holds] == ["state_dim"]
    assert r.poisoned.status == "converged"
    assert abs(r.poisoned.quantity.value) < 1e-10
    assert not r.matches_theorem


from hypothesis import assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ssmpoison.theory import conditions  # noqa: E402


@settings(max_examples=8, deadline=None)
@given(
    H=st.integers(4, 8),
    D=st.integers(3, 8),
    log_scale=st.floats(-3.0, -2.5),
    gap=st.floats(3.0, 8.0),
    seed=st.integers(0, 10_000),
)
def test_inside_the_conditions_the_verdict_matches_the_theorem(H, D, log_scale, gap, seed):
    """Random settings of the construction where every condition holds: certified flows match the Theorem.

    The scale stays below 10^-2.5: the conditions are derived for the clean flow only, and at
    larger scales the poisoned side can fail (H = 8, D = 5, scale 7.1e-3, gap exponent 3.25,
    seed 9600: poisoned 3.65e-3 < clean 4.72e-3; see proofs_notes/03_theorem.md).
    """
    try:
        setting = paper_setting(H, D, 20, 10.0**log_scale, gap, seed)
    except ValueError:  # the gap exponent would unsort the draws
        assume(False)
    assume(all(c.holds for c in conditions(setting)))
    r = check_setting(setting)
    assert r.clean.quantity.digits >= 8 and r.poisoned.quantity.digits >= 8
    assert r.matches_theorem, r.verdict()


def test_cli_init_accepts_rationals_like_the_other_reals(tmp_path):
    """``--init 1/1000,...`` (rationals, as ``--init-scale`` accepts) runs like its decimal spelling."""
    import json

    from ssmpoison.verify.cli import main

    base = ["check", "--horizon", "7", "--state-dim", "3", "--extrapolate-to", "20"]
    codes, data = [], []
    for k, init in enumerate(("1/1000,1/2000,1/4000", "0.001,0.0005,0.00025")):
        out = tmp_path / f"{k}.json"
        codes.append(main([*base, "--init", init, "--json", str(out)]))
        data.append(json.loads(out.read_text()))
    assert codes[0] == codes[1] in (0, 1)
    assert [c["holds"] for c in data[0]["conditions"]] == [c["holds"] for c in data[1]["conditions"]]
    assert abs(float(data[0]["clean_ext_error"]) / float(data[1]["clean_ext_error"]) - 1) < 1e-9


def test_sweep_over_dimension_and_horizon_records_every_point():
    """``sweep_checks`` over D x H: one record per point with both varied parameters; bad axes are refused."""
    from ssmpoison.verify import sweep_checks
    from ssmpoison.verify._check_sweep import sweep_summary

    base = {"extrapolate_to": 20, "init_scale": 1e-3, "gap_exponent": 5, "seed": 242}
    records = sweep_checks(base, x=("state_dim", [2, 4]), y=("horizon", [7]))
    assert [(r["horizon"], r["state_dim"]) for r in records] == [(7, 2), (7, 4)]
    d2, d4 = records
    assert d2["valid"] and not d2["conditions_hold"] and "state_dim" in d2["failing"]  # D = 2 cannot be poisoned
    assert d4["valid"] and d4["all_conditions_hold"] and d4["matches_theorem"]
    assert sweep_summary(records)["inside_all_conditions"] == sweep_summary(records)["match_inside_all"] == 1
    unreachable = sweep_checks(base | {"state_dim": 3}, x=("init_scale", [1e-6]), y=("horizon", [12]))[0]
    assert not unreachable["valid"] and "time limit" in unreachable["reason"]
    with pytest.raises(ValueError, match="has no parameter 'depth'"):
        sweep_checks(base, x=("depth", [1]), y=("horizon", [7]))
    with pytest.raises(ValueError, match="parameter 'init_scale' of job 'check' needs a value"):
        sweep_checks({"seed": 1}, x=("state_dim", [3]), y=("horizon", [7]))
