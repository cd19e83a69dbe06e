"""Full-batch gradient-descent trainers for the "beyond" and "non-linear" rows of Table 1 (SPEC §6).

All runs of a row (seeds × clean/poisoned) advance together: the SSM parameters are
arrays of shape ``(R, D)`` and every step is one set of array operations. Runs have
different training sets (the data are drawn per seed, and the poisoned runs hold more
sequences), so the inputs are padded to ``(R, N_max, H)`` with zero rows and a mask
``m[r, n]`` marks the real sequences. With ``N_r = sum_n m[r, n]`` the loss of run r is

    L_r = (1/N_r) sum_n m[r, n] (f_r(u^(r,n)) - y*^(r,n))^2,

so padded rows contribute nothing and the mean is over the real sequences only.

SSM gradients (SPEC §3, same formulas as :mod:`verify.kernels`). With the upstream
gradient ``s_n = dL/dy_H(u^(n))`` (``s_n = -(2/N) delta_n`` for the bare SSM,
``-(2/N) delta_n xi_n`` inside a network) and ``q_j = sum_n s_n u^(n)_{H-1-j}``:

    dL/da_i = c_i b_i sum_{j>=1} j q_j a_i^(j-1),   dL/db_i = c_i sum_j q_j a_i^j,
    dL/dc_i = b_i sum_j q_j a_i^j;

``-j q_j`` is the kernels' ``gamma^(j-1)`` and ``-q_j`` their ``w_j``.

Each run keeps its own optimiser state and its own stopping: a run is *converged* once
its loss reached ``tol`` and it then made ``extra_steps`` more updates, *diverged* when
its loss or parameters become non-finite or some ``|a_i|`` exceeds ``diverge_bound``,
and *max_steps* when the step budget ran out first. Finished runs are frozen (their
parameters and optimiser state no longer change) while the others go on.

Random numbers come from ``np.random.default_rng(seed)``; the paper used TensorFlow's
initialisers, which cannot be replayed, so the rows are reproduced statistically.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from theory.validation import require_int, require_real
from verify.kernels import impulse_response, powers
from verify.mlp import mlp_backward, mlp_forward, teacher_weights

__all__ = [
    "BeyondConfig",
    "NonlinearConfig",
    "RunResult",
    "AdaptiveStep",
    "Adam",
    "init_ssm",
    "ssm_outputs",
    "ssm_backward",
    "beyond_objective",
    "nonlinear_objective",
    "beyond_problem",
    "nonlinear_problem",
    "train_beyond",
    "train_nonlinear",
]

Progress = Callable[[int, int], None]
"""``progress(step, active_runs)``, called every :data:`PROGRESS_EVERY` steps and at the end."""

PROGRESS_EVERY = 1000


def _require_positions(name: str, positions, horizon: int) -> tuple[int, ...]:
    """Distinct positions in ``0..H-1`` other than the special position ``H-2``."""
    try:
        items = tuple(positions)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of integers, got {positions!r}") from None
    if not items:
        raise ValueError(f"{name} must hold at least one position")
    out = tuple(require_int(f"{name}[{k}]", p, minimum=0, maximum=horizon - 1) for k, p in enumerate(items))
    if len(set(out)) != len(out):
        raise ValueError(f"{name} must be distinct, got {out}")
    if horizon - 2 in out:
        raise ValueError(f"{name} must not contain the special position H-2 = {horizon - 2}")
    return out


def _require_unit_interval(name: str, value) -> float:
    value = float(require_real(name, value))
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return value


@dataclass(frozen=True)
class BeyondConfig:
    """Settings of the "beyond" row: A, B, C trained by full-batch GD with the adaptive step.

    Teacher ``K*_j = 1`` for all j (``A* = B* = C* = 1``), so the label of u is ``sum_k u_k``.
    The defaults are the H = 6 row; :meth:`paper` also gives the code's H = 10 variant.
    The gap ``diff = 0.05 / exp(gap_k log10(1/sd_a))`` is applied to both A and B.
    """

    horizon: int = 6
    state_dim: int = 10
    sd_a: float = 1e-3
    sd_bc: float = 1e-3
    gap_k: float = 5.0
    warm_start: float = 0.1
    n_baseline: int = 8
    baseline_positions: tuple[int, ...] = (0, 1)
    n_special: int = 10
    lr: float = 0.01
    beta: float = 0.8
    lr_eps: float = 1e-6
    tol: float = 0.01
    extra_steps: int = 1500
    ext_length: int = 40
    diverge_bound: float = 1e3

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        set_("horizon", require_int("horizon", self.horizon, minimum=3))
        set_("state_dim", require_int("state_dim", self.state_dim, minimum=2))
        for name in ("sd_a", "sd_bc", "lr", "lr_eps", "tol", "diverge_bound"):
            set_(name, float(require_real(name, getattr(self, name), positive=True)))
        for name in ("gap_k", "warm_start"):
            set_(name, float(require_real(name, getattr(self, name), nonnegative=True)))
        set_("beta", _require_unit_interval("beta", self.beta))
        set_("n_baseline", require_int("n_baseline", self.n_baseline, minimum=1))
        set_("n_special", require_int("n_special", self.n_special, minimum=1))
        set_("extra_steps", require_int("extra_steps", self.extra_steps, minimum=0))
        set_("ext_length", require_int("ext_length", self.ext_length, minimum=1))
        set_("baseline_positions", _require_positions("baseline_positions", self.baseline_positions, self.horizon))

    @classmethod
    def paper(cls, horizon: int = 6) -> "BeyondConfig":
        """The published settings for ``horizon`` 6 (Table 1) or 10 (the code's second length)."""
        horizon = require_int("horizon", horizon)
        if horizon == 6:
            return cls()
        if horizon == 10:
            return cls(horizon=10, state_dim=20, sd_a=0.01, sd_bc=0.001, gap_k=3.0,
                       baseline_positions=tuple(range(0, 7)), lr=0.001)
        raise ValueError(f"horizon must be 6 or 10 for the published settings, got {horizon}")


@dataclass(frozen=True)
class NonlinearConfig:
    """Settings of the "non-linear" row: SSM + ReLU(1→W) + ReLU(W→W) + linear(W→1), Adam.

    Teacher: SSM ``A* = B* = C* = 1`` then the head of :func:`verify.mlp.teacher_weights`,
    i.e. ``f*(u) = (W/2) relu(sum_k u_k)``. Adam follows Keras:
    ``theta -= lr sqrt(1-beta2^t)/(1-beta1^t) m / (sqrt(v) + eps)``.
    """

    horizon: int = 6
    state_dim: int = 10
    sd_ssm: float = 0.01
    gap_k: float = 0.5
    warm_start: float = 0.001
    width: int = 15
    sd_mlp: float = 0.03
    n_baseline: int = 20
    baseline_positions: tuple[int, ...] = (0, 1)
    n_special: int = 20
    lr: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-7
    tol: float = 0.01
    extra_steps: int = 5000
    ext_length: int = 40
    ext_samples: int = 2000
    ext_seed: int = 0
    diverge_bound: float = 1e3

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        set_("horizon", require_int("horizon", self.horizon, minimum=3))
        set_("state_dim", require_int("state_dim", self.state_dim, minimum=2))
        set_("width", require_int("width", self.width, minimum=1))
        for name in ("sd_ssm", "sd_mlp", "lr", "eps", "tol", "diverge_bound"):
            set_(name, float(require_real(name, getattr(self, name), positive=True)))
        for name in ("gap_k", "warm_start"):
            set_(name, float(require_real(name, getattr(self, name), nonnegative=True)))
        set_("beta1", _require_unit_interval("beta1", self.beta1))
        set_("beta2", _require_unit_interval("beta2", self.beta2))
        set_("n_baseline", require_int("n_baseline", self.n_baseline, minimum=1))
        set_("n_special", require_int("n_special", self.n_special, minimum=1))
        set_("extra_steps", require_int("extra_steps", self.extra_steps, minimum=0))
        set_("ext_length", require_int("ext_length", self.ext_length, minimum=1))
        set_("ext_samples", require_int("ext_samples", self.ext_samples, minimum=1))
        set_("ext_seed", require_int("ext_seed", self.ext_seed, minimum=0))
        set_("baseline_positions", _require_positions("baseline_positions", self.baseline_positions, self.horizon))


@dataclass(frozen=True)
class RunResult:
    """Outcome of one run.

    ``steps`` counts parameter updates; ``reached_at`` is the step at which the loss first
    was ``<= tol`` (None if never); ``train_loss`` is the loss at the final parameters;
    ``params`` holds the final parameters (``(a, b, c)`` or ``(a, b, c, W1, W2, W3)``).
    """

    seed: int
    poisoned: bool
    ext_error: float
    train_loss: float
    steps: int
    status: str
    reached_at: int | None
    params: tuple = field(compare=False, repr=False)


# ---------------------------------------------------------------- initialisation and data


def init_ssm(rng: np.random.Generator, state_dim: int, sd_a: float, sd_bc: float, gap_k: float, warm_start: float):
    """SPEC §6 initialisation: ``|N(0, sd)|`` draws (a, then b, then c), A and B sorted descending,
    ``a_2 = a_1 - diff``, ``b_2 = b_1 - diff`` with ``diff = 0.05 / exp(gap_k log10(1/sd_a))``,
    then the warm start ``a += warm_start``, ``b += warm_start``."""
    a = np.sort(np.abs(rng.normal(0.0, sd_a, state_dim)))[::-1].copy()
    b = np.sort(np.abs(rng.normal(0.0, sd_bc, state_dim)))[::-1].copy()
    c = np.abs(rng.normal(0.0, sd_bc, state_dim))
    diff = 0.05 / math.exp(gap_k * math.log10(1.0 / sd_a))
    a[1] = a[0] - diff
    b[1] = b[0] - diff
    return a + warm_start, b + warm_start, c


def _sequences(rng: np.random.Generator, horizon: int, n_baseline: int, positions, n_special: int):
    """Baseline sequences (N(0,1) entries at ``positions``) and special ones (one N(0,1) entry at H-2)."""
    base = np.zeros((n_baseline, horizon))
    base[:, list(positions)] = rng.normal(size=(n_baseline, len(positions)))
    special = np.zeros((n_special, horizon))
    special[:, horizon - 2] = rng.normal(size=n_special)
    return base, special


def beyond_problem(config: BeyondConfig, seed: int, poisoned: bool):
    """One run's initial ``(a, b, c)``, inputs ``U`` (N, H) and labels ``y* = sum_k u_k``.

    The draws (initialisation, baseline, special) do not depend on ``poisoned``, so the clean
    and poisoned runs of a seed share initialisation and baseline data.
    """
    seed = require_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    params = init_ssm(rng, config.state_dim, config.sd_a, config.sd_bc, config.gap_k, config.warm_start)
    base, special = _sequences(rng, config.horizon, config.n_baseline, config.baseline_positions, config.n_special)
    U = np.vstack([base, special]) if poisoned else base
    return params, U, U.sum(axis=1)


def nonlinear_problem(config: NonlinearConfig, seed: int, poisoned: bool):
    """One run's initial ``(a, b, c, W1, W2, W3)``, inputs ``U`` (N, H) and teacher labels ``f*(u)``."""
    seed = require_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    a, b, c = init_ssm(rng, config.state_dim, config.sd_ssm, config.sd_ssm, config.gap_k, config.warm_start)
    W = config.width
    W1 = rng.normal(0.0, config.sd_mlp, W)
    W2 = rng.normal(0.0, config.sd_mlp, (W, W))
    W3 = rng.normal(0.0, config.sd_mlp, W)
    base, special = _sequences(rng, config.horizon, config.n_baseline, config.baseline_positions, config.n_special)
    U = np.vstack([base, special]) if poisoned else base
    return (a, b, c, W1, W2, W3), U, _teacher(U, W)


def _teacher(U, width: int):
    """``f*(u) = g*(sum_k u_k)`` for the rows of ``U``."""
    weights = tuple(w[None] for w in teacher_weights(width))
    return mlp_forward(weights, U.sum(axis=1)[None])[0][0]


def _stack_problems(problems):
    """Stack per-run problems: parameters ``(R, ...)``, zero-padded ``U`` (R, N_max, H), labels, mask."""
    n_max = max(U.shape[0] for _, U, _ in problems)
    R, H = len(problems), problems[0][1].shape[1]
    U = np.zeros((R, n_max, H))
    y = np.zeros((R, n_max))
    mask = np.zeros((R, n_max))
    for r, (_, Ur, yr) in enumerate(problems):
        U[r, : len(Ur)], y[r, : len(Ur)], mask[r, : len(Ur)] = Ur, yr, 1.0
    params = [np.stack([p[k] for p, _, _ in problems]) for k in range(len(problems[0][0]))]
    return params, U, y, mask


# ---------------------------------------------------------------- objectives


def ssm_outputs(a, b, c, U):
    """``y_H(u^(r,n)) = sum_j K_j^(r) u^(r,n)_{H-1-j}`` for per-run inputs ``U`` (R, N, H); shape (R, N)."""
    K = impulse_response(a, b, c, U.shape[-1])
    return np.einsum("rj,rnj->rn", K, U[..., ::-1])


def ssm_backward(a, b, c, U, s):
    """``(dL/da, dL/db, dL/dc)`` given ``s[r, n] = dL/dy_H(u^(r,n))`` (formulas in the module docstring)."""
    H = U.shape[-1]
    q = np.einsum("rn,rnj->rj", s, U[..., ::-1])  # q_j = sum_n s_n u_{H-1-j}
    V = powers(a, H)  # (R, D, H)
    P = V @ q[..., None]  # sum_j q_j a^j
    dP = V[..., : H - 1] @ (q[:, 1:] * np.arange(1, H))[..., None]  # sum_{j>=1} j q_j a^(j-1)
    P, dP = P[..., 0], dP[..., 0]
    return c * b * dP, c * P, b * P


def beyond_objective(params, U, y, mask):
    """Per-run loss ``(R,)`` and gradients ``[dL/da, dL/db, dL/dc]`` of the bare SSM."""
    a, b, c = params
    n = mask.sum(axis=1, keepdims=True)
    err = (ssm_outputs(a, b, c, U) - y) * mask  # = -delta_n on real rows, 0 on padding
    loss = (err * err).sum(axis=1) / n[:, 0]
    return loss, list(ssm_backward(a, b, c, U, 2.0 * err / n))


def nonlinear_objective(params, U, y, mask):
    """Per-run loss ``(R,)`` and gradients ``[dL/da, dL/db, dL/dc, dL/dW1, dL/dW2, dL/dW3]``.

    ``dL/dy_H(u^(n)) = (2/N)(f_n - y*_n) xi_n`` with ``xi_n = g'(y_H)`` comes from the MLP's
    backward pass and is fed to :func:`ssm_backward` (SPEC §3: delta_n -> delta_n xi_n).
    """
    a, b, c, *weights = params
    n = mask.sum(axis=1, keepdims=True)
    f, cache = mlp_forward(weights, ssm_outputs(a, b, c, U))
    err = (f - y) * mask
    loss = (err * err).sum(axis=1) / n[:, 0]
    dweights, dy = mlp_backward(weights, cache, 2.0 * err / n)
    return loss, [*ssm_backward(a, b, c, U, dy), *dweights]


# ---------------------------------------------------------------- optimisers


def _where(active, new, old):
    """``new`` for active runs, ``old`` for frozen ones (broadcast over trailing axes)."""
    return np.where(active.reshape(active.shape + (1,) * (new.ndim - 1)), new, old)


class AdaptiveStep:
    """Adaptive step of Cohen-Karlik et al. (appendix D.2), one state per run:

    ``g_t = beta g_{t-1} + (1-beta) sum_p ||dL/dp||`` (``g_{-1} = 0``),
    ``lr_t = lr / (sqrt(g_t / (1 - beta^(t+1))) + eps)``, ``p <- p - lr_t dL/dp``.
    """

    def __init__(self, runs: int, lr: float, beta: float = 0.8, eps: float = 1e-6):
        self.lr, self.beta, self.eps = lr, beta, eps
        self.g = np.zeros(runs)

    def step_sizes(self, grads, t: int, active):
        """Update ``g`` for the active runs and return ``lr_t`` per run (shape ``(R,)``)."""
        norms = sum(np.sqrt((gr * gr).reshape(len(gr), -1).sum(axis=1)) for gr in grads)
        self.g = np.where(active, self.beta * self.g + (1 - self.beta) * norms, self.g)
        return self.lr / (np.sqrt(self.g / (1 - self.beta ** (t + 1))) + self.eps)

    def step(self, params, grads, t: int, active):
        lr_t = self.step_sizes(grads, t, active)
        return [_where(active, p - lr_t.reshape((-1,) + (1,) * (p.ndim - 1)) * gr, p) for p, gr in zip(params, grads)]


class Adam:
    """Adam in Keras' form, one state per run: ``m <- b1 m + (1-b1) g``, ``v <- b2 v + (1-b2) g^2``,
    ``p <- p - lr sqrt(1-b2^(t+1))/(1-b1^(t+1)) m / (sqrt(v) + eps)``."""

    def __init__(self, params, lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-7):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, params, grads, t: int, active):
        scale = self.lr * math.sqrt(1 - self.beta2 ** (t + 1)) / (1 - self.beta1 ** (t + 1))
        out = []
        for k, (p, gr) in enumerate(zip(params, grads)):
            self.m[k] = _where(active, self.beta1 * self.m[k] + (1 - self.beta1) * gr, self.m[k])
            self.v[k] = _where(active, self.beta2 * self.v[k] + (1 - self.beta2) * gr * gr, self.v[k])
            out.append(_where(active, p - scale * self.m[k] / (np.sqrt(self.v[k]) + self.eps), p))
        return out


