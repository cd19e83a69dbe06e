"""Benchmark: one damage evaluation E(u) with its gradient by forward sensitivities, against central differences.

The sensitivity run integrates the flow of ``theta`` together with ``S = dtheta/du`` (one flow of
``(H + 1) P`` unknowns, :func:`ssmpoison.verify._poisons.damage`); central differences need ``2 H``
flows of ``theta`` alone (:func:`ssmpoison.verify._poisons.damage_fd_gradient`). Both run in this
process on the same setting and the same ``u``; the script prints each wall time, their ratio,
and how many digits of the two gradients agree.

Usage: ``python benchmarks/poison.py [--horizon 7] [--state-dim 10] [--seed 242] [--budget 1]
[--precision 53] [--rtol 1e-10] [--step 1e-5]`` (default: the paper's H = 7 setting at
``u = rho e_(H-2) + rho/2 e_(H-3)``, float64).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from ssmpoison.verify._poisons import damage, damage_fd_gradient, theory_poison_setting


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizon", type=int, default=7)
    parser.add_argument("--state-dim", type=int, default=10)
    parser.add_argument("--seed", type=int, default=242)
    parser.add_argument("--budget", type=float, default=1.0)
    parser.add_argument("--precision", type=int, default=53)
    parser.add_argument("--rtol", type=float, default=1e-10)
    parser.add_argument("--step", type=float, default=1e-5)
    args = parser.parse_args()

    setting = theory_poison_setting(args.horizon, args.state_dim, args.seed)
    H = setting.horizon
    u = [0.0] * H
    u[H - 2], u[H - 3] = args.budget, args.budget / 2

    start = time.perf_counter()
    d = damage(setting, u, args.precision, rtol=args.rtol)
    t_sens = time.perf_counter() - start
    start = time.perf_counter()
    fd = damage_fd_gradient(setting, u, args.step, args.precision, rtol=args.rtol)
    t_fd = time.perf_counter() - start

    g = np.array([float(v) for v in d.gradient])
    f = np.array([float(v) for v in fd])
    worst = float(np.abs(g - f).max() / np.abs(g).max())
    print(f"setting: H = {H}, D = {setting.state_dim}, seed {args.seed}, precision {args.precision} bits, rtol {args.rtol:g}")
    print(f"u = {u}; E(u) = {float(d.value):.12g} ({d.status}, {d.steps} steps)")
    print(f"sensitivities  : {t_sens:8.2f} s  gradient {np.array2string(g, precision=8)}")
    print(f"central diffs  : {t_fd:8.2f} s  ({2 * H} flows, step {args.step:g}) gradient {np.array2string(f, precision=8)}")
    print(f"ratio (differences / sensitivities): {t_fd / t_sens:.2f}x; "
          f"agreement: {-math.log10(worst) if worst else math.inf:.1f} digits (max |difference| / max |gradient|)")


if __name__ == "__main__":
    main()
