"""A clean-label learning problem: teacher, training inputs, and the student's initial diagonal.

The student is the Theorem's: ``A = diag(a)`` trained by gradient flow from ``a0`` with
``B = C = 1`` fixed (note 00 §3, §5). The labels are not free: they are the teacher's clean
labels of the inputs (:class:`ssmpoison.theory._teacher.Teacher`), computed here, so a problem can only
be poisoned by *which* inputs it holds. A problem is non-special when no input has
``u_{H-2} != 0`` (note 00 §4).

Numbers are kept exact (``int``/``Fraction``) where given so; the JSON form writes an exact
rational as the string ``"p/q"`` and reads it back exactly, so a saved problem is the same
problem bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from ssmpoison.theory._teacher import Teacher
from ssmpoison.theory._training_set import TrainingSet
from ssmpoison.theory._validation import require_finite_sequence, require_int, require_real
from ssmpoison.verify._flow import FlowProblem

__all__ = ["CleanProblem", "encode_number", "decode_number"]


def encode_number(x):
    """JSON form of an exact or float number: ``int`` and ``float`` as themselves, a ``Fraction`` as ``"p/q"``."""
    if isinstance(x, Fraction):
        return x.numerator if x.denominator == 1 else f"{x.numerator}/{x.denominator}"
    if isinstance(x, int):
        return int(x)
    return float(x)


def decode_number(name: str, x):
    """Inverse of :func:`encode_number` (validated: finite reals only, ``ValueError`` naming ``name``)."""
    if isinstance(x, str) and "/" not in x and not x.strip().lstrip("+-").isdigit():
        raise ValueError(f"{name} must be a number or an exact 'p/q' string, got {x!r}")
    value = require_real(name, x)
    if isinstance(value, Fraction) and value.denominator == 1:
        return int(value)
    return value


@dataclass(frozen=True)
class CleanProblem:
    """Teacher, N input sequences (clean labels derived), and the initial diagonal ``a0`` of the student.

    Arguments:
        teacher: the clean-label teacher; its ``student_dim`` is the student's D.
        inputs: N >= 1 sequences of a common length H >= 3.
        a0: D non-zero, distinct initial entries with ``|a0_i| <= init_scale``.
        init_scale: the initialisation scale (> 0).
    """

    teacher: Teacher
    inputs: tuple
    a0: tuple
    init_scale: object
    training_set: TrainingSet = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.teacher, Teacher):
            raise ValueError("teacher must be a ssmpoison.theory._teacher.Teacher")
        try:
            rows = tuple(tuple(row) for row in self.inputs)
        except TypeError:
            raise ValueError("inputs must be a sequence of sequences") from None
        training_set = self.teacher.training_set(rows)  # validates: empty set, lengths, NaN
        if training_set.horizon < 3:
            raise ValueError(f"inputs must have length (horizon) H >= 3, got {training_set.horizon}")
        D = self.teacher.student_dim
        a0 = require_finite_sequence("a0", self.a0)
        if len(a0) != D:
            raise ValueError(f"a0 must have the student dimension D = {D} entries, got {len(a0)}")
        scale = require_real("init_scale", self.init_scale, positive=True)
        for i, v in enumerate(a0):
            if v == 0:
                raise ValueError(f"a0[{i}] must be non-zero (a zero entry never moves without a special sequence)")
            if abs(v) > scale:
                raise ValueError(f"a0[{i}] = {v} exceeds the initialisation scale {scale}")
        if len(set(a0)) != len(a0):
            raise ValueError(f"a0 must have distinct entries, got {a0}")
        object.__setattr__(self, "inputs", training_set.inputs)
        object.__setattr__(self, "a0", a0)
        object.__setattr__(self, "init_scale", scale)
        object.__setattr__(self, "training_set", training_set)

    @property
    def state_dim(self) -> int:
        return self.teacher.student_dim

    @property
    def horizon(self) -> int:
        return self.training_set.horizon

    @property
    def samples(self) -> int:
        return self.training_set.samples

    @property
    def is_special(self) -> bool:
        return self.training_set.is_special

    def flow_problem(self) -> FlowProblem:
        """Gradient flow of ``L_H`` in A alone, ``B = C = 1``, from ``a0``."""
        return FlowProblem(self.training_set, self.a0)

    def to_json(self) -> dict:
        return {
            "state_dim": self.state_dim,
            "horizon": self.horizon,
            "samples": self.samples,
            "teacher": {
                "dim": self.teacher.dim,
                "entries": [encode_number(v) for v in self.teacher.entries],
                "A_star_diagonal": [encode_number(v) for v in self.teacher.state_diagonal],
                "weights_c_star_b_star": list(self.teacher.weights),
            },
            "inputs": [[encode_number(v) for v in row] for row in self.inputs],
            "labels": [encode_number(v) for v in self.training_set.labels],
            "init_scale": encode_number(self.init_scale),
            "a0": [encode_number(v) for v in self.a0],
        }

    @classmethod
    def from_json(cls, payload) -> "CleanProblem":
        """Rebuild a problem from :meth:`to_json`; stored labels must be the teacher's clean labels."""
        if not isinstance(payload, dict):
            raise ValueError("problem must be a JSON object")
        for key in ("teacher", "inputs", "a0", "init_scale"):
            if key not in payload:
                raise ValueError(f"problem has no {key!r} field")
        teacher = payload["teacher"]
        if not isinstance(teacher, dict) or "entries" not in teacher:
            raise ValueError("problem teacher must be an object with an 'entries' list")
        inputs = payload["inputs"]
        if not isinstance(inputs, list) or any(not isinstance(row, list) for row in inputs):
            raise ValueError("problem inputs must be a list of lists of numbers")
        entries = _decode_list("teacher entries", teacher["entries"])
        a0 = _decode_list("a0", payload["a0"])
        rows = [_decode_list(f"inputs[{n}]", row) for n, row in enumerate(inputs)]
        state_dim = require_int("state_dim", payload.get("state_dim", len(a0)), minimum=1)
        problem = cls(Teacher(entries, state_dim), rows, a0, decode_number("init_scale", payload["init_scale"]))
        if "labels" in payload:
            stored = _decode_list("labels", payload["labels"])
            if len(stored) != problem.samples:
                raise ValueError(f"labels must have one entry per sequence ({problem.samples}), got {len(stored)}")
            for n, (s, y) in enumerate(zip(stored, problem.training_set.labels)):
                if s != y:
                    raise ValueError(f"labels[{n}] = {s} is not the teacher's clean label {y}")
        return problem


def _decode_list(name: str, values) -> tuple:
    if not isinstance(values, list):
        raise ValueError(f"{name} must be a list of numbers, got {values!r}")
    return tuple(decode_number(f"{name}[{k}]", v) for k, v in enumerate(values))
