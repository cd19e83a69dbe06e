"""Data and initialisation of the GD rows ("beyond" and "non-linear"), as the paper's code draws them.

* **Data.** The training sequences (and the non-linear row's test sequences) are drawn by
  numpy's *legacy* global generator seeded with the run's seed (``seed + ext_seed_offset``
  for the test sequences), replayed exactly with ``np.random.RandomState``.
* **Initialisation.** Keras' seeded initialisers ``RandomNormal(0, sd, seed=s)`` are *stateless*:
  each returns the first ``prod(shape)`` numbers (row-major) of TensorFlow's stateless normal
  stream for the seed pair ``[s, 0]``, ``z_0, z_1, ...`` (:func:`ssmpoison.verify._tf_random.tf_stateless_normal`,
  bit for bit), times ``sd`` in float32 (:func:`ssmpoison.verify._tf_random.keras_random_normal`).
  Every layer of the paper's model is seeded with the run's seed, so ``B = sd_bc z[:D]`` (kernel
  1×D), ``C = sd_bc z[:D]`` (kernel D×1: the same numbers), the recurrent kernel is
  ``sd_a z[:D*D]`` as a D×D matrix (its diagonal is ``z[0], z[D+1], ...``), and the MLP layers
  are ``sd_mlp z[:W]``, ``sd_mlp z[:W*W]`` (Keras kernel, input × output) and ``sd_mlp z[:W]``
  again. Those are the paper's initial weights, exactly; a float64 row holds them in float64, a
  float32 row (``dtype="float32"``, the paper's arithmetic) uses the float32 numbers as they are. Then,
  as the paper's code does, ``|A|`` and ``|B|`` are sorted descending, ``C`` is ``|C|`` in
  reversed order (the code's ``np.flip(np.sort(...))`` sorts a length-1 axis), the paper's gap
  is set on A and B (:func:`ssmpoison.theory._construction.with_paper_gap`, computed from
  ``sd_a``) and the warm start added. Initialisation draw ``d > 0`` (the spread's further
  initialisations of a seed, its data fixed) takes the same kernels from the stream of the
  seed pair ``[s, d]``. With ``shared_init_stream=False`` (note 00 §6 read literally) each
  parameter gets numbers of its own: consecutive, disjoint pieces of that stream.
* **Batches.** Runs have different training sets (the poisoned runs hold more sequences), so a
  batch pads the inputs to ``(R, N_max, H)`` with zero rows and zero labels
  (:func:`stack_problems`); a padded row has output 0 and label 0, so its residual is 0.
* **Arithmetic.** A problem is in its config's ``dtype``: in float32 the inputs are the float64
  draws rounded to float32 and the labels are computed from those float32 inputs in float32, as
  the paper's Keras teacher model computes them.
* **Perturbations.** :func:`perturb_initial` multiplies a run's initial weights by
  ``1 + eps xi`` with ``xi ~ N(0, 1)`` drawn from the run's identity (seed, condition, index k):
  the robustness of a run is judged on K such re-runs (:mod:`ssmpoison.verify._gd_rows`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ssmpoison.theory._construction import paper_gap, with_paper_gap
from ssmpoison.theory._validation import require_int, require_real
from ssmpoison.verify._mlp import mlp_forward, teacher_weights
from ssmpoison.verify._tf_random import keras_random_normal, tf_stateless_normal

if TYPE_CHECKING:  # the configs live in ssmpoison.verify._gd_config
    from ssmpoison.verify._gd_config import BeyondConfig, NonlinearConfig

__all__ = [
    "init_stream",
    "keras_kernel",
    "init_ssm",
    "paper_sequences",
    "beyond_problem",
    "nonlinear_problem",
    "nonlinear_test_inputs",
    "teacher_outputs",
    "beyond_labels",
    "stack_problems",
    "perturb_initial",
]


def _seed_pair(seed: int, draw: int) -> tuple[int, int]:
    """TensorFlow's seed pair ``[seed, draw]`` of initialisation draw ``draw`` (``[seed, 0]``: Keras')."""
    return (require_int("seed", seed, minimum=0, maximum=2**63 - 1), require_int("init_draw", draw, minimum=0, maximum=2**63 - 1))


def init_stream(seed: int, length: int, draw: int = 0, dtype: str = "float64") -> np.ndarray:
    """The normal stream ``z`` shared by all seeded initialisers of one model: TensorFlow's, for the seed pair ``[seed, draw]``.

    Arguments:
        seed: the run's seed (``0 <= seed < 2^63``).
        length: how many numbers.
        draw: the initialisation draw; 0 is the paper's (Keras passes ``[seed, 0]``), ``draw > 0``
            a further, independent stream for the same seed.
        dtype: ``"float64"`` or ``"float32"``, the type of the returned array.

    Returns:
        ``z`` of shape ``(length,)``: the float32 numbers of
        :func:`ssmpoison.verify._tf_random.tf_stateless_normal`, held in ``dtype``.

    Raises:
        ValueError: a negative or non-integer ``seed``, ``length`` or ``draw``.
    """
    return tf_stateless_normal(length, _seed_pair(seed, draw)).astype(dtype, copy=False)


def keras_kernel(shape, sd: float, seed: int, draw: int = 0, dtype: str = "float64") -> np.ndarray:
    """The weights of a Keras layer whose kernel of ``shape`` is initialised by ``RandomNormal(0, sd, seed=seed)``.

    ``fl32(fl32(sd) z_j)`` for the first ``prod(shape)`` numbers of the stream of ``[seed, draw]``,
    row-major (:func:`ssmpoison.verify._tf_random.keras_random_normal`), held in ``dtype`` (in
    float32: Keras' numbers themselves).

    Arguments:
        shape: the kernel's shape (Keras: input × output).
        sd: the initialiser's standard deviation.
        seed, draw, dtype: as in :func:`init_stream`.

    Returns:
        An array of shape ``shape`` and type ``dtype``.

    Raises:
        ValueError: a bad shape, ``sd``, ``seed`` or ``draw``.
    """
    return keras_random_normal(shape, sd, _seed_pair(seed, draw)).astype(dtype, copy=False)


def _finish_ssm_init(a, b, c, gap_k: float, sd_a: float, warm_start: float, extra_gaps=()):
    """The paper's code after the initialisers: sort ``|a|``, ``|b|`` descending, the gap on both (and the further gaps
    ``x[2+k] = x[0] - extra_gaps[k] diff``), the warm start; ``|c|``."""
    a = with_paper_gap(np.sort(np.abs(a))[::-1], sd_a, gap_k)
    b = with_paper_gap(np.sort(np.abs(b))[::-1], sd_a, gap_k)
    if extra_gaps:
        diff = paper_gap(sd_a, gap_k)
        for k, g in enumerate(extra_gaps):
            a[2 + k] = a[0] - g * diff
            b[2 + k] = b[0] - g * diff
    return a + warm_start, b + warm_start, np.abs(c)


def init_ssm(stream, state_dim: int, sd_a: float, sd_bc: float, gap_k: float, warm_start: float):
    """The initial ``(a, b, c)`` of a GD row from a shared normal stream ``z``, the products taken in float64.

    The paper's code on the stream: ``a = sd_a z[::D+1][:D]`` (the diagonal of the D×D kernel
    ``sd_a z[:D*D]``), ``b = sd_bc z[:D]``, ``c = reversed(sd_bc z[:D])``. Then absolute values,
    A and B sorted descending, the gap ``a_2 = a_1 - diff``, ``b_2 = b_1 - diff`` with
    ``diff = 0.05 / exp(gap_k log10(1/sd_a))``, and the warm start ``a += warm_start``,
    ``b += warm_start``. (The rows themselves start from Keras' float32 kernels,
    :func:`keras_kernel`, and then follow the same steps.)

    Arguments:
        stream: the shared stream ``z`` (length ``>= D*D``).
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
    z = np.asarray(stream, dtype=float)
    if z.ndim != 1 or z.shape[0] < D * D:
        raise ValueError(f"the initialisation stream must hold at least D*D = {D * D} numbers")
    return _finish_ssm_init(sd_a * z[: D * D : D + 1], sd_bc * z[:D], (sd_bc * z[:D])[::-1], gap_k, sd_a, warm_start)


