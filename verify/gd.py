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


from ssmpoison.verify._gd_config import BeyondConfig, NonlinearConfig  # noqa: E402 (the configs live there)


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
