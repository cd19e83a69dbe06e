"""Benchmark: the batched GD trainers of the "beyond" and "non-linear" rows against one-run-at-a-time loops.

Everything is timed side by side in this process; a rate is parameter updates, summed over
runs, per second of wall time.

1. The beyond row at H = 6 (seeds 200 201 204 205, clean and poisoned: 8 runs):
   * **vectorised** — :func:`ssmpoison.verify._gd_training.train_beyond`, all 8 runs in one batch;
   * **reference stepper, batched** — the same training loop and batch with the fused stepper
     replaced by the reference formulas (:func:`ssmpoison.verify._gd_objectives.beyond_objective`,
     :func:`ssmpoison.verify._kernels.neg_grad_a_matrix` for the norm, :class:`ssmpoison.verify._gd_optimisers.AdaptiveStep`):
     what the fused copy of the formulas (:mod:`ssmpoison.verify._gd_steppers`) buys;
   * **plain loop** — one run at a time, written with the per-run kernels of
     :mod:`ssmpoison.verify.kernels` (residuals, ``neg_grad_abc``, ``neg_grad_a_matrix`` for the adaptive
     step's norm), with the same stopping rule;
   * **fused, one at a time** — the vectorised trainer given one run at a time (the batch of 1):
     what batching alone buys, with the per-step code held fixed.
   The runs stop at different steps (2000-10000), so on average only about half of the batch
   is still training; the rates count real updates only. The plain loop and the batch make the
   same number of updates; their final states agree to rounding only, and the clean runs
   amplify rounding (the adaptive step grows as the gradient shrinks), so the printed
   extrapolation-error difference measures that sensitivity, not a discrepancy.
2. The same row with ``--draws`` further initialisation draws per seed (what
   ``ssmpoison reproduce`` trains): the vectorised rate against the plain loop's rate of part 1.
3. The non-linear row (seeds 4540 4541 4543 4545, 8 runs, at most ``--nonlinear-max-steps``
   updates each): :func:`ssmpoison.verify._gd_training.train_nonlinear` against the same loop with the reference
   stepper (:func:`ssmpoison.verify._gd_objectives.nonlinear_objective` and :class:`ssmpoison.verify._gd_optimisers.Adam`, batched)
   and against a plain loop of those on one run at a time.
4. float32 (the paper's precision) against float64 on the beyond row's means.
5. Ablation of the paper's procedure on the beyond row (H = 6): the means over the seeds and the
   ``--draws`` initialisation draws when one detail at a time is replaced by note 00 §6 read
   literally — data from our own generator instead of the paper's, independent initial draws
   instead of Keras' shared stream, the diagonal gradient instead of the full recurrent matrix
   in the adaptive step's norm, and all 1500 extra steps instead of the 1401 the paper reported.

Run from the repository root: ``python benchmarks/gd_rows.py [--draws 24] [--nonlinear-max-steps 20000]``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

from ssmpoison.verify import _gd_data, _gd_training
from ssmpoison.verify import BeyondConfig, NonlinearConfig
from ssmpoison.verify import published_setting
from ssmpoison.verify._gd_optimisers import Adam, AdaptiveStep
from ssmpoison.verify._gd_objectives import beyond_objective, nonlinear_objective
from ssmpoison.verify._gd_data import beyond_problem, nonlinear_problem
from ssmpoison.verify._gd_training import train_beyond, train_nonlinear
from ssmpoison.verify._kernels import impulse_response, neg_grad_a_matrix, neg_grad_abc, outputs, residuals

BEYOND_SEEDS = published_setting("beyond", 6).seeds
NONLINEAR_SEEDS = published_setting("nonlinear", 6).seeds


def plain_beyond_run(config: BeyondConfig, seed: int, poisoned: bool, max_steps: int):
    """One run, one step at a time: returns ``(a, b, c, steps, status)`` with the trainer's stopping rule."""
    (a, b, c), U, y = beyond_problem(config, seed, poisoned)
    N = len(y)
    g, reached = 0.0, None
    extra = config.reported_extra_steps
    for t in range(max_steps + 1):
        delta = residuals(a, b, c, U, y)
        L = float(delta @ delta) / N
        grad = -neg_grad_abc(a, b, c, U, y)
        if not (np.isfinite(L) and np.abs(a).max() <= config.diverge_bound):
            return a, b, c, t, "diverged"
        if reached is None and L <= config.tol:
            reached = t
        if reached is not None and t - reached >= extra:
            return a, b, c, t, "converged"
        if t == max_steps:
            break
        G = neg_grad_a_matrix(a, b, c, U, delta)
        norm = np.sqrt((G * G).sum()) + np.linalg.norm(grad[1]) + np.linalg.norm(grad[2])
        g = config.beta * g + (1 - config.beta) * norm
        lr = config.lr / (np.sqrt(g / (1 - config.beta ** (t + 1))) + config.lr_eps)
        a, b, c = a - lr * grad[0], b - lr * grad[1], c - lr * grad[2]
    return a, b, c, max_steps, "max_steps"


