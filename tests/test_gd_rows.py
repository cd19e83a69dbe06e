"""The GD rows of Table 1 in ``ssmpoison reproduce``: summaries, exclusion of failed runs, tables, JSON, errors."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from ssmpoison.verify import published_setting, row_model
from ssmpoison.verify.cli import main
from ssmpoison.verify import RunResult
from ssmpoison.verify._gd_rows import (
    condition_summary,
    row_text,
    run_gd_row,
    spread_ratios,
    spread_summary,
)

RUN_KEYS = {"row", "horizon", "seed", "poisoned", "ext_error", "train_loss", "steps", "status"}


def _run(seed, poisoned, ext, status="converged", draw=0):
    return RunResult(seed=seed, poisoned=poisoned, ext_error=ext, train_loss=1e-3, steps=10, status=status,
                     reached_at=5 if status == "converged" else None, params=(np.ones(3),), init_draw=draw)


def test_condition_summary_keeps_failed_runs_out_of_the_mean():
    runs = [_run(1, False, 0.1), _run(2, False, 0.3), _run(3, False, 5.0, "stalled"), _run(4, False, np.nan, "diverged"),
            _run(1, True, 10.0)]
    s = condition_summary(runs, False, {False: 0.2, True: 16.0})
    assert s["mean"] == pytest.approx(0.2) and s["runs"] == 2
    assert s["excluded"] == 2 and s["excluded_statuses"] == {"diverged": 1, "stalled": 1}
    assert s["ratio_to_published"] == pytest.approx(1.0)
    none = condition_summary([_run(1, True, 1.0, "max_steps")], True, None)
    assert none["mean"] is None and none["excluded"] == 1 and none["published"] is None


def test_spread_summary_and_ratios():
    runs = []
    for d in (1, 2, 3):
        for seed in (1, 2):
            runs.append(_run(seed, False, 0.1 * d, draw=d))
            runs.append(_run(seed, True, 2.0 * d if d < 3 else 0.5, draw=d))
    runs.append(_run(3, False, 9.0, "stalled", draw=1))
    sp = spread_summary(runs, (1, 2, 3), False, {False: 0.25, True: 1.0})
    assert sp["samples"] == 3 and sp["median"] == pytest.approx(0.2)
    assert sp["published_percentile"] == pytest.approx(200 / 3)
    assert sp["excluded"] == 1 and sp["excluded_statuses"] == {"stalled": 1}
    r = spread_ratios(runs)
    assert r["draws"] == 3 and r["at_least_10x"] == 2 and r["min"] == pytest.approx(0.5 / 0.3)
    assert spread_summary([], (1,), True, None) is None and spread_ratios([]) is None


def test_rows_and_horizons():
    assert row_model("beyond").horizons == (6, 10) and row_model("nonlinear").horizons == (6, 10)
    with pytest.raises(ValueError, match="row"):
        row_model("gd")
    with pytest.raises(ValueError, match="horizon"):
        published_setting("nonlinear", 8)
    with pytest.raises(ValueError, match="draws"):
        run_gd_row(published_setting("beyond", 6), draws=-1)


def test_runs_that_never_reach_the_threshold_are_reported_and_excluded():
    res = run_gd_row(published_setting("nonlinear", 6), draws=0, max_steps=300)
    poisoned = [r for r in res.runs if r.poisoned]
    assert {r.status for r in poisoned} == {"max_steps"}  # reached tol at ~120 steps, then ran out of steps
    assert all(r.reached_at is not None for r in poisoned)
    clean = [r for r in res.runs if not r.poisoned]
    assert {r.status for r in clean} <= {"max_steps", "stalled"} and all(r.reached_at is None for r in clean)
    text = row_text(res)
    assert "mean with special: - over 0 converged run(s), 4 excluded: 4 max_steps" in text
    assert "mean without special: - over 0 converged run(s), 4 excluded:" in text


@pytest.mark.parametrize(
    "args,param",
    [
        (["--row", "beyond", "--horizon", "7"], "horizon"),
        (["--row", "nonlinear", "--horizon", "8"], "horizon"),
        (["--row", "all", "--horizon", "7"], "horizon"),
        (["--row", "beyond", "--precision", "64"], "precision"),
        (["--row", "all", "--precision", "52"], "precision"),
        (["--row", "nonlinear", "--jobs", "0"], "jobs"),
        (["--row", "Beyond"], "row"),
        (["--row", "beyond", "--json", "/no/such/dir/out.json"], "json"),
    ],
)
def test_bad_input_one_line_exit_2(args, param):
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "ssmpoison.verify.cli", "reproduce", *args], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert param in proc.stderr and proc.stdout == ""
    assert time.perf_counter() - start < 30  # rejected before any training


def test_reproduce_beyond_json(capsys):
    assert main(["reproduce", "--row", "beyond", "--horizon", "6", "--draws", "2", "--json", "-"]) == 0
    captured = capsys.readouterr()
    payload = json.loads(captured.out)
    assert payload["row"] == "beyond" and len(payload["runs"]) == 8
    assert all(set(r) == RUN_KEYS for r in payload["runs"])
    assert {(r["seed"], r["poisoned"]) for r in payload["runs"]} == {(s, p) for s in (200, 201, 204, 205) for p in (0, 1)}
    clean, poisoned = payload["summary"]
    assert clean["published"] == 0.194 and poisoned["published"] == 16.61
    # note 00 §6 / issue: within 3x of the published means, and >= 10x between the conditions
    for s in (clean, poisoned):
        assert 1 / 3 <= s["ratio_to_published"] <= 3
    assert poisoned["mean"] >= 10 * clean["mean"]
    assert len(payload["spread_runs"]) == 16 and all(r["init_draw"] in (1, 2) for r in payload["spread_runs"])
    assert "beyond row H=6" in captured.err  # the progress bar


def test_reproduce_beyond_table(capsys):
    assert main(["reproduce", "--row", "beyond", "--horizon", "6", "--draws", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Beyond row of Table 1")
    assert "published: 0.194" in out and "published: 16.61" in out and "(published 85.6x)" in out
    assert "spread over 2 further initialisation draws per seed" in out
    assert "TensorFlow" in out


@pytest.mark.slow
def test_reproduce_all_within_15_minutes(tmp_path):
    """The whole of Table 1 (theory, beyond and non-linear rows, every published horizon) on this machine."""
    target = tmp_path / "all.json"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "ssmpoison.verify.cli", "reproduce", "--row", "all", "--json", str(target)],
                          capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert seconds <= 900
    payload = json.loads(target.read_text())
    rows = [r["row"] for r in payload["rows"]]
    assert rows == ["theory", "beyond", "nonlinear"]
    assert "Table 1 — mean extrapolation error" in proc.stdout and "Theory row of Table 1" in proc.stdout
    beyond = payload["rows"][1]
    assert {s["horizon"] for s in beyond["summary"]} == set(row_model("beyond").horizons)
    h6 = [s for s in beyond["summary"] if s["horizon"] == 6]
    assert h6[1]["mean"] >= 10 * h6[0]["mean"]
