"""Bad input, degenerate settings and budgets: refused with one line naming the parameter, or computed with a status.

The commands of the issue that asked for this (each once ended in an internal error, a hang or
lost work) are replayed in-process: every one exits 0, 1 or 2 within 60 s, never 3.
"""

from __future__ import annotations

import contextlib
import io
import time
from fractions import Fraction

import numpy as np
import pytest

from ssmpoison.theory._construction import clean_training_set, poisoned_training_set
from ssmpoison.theory._theorem import TheoremSetting
from ssmpoison.theory._validation import require_int, require_real
from ssmpoison.verify import _kernels as kernels
from ssmpoison.verify._budget import budget_expired, budget_seconds_left, wall_clock_budget
from ssmpoison.verify._check import check_setting, paper_setting
from ssmpoison.verify._flow import FlowOptions, FlowProblem, run_flow
from ssmpoison.verify._limits import LIMITS, require_within
from ssmpoison.verify._status import Status
from ssmpoison.verify.cli import main


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue(), time.perf_counter() - start


H7 = ["--horizon", "7", "--state-dim", "3", "--extrapolate-to", "20"]

#: (argv, expected exit, a word the one-line refusal must contain)
ISSUE_COMMANDS = [
    (["check", *H7, "--init", "1/1000,1/2000,1/4000"], 1, None),
    (["check", *H7, "--init", "1e-320,1e-321,1e-322"], 2, "init"),
    (["check", *H7, "--seed", "242", "--precision", "500"], 2, "precision"),
    (["check", *H7, "--seed", "242", "--precision", "256"], 2, "precision"),
    (["check", *H7, "--init", "0.001,0.001,0.001"], 2, "init"),
    (["check", "--horizon", "7", "--state-dim", "2", "--extrapolate-to", "20", "--init", "0.001,0.001"], 2, "init"),
    (["check", *H7, "--init", "0,0,0"], 2, "init"),
    (["check", *H7, "--init", "1e308,1e308,1e308"], 2, "init"),
    (["reproduce", "--row", "theory", "--json", "/proc/ssmpoison-x"], 2, "json"),
    (["reproduce", "--row", "theory", "--json", "/nonexistent/x.json"], 2, "json"),
    (["reproduce", "--row", "theory", "--json", "/dev/full"], 2, "json"),
    (["reproduce", "--row", "theory", "--json", ""], 2, "json"),
    (["dynamics", "--horizon", "7", "--out", "/proc/ssmpoison-x"], 2, "out"),
    (["dynamics", "--horizon", "7", "--out", ""], 2, "out"),
    (["derive", "--horizon", "100000", "--state-dim", "2"], 2, "horizon"),
    (["derive", "--horizon", "3", "--state-dim", "100000"], 2, "state_dim"),
    (["check", "--horizon", "1000000", "--state-dim", "3", "--extrapolate-to", "20"], 2, "horizon"),
    (["check", *H7[:4], "--extrapolate-to", "1000000000"], 2, "extrapolate_to"),
    (["check", "--horizon", "7", "--precision", "100000"], 2, "precision"),
    (["reproduce", "--row", "theory", "--horizon", "7", "--precision", "100000"], 2, "precision"),
    (["check", "--init-scale", "1e308"], 2, "init_scale"),
    (["check", "--init-scale", "1e-320"], 2, "init_scale"),
    (["check", "--init-scale", "1e6"], 2, "init_scale"),
    (["check", "--state-dim", "1000000"], 2, "state_dim"),
    (["reproduce", "--horizon", "\u0663"], 2, "horizon"),
    (["reproduce", "--horizon", "1_0"], 2, "horizon"),
    (["search", "--budget", "100000"], 2, "budget"),
]


