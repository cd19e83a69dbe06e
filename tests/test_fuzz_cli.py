"""Fuzzing the command line: Hypothesis draws argument vectors for every subcommand and runs them in-process.

Every invocation must end with exit status 0, 1 or 2 (never 3, the internal error), print no
traceback, refuse bad input with exactly one line on stderr that names what is wrong, leave no
file behind when it refuses, and finish within its budget: each vector carries ``--time-limit``
(the wall-clock budget after which runs end with status ``time_limit``) and a hard alarm
catches anything that ignores it. The default run draws 60 vectors; the ``slow`` test
draws at least 2000.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssmpoison.verify.cli import main

#: hard bound on one invocation (seconds): the vectors' --time-limit is far below it
HARD_TIMEOUT = 90
#: invocations by (subcommand, exit status), for the long profile's summary
_TALLY: Counter = Counter()
#: a refusal comes before any work: within this many seconds (generous for a loaded machine)
REFUSAL_SECONDS = 10

# value pools: valid small values (so that runs are short), boundary values, and malformed ones
_BAD_INTS = ["-3", "0", "1_0", "\u0663", "1e3", "2.5", "", " ", "abc", "99999999999999999999", "+7", "0x10", "nan"]
_BAD_REALS = ["nan", "inf", "-inf", "", "1_0", "\u0663", "0", "-1", "1e400", "1e-400", "1/0", "3/0", "abc", "1e308",
              "1e-320"]
_PATH_KINDS = ["file", "dash", "empty", "missing_dir", "proc", "directory", "dev_full", "existing_file"]


def _ints(valid):
    return st.sampled_from([str(v) for v in valid] + _BAD_INTS)


def _reals(valid):
    return st.sampled_from([str(v) for v in valid] + _BAD_REALS)


def _options(pairs: dict[str, st.SearchStrategy]) -> st.SearchStrategy:
    """A list of ``[--opt, value]`` tokens: a subset of the options, some repeated, in any order."""
    def tokens(option):
        value = pairs[option]
        if value is None:  # a flag
            return st.just([option])
        return value.map(lambda v: [option, v])

    one = st.sampled_from(sorted(pairs)).flatmap(tokens)
    return st.lists(one, max_size=6).map(lambda groups: [tok for g in groups for tok in g])


_COMMON_RUN = {"--time-limit": st.sampled_from(["2", "0", "-1", "nan", "abc", "1/2"])}

_SUBCOMMANDS = {
    "derive": {
        "--horizon": _ints([2, 3, 4, 5, 33, 100000]),
        "--state-dim": _ints([1, 2, 3, 17, 100000]),
        "--samples": _ints([1, 2, 9]),
        "--train": st.sampled_from(["a", "abc", "b", "", "ABC"]),
        "--latex": None,
        # no --no-limits here: derive has no wall-clock budget (one SymPy computation), only its hard bounds
    },
    "reproduce": {
        "--row": st.sampled_from(["theory", "beyond", "nonlinear", "all", "nope", ""]),
        "--horizon": _ints([7, 9, 6, 10, 3, 65]),
        "--state-dim": _ints([2, 3, 65]),
        "--seeds": st.sampled_from(["242", "1,2", "242,242", "-1", ",", "1,\u0663", ""]),
        "--init-scale": _reals([0.001, 0.01, 0.3]),
        "--gap-exponent": _reals([1, 2, 5, -5, 100]),
        "--extrapolate-to": _ints([10, 20, 10001]),
        "--draws": _ints([0, 1, 65]),
        "--epochs": _ints([10, 100, 10**8]),
        "--precision": _ints([53, 64, 80, 129, 500]),
        "--jobs": st.sampled_from(["1", "2", "1000", "auto", "0", "-2", "x"]),
        "--no-limits": None,
        "--config": st.sampled_from(["missing.toml", "bad.toml", "empty.toml", "good.toml"]),
    },
    "check": {
        "--row": st.sampled_from(["theory", "beyond", "nope"]),
        "--horizon": _ints([3, 4, 5, 7, 9, 65]),
        "--state-dim": _ints([2, 3, 4, 65]),
        "--extrapolate-to": _ints([1, 10, 20, 10001]),
        "--init-scale": _reals([0.001, 0.01, 0.1, 0.5]),
        "--gap-exponent": _reals([0, 1, 2, 5]),
        "--seed": _ints([0, 242, 2**32]),
        "--init": st.sampled_from(["0.001,0.0005,0.0002", "0.01,0.01,0.01", "0,0,0", "1/100,1/200,1/400", "0.1,0.05",
                                   "1e308,1,1", "1e-320,1e-321,1e-322", "nan,1,2", ",,", "", "0.3,-0.2,0.1"]),
        "--precision": _ints([53, 64, 80, 129]),
        "--tolerance": _reals([0.01, 1, 1e-12]),
        "--no-limits": None,
    },
    "dynamics": {
        "--row": st.sampled_from(["theory", "beyond", "nope"]),
        "--horizon": _ints([7, 9, 6, 8]),
        "--seed": _ints([0, 242, 2**32]),
        "--condition": st.sampled_from(["clean", "poisoned", "both", "", "x"]),
        "--extrapolate-to": _ints([5, 20, 10001]),
        "--stem": st.sampled_from(["run", "", ".hidden", "a/b", "S" * 300, "\u0663x"]),
        "--out": st.sampled_from(["OUT", "", "PROC", "FILE"]),
    },
    "search": {
        "--budget": _ints([1, 2, 3, 5001]),
        "--seed": _ints([0, 1]),
        "--teacher-dim": _ints([1, 2, 3]),
        "--jobs": st.sampled_from(["1", "2", "1000", "0"]),
        "--no-limits": None,
    },
    "replay": {},
    "poison": {
        "--horizon": _ints([4, 5, 7, 65]),
        "--state-dim": _ints([2, 3, 10, 65]),
        "--seed": _ints([0, 242]),
        "--extrapolate-to": _ints([8, 20, 10001]),
        "--config": st.sampled_from(["missing.toml", "bad.toml", "empty.toml", "POISON_TOML"]),
        "--budget": _reals([0.01, 0.1, 1]),
        "--norm": st.sampled_from(["2", "inf", "1", ""]),
        "--non-special": None,
        "--target-error": _reals([0.01, 1e-9]),
        "--restarts": _ints([0, 1, 65]),
        "--train": st.sampled_from(["a", "abc", "b", ""]),
        "--max-steps": _ints([1, 100, 10**9]),
        "--evaluation-time": _reals([0.5, 5]),
        "--out": st.sampled_from(["OUT", "", "PROC", "FILE"]),
        "--no-limits": None,
    },
    "audit": {
        "--factor": _reals([2, 10]),
        "--defend": None,
        "--precision": _ints([53, 64, 113]),
        "--jobs": st.sampled_from(["1", "2", "1000", "0"]),
        "--max-steps": _ints([1, 100, 10**9]),
        "--no-limits": None,
    },
    "sweep run": {
        "--jobs": st.sampled_from(["1", "2", "1000", "0", "x"]),
        "--dask-local": st.sampled_from(["0", "-1", "x"]),  # a valid count starts a cluster: test_sweep does that
        "--scheduler": st.sampled_from(["tcp://127.0.0.1:1", "", "nonsense"]),
        "--store": st.sampled_from(["NEW_STORE", "PROC", "FILE", "DIR", ""]),
        "--resume": None,
    },
    "sweep plot": {
        "--sweep": st.sampled_from(["t", "nope", ""]),
        "--x": st.sampled_from(["gap_exponent", "seed", "nope", ""]),
        "--y": st.sampled_from(["gap_exponent", "init_scale", "nope"]),
        "--color": st.sampled_from(["clean_error", "speed", ""]),
        "--linear": None,
        "--out": st.sampled_from(["PNG", "", "PROC", "DIR"]),
    },
    "sweep export": {
        "--sweep": st.sampled_from(["t", "nope"]),
        "--format": st.sampled_from(["csv", "json", "xml", ""]),
        "--out": st.sampled_from(["CSV", "", "PROC", "DIR"]),
        "--timing": None,
    },
    "robust attack": {
        "--epsilon": _reals([0.1, 1]),
        "--norm": st.sampled_from(["inf", "2", "1", ""]),
        "--count": _ints([1, 2, 1001]),
        "--state-dim": _ints([1, 3, 65]),
        "--horizon": _ints([2, 5, 1001]),
        "--restarts": _ints([1, 3, 10001]),
        "--steps": _ints([0, 5, 10001]),
        "--seed": _ints([0, 1]),
        "--a": st.sampled_from(["1/2,-1/3", "0.5", "1.5,0.2", "nan", "", ",", "0.12,0.13,0.14"]),
        "--b": st.sampled_from(["1,2", "1", "nan,1"]),
        "--c": st.sampled_from(["1,2", "3,4,5"]),
        "--input": st.sampled_from(["1,2,3", "1", "1,0,1,0.5", ",".join(["0.7"] * 2000), "nan,1"]),
        "--target": _reals([1, -2]),
    },
    "robust train": {
        "--epsilon": st.sampled_from(["0", "0.01", "0,1e-3", "-1", "nan", ""]),
        "--norm": st.sampled_from(["inf", "2", "inf,2", "1", ""]),
        "--horizon": _ints([3, 4, 7, 5000]),
        "--state-dim": _ints([2, 3, 10, 65]),
        "--seed": _ints([0, 242]),
        "--init-scale": _reals([0.001, 0.3]),
        "--gap-exponent": _reals([1, 5]),
        "--extrapolate-to": _ints([5, 20]),
        "--no-limits": None,
    },
    "robust selective": {
        "--epsilon": _reals([0.1]),
        "--horizons": st.sampled_from(["5,10", "10", "5,1001", "", "a,b"]),
        "--gain": st.sampled_from(["0,3", "1", "nan", ""]),
        "--a": st.sampled_from(["-0.2,-1", "0.5", "nan", ""]),
        "--restarts": _ints([1, 3, 1001]),
        "--steps": _ints([0, 5, 10001]),
        "--seed": _ints([0]),
        "--figure": st.sampled_from(["PNG", "", "PROC_PNG", "DIR"]),
    },
    "realworld": {  # needs the optional extra (PyTorch): without it, every vector is refused with an install hint
        "--model": st.sampled_from(["s4d", "lru", "both", "x", ""]),
        "--seeds": st.sampled_from(["0", "0,1", "0,0", "-1", "", "99999999999999999999"]),
        "--budget": st.sampled_from(["0.05", "0.02,0.05", "1.5", "0", "nan", ""]),
        "--epsilon": _reals([0.25, 1]),
        "--regulariser": _reals([1, 10]),
        "--no-untargeted": None,
        "--tiny": None,
        "--out": st.sampled_from(["OUT", "", "PROC", "FILE"]),
    },
}

#: subcommands without a wall-clock budget (one bounded computation, or no computation)
_NO_TIME_LIMIT = {"derive", "sweep plot", "sweep export"}
#: positional arguments, as placeholders (materialised under the vector's directory)
_POSITIONALS = {
    "replay": ["REPLAY_GOOD", "REPLAY_BAD", "missing.json", "", "bad.toml"],
    "audit": ["AUDIT_GOOD", "AUDIT_RAGGED", "AUDIT_NO_LABELS", "AUDIT_MISLABELLED", "missing.json", "", "bad.toml"],
    "sweep run": ["SWEEP_GOOD", "SWEEP_BAD", "missing.toml", "empty.toml", ""],
    "sweep plot": ["STORE", "FILE", "missing.json", ""],
    "sweep export": ["STORE", "FILE", "missing.json", ""],
}


@st.composite
def argument_vectors(draw):
    """``(subcommand tokens, json path kind)``: a subcommand, its options, maybe ``--json`` and ``--time-limit``."""
    command = draw(st.sampled_from(sorted(_SUBCOMMANDS)))
    options = dict(_SUBCOMMANDS[command])
    if command not in _NO_TIME_LIMIT:
        options.update(_COMMON_RUN)
    argv = command.split() + draw(_options(options))
    if command in _POSITIONALS:
        argv.append(draw(st.sampled_from(_POSITIONALS[command])))
    if command == "dynamics" and draw(st.booleans()):
        argv += ["--horizon", "7", "--out", "OUT"]  # the required options, so that runs happen too
    if command == "derive" and draw(st.booleans()):
        argv += ["--horizon", draw(st.sampled_from(["3", "4"])), "--state-dim", "2"]
    if command == "poison" and draw(st.booleans()):
        argv += ["--horizon", "5", "--state-dim", "3", "--budget", draw(st.sampled_from(["0.1", "1"]))]
    if command == "sweep plot" and draw(st.booleans()):
        argv += ["--x", "gap_exponent", "--color", "clean_error", "--out", "PNG"]
    if command == "robust selective" and draw(st.booleans()):
        argv += ["--horizons", "5,10", "--restarts", "2", "--steps", "3"]
    json_kind = draw(st.sampled_from([None, *_PATH_KINDS]))
    if command not in _NO_TIME_LIMIT and "--time-limit" not in argv:
        argv += ["--time-limit", "2"]  # every run ends within the budget
    if draw(st.booleans()) and "--jobs" not in argv and command in ("reproduce", "search"):
        argv += ["--jobs", "1"]
    return argv, json_kind


def _materialise(argv: list[str], json_kind, root: Path) -> tuple[list[str], Path | None]:
    """Placeholders -> real paths under ``root``; returns the argv and the --json file (if a real new file)."""
    (root / "bad.toml").write_text("row = [unclosed\n")
    (root / "empty.toml").write_text("")
    (root / "good.toml").write_text('row = "theory"\nhorizon = 7\nstate_dim = 3\nseeds = [242]\n')
    (root / "FILE").write_text("x")
    (root / "REPLAY_BAD").write_text('{"counterexamples": [{"problem": {"horizon": -3}}]}')
    (root / "REPLAY_GOOD").write_text("[]")
    (root / "POISON_TOML").write_text('horizon = 5\nstate_dim = 3\nbudget = 0.5\n')
    (root / "AUDIT_GOOD").write_text(json.dumps(_AUDIT))
    (root / "AUDIT_RAGGED").write_text(json.dumps(dict(_AUDIT, inputs=[[1, 0, 0, 0, 0, 0], [0, 0, 0, 1, 0]])))
    (root / "AUDIT_NO_LABELS").write_text(json.dumps({k: v for k, v in _AUDIT.items() if k != "labels"}))
    (root / "AUDIT_MISLABELLED").write_text(json.dumps(dict(_AUDIT, labels=[1, 2])))
    (root / "SWEEP_GOOD").write_text(_SWEEP)
    (root / "SWEEP_BAD").write_text('name = "t"\njob = "nope"\n[grid]\nseed = [1]\n')
    shutil.copyfile(_prepared_store(), root / "STORE")
    names = {"OUT": str(root / "out"), "PROC": "/proc/ssmpoison-fuzz", "FILE": str(root / "FILE"), "DIR": str(root),
             "PNG": str(root / "fig.png"), "PROC_PNG": "/proc/ssmpoison-fuzz.png", "CSV": str(root / "points.csv"),
             "NEW_STORE": str(root / "new.sqlite")}
    for name in ("bad.toml", "empty.toml", "good.toml", "missing.toml", "missing.json", "REPLAY_BAD", "REPLAY_GOOD",
                 "POISON_TOML", "AUDIT_GOOD", "AUDIT_RAGGED", "AUDIT_NO_LABELS", "AUDIT_MISLABELLED", "SWEEP_GOOD",
                 "SWEEP_BAD", "STORE"):
        names[name] = str(root / name)
    out = [names.get(tok, tok) for tok in argv]
    json_file = None
    if json_kind is not None:
        path = {
            "file": str(root / "result.json"),
            "dash": "-",
            "empty": "",
            "missing_dir": str(root / "no" / "such" / "dir" / "r.json"),
            "proc": "/proc/ssmpoison-fuzz.json",
            "directory": str(root),
            "dev_full": "/dev/full",
            "existing_file": str(root / "FILE"),
        }[json_kind]
        out += ["--json", path]
        if json_kind == "file":
            json_file = root / "result.json"
    return out, json_file


#: a small poisoned training set (H = 6, D = 3: the Theorem's construction {e_0, e_4} with its teacher)
_AUDIT = {"inputs": [[1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 0]], "labels": [1, 1], "teacher": {"entries": [1]},
          "horizon": 6, "state_dim": 3, "extrapolate_to": 12, "init": [0.001, 0.0009, 0.0002]}
#: a two-point sweep (seconds)
_SWEEP = ('name = "t"\njob = "clean_limit"\n[fixed]\nhorizon = 7\nstate_dim = 10\nseed = 242\ninit_scale = 1e-3\n'
          '[grid]\ngap_exponent = [4, 5]\n')
_STORE: list[Path] = []


def _prepared_store() -> Path:
    """A results store of :data:`_SWEEP`, made once per test process (vectors get a copy)."""
    if not _STORE:
        root = Path(tempfile.mkdtemp(prefix="ssmpoison-fuzz-store-"))
        (root / "t.toml").write_text(_SWEEP)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            assert main(["sweep", str(root / "t.toml"), "--store", str(root / "t.sqlite")]) == 0
        _STORE.append(root / "t.sqlite")
    return _STORE[0]


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def _invoke(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` in-process: (exit status, stdout, stderr), a SystemExit from argparse included."""
    out, err = io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HARD_TIMEOUT)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return code, out.getvalue(), err.getvalue()


