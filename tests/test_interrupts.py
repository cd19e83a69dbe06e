"""Worker processes never outlive their command, and an interruption is one line.

The command runs in a session of its own (``start_new_session``), so every process it starts (the
CLI, its pool's workers, joblib's helpers) is found through the session id, field 6 of
``/proc/PID/stat``; a zombie (exited, not yet reaped) counts as gone. SIGINT, SIGTERM or SIGKILL
sent to the CLI alone, while its workers compute, must leave no process of the session after 10 s;
SIGINT and SIGTERM print one line (exit 130, 143); a ``--json`` file is never half-written.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ssmpoison.verify._workers import default_jobs, worker_pool, worker_setup

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; the kernel's parent-death signal")

# the clean flows end in this process within seconds; the integrated flows run for minutes, in a worker and in
# the command's own process (--jobs counts the processes computing, the command's included)
THEORY = ["reproduce", "--row", "theory", "--precision", "512", "--no-limits", "--jobs", "2"]
THEORY_WORKERS = min(2, default_jobs()) - 1  # --jobs 2 is capped at the CPUs
SEARCH = ["search", "--jobs", "2", "--budget", "400"]
PREVIOUS = '{"previous": "content"}\n'
GONE_WITHIN = 10.0  # seconds from the signal to the last process of the command gone


def _command() -> list[str]:
    script = Path(sys.executable).with_name("ssmpoison")  # the console script of this environment
    return [str(script)] if script.exists() else [sys.executable, "-m", "ssmpoison.verify.cli"]


def _session(sid: int) -> list[int]:
    """The running (not zombie) processes of session ``sid``."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()  # state, ppid, pgrp, session, ...
        if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
            pids.append(int(entry))
    return pids


def _interrupt(args, signum, *, group=False, helpers=0, again=None, tmp_path=None, workers=None):
    """Start ``ssmpoison ARGS`` in a new session, wait until its ``workers`` worker processes (default: two,
    capped at the CPUs) and ``helpers`` other processes run, send ``signum`` to the CLI
    (or to its whole process group, as a terminal's Ctrl-C does), once more after ``again`` seconds if
    given, and wait for every process to end.

    Returns:
        (exit status, stderr, seconds from the signal to the last process gone).
    """
    err = open(tmp_path / "stderr", "w+")
    proc = subprocess.Popen([*_command(), *args], start_new_session=True, stdout=subprocess.DEVNULL, stderr=err)
    try:
        if workers is None:
            workers = min(2, default_jobs())  # --jobs 2 is capped at the CPUs
        expected = 1 + workers + (helpers if workers > 1 else 0)
        started = time.monotonic()
        while len(_session(proc.pid)) < expected:
            assert proc.poll() is None, "the command ended before its workers started"
            assert time.monotonic() - started < 120, "the workers did not start"
            time.sleep(0.1)
        time.sleep(2.0)  # the workers are computing
        assert proc.poll() is None, "the command ended before the signal"
        sent = time.monotonic()
        (os.killpg if group else os.kill)(proc.pid, signum)
        if again is not None:
            time.sleep(again)
            try:
                (os.killpg if group else os.kill)(proc.pid, signum)
            except ProcessLookupError:  # already gone
                pass
        while (proc.poll() is None or _session(proc.pid)) and time.monotonic() - sent < 30:
            time.sleep(0.05)
        elapsed = time.monotonic() - sent
        left = _session(proc.pid)
    finally:
        for pid in _session(proc.pid):  # never leave a process behind, even when the test fails
            os.kill(pid, signal.SIGKILL)
        proc.wait()
        err.seek(0)
        stderr = err.read().replace("\r", "\n")
        err.close()
    assert not left, f"processes {left} still alive {elapsed:.1f} s after the signal"
    assert elapsed < GONE_WITHIN, f"the last process ended {elapsed:.1f} s after the signal"
    return proc.returncode, stderr, elapsed


def _one_line(stderr: str, line: str) -> None:
    assert "Traceback" not in stderr
    lines = [x.strip() for x in stderr.splitlines() if x.strip()]
    assert lines[-1] == line
    assert sum(1 for x in lines if "interrupted" in x or "terminated" in x) == 1


EXPECTED = {signal.SIGINT: (130, "ssmpoison: interrupted"), signal.SIGTERM: (143, "ssmpoison: terminated"),
            signal.SIGKILL: (-signal.SIGKILL, None)}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_a_signal_to_the_command_ends_its_workers_and_keeps_the_json_file(signum, tmp_path):
    target = tmp_path / "row.json"
    target.write_text(PREVIOUS)
    status, stderr, _ = _interrupt([*THEORY, "--json", str(target)], signum, tmp_path=tmp_path, workers=THEORY_WORKERS)
    code, line = EXPECTED[signum]
    assert status == code
    if line is not None:
        _one_line(stderr, line)
    assert target.read_text() == PREVIOUS  # the previous file intact
    assert not list(tmp_path.glob(".row.json.*.tmp"))  # and no temporary file left