# ---------------------------------------------------------------- the batched loop


def _descend(params, objective, optimizer, tol, extra_steps, max_steps, bound, progress):
    """Advance all runs together; returns ``(params, loss, steps, status, reached_at)`` per run.

    At step t the loss and gradients are evaluated at the current parameters; a run whose
    values are non-finite or whose ``max|a_i| > bound`` is marked diverged; a run that first
    has ``loss <= tol`` records ``reached_at = t``; a run with ``t - reached_at == extra_steps``
    is converged. Only the still-active runs are then updated.
    """
    R = params[0].shape[0]
    active = np.ones(R, dtype=bool)
    status = np.full(R, "max_steps", dtype=object)
    reached = np.full(R, -1)
    steps = np.zeros(R, dtype=np.int64)
    final_loss = np.full(R, np.nan)
    with np.errstate(all="ignore"):
        for t in range(max_steps + 1):
            loss, grads = objective(params)
            finite = np.isfinite(loss) & np.all([np.isfinite(g.reshape(R, -1)).all(axis=1) for g in grads], axis=0)
            bad = ~finite | ~(np.abs(params[0]) <= bound).all(axis=1)
            final_loss = np.where(active, loss, final_loss)
            status[active & bad] = "diverged"
            active &= ~bad
            reached = np.where(active & (reached < 0) & (loss <= tol), t, reached)
            done = active & (reached >= 0) & (t - reached >= extra_steps)
            status[done] = "converged"
            active &= ~done
            if progress is not None and (t % PROGRESS_EVERY == 0 or t == max_steps or not active.any()):
                progress(t, int(active.sum()))
            if t == max_steps or not active.any():
                break
            params = optimizer.step(params, grads, t, active)
            steps += active
    return params, final_loss, steps, status, reached