@pytest.mark.parametrize("argv, expected, word", ISSUE_COMMANDS, ids=[" ".join(c[0])[:70] for c in ISSUE_COMMANDS])
def test_issue_commands_refuse_or_complete(argv, expected, word, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err, seconds = _run(argv)
    assert code == expected, (code, err[-400:])
    assert seconds < 60
    assert "internal error" not in err and "Traceback" not in err
    if expected == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and "error:" in lines[0]
        assert word in lines[0], lines[0]
        assert list(tmp_path.iterdir()) == []  # nothing written on refusal


def test_long_stem_refused_before_any_run(tmp_path):
    code, _, err, seconds = _run(["dynamics", "--horizon", "7", "--out", str(tmp_path / "o"), "--stem", "S" * 300])
    assert code == 2 and "out" in err and "255" in err
    assert seconds < 2
    assert not (tmp_path / "o").exists()


def test_repeated_horizon_runs_once(tmp_path):
    code, out, err, _ = _run(["reproduce", "--row", "theory", "--horizon", "7", "--horizon", "7", "--jobs", "1"])
    assert code == 0, err
    assert out.count("mean without u†") == 1 and out.count("mean with u†") == 1


# ---------------------------------------------------------------- degenerate flows end with a status


def test_zero_initialisation_is_a_fixed_point_of_the_unpoisoned_flow():
    """At a = 0 every output gradient has a factor a^(H-2): the flow never moves (stalled, loss 1)."""
    r = run_flow(FlowProblem(clean_training_set(7), (0.0, 0.0, 0.0)))
    assert r.status == Status.STALLED
    assert list(r.a) == [0.0, 0.0, 0.0] and r.loss == 1.0


def test_zero_initialisation_of_the_poisoned_flow_moves():
    """The poison's output C A B is linear in a: its gradient at a = 0 is not zero, so that flow is not stalled."""
    r = run_flow(FlowProblem(poisoned_training_set(7), (0.0, 0.0, 0.0)), FlowOptions(max_steps=50))
    assert r.status != Status.STALLED and float(np.abs(np.array(r.a, dtype=float)).max()) > 0.1


def test_converging_flows_are_not_called_stalled():
    """A small but untied initialisation escapes its plateau and converges (no false stall)."""
    for ts in (clean_training_set(7), poisoned_training_set(7)):
        r = run_flow(FlowProblem(ts, (1e-3, 5e-4, 2e-4)))
        assert r.status == Status.CONVERGED


def test_degenerate_initialisations_are_refused_naming_the_parameter():
    with pytest.raises(ValueError, match="init: all 3 entries are equal"):
        check_setting(TheoremSetting(7, (1e-3, 1e-3, 1e-3), 20))
    with pytest.raises(ValueError, match="init:"):
        check_setting(TheoremSetting(7, (1e308, 1.0, 1.0), 20))
    with pytest.raises(ValueError, match="initialisation: the clean flow"):
        check_setting(TheoremSetting(7, (1e-6, 1e-7, 1e-8), 20))
    with pytest.raises(ValueError, match="init_scale"):
        paper_setting(7, 3, 20, 1e-320, 5, 242)
    with pytest.raises(ValueError, match="init_scale = 1e\\+06|init_scale must be below"):
        paper_setting(7, 3, 20, 1e6, 5, 242)


def test_loss_threshold_stays_positive_and_exact_beyond_float64():
    """4^-(P-8) underflows float64 near P = 520: above 500 bits it is an exact Fraction, never 0."""
    for P in (499, 500, 600, 5000):
        tol = FlowOptions(precision_bits=P).effective_loss_tol
        assert tol > 0
        assert Fraction(tol) == Fraction(1, 4 ** (P - 8))


# ---------------------------------------------------------------- the wall-clock budget


def test_budget_nests_and_restores():
    assert not budget_expired() and budget_seconds_left() == float("inf")
    with wall_clock_budget(100):
        assert 99 < budget_seconds_left() <= 100
        with wall_clock_budget(1000):  # an inner budget never extends the outer one
            assert budget_seconds_left() <= 100
        with wall_clock_budget(1e-9):
            time.sleep(1e-3)
            assert budget_expired()
        assert not budget_expired()
    assert budget_seconds_left() == float("inf")
    with pytest.raises(ValueError, match="time_limit"):
        with wall_clock_budget(0):
            pass


def test_flow_out_of_budget_ends_with_time_limit():
    with wall_clock_budget(1e-9):
        time.sleep(1e-3)
        r = run_flow(FlowProblem(poisoned_training_set(7), (1e-3, 5e-4, 2e-4)))
    assert r.status == Status.TIME_LIMIT
    assert r.steps <= 2


def test_cli_time_limit_reports_time_limit_statuses():
    code, out, err, seconds = _run(["check", "--time-limit", "1e-6"])
    assert code == 1 and "time_limit" in out
    assert seconds < 30


# ---------------------------------------------------------------- bounds and number syntax


def test_every_bound_is_named_with_its_value_and_the_way_past_it():
    for (command, quantity), limit in LIMITS.items():
        cmd = "check" if command == "*" else command
        over = limit.maximum + (1 if isinstance(limit.maximum, int) else limit.maximum)  # above the bound, below the hard one
        assert require_within(cmd, quantity, limit.maximum, False) == limit.maximum
        with pytest.raises(ValueError) as info:
            require_within(cmd, quantity, over, False)
        message = str(info.value)
        assert message.startswith(quantity) and f"<= {limit.maximum}" in message and "--no-limits" in message
        assert require_within(cmd, quantity, over, True) == over
        assert require_within(cmd, quantity, limit.hard, True) == limit.hard
        with pytest.raises(ValueError, match=f"<= {limit.hard} even with --no-limits"):
            require_within(cmd, quantity, limit.hard + 1, True)


def test_no_limits_lifts_a_bound():
    code, _, err, _ = _run(["derive", "--horizon", "33", "--state-dim", "1"])
    assert code == 2 and "horizon must be <= 32" in err
    code, out, err, _ = _run(["derive", "--horizon", "33", "--state-dim", "1", "--no-limits"])
    assert code == 0, err


def test_help_gives_the_bounds(capsys):
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "<= 64 unless --no-limits" in text and "<= 128 unless --no-limits" in text and "--time-limit" in text


@pytest.mark.parametrize("text", ["1_0", "\u0663", "1e", "0x10", "--1", "1/", "", "1" * 1001])
def test_reals_and_integers_are_ascii_decimal_only(text):
    with pytest.raises(ValueError, match="^x must be"):
        require_real("x", text)
    with pytest.raises(ValueError, match="^x must be"):
        require_int("x", text)


@pytest.mark.parametrize("text, value", [("0.01", 0.01), ("1e-3", 1e-3), (".5", 0.5), ("-2/3", Fraction(-2, 3)),
                                         ("+1.5E+3", 1500.0), (" 7 ", 7)])
def test_ascii_reals_parse(text, value):
    assert require_real("x", text) == value


def test_a_condition_not_evaluated_is_null_in_json(tmp_path):
    """A negative entry: the clean bound is not evaluated (NaN inside), written as null, never a failed write."""
    path = tmp_path / "c.json"
    code, _, err, _ = _run(["check", *H7, "--init", "0.3,-0.2,0.1", "--json", str(path)])
    assert code == 1, err
    import json

    conditions = {c["name"]: c for c in json.loads(path.read_text())["conditions"]}
    assert conditions["clean_greedy_bound"]["value"] is None and not conditions["clean_greedy_bound"]["holds"]


def test_non_finite_results_are_an_internal_error_not_a_refusal(tmp_path):
    from ssmpoison.verify._jsonio import write_json

    with pytest.raises(RuntimeError, match="non-finite"):
        write_json(str(tmp_path / "x.json"), {"value": float("nan")})
    assert list(tmp_path.iterdir()) == []