def _keras_ssm(seed: int, draw: int, D: int, sd_a: float, sd_bc: float, dtype: str):
    """The paper's SSM layers as Keras initialises them: the recurrent kernel's diagonal, B's and C's kernels, C reversed."""
    return (np.diag(keras_kernel((D, D), sd_a, seed, draw, dtype)).copy(), keras_kernel((1, D), sd_bc, seed, draw, dtype)[0],
            keras_kernel((D, 1), sd_bc, seed, draw, dtype)[::-1, 0])


def _independent(seed: int, draw: int, scales_and_sizes, dtype: str):
    """Independent initial parameters: consecutive, disjoint pieces of the stream of ``[seed, draw]``, each times its
    scale (in ``dtype``)."""
    z = init_stream(seed, sum(n for _, n in scales_and_sizes), draw, dtype)
    ends = np.cumsum([0] + [n for _, n in scales_and_sizes])
    return [z.dtype.type(sd) * z[start:end] for (sd, _), start, end in zip(scales_and_sizes, ends[:-1], ends[1:])]


def paper_sequences(seed: int, horizon: int, n_baseline: int, positions, n_special: int, special_positions=None):
    """The paper's training sequences for ``seed``, drawn exactly as its ``generate_inputs``.

    ``np.random.seed(seed)``, then one N(0,1) per baseline position for each baseline sequence
    in turn (positions ascending), then one N(0,1) per special position for each special
    sequence in turn (positions ascending).

    Arguments:
        seed: the run's seed.
        horizon: H.
        n_baseline: number of non-special sequences.
        positions: the positions that are non-zero in a non-special sequence.
        n_special: number of special sequences.
        special_positions: the positions that are non-zero in a special sequence (default ``(H-2,)``).

    Returns:
        ``(baseline (n_baseline, H), special (n_special, H))``. The clean and poisoned runs of
        a seed share the baseline sequences.
    """
    rs = np.random.RandomState(require_int("seed", seed, minimum=0))
    positions = sorted(positions)
    special_positions = [horizon - 2] if special_positions is None else sorted(special_positions)
    base = np.zeros((n_baseline, horizon))
    base[:, positions] = rs.normal(0.0, 1.0, size=(n_baseline, len(positions)))
    special = np.zeros((n_special, horizon))
    special[:, special_positions] = rs.normal(0.0, 1.0, size=(n_special, len(special_positions)))
    return base, special


