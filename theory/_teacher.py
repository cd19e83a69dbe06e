r"""Clean-label teachers of dimension D* for a student of dimension D with B = C = 1.

The Theorem's teacher ``A* = diag(1, 0)``, ``B* = (1, sqrt(D-1))^T``, ``C* = B*^T`` is the
student ``a = (1, 0, ..., 0)`` written with two states: one escaping entry, and a zero entry
whose weight ``c*_2 b*_2 = D - 1`` makes ``K*_0 = D``, what every student with ``B = C = 1``
has. The same construction with D* non-zero entries ``alpha_1, ..., alpha_{D*}`` gives the
teachers used by the search over training sets:

    A* = diag(alpha_1, ..., alpha_{D*}, 0),   B* = C*^T = (1, ..., 1, sqrt(D - D*)),

(the zero state is dropped when ``D* = D``), whose impulse response is

    K*_0 = D,    K*_j = sum_{k <= D*} alpha_k^j   (j >= 1).

It is exactly the impulse response of the student ``a* = (alpha_1, ..., alpha_{D*}, 0, ..., 0)``,
so every teacher is realisable by the student and the clean labels can be fitted; the
teacher's dimension D* is the number of non-zero entries of ``a*`` — the rank of its state
matrix, an upper bound on its effective rank. The Theorem's teacher is ``alpha = (1,)``.

Clean label of ``u``: ``y*(u) = sum_k K*_{H-1-k} u_k`` (exact for exact entries and inputs).
Extrapolation error of a student ``(a, b, c)`` over ``J`` lags (the paper's):
``max_{0<=j<J} |K_j - K*_j| / max_{0<=j<J} |K*_j|``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from numbers import Integral

from ssmpoison.theory._training_set import TrainingSet
from ssmpoison.theory._validation import require_finite_sequence, require_int

__all__ = ["Teacher", "impulse_extrapolation_error"]


@dataclass(frozen=True)
class Teacher:
    """Teacher with non-zero, distinct entries ``alpha`` (``|alpha_k| <= 1``) for a student of dimension ``student_dim``.

    Arguments:
        entries: ``alpha_1, ..., alpha_{D*}`` (``1 <= D* <= student_dim``); exact numbers stay exact.
        student_dim: the student's dimension D (>= 1); it fixes ``K*_0 = D``.
    """

    entries: tuple
    student_dim: int

    def __post_init__(self) -> None:
        D = require_int("student_dim", self.student_dim, minimum=1)
        alpha = require_finite_sequence("teacher entries", self.entries)
        if len(alpha) < 1:
            raise ValueError("teacher entries must hold at least one entry (teacher dimension D* >= 1)")
        if len(alpha) > D:
            raise ValueError(
                f"teacher dimension D* = {len(alpha)} is higher than the student dimension D = {D}: "
                "the student could not realise the teacher"
            )
        for k, v in enumerate(alpha):
            if v == 0:
                raise ValueError(f"teacher entries[{k}] must be non-zero (a zero entry does not count in D*)")
            if abs(v) > 1:
                raise ValueError(f"teacher entries[{k}] = {v} must satisfy |alpha| <= 1 (a stable teacher)")
        if len(set(alpha)) != len(alpha):
            raise ValueError(f"teacher entries must be distinct, got {alpha}")
        object.__setattr__(self, "student_dim", D)
        object.__setattr__(self, "entries", alpha)

    @property
    def dim(self) -> int:
        """The teacher dimension D* (number of non-zero entries of its state matrix)."""
        return len(self.entries)

    @property
    def state_diagonal(self) -> tuple:
        """The diagonal of ``A*``: the entries, then the zero state when ``D* < D``."""
        return self.entries + ((0,) if self.dim < self.student_dim else ())

    @property
    def weights(self) -> tuple:
        """``c*_i b*_i`` for each state of ``A*``: 1 for every entry, ``D - D*`` for the zero state."""
        return (1,) * self.dim + ((self.student_dim - self.dim,) if self.dim < self.student_dim else ())

    @property
    def student_equivalent(self) -> tuple:
        """The student diagonal ``(alpha_1, ..., alpha_{D*}, 0, ..., 0)`` with the teacher's impulse response."""
        return self.entries + (0,) * (self.student_dim - self.dim)

    def impulse_response(self, length: int) -> tuple:
        """``(K*_0, ..., K*_{length-1})`` with ``K*_0 = D`` and ``K*_j = sum_k alpha_k^j``."""
        J = require_int("length", length, minimum=1)
        out = [self.student_dim]
        powers = list(self.entries)
        for _ in range(1, J):
            out.append(sum(powers))
            powers = [p * a for p, a in zip(powers, self.entries)]
        return tuple(out)

    def label(self, sequence):
        """Clean label ``y*(u) = sum_k K*_{H-1-k} u_k``."""
        seq = require_finite_sequence("sequence", sequence)
        if len(seq) < 2:
            raise ValueError(f"sequence must have length >= 2, got {len(seq)}")
        K = self.impulse_response(len(seq))
        H = len(seq)
        return sum(K[H - 1 - k] * u for k, u in enumerate(seq))

    def training_set(self, inputs) -> TrainingSet:
        """The training set of ``inputs`` with the teacher's clean labels."""
        rows = [tuple(row) for row in inputs]
        return TrainingSet(tuple(rows), tuple(self.label(row) for row in rows))

    def extrapolation_error(self, a, b=None, c=None, length: int = 20):
        """:func:`impulse_extrapolation_error` of the student ``(a, b, c)`` (``b = c = 1`` by default) over ``length`` lags."""
        J = require_int("length", length, minimum=1)
        a = list(a)
        D = self.student_dim
        if len(a) != D:
            raise ValueError(f"a must have the student dimension D = {D} entries, got {len(a)}")
        b = [1] * D if b is None else list(b)
        c = [1] * D if c is None else list(c)
        return impulse_extrapolation_error(a, b, c, self.impulse_response(J))


