"""Metrics along a training trajectory of the diagonal SSM (note 00 §3, §5).

A trajectory is a list of points ``(t, a, b, c, loss)`` — gradient-flow time or GD step,
the diagonal of A, B, C and the training loss — as recorded by
``ssmpoison.verify._flow.run_flow(problem, FlowOptions(record=True)).trajectory`` or built from a GD
trainer (:mod:`ssmpoison.verify._dynamics`). At every point, with the training set ``(U, y*)``:

* the largest entry magnitude ``max_i |a_i|``;
* the effective rank ``erank(A) = exp(-sum_i p_i ln p_i)``, ``p_i = |a_i| / sum_j |a_j|``
  (:func:`ssmpoison.theory._effective_rank.effective_rank`);
* every coefficient of the Proposition (note 00 §3)

      gamma^(l) = (2(l+1)/N) sum_n xi_n delta_n u^(n)_{H-2-l},   l = 0..H-2,

  with residuals ``delta_n = y*_n - f(u^(n))`` and ``xi_n = 1`` for the bare SSM
  (``f = y_H``), ``xi_n = g'(y_H(u^(n)))`` when the SSM feeds a network g (``f = g(y_H)``);
  then ``da_i/dt = c_i b_i sum_l gamma^(l) a_i^l`` for every entry. ``gamma^(0)`` meets only
  the second-to-last inputs, so it is exactly 0 at every point when no sequence is special;
* the training loss (recorded with the point);
* an extrapolation error, e.g. to a horizon J against a teacher's impulse response ``K*``:
  ``max_{0<=j<J} |K_j - K*_j| / max_{0<=j<J} |K*_j|`` with ``K_j = sum_i c_i b_i a_i^j``
  (:func:`impulse_extrapolation_error`), or any function of ``(a, b, c)``.

Numbers are computed in the trajectory's own number type (float64, longdouble or gmpy2 at
the points' precision) and stored as float64.
"""

from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass
from typing import Callable

import gmpy2
import numpy as np

from ssmpoison.theory._effective_rank import effective_rank
from ssmpoison.theory._teacher import impulse_extrapolation_error as theory_extrapolation_error
from ssmpoison.theory._training_set import TrainingSet
from ssmpoison.theory._validation import require_finite_sequence, require_int, require_real
from ssmpoison.verify import _kernels as kernels
from ssmpoison.verify._numbers import precision_of, to_working

__all__ = [
    "largest_magnitude",
    "impulse_extrapolation_error",
    "teacher_extrapolation",
    "select_points",
    "DynamicsSeries",
    "trajectory_series",
    "escape_times",
]


def largest_magnitude(a) -> float:
    """``max_i |a_i|`` as a float."""
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64))))


def impulse_extrapolation_error(a, b, c, teacher_response) -> float:
    """The paper's extrapolation error ``max_{0<=j<J} |K_j - K*_j| / max_{0<=j<J} |K*_j|`` in float64.

    ``K_j = sum_i c_i b_i a_i^j``; computed by :func:`ssmpoison.theory._teacher.impulse_extrapolation_error`
    (the one implementation) on float64 numbers.

    Arguments:
        a, b, c: the student's entries.
        teacher_response: ``(K*_0, ..., K*_{J-1})``, not all zero; J is its length (the horizon
            extrapolated to).

    Returns:
        The error as a float.

    Raises:
        ValueError: ``teacher_response`` empty, all zero or not finite.
    """
    target = np.asarray(require_finite_sequence("teacher_response", teacher_response), dtype=np.float64)
    if target.size == 0 or not np.any(target):
        raise ValueError("teacher_response must hold at least one non-zero value")
    as_float = [np.asarray(v, dtype=np.float64).tolist() for v in (a, b, c)]
    return float(theory_extrapolation_error(*as_float, target.tolist()))


def teacher_extrapolation(teacher_response) -> Callable:
    """The function ``(a, b, c) -> impulse_extrapolation_error(a, b, c, teacher_response)``, validated once.

    Raises:
        ValueError: as :func:`impulse_extrapolation_error` for a bad ``teacher_response``.
    """
    target = require_finite_sequence("teacher_response", teacher_response)
    impulse_extrapolation_error(np.zeros(1), np.zeros(1), np.zeros(1), target)  # validates
    return functools.partial(impulse_extrapolation_error, teacher_response=target)


