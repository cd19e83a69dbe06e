"""Benchmark: the theory row (16 flows) — our default path against two baselines, in one process.

Baselines, written here from their description (note 00 §6, §8):

* **published** — SciPy ``odeint`` (LSODA, default tolerances, step cap lifted) to the paper's
  fixed final times (1e11 / 1e4 at H = 7, 1e13 / 1e7 at H = 9, without / with u†);
* **careful** — ``solve_ivp`` LSODA with the analytic Jacobian, rtol 1e-13, atol 1e-30 and a
  terminal event at training loss 1e-30.

Speed (always printed first): ``ssmpoison reproduce --row theory`` as a user runs it (a fresh
process, start-up included, its default workers, Python's bytecode cache on: an environment's
``PYTHONDONTWRITEBYTECODE`` is removed for it, and the command with it kept is timed once, apart), by default and with ``--precision 128``, each
timed right after the careful baseline in this process, with the machine's other core idle
("quiet") and with it running a busy loop ("loaded"); the ratio careful / ours of each pair is
printed with the load average at the time, in wall and in CPU time (on a shared machine the CPU
ratio is the one to read). "ours" is timed with the reference path forced
(``SSMPOISON_ENGINE=reference``), with heyoka's kernels alone (``SSMPOISON_ENGINE=heyoka``, verify/_compiled.py)
and with the default compiled engine (the native step loop of verify/_native.py for the single flows at
53 and 64 bits, heyoka's kernels elsewhere), its disk cache warm; the compiled engine's cold start (an
empty cache: the native library and the kernels built) is timed once, apart.

Digits (unless ``--no-digits``): for each method the wall time, the ratio to ours, and the correct
significant digits of each run's extrapolation error are printed, measured against high-precision
values: the exact oracle at 256 bits for clean runs, one run of our engine at ``--reference-bits``
(default 100) for the poisoned ones (100-bit runs of two integrators agree to 25 digits there).

Usage: ``python benchmarks/theory_row.py [--horizon 7] [--reference-bits 100] [--precision default --precision 128]
[--load quiet --load loaded] [--engine reference --engine heyoka --engine compiled] [--repeats 1] [--no-digits]``
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import mpmath
import numpy as np
from scipy.integrate import odeint, solve_ivp

from ssmpoison.theory import extrapolation_error
from ssmpoison.verify import published_setting, row_model
from ssmpoison.verify import kernels
from ssmpoison.theory import clean_limit
from ssmpoison.verify._certified_flow import oracle_applies
from ssmpoison.verify._certify import correct_digits, to_mpf
from ssmpoison.verify import FlowOptions, run_flow
from ssmpoison.verify import run_theory_row, theory_row_problems


def _rhs_and_jac(problem):
    ts = problem.training_set
    U = np.array(ts.inputs, dtype=float)
    y = np.array(ts.labels, dtype=float)
    D = problem.state_dim
    one = np.ones(D)
    N = ts.samples

    def rhs(a, t=None):
        return kernels.neg_grad_a(a, one, one, U, y)

    def jac(a):
        d, G = kernels.jacobian_a(a, one, one, U, y)
        return np.diag(d) - (2.0 / N) * G.T @ G

    def loss(a):
        return float(kernels.loss(a, one, one, U, y))

    return rhs, jac, loss


def published_method(problem, horizon, poisoned):
    rhs, _, _ = _rhs_and_jac(problem)
    cfg = published_setting("theory", horizon)
    t_end = cfg.final_time_poisoned if poisoned else cfg.final_time_clean
    # default tolerances; the step cap is lifted (the paper's script output on a time grid, so its
    # per-interval cap of 500 steps never bound; with a single interval it would)
    sol = odeint(rhs, np.array(problem.a0, dtype=float), [0.0, t_end], mxstep=10**7)
    return sol[-1]


def careful_method(problem):
    rhs, jac, loss = _rhs_and_jac(problem)

    def event(t, a):
        return loss(a) - 1e-30

    event.terminal = True
    sol = solve_ivp(
        lambda t, a: rhs(a),
        (0.0, 1e16),
        np.array(problem.a0, dtype=float),
        method="LSODA",
        jac=lambda t, a: jac(a),
        rtol=1e-13,
        atol=1e-30,
        events=event,
    )
    return sol.y[:, -1]


def _truth(problem, horizon, bits):
    """The exact oracle at 256 bits (clean flows) or one run of our engine at ``bits`` (poisoned)."""
    D, J = published_setting("theory", horizon).state_dim, published_setting("theory", horizon).extrapolation_length
    if oracle_applies(problem):
        a = clean_limit(problem.a0, horizon, problem.training_set.labels[0], precision_bits=256)
        with mpmath.workprec(256):
            return extrapolation_error(a, [1] * D, [1] * D, D, J)
    r = run_flow(problem, FlowOptions(precision_bits=bits))
    with mpmath.workprec(bits + 32):
        return extrapolation_error([to_mpf(v) for v in r.a], [1] * D, [1] * D, D, J)


def _cli_seconds(horizons, precision, engine: str = "compiled", cache_dir: str | None = None,
                 bytecode_cache_off: bool = False) -> tuple[float, float]:
    """Wall and CPU seconds of ``ssmpoison reproduce --row theory`` in a fresh process (start-up included).

    Arguments:
        horizons, precision: the row's horizons and ``--precision`` (``None``: the default).
        engine: ``"compiled"`` (the default engine), ``"heyoka"`` (``SSMPOISON_ENGINE=heyoka``: heyoka's kernels,
            not the native step loop) or ``"reference"`` (``SSMPOISON_ENGINE=reference``).
        cache_dir: the compiled kernels' cache directory (``SSMPOISON_CACHE_DIR``); ``None``: the user's.
        bytecode_cache_off: keep ``PYTHONDONTWRITEBYTECODE`` if this environment sets it (every start then
            compiles the package's modules from source); by default it is removed, as a user's Python runs.
    """
    env = dict(os.environ)
    env.pop("SSMPOISON_ENGINE", None)
    if not bytecode_cache_off:
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # Python's default: the package's modules compiled once, not at every start
    if engine in ("reference", "heyoka"):
        env["SSMPOISON_ENGINE"] = engine
    if cache_dir is not None:
        env["SSMPOISON_CACHE_DIR"] = cache_dir
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-c", "import sys; from ssmpoison.verify.cli import main; sys.exit(main(sys.argv[1:]))",
               "reproduce", "--row", "theory", "--json", os.path.join(tmp, "out.json")]
        for H in horizons:
            cmd += ["--horizon", str(H)]
        if precision is not None:
            cmd += ["--precision", str(precision)]
        before = _children_cpu()
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        return time.perf_counter() - start, _children_cpu() - before


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _careful_seconds(cases):
    """Wall and CPU seconds of the careful baseline on every flow, in this process."""
    start, cpu = time.perf_counter(), time.process_time()
    for c in cases:
        careful_method(c[3])
    return time.perf_counter() - start, time.process_time() - cpu


def _busy_loop():
    """A process spinning on one core (the "loaded" machine), until it is terminated."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def speed(horizons, precisions, loads, repeats: int, engines=("reference", "compiled")) -> None:
    """Print careful / ours for each precision, load and engine, each pair measured back to back in this run."""
    cases = [(H, p, seed, prob) for H in horizons for p in (False, True) for seed, prob in theory_row_problems(published_setting("theory", H), p)]
    print("wall and CPU seconds (the CLI's CPU time includes its worker processes)")
    with tempfile.TemporaryDirectory() as cold:
        (w_careful, c_careful), (w_cold, c_cold) = _careful_seconds(cases), _cli_seconds(horizons, None, "compiled", cold)
        print(f"compiled engine, cold start (empty kernel cache, default precision): {w_cold:.2f} s wall, {c_cold:.2f} s CPU; "
              f"careful / ours {w_careful / w_cold:.2f} (wall), {c_careful / c_cold:.2f} (CPU)")
    _cli_seconds(horizons, None)  # the user's kernel cache (and Python's bytecode cache) warm for what follows
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        (w_careful, c_careful), (w_off, c_off) = _careful_seconds(cases), _cli_seconds(horizons, None, bytecode_cache_off=True)
        print(f"compiled engine, this environment's PYTHONDONTWRITEBYTECODE kept (modules compiled at every start): "
              f"{w_off:.2f} s wall, {c_off:.2f} s CPU; careful / ours {w_careful / w_off:.2f} (wall), {c_careful / c_off:.2f} (CPU)")
    print(f"{'load':<7} {'precision':<9} {'engine':<9} {'careful wall':>12} {'ours wall':>9} {'ratio':>6} | {'careful CPU':>11} "
          f"{'ours CPU':>8} {'ratio':>6} | load average")
    for load in loads:
        busy = _busy_loop() if load == "loaded" else None
        try:
            if busy is not None:
                time.sleep(0.5)
            for precision in precisions:
                for _ in range(repeats):
                    for engine in engines:
                        (w_careful, c_careful), (w_ours, c_ours) = _careful_seconds(cases), _cli_seconds(horizons, precision, engine)
                        print(f"{load:<7} {precision or 'default':<9} {engine:<9} {w_careful:12.2f} {w_ours:9.2f} {w_careful / w_ours:6.2f} | "
                              f"{c_careful:11.2f} {c_ours:8.2f} {c_careful / c_ours:6.2f} | {os.getloadavg()[0]:.2f}", flush=True)
        finally:
            if busy is not None:
                busy.terminate()
                busy.wait()
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizon", type=int, action="append")
    parser.add_argument("--reference-bits", type=int, default=100)
    parser.add_argument("--precision", action="append", help="'default' or a number of bits (repeatable; default: both default and 128)")
    parser.add_argument("--load", action="append", choices=("quiet", "loaded"), help="repeatable; default: both")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--engine", action="append", choices=("reference", "heyoka", "compiled"),
                        help="repeatable; default: reference and compiled")
    parser.add_argument("--no-digits", action="store_true", help="print the speed table only")
    args = parser.parse_args()
    horizons = tuple(args.horizon or row_model("theory").horizons)
    precisions = [None if p == "default" else int(p) for p in (args.precision or ["default", "128"])]
    speed(horizons, precisions, args.load or ["quiet", "loaded"], args.repeats, tuple(args.engine or ("reference", "compiled")))
    if args.no_digits:
        return

    # ours as a user runs it: a fresh process, start-up (imports) included
    t_cli, _ = _cli_seconds(horizons, None)
    start = time.perf_counter()
    ours = run_theory_row(row_model("theory").settings(horizons))
    t_ours = time.perf_counter() - start

    cases = [(H, p, seed, prob) for H in horizons for p in (False, True) for seed, prob in theory_row_problems(published_setting("theory", H), p)]
    baselines = {}
    for name, method in (("published", lambda c: published_method(c[3], c[0], c[1])), ("careful", lambda c: careful_method(c[3]))):
        start = time.perf_counter()
        finals = [method(c) for c in cases]
        baselines[name] = (time.perf_counter() - start, finals)

    truth = {(H, p, seed): _truth(prob, H, args.reference_bits) for H, p, seed, prob in cases}

    print(f"{'H':>2} {'cond':<8} {'seed':>5} | {'ours':>10} {'claimed':>7} | {'published':>9} | {'careful':>7}")
    ours_by_key = {(r.horizon, r.poisoned, r.seed): r for r in ours}
    digits = {"ours": [], "published": [], "careful": []}
    for k, (H, p, seed, prob) in enumerate(cases):
        key = (H, p, seed)
        D, J = published_setting("theory", H).state_dim, published_setting("theory", H).extrapolation_length
        r = ours_by_key[key]
        row = {"ours": correct_digits(r.run.quantity.text, truth[key])}
        for name, (_, finals) in baselines.items():
            with mpmath.workprec(113):
                e = extrapolation_error([mpmath.mpf(float(v)) for v in finals[k]], [1] * D, [1] * D, D, J)
            row[name] = correct_digits(e, truth[key])
        for name in digits:
            digits[name].append(row[name])
        print(
            f"{H:>2} {'poisoned' if p else 'clean':<8} {seed:>5} | {row['ours']:>10} {r.run.quantity.digits:>7} | "
            f"{row['published']:>9} | {row['careful']:>7}"
        )
    print()
    print(f"{'ours, CLI with start-up':<22} {t_cli:8.3f} s   careful / ours {baselines['careful'][0] / t_cli:7.2f}")
    for name, secs in (("ours (default path)", t_ours), ("published (odeint)", baselines["published"][0]), ("careful (LSODA)", baselines["careful"][0])):
        print(f"{name:<22} {secs:8.3f} s   ratio to ours {secs / t_ours:7.2f}")
    for name, ds in digits.items():
        print(f"correct digits, {name:<10}: min {min(ds)}, max {max(ds)}")
    overclaims = sum(1 for r in ours if correct_digits(r.run.quantity.text, truth[(r.horizon, r.poisoned, r.seed)]) < r.run.quantity.digits)
    print(f"runs claiming more digits than are correct: {overclaims}")


if __name__ == "__main__":
    main()
