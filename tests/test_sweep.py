"""Sweeps: sweep files, the results store, resuming, backends, interrupts (``ssmpoison sweep``)."""

import json
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from ssmpoison.verify._parallel import Backend, run_ordered, run_unordered
from ssmpoison.verify._store import Store
from ssmpoison.verify._sweep import SweepSpec, read_sweep_file, run_sweep
from ssmpoison.verify.cli import main

#: the job of the fast tests: the clean flow's exact limit (milliseconds a point)
FIXED = {"horizon": 7, "state_dim": 10, "extrapolate_to": 20, "seed": 242}


def _spec(**kw):
    args = dict(name="t", job="clean_limit", fixed=dict(FIXED), grid={"gap_exponent": [0.01, 5], "init_scale": [1e-3, 2e-3]})
    args.update(kw)
    return SweepSpec(**args)


def _exported(store, name):
    return [{k: r[k] for k in ("point", "params", "metrics", "status", "reason")} for r in store.rows(name)]


def test_grid_points_in_order_with_defaults_and_refusals(tmp_path):
    spec = _spec()
    points = spec.points()
    assert [(p["gap_exponent"], p["init_scale"]) for p in points] == [(0.01, 1e-3), (0.01, 2e-3), (5.0, 1e-3), (5.0, 2e-3)]
    assert all(p["extrapolate_to"] == 20 and isinstance(p["horizon"], int) for p in points)
    with Store(str(tmp_path / "s.sqlite")) as store:
        report = run_sweep(spec, store)
        rows = store.rows("t")
    assert (report.ran, report.done, report.refused, report.failed) == (4, 2, 2, 0)
    assert [r["status"] for r in rows] == ["refused", "refused", "done", "done"]
    assert "gap" in rows[0]["reason"] and rows[0]["metrics"] == {}
    assert rows[2]["metrics"]["clean_error"] == pytest.approx(1.1842367161638e-3, rel=1e-12)  # note 03 §4
    assert rows[2]["metrics"]["top_limit"] > 0.99 > 0.1 > rows[2]["metrics"]["second_limit"]


def test_random_design_is_deterministic():
    rule = {"points": 6, "seed": 3, "init_scale": {"low": 1e-4, "high": 1e-2, "log": True}, "horizon": {"low": 5, "high": 9},
            "gap_exponent": [3, 5]}
    fixed = {"state_dim": 6, "seed": 1}
    a = SweepSpec("r", "clean_limit", fixed, random=rule).points()
    assert a == SweepSpec("r", "clean_limit", fixed, random=rule).points()
    assert a != SweepSpec("r", "clean_limit", fixed, random=rule | {"seed": 4}).points()
    assert all(1e-4 <= p["init_scale"] <= 1e-2 and 5 <= p["horizon"] <= 9 and p["gap_exponent"] in (3, 5) for p in a)
    assert all(isinstance(p["horizon"], int) for p in a)


def test_resume_skips_stored_points_and_reruns_other_code(tmp_path, monkeypatch):
    import ssmpoison.verify._sweep as sweep

    path = str(tmp_path / "s.sqlite")
    with Store(path) as store:
        run_sweep(_spec(), store)
        first = _exported(store, "t")
        with pytest.raises(ValueError, match="already holds 4 of its points"):
            run_sweep(_spec(), store)
        again = run_sweep(_spec(), store, resume=True)
        assert (again.skipped, again.ran, again.other_code) == (4, 0, 0)
        monkeypatch.setattr(sweep, "job_fingerprint", lambda: "0" * 16)
        newer = run_sweep(_spec(), store, resume=True)
        assert (newer.skipped, newer.ran, newer.other_code) == (0, 4, 4)
        assert "computed by other code" in newer.text()
        assert _exported(store, "t") == first and {r["fingerprint"] for r in store.rows("t")} == {"0" * 16}
        with pytest.raises(ValueError, match="made from another sweep file"):
            run_sweep(_spec(grid={"gap_exponent": [5], "init_scale": [1e-3]}), store, resume=True)


def test_backends_give_identical_results(tmp_path):
    """Serial, two joblib processes and a local Dask cluster of two workers store the same points."""
    spec = _spec(grid={"gap_exponent": [4, 5, 6], "init_scale": [1e-3, 2e-3]})
    results = []
    for k, backend in enumerate([Backend(), Backend("joblib", 2), Backend("dask", dask_local=2)]):
        with Store(str(tmp_path / f"{k}.sqlite")) as store:
            assert run_sweep(spec, store, backend).done == 6
            results.append(_exported(store, "t"))
    assert results[0] == results[1] == results[2]


