"""Worker processes for independent runs (seeds, flows) on one machine.

:func:`worker_pool` is a :class:`concurrent.futures.ProcessPoolExecutor` whose workers are
forked where the platform allows it: they start with every module already imported, where a
freshly spawned interpreter (joblib's default ``loky`` backend) first imports NumPy, SymPy and
gmpy2 again. Elsewhere (no ``fork``) the platform's default start method is used. Results do not
depend on the number of workers: every run is computed by the same deterministic code. (A sweep
that outgrows one machine goes through joblib instead, whose backends include Dask.)
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

__all__ = ["worker_pool", "default_jobs", "capped_jobs"]


def default_jobs() -> int:
    """The default number of worker processes.

    Returns:
        The number of CPUs this process may use (its affinity set where the platform has one), at least 1.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def capped_jobs(jobs: int, warn=None) -> int:
    """``jobs`` capped at :func:`default_jobs`: more processes than CPUs only compete for them.

    Arguments:
        jobs: the requested number of worker processes (>= 1).
        warn: called with one line when the request is capped (e.g. the command line's stderr).

    Returns:
        ``min(jobs, default_jobs())``.
    """
    cores = default_jobs()
    if jobs > cores:
        if warn is not None:
            warn(f"jobs = {jobs} capped at the {cores} CPUs this process may use")
        return cores
    return jobs


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """A process pool for independent runs.

    Arguments:
        workers: the number of processes (>= 1).

    Returns:
        A :class:`concurrent.futures.ProcessPoolExecutor` of ``workers`` processes, forked where available.
    """
    if "fork" in multiprocessing.get_all_start_methods():
        return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))
    return ProcessPoolExecutor(max_workers=workers)  # pragma: no cover - platforms without fork