def test_ctrl_c_on_the_terminal_prints_one_line_not_a_traceback_per_worker(tmp_path):
    status, stderr, _ = _interrupt(THEORY, signal.SIGINT, group=True, tmp_path=tmp_path, workers=THEORY_WORKERS)
    assert status == 130
    _one_line(stderr, "ssmpoison: interrupted")


@pytest.mark.parametrize("again", [0.0, 0.01])
def test_ctrl_c_pressed_twice_still_prints_one_line_and_ends_everything(again, tmp_path):
    status, stderr, _ = _interrupt(THEORY, signal.SIGINT, group=True, again=again, tmp_path=tmp_path, workers=THEORY_WORKERS)
    assert status == 130
    _one_line(stderr, "ssmpoison: interrupted")


@pytest.mark.slow
@pytest.mark.parametrize("again", [None, 0.01], ids=["once", "twice"])
@pytest.mark.parametrize("group", [False, True], ids=["command", "group"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_the_search_joblib_workers_end_with_the_command(signum, group, again, tmp_path):
    # joblib's loky workers and its two resource trackers
    status, stderr, _ = _interrupt(SEARCH, signum, group=group, helpers=2, again=again, tmp_path=tmp_path)
    code, line = EXPECTED[signum]
    assert status == code
    if line is not None:
        _one_line(stderr, line)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_a_signal_to_the_whole_group_ends_every_process(signum, tmp_path):
    status, _, _ = _interrupt(THEORY, signum, group=True, tmp_path=tmp_path, workers=THEORY_WORKERS)
    assert status == EXPECTED[signum][0]


# -- the pool itself ------------------------------------------------------------------------------
def _worker_state():
    import ctypes

    death = ctypes.c_int(0)
    ctypes.CDLL(None, use_errno=True).prctl(2, ctypes.byref(death), 0, 0, 0)  # PR_GET_PDEATHSIG
    return signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM), death.value


def test_workers_ignore_sigint_and_are_killed_when_their_parent_dies():
    with worker_pool(2) as pool:
        state = pool.submit(_worker_state).result()
    assert state == (signal.SIG_IGN, signal.SIG_DFL, signal.SIGKILL)


def test_a_worker_whose_parent_already_died_exits_at_once():
    gone = subprocess.Popen(["true"])
    gone.wait()  # a process id that no longer runs
    fork = multiprocessing.get_context("fork")
    orphan = fork.Process(target=worker_setup, args=(gone.pid,))
    orphan.start()
    orphan.join(30)
    child = fork.Process(target=worker_setup, args=(os.getpid(),))
    child.start()
    child.join(30)
    assert (orphan.exitcode, child.exitcode) == (1, 0)


def test_a_raising_block_terminates_the_workers_instead_of_waiting():
    before = set(multiprocessing.active_children())
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with worker_pool(2) as pool:
            futures = [pool.submit(time.sleep, 600) for _ in range(4)]
            workers = set(multiprocessing.active_children()) - before
            time.sleep(0.5)
            raise KeyboardInterrupt
    assert time.monotonic() - started < 10
    # Process.is_alive() cannot be trusted here: the executor's manager thread may reap a worker first, and
    # the Process object then never learns its exit code; the kernel's table says whether it still runs
    assert workers and not any(_running(p.pid) for p in workers)
    assert all(f.cancelled() or f.done() for f in futures)


def _running(pid: int) -> bool:
    """The process exists and is not a zombie (``/proc/PID/stat``'s state)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# -- the command line's handlers ------------------------------------------------------------------
def test_sigterm_takes_the_ctrl_c_path_once_and_the_handlers_are_restored():
    from ssmpoison.verify.cli import _interruptible, _Terminated

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(_Terminated):
        with _interruptible(keep_ignoring=False):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # interrupted at once
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    with pytest.raises(KeyboardInterrupt) as info:
        with _interruptible(keep_ignoring=False):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
    assert type(info.value) is KeyboardInterrupt
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_after_the_first_signal_the_next_ones_are_ignored_and_errors_report_the_interruption():
    from ssmpoison.verify.cli import _interruptible

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with _interruptible(keep_ignoring=False):
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)
            except KeyboardInterrupt:
                os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C during the clean-up: ignored
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.1)
                raise ImportError("initialization failed")  # e.g. an import cut short by the first one
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_a_normal_in_process_run_leaves_the_handlers_as_they_were(tmp_path):
    from ssmpoison.verify.cli import main

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert main(["derive", "--horizon", "3", "--state-dim", "2", "--json", str(tmp_path / "d.json")]) == 0
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
