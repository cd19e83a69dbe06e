"""Benchmark: SEULEX (verify.seulex.Seulex) on the paper's stiff poisoned gradient flows.

Setting (note 00 §5, §6 theory rows, §8): B = C = 1, only A trained, training set
{e_0, e_{H-2}} with labels 1, 1 (N = 2). The flow is

    da/dt = (1 - S_1) + (H-1) (1 - S_{H-1}) a^{H-2}      (S_p = sum_j a_j^p),

which is ``ssmpoison.verify._kernels.neg_grad_a(a, 1, 1, U, y)``; its Jacobian is
``diag(d) - G^T G`` with d = (H-1)(H-2)(1 - S_{H-1}) a^{H-3} and the rows of G the
output gradients (H-1) a^{H-2} and 1 (``ssmpoison.verify._kernels.jacobian_a``; 2/N = 1).
The closed forms below are checked against the kernels before every run.

Each run stops when the loss L = ((1 - S_{H-1})^2 + (1 - S_1)^2) / 2 falls below
max(4^-(bits-10), (rtol/100)^2) and reports the extrapolation error
E = max_{1<=j<20} |S_j - 1| / D and how many digits of E agree with the most
precise run (the last one listed).

    python benchmarks/seulex_poisoned.py              # seed 342 (H=9) and 242 (H=7), all precisions
    python benchmarks/seulex_poisoned.py --seeds 342 --runs float64 mp128 mp160
    python benchmarks/seulex_poisoned.py --rtol mp128=1e-26      # override a tolerance
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from fractions import Fraction

import gmpy2
import numpy as np

from ssmpoison.verify import kernels
from ssmpoison.verify._linalg import diag_plus_lowrank_solver
from ssmpoison.verify._numbers import to_working_array
from ssmpoison.verify import Seulex

# (D, H, sd_A, gap exponent k) of the theory rows (note 00 §6)
SETTINGS = {342: (20, 9, 0.005, 10), 344: (20, 9, 0.005, 10), 345: (20, 9, 0.005, 10), 346: (20, 9, 0.005, 10),
            242: (10, 7, 0.001, 5), 243: (10, 7, 0.001, 5), 244: (10, 7, 0.001, 5), 246: (10, 7, 0.001, 5)}

# run name -> (working precision in bits, default rtol). The reference run is the last one.
RUNS = {
    "float64": (53, 1e-13),
    "longdouble": (64, 1e-16),
    "mp128": (128, 1e-26),
    "mp160": (160, 1e-32),
}


def initial_state(seed: int) -> np.ndarray:
    """The paper's initialisation (numpy's legacy global generator), float64."""
    D, _, sd, gap = SETTINGS[seed]
    np.random.seed(seed)
    a = sd * np.random.rand(D)
    a = np.sort(a)[::-1].copy()
    a[1] = a[0] - 0.05 / np.exp(gap * np.log10(1 / sd))
    return a


@dataclass(frozen=True)
class PoisonedFlow:
    """The poisoned flow for horizon ``H`` in closed form (vectorised over leading axes)."""

    H: int

    def _power(self, a, p):
        out = a
        for _ in range(p - 1):
            out = out * a
        return out

    def rhs(self, a):
        H = self.H
        top = self._power(a, H - 2)
        s_last = (top * a).sum(axis=-1, keepdims=True)
        return (1 - a.sum(axis=-1, keepdims=True)) + (H - 1) * (1 - s_last) * top

    def jacobian(self, a):
        """``(d, G)`` with ``J = diag(d) - G^T G``."""
        H = self.H
        low = self._power(a, H - 3)
        top = low * a
        s_last = (top * a).sum(axis=-1, keepdims=True)
        d = (H - 1) * (H - 2) * (1 - s_last) * low
        G = np.stack([(H - 1) * top, np.ones_like(a)], axis=-2)
        return d, G

    def solver(self, a):
        d, G = self.jacobian(a)
        return diag_plus_lowrank_solver(d, G, Fraction(2, 2))

    def loss(self, a):
        s1 = a.sum(axis=-1)
        s_last = self._power(a, self.H - 1).sum(axis=-1)
        return ((1 - s_last) ** 2 + (1 - s1) ** 2) / 2

    def check_against_kernels(self, a):
        """Max deviation of the closed forms from ``ssmpoison.verify.kernels`` at ``a`` (1-D)."""
        H = self.H
        U = np.zeros((2, H), dtype=np.int64)
        U[0, 0] = U[1, H - 2] = 1
        one = a * 0 + 1
        y = one[:2]
        d_ref, G_ref = kernels.jacobian_a(a, one, one, U, y)
        d, G = self.jacobian(a)
        devs = [
            np.abs(self.rhs(a) - kernels.neg_grad_a(a, one, one, U, y)).max(),
            np.abs(d - d_ref).max(),
            np.abs(G - G_ref).max(),
            abs(self.loss(a) - kernels.loss(a, one, one, U, y)),
        ]
        return max(devs)


def extrapolation_error(a, J: int = 20):
    """``E = max_{1<=j<J} |sum_i a_i^j - 1| / D`` (note 00 §5 with K*_j = 1, K*_0 = D)."""
    V = kernels.powers(a, J)
    return np.abs(V[..., 1:].sum(axis=-2) - 1).max(axis=-1) / a.shape[-1]


def run(seeds, name, rtol=None):
    """Integrate the flows of ``seeds`` (one batch, shared step size) in the arithmetic ``name``."""
    bits, default_rtol = RUNS[name]
    rtol = default_rtol if rtol is None else rtol
    H = SETTINGS[seeds[0]][1]
    flow = PoisonedFlow(H)
    # the closed forms and the loss are evaluated in the working precision: in its context
    with gmpy2.context(precision=bits):
        a0 = to_working_array(np.stack([initial_state(s) for s in seeds]), bits)
        check = flow.check_against_kernels(a0[0])
        assert check <= 2.0 ** -(bits - 8), f"closed form differs from kernels by {check}"
        # Converged when the residuals are below both the precision and the tolerance:
        # pushing the loss far below rtol^2 only makes the integrator chase its own
        # (filtered, tolerance-sized) errors in the stiff normal directions.
        threshold = max(4.0 ** -(bits - 10), (rtol / 100) ** 2)
        start = time.perf_counter()
        res = Seulex().integrate(
            flow.rhs, a0, 0, float("inf"), precision_bits=bits, rtol=rtol, atol=rtol / 100,
            make_solver=flow.solver, stop=lambda t, a: max(flow.loss(a)) < threshold,
        )
        wall = time.perf_counter() - start
        E = extrapolation_error(res.y)
        return {
            "run": name,
            "bits": bits,
            "rtol": rtol,
            "wall": wall,
            "status": res.status,
            "steps": res.n_steps,
            "rejected": res.n_rejected,
            "f_evals": res.n_fun_evals,
            "orders": res.details["order_counts"],
            "t": float(res.t),
            "loss": max(float(x) for x in flow.loss(res.y)),
            "E": list(E),
        }


def agreeing_digits(x, ref) -> float:
    """``-log10 |x / ref - 1|``, evaluated exactly at 320 bits (``inf`` when equal)."""
    with gmpy2.context(gmpy2.get_context(), precision=320):
        rel = abs(_exact(x) / _exact(ref) - 1)
        return math.inf if rel == 0 else -float(gmpy2.log10(rel))


def _exact(x):
    """An mpfr equal to ``x`` (float, numpy float or mpfr) at the current precision."""
    if isinstance(x, (float, np.floating)):
        return gmpy2.mpfr(gmpy2.mpq(*x.as_integer_ratio()))
    return gmpy2.mpfr(x)


def report(seed_group, names, rtols):
    results = [run(seed_group, name, rtols.get(name)) for name in names]
    ref = results[-1]
    print(f"\nseeds {seed_group}  (D, H, sd, k) = {SETTINGS[seed_group[0]]}; digits vs {ref['run']}")
    header = f"{'run':>10} {'rtol':>8} {'wall s':>8} {'steps':>6} {'rej':>4} {'f-evals':>8} {'t_final':>12} {'loss':>9}"
    print(header + "  E (agreeing digits)")
    for r in results:
        Es = ", ".join(
            f"{float(e):.15g} ({agreeing_digits(e, e_ref):.1f})" if r is not ref else f"{float(e):.15g}"
            for e, e_ref in zip(r["E"], ref["E"])
        )
        print(
            f"{r['run']:>10} {r['rtol']:8.0e} {r['wall']:8.2f} {r['steps']:6d} {r['rejected']:4d} {r['f_evals']:8d} "
            f"{r['t']:12.6g} {r['loss']:9.1e}  {Es}"
        )
        print(f"{'':>10} status {r['status']}, accepted steps per order {r['orders']}")
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", nargs="+", type=int, default=[342, 242])
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--rtol", nargs="*", default=[], metavar="RUN=RTOL", help="override a run's tolerance")
    parser.add_argument("--batch", action="store_true", help="also run the four H=9 seeds as one float64 batch")
    args = parser.parse_args(argv)
    rtols = {k: float(v) for k, v in (item.split("=") for item in args.rtol)}
    for seed in args.seeds:
        report([seed], args.runs, rtols)
    if args.batch:
        group = [342, 344, 345, 346]
        single = [run([s], "float64", rtols.get("float64")) for s in group]
        batch = run(group, "float64", rtols.get("float64"))
        print(f"\nfloat64 seeds {group}: one at a time {sum(r['wall'] for r in single):.2f} s "
              f"({sum(r['steps'] for r in single)} steps); as one batch {batch['wall']:.2f} s ({batch['steps']} steps)")
        for s, r, e in zip(group, single, batch["E"]):
            digits = agreeing_digits(e, r["E"][0])
            print(f"  seed {s}: E single {r['E'][0]:.15g}, batched {e:.15g}, agreeing digits {digits:.1f}")


if __name__ == "__main__":
    main()
