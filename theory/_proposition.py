r"""The Proposition's hypotheses (greedy low-rank learning with non-special data) as checkable predicates.

The setting is the search's (note 04): a student ``A = diag(a)`` trained by gradient flow from
``a(0)`` with ``B = C = 1``, on N input sequences of length H labelled by a teacher with D*
non-zero entries ``alpha`` (:class:`ssmpoison.theory._teacher.Teacher`). The paper states the
Proposition informally (note 00 §3): with no special sequence and a small initialisation of
distinct entries, the entries escape one at a time, largest first, and the learned A has about
the teacher's effective rank. Each hypothesis below is marked with its provenance:

* ``non_special`` — the paper's: ``u^(n)_{H-2} = 0`` for every n (``gamma^(0) = 0``).
* ``lowest_excited_lag`` — derived here: ``l* >= 2``. With ``l* = 1`` the leading term
  ``gamma^(1) a_i`` grows every entry at one common exponential rate: the ratios are kept and
  there is no race (note 03 §8, note 04 §1).
* ``small_init`` — the paper's (small initialisation); the threshold, ``max |a_i(0)|`` at most
  ``small_ratio`` times the teacher's smallest ``|alpha|``, is the checker's.
* ``distinct_init`` — the paper's (distinct entries), refined here to distinct *magnitudes*:
  for odd ``l*`` the flow near 0 is odd in ``a``, so ``x`` and ``-x`` race as equals.
* ``leader_sign`` — derived here: the entry of largest ``|a_i(0)|`` has the sign of the teacher's
  entry of largest ``|alpha|``. No entry changes sign (``a_i = 0`` solves each entry's equation
  when ``gamma^(0) = 0``), and for odd ``l*`` the largest magnitude escapes first; for even
  ``l*`` it is a sufficient-side simplification (note 03 §8).
* ``enough_data`` — derived here: the labels see ``r >= D*`` independent combinations of the
  teacher's impulse response (``r`` the rank of the inputs on positions ``0..H-2``). With
  ``r < D*`` a ``(D* - r)``-dimensional family of teachers gives the same labels and differs at
  some lag ``<= D*``: no learner extrapolates for all of them (note 03 §8).

The first four concern greedy low-rank learning (``concerns = "greedy_low_rank"``); the last two
concern extrapolation only (``"extrapolation"``), which needs all six.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from ssmpoison.theory._teacher import Teacher
from ssmpoison.theory._theorem import DERIVED as _THEOREM_DERIVED, PAPER
from ssmpoison.theory._training_set import TrainingSet
from ssmpoison.theory._validation import require_finite_sequence, require_real

__all__ = ["Hypothesis", "HYPOTHESES", "proposition_hypotheses", "lowest_excited_lag", "lag_rank", "sequence_rank"]

#: provenance of a hypothesis derived here and proved in the notes (the Theorem's provenances, with the section)
DERIVED = f"{_THEOREM_DERIVED} (proofs_notes/03_theorem.md §8)"
#: the hypotheses, in the order they are reported, with what they concern
HYPOTHESES = {
    "non_special": "greedy_low_rank",
    "lowest_excited_lag": "greedy_low_rank",
    "small_init": "greedy_low_rank",
    "distinct_init": "greedy_low_rank",
    "leader_sign": "extrapolation",
    "enough_data": "extrapolation",
}


@dataclass(frozen=True)
class Hypothesis:
    """One hypothesis of the Proposition on a problem.

    ``value`` is compared with ``threshold`` by ``relation``; ``holds`` is the outcome; ``detail``
    gives the numbers and the margin; ``provenance`` is :data:`PAPER` or :data:`DERIVED` (with
    what is the checker's own choice); ``concerns`` is ``"greedy_low_rank"`` or ``"extrapolation"``.
    """

    name: str
    statement: str
    value: float
    relation: str
    threshold: float
    holds: bool
    detail: str
    provenance: str
    concerns: str

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "holds": self.holds,
            "detail": self.detail,
            "statement": self.statement,
            "value": None if self.value != self.value else self.value,
            "relation": self.relation,
            "threshold": self.threshold,
            "provenance": self.provenance,
            "concerns": self.concerns,
        }


def lowest_excited_lag(inputs) -> int | None:
    """``l* = min { l : u^(n)_{H-2-l} != 0 for some n }`` over ``l = 0..H-2`` (``None`` when no such entry).

    Arguments:
        inputs: N sequences of a common length H >= 2.

    Returns:
        ``l*`` (0 exactly when some sequence is special), or ``None`` when every entry sits at
        ``H-1`` (then no ``gamma^(l)`` is ever non-zero and A does not move).
    """
    ts = TrainingSet(tuple(tuple(r) for r in inputs), (0,) * len(inputs))
    H = ts.horizon
    lags = [H - 2 - k for row in ts.inputs for k, u in enumerate(row) if u != 0 and k <= H - 2]
    return min(lags) if lags else None


def lag_rank(inputs) -> int:
    """Rank of the inputs on positions ``0..H-2``: the independent combinations of ``K_1, ..., K_{H-1}`` the labels see.

    ``y_H(u) = sum_k K_{H-1-k} u_k``; the last position meets only ``K_0 = D``, which every
    student and teacher share. Computed exactly (floats are exact binary rationals).
    """
    ts = TrainingSet(tuple(tuple(r) for r in inputs), (0,) * len(inputs))
    return sequence_rank([row[:-1] for row in ts.inputs])


def sequence_rank(rows) -> int:
    """The rank of the matrix whose rows are ``rows`` (exact: entries as ``Fraction``; floats are binary rationals).

    Arguments:
        rows: equal-length sequences of finite reals (at least one, of length >= 1).

    Returns:
        The number of linearly independent rows.
    """
    rows = [[Fraction(v) for v in row] for row in rows]
    rank, col = 0, 0
    width = len(rows[0])
    while rank < len(rows) and col < width:
        pivot = next((r for r in range(rank, len(rows)) if rows[r][col] != 0), None)
        if pivot is None:
            col += 1
            continue
        rows[rank], rows[pivot] = rows[pivot], rows[rank]
        for r in range(rank + 1, len(rows)):
            f = rows[r][col] / rows[rank][col]
            rows[r] = [x - f * y for x, y in zip(rows[r], rows[rank])]
        rank += 1
        col += 1
    return rank


def _ratio_text(ratio: float, holds: bool) -> str:
    if ratio == 0:
        return "margin unbounded"
    return f"{'margin' if holds else 'exceeded'} x{(1 / ratio if holds else ratio):.3g}"


def proposition_hypotheses(teacher: Teacher, inputs, a0, small_ratio=Fraction(1, 8)) -> list[Hypothesis]:
    """The Proposition's hypotheses on a problem (module docstring), each with its margin and provenance.

    Arguments:
        teacher: the clean-label teacher (its entries ``alpha``, dimension D*).
        inputs: the N training sequences (length H >= 3).
        a0: the student's initial diagonal (D = ``teacher.student_dim`` entries).
        small_ratio: ``small_init`` holds when ``max |a_i(0)| <= small_ratio * min |alpha|`` (> 0).

    Returns:
        The :data:`HYPOTHESES`, in order.

    Raises:
        ValueError: a malformed problem (naming the parameter).
    """
    if not isinstance(teacher, Teacher):
        raise ValueError("teacher must be a ssmpoison.theory._teacher.Teacher")
    ts = teacher.training_set(tuple(tuple(r) for r in inputs))
    H = ts.horizon
    a = require_finite_sequence("a0", a0, length=teacher.student_dim)
    ratio_small = require_real("small_ratio", small_ratio, positive=True)
    out = []

    worst = max(abs(float(row[H - 2])) for row in ts.inputs)
    special = list(ts.special_indices())
    out.append(Hypothesis(
        "non_special", "no training sequence is special: u^(n)_(H-2) = 0 for every n, so gamma^(0) = 0",
        worst, "==", 0.0, not special,
        "max_n |u^(n)_(H-2)| = 0" if not special else f"inputs{special} are special (max |u_(H-2)| = {worst:g})",
        PAPER, HYPOTHESES["non_special"]))

    l_star = lowest_excited_lag(ts.inputs)
    out.append(Hypothesis(
        "lowest_excited_lag",
        "the lowest excited lag l* is at least 2 (no input at H-2 or H-3): with l* = 1 every entry grows at one "
        "common exponential rate and there is no race",
        float("nan") if l_star is None else float(l_star), ">=", 2.0, l_star is not None and l_star >= 2,
        "no input at a position <= H-2: A never moves" if l_star is None else f"l* = {l_star} (position H-2-l* = {H - 2 - l_star})",
        DERIVED, HYPOTHESES["lowest_excited_lag"]))

    top = max(abs(float(v)) for v in a)
    alpha_min = min(abs(float(v)) for v in teacher.entries)
    bound = float(ratio_small) * alpha_min
    holds = top <= bound
    out.append(Hypothesis(
        "small_init",
        f"small initialisation: max |a_i(0)| <= {float(ratio_small):g} x the teacher's smallest |alpha| "
        "(the threshold is the checker's)",
        top, "<=", bound, holds, f"max |a_i(0)| = {top:.3g}, bound {bound:.3g} ({_ratio_text(top / bound, holds)})",
        PAPER, HYPOTHESES["small_init"]))

    mags = sorted((abs(Fraction(v)) for v in a), reverse=True)
    gaps = [(mags[k] - mags[k + 1]) / mags[k] if mags[k] != 0 else Fraction(0) for k in range(len(mags) - 1)]
    gap = float(min(gaps)) if gaps else 1.0
    out.append(Hypothesis(
        "distinct_init",
        "the initial entries have distinct magnitudes |a_i(0)| (the paper's distinct entries; magnitudes, since "
        "for odd l* the entries x and -x race as equals)",
        gap, ">", 0.0, gap > 0, f"smallest relative gap between consecutive |a_i(0)| = {gap:.3g}",
        PAPER + "; refined to magnitudes here", HYPOTHESES["distinct_init"]))

    leader = max(a, key=lambda v: abs(v))
    target = max(teacher.entries, key=lambda v: abs(v))
    same = (leader > 0) == (target > 0)
    out.append(Hypothesis(
        "leader_sign",
        "the largest |a_i(0)| has the sign of the teacher's largest |alpha|: no entry changes sign, and the largest "
        "magnitude escapes first",
        1.0 if same else -1.0, "==", 1.0, bool(same),
        f"largest initial entry {float(leader):.3g}, teacher's largest entry {float(target):g}",
        DERIVED, HYPOTHESES["leader_sign"]))

    r = lag_rank(ts.inputs)
    out.append(Hypothesis(
        "enough_data",
        "the labels see at least D* independent combinations of the teacher's impulse response (rank of the inputs "
        "on positions 0..H-2 >= D*); with fewer, teachers that differ beyond H give the same labels",
        float(r), ">=", float(teacher.dim), r >= teacher.dim, f"rank {r}, teacher dimension D* = {teacher.dim}",
        DERIVED, HYPOTHESES["enough_data"]))
    return out