def impulse_extrapolation_error(a, b, c, target):
    """The paper's extrapolation error of a student against a target impulse response.

    ``E = max_{0<=j<J} |K_j - K*_j| / max_{0<=j<J} |K*_j|`` with ``K_j = sum_i c_i b_i a_i^j``
    and ``K* = target`` (J its length). The one implementation: every extrapolation error of
    an SSM's impulse response goes through here. Generic over the number type of ``a, b, c``
    (float64, float32, gmpy2, mpmath — set the precision beforehand — or exact
    ``int``/``Fraction``, which give an exact ``Fraction``). ``K_j`` is evaluated as the numeric
    kernels do (:func:`ssmpoison.verify._kernels.impulse_response`): ``a_i^j`` by repeated
    multiplication, then ``c_i b_i a_i^j`` summed over i in index order, so a float result is
    bit for bit the kernels' (for ``J >= 2``: at ``J = 1`` numpy sums eight or more terms
    pairwise). A NaN anywhere in ``K`` gives NaN.

    Arguments:
        a, b, c: the student's entries (sequences of one length D).
        target: ``(K*_0, ..., K*_{J-1})``, not all zero.

    Returns:
        ``E`` in the number type of the inputs (a ``Fraction`` for exact inputs).
    """
    target = list(target)
    a = list(a)
    weights = [ci * bi for bi, ci in zip(b, c)]  # c_i b_i
    power = [1] * len(a)  # a_i^j, j = 0
    worst = None
    for j, Kj in enumerate(target):
        if j == 1:
            power = list(a)
        elif j > 1:
            power = [p * ai for p, ai in zip(power, a)]
        gap = abs(sum(w * p for w, p in zip(weights, power)) - Kj)
        if worst is None or gap > worst or gap != gap:
            worst = gap if worst is None or worst == worst else worst
    scale = max(abs(k) for k in target)
    if isinstance(worst, Integral) and isinstance(scale, Integral):
        return Fraction(int(worst), int(scale))
    return worst / scale
