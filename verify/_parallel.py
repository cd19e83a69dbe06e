"""One way to run many independent jobs: in this process, in joblib worker processes, or on Dask.

A :class:`Backend` is a small validated value (``serial``, ``joblib`` with a number of processes,
or ``dask`` with a scheduler address or a local cluster of N workers); :func:`run_unordered` maps a
picklable function over a list of arguments on it and yields ``(index, result)`` pairs as the jobs
finish, so that the caller can store each result at once; :func:`run_ordered` yields the results in
input order. A job's result depends only on its arguments, never on the backend or the order in
which the jobs finish.

joblib's worker processes start in :func:`ssmpoison.verify._workers.worker_setup` (they ignore
SIGINT and die with the command); closing the generator (an interrupt, an error in the caller)
stops them. Dask is imported only when a Dask backend is used (the optional extra ``dask``): a
local cluster (``dask_local=N``, one thread per worker process) is started and closed here; with
``scheduler="tcp://host:port"`` the jobs go to the workers of an existing cluster (``dask scheduler``
and ``dask worker``, or dask-jobqueue on a batch system), which must have this package installed.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

from ssmpoison.theory._validation import require_int

__all__ = ["Backend", "run_unordered", "run_ordered"]

_KINDS = ("serial", "joblib", "dask")


@dataclass(frozen=True)
class Backend:
    """Where the jobs run.

    Arguments:
        kind: ``"serial"`` (this process, in order), ``"joblib"`` (``jobs`` worker processes) or
            ``"dask"`` (Dask distributed).
        jobs: the number of joblib worker processes (``>= 1``; ``1`` runs in this process).
        scheduler: for ``"dask"``: the address of a running scheduler (``tcp://host:port``), or ``None``.
        dask_local: for ``"dask"`` without ``scheduler``: the number of worker processes of a local cluster.

    Raises:
        ValueError: naming the parameter: an unknown kind, ``jobs`` or ``dask_local`` below 1, or a
            Dask backend with neither (or both) of ``scheduler`` and ``dask_local``.
    """

    kind: str = "serial"
    jobs: int = 1
    scheduler: str | None = None
    dask_local: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"backend must be one of {', '.join(_KINDS)}, got {self.kind!r}")
        object.__setattr__(self, "jobs", require_int("jobs", self.jobs, minimum=1))
        if self.kind == "dask":
            if (self.scheduler is None) == (self.dask_local is None):
                raise ValueError("dask backend: give exactly one of scheduler (an address) and dask_local (a worker count)")
            if self.dask_local is not None:
                object.__setattr__(self, "dask_local", require_int("dask_local", self.dask_local, minimum=1))
            elif not isinstance(self.scheduler, str) or not self.scheduler.strip():
                raise ValueError(f"scheduler must be an address such as tcp://127.0.0.1:8786, got {self.scheduler!r}")
        elif self.scheduler is not None or self.dask_local is not None:
            raise ValueError(f"scheduler and dask_local belong to the dask backend, not {self.kind!r}")

    def probe(self) -> None:
        """Check, before any work, that the backend can start: Dask is installed, the scheduler answers.

        Raises:
            ValueError: naming ``scheduler`` (no TCP connection to its host and port within 5 s, or
                not a ``tcp://host:port`` address) or the Dask extra (not installed).
        """
        if self.kind != "dask":
            return
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise ValueError("the dask backend needs Dask distributed: pip install 'ssmpoison[dask]'") from None
        if self.scheduler is None:
            return
        import socket
        from urllib.parse import urlsplit

        parts = urlsplit(self.scheduler if "://" in self.scheduler else f"tcp://{self.scheduler}")
        try:
            host, port = parts.hostname, parts.port
        except ValueError:
            host = port = None
        if parts.scheme != "tcp" or not host or not port:
            raise ValueError(f"scheduler must be an address such as tcp://127.0.0.1:8786, got {self.scheduler!r}")
        try:
            socket.create_connection((host, port), timeout=5).close()
        except OSError as exc:
            raise ValueError(f"scheduler: cannot reach {self.scheduler!r} ({exc.strerror or exc})") from None

    @property
    def label(self) -> str:
        """A short description (``serial``, ``joblib x2``, ``dask local x2``, ``dask tcp://…``)."""
        if self.kind == "joblib":
            return f"joblib x{self.jobs}"
        if self.kind == "dask":
            return f"dask local x{self.dask_local}" if self.dask_local else f"dask {self.scheduler}"
        return "serial"


def run_unordered(fn, args: list, backend: Backend = Backend()):
    """Run ``fn(a)`` for every ``a`` of ``args``; yield ``(index, result)`` as each job finishes.

    Arguments:
        fn: a module-level (picklable) function of one argument.
        args: the arguments, one job each.
        backend: where the jobs run.

    Yields:
        ``(i, fn(args[i]))`` in the order the jobs finish (input order for the serial backend). An
        exception raised by a job is raised here; closing the generator stops the remaining jobs.
    """
    if not args:
        return
    if backend.kind == "serial" or (backend.kind == "joblib" and backend.jobs == 1):
        for i, a in enumerate(args):
            yield i, fn(a)
    elif backend.kind == "joblib":
        yield from _joblib(fn, args, backend.jobs, "generator_unordered")
    else:
        yield from _dask(fn, args, backend)


def run_ordered(fn, args: list, backend: Backend = Backend()):
    """Run ``fn(a)`` for every ``a`` of ``args``; yield the results in input order.

    Arguments:
        fn: a module-level (picklable) function of one argument.
        args: the arguments.
        backend: where the jobs run.

    Yields:
        ``fn(args[0])``, ``fn(args[1])``, …; a result that finishes early waits for its predecessors.
    """
    if backend.kind == "joblib" and backend.jobs > 1:
        yield from (r for _, r in _joblib(fn, args, backend.jobs, "generator"))
        return
    pending, nxt = {}, 0
    for i, r in run_unordered(fn, args, backend):
        pending[i] = r
        while nxt in pending:
            yield pending.pop(nxt)
            nxt += 1


def _indexed(fn, i, a):
    return i, fn(a)


def _joblib(fn, args, jobs: int, order: str):
    from joblib import Parallel, delayed

    from ssmpoison.verify._workers import joblib_worker_args

    # the workers start in worker_setup: they ignore SIGINT and die with this process
    outcomes = Parallel(n_jobs=jobs, return_as=order, **joblib_worker_args())(
        delayed(_indexed)(fn, i, a) for i, a in enumerate(args))
    try:
        yield from outcomes
    finally:  # KeyboardInterrupt, an error or an early close: closing the generator makes joblib stop its workers
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            outcomes.close()


def _dask(fn, args, backend: Backend):
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ValueError("the dask backend needs Dask distributed: pip install 'ssmpoison[dask]'") from None
    with contextlib.ExitStack() as stack:
        if backend.dask_local is not None:
            cluster = stack.enter_context(LocalCluster(n_workers=backend.dask_local, threads_per_worker=1,
                                                       processes=True, dashboard_address=None))
            client = stack.enter_context(Client(cluster))
        else:
            try:
                client = stack.enter_context(Client(backend.scheduler, timeout="10s"))
            except OSError as exc:
                raise ValueError(f"scheduler: cannot reach {backend.scheduler!r} ({exc})") from None
        futures = client.map(_indexed, [fn] * len(args), range(len(args)), args, pure=False)
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            client.cancel(futures)