def select_points(times, entries, count: int) -> list[int]:
    """Indices of at most ``count`` points of a trajectory, spread over log-time *and* over change.

    Adaptive integrators record many nearby points, and the interesting moments of these
    flows are short on a log-time axis (an escaping entry goes from ~1e-3 to 1 within a
    relative time of ~1e-3 at t ~ 4e10). Each point k gets the progress coordinate

        s_k = (lambda_k + pi_k) / 2,

    ``lambda_k`` the fraction of ``log t`` covered from the first positive time to the last
    (0 at t = 0), ``pi_k`` the fraction of the path length ``sum |a(k+1) - a(k)|_1`` covered;
    for ``count`` equally spaced targets in [0, 1] the first point reaching each is kept. The
    first and last points are always kept; the result is sorted and has no repeats.
    """
    count = require_int("count", count, minimum=2)
    t = np.asarray(times, dtype=np.float64)
    A = np.asarray(entries, dtype=np.float64)
    T = t.shape[0]
    if T <= count:
        return list(range(T))
    positive = t[t > 0]
    lam = np.zeros(T)
    if positive.size and positive[-1] > positive[0]:
        lo, hi = math.log(positive[0]), math.log(positive[-1])
        lam = np.where(t > 0, (np.log(np.where(t > 0, t, 1.0)) - lo) / (hi - lo), 0.0)
    steps = np.abs(np.diff(A, axis=0)).sum(axis=1)
    path = np.concatenate([[0.0], np.cumsum(steps)])
    pi = path / path[-1] if path[-1] > 0 else np.zeros(T)
    s = 0.5 * (lam + pi)
    picked = {int(np.searchsorted(s, target)) for target in np.linspace(0.0, 1.0, count)}
    return sorted({0, T - 1} | {min(k, T - 1) for k in picked})


def _frozen(x) -> np.ndarray:
    arr = np.array(x, dtype=np.float64)
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True)
class DynamicsSeries:
    """Metrics at T points of one trajectory (arrays read-only, float64).

    Attributes:
        time_name: ``"t"`` (gradient-flow time) or ``"step"`` (GD updates).
        times: ``(T,)``, non-decreasing.
        entries: ``(T, D)``, the diagonal of A.
        max_abs: ``(T,)``, ``max_i |a_i|``.
        effective_rank: ``(T,)``.
        gammas: ``(T, H-1)``, ``gammas[k, l] = gamma^(l)`` at point k (with the xi factor if any).
        loss: ``(T,)``, the training loss.
        ext_error: ``(T,)`` or None (no extrapolation measure given).
        xi_factor: True when the residuals were multiplied by a network's slopes ``xi_n``.
    """

    time_name: str
    times: np.ndarray
    entries: np.ndarray
    max_abs: np.ndarray
    effective_rank: np.ndarray
    gammas: np.ndarray
    loss: np.ndarray
    ext_error: np.ndarray | None = None
    xi_factor: bool = False

    def __post_init__(self) -> None:
        if self.time_name not in ("t", "step"):
            raise ValueError(f"time_name must be 't' or 'step', got {self.time_name!r}")
        for name in ("times", "entries", "max_abs", "effective_rank", "gammas", "loss", "ext_error"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _frozen(value))
        T = self.times.shape[0]
        if T == 0:
            raise ValueError("a series must hold at least one point")
        if self.entries.ndim != 2 or self.gammas.ndim != 2:
            raise ValueError("entries and gammas must be two-dimensional (points x entries / coefficients)")
        lengths = {name: getattr(self, name).shape[0] for name in ("entries", "max_abs", "effective_rank", "gammas", "loss")}
        if self.ext_error is not None:
            lengths["ext_error"] = self.ext_error.shape[0]
        for name, n in lengths.items():
            if n != T:
                raise ValueError(f"{name} has {n} points but times has {T}")
        if np.any(np.diff(self.times) < 0):
            raise ValueError("times must be non-decreasing")

    @property
    def horizon(self) -> int:
        """Training horizon H (there are H-1 gamma coefficients)."""
        return self.gammas.shape[1] + 1

    def to_json(self) -> dict:
        """Plain lists (shortest round-trip float text; non-finite values as null)."""
        def listed(x):
            if x is None:
                return None
            return [listed(row) for row in x] if x.ndim > 1 else [float(v) if math.isfinite(v) else None for v in x]

        return {
            "time_name": self.time_name,
            "points": int(self.times.shape[0]),
            "xi_factor": self.xi_factor,
            "times": listed(self.times),
            "max_abs": listed(self.max_abs),
            "effective_rank": listed(self.effective_rank),
            "loss": listed(self.loss),
            "ext_error": listed(self.ext_error),
            "gammas": listed(self.gammas),
            "entries": listed(self.entries),
        }


def _context_of(values):
    """A gmpy2 context at the precision of ``mpfr`` values (object arrays), else a no-op."""
    arr = np.asarray(values)
    if arr.dtype == object:
        precs = [v.precision for v in arr.ravel() if isinstance(v, gmpy2.mpfr)]
        if precs:
            return gmpy2.context(gmpy2.get_context(), precision=max(precs))
    return contextlib.nullcontext()


def _per_point(name: str, values, T: int):
    if values is None:
        return [None] * T
    values = list(values)
    if len(values) != T:
        raise ValueError(f"{name} must give one array per trajectory point ({T}), got {len(values)}")
    return values


