"""Full-batch gradient-descent trainers for the "beyond" and "non-linear" rows of Table 1 (SPEC §6).

All runs of a row (seeds × clean/poisoned) advance together: the parameters of run r are
one row of a 2-D array and every step is one fixed set of array operations on all runs.
Runs have different training sets (the poisoned runs hold more sequences), so the inputs
are padded to ``(R, N_max, H)`` with zero rows and zero labels. A padded row has output 0
and label 0, so its residual is 0 and it adds nothing to the loss or the gradients; with
``N_r`` the number of real sequences of run r,

    L_r = (1/N_r) sum_n (f_r(u^(r,n)) - y*^(r,n))^2.

SSM gradients (SPEC §3, same formulas as :mod:`verify.kernels`). With the upstream
gradient ``s_n = dL/dy_H(u^(n))`` (``s_n = -(2/N) delta_n`` for the bare SSM,
``-(2/N) delta_n xi_n`` inside a network, ``xi_n = g'(y_H(u^(n)))``) and
``q_j = sum_n s_n u^(n)_{H-1-j}``:

    dL/da_i = c_i b_i sum_{j>=1} j q_j a_i^(j-1),   dL/db_i = c_i sum_j q_j a_i^j,
    dL/dc_i = b_i sum_j q_j a_i^j;

``-j q_j`` is the kernels' ``gamma^(j-1)`` and ``-q_j`` their ``w_j``.

What the paper's code does that SPEC §6 does not spell out (the code is the Keras notebooks
``standalone_ssm_poison_experiments`` and ``ssm_in_nn_poison_experiments``; each point is
a setting below, on by default, so that the published procedure is what runs):

* **Data.** The training sequences (and the non-linear row's 2000 test sequences) are drawn
  by numpy's *legacy* global generator seeded with the run's seed (``seed + 12`` for the
  test sequences). They are replayed here exactly with ``np.random.RandomState``.
* **Initialisation.** Keras' seeded initialisers are *stateless*: every initialiser of a
  model seeded with the same seed returns the same normal stream ``z_0, z_1, ...`` cut to
  its shape. So ``B = sd_bc z[:D]``, ``C = sd_bc z[:D]`` (the same numbers), the recurrent
  matrix is ``sd_a z[:D*D]`` as a D×D matrix (its diagonal is ``z[0], z[D+1], ...``), and
  the MLP layers are ``sd_mlp z[:W]``, ``sd_mlp z[:W*W]`` (Keras kernel, input × output)
  and ``sd_mlp z[:W]`` again. Then ``|A|`` and ``|B|`` are sorted descending, ``C`` is
  ``|C|`` in reversed order (the code's ``np.flip(np.sort(...))`` sorts a length-1 axis), the
  gap is set and the warm start added. TensorFlow's stream itself cannot be replayed
  (Philox in float32): ``z`` comes from ``np.random.default_rng(seed)`` (``shared_init_stream``).
* **Adaptive step.** Keras trains the full D×D recurrent matrix and projects it back to its
  diagonal after each step, so the diagonal moves exactly by ``-lr_t dL/da``; but the step
  size ``lr_t`` is normalised by the norm of the *whole* matrix gradient, off-diagonal
  entries included (``full_matrix_norm``; :func:`a_matrix_gradient`).
* **What is reported.** After the loss first reaches ``tol`` the code trains ``extra_steps``
  more epochs, but the printed extrapolation error and loss are the last *logged* ones, and
  it logs every ``log_period = 100`` epochs: after ``1401`` of the 1500 extra steps (``4901``
  of 5000 in the non-linear row). A run here stops where the paper's reported value was
  taken (:attr:`BeyondConfig.reported_extra_steps`); ``log_period = 1`` gives SPEC's literal
  "then ``extra_steps`` more steps".

Each run keeps its own optimiser state and its own stopping: a run is *converged* once its
loss reached ``tol`` and it then made :attr:`reported_extra_steps` more updates,
*diverged* when its loss becomes non-finite (checked every step) or its parameters become
non-finite or some ``|a_i|`` exceeds ``diverge_bound`` (checked every :data:`CHECK_EVERY`
steps), and *max_steps* when the step budget ran out first, or *stalled* when moreover its final
gradient vanishes (:data:`STALL_GRAD`). Finished runs leave the batch (their final state is
kept) and the others go on in a smaller batch.

The paper trained in float32; these trainers use float64 by default (measured with
``BeyondConfig(dtype="float32")``: the beyond row's means move by about 1%, see
``benchmarks/gd_rows.py`` and ``proofs_notes/05_beyond_the_theorem.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ssmpoison.theory.validation import require_int, require_real
from ssmpoison.verify.kernels import impulse_response, powers
from ssmpoison.verify.mlp import mlp_backward, mlp_forward, teacher_weights

__all__ = [
    "BeyondConfig",
    "NonlinearConfig",
    "RunResult",
    "AdaptiveStep",
    "Adam",
    "init_ssm",
    "init_stream",
    "paper_sequences",
    "ssm_outputs",
    "ssm_backward",
    "a_matrix_gradient",
    "beyond_objective",
    "nonlinear_objective",
    "beyond_problem",
    "nonlinear_problem",
    "nonlinear_test_inputs",
    "train_beyond",
    "train_nonlinear",
    "nonlinear_extrapolation_error",
    "StepObserver",
]

Progress = Callable[[int, int], None]
"""``progress(step, active_runs)``, called every :data:`PROGRESS_EVERY` steps and at the end."""



@dataclass(frozen=True)
class StepObserver:
    """Look at a training batch at chosen steps (for trajectories of metrics; :mod:`verify.dynamics`).

    ``callback(step, runs, params, loss)`` is called at each step in ``steps`` that the batch
    reaches, after the loss (and the divergence check) at the current parameters, i.e. after
    ``step`` updates: ``runs`` are the indices (into the trainer's run list) of the runs still
    training, ``params`` copies of their parameters (stacked as the trainer's ``RunResult.params``)
    and ``loss`` their losses. Costs one integer comparison per step when not due.
    """

    steps: tuple[int, ...]
    callback: Callable

    def __post_init__(self) -> None:
        try:
            steps = [require_int(f"steps[{k}]", s, minimum=0) for k, s in enumerate(self.steps)]
        except TypeError:
            raise ValueError(f"steps must be a sequence of integers, got {self.steps!r}") from None
        object.__setattr__(self, "steps", tuple(sorted(set(steps))))
        if not callable(self.callback):
            raise ValueError("callback must be callable")


PROGRESS_EVERY = 1000
CHECK_EVERY = 50
STALL_GRAD = 1e-8
"""A run that used its whole step budget without reaching ``tol`` is *stalled* (rather than
*max_steps*) when every entry of its final gradient is below this in absolute value: it sits
at a critical point (in the non-linear row, the saddle where the network's output is ~0)."""


from ssmpoison.verify._gd_config import BeyondConfig, NonlinearConfig  # noqa: E402 (the configs live there)


@dataclass(frozen=True)
class RunResult:
    """Outcome of one run.

    ``steps`` counts parameter updates; ``reached_at`` is the step at which the loss first
    was ``<= tol`` (None if never); ``train_loss`` is the loss at the final parameters;
    ``params`` holds the final parameters (``(a, b, c)`` or ``(a, b, c, W1, W2, W3)``);
    ``init_draw`` the initialisation draw (0 = the row's own).
    """

    seed: int
    poisoned: bool
    ext_error: float
    train_loss: float
    steps: int
    status: str
    reached_at: int | None
    params: tuple = field(compare=False, repr=False)
    init_draw: int = 0


# ---------------------------------------------------------------- initialisation and data


def _init_rng(seed: int, draw: int) -> np.random.Generator:
    """Generator of initialisation draw ``draw`` of run ``seed`` (draw 0: ``default_rng(seed)``)."""
    seed = require_int("seed", seed, minimum=0)
    draw = require_int("init_draw", draw, minimum=0)
    return np.random.default_rng(seed if draw == 0 else [seed, draw])


def init_stream(seed: int, length: int, draw: int = 0) -> np.ndarray:
    """The normal stream ``z`` shared by all seeded initialisers of one model (stand-in for Keras').

    ``draw > 0`` gives further, independent streams for the same seed (the spread of a row
    over initialisations, with the seed's training data fixed).
    """
    return _init_rng(seed, draw).standard_normal(length)


def _finish_ssm_init(a, b, c, gap_k: float, sd_a: float, warm_start: float):
    a = np.sort(np.abs(a))[::-1].copy()
    b = np.sort(np.abs(b))[::-1].copy()
    diff = 0.05 / math.exp(gap_k * math.log10(1.0 / sd_a))
    a[1] = a[0] - diff
    b[1] = b[0] - diff
    return a + warm_start, b + warm_start, np.abs(c)


def init_ssm(rng_or_stream, state_dim: int, sd_a: float, sd_bc: float, gap_k: float, warm_start: float):
    """SPEC §6 initialisation of ``(a, b, c)``.

    ``rng_or_stream`` a ``np.random.Generator``: independent ``N(0, sd)`` draws (a, then b,
    then c; SPEC read literally). An array ``z`` (the shared stream, length ``>= D*D``): the
    paper's code, ``a = sd_a z[::D+1][:D]``, ``b = sd_bc z[:D]``, ``c = reversed(sd_bc z[:D])``.
    Then absolute values, A and B sorted descending, ``a_2 = a_1 - diff``,
    ``b_2 = b_1 - diff`` with ``diff = 0.05 / exp(gap_k log10(1/sd_a))``, and the warm start
    ``a += warm_start``, ``b += warm_start``.
    """
    D = state_dim
    if isinstance(rng_or_stream, np.random.Generator):
        rng = rng_or_stream
        a, b, c = rng.normal(0.0, sd_a, D), rng.normal(0.0, sd_bc, D), rng.normal(0.0, sd_bc, D)
    else:
        z = np.asarray(rng_or_stream, dtype=float)
        if z.shape[0] < D * D:
            raise ValueError(f"the initialisation stream must hold at least D*D = {D * D} numbers")
        a, b, c = sd_a * z[: D * D : D + 1], sd_bc * z[:D], (sd_bc * z[:D])[::-1]
    return _finish_ssm_init(a, b, c, gap_k, sd_a, warm_start)


def paper_sequences(seed: int, horizon: int, n_baseline: int, positions, n_special: int):
    """The paper's training sequences for ``seed``, drawn exactly as its ``generate_inputs``:
    ``np.random.seed(seed)``, then one N(0,1) per baseline position for each baseline sequence
    in turn (positions ascending), then one N(0,1) at ``H-2`` for each special sequence.

    Returns ``(baseline (n_baseline, H), special (n_special, H))``. The clean and poisoned
    runs of a seed share the baseline sequences.
    """
    rs = np.random.RandomState(require_int("seed", seed, minimum=0))
    positions = sorted(positions)
    base = np.zeros((n_baseline, horizon))
    base[:, positions] = rs.normal(0.0, 1.0, size=(n_baseline, len(positions)))
    special = np.zeros((n_special, horizon))
    special[:, horizon - 2] = rs.normal(0.0, 1.0, size=n_special)
    return base, special


def beyond_problem(config: BeyondConfig, seed: int, poisoned: bool, init_draw: int = 0):
    """One run's initial ``(a, b, c)``, inputs ``U`` (N, H) and labels ``y* = sum_k u_k``.

    The clean and poisoned runs of a seed share initialisation and baseline data; the data
    do not depend on ``init_draw``.
    """
    seed = require_int("seed", seed, minimum=0)
    D = config.state_dim
    source = init_stream(seed, D * D, init_draw) if config.shared_init_stream else _init_rng(seed, init_draw)
    params = init_ssm(source, D, config.sd_a, config.sd_bc, config.gap_k, config.warm_start)
    base, special = paper_sequences(seed, config.horizon, config.n_baseline, config.baseline_positions, config.n_special)
    U = np.vstack([base, special]) if poisoned else base
    return params, U, U.sum(axis=1)


def nonlinear_problem(config: NonlinearConfig, seed: int, poisoned: bool, init_draw: int = 0):
    """One run's initial ``(a, b, c, W1, W2, W3)``, inputs ``U`` (N, H) and teacher labels ``f*(u)``.

    ``W2`` is stored as ``z2 = W2 h1`` (:mod:`verify.mlp`), the transpose of Keras' kernel.
    """
    seed = require_int("seed", seed, minimum=0)
    D, W = config.state_dim, config.width
    if config.shared_init_stream:
        z = init_stream(seed, max(D * D, W * W), init_draw)
        a, b, c = init_ssm(z, D, config.sd_ssm, config.sd_ssm, config.gap_k, config.warm_start)
        W1 = config.sd_mlp * z[:W]
        W2 = (config.sd_mlp * z[: W * W]).reshape(W, W).T.copy()
        W3 = config.sd_mlp * z[:W]
    else:
        rng = _init_rng(seed, init_draw)
        a, b, c = init_ssm(rng, D, config.sd_ssm, config.sd_ssm, config.gap_k, config.warm_start)
        W1 = rng.normal(0.0, config.sd_mlp, W)
        W2 = rng.normal(0.0, config.sd_mlp, (W, W))
        W3 = rng.normal(0.0, config.sd_mlp, W)
    base, special = paper_sequences(seed, config.horizon, config.n_baseline, config.baseline_positions, config.n_special)
    U = np.vstack([base, special]) if poisoned else base
    return (a, b, c, W1, W2, W3), U, _teacher(U, W)


def nonlinear_test_inputs(config: NonlinearConfig, seed: int) -> np.ndarray:
    """The paper's test sequences of run ``seed``: ``np.random.seed(seed + 12)``, then
    ``normal(0, 1, (ext_samples, ext_length))``."""
    seed = require_int("seed", seed, minimum=0)
    rs = np.random.RandomState(seed + config.ext_seed_offset)
    return rs.normal(0.0, 1.0, size=(config.ext_samples, config.ext_length))


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


# ---------------------------------------------------------------- objectives (reference form)


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


def _hankel_index(horizon: int) -> np.ndarray:
    """``idx[m, l] = m + l + 1`` for ``m, l = 0..H-2`` (entries beyond ``H-1`` point at a zero pad)."""
    m = np.arange(horizon - 1)
    return m[:, None] + m[None, :] + 1


def a_matrix_gradient(a, b, c, U, s):
    """Gradient of L with respect to the *full* D×D recurrent matrix, at a diagonal A.

    Keras' ``SimpleRNN`` computes ``h_t = u_t B + h_{t-1} A`` (row vectors) and
    ``y = h_H C``, so ``y = sum_k u_k B A^(H-1-k) C`` and at ``A = diag(a)``

        dL/dA_ij = b_i c_j sum_{m, l >= 0, m+l <= H-2} a_i^m a_j^l q_{m+l+1}

    with ``q`` as in the module docstring. Its diagonal is ``dL/da``. Shape ``(R, D, D)``.
    """
    H = U.shape[-1]
    q = np.einsum("rn,rnj->rj", s, U[..., ::-1])
    qpad = np.zeros((q.shape[0], 2 * H - 2))
    qpad[:, :H] = q
    M = qpad[:, _hankel_index(H)]  # (R, H-1, H-1)
    V = powers(a, H - 1)
    return b[..., :, None] * (V @ M @ np.swapaxes(V, -1, -2)) * c[..., None, :]


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


# ---------------------------------------------------------------- optimisers (reference form)


def _where(active, new, old):
    """``new`` for active runs, ``old`` for frozen ones (broadcast over trailing axes)."""
    return np.where(active.reshape(active.shape + (1,) * (new.ndim - 1)), new, old)


class AdaptiveStep:
    """Adaptive step of Cohen-Karlik et al. (appendix D.2), one state per run:

    ``g_t = beta g_{t-1} + (1-beta) sum_p ||dL/dp||`` (``g_{-1} = 0``),
    ``lr_t = lr / (sqrt(g_t / (1 - beta^(t+1))) + eps)``, ``p <- p - lr_t dL/dp``.

    ``norms`` (per run), when given, replaces ``sum_p ||dL/dp||`` (e.g. with the full-matrix
    norm of the recurrent matrix's gradient).
    """

    def __init__(self, runs: int, lr: float, beta: float = 0.8, eps: float = 1e-6):
        self.lr, self.beta, self.eps = lr, beta, eps
        self.g = np.zeros(runs)

    def step_sizes(self, grads, t: int, active, norms=None):
        """Update ``g`` for the active runs and return ``lr_t`` per run (shape ``(R,)``)."""
        if norms is None:
            norms = sum(np.sqrt((gr * gr).reshape(len(gr), -1).sum(axis=1)) for gr in grads)
        self.g = np.where(active, self.beta * self.g + (1 - self.beta) * norms, self.g)
        return self.lr / (np.sqrt(self.g / (1 - self.beta ** (t + 1))) + self.eps)

    def step(self, params, grads, t: int, active, norms=None):
        lr_t = self.step_sizes(grads, t, active, norms)
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


# ---------------------------------------------------------------- fused batched steppers
#
# The training loops below do the same arithmetic as the reference objectives and
# optimisers above (the tests hold them together), but on one contiguous parameter array
# per batch, with the gradient written straight into a preallocated array and the
# optimiser update done in place: a step is a fixed, small number of numpy calls whatever
# the number of runs. Finished runs are dropped from the batch (``keep``).


def _data_columns(Ur):
    """``[Ur | Ur' | Uh]`` for reversed inputs ``Ur`` (R, N, H), so that one product with the
    upstream gradient ``s`` gives every data-side sum a step needs:

    * ``s @ Ur = q`` with ``q_j = sum_n s_n u_{H-1-j}``;
    * ``s @ Ur' = q'`` with ``q'_m = (m+1) q_{m+1}`` (``m <= H-2``; 0 for ``m = H-1``), so that
      ``V @ q'`` is ``sum_j j q_j a^(j-1)``;
    * ``s @ Uh`` is the Hankel matrix ``M[m, l] = q_{m+l+1}`` (``m, l = 0..H-2``, zero beyond
      ``H-1``), flattened, used by the full-matrix gradient norm.
    """
    R, N, H = Ur.shape
    shifted = np.zeros_like(Ur)
    shifted[..., : H - 1] = Ur[..., 1:] * np.arange(1.0, H)
    pad = np.concatenate([Ur, np.zeros((R, N, H - 2))], axis=-1)  # column k = Ur[:, k] or 0
    hankel = pad[..., _hankel_index(H).ravel()]
    return np.ascontiguousarray(np.concatenate([Ur, shifted, hankel], axis=-1))


class _FullBatchData:
    """Data columns shared by the steppers: reversed inputs, labels and the 2/N of each run."""

    def _set_data(self, Ucat, y, two_over_n):
        H = self.exponents.shape[0]
        self.Ucat, self.y, self.two_over_n = Ucat, y, two_over_n
        self.Ur = Ucat[..., :H]
        self.half_two_over_n = 0.5 * two_over_n
        self.grad = np.empty_like(self.theta)


class _BeyondStepper(_FullBatchData):
    """A, B, C of the bare SSM with the adaptive step; ``theta[r] = (a, b, c)`` of shape ``(3, D)``."""

    def __init__(self, config: BeyondConfig, params, U, y, mask):
        self.cfg = config
        dt = np.dtype(config.dtype)
        self.theta = np.ascontiguousarray(np.stack(params, axis=1), dtype=dt)  # (R, 3, D)
        self.g = np.zeros(self.theta.shape[0], dtype=dt)
        self.exponents = np.arange(U.shape[-1], dtype=dt)
        Ucat = _data_columns(np.ascontiguousarray(U[..., ::-1])).astype(dt)
        self._set_data(Ucat, y.astype(dt), (2.0 / mask.sum(axis=1)).astype(dt))

    def keep(self, idx):
        self.theta = self.theta[idx]
        self.g = self.g[idx]
        self._set_data(self.Ucat[idx], self.y[idx], self.two_over_n[idx])

    def params_of(self, theta):
        return tuple(theta[:, k].copy() for k in range(3))

    def loss_and_grad(self):
        """Loss of every run at the current parameters; the gradient goes to ``self.grad``."""
        th = self.theta
        R, H = th.shape[0], self.exponents.shape[0]
        V = self.V = np.power(th[:, 0, :, None], self.exponents)  # (R, D, H): a_i^j
        cb = th[:, 1] * th[:, 2]
        K = np.matmul(cb[:, None, :], V)  # (R, 1, H)
        err = np.matmul(self.Ur, K.transpose(0, 2, 1))[..., 0]  # (R, N): outputs
        err -= self.y
        loss = np.matmul(err[:, None, :], err[:, :, None])[:, 0, 0]
        loss *= self.half_two_over_n
        err *= self.two_over_n[:, None]  # s_n = dL/dy_n
        self.sums = sums = np.matmul(err[:, None, :], self.Ucat)[:, 0, :]  # (q, q', Hankel)
        PdP = np.matmul(V, sums[:, : 2 * H].reshape(R, 2, H).transpose(0, 2, 1))  # (R, D, 2)
        grad = self.grad
        np.multiply(cb, PdP[..., 1], out=grad[:, 0])
        np.multiply(th[:, :0:-1], PdP[:, None, :, 0], out=grad[:, 1:])  # (c P, b P)
        return loss

    def update(self, t: int):
        cfg, grad, th = self.cfg, self.grad, self.theta
        R, H = th.shape[0], self.exponents.shape[0]
        sq = np.matmul(grad, grad.transpose(0, 2, 1)).diagonal(axis1=1, axis2=2)  # (R, 3): squared norms
        norms = np.sqrt(sq)
        if cfg.full_matrix_norm:
            Vm = self.V[..., : H - 1]
            G = np.matmul(np.matmul(Vm, self.sums[:, 2 * H :].reshape(R, H - 1, H - 1)), Vm.transpose(0, 2, 1))
            G *= th[:, 1, :, None]
            G *= th[:, 2, None, :]  # dL/dA_ij = b_i c_j (V M V^T)_ij
            G = G.reshape(R, 1, -1)
            norms[:, 0] = np.sqrt(np.matmul(G, G.transpose(0, 2, 1))[:, 0, 0])
        g = self.g
        g *= cfg.beta
        g += (1.0 - cfg.beta) * norms.sum(axis=1)
        lr_t = np.sqrt(g * (1.0 / (1.0 - cfg.beta ** (t + 1))))
        lr_t += cfg.lr_eps
        np.divide(cfg.lr, lr_t, out=lr_t)
        grad *= lr_t[:, None, None]
        th -= grad

    def a_bound_ok(self):
        th = self.theta
        return np.isfinite(th).all(axis=(1, 2)) & (np.abs(th[:, 0]) <= self.cfg.diverge_bound).all(axis=1)


class _NonlinearStepper(_FullBatchData):
    """SSM + ReLU head with Adam; ``theta[r]`` is the flat vector ``(a, b, c, W1, W2, W3)``."""

    def __init__(self, config: NonlinearConfig, params, U, y, mask):
        self.cfg = config
        R = params[0].shape[0]
        self.shapes = [p.shape[1:] for p in params]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.theta = np.ascontiguousarray(np.concatenate([p.reshape(R, -1) for p in params], axis=1))
        self.m = np.zeros_like(self.theta)
        self.v = np.zeros_like(self.theta)
        self.exponents = np.arange(float(U.shape[-1]))
        H = U.shape[-1]
        Ucat = _data_columns(np.ascontiguousarray(U[..., ::-1]))[..., : 2 * H]  # (q, q') only
        self._set_data(np.ascontiguousarray(Ucat), y, 2.0 / mask.sum(axis=1))

    def _views(self, flat):
        out, start = [], 0
        for shape, size in zip(self.shapes, self.sizes):
            out.append(flat[:, start : start + size].reshape((flat.shape[0],) + shape))
            start += size
        return out

    def _set_data(self, Ucat, y, two_over_n):
        super()._set_data(Ucat, y, two_over_n)
        self.scratch = np.empty_like(self.theta)
        self.p = self._views(self.theta)
        self.gp = self._views(self.grad)
        # work arrays of the forward and backward passes, reused every step (allocating them
        # afresh costs more than the arithmetic once a batch holds tens of runs)
        R, N = y.shape
        W = self.shapes[3][0]
        self.yH, self.f = np.empty((R, N, 1)), np.empty((R, N, 1))
        self.z1, self.h1, self.z2, self.h2, self.e1, self.e2 = (np.empty((R, N, W)) for _ in range(6))
        self.active_unit = np.empty((R, N, W), dtype=bool)

    def keep(self, idx):
        self.theta, self.m, self.v = self.theta[idx], self.m[idx], self.v[idx]
        self._set_data(self.Ucat[idx], self.y[idx], self.two_over_n[idx])

    def params_of(self, theta):
        return tuple(p.copy() for p in self._views(theta))

    def loss_and_grad(self):
        a, b, c, W1, W2, W3 = self.p
        ga, gb, gc, gW1, gW2, gW3 = self.gp
        R, H = a.shape[0], self.exponents.shape[0]
        V = np.power(a[:, :, None], self.exponents)  # (R, D, H): a_i^j
        cb = b * c
        K = np.matmul(cb[:, None, :], V)  # (R, 1, H)
        yH = np.matmul(self.Ur, K.transpose(0, 2, 1), out=self.yH)  # (R, N, 1)
        z1 = np.multiply(yH, W1[:, None, :], out=self.z1)  # (R, N, W)
        h1 = np.maximum(z1, 0.0, out=self.h1)
        z2 = np.matmul(h1, W2.transpose(0, 2, 1), out=self.z2)
        h2 = np.maximum(z2, 0.0, out=self.h2)
        err = np.matmul(h2, W3[:, :, None], out=self.f)[..., 0]  # (R, N): f
        err -= self.y
        loss = np.matmul(err[:, None, :], err[:, :, None])[:, 0, 0]
        loss *= self.half_two_over_n
        err *= self.two_over_n[:, None]  # s_n = dL/df_n
        np.matmul(err[:, None, :], h2, out=gW3[:, None, :])
        on = self.active_unit
        e2 = np.multiply(err[:, :, None], W3[:, None, :], out=self.e2)
        e2 *= np.greater(z2, 0.0, out=on)
        np.matmul(e2.transpose(0, 2, 1), h1, out=gW2)
        e1 = np.matmul(e2, W2, out=self.e1)
        e1 *= np.greater(z1, 0.0, out=on)
        np.matmul(yH.transpose(0, 2, 1), e1, out=gW1[:, None, :])
        dy = np.matmul(e1, W1[:, :, None], out=self.yH)  # (R, N, 1): s_n xi_n (yH is no longer needed)
        sums = np.matmul(dy.transpose(0, 2, 1), self.Ucat)  # (R, 1, 2H): (q, q')
        PdP = np.matmul(V, sums.reshape(R, 2, H).transpose(0, 2, 1))  # (R, D, 2)
        np.multiply(cb, PdP[..., 1], out=ga)
        np.multiply(c, PdP[..., 0], out=gb)
        np.multiply(b, PdP[..., 0], out=gc)
        return loss

    def update(self, t: int):
        cfg, grad, m, v = self.cfg, self.grad, self.m, self.v
        scale = cfg.lr * math.sqrt(1 - cfg.beta2 ** (t + 1)) / (1 - cfg.beta1 ** (t + 1))
        tmp = self.scratch
        m *= cfg.beta1
        m += np.multiply(grad, 1.0 - cfg.beta1, out=tmp)
        grad *= grad
        grad *= 1.0 - cfg.beta2
        v *= cfg.beta2
        v += grad
        np.sqrt(v, out=grad)
        grad += cfg.eps
        np.divide(m, grad, out=grad)
        grad *= scale
        self.theta -= grad

    def a_bound_ok(self):
        th = self.theta
        D = self.shapes[0][0]
        return np.isfinite(th).all(axis=1) & (np.abs(th[:, :D]) <= self.cfg.diverge_bound).all(axis=1)


def _descend(stepper, tol: float, extra_steps: int, max_steps: int, progress, observer: StepObserver | None = None):
    """Advance all runs together; returns ``(theta, loss, steps, status, reached_at)`` per run.

    At step t the loss is evaluated at the current parameters (after t updates). A run whose
    loss is non-finite (or, every :data:`CHECK_EVERY` steps, whose parameters are non-finite
    or out of bounds) is diverged; a run that first has ``loss <= tol`` records
    ``reached_at = t``; a run with ``t - reached_at == extra_steps`` is converged. Finished
    runs leave the batch; the others are updated.
    """
    R = stepper.theta.shape[0]
    ids = np.arange(R)  # original index of each row still in the batch
    status = np.full(R, "max_steps", dtype=object)
    reached = np.full(R, -1)
    steps = np.zeros(R, dtype=np.int64)
    final_loss = np.full(R, np.nan)
    final_theta = np.empty_like(stepper.theta)
    threshold = np.full(R, tol)  # tol until a run has reached it, then -inf
    next_done = math.inf  # the earliest step at which a run in the batch completes its extra steps
    due = iter(observer.steps if observer is not None else ())
    next_look = next(due, None)

    def retire(rows, t, loss, label):
        nonlocal ids, threshold
        orig = ids[rows]
        status[orig] = label
        final_loss[orig] = loss[rows]
        final_theta[orig] = stepper.theta[rows]
        steps[orig] = t
        keep = np.setdiff1d(np.arange(len(ids)), rows)
        stepper.keep(keep)
        ids, threshold = ids[keep], threshold[keep]
        return loss[keep]

    with np.errstate(all="ignore"):
        t = 0
        while True:
            loss = stepper.loss_and_grad()
            if not math.isfinite(loss.sum()) or (t % CHECK_EVERY == 0 and not stepper.a_bound_ok().all()):
                bad = np.flatnonzero(~(np.isfinite(loss) & stepper.a_bound_ok()))
                loss = retire(bad, t, loss, "diverged")
                if len(ids):
                    loss = stepper.loss_and_grad()  # recompute the gradient buffers for the kept rows
            if t == next_look:
                if len(ids):
                    observer.callback(t, ids.copy(), stepper.params_of(stepper.theta), loss.copy())
                next_look = next(due, None)
            if len(ids) and (loss <= threshold).any():
                hit = np.flatnonzero(loss <= threshold)
                reached[ids[hit]] = t
                threshold[hit] = -np.inf
                next_done = min(next_done, t + extra_steps)
            if len(ids) and t >= next_done:
                done = np.flatnonzero(reached[ids] + extra_steps == t)
                loss = retire(done, t, loss, "converged")
                pending = reached[ids]
                pending = pending[pending >= 0]
                next_done = pending.min() + extra_steps if len(pending) else math.inf
                if len(ids) and len(done):
                    loss = stepper.loss_and_grad()
            if progress is not None and (t % PROGRESS_EVERY == 0 or t == max_steps or not len(ids)):
                progress(t, len(ids))
            if not len(ids):
                break
            if t == max_steps:
                final_loss[ids] = loss
                final_theta[ids] = stepper.theta
                steps[ids] = t
                flat_grad = np.abs(stepper.grad.reshape(len(ids), -1))
                stalled = (reached[ids] < 0) & (flat_grad.max(axis=1) < STALL_GRAD)
                status[ids[stalled]] = "stalled"
                break
            stepper.update(t)
            t += 1
    return final_theta, final_loss, steps, status, reached


def _validate_runs(seeds, poisoned_flags, max_steps, init_draws=(0,)):
    """Runs ``(seed, poisoned, draw)``: seeds outer, then draws, then flags."""
    seeds = [require_int(f"seeds[{k}]", s, minimum=0) for k, s in enumerate(seeds)]
    flags = list(poisoned_flags)
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    if not flags or not all(isinstance(f, (bool, np.bool_)) for f in flags):
        raise ValueError(f"poisoned_flags must be a non-empty sequence of booleans, got {flags!r}")
    draws = [require_int(f"init_draws[{k}]", d, minimum=0) for k, d in enumerate(init_draws)]
    if not draws:
        raise ValueError("init_draws must hold at least one draw")
    max_steps = require_int("max_steps", max_steps, minimum=0)
    return [(s, bool(f), d) for s in seeds for d in draws for f in flags], max_steps


def _results(runs, params, loss, steps, status, reached, ext):
    return [
        RunResult(seed=s, poisoned=p, ext_error=float(ext[r]), train_loss=float(loss[r]), steps=int(steps[r]),
                  status=str(status[r]), reached_at=int(reached[r]) if reached[r] >= 0 else None,
                  params=tuple(x[r].copy() for x in params), init_draw=d)
        for r, (s, p, d) in enumerate(runs)
    ]


def _train_batch(config, config_type, problem, stepper_type, seeds, poisoned_flags, max_steps, progress, init_draws,
                 observer=None):
    """Validate, stack every run's problem into one batch and descend; returns ``(runs, (params, loss, steps,
    status, reached))`` with the trained parameters as a tuple of stacked arrays."""
    if not isinstance(config, config_type):
        raise ValueError(f"config must be a {config_type.__name__}, got {type(config).__name__}")
    runs, max_steps = _validate_runs(seeds, poisoned_flags, max_steps, init_draws)
    params, U, y, mask = _stack_problems([problem(config, s, p, d) for s, p, d in runs])
    stepper = stepper_type(config, params, U, y, mask)
    theta, loss, steps, status, reached = _descend(
        stepper, config.tol, config.reported_extra_steps, max_steps, progress, observer)
    return runs, (stepper.params_of(theta), loss, steps, status, reached)


def train_beyond(config: BeyondConfig, seeds, poisoned_flags, max_steps: int, progress: Progress | None = None,
                 init_draws=(0,), observer: StepObserver | None = None):
    """Train one run per ``(seed, init_draw, poisoned)`` (seeds outer, flags inner), all in one batch.

    Extrapolation error: ``max_{0<=j<J} |K_j - K*_j| / max_j |K*_j|`` with ``K*_j = 1``, J = ``ext_length``.
    Returns a list of :class:`RunResult` in the order of the runs. ``observer`` (optional) sees
    the batch at chosen steps (:class:`StepObserver`).
    """
    runs, (params, loss, steps, status, reached) = _train_batch(
        config, BeyondConfig, beyond_problem, _BeyondStepper, seeds, poisoned_flags, max_steps, progress, init_draws,
        observer)
    with np.errstate(all="ignore"):
        ext = np.abs(impulse_response(*params, config.ext_length) - 1.0).max(axis=1)
    return _results(runs, params, loss, steps, status, reached, ext)


def train_nonlinear(config: NonlinearConfig, seeds, poisoned_flags, max_steps: int,
                    progress: Progress | None = None, init_draws=(0,), observer: StepObserver | None = None):
    """Train one run per ``(seed, init_draw, poisoned)`` of the non-linear row (SSM + ReLU head, Adam), in one batch.

    Extrapolation error: :func:`nonlinear_extrapolation_error` over the run's test sequences
    (:func:`nonlinear_test_inputs`). ``observer`` as in :func:`train_beyond`.
    """
    runs, (params, loss, steps, status, reached) = _train_batch(
        config, NonlinearConfig, nonlinear_problem, _NonlinearStepper, seeds, poisoned_flags, max_steps, progress,
        init_draws, observer)
    tests = {s: nonlinear_test_inputs(config, s) for s in {s for s, _, _ in runs}}
    ext = np.array([nonlinear_extrapolation_error(config, tests[s], tuple(p[r] for p in params))
                    for r, (s, _, _) in enumerate(runs)])
    return _results(runs, params, loss, steps, status, reached, ext)


def nonlinear_extrapolation_error(config: NonlinearConfig, test_inputs, params) -> float:
    """``||f(U) - f*(U)||_2 / ||f*(U)||_2`` for one run's parameters ``(a, b, c, W1, W2, W3)``.

    ``f(u) = g(sum_j K_j u_{J-1-j})`` is the student (SSM of impulse response ``K`` over the
    test length ``J``, then its head g), ``f*`` the teacher, ``U`` the test sequences (rows).
    """
    a, b, c, *weights = params
    with np.errstate(all="ignore"):
        K = impulse_response(a, b, c, config.ext_length)
        target = _teacher(test_inputs, config.width)
        f = mlp_forward(tuple(w[None] for w in weights), (K @ test_inputs[:, ::-1].T)[None])[0][0]
        return float(np.linalg.norm(f - target) / np.linalg.norm(target))
