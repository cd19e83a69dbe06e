r"""Hypothesis strategies for clean-label learning problems, non-special by construction (and special ones).

A drawn :class:`~ssmpoison.verify._clean_problem.CleanProblem` has

* sizes: student dimension ``D`` in ``[2, max_state_dim]``, horizon ``H`` in ``[3, max_horizon]``,
  ``N`` in ``[1, max_samples]`` sequences, teacher dimension ``D*`` from ``teacher_dims``
  (``D* <= D``);
* a teacher (:class:`ssmpoison.theory._teacher.Teacher`) with D* distinct, non-zero, stable entries from
  the dyadic grid ``{±2/8, ±3/8, ..., ±7/8}`` (``1/4 <= |alpha| < 1``: well above every
  initialisation scale, so that "escaped" and "still at the initialisation" stay distinct);
* inputs with support on ``{0, ..., H-2-l*} ∪ {H-1}``: position ``H-2`` is zero (**non-special**:
  no sequence excites the special direction ``u† = e_{H-2}``), and the *lowest excited lag* ``l* >= 1`` — the lowest ``l`` for which ``gamma^(l)``
  can be non-zero (position ``H-2-l`` enters ``gamma^(l)``) — is drawn uniformly from
  ``[1, H-2]`` and attained by the first sequence. ``l* = 1`` (an entry at ``H-3``) gives
  exponential growth at one common rate (no head start); ``l* >= 2`` is the Proposition's
  greedy regime. Every sequence has an entry at a position ``<= H-3`` (it meets some ``K_j``
  with ``j >= 2``, so it carries information about A). The support is either a random subset
  or the whole allowed set ("full": with ``l* = 1`` every lag but the forbidden ``j = 1`` is
  excited — the persistently exciting case); values are integers in ``[-3, 3] \ {0}``;
* distinct sequences (a repeated sequence only re-weights the loss);
* clean labels from the teacher (computed, never drawn);
* an initialisation ``a0_i = ±(k_i / 64) * s`` with distinct ``k_i`` in ``[1, 64]``, random
  signs, and scale ``s`` in ``{2^-10, 2^-8, 2^-7}`` (about 1e-3, 4e-3, 8e-3: small next to the
  teacher's entries, as the Proposition's greedy regime requires).

Every number is a dyadic rational (teacher entries k/8, integer inputs, ``a0`` of the form
k/2^m), so the labels are dyadic too and a float64 run integrates exactly the same problem as
a high-precision one. Shrinking moves towards small D, H, N, ``l* = 1``, one-entry supports,
inputs 1, positive entries, the teacher entry 1/2 and the smallest initialisation scale.

:func:`special_problems` draws the same problems and then makes one or more sequences special
(``u_{H-2} != 0``), with clean labels recomputed.
"""

from __future__ import annotations

from fractions import Fraction

from hypothesis import strategies as st

from ssmpoison.theory._teacher import Teacher
from ssmpoison.verify._clean_problem import CleanProblem

__all__ = [
    "TEACHER_GRID",
    "INIT_SCALES",
    "teachers",
    "input_values",
    "non_special_sequences",
    "initialisations",
    "clean_problems",
    "special_problems",
]

#: Teacher entries, simplest first (Hypothesis shrinks ``sampled_from`` towards the front).
TEACHER_GRID = tuple(Fraction(s * k, 8) for k in (4, 2, 6, 3, 5, 7) for s in (1, -1))
#: Initialisation scales, smallest (the paper's ~1e-3) first.
INIT_SCALES = (Fraction(1, 2**10), Fraction(1, 2**8), Fraction(1, 2**7))
_MAX_INPUT = 3
_INIT_LEVELS = 64


def teachers(student_dim: int, dims=(1, 2)) -> st.SearchStrategy:
    """Teachers of a dimension ``D*`` in ``dims`` (``<= student_dim``) with distinct entries of :data:`TEACHER_GRID`.

    Arguments:
        student_dim: the student dimension D the teacher is embedded in.
        dims: the teacher dimensions to draw from.

    Returns:
        A strategy of :class:`ssmpoison.theory._teacher.Teacher`.

    Raises:
        ValueError: every dimension in ``dims`` is above ``student_dim``.
    """
    allowed = [d for d in dims if d <= student_dim]
    if not allowed:
        raise ValueError(f"teacher dims {tuple(dims)} are all higher than the student dimension {student_dim}")
    return st.sampled_from(allowed).flatmap(
        lambda d: st.lists(st.sampled_from(TEACHER_GRID), min_size=d, max_size=d, unique=True)
    ).map(lambda entries: Teacher(tuple(entries), student_dim))


def input_values() -> st.SearchStrategy:
    """A non-zero integer input in ``[-3, 3]``.

    Returns:
        A strategy of ``int`` (shrinks to 1).
    """
    return st.builds(lambda m, neg: -m if neg else m, st.integers(1, _MAX_INPUT), st.booleans())