def _inputs(config, seed: int, poisoned: bool) -> np.ndarray:
    """The run's training inputs (:func:`paper_sequences`, the special ones appended when ``poisoned``) in ``config.dtype``."""
    base, special = paper_sequences(seed, config.horizon, config.n_baseline, config.baseline_positions, config.n_special,
                                    special_positions=config.special_support)
    U = np.vstack([base, special]) if poisoned else base
    return U.astype(config.dtype, copy=False)


def beyond_labels(config: BeyondConfig, U) -> np.ndarray:
    """The beyond row's labels ``y*(u) = sum_k K*_{H-1-k} u_k`` of the rows of ``U``, in the type of ``U``.

    ``K*_j = sum_i (a*_i)^j`` is the teacher's impulse response (:meth:`BeyondConfig.teacher_impulse`, rounded to
    the type of ``U``). For the default teacher ``K*_j = 1`` the labels are ``sum_k u_k`` (``U.sum(axis=1)``).

    Arguments:
        config: the row's settings (a ``BeyondConfig``).
        U: inputs, shape ``(N, H)``.

    Returns:
        Shape ``(N,)``.
    """
    U = np.asarray(U)
    if config.teacher_a == (1.0,):
        return U.sum(axis=1)
    K = config.teacher_impulse(U.shape[1]).astype(U.dtype)
    return U @ K[::-1]