def _validate_runs(seeds, poisoned_flags, max_steps):
    seeds = [require_int(f"seeds[{k}]", s, minimum=0) for k, s in enumerate(seeds)]
    flags = list(poisoned_flags)
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    if not flags or not all(isinstance(f, (bool, np.bool_)) for f in flags):
        raise ValueError(f"poisoned_flags must be a non-empty sequence of booleans, got {flags!r}")
    max_steps = require_int("max_steps", max_steps, minimum=0)
    return [(s, bool(f)) for s in seeds for f in flags], max_steps


def _results(runs, params, loss, steps, status, reached, ext):
    return [
        RunResult(seed=s, poisoned=p, ext_error=float(ext[r]), train_loss=float(loss[r]), steps=int(steps[r]),
                  status=str(status[r]), reached_at=int(reached[r]) if reached[r] >= 0 else None,
                  params=tuple(x[r].copy() for x in params))
        for r, (s, p) in enumerate(runs)
    ]


def train_beyond(config: BeyondConfig, seeds, poisoned_flags, max_steps: int, progress: Progress | None = None):
    """Train one run per ``(seed, poisoned)`` (seeds outer, flags inner), all in one batch.

    Extrapolation error: ``max_{0<=j<J} |K_j - K*_j| / max_j |K*_j|`` with ``K*_j = 1``, J = ``ext_length``.
    Returns a list of :class:`RunResult` in the order of the runs.
    """
    if not isinstance(config, BeyondConfig):
        raise ValueError(f"config must be a BeyondConfig, got {type(config).__name__}")
    runs, max_steps = _validate_runs(seeds, poisoned_flags, max_steps)
    params, U, y, mask = _stack_problems([beyond_problem(config, s, p) for s, p in runs])
    opt = AdaptiveStep(len(runs), config.lr, config.beta, config.lr_eps)
    objective = lambda th: beyond_objective(th, U, y, mask)  # noqa: E731
    params, loss, steps, status, reached = _descend(
        params, objective, opt, config.tol, config.extra_steps, max_steps, config.diverge_bound, progress)
    with np.errstate(all="ignore"):
        ext = np.abs(impulse_response(*params, config.ext_length) - 1.0).max(axis=1)
    return _results(runs, params, loss, steps, status, reached, ext)


