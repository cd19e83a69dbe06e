"""The training loop of the GD rows: every run of a row in one batch, each with its own stopping.

All runs of a row (seeds × initialisation draws × without/with the special sequences)
advance together: the parameters of run r are one row of a contiguous array and every step
is one fixed set of array operations on all runs (:mod:`ssmpoison.verify._gd_steppers`).

A config whose conditions train with different step sizes or extra steps (``lr_poisoned``,
``extra_steps_poisoned``) is trained as one batch per condition config; the results come back
in the usual order. Each run keeps its own optimiser state and its own stopping: a run is *converged* once its
loss reached ``tol`` and it then made ``config.reported_extra_steps`` more updates (the paper's
code trains ``extra_steps`` more epochs but reports the values it last logged, every
``log_period`` epochs), *diverged* when its loss becomes non-finite (checked every step) or its
parameters become non-finite or some ``|a_i|`` exceeds ``diverge_bound`` (checked every
:data:`CHECK_EVERY` steps), and *max_steps* when the step budget ran out first, or *stalled*
when moreover its final gradient vanishes (:data:`STALL_GRAD`). Finished runs leave the batch
(their final state is kept) and the others go on in a smaller batch.

Extrapolation errors: the beyond row's is the paper's
(:func:`ssmpoison.theory._teacher.impulse_extrapolation_error` against the teacher's impulse
response, ``K*_j = 1`` by default); the non-linear row's is the relative error of the network over test sequences
(:func:`nonlinear_extrapolation_error`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from ssmpoison.theory._teacher import impulse_extrapolation_error
from ssmpoison.theory._validation import require_int, require_real
from ssmpoison.verify import _gd_data
from ssmpoison.verify._budget import budget_expired
from ssmpoison.verify._gd_data import nonlinear_test_inputs, stack_problems, teacher_outputs
from ssmpoison.verify._gd_steppers import BeyondStepper, NonlinearStepper
from ssmpoison.verify._kernels import outputs
from ssmpoison.verify._mlp import mlp_forward
from ssmpoison.verify._status import Status

if TYPE_CHECKING:  # the configs live in ssmpoison.verify._gd_config
    from ssmpoison.verify._gd_config import BeyondConfig, NonlinearConfig

__all__ = [
    "Progress",
    "StepObserver",
    "RunResult",
    "PROGRESS_EVERY",
    "CHECK_EVERY",
    "STALL_GRAD",
    "train_beyond",
    "train_nonlinear",
    "beyond_extrapolation_error",
    "nonlinear_extrapolation_error",
]

Progress = Callable[[int, int], None]
"""``progress(step, active_runs)``, called every :data:`PROGRESS_EVERY` steps and at the end."""


@dataclass(frozen=True)
class StepObserver:
    """Look at a training batch at chosen steps (for trajectories of metrics; :mod:`ssmpoison.verify._dynamics`).

    ``callback(step, runs, params, loss)`` is called at each step in ``steps`` that the batch
    reaches, after the loss (and the divergence check) at the current parameters, i.e. after
    ``step`` updates: ``runs`` are the indices (into the trainer's run list) of the runs still
    training, ``params`` copies of their parameters (stacked as the trainer's ``RunResult.params``)
    and ``loss`` their losses. Costs one integer comparison per step when not due.

    Arguments:
        steps: the steps to look at (non-negative integers; sorted and deduplicated).
        callback: the function called.

    Raises:
        ValueError: ``steps`` not a sequence of non-negative integers, or ``callback`` not callable.
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


@dataclass(frozen=True)
class RunResult:
    """The outcome of one run.

    Attributes:
        seed, poisoned, init_draw: which run (``init_draw`` 0 is the row's own initialisation).
        perturbation: k > 0 for the k-th perturbed re-run of the run of draw 0
            (:func:`ssmpoison.verify._gd_data.perturb_initial`), 0 for an unperturbed run.
        ext_error: the row's extrapolation error at the final parameters.
        train_loss: the loss at the final parameters.
        steps: the parameter updates made.
        status: ``Status.CONVERGED``, ``Status.DIVERGED``, ``Status.MAX_STEPS``, ``Status.STALLED`` or
            ``Status.TIME_LIMIT`` (the command's wall-clock budget, :mod:`ssmpoison.verify._budget`, ran out).
        reached_at: the step at which the loss first was ``<= tol`` (None if never).
        params: the final parameters, ``(a, b, c)`` or ``(a, b, c, W1, W2, W3)``.
    """

    seed: int
    poisoned: bool
    ext_error: float
    train_loss: float
    steps: int
    status: Status
    reached_at: int | None
    params: tuple = field(compare=False, repr=False)
    init_draw: int = 0
    perturbation: int = 0


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
    status = np.full(R, Status.MAX_STEPS, dtype=object)
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
                loss = retire(bad, t, loss, Status.DIVERGED)
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
                loss = retire(done, t, loss, Status.CONVERGED)
                pending = reached[ids]
                pending = pending[pending >= 0]
                next_done = pending.min() + extra_steps if len(pending) else math.inf
                if len(ids) and len(done):
                    loss = stepper.loss_and_grad()
            if progress is not None and (t % PROGRESS_EVERY == 0 or t == max_steps or not len(ids)):
                progress(t, len(ids))
            if not len(ids):
                break
            out_of_time = t % CHECK_EVERY == 0 and budget_expired()
            if t == max_steps or out_of_time:
                final_loss[ids] = loss
                final_theta[ids] = stepper.theta
                steps[ids] = t
                if out_of_time:  # the command's wall-clock budget ran out
                    status[ids] = Status.TIME_LIMIT
                    break
                flat_grad = np.abs(stepper.grad.reshape(len(ids), -1))
                stalled = (reached[ids] < 0) & (flat_grad.max(axis=1) < STALL_GRAD)
                status[ids[stalled]] = Status.STALLED
                break
            stepper.update(t)
            t += 1
    return final_theta, final_loss, steps, status, reached


def _validate_runs(seeds, poisoned_flags, max_steps, init_draws=(0,), perturbations=0):
    """Runs ``(seed, poisoned, draw, k)``: seeds outer, then draws, then flags; then the perturbed re-runs
    ``(seed, poisoned, 0, k)`` for ``k = 1..perturbations`` (seeds outer, then flags, then k)."""
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
    K = require_int("perturbations", perturbations, minimum=0)
    runs = [(s, bool(f), d, 0) for s in seeds for d in draws for f in flags]
    return runs + [(s, bool(f), 0, k) for s in seeds for f in flags for k in range(1, K + 1)], max_steps


def _results(runs, params, loss, steps, status, reached, ext):
    return [
        RunResult(seed=s, poisoned=p, ext_error=float(ext[r]), train_loss=float(loss[r]), steps=int(steps[r]),
                  status=Status(status[r]), reached_at=int(reached[r]) if reached[r] >= 0 else None,
                  params=tuple(x[r].copy() for x in params), init_draw=d, perturbation=k)
        for r, (s, p, d, k) in enumerate(runs)
    ]


def _train_batch(config, config_type, problem, stepper_type, seeds, poisoned_flags, max_steps, progress, init_draws,
                 observer=None, perturbations=0, perturbation_size=0.0):
    """Validate, stack every run's problem into one batch per condition config (:meth:`_GDConfig.for_condition`:
    one batch when the conditions share ``lr`` and ``extra_steps``) and descend; returns ``(runs, (params, loss,
    steps, status, reached))`` with the trained parameters as a tuple of stacked arrays, in the order of ``runs``.
    A perturbed re-run (``k > 0``) starts from its run's initial weights perturbed by
    :func:`ssmpoison.verify._gd_data.perturb_initial`."""
    if not isinstance(config, config_type):
        raise ValueError(f"config must be a {config_type.__name__}, got {type(config).__name__}")
    runs, max_steps = _validate_runs(seeds, poisoned_flags, max_steps, init_draws, perturbations)
    perturbation_size = float(require_real("perturbation_size", perturbation_size, nonnegative=True))

    def perturbed(cfg, s, p, d, k):
        x, U, y = problem(cfg, s, p, d)
        return (_gd_data.perturb_initial(x, s, p, k, perturbation_size), U, y) if k else (x, U, y)

    groups: dict = {}
    for r, (_, poisoned, *_) in enumerate(runs):
        groups.setdefault(config.for_condition(poisoned), []).append(r)
    out = None
    waiting = len(runs)  # runs of this batch and of the batches after it, for the progress callback
    for cfg, members in groups.items():
        idx = np.array(members)
        waiting -= len(members)
        params, U, y, mask = stack_problems([perturbed(cfg, *runs[r]) for r in members])
        stepper = stepper_type(cfg, params, U, y, mask)
        look = None if observer is None else StepObserver(  # the callback sees indices into the whole run list
            observer.steps, lambda t, ids, p, loss, idx=idx: observer.callback(t, idx[ids], p, loss))
        report = None if progress is None else (lambda t, active, later=waiting: progress(t, active + later))
        part = _descend(stepper, cfg.tol, cfg.reported_extra_steps, max_steps, report, look)
        part = (stepper.params_of(part[0]), *part[1:])
        if out is None:
            out = ([np.empty((len(runs),) + p.shape[1:], dtype=p.dtype) for p in part[0]],
                   *(np.empty(len(runs), dtype=a.dtype) for a in part[1:]))
        for k, p in enumerate(part[0]):
            out[0][k][idx] = p
        for k, a in enumerate(part[1:], start=1):
            out[k][idx] = a
    return runs, (tuple(out[0]), *out[1:])


def train_beyond(config: BeyondConfig, seeds, poisoned_flags, max_steps: int, progress: Progress | None = None,
                 init_draws=(0,), observer: StepObserver | None = None, perturbations: int = 0,
                 perturbation_size: float = 0.0) -> list[RunResult]:
    """Train the beyond row: one run per ``(seed, init_draw, poisoned)``, all in one batch, and the perturbed re-runs.

    A, B, C of the bare SSM by full-batch GD with the adaptive step, from
    :func:`ssmpoison.verify._gd_data.beyond_problem`.

    Arguments:
        config: the row's settings (a ``BeyondConfig``).
        seeds: the seeds (outer loop of the runs).
        poisoned_flags: booleans (inner loop): False trains without, True with the special sequences.
        max_steps: the step budget of every run.
        progress: ``progress(step, active_runs)`` or None.
        init_draws: the initialisation draws (middle loop).
        observer: sees the batch at chosen steps (:class:`StepObserver`), or None.
        perturbations: K >= 0; each run of draw 0 is also trained from its initial weights perturbed at relative
            size ``perturbation_size``, K times (:func:`ssmpoison.verify._gd_data.perturb_initial` with
            ``index = 1..K``), in the same batch.
        perturbation_size: eps >= 0, the relative size of the perturbations.

    Returns:
        One :class:`RunResult` per run, seeds outer, then draws, then flags, then the perturbed re-runs
        (``perturbation = k``; seeds outer, then flags, then k); ``ext_error`` is
        :func:`beyond_extrapolation_error`.

    Raises:
        ValueError: naming the argument (wrong config type, empty or bad seeds, flags, draws, budget, perturbations).
    """
    from ssmpoison.verify._gd_config import BeyondConfig

    runs, (params, loss, steps, status, reached) = _train_batch(
        config, BeyondConfig, _gd_data.beyond_problem, BeyondStepper, seeds, poisoned_flags, max_steps, progress,
        init_draws, observer, perturbations, perturbation_size)
    ext = [beyond_extrapolation_error(tuple(p[r] for p in params), config.extrapolation_length, config.teacher_a)
           for r in range(len(runs))]
    return _results(runs, params, loss, steps, status, reached, ext)


def train_nonlinear(config: NonlinearConfig, seeds, poisoned_flags, max_steps: int,
                    progress: Progress | None = None, init_draws=(0,), observer: StepObserver | None = None,
                    perturbations: int = 0, perturbation_size: float = 0.0) -> list[RunResult]:
    """Train the non-linear row (SSM + ReLU head, Adam): one run per ``(seed, init_draw, poisoned)``, in one batch.

    Arguments:
        as in :func:`train_beyond`, with a ``NonlinearConfig``.

    Returns:
        One :class:`RunResult` per run; ``ext_error`` is :func:`nonlinear_extrapolation_error`
        over the run's test sequences (:func:`ssmpoison.verify._gd_data.nonlinear_test_inputs`).

    Raises:
        ValueError: as in :func:`train_beyond`.
    """
    from ssmpoison.verify._gd_config import NonlinearConfig

    runs, (params, loss, steps, status, reached) = _train_batch(
        config, NonlinearConfig, _gd_data.nonlinear_problem, NonlinearStepper, seeds, poisoned_flags, max_steps,
        progress, init_draws, observer, perturbations, perturbation_size)
    tests = {(s, p): nonlinear_test_inputs(config, s, p) for s, p, *_ in runs}
    ext = np.array([nonlinear_extrapolation_error(config, tests[s, p], tuple(x[r] for x in params))
                    for r, (s, p, *_) in enumerate(runs)])
    return _results(runs, params, loss, steps, status, reached, ext)


def beyond_extrapolation_error(params, extrapolation_length: int, teacher_a=(1.0,)) -> float:
    """The beyond row's extrapolation error of one run: the paper's, against the teacher's impulse response.

    ``max_{0<=j<J} |K_j - K*_j| / max_{0<=j<J} |K*_j|`` with ``K_j = sum_i c_i b_i a_i^j``,
    ``K*_j = sum_i (a*_i)^j`` and J = ``extrapolation_length``
    (:func:`ssmpoison.theory._teacher.impulse_extrapolation_error`, in the parameters' own
    number type; NaN for non-finite parameters). For the default teacher ``K*_j = 1``: ``max_j |K_j - 1|``.

    Arguments:
        params: ``(a, b, c)`` of one run (arrays of shape ``(D,)``).
        extrapolation_length: J.
        teacher_a: the teacher's diagonal ``a*`` (:attr:`BeyondConfig.teacher_a`).

    Returns:
        The error as a float.
    """
    a, b, c = params
    J = extrapolation_length
    if tuple(teacher_a) == (1.0,):
        target = [1.0] * J
    else:
        from ssmpoison.verify._gd_config import teacher_impulse

        target = teacher_impulse(teacher_a, J).tolist()
    with np.errstate(all="ignore"):
        return float(impulse_extrapolation_error(list(a), list(b), list(c), target))


def nonlinear_extrapolation_error(config: NonlinearConfig, test_inputs, params) -> float:
    """The non-linear row's extrapolation error ``||f(U) - f*(U)||_2 / ||f*(U)||_2`` of one run.

    ``f(u) = g(y_J(u))`` is the student (the SSM's output over the test length J, then its head
    g), ``f*`` the teacher (:func:`ssmpoison.verify._gd_data.teacher_outputs`), ``U`` the test
    sequences (rows).

    Arguments:
        config: the row's settings (``extrapolation_length`` J, ``width``).
        test_inputs: ``U``, shape ``(M, J)``.
        params: ``(a, b, c, W1, W2, W3)`` of one run.

    Returns:
        The error as a float.
    """
    a, b, c, *weights = params
    with np.errstate(all="ignore"):
        target = teacher_outputs(test_inputs, config.width)
        f = mlp_forward(tuple(w[None] for w in weights), outputs(a, b, c, test_inputs)[None])[0][0]
        return float(np.linalg.norm(f - target) / np.linalg.norm(target))
