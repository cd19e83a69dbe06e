"""Training sets: N input sequences of length H with scalar labels (note 00 §1–2, §4).

A :class:`TrainingSet` is immutable and validated at construction. Entries are kept
as exact Python numbers (``int``/``Fraction``) when given so, which lets the SymPy
derivation evaluate the loss exactly; floats are accepted and kept as floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from numbers import Real

from ssmpoison.theory._validation import require_finite_sequence, require_int

__all__ = ["TrainingSet", "TRAIN_CHOICES", "impulse", "is_special", "special_score"]

# which parameters a flow or a derivation trains: only A (B, C fixed), or A, B and C
TRAIN_CHOICES = ("a", "abc")


@dataclass(frozen=True)
class TrainingSet:
    """Sequences ``inputs[n] = (u^(n)_0, ..., u^(n)_{H-1})`` with labels ``labels[n] = y*^(n)``.

    Arguments:
        inputs: N sequences, all of the same length H >= 2.
        labels: N finite labels.
    """

    inputs: tuple[tuple[Real, ...], ...]
    labels: tuple[Real, ...]

    def __post_init__(self) -> None:
        try:
            rows = list(self.inputs)
        except TypeError:
            raise ValueError("inputs must be a sequence of sequences") from None
        if len(rows) == 0:
            raise ValueError("inputs must hold at least one sequence (the training set is empty)")
        first = require_finite_sequence("inputs[0]", rows[0])
        horizon = len(first)
        if horizon < 2:
            raise ValueError(f"inputs must have length (horizon) >= 2, got {horizon}")
        checked = [first]
        for n, row in enumerate(rows[1:], start=1):
            seq = require_finite_sequence(f"inputs[{n}]", row)
            if len(seq) != horizon:
                raise ValueError(
                    f"inputs[{n}] has length {len(seq)} but inputs[0] has length {horizon}: "
                    "all sequences must have the same length"
                )
            checked.append(seq)
        labels = require_finite_sequence("labels", self.labels)
        if len(labels) != len(checked):
            raise ValueError(f"labels must have one entry per sequence ({len(checked)}), got {len(labels)}")
        object.__setattr__(self, "inputs", tuple(checked))
        object.__setattr__(self, "labels", labels)

    @property
    def horizon(self) -> int:
        """Sequence length H."""
        return len(self.inputs[0])

    @property
    def samples(self) -> int:
        """Number of sequences N."""
        return len(self.inputs)

    @property
    def is_exact(self) -> bool:
        """True when every entry is an ``int`` or ``Fraction`` (exact arithmetic possible)."""
        values = [v for row in self.inputs for v in row] + list(self.labels)
        return all(isinstance(v, (int, Fraction)) for v in values)

    def with_sequence(self, inputs, label) -> "TrainingSet":
        """A new training set with one more sequence appended."""
        return TrainingSet(self.inputs + (tuple(inputs),), self.labels + (label,))

    def special_indices(self) -> tuple[int, ...]:
        """Indices n of the special sequences (u^(n)_{H-2} != 0)."""
        return tuple(n for n, row in enumerate(self.inputs) if is_special(row))

    @property
    def is_special(self) -> bool:
        """True when at least one sequence is special (note 00 §4)."""
        return bool(self.special_indices())


def impulse(horizon: int, position: int) -> tuple[int, ...]:
    """The one-hot sequence e_position of length ``horizon``."""
    horizon = require_int("horizon", horizon, minimum=2)
    position = require_int("position", position, minimum=0, maximum=horizon - 1)
    return tuple(1 if k == position else 0 for k in range(horizon))


def is_special(sequence) -> bool:
    """A sequence u of length H is *special* when its second-to-last entry u_{H-2} is non-zero."""
    seq = require_finite_sequence("sequence", sequence)
    if len(seq) < 2:
        raise ValueError(f"sequence must have length >= 2, got {len(seq)}")
    return seq[-2] != 0


def special_score(sequence) -> float:
    """Graded speciality |u_{H-2}| / ||u||_2 in [0, 1].

    gamma^(0) = (2/N) sum_n delta_n u^(n)_{H-2}; for a given residual, a sequence can
    contribute to gamma^(0) in proportion to |u_{H-2}|, and to the other coefficients
    gamma^(l) in proportion to the rest of its entries. The score is the fraction of
    the sequence's Euclidean norm that sits on the special position: 0 for non-special
    sequences, 1 for multiples of e_{H-2}.
    """
    seq = require_finite_sequence("sequence", sequence)
    if len(seq) < 2:
        raise ValueError(f"sequence must have length >= 2, got {len(seq)}")
    norm = math.hypot(*(float(v) for v in seq))  # scaled: no underflow for tiny entries
    if norm == 0:
        return 0.0
    return abs(float(seq[-2])) / norm
