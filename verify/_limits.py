"""The command line's default bounds on sizes: what runs in minutes on one machine.

Each bounded quantity has one entry in :data:`LIMITS` (the largest value accepted without
``--no-limits``) and one reason; :func:`require_within` refuses a larger value with a one-line
message that gives the bound and the way past it. The library itself has no such bounds: a
researcher who means a larger run passes ``--no-limits`` (and gets progress bars and the
wall-clock budget of ``--time-limit``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limit", "LIMITS", "require_within", "limit_help"]


@dataclass(frozen=True)
class Limit:
    """The largest value of one quantity accepted by default, why it is bounded, and the largest accepted at all.

    ``hard`` bounds ``--no-limits`` too: beyond it a run could not end in any reasonable time (or memory)
    whatever its wall-clock budget, because the quantity sizes a single computation (a sum over the
    extrapolation length, one SymPy expression) that does not look at the budget.
    """

    maximum: int | float
    reason: str
    hard: int | float


#: ``(command, quantity) -> Limit``; ``command`` is a subcommand, or ``"*"`` for every subcommand
#: that has the quantity.
LIMITS: dict[tuple[str, str], Limit] = {
    ("derive", "horizon"): Limit(32, "the exact derivation grows with H, D and N", 256),
    ("derive", "state_dim"): Limit(16, "the exact derivation grows with H, D and N", 64),
    ("derive", "samples"): Limit(8, "the exact derivation grows with H, D and N", 64),
    ("derive", "size"): Limit(128, "the exact derivation grows with H, D and N", 2_048),
    ("*", "horizon"): Limit(64, "flows and training runs grow with H", 4_096),
    ("*", "state_dim"): Limit(64, "flows and training runs grow with D", 4_096),
    ("*", "extrapolation_length"): Limit(10_000, "the extrapolation error sums over every step", 1_000_000),
    ("*", "precision"): Limit(128, "a flow's cost grows steeply with its precision", 65_536),
    ("*", "seeds"): Limit(64, "one run per seed and condition", 10_000),
    ("*", "draws"): Limit(64, "one run per draw, seed and condition", 10_000),
    ("*", "perturbations"): Limit(64, "one run per perturbation, seed and condition", 10_000),
    ("*", "epochs"): Limit(10_000_000, "the step budget of a training run", 1_000_000_000),
    ("search", "budget"): Limit(5_000, "one float64 flow per example", 1_000_000),
    ("poison", "restarts"): Limit(64, "one optimisation per start", 10_000),
    # a real-valued quantity: past its hard bound it no longer means what it says
    ("*", "perturbation_size"): Limit(0.01, "a perturbation of the initial weights, not a new initialisation", 1.0),
}


def _limit(command: str, quantity: str) -> Limit:
    if (command, quantity) in LIMITS:
        return LIMITS[(command, quantity)]
    return LIMITS[("*", quantity)]


def require_within(command: str, quantity: str, value, no_limits: bool, name: str | None = None):
    """``value`` if it is within the command's bound on ``quantity`` (or ``no_limits``), else ``ValueError``.

    Arguments:
        command: the subcommand (``derive``, ``check``, ...).
        quantity: the bounded quantity, a key of :data:`LIMITS`.
        value: the requested value (an integer, or a real for ``perturbation_size``).
        no_limits: the user passed ``--no-limits``.
        name: the parameter named in the message (default ``quantity``).

    Raises:
        ValueError: ``value`` above the bound (without ``no_limits``) or above the hard bound, naming the
            parameter, the bound and ``--no-limits``.
    """
    limit = _limit(command, quantity)
    if value > limit.hard:
        raise ValueError(f"{name or quantity} must be <= {limit.hard} even with --no-limits ({limit.reason}), got {value}")
    if not no_limits and value > limit.maximum:
        raise ValueError(f"{name or quantity} must be <= {limit.maximum} ({limit.reason}; --no-limits lifts the bound), "
                         f"got {value}")
    return value


def limit_help(command: str, quantity: str) -> str:
    """The bound as the ``--help`` text says it: ``"<= 64 unless --no-limits"``."""
    return f"<= {_limit(command, quantity).maximum} unless --no-limits"