@st.composite
def non_special_sequences(draw, horizon: int, lowest_lag: int = 1, anchored: bool = False):
    """A sequence of length ``H >= 3`` with ``u_{H-2} = 0`` whose informative entries sit at lags ``>= lowest_lag``.

    Position k meets ``K_{H-1-k}``, and enters ``gamma^(l)`` for ``l = H-2-k``; the support is a
    subset of ``{0, ..., H-2-lowest_lag} ∪ {H-1}`` with at least one informative position (one
    ``<= H-3``), its values from :func:`input_values`.

    Arguments:
        horizon: the sequence length H (>= 3).
        lowest_lag: the lowest lag ``l*`` the sequence may excite (in ``[1, H-2]``).
        anchored: force the position ``H-2-lowest_lag``, so that the lowest excited lag of the
            sequence is exactly ``lowest_lag``.

    Returns:
        A strategy of tuples of ``H`` integers.

    Raises:
        ValueError: ``horizon < 3`` or ``lowest_lag`` outside ``[1, H-2]``.
    """
    if horizon < 3:
        raise ValueError(f"horizon must be >= 3 for a non-special informative sequence, got {horizon}")
    if not 1 <= lowest_lag <= horizon - 2:
        raise ValueError(f"lowest_lag must be in [1, H-2] = [1, {horizon - 2}], got {lowest_lag}")
    informative = list(range(horizon - 1 - lowest_lag))  # positions 0..H-2-l*
    allowed = informative + [horizon - 1]
    if draw(st.sampled_from(("subset", "full"))) == "full":
        support = set(allowed)
    else:
        chosen = draw(st.lists(st.booleans(), min_size=len(allowed), max_size=len(allowed)))
        support = {p for p, keep in zip(allowed, chosen) if keep}
    if anchored:
        support.add(informative[-1])
    elif not support & set(informative):
        support.add(0)
    return tuple(draw(input_values()) if k in support else 0 for k in range(horizon))


@st.composite
def initialisations(draw, state_dim: int, scales=INIT_SCALES):
    """An initialisation ``a0_i = ±(k_i/64) * scale`` with distinct ``k_i`` in ``[1, 64]`` and random signs.

    Arguments:
        state_dim: the number of entries D.
        scales: the scales to draw from (default :data:`INIT_SCALES`).

    Returns:
        A strategy of ``(a0, scale)``: ``a0`` a tuple of Fractions sorted by decreasing value.
    """
    scale = draw(st.sampled_from(tuple(scales)))
    levels = draw(
        st.lists(st.integers(1, _INIT_LEVELS), min_size=state_dim, max_size=state_dim, unique=True).map(
            lambda ks: sorted(ks, reverse=True)
        )
    )
    signs = draw(st.lists(st.booleans(), min_size=state_dim, max_size=state_dim))
    a0 = [Fraction(-k if neg else k, _INIT_LEVELS) * scale for k, neg in zip(levels, signs)]
    return tuple(sorted(a0, reverse=True)), scale


@st.composite
def clean_problems(draw, teacher_dims=(1, 2), max_state_dim: int = 6, max_horizon: int = 8, max_samples: int = 4):
    """Non-special clean-label problems (see the module docstring).

    Arguments:
        teacher_dims: teacher dimensions D* to draw from.
        max_state_dim: largest student dimension D; D is drawn from ``[max(2, min D*), max_state_dim]``.
        max_horizon: largest horizon H; H is drawn from ``[3, max_horizon]``.
        max_samples: largest number of sequences N; N is drawn from ``[1, max_samples]``.

    Returns:
        A strategy of :class:`ssmpoison.verify._clean_problem.CleanProblem`.
    """
    min_dim = max(2, min(teacher_dims))
    D = draw(st.integers(min_dim, max(min_dim, max_state_dim)))
    H = draw(st.integers(3, max(3, max_horizon)))
    N = draw(st.integers(1, max(1, max_samples)))
    lag = draw(st.integers(1, H - 2))
    teacher = draw(teachers(D, teacher_dims))
    first = draw(non_special_sequences(H, lag, anchored=True))
    others = st.lists(non_special_sequences(H, lag).filter(lambda u: u != first), min_size=N - 1, max_size=N - 1, unique=True)
    inputs = [first, *draw(others)]
    a0, scale = draw(initialisations(D))
    return CleanProblem(teacher, tuple(inputs), a0, scale)


@st.composite
def special_problems(draw, teacher_dims=(1, 2), max_state_dim: int = 6, max_horizon: int = 8, max_samples: int = 4):
    """Clean-label problems with at least one special sequence (``u_{H-2} != 0``), labels recomputed.

    Arguments:
        teacher_dims, max_state_dim, max_horizon, max_samples: as for :func:`clean_problems`.

    Returns:
        A strategy of :class:`ssmpoison.verify._clean_problem.CleanProblem`: a problem of
        :func:`clean_problems` with a non-zero input at position ``H-2`` in one or more sequences.
    """
    base = draw(clean_problems(teacher_dims, max_state_dim, max_horizon, max_samples))
    H = base.horizon
    poisoned = draw(st.sets(st.integers(0, base.samples - 1), min_size=1))
    inputs = []
    for n, row in enumerate(base.inputs):
        if n in poisoned:
            row = row[: H - 2] + (draw(input_values()),) + row[H - 1 :]
        inputs.append(row)
    return CleanProblem(base.teacher, tuple(inputs), base.a0, base.init_scale)
