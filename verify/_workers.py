"""Worker processes for independent runs (seeds, flows) on one machine.

:func:`worker_pool` is a :class:`concurrent.futures.ProcessPoolExecutor` whose workers are
forked where the platform allows it: they start with every module already imported, where a
freshly spawned interpreter (joblib's default ``loky`` backend) first imports NumPy, SymPy and
gmpy2 again. Elsewhere (no ``fork``) the platform's default start method is used. Results do not
depend on the number of workers: every run is computed by the same deterministic code. (Many independent
jobs — a sweep, the search's screen — go through :mod:`ssmpoison.verify._parallel` instead: joblib
processes started here, or Dask distributed.)

Workers never outlive their command. Each one starts in :func:`worker_setup`: it ignores SIGINT
(a terminal's Ctrl-C reaches the whole process group; the parent alone handles it and stops the
workers), restores the default action of SIGTERM, and on Linux asks the kernel for SIGKILL when
its parent dies (``PR_SET_PDEATHSIG``), so that even a SIGKILL of the parent ends every worker at
once. When the code inside a :func:`worker_pool` block raises (``KeyboardInterrupt``, an error),
the pool cancels the queued runs and terminates its workers instead of waiting for the running ones.
joblib pools get the same start through :func:`joblib_worker_args`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor

__all__ = ["worker_pool", "default_jobs", "capped_jobs", "worker_setup", "joblib_worker_args"]

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def default_jobs() -> int:
    """The default number of worker processes.

    Returns:
        The number of CPUs this process may use (its affinity set where the platform has one), at least 1.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def capped_jobs(jobs: int, warn=None, name: str = "jobs") -> int:
    """``jobs`` capped at :func:`default_jobs`: more processes than CPUs only compete for them.

    Arguments:
        jobs: the requested number of worker processes (>= 1).
        warn: called with one line when the request is capped (e.g. the command line's stderr).
        name: the option's name in that line.

    Returns:
        ``min(jobs, default_jobs())``.
    """
    cores = default_jobs()
    if jobs > cores:
        if warn is not None:
            warn(f"{name} = {jobs} capped at the {cores} CPUs this process may use")
        return cores
    return jobs


def _parent_death_signal(signum: int) -> bool:
    """Ask the kernel to send ``signum`` to this process when its parent exits (Linux only).

    Returns:
        Whether the request was accepted (``False`` on other platforms, or when ``prctl`` fails).
    """
    if not sys.platform.startswith("linux"):
        return False  # pragma: no cover - not Linux
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):  # pragma: no cover - no prctl in this libc
        return False


def _process_running(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (a zombie, awaiting its parent, has exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return True  # no /proc: the process exists
    return stat[stat.rfind(")") + 2:][:1] not in ("Z", "X")


def worker_setup(parent_pid: int) -> None:
    """The start of every worker process (a pool's ``initializer``).

    SIGINT is ignored (the parent stops the workers), SIGTERM gets its default action back (a forked
    worker inherits the parent's handlers), and on Linux the worker is killed by SIGKILL as soon as
    its parent exits. If the parent has already exited when this runs (it died between starting the
    worker and this call, so the request above came too late), the worker exits at once.

    Arguments:
        parent_pid: the process id of the process that created the pool.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent_pid and not _process_running(parent_pid):
        os._exit(1)


def joblib_worker_args() -> dict:
    """Keyword arguments for :class:`joblib.Parallel` that start its workers with :func:`worker_setup`.

    Returns:
        ``{"initializer": worker_setup, "initargs": (this process's id,)}``: joblib passes them to
        its process backends (``loky``, ``multiprocessing``); the others ignore them.
    """
    return {"initializer": worker_setup, "initargs": (os.getpid(),)}


class _WorkerPool(ProcessPoolExecutor):
    """A :class:`ProcessPoolExecutor` that, when its ``with`` block raises, terminates its workers."""

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.shutdown(wait=True)
        else:
            self.terminate()
        return False

    def terminate(self, grace: float = 2.0) -> None:
        """Cancel the queued runs and end every worker: SIGTERM, then SIGKILL after ``grace`` seconds.

        When this returns, every future of the pool is settled: cancelled, or done (the runs that were
        running fail with :class:`concurrent.futures.process.BrokenProcessPool`).

        A second SIGINT or SIGTERM (Ctrl-C pressed again) waits until the workers are gone.

        Arguments:
            grace: seconds a worker is given to exit after SIGTERM.
        """
        with _signals_deferred():
            processes = list((self._processes or {}).values())
            self.shutdown(wait=False, cancel_futures=True)
            # the executor's manager thread may still change its table: take what it holds now as well
            processes += [p for p in list((self._processes or {}).values()) if p not in processes]
            for p in processes:
                if p.exitcode is None:
                    p.terminate()
            for p in processes:
                p.join(grace)
                if p.exitcode is None:  # pragma: no cover - a worker that ignores SIGTERM
                    p.kill()
                    p.join()
            # the manager thread marks the runs that were running as failed (BrokenProcessPool) once it
            # sees their workers gone; wait for it, so that every future is settled when this returns
            manager = getattr(self, "_executor_manager_thread", None)
            if manager is not None and manager.is_alive():
                manager.join(grace)


@contextlib.contextmanager
def _signals_deferred():
    """A SIGINT or SIGTERM received while the block runs is acted on (by its previous handler) when it ends.

    Only the main thread can hold signals this way; elsewhere the block runs unchanged.
    """
    received: list[int] = []
    previous = {}
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda s, frame: received.append(s))
    except ValueError:  # not the main thread
        pass
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        if received:
            signal.raise_signal(received[0])


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """A process pool for independent runs, whose workers never outlive the command.

    Every worker starts in :func:`worker_setup` (ignores SIGINT; on Linux killed when this process
    exits). Used as a context manager, the pool waits for its runs when the block ends normally, and
    cancels the queued runs and terminates the workers when the block raises (``KeyboardInterrupt``
    included). The thread that creates the pool must outlive it: on Linux the kernel signals a
    worker's death when the thread that started it exits.

    Arguments:
        workers: the number of processes (>= 1).

    Returns:
        A :class:`concurrent.futures.ProcessPoolExecutor` of ``workers`` processes, forked where available.
    """
    kwargs = {"max_workers": workers, "initializer": worker_setup, "initargs": (os.getpid(),)}
    if "fork" in multiprocessing.get_all_start_methods():
        return _WorkerPool(mp_context=multiprocessing.get_context("fork"), **kwargs)
    return _WorkerPool(**kwargs)  # pragma: no cover - platforms without fork
