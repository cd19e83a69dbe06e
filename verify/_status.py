"""The one status enumeration: how an integration, a flow, a training run or a sweep's point ended.

Every engine returns a :class:`Status`, and every JSON ``status`` field is a
:class:`Status` value (a ``str`` enum, so ``json.dumps`` writes its value and
``Status.CONVERGED == "converged"`` holds).
"""

from __future__ import annotations

import enum

__all__ = ["Status"]


class Status(enum.StrEnum):
    """How a run ended.

    Integrator level (an ODE solve from ``t0`` towards ``t_end``):

    * ``T_END`` — reached ``t_end``;
    * ``STOPPED`` — the caller's stop condition fired (e.g. the loss reached its tolerance);
    * ``BLOWUP`` — the state left the caller's bound;
    * ``STEP_TOO_SMALL`` — the step size fell below the resolution of the time variable;
    * ``MAX_STEPS`` — the step budget ran out.

    Flow and training level (what a gradient flow or a gradient-descent run achieved):

    * ``CONVERGED`` — the training loss reached its tolerance;
    * ``DIVERGED`` — the parameters blew up (or the integrator could not go on);
    * ``TIME_LIMIT`` — the run reached its final time, or the command's wall-clock budget ran out, with
      the loss above tolerance;
    * ``STALLED`` — the run stopped moving above tolerance (a flow's state fixed to rounding, or a
      gradient-descent gradient below its floor): a critical point that is not a zero of the loss;
    * ``MAX_STEPS`` — the update budget ran out above tolerance.

    Sweep level (one point of ``ssmpoison sweep``):

    * ``DONE`` — the point's job ran (its own outcome is in its metrics);
    * ``REFUSED`` — the point is outside the job's domain (the job refused its parameters);
    * ``FAILED`` — the job raised an unexpected error (recorded, re-run by ``--resume``).
    """

    CONVERGED = "converged"
    DIVERGED = "diverged"
    TIME_LIMIT = "time_limit"
    STALLED = "stalled"
    MAX_STEPS = "max_steps"
    T_END = "t_end"
    STOPPED = "stopped"
    BLOWUP = "blowup"
    STEP_TOO_SMALL = "step_too_small"
    DONE = "done"
    REFUSED = "refused"
    FAILED = "failed"