def _check_one(argv: list[str], json_kind) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        real, json_file = _materialise(argv, json_kind, root)
        before = {p.name for p in root.iterdir()}
        start = time.perf_counter()
        cwd = os.getcwd()
        os.chdir(root)  # a file written to the working directory (an empty path's '.png') shows up here
        try:
            code, out, err = _invoke(real)
        finally:
            os.chdir(cwd)
        seconds = time.perf_counter() - start
        nameless = [p.name for p in root.iterdir() if p.name in (".png", ".json", ".csv", ".sqlite")]
        assert not nameless, f"{real} wrote a file without a name: {nameless}"
        _TALLY[(" ".join(real[:2]) if real[:1] in (["sweep"], ["robust"]) else (real[0] if real else ""), code)] += 1
        assert code in (0, 1, 2), f"exit {code} for {real}: {err[-500:]}"
        assert code != 2 or seconds < REFUSAL_SECONDS, f"refused only after {seconds:.1f} s (after work?): {real}: {err}"
        assert "Traceback" not in err and "Traceback" not in out, f"traceback for {real}: {err[-2000:]}"
        if code == 2 and "usage:" not in err:  # argparse's own usage errors print the usage first
            lines = [line for line in err.splitlines() if line.strip() and "%|" not in line and "\r" not in line]
            assert len(lines) == 1, f"refusal must be one line for {real}: {err!r}"
            assert "error:" in lines[0], f"refusal without 'error:' for {real}: {lines[0]!r}"
        if code == 2:
            after = {p.name for p in root.iterdir()}
            assert after == before, f"files left behind on refusal of {real}: {sorted(after - before)}"
            if json_file is not None:
                assert not json_file.exists()
        assert not [p for p in root.rglob(".*.tmp")], f"temporary files left by {real}"


_SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)


@settings(max_examples=60, **_SETTINGS)
@given(argument_vectors())
def test_cli_fuzz(vector):
    """A few dozen generated invocations of every subcommand: exit 0/1/2, one-line refusals, nothing left behind."""
    _check_one(*vector)


@settings(max_examples=2000, **_SETTINGS)
@given(argument_vectors())
def _fuzz_long(vector):
    _check_one(*vector)


@pytest.mark.slow
def test_cli_fuzz_long(capsys):
    """The long profile: at least 2000 generated invocations, tallied by subcommand and exit status."""
    _TALLY.clear()
    _fuzz_long()
    assert sum(_TALLY.values()) >= 2000
    assert not [key for key in _TALLY if key[1] not in (0, 1, 2)]
    with capsys.disabled():
        print(f"\n{sum(_TALLY.values())} invocations; by (subcommand, exit): {dict(sorted(_TALLY.items()))}")


def test_unknown_and_empty_vectors():
    """No subcommand, an unknown one, and --help: 2, 2 and 0, without a traceback."""
    for argv, expected in (([], 2), (["frobnicate"], 2), (["check", "--help"], 0), (["--version"], 0)):
        code, out, err = _invoke(argv)
        assert code == expected, (argv, code, err)
        assert "Traceback" not in err
