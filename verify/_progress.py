"""Progress bars of the command line: a ``progress(phase, done, total)`` callback drawn with tqdm on stderr.

Library jobs (:func:`ssmpoison.verify._search.run_search`, :func:`ssmpoison.verify._replay.replay_records`,
:func:`ssmpoison.verify._check_sweep.sweep_checks`) take such a callback and never draw anything
themselves; the command line passes a :class:`TqdmProgress`.
"""

from __future__ import annotations

import sys

__all__ = ["TqdmProgress"]


class TqdmProgress:
    """A callback ``progress(phase, done, total)`` that shows one transient tqdm bar per phase on stderr.

    A bar is created at a phase's first call (so nothing is drawn before the job starts), replaced
    when a new phase starts (``done == 0`` or another phase name) and removed by :meth:`close`;
    use it as a context manager to close it in every case.

    Arguments:
        unit: the unit the bars count (e.g. ``"flow"``).
    """

    def __init__(self, unit: str = "it"):
        self.unit = unit
        self._bar = None
        self._phase = None

    def __call__(self, phase: str, done: int, total: int) -> None:
        if self._bar is None or phase != self._phase or done == 0:
            from tqdm import tqdm

            self.close()
            self._bar = tqdm(total=total, desc=phase, unit=self.unit, file=sys.stderr, leave=False, dynamic_ncols=True)
            self._phase = phase
        self._bar.update(done - self._bar.n)

    def set_postfix(self, **values) -> None:
        """Show ``values`` after the current bar's counts (e.g. ``failed=2``); nothing when no bar is drawn."""
        if self._bar is not None:
            self._bar.set_postfix(values)

    def close(self) -> None:
        """Remove the current bar, if any."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            self._phase = None

    def __enter__(self) -> TqdmProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