def plain_nonlinear_run(config: NonlinearConfig, seed: int, poisoned: bool, max_steps: int) -> int:
    """One non-linear run, one step at a time (reference objective and Adam); returns the updates made."""
    params, U, y = nonlinear_problem(config, seed, poisoned)
    params = [p[None] for p in params]
    U, y, mask = U[None], y[None], np.ones((1, len(y)))
    opt = Adam(params, config.lr, config.beta1, config.beta2, config.eps)
    active = np.array([True])
    reached = None
    for t in range(max_steps + 1):
        loss, grads = nonlinear_objective(params, U, y, mask)
        if not np.isfinite(loss[0]):
            return t
        if reached is None and loss[0] <= config.tol:
            reached = t
        if reached is not None and t - reached >= config.reported_extra_steps:
            return t
        if t == max_steps:
            return t
        params = opt.step(params, grads, t, active)
    return max_steps


class ReferenceStepper:
    """The stepper interface of :mod:`ssmpoison.verify._gd_training` on the reference formulas.

    ``objective`` is :func:`beyond_objective` or :func:`nonlinear_objective`; ``make_opt(params)``
    the optimiser; ``full_norm`` adds the adaptive step's full-matrix norm (beyond row).
    """

    def __init__(self, config, params, U, y, mask, objective, make_opt, full_norm=False):
        self.cfg, self.objective, self.full_norm = config, objective, full_norm
        self.params = [p.copy() for p in params]
        self.U, self.y, self.mask = U, y, mask
        self.opt = make_opt(self.params)
        self.shapes = [p.shape[1:] for p in params]

    @property
    def theta(self):
        return np.concatenate([p.reshape(len(p), -1) for p in self.params], axis=1)

    def params_of(self, theta):
        out, start = [], 0
        for shape in self.shapes:
            size = int(np.prod(shape))
            out.append(theta[:, start:start + size].reshape((len(theta),) + shape).copy())
            start += size
        return tuple(out)

    def loss_and_grad(self):
        loss, self.grads = self.objective(self.params, self.U, self.y, self.mask)
        self.grad = np.concatenate([g.reshape(len(g), -1) for g in self.grads], axis=1)
        self.norms = None
        if self.full_norm:
            a, b, c = self.params
            delta = (self.y - outputs(a, b, c, self.U)) * self.mask
            G = neg_grad_a_matrix(a, b, c, self.U, delta, samples=self.mask.sum(axis=1))
            self.norms = np.sqrt((G * G).sum(axis=(1, 2))) + sum(np.linalg.norm(g, axis=1) for g in self.grads[1:])
        return loss

    def update(self, t):
        active = np.ones(len(self.params[0]), dtype=bool)
        if isinstance(self.opt, AdaptiveStep):
            self.params = self.opt.step(self.params, self.grads, t, active, self.norms)
        else:
            self.params = self.opt.step(self.params, self.grads, t, active)

    def keep(self, idx):
        self.params = [p[idx] for p in self.params]
        self.U, self.y, self.mask = self.U[idx], self.y[idx], self.mask[idx]
        if isinstance(self.opt, AdaptiveStep):
            self.opt.g = self.opt.g[idx]
        else:
            self.opt.m = [m[idx] for m in self.opt.m]
            self.opt.v = [v[idx] for v in self.opt.v]

    def a_bound_ok(self):
        a = self.params[0]
        finite = np.all([np.isfinite(p.reshape(len(p), -1)).all(axis=1) for p in self.params], axis=0)
        return finite & (np.abs(a) <= self.cfg.diverge_bound).all(axis=1)


