"""Per-point overhead of the sweep backends against calling the job function in a loop.

For jobs that busy-wait 0.1 s and 2 s of CPU, in one process: the plain loop (the baseline), then
``run_unordered`` on joblib with 2 processes and on a local Dask cluster of 2 workers (start-up
included, and separately the cluster's start-up), and the results store's cost of writing one
point. The overhead per point is ``wall * workers / points - job seconds``: the time a worker
spends per point beyond the job itself. Run with ``python benchmarks/sweep.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from ssmpoison.verify._parallel import Backend, run_unordered
from ssmpoison.verify._store import Store


def busy(seconds: float) -> float:
    """Spin the CPU for ``seconds`` of process time and return it (a stand-in job)."""
    t0 = time.process_time()
    x = 0
    while time.process_time() - t0 < seconds:
        x += 1
    return seconds


def measure(backend: Backend | None, seconds: float, points: int) -> float:
    t0 = time.perf_counter()
    if backend is None:
        for _ in range(points):
            busy(seconds)
    else:
        assert sum(1 for _ in run_unordered(busy, [seconds] * points, backend)) == points
    return time.perf_counter() - t0


def store_write_seconds(points: int = 200) -> float:
    with tempfile.TemporaryDirectory() as d, Store(os.path.join(d, "s.sqlite")) as store:
        params = {"x": 0}
        store.open_sweep("b", "busy", {"b": 1}, points, params, ("y",))
        t0 = time.perf_counter()
        for i in range(points):
            store.put("b", i, str(i), {"x": i}, {"status": "done", "metrics": {"y": 1.0}, "reason": "", "seconds": 0.0}, "f")
        return (time.perf_counter() - t0) / points


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer points")
    args = p.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    t0 = time.perf_counter()
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster):
        pass
    print(f"Dask local cluster of 2 workers: start and stop {time.perf_counter() - t0:.2f} s")
    for seconds, points in ((0.1, 20 if args.quick else 40), (2.0, 4 if args.quick else 8)):
        loop = measure(None, seconds, points)
        print(f"\njobs of {seconds:g} s, {points} points: loop {loop:.2f} s ({loop / points - seconds:+.4f} s a point)")
        for backend in (Backend("joblib", 2), Backend("dask", dask_local=2)):
            wall = measure(backend, seconds, points)
            overhead = wall * 2 / points - seconds
            print(f"  {backend.label:16s} {wall:7.2f} s   speed-up x{loop / wall:.2f}   overhead {overhead:+.4f} s a point")
    print(f"\nresults store: {store_write_seconds() * 1e3:.2f} ms to write one point (its own transaction, WAL)")


if __name__ == "__main__":
    main()