def test_run_unordered_and_ordered_cover_every_job():
    args = list(range(7))
    assert sorted(run_unordered(abs, args, Backend("joblib", 2))) == [(i, i) for i in args]
    assert list(run_ordered(abs, [-a for a in args], Backend("joblib", 2))) == args
    with pytest.raises(ValueError, match="dask backend: give exactly one"):
        Backend("dask")
    with pytest.raises(ValueError, match="jobs must be"):
        Backend("joblib", 0)


def test_two_writers_share_one_store(tmp_path):
    """Two sweeps writing to one store at the same time: both complete, the database is intact."""
    store = tmp_path / "shared.sqlite"
    files = []
    for name in ("a", "b"):
        f = tmp_path / f"{name}.toml"
        f.write_text(f'name = "{name}"\njob = "clean_limit"\n[fixed]\nhorizon = 7\nstate_dim = 10\nseed = 242\n'
                     '[random]\npoints = 40\nseed = 1\ninit_scale = {low = 1e-3, high = 3e-3}\ngap_exponent = [4, 5, 6]\n')
        files.append(f)
    procs = [subprocess.Popen([sys.executable, "-m", "ssmpoison.verify.cli", "sweep", str(f), "--store", str(store)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for f in files]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    db = sqlite3.connect(store)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert [db.execute(f"SELECT COUNT(*), COUNT(DISTINCT point) FROM sweep_{n}").fetchone() for n in "ab"] == [(40, 40)] * 2


def _rows(store):
    try:
        db = sqlite3.connect(store)
        return db.execute("SELECT COUNT(*) FROM sweep_big").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


_BIG = 600


def _start_and_stop_at(spec, store, rows, signum):
    proc = subprocess.Popen([sys.executable, "-m", "ssmpoison.verify.cli", "sweep", str(spec), "--store", str(store),
                             "--jobs", "2", "--resume"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while _rows(store) < rows and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signum)
    proc.wait(timeout=60)
    return proc.returncode, _rows(store)


def test_interrupted_sweeps_resume_to_the_uninterrupted_result(tmp_path):
    """A 600-point sweep stopped by SIGINT and then by SIGKILL: --resume completes it, every point once, same results.

    A point takes a few milliseconds, so the sweep must be long enough that the signals arrive before its
    end even when this process is descheduled for a second (200 points were once all written between
    two polls on a loaded machine)."""
    spec = tmp_path / "big.toml"
    spec.write_text('name = "big"\njob = "clean_limit"\n[fixed]\nhorizon = 7\nstate_dim = 10\nseed = 242\n'
                    f'[random]\npoints = {_BIG}\nseed = 5\n'
                    'init_scale = {low = 1e-3, high = 4e-3, log = true}\ngap_exponent = {low = 3, high = 8}\n')
    store = tmp_path / "big.sqlite"
    code, done = _start_and_stop_at(spec, store, 60, signal.SIGINT)
    assert code == 130 and 60 <= done < _BIG
    code, done2 = _start_and_stop_at(spec, store, 120, signal.SIGKILL)
    assert code == -signal.SIGKILL and done <= done2 < _BIG
    assert main(["sweep", str(spec), "--store", str(store), "--resume", "--json", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["skipped"] == done2 and report["ran"] == _BIG - done2 and report["stored"] == {"done": _BIG}
    with Store(str(store)) as s:
        resumed = _exported(s, "big")
    with Store(str(tmp_path / "whole.sqlite")) as s:
        run_sweep(read_sweep_file(str(spec)), s)
        whole = _exported(s, "big")
    assert [r["point"] for r in resumed] == list(range(_BIG)) and resumed == whole


def test_cli_export_and_plot(tmp_path, capsys):
    spec = tmp_path / "t.toml"
    spec.write_text('name = "t"\njob = "clean_limit"\n[fixed]\nhorizon = 7\nstate_dim = 10\nseed = 242\n'
                    '[grid]\ngap_exponent = [4, 5]\ninit_scale = [1e-3, 2e-3]\n')
    assert main(["sweep", str(spec)]) == 0
    store = str(tmp_path / "t.sqlite")
    capsys.readouterr()
    assert main(["sweep", "export", store, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["sweep"] == "t" and len(data["points"]) == 4 and data["points"][0]["status"] == "done"
    assert main(["sweep", "export", store, "--out", str(tmp_path / "t.csv")]) == 0
    lines = (tmp_path / "t.csv").read_text().splitlines()
    assert len(lines) == 5 and "clean_error" in lines[0] and lines[1].startswith("0,")
    assert main(["sweep", "plot", store, "--x", "init_scale", "--y", "gap_exponent", "--color", "clean_error",
                 "--out", str(tmp_path / "t.png")]) == 0
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["sweep", "plot", store, "--x", "init_scale", "--color", "second_limit", "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["sweep", "plot", store, "--x", "init_scale", "--color", "speed", "--out", str(tmp_path / "d.png")]) == 2
    assert "color: no point has the metric 'speed'" in capsys.readouterr().err and not (tmp_path / "d.png").exists()


@pytest.mark.parametrize(
    "text,message",
    [
        ('name = "t"\njob = "nope"\n[grid]\nseed = [1]\n', "job must be one of"),
        ('name = "t"\njob = "clean_limit"\n[fixed]\nhorizon = 7\n', "exactly one of the tables grid and random"),
        ('name = "t"\njob = "clean_limit"\n[grid]\ndepth = [1]\n', "has no parameter 'depth'"),
        ('name = "t"\njob = "clean_limit"\n[grid]\nhorizon = []\n', "grid.horizon must be a non-empty list"),
        ('name = "t"\njob = "clean_limit"\ncolour = 1\n[grid]\nhorizon = [7]\n', "unknown key 'colour'"),
        ('name = "1t"\njob = "clean_limit"\n[grid]\nhorizon = [7]\n', "name must be a letter"),
        ('name = "t"\njob = "clean_limit"\n[fixed]\nhorizon = 7.5\nstate_dim = 3\ninit_scale = 1e-3\ngap_exponent = 5\n'
         '[grid]\nseed = [1]\n', "parameter 'horizon' must be an integer"),
        ('name = "t"\njob = "clean_limit"\nmetrics = ["speed"]\n[grid]\nhorizon = [7]\n', "has no metric 'speed'"),
        ('name = "t"\njob = "clean_limit"\n[random]\npoints = 0\nhorizon = [7]\n', "random.points"),
        ('name = "t"\njob = "clean_limit"\n[random]\npoints = 3\ninit_scale = {low = 0, high = 1, log = true}\n',
         "log-uniform range needs low > 0"),
        ('name = "t"\njob = [\n', "is not valid TOML"),
    ],
)
def test_malformed_sweep_files_exit_two_with_one_line(tmp_path, capsys, text, message):
    spec = tmp_path / "bad.toml"
    spec.write_text(text)
    assert main(["sweep", str(spec)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "bad.sqlite").exists()  # refused before the store is made


def test_store_errors_name_the_option(tmp_path, capsys):
    (tmp_path / "junk.sqlite").write_text("not a database at all " * 100)
    assert main(["sweep", "export", str(tmp_path / "junk.sqlite")]) == 2
    assert "store:" in capsys.readouterr().err
    assert main(["sweep", "export", str(tmp_path / "missing.sqlite")]) == 2
    assert "no such file" in capsys.readouterr().err


@pytest.mark.slow
def test_theorem_map_h7_on_joblib_and_dask_stores_identical_results(tmp_path):
    """Note 03's H = 7 map as a sweep file: 88 points, the note's counts, identical stores from joblib x2 and Dask x2."""
    from pathlib import Path

    from ssmpoison.verify import sweep_summary
    from ssmpoison.verify._sweep_plots import flatten

    spec = str(Path(__file__).parent.parent / "proofs_notes" / "sweeps" / "theorem_H7.toml")
    exports = []
    for k, backend in enumerate((["--jobs", "2"], ["--dask-local", "2"])):
        store = str(tmp_path / f"{k}.sqlite")
        assert main(["sweep", spec, "--store", store, *backend]) == 0
        with Store(store) as s:
            exports.append(_exported(s, "theorem_H7"))
    assert exports[0] == exports[1]
    records = flatten([r | {"fingerprint": None, "seconds": None, "finished": None} for r in exports[0]])
    assert sweep_summary(records) == {"settings": 88, "inside_conditions": 40, "match_theorem": 30,
                                      "inside_all_conditions": 22, "match_inside_all": 22}
    assert sum(r["status"] == "refused" for r in records) == 10


def test_unreachable_scheduler_is_refused_before_the_store_is_made(tmp_path, capsys):
    spec = tmp_path / "t.toml"
    spec.write_text('name = "t"\njob = "clean_limit"\n[fixed]\nhorizon = 7\nstate_dim = 10\nseed = 242\n'
                    '[grid]\ngap_exponent = [5]\ninit_scale = [1e-3]\n')
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["sweep", str(spec), "--scheduler", f"tcp://127.0.0.1:{port}"]) == 2
    assert "scheduler: cannot reach" in capsys.readouterr().err
    assert main(["sweep", str(spec), "--scheduler", "nonsense"]) == 2
    assert "scheduler must be an address" in capsys.readouterr().err
    assert not (tmp_path / "t.sqlite").exists()


def test_time_limit_ends_the_sweep_and_resume_completes_it(tmp_path, monkeypatch):
    import ssmpoison.verify._sweep as sweep

    calls = iter(range(10**6))
    monkeypatch.setattr(sweep, "budget_expired", lambda: next(calls) >= 1)  # expires after the second point
    spec = _spec(grid={"gap_exponent": [4, 5, 6], "init_scale": [1e-3, 2e-3]})
    with Store(str(tmp_path / "s.sqlite")) as store:
        first = run_sweep(spec, store)
        assert first.time_limit and first.ran == 2 and "--resume completes" in first.text()
        monkeypatch.setattr(sweep, "budget_expired", lambda: False)
        rest = run_sweep(spec, store, resume=True)
        assert not rest.time_limit and (rest.skipped, rest.ran) == (2, 4) and rest.stored == {"done": 6}


def test_a_registered_job_runs_and_non_finite_metrics_are_stored_as_null(tmp_path):
    from ssmpoison.verify._sweep_jobs import SWEEP_JOBS, SweepJob, register_job, run_point

    job = register_job(SweepJob("halves", "x / 2, and 0/0 as NaN", {"x": ("int", None)}, ("half", "nan"), (),
                                lambda p: {"half": p["x"] / 2, "nan": float("nan")}))
    try:
        assert run_point(("halves", {"x": 3}))["metrics"] == {"half": 1.5, "nan": None}
        with Store(str(tmp_path / "s.sqlite")) as store:
            report = run_sweep(SweepSpec("h", "halves", grid={"x": [1, 2]}), store)
            assert report.done == 2 and [r["metrics"]["half"] for r in store.rows("h")] == [0.5, 1.0]
        with pytest.raises(ValueError, match="kind 'text'"):
            register_job(SweepJob("bad", "", {"x": ("text", None)}, (), (), abs))
    finally:
        SWEEP_JOBS.pop(job.name)


def test_special_poison_job_gives_the_certified_damage():
    """The job ``special_poison`` at budget 0.1 on the paper's H = 7 setting: the poisons module's certified damage."""
    from ssmpoison.verify._sweep_jobs import run_point

    r = run_point(("special_poison", FIXED | {"init_scale": 1e-3, "gap_exponent": 5, "budget": 0.1}))
    assert r["status"] == "done" and r["metrics"]["damage_digits"] >= 10
    assert r["metrics"]["damage"] == pytest.approx(5.727851444390e-2, rel=1e-11)
    assert r["metrics"]["clean"] == pytest.approx(1.1842367161638e-3, rel=1e-12) and r["metrics"]["ratio"] > 40


def test_output_paths_are_checked_before_the_store_is_read(tmp_path, capsys):
    spec = tmp_path / "t.toml"
    spec.write_text('name = "t"\njob = "clean_limit"\n[fixed]\nhorizon = 7\nstate_dim = 10\nseed = 242\n'
                    '[grid]\ngap_exponent = [5]\ninit_scale = [1e-3]\n')
    assert main(["sweep", str(spec)]) == 0
    store = str(tmp_path / "t.sqlite")
    capsys.readouterr()
    assert main(["sweep", "export", store, "--out", str(tmp_path / "new" / "dir" / "t.csv")]) == 0
    assert (tmp_path / "new" / "dir" / "t.csv").read_text().startswith("point,")
    for out, message in (("", "out: the path is empty"), (str(tmp_path), "is a directory")):
        assert main(["sweep", "plot", store, "--x", "init_scale", "--color", "clean_error", "--out", out]) == 2
        assert message in capsys.readouterr().err


def test_processes_creating_one_store_at_once_all_open_it(tmp_path):
    """Four connections opening a new store at the same moment (its switch to WAL races): every one opens it,
    in each of 60 repetitions (without the retry on "database is locked" a few repetitions refused it)."""
    import threading


    failures = []
    for rep in range(60):
        path = tmp_path / f"s{rep}.sqlite"
        barrier = threading.Barrier(4)

        def opener():
            barrier.wait()
            try:
                Store(str(path)).close()
            except ValueError as exc:
                failures.append(str(exc))

        threads = [threading.Thread(target=opener) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failures == []