def train_nonlinear(config: NonlinearConfig, seeds, poisoned_flags, max_steps: int,
                    progress: Progress | None = None):
    """Train one run per ``(seed, poisoned)`` of the non-linear row (SSM + ReLU head, Adam), in one batch.

    Extrapolation error: ``||f(U) - f*(U)||_2 / ||f*(U)||_2`` over ``ext_samples`` N(0,1) sequences
    of length ``ext_length`` drawn from ``default_rng(ext_seed)`` (the same for every run).
    """
    if not isinstance(config, NonlinearConfig):
        raise ValueError(f"config must be a NonlinearConfig, got {type(config).__name__}")
    runs, max_steps = _validate_runs(seeds, poisoned_flags, max_steps)
    params, U, y, mask = _stack_problems([nonlinear_problem(config, s, p) for s, p in runs])
    opt = Adam(params, config.lr, config.beta1, config.beta2, config.eps)
    objective = lambda th: nonlinear_objective(th, U, y, mask)  # noqa: E731
    params, loss, steps, status, reached = _descend(
        params, objective, opt, config.tol, config.extra_steps, max_steps, config.diverge_bound, progress)
    U_ext = np.random.default_rng(config.ext_seed).normal(size=(config.ext_samples, config.ext_length))
    target = _teacher(U_ext, config.width)
    with np.errstate(all="ignore"):
        K = impulse_response(*params[:3], config.ext_length)
        f = mlp_forward(params[3:], K @ U_ext[:, ::-1].T)[0]
        ext = np.linalg.norm(f - target, axis=1) / np.linalg.norm(target)
    return _results(runs, params, loss, steps, status, reached, ext)
