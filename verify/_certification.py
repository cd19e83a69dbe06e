"""The certification policy: at which precisions a result is computed and re-computed, and how many digits it may claim.

A result is certified by its agreement with an independent, more accurate re-run
(:mod:`ssmpoison.verify._certify`). One frozen :class:`CertificationPolicy` says how: the theory row and
the checker (:func:`ssmpoison.verify._certified_flow.certified_flows`) and the search
(:func:`ssmpoison.verify._counterexample.certify_failure`, its replay) all read it.

Two regimes, chosen by ``precision_bits``:

* ``precision_bits = None`` — **the fast path** (:data:`FAST_PATH`): a float64 run
  (rtol ``1e-11``) certified by an x86 ``longdouble`` re-run (64 bits, rtol ``1e-13``, loss
  threshold ``1e-6`` of the run's); where that certifies fewer than ``target_digits`` digits
  (the flow is too ill-conditioned for float64, e.g. the poisoned H = 9 flows), the
  longdouble run is reported instead, certified by an 80-bit re-run (rtol ``1e-17``): the
  user asks for digits, not for a number type; flows with an exact oracle (the clean theory
  flows) are solved by the oracle at 64 bits against 128. Digits are capped at 14 (what
  float64 carries).
* ``precision_bits = P`` — a run at ``P`` bits certified by a re-run at ``P + s`` bits,
  ``s = max(32, P // 4)``, with the tolerance ``reference_rtol_factor`` times the run's
  (default ``1e-3``: tighter still buys nothing the comparison can see, and costs steps; or,
  for ``None``, the re-run precision's own default); where a run does not converge, the search
  lets a third at ``P + 2s`` stand in (:meth:`CertificationPolicy.precision_ladder`). Oracle
  flows: the oracle at ``max(P, 64)`` bits against 64 more. Digits are capped at
  ``floor(P log10 2) - 1``. The runs take the compiled multiprecision engine where it applies
  (``compiled_multiprecision``; :data:`SEARCH_CERTIFICATION` keeps the reference path).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ssmpoison.theory._validation import require_int, require_real
from ssmpoison.verify._numbers import require_precision_bits
from ssmpoison.verify._certify import digits_supported
from ssmpoison.verify._flow import FlowOptions

__all__ = ["FAST_PATH", "CertificationPolicy", "SEARCH_CERTIFICATION"]

#: ``precision_bits`` of the fast path (module docstring).
FAST_PATH = None

_FAST_RUN_BITS, _FAST_RUN_RTOL = 53, 1e-11
_FAST_REFERENCE_BITS, _FAST_REFERENCE_RTOL, _FAST_REFERENCE_LOSS_FACTOR = 64, 1e-13, 1e-6
_ESCALATION_BITS, _ESCALATION_RTOL = 80, 1e-17
_ORACLE_MIN_BITS, _ORACLE_REFERENCE_EXTRA_BITS = 64, 64


@dataclass(frozen=True)
class CertificationPolicy:
    """Run precision, reference precision, digit cap and targets of a certification (module docstring).

    Arguments:
        precision_bits: the run's working precision ``P`` (>= 53), or ``None``: the fast path.
        target_digits: fast path only: runs whose float64 result certifies fewer digits are
            re-reported from the longdouble run, certified by an 80-bit re-run (>= 1).
        reference_rtol_factor: ``P`` path: the re-run's tolerance is this factor times the
            run's (in (0, 1]); ``None``: the re-run precision's own default tolerance.
        max_steps: step budget of every run; ``None``: :class:`~ssmpoison.verify._flow.FlowOptions`' default.
        compiled_multiprecision: ``P`` path only: the runs at precisions whose reference type is
            ``gmpy2.mpfr`` take the compiled engine in heyoka's ``real``
            (:attr:`~ssmpoison.verify._flow.FlowOptions.compiled_multiprecision`; the fast path's
            escalation never does).

    Raises:
        ValueError: a field out of range (the message names it).
    """

    precision_bits: int | None = FAST_PATH
    target_digits: int = 8
    reference_rtol_factor: float | None = 1e-3
    max_steps: int | None = None
    compiled_multiprecision: bool = True

    def __post_init__(self) -> None:
        if self.precision_bits is not None:
            object.__setattr__(self, "precision_bits", require_precision_bits(self.precision_bits))
        object.__setattr__(self, "target_digits", require_int("target_digits", self.target_digits, minimum=1))
        if self.reference_rtol_factor is not None:
            factor = require_real("reference_rtol_factor", self.reference_rtol_factor, positive=True)
            if factor > 1:
                raise ValueError(f"reference_rtol_factor must be <= 1, got {factor}")
        if self.max_steps is not None:
            object.__setattr__(self, "max_steps", require_int("max_steps", self.max_steps, minimum=1))

    @property
    def fast_path(self) -> bool:
        """True for the fast path (``precision_bits is None``)."""
        return self.precision_bits is None

    def with_precision(self, precision_bits: int | None) -> "CertificationPolicy":
        """The same policy at another run precision."""
        return dataclasses.replace(self, precision_bits=precision_bits)

    @staticmethod
    def reference_step(precision_bits: int) -> int:
        """``s = max(32, P // 4)``: the extra bits of a re-run of a ``P``-bit run."""
        return max(32, precision_bits // 4)

    def precision_ladder(self) -> tuple[int, int, int]:
        """``(P, P + s, P + 2s)``: the run, its re-run, and the stand-in for a run that did not converge."""
        bits = self._bits()
        step = self.reference_step(bits)
        return bits, bits + step, bits + 2 * step

    @property
    def digits_cap(self) -> int:
        """Digits a run may claim: 14 on the fast path (float64), else ``floor(P log10 2) - 1``."""
        return digits_supported(_FAST_RUN_BITS if self.fast_path else self.precision_bits)

    def flow_options(self, precision_bits: int, rtol: float | None = None, t_max: float = 1e20, loss_tol: float | None = None) -> FlowOptions:
        """:class:`~ssmpoison.verify._flow.FlowOptions` of one run under this policy (its step budget)."""
        extra = {} if self.max_steps is None else {"max_steps": self.max_steps}
        if not self.fast_path:
            extra["compiled_multiprecision"] = self.compiled_multiprecision
        return FlowOptions(precision_bits=precision_bits, rtol=rtol, loss_tol=loss_tol, t_max=t_max, **extra)

    def run_options(self, t_max: float = 1e20) -> FlowOptions:
        """The run: float64 at rtol 1e-11 (fast path), or ``P`` bits at that precision's default tolerance."""
        if self.fast_path:
            return self.flow_options(_FAST_RUN_BITS, rtol=_FAST_RUN_RTOL, t_max=t_max)
        return self.flow_options(self.precision_bits, t_max=t_max)

    def reference_options(self, t_max: float = 1e20) -> FlowOptions:
        """The re-run: longdouble (fast path), or ``P + s`` bits at the tolerance of ``reference_rtol_factor``."""
        run = self.run_options(t_max)
        if self.fast_path:
            loss_tol = run.effective_loss_tol * _FAST_REFERENCE_LOSS_FACTOR
            return self.flow_options(_FAST_REFERENCE_BITS, rtol=_FAST_REFERENCE_RTOL, t_max=t_max, loss_tol=loss_tol)
        rtol = None if self.reference_rtol_factor is None else run.effective_rtol * self.reference_rtol_factor
        return self.flow_options(self.precision_ladder()[1], rtol=rtol, t_max=t_max)

    def escalation_options(self, t_max: float = 1e20) -> FlowOptions:
        """Fast path only: the 80-bit re-run that certifies the longdouble run where float64 falls short."""
        return self.flow_options(_ESCALATION_BITS, rtol=_ESCALATION_RTOL, t_max=t_max)

    @property
    def escalation_digits_cap(self) -> int:
        """Digits the escalated (longdouble) run may claim."""
        return digits_supported(_FAST_REFERENCE_BITS)

    @property
    def oracle_bits(self) -> tuple[int, int, int]:
        """``(run bits, oracle bits, reference oracle bits)`` of a flow solved by the exact oracle."""
        bits = self._bits()
        oracle = max(bits, _ORACLE_MIN_BITS)
        return bits, oracle, oracle + _ORACLE_REFERENCE_EXTRA_BITS

    def _bits(self) -> int:
        return _FAST_RUN_BITS if self.fast_path else self.precision_bits


#: The search's certification of a failure: a run at ``P`` bits against ``P + s`` (one at ``P + 2s``
#: stands in for a run that does not converge), each with its precision's own tolerance and a
#: budget of 1500 steps; on the reference path (a report is reproduced bit for bit from its seed).
SEARCH_CERTIFICATION = CertificationPolicy(precision_bits=113, reference_rtol_factor=None, max_steps=1500,
                                           compiled_multiprecision=False)
