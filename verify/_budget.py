"""The wall-clock budget of a command: one deadline that every flow and training run reads.

A command sets it once (``with wall_clock_budget(seconds): ...``); the engines ask
:func:`budget_expired` in their loops and, once it has passed, end their runs with the status
``time_limit`` (:class:`~ssmpoison.verify._status.Status`) instead of going on. The deadline is
a process-wide value on the monotonic clock, so worker processes forked while it is set share
it. Outside any budget (``None``) nothing expires.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager

from ssmpoison.theory._validation import require_real

__all__ = ["wall_clock_budget", "without_budget", "budget_expired", "budget_seconds_left"]

_deadline: float | None = None


@contextmanager
def wall_clock_budget(seconds: float | None):
    """Set the deadline ``seconds`` from now for the block (``None``: no deadline); restores the previous one.

    Arguments:
        seconds: the budget in seconds (positive), or ``None``.

    Raises:
        ValueError: ``seconds`` not a positive real (named ``time_limit``).
    """
    global _deadline
    previous = _deadline
    if seconds is not None:
        seconds = float(require_real("time_limit", seconds, positive=True))
        _deadline = time.monotonic() + seconds if previous is None else min(previous, time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline = previous


@contextmanager
def without_budget():
    """Lift the deadline for the block (a job whose result must not depend on when it ran); restores it after."""
    global _deadline
    previous, _deadline = _deadline, None
    try:
        yield
    finally:
        _deadline = previous


def budget_seconds_left() -> float:
    """Seconds until the deadline (``inf`` without one; never below 0)."""
    return math.inf if _deadline is None else max(0.0, _deadline - time.monotonic())


def budget_expired() -> bool:
    """True once the deadline of the enclosing :func:`wall_clock_budget` has passed."""
    return _deadline is not None and time.monotonic() >= _deadline
