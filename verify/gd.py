"""Gradient-descent trainers of the "beyond" and "non-linear" rows of Table 1: settings and the public names.

The beyond row trains A, B, C of the bare SSM (teacher ``A* = B* = C* = 1``) by full-batch GD
with the adaptive step; the non-linear row trains the SSM followed by a bias-free ReLU head
(:mod:`ssmpoison.verify.mlp`) with Adam. Each row's settings are a config below
(:class:`BeyondConfig`, :class:`NonlinearConfig`); the rest lives in private modules, one per
concept, and is re-exported here:

* :mod:`ssmpoison.verify._gd_data` — the paper's data and initialisation (its code replayed:
  numpy's legacy generator for the data, Keras' shared seeded stream for the initialisation,
  the paper's gap and warm start) and the padded batch;
* :mod:`ssmpoison.verify._gd_objectives` — the reference loss and gradient of a batch, from the
  formulas of :mod:`ssmpoison.verify.kernels` (``ssm_outputs`` is :func:`ssmpoison.verify.kernels.outputs`);
* :mod:`ssmpoison.verify._gd_optimisers` — :class:`AdaptiveStep` and :class:`Adam` in reference form;
* :mod:`ssmpoison.verify._gd_steppers` — the fused batched steppers (the same arithmetic in a few
  numpy calls per step; tests hold them to the reference objectives and optimisers);
* :mod:`ssmpoison.verify._gd_training` — the training loop (every run of a row in one batch, each
  with its own stopping), :class:`RunResult` and the extrapolation errors.

What the paper's code does beyond the row's description, each a setting on by default so that
the published procedure is what runs: the data and initialisation above
(``shared_init_stream``); the adaptive step normalised by the gradient of the whole D×D
recurrent matrix, off-diagonal entries included (``full_matrix_norm``;
:func:`ssmpoison.verify.kernels.neg_grad_a_matrix`); and the values reported after
:attr:`BeyondConfig.reported_extra_steps` extra updates, the last logged epoch
(``log_period = 100``; ``log_period = 1`` gives "then ``extra_steps`` more steps" literally).

The paper trained in float32; these trainers use float64 by default (``dtype="float32"`` trains
in the paper's precision; ``benchmarks/gd_rows.py`` measures the difference).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ssmpoison.theory.validation import require_int, require_real

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
    "beyond_objective",
    "nonlinear_objective",
    "beyond_problem",
    "nonlinear_problem",
    "nonlinear_test_inputs",
    "train_beyond",
    "train_nonlinear",
    "beyond_extrapolation_error",
    "nonlinear_extrapolation_error",
    "StepObserver",
]


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
    return tuple(sorted(out))


def _require_unit_interval(name: str, value) -> float:
    value = float(require_real(name, value))
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return value


def _require_bool(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _reported_extra(extra_steps: int, log_period: int) -> int:
    """Extra updates after the threshold at the last logged epoch: epochs ``0..E-1`` of the second
    ``fit`` are logged when ``epoch % P == 0``; after epoch e, e + 1 updates were made."""
    if extra_steps == 0:
        return 0
    return (extra_steps - 1) // log_period * log_period + 1


@dataclass(frozen=True)
class BeyondConfig:
    """Settings of the "beyond" row: A, B, C trained by full-batch GD with the adaptive step.

    Teacher ``K*_j = 1`` for all j (``A* = B* = C* = 1``), so the label of u is ``sum_k u_k``.
    The defaults are the H = 6 row; :meth:`paper` also gives the code's H = 10 variant.
    The gap ``diff = 0.05 / exp(gap_k log10(1/sd_a))`` is applied to both A and B.
    ``full_matrix_norm``, ``shared_init_stream`` and ``log_period`` follow the paper's code
    (module docstring); ``False, False, 1`` give SPEC §6 read literally. ``dtype="float32"``
    trains in the paper's precision (initialisation and data are rounded to it).
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
    log_period: int = 100
    ext_length: int = 40
    diverge_bound: float = 1e3
    full_matrix_norm: bool = True
    shared_init_stream: bool = True
    dtype: str = "float64"

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        set_("horizon", require_int("horizon", self.horizon, minimum=3))
        set_("state_dim", require_int("state_dim", self.state_dim, minimum=2))
        if self.dtype not in ("float64", "float32"):
            raise ValueError(f"dtype must be 'float64' or 'float32' (the paper's), got {self.dtype!r}")
        for name in ("sd_a", "sd_bc", "lr", "lr_eps", "tol", "diverge_bound"):
            set_(name, float(require_real(name, getattr(self, name), positive=True)))
        for name in ("gap_k", "warm_start"):
            set_(name, float(require_real(name, getattr(self, name), nonnegative=True)))
        set_("beta", _require_unit_interval("beta", self.beta))
        set_("n_baseline", require_int("n_baseline", self.n_baseline, minimum=1))
        set_("n_special", require_int("n_special", self.n_special, minimum=1))
        set_("extra_steps", require_int("extra_steps", self.extra_steps, minimum=0))
        set_("log_period", require_int("log_period", self.log_period, minimum=1))
        set_("ext_length", require_int("ext_length", self.ext_length, minimum=1))
        set_("baseline_positions", _require_positions("baseline_positions", self.baseline_positions, self.horizon))
        for name in ("full_matrix_norm", "shared_init_stream"):
            set_(name, _require_bool(name, getattr(self, name)))

    @property
    def reported_extra_steps(self) -> int:
        """Updates made after the threshold when the reported values are taken (1401 for 1500 / 100)."""
        return _reported_extra(self.extra_steps, self.log_period)

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

    Teacher: SSM ``A* = B* = C* = 1`` then the head of :func:`ssmpoison.verify.mlp.teacher_weights`,
    i.e. ``f*(u) = (W/2) relu(sum_k u_k)``. Adam follows Keras:
    ``theta -= lr sqrt(1-beta2^t)/(1-beta1^t) m / (sqrt(v) + eps)``.
    The extrapolation error of run ``seed`` uses the ``ext_samples`` sequences of length
    ``ext_length`` drawn as the paper's code does (:func:`nonlinear_test_inputs`).
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
    log_period: int = 100
    ext_length: int = 40
    ext_samples: int = 2000
    ext_seed_offset: int = 12
    diverge_bound: float = 1e3
    shared_init_stream: bool = True

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
        set_("log_period", require_int("log_period", self.log_period, minimum=1))
        set_("ext_length", require_int("ext_length", self.ext_length, minimum=1))
        set_("ext_samples", require_int("ext_samples", self.ext_samples, minimum=1))
        set_("ext_seed_offset", require_int("ext_seed_offset", self.ext_seed_offset, minimum=0))
        set_("baseline_positions", _require_positions("baseline_positions", self.baseline_positions, self.horizon))
        set_("shared_init_stream", _require_bool("shared_init_stream", self.shared_init_stream))

    @property
    def reported_extra_steps(self) -> int:
        """Updates made after the threshold when the reported values are taken (4901 for 5000 / 100)."""
        return _reported_extra(self.extra_steps, self.log_period)


# ---------------------------------------------------------------- re-exports of the private modules
# (below the configs: the private modules import the configs from here lazily)

from ssmpoison.verify._gd_data import (  # noqa: E402
    init_ssm,
    init_stream,
    nonlinear_problem,
    nonlinear_test_inputs,
    paper_sequences,
    beyond_problem,
)
from ssmpoison.verify._gd_objectives import beyond_objective, nonlinear_objective  # noqa: E402
from ssmpoison.verify._gd_optimisers import AdaptiveStep, Adam  # noqa: E402
from ssmpoison.verify._gd_training import (  # noqa: E402
    CHECK_EVERY,
    PROGRESS_EVERY,
    STALL_GRAD,
    Progress,
    RunResult,
    StepObserver,
    beyond_extrapolation_error,
    nonlinear_extrapolation_error,
    train_beyond,
    train_nonlinear,
)
from ssmpoison.verify.kernels import outputs as ssm_outputs  # noqa: E402