def beyond_problem(config: BeyondConfig, seed: int, poisoned: bool, init_draw: int = 0):
    """One run of the beyond row: its initial ``(a, b, c)``, inputs ``U`` and labels ``y*(u)`` (:func:`beyond_labels`).

    The clean and poisoned runs of a seed share initialisation and baseline data; the data do
    not depend on ``init_draw``.

    Arguments:
        config: the row's settings (a ``BeyondConfig``).
        seed: the run's seed.
        poisoned: whether the special sequences are added.
        init_draw: the initialisation draw.

    Returns:
        ``((a, b, c), U of shape (N, H), y of shape (N,))``, all of type ``config.dtype``.
    """
    seed = require_int("seed", seed, minimum=0)
    D, dtype = config.state_dim, config.dtype
    if config.shared_init_stream:
        a, b, c = _keras_ssm(seed, init_draw, D, config.sd_a, config.sd_bc, dtype)
    else:
        a, b, c = _independent(seed, init_draw, [(config.sd_a, D), (config.sd_bc, D), (config.sd_bc, D)], dtype)
    params = _finish_ssm_init(a, b, c, config.gap_k, config.sd_a, config.warm_start, config.extra_gaps)
    U = _inputs(config, seed, poisoned)
    return params, U, beyond_labels(config, U)


def nonlinear_problem(config: NonlinearConfig, seed: int, poisoned: bool, init_draw: int = 0):
    """One run of the non-linear row: initial ``(a, b, c, W1, W2, W3)``, inputs ``U`` and teacher labels ``f*(u)``.

    ``W2`` is stored as ``z2 = W2 h1`` (:mod:`ssmpoison.verify._mlp`), the transpose of Keras' kernel.

    Arguments:
        config: the row's settings (a ``NonlinearConfig``).
        seed, poisoned, init_draw: as in :func:`beyond_problem`.

    Returns:
        ``((a, b, c, W1, W2, W3), U of shape (N, H), y of shape (N,))``, all of type ``config.dtype``.
    """
    seed = require_int("seed", seed, minimum=0)
    D, W, dtype = config.state_dim, config.width, config.dtype
    if config.shared_init_stream:
        a, b, c = _keras_ssm(seed, init_draw, D, config.sd_ssm, config.sd_ssm, dtype)
        W1 = keras_kernel((1, W), config.sd_mlp, seed, init_draw, dtype)[0]
        W2 = keras_kernel((W, W), config.sd_mlp, seed, init_draw, dtype).T.copy()
        W3 = keras_kernel((W, 1), config.sd_mlp, seed, init_draw, dtype)[:, 0]
    else:
        sd, sd_mlp = config.sd_ssm, config.sd_mlp
        a, b, c, W1, W2, W3 = _independent(
            seed, init_draw, [(sd, D), (sd, D), (sd, D), (sd_mlp, W), (sd_mlp, W * W), (sd_mlp, W)], dtype)
        W2 = W2.reshape(W, W)
    a, b, c = _finish_ssm_init(a, b, c, config.gap_k, config.sd_ssm, config.warm_start, config.extra_gaps)
    U = _inputs(config, seed, poisoned)
    return (a, b, c, W1, W2, W3), U, teacher_outputs(U, W)


def nonlinear_test_inputs(config: NonlinearConfig, seed: int, poisoned: bool = False) -> np.ndarray:
    """The paper's test sequences of run ``seed``: ``normal(0, 1, (ext_samples, extrapolation_length))`` from numpy's
    legacy generator.

    With ``ext_seed_offset`` an integer the generator is seeded with ``seed + ext_seed_offset`` (the poison
    notebook's ``np.random.seed(seed + 12)``); with ``ext_seed_offset=None`` it continues the stream of the run's
    training sequences (the dynamics notebook: seeded with ``seed``, the baseline sequences, the special ones when
    ``poisoned``, then the test sequences), so the test sequences depend on the condition.

    Arguments:
        config: the row's settings; seed: the run's seed; poisoned: the condition (used only with
            ``ext_seed_offset=None``).

    Returns:
        Shape ``(ext_samples, extrapolation_length)``, type ``config.dtype`` (the draws rounded to it).
    """
    seed = require_int("seed", seed, minimum=0)
    if config.ext_seed_offset is None:
        rs = np.random.RandomState(seed)
        rs.normal(0.0, 1.0, size=(config.n_baseline, len(config.baseline_positions)))
        if poisoned:
            rs.normal(0.0, 1.0, size=(config.n_special, len(config.special_support)))
    else:
        rs = np.random.RandomState(seed + config.ext_seed_offset)
    return rs.normal(0.0, 1.0, size=(config.ext_samples, config.extrapolation_length)).astype(config.dtype, copy=False)