def reference_train(row: str, config, seeds, max_steps: int):
    """The trainer of ``row`` with :class:`ReferenceStepper` in place of the fused stepper."""
    if row == "beyond":
        make = lambda c, p, U, y, m: ReferenceStepper(  # noqa: E731
            c, p, U, y, m, beyond_objective, lambda ps: AdaptiveStep(len(ps[0]), c.lr, c.beta, c.lr_eps),
            c.full_matrix_norm)
        config_type, problem = BeyondConfig, beyond_problem
    else:
        make = lambda c, p, U, y, m: ReferenceStepper(  # noqa: E731
            c, p, U, y, m, nonlinear_objective, lambda ps: Adam(ps, c.lr, c.beta1, c.beta2, c.eps))
        config_type, problem = NonlinearConfig, nonlinear_problem
    runs, (params, loss, steps, status, reached) = _gd_training._train_batch(
        config, config_type, problem, make, seeds, [False, True], max_steps, None, (0,))
    return steps


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=200_000, help="step budget of a beyond run")
    parser.add_argument("--draws", type=int, default=24, help="further initialisation draws per seed in part 2")
    parser.add_argument("--nonlinear-max-steps", type=int, default=20_000, help="step budget of a non-linear run")
    args = parser.parse_args()

    # 1. the beyond row's own 8 runs
    config = published_setting("beyond", 6).config
    batched, t_batch = timed(train_beyond, config, BEYOND_SEEDS, [False, True], args.max_steps)
    plain, t_plain = timed(lambda: [plain_beyond_run(config, r.seed, r.poisoned, args.max_steps) for r in batched])
    single, t_single = timed(lambda: [train_beyond(config, [r.seed], [r.poisoned], args.max_steps)[0] for r in batched])
    ref_steps, t_ref = timed(reference_train, "beyond", config, BEYOND_SEEDS, args.max_steps)
    updates = sum(r.steps for r in batched)
    assert updates == sum(p[3] for p in plain) == sum(r.steps for r in single), "the loops made different numbers of updates"
    worst = max(abs(r.ext_error - np.abs(impulse_response(*p[:3], config.extrapolation_length) - 1).max()) / r.ext_error
                for r, p in zip(batched, plain))
    rate_batch, rate_plain, rate_single = updates / t_batch, updates / t_plain, updates / t_single
    mean_active = updates / max(r.steps for r in batched)
    print(f"1. beyond row H=6, {len(batched)} runs, {updates} updates in total "
          f"(on average {mean_active:.1f} runs of the batch still training)")
    print(f"   vectorised batch      : {rate_batch:10.0f} updates/s ({t_batch:.2f} s)")
    rate_ref = ref_steps.sum() / t_ref
    print(f"   reference stepper     : {rate_ref:10.0f} updates/s ({t_ref:.2f} s, {ref_steps.sum()} updates)   "
          f"fused stepper / reference stepper: {rate_batch / rate_ref:.2f}x")
    print(f"   plain loop, one by one: {rate_plain:10.0f} updates/s ({t_plain:.2f} s)")
    print(f"   fused, one by one     : {rate_single:10.0f} updates/s ({t_single:.2f} s)")
    print(f"   ratio vectorised / plain loop: {rate_batch / rate_plain:.2f}x   "
          f"(/ fused one by one: {rate_batch / rate_single:.2f}x); "
          f"max relative ext-error difference batch vs plain loop {worst:.1e} (rounding, amplified by the clean runs)")

    # 2. the row with its spread of initialisation draws
    if args.draws > 0:
        big, t_big = timed(train_beyond, config, BEYOND_SEEDS, [False, True], args.max_steps,
                           init_draws=range(args.draws + 1))
        big_updates = sum(r.steps for r in big)
        rate_big = big_updates / t_big
        print(f"\n2. beyond row H=6 with {args.draws} further draws per seed: {len(big)} runs, {big_updates} updates")
        print(f"   vectorised batch      : {rate_big:10.0f} updates/s ({t_big:.2f} s)   "
              f"ratio to the plain loop of part 1: {rate_big / rate_plain:.1f}x")

    # 3. the non-linear row
    nl_config = published_setting("nonlinear", 6).config
    nl, t_nl = timed(train_nonlinear, nl_config, NONLINEAR_SEEDS, [False, True], args.nonlinear_max_steps)
    nl_plain, t_nl_plain = timed(
        lambda: [plain_nonlinear_run(nl_config, r.seed, r.poisoned, args.nonlinear_max_steps) for r in nl])
    nl_ref_steps, t_nl_ref = timed(reference_train, "nonlinear", nl_config, NONLINEAR_SEEDS, args.nonlinear_max_steps)
    nl_updates = sum(r.steps for r in nl)
    assert nl_updates == sum(nl_plain), "the non-linear loops made different numbers of updates"
    print(f"\n3. non-linear row H=6, {len(nl)} runs (at most {args.nonlinear_max_steps} updates each), {nl_updates} updates")
    print(f"   vectorised batch      : {nl_updates / t_nl:10.0f} updates/s ({t_nl:.2f} s)")
    print(f"   reference stepper     : {nl_ref_steps.sum() / t_nl_ref:10.0f} updates/s ({t_nl_ref:.2f} s, "
          f"{nl_ref_steps.sum()} updates)   fused stepper / reference stepper: "
          f"{(nl_updates / t_nl) / (nl_ref_steps.sum() / t_nl_ref):.2f}x")
    print(f"   plain loop, one by one: {nl_updates / t_nl_plain:10.0f} updates/s ({t_nl_plain:.2f} s)")
    print(f"   ratio: {t_nl_plain / t_nl:.2f}x")

    # 4. float32 against float64
    print("\n4. precision: means of the beyond row H=6 over the draws of part 2 (float64 | float32)")
    draws = range(args.draws + 1)
    for dtype in ("float64", "float32"):
        res = train_beyond(replace(config, dtype=dtype), BEYOND_SEEDS, [False, True], args.max_steps, init_draws=draws)
        means = [np.mean([r.ext_error for r in res if r.poisoned == p and r.status == "converged"]) for p in (False, True)]
        print(f"   {dtype}: without special {means[0]:.4g}, with special {means[1]:.4g}")

    # 5. ablation
    print(f"\n5. ablation on the beyond row H=6: means over 4 seeds x {args.draws + 1} draws (without | with special)")
    variants = [
        ("the paper's procedure", config, False),
        ("data from default_rng(seed)", config, True),
        ("independent initial draws", replace(config, shared_init_stream=False), False),
        ("diagonal gradient norm", replace(config, full_matrix_norm=False), False),
        ("all 1500 extra steps", replace(config, log_period=1), False),
        ("note 00 §6 literally (all four)", replace(config, shared_init_stream=False, full_matrix_norm=False, log_period=1), True),
    ]
    for name, cfg, own_data in variants:
        original = _gd_data.paper_sequences
        if own_data:
            _gd_data.paper_sequences = _own_generator_sequences
        try:
            res = train_beyond(cfg, BEYOND_SEEDS, [False, True], args.max_steps, init_draws=draws)
        finally:
            _gd_data.paper_sequences = original
        means = [np.mean([r.ext_error for r in res if r.poisoned == p and r.status == "converged"]) for p in (False, True)]
        print(f"   {name:<30}: {means[0]:8.4g} | {means[1]:8.4g}   (ratio {means[1] / means[0]:.3g}x)")


def _own_generator_sequences(seed, horizon, n_baseline, positions, n_special, special_positions=None):
    """The same kind of sequences as :func:`ssmpoison.verify._gd_data.paper_sequences`, from ``default_rng(seed + 10**6)``."""
    rng = np.random.default_rng(seed + 10**6)
    base = np.zeros((n_baseline, horizon))
    base[:, sorted(positions)] = rng.normal(size=(n_baseline, len(positions)))
    special = np.zeros((n_special, horizon))
    special[:, horizon - 2] = rng.normal(size=n_special)
    return base, special


if __name__ == "__main__":
    main()