def trajectory_series(
    trajectory,
    training_set: TrainingSet,
    *,
    extrapolation: Callable | None = None,
    residuals=None,
    xi=None,
    time_name: str = "t",
) -> DynamicsSeries:
    """Metrics of note 00 §3 at every point of ``trajectory = [(t, a, b, c, loss), ...]``.

    Arguments:
        trajectory: the points, in order of time (e.g. ``FlowResult.trajectory``, or a
            selection of it by :func:`select_points`).
        training_set: the sequences ``u^(n)`` and labels ``y*_n`` the run was trained on.
        extrapolation: ``(a, b, c) -> error``, e.g. :func:`teacher_extrapolation` or
            ``ssmpoison.theory._construction.extrapolation_error`` with its D and J bound; or the errors
            themselves, one per point (when they need more than ``a, b, c``); None for none.
        residuals: per point, the residuals ``delta_n = y*_n - f(u^(n))`` (shape ``(N,)``);
            default the bare SSM's ``y*_n - y_H(u^(n))`` from ``(a, b, c)``. Give them when the
            SSM feeds a network.
        xi: per point, the slopes ``xi_n = g'(y_H(u^(n)))`` of the network after the SSM
            (shape ``(N,)``); they multiply the residuals in every gamma^(l). None: ``xi = 1``.
        time_name: ``"t"`` or ``"step"``.
    """
    if not isinstance(training_set, TrainingSet):
        raise ValueError("training_set must be a TrainingSet")
    points = list(trajectory)
    T = len(points)
    if T == 0:
        raise ValueError("trajectory must hold at least one point")
    given_errors = None if extrapolation is None or callable(extrapolation) else _per_point("extrapolation", extrapolation, T)
    residuals = _per_point("residuals", residuals, T)
    slopes = _per_point("xi", xi, T)
    N = training_set.samples
    cast = {}  # number type -> (U, y) converted to it
    times, entries, max_abs, erank, gammas, losses, ext = [], [], [], [], [], [], []
    for k, point in enumerate(points):
        try:
            t, a, b, c, loss = point
        except (TypeError, ValueError):
            raise ValueError(f"trajectory[{k}] must be (t, a, b, c, loss)") from None
        a, b, c = np.asarray(a), np.asarray(b), np.asarray(c)
        if a.ndim != 1 or a.shape != b.shape or a.shape != c.shape:
            raise ValueError(f"trajectory[{k}]: a, b, c must be vectors of one length D")
        with _context_of(a):
            dtype = a.dtype
            if dtype not in cast:
                bits = precision_of(a)
                cast[dtype] = (
                    np.array([[to_working(v, bits) for v in row] for row in training_set.inputs], dtype=dtype),
                    np.array([to_working(v, bits) for v in training_set.labels], dtype=dtype),
                )
            U, y = cast[dtype]
            delta = kernels.residuals(a, b, c, U, y) if residuals[k] is None else np.asarray(residuals[k])
            scale = None if slopes[k] is None else np.asarray(slopes[k])
            for name, v in (("residuals", delta), ("xi", scale)):
                if v is not None and v.shape != (N,):
                    raise ValueError(f"{name}[{k}] must have shape ({N},), got {v.shape}")
            gam = kernels.gamma_coefficients(delta, U if delta.dtype == dtype else U.astype(delta.dtype), scale)
            times.append(float(require_real(f"trajectory[{k}].t", t)))
            entries.append(np.asarray(a, dtype=np.float64))
            max_abs.append(largest_magnitude(a))
            erank.append(effective_rank(a))
            gammas.append(np.asarray(gam, dtype=np.float64))
            losses.append(float(loss))
            if given_errors is not None:
                ext.append(float(given_errors[k]))
            elif extrapolation is not None:
                ext.append(float(extrapolation(a, b, c)))
    return DynamicsSeries(
        time_name=time_name,
        times=times,
        entries=entries,
        max_abs=max_abs,
        effective_rank=erank,
        gammas=gammas,
        loss=losses,
        ext_error=ext if extrapolation is not None else None,
        xi_factor=xi is not None,
    )


def escape_times(series: DynamicsSeries, level: float = 0.5) -> tuple:
    """For each entry i, the time at which ``|a_i|`` first reaches ``level`` (None if it never does).

    The crossing is interpolated linearly between the last recorded point below ``level`` and
    the first at or above it. With a small initialisation (``|a_i(0)| << level``) this is the
    time entry i *escapes*.
    """
    level = float(require_real("level", level, positive=True))
    out = []
    for i in range(series.entries.shape[1]):
        mags = np.abs(series.entries[:, i])
        hit = np.flatnonzero(mags >= level)
        if not hit.size:
            out.append(None)
            continue
        k = int(hit[0])
        if k == 0:
            out.append(float(series.times[0]))
            continue
        (t0, t1), (m0, m1) = series.times[k - 1 : k + 1], mags[k - 1 : k + 1]
        out.append(float(t0 + (level - m0) / (m1 - m0) * (t1 - t0)))
    return tuple(out)