def teacher_outputs(U, width: int):
    """The non-linear row's teacher ``f*(u) = g*(sum_k u_k)`` (SSM ``A* = B* = C* = 1``, head ``g*``) for the rows of ``U``.

    Returns:
        Shape ``(N,)``, computed in the type of ``U`` (float32 or float64).
    """
    U = np.asarray(U)
    weights = tuple(w[None].astype(U.dtype, copy=False) for w in teacher_weights(width))
    return mlp_forward(weights, U.sum(axis=1)[None])[0][0]


def stack_problems(problems):
    """Stack per-run problems ``(params, U, y)`` into one batch.

    Returns:
        ``(params, U, y, mask)``: each parameter stacked ``(R, ...)``, the inputs zero-padded to
        ``(R, N_max, H)``, the labels ``(R, N_max)`` and ``mask`` (1 on real rows, 0 on padding), in the
        problems' number type.
    """
    n_max = max(U.shape[0] for _, U, _ in problems)
    R, H = len(problems), problems[0][1].shape[1]
    dtype = np.result_type(*(U for _, U, _ in problems))
    U = np.zeros((R, n_max, H), dtype=dtype)
    y = np.zeros((R, n_max), dtype=dtype)
    mask = np.zeros((R, n_max), dtype=dtype)
    for r, (_, Ur, yr) in enumerate(problems):
        U[r, : len(Ur)], y[r, : len(Ur)], mask[r, : len(Ur)] = Ur, yr, 1.0
    params = [np.stack([p[k] for p, _, _ in problems]) for k in range(len(problems[0][0]))]
    return params, U, y, mask


def perturb_initial(params, seed: int, poisoned: bool, index: int, size: float):
    """A run's initial weights perturbed multiplicatively: ``p <- p (1 + size xi)``, entry by entry.

    ``xi ~ N(0, 1)`` are drawn by ``numpy.random.default_rng([seed, poisoned, index])`` (PCG64,
    one array of each parameter's shape, in the order of ``params``), so the same run and index
    always get the same perturbation, whatever the arithmetic; the product is taken in float64
    and rounded to each parameter's type (in float32 a relative size of ``1e-7`` moves an entry
    by at most about one unit in the last place). ``index = 0`` or ``size = 0`` returns the
    weights unchanged (bit for bit).

    Arguments:
        params: the initial parameters of one run (arrays).
        seed: the run's seed.
        poisoned: its condition (False without, True with the special sequences).
        index: k >= 0, which perturbation (0: none).
        size: eps >= 0, the relative size.

    Returns:
        The perturbed parameters, a tuple of arrays of the same shapes and types.

    Raises:
        ValueError: a negative or non-integer ``seed`` or ``index``, or a ``size`` that is negative or not finite.
    """
    seed = require_int("seed", seed, minimum=0)
    index = require_int("index", index, minimum=0)
    size = float(require_real("size", size, nonnegative=True))
    if index == 0 or size == 0:
        return tuple(params)
    rng = np.random.default_rng([seed, int(bool(poisoned)), index])
    out = []
    for p in params:
        p = np.asarray(p)
        factor = 1.0 + float(size) * rng.standard_normal(p.shape)
        out.append((p.astype(np.float64) * factor).astype(p.dtype))
    return tuple(out)
