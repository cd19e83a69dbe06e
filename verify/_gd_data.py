"""Data and initialisation of the GD rows ("beyond" and "non-linear"), as the paper's code draws them.

* **Data.** The training sequences (and the non-linear row's test sequences) are drawn by
  numpy's *legacy* global generator seeded with the run's seed (``seed + ext_seed_offset``
  for the test sequences), replayed exactly with ``np.random.RandomState``.
* **Initialisation.** Keras' seeded initialisers are *stateless*: every initialiser of a model
  seeded with the same seed returns the same normal stream ``z_0, z_1, ...`` cut to its shape.
  So ``B = sd_bc z[:D]``, ``C = sd_bc z[:D]`` (the same numbers), the recurrent matrix is
  ``sd_a z[:D*D]`` as a D×D matrix (its diagonal is ``z[0], z[D+1], ...``), and the MLP layers
  are ``sd_mlp z[:W]``, ``sd_mlp z[:W*W]`` (Keras kernel, input × output) and ``sd_mlp z[:W]``
  again. Then ``|A|`` and ``|B|`` are sorted descending, ``C`` is ``|C|`` in reversed order (the
  code's ``np.flip(np.sort(...))`` sorts a length-1 axis), the paper's gap is set on A and B
  (:func:`ssmpoison.theory._construction.with_paper_gap`, computed from ``sd_a``) and the warm
  start added. TensorFlow's stream itself cannot be replayed (Philox in float32): ``z`` comes
  from ``np.random.default_rng(seed)`` (:func:`init_stream`).
* **Batches.** Runs have different training sets (the poisoned runs hold more sequences), so a
  batch pads the inputs to ``(R, N_max, H)`` with zero rows and zero labels
  (:func:`stack_problems`); a padded row has output 0 and label 0, so its residual is 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ssmpoison.theory._construction import with_paper_gap
from ssmpoison.theory._validation import require_int
from ssmpoison.verify._mlp import mlp_forward, teacher_weights

if TYPE_CHECKING:  # the configs live in ssmpoison.verify._gd_config
    from ssmpoison.verify._gd_config import BeyondConfig, NonlinearConfig

__all__ = [
    "init_rng",
    "init_stream",
    "init_ssm",
    "paper_sequences",
    "beyond_problem",
    "nonlinear_problem",
    "nonlinear_test_inputs",
    "teacher_outputs",
    "stack_problems",
]


def init_rng(seed: int, draw: int) -> np.random.Generator:
    """The generator of initialisation draw ``draw`` of run ``seed``.

    Arguments:
        seed: the run's seed (``>= 0``).
        draw: the initialisation draw (``>= 0``); draw 0 is ``default_rng(seed)``, draw ``d > 0``
            ``default_rng([seed, d])``.

    Returns:
        A ``np.random.Generator``.

    Raises:
        ValueError: a negative or non-integer ``seed`` or ``init_draw``.
    """
    seed = require_int("seed", seed, minimum=0)
    draw = require_int("init_draw", draw, minimum=0)
    return np.random.default_rng(seed if draw == 0 else [seed, draw])


def init_stream(seed: int, length: int, draw: int = 0) -> np.ndarray:
    """The normal stream ``z`` shared by all seeded initialisers of one model (stand-in for Keras').

    Arguments:
        seed: the run's seed.
        length: how many numbers.
        draw: further, independent streams for the same seed (``draw > 0``): the spread of a
            row over initialisations, with the seed's training data fixed.

    Returns:
        ``z ~ N(0, 1)``, shape ``(length,)``.
    """
    return init_rng(seed, draw).standard_normal(length)


def _finish_ssm_init(a, b, c, gap_k: float, sd_a: float, warm_start: float):
    a = with_paper_gap(np.sort(np.abs(a))[::-1], sd_a, gap_k)
    b = with_paper_gap(np.sort(np.abs(b))[::-1], sd_a, gap_k)
    return a + warm_start, b + warm_start, np.abs(c)


def init_ssm(rng_or_stream, state_dim: int, sd_a: float, sd_bc: float, gap_k: float, warm_start: float):
    """The initial ``(a, b, c)`` of a GD row.

    From the draws: ``rng_or_stream`` a ``np.random.Generator`` gives independent ``N(0, sd)``
    draws (a, then b, then c); an array ``z`` (the shared stream, length ``>= D*D``) gives the
    paper's code, ``a = sd_a z[::D+1][:D]``, ``b = sd_bc z[:D]``, ``c = reversed(sd_bc z[:D])``.
    Then absolute values, A and B sorted descending, the gap ``a_2 = a_1 - diff``,
    ``b_2 = b_1 - diff`` with ``diff = 0.05 / exp(gap_k log10(1/sd_a))``, and the warm start
    ``a += warm_start``, ``b += warm_start``.

    Arguments:
        rng_or_stream: a generator or the shared stream.
        state_dim: D.
        sd_a, sd_bc: scales of A and of B, C.
        gap_k: the gap exponent k.
        warm_start: added to A and B.

    Returns:
        ``(a, b, c)``, each of shape ``(D,)``.

    Raises:
        ValueError: a stream shorter than ``D*D``.
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
    """The paper's training sequences for ``seed``, drawn exactly as its ``generate_inputs``.

    ``np.random.seed(seed)``, then one N(0,1) per baseline position for each baseline sequence
    in turn (positions ascending), then one N(0,1) at ``H-2`` for each special sequence.

    Arguments:
        seed: the run's seed.
        horizon: H.
        n_baseline: number of non-special sequences.
        positions: the positions that are non-zero in a non-special sequence.
        n_special: number of special sequences (non-zero only at ``H-2``).

    Returns:
        ``(baseline (n_baseline, H), special (n_special, H))``. The clean and poisoned runs of
        a seed share the baseline sequences.
    """
    rs = np.random.RandomState(require_int("seed", seed, minimum=0))
    positions = sorted(positions)
    base = np.zeros((n_baseline, horizon))
    base[:, positions] = rs.normal(0.0, 1.0, size=(n_baseline, len(positions)))
    special = np.zeros((n_special, horizon))
    special[:, horizon - 2] = rs.normal(0.0, 1.0, size=n_special)
    return base, special


def beyond_problem(config: BeyondConfig, seed: int, poisoned: bool, init_draw: int = 0):
    """One run of the beyond row: its initial ``(a, b, c)``, inputs ``U`` and labels ``y*(u) = sum_k u_k``.

    The clean and poisoned runs of a seed share initialisation and baseline data; the data do
    not depend on ``init_draw``.

    Arguments:
        config: the row's settings (a ``BeyondConfig``).
        seed: the run's seed.
        poisoned: whether the special sequences are added.
        init_draw: the initialisation draw.

    Returns:
        ``((a, b, c), U of shape (N, H), y of shape (N,))``.
    """
    seed = require_int("seed", seed, minimum=0)
    D = config.state_dim
    source = init_stream(seed, D * D, init_draw) if config.shared_init_stream else init_rng(seed, init_draw)
    params = init_ssm(source, D, config.sd_a, config.sd_bc, config.gap_k, config.warm_start)
    base, special = paper_sequences(seed, config.horizon, config.n_baseline, config.baseline_positions, config.n_special)
    U = np.vstack([base, special]) if poisoned else base
    return params, U, U.sum(axis=1)


def nonlinear_problem(config: NonlinearConfig, seed: int, poisoned: bool, init_draw: int = 0):
    """One run of the non-linear row: initial ``(a, b, c, W1, W2, W3)``, inputs ``U`` and teacher labels ``f*(u)``.

    ``W2`` is stored as ``z2 = W2 h1`` (:mod:`ssmpoison.verify._mlp`), the transpose of Keras' kernel.

    Arguments:
        config: the row's settings (a ``NonlinearConfig``).
        seed, poisoned, init_draw: as in :func:`beyond_problem`.

    Returns:
        ``((a, b, c, W1, W2, W3), U of shape (N, H), y of shape (N,))``.
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
        rng = init_rng(seed, init_draw)
        a, b, c = init_ssm(rng, D, config.sd_ssm, config.sd_ssm, config.gap_k, config.warm_start)
        W1 = rng.normal(0.0, config.sd_mlp, W)
        W2 = rng.normal(0.0, config.sd_mlp, (W, W))
        W3 = rng.normal(0.0, config.sd_mlp, W)
    base, special = paper_sequences(seed, config.horizon, config.n_baseline, config.baseline_positions, config.n_special)
    U = np.vstack([base, special]) if poisoned else base
    return (a, b, c, W1, W2, W3), U, teacher_outputs(U, W)


def nonlinear_test_inputs(config: NonlinearConfig, seed: int) -> np.ndarray:
    """The paper's test sequences of run ``seed``: ``np.random.seed(seed + 12)``, then ``normal(0, 1, (ext_samples, extrapolation_length))``.

    Returns:
        Shape ``(ext_samples, extrapolation_length)``.
    """
    seed = require_int("seed", seed, minimum=0)
    rs = np.random.RandomState(seed + config.ext_seed_offset)
    return rs.normal(0.0, 1.0, size=(config.ext_samples, config.extrapolation_length))


def teacher_outputs(U, width: int):
    """The non-linear row's teacher ``f*(u) = g*(sum_k u_k)`` (SSM ``A* = B* = C* = 1``, head ``g*``) for the rows of ``U``.

    Returns:
        Shape ``(N,)``.
    """
    weights = tuple(w[None] for w in teacher_weights(width))
    return mlp_forward(weights, U.sum(axis=1)[None])[0][0]


def stack_problems(problems):
    """Stack per-run problems ``(params, U, y)`` into one batch.

    Returns:
        ``(params, U, y, mask)``: each parameter stacked ``(R, ...)``, the inputs zero-padded to
        ``(R, N_max, H)``, the labels ``(R, N_max)`` and ``mask`` (1 on real rows, 0 on padding).
    """
    n_max = max(U.shape[0] for _, U, _ in problems)
    R, H = len(problems), problems[0][1].shape[1]
    U = np.zeros((R, n_max, H))
    y = np.zeros((R, n_max))
    mask = np.zeros((R, n_max))
    for r, (_, Ur, yr) in enumerate(problems):
        U[r, : len(Ur)], y[r, : len(Ur)], mask[r, : len(Ur)] = Ur, yr, 1.0
    params = [np.stack([p[k] for p, _, _ in problems]) for k in range(len(problems[0][0]))]
    return params, U, y, mask
