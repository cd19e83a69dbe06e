"""The integrator interface: one protocol, one result type, one status enumeration.

An integrator solves an autonomous system ``y' = fun(y)`` from ``(t0, y0)`` towards ``t_end``
at an explicit working precision. It is a value (a small frozen dataclass holding the method's
own parameters), chosen by the caller and passed in — e.g.
``FlowOptions(integrator=ExpColl())`` — and called as::

    result = integrator.integrate(fun, y0, t0, t_end, precision_bits=P, rtol=..., atol=...,
                                  linear_part=..., make_solver=..., stop=..., observe=..., blowup=...)

The stiff part of the system is passed in the form the integrator needs:

* :class:`ssmpoison.verify._expcoll.ExpColl` (exponential collocation) needs ``linear_part(y)``:
  the frozen low-rank part ``L = -sum_r mu_r p_r q_r^T`` of the Jacobian at ``y``;
* :class:`ssmpoison.verify._seulex.Seulex` (extrapolated linearly implicit Euler) needs
  ``make_solver(y)``: ``solve(h, r) = (I - h J(y))^{-1} r`` (:mod:`ssmpoison.verify._linalg`).

An integrator given ``None`` for what it needs raises ``ValueError`` naming the argument.

Every integrator ends with a :class:`~ssmpoison.verify._status.Status` of the integrator level:
``T_END``, ``STOPPED``, ``BLOWUP``, ``STEP_TOO_SMALL`` or ``MAX_STEPS``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from numbers import Real
from typing import Callable, Protocol, runtime_checkable

import numpy as np

from ssmpoison.verify._status import Status

__all__ = ["Integrator", "IntegrationResult", "INTEGRATOR_STATUSES", "check_tolerances"]

#: The statuses an integrator ends with.
INTEGRATOR_STATUSES = (Status.T_END, Status.STOPPED, Status.BLOWUP, Status.STEP_TOO_SMALL, Status.MAX_STEPS)


@dataclass(frozen=True)
class IntegrationResult:
    """Outcome of an integration.

    Arguments:
        t: the time reached, in the working type.
        y: the state at ``t``, in the working type.
        status: how the run ended (one of :data:`INTEGRATOR_STATUSES`).
        n_steps: accepted steps.
        n_rejected: rejected step attempts.
        n_fun_evals: evaluations of ``fun``.
        details: counters of the method (SEULEX: ``n_solves``, ``n_jacobians``, ``order_counts``,
            ``final_order``, ``final_step``; exponential collocation: ``nodes``).
    """

    t: object
    y: np.ndarray
    status: Status
    n_steps: int
    n_rejected: int
    n_fun_evals: int
    details: dict = field(default_factory=dict)


@runtime_checkable
class Integrator(Protocol):
    """What every integrator provides: a ``name`` and :meth:`integrate`."""

    name: str

    def integrate(
        self,
        fun: Callable,
        y0,
        t0,
        t_end,
        *,
        precision_bits: int,
        rtol: Real,
        atol: Real,
        max_steps: int = 100_000,
        linear_part: Callable | None = None,
        make_solver: Callable | None = None,
        stop: Callable | None = None,
        observe: Callable | None = None,
        blowup: Real | None = None,
    ) -> IntegrationResult:
        """Integrate ``y' = fun(y)`` from ``(t0, y0)`` towards ``t_end``.

        Arguments:
            fun: ``fun(y) -> f(y)``, same shape as ``y`` (leading batch axes allowed).
            y0: the initial state; converted to the working type of ``precision_bits``.
            t0, t_end: numbers (int, float, Fraction, str or working-type scalars); ``t_end``
                may be ``float("inf")`` when ``stop`` ends the run.
            precision_bits: the working precision (53: float64, 64: longdouble, else gmpy2.mpfr);
                the integrator computes in it whatever the caller's gmpy2 context.
            rtol, atol: relative and absolute tolerance of the local error.
            max_steps: budget of step attempts (accepted and rejected).
            linear_part, make_solver: the stiff part, in the form the integrator needs (module docstring).
            stop: ``stop(t, y) -> bool``, checked after every accepted step: true ends the run (``STOPPED``).
            observe: ``observe(t, y)``, called after every accepted step (before ``stop``).
            blowup: the run ends (``BLOWUP``) after the first accepted step with some ``|y_i| > blowup``.

        Returns:
            :class:`IntegrationResult`.

        Raises:
            ValueError: bad tolerances, ``t_end <= t0``, or the stiff part it needs not given.
        """
        ...


def check_tolerances(rtol, atol, max_steps) -> None:
    """Validate the tolerances and step budget of :meth:`Integrator.integrate`.

    Raises:
        ValueError: ``rtol`` not a positive finite number, ``atol`` not a non-negative finite
            number, ``max_steps`` not a positive int (the message names the argument).
    """

    def real(x):
        return isinstance(x, Real) and not isinstance(x, bool) and math.isfinite(x)

    if not (real(rtol) and rtol > 0):
        raise ValueError(f"rtol must be a positive finite number, got {rtol!r}")
    if not (real(atol) and atol >= 0):
        raise ValueError(f"atol must be a non-negative finite number, got {atol!r}")
    if not (isinstance(max_steps, int) and not isinstance(max_steps, bool) and max_steps >= 1):
        raise ValueError(f"max_steps must be a positive int, got {max_steps!r}")


def require_stiff_part(integrator: str, name: str, value) -> Callable:
    """``value`` when given; else ``ValueError`` naming the argument ``integrator`` needs."""
    if value is None:
        raise ValueError(f"{name} must be given: the {integrator} integrator needs it")
    return value
