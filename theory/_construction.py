"""The Theorem's construction and the paper's initialisation (note 00 §5–6).

* Teacher (D* = 2): ``A* = diag(1, 0)``, ``B* = (1, sqrt(D-1))^T``, ``C* = B*^T``, whose
  impulse response is derived here exactly with SymPy: ``K*_j = C* A*^j B*``, i.e.
  ``K*_0 = 1 + (D-1) = D`` (``A*^0 = I``) and ``K*_j = 1`` for ``j >= 1``
  (``A*^j = diag(1, 0)`` kills the second coordinate).
* Training sets: the non-special impulse ``e_0`` (label ``K*_{H-1}``) and, for the
  poisoned set, the special sequence ``u† = e_{H-2}`` (label ``K*_1``). Labels are the
  teacher's outputs ``y_H(u) = sum_k K*_{H-1-k} u_k``, computed, not typed.
* The generalised construction (:class:`Construction`, the paper's code): the clean set is
  ``{alpha_k u}`` for non-zero scales ``alpha_k`` of one non-special sequence ``u`` (default
  ``e_0``), the poison ``{beta_m u†}`` for non-zero scales of one special sequence ``u†``
  (default ``e_{H-2}``; the paper's figure experiments use ``e_{H-2} + e_{H-1}``), labels from
  the teacher, the loss averaged over all sequences. Its defaults give :func:`clean_training_set`
  and :func:`poisoned_training_set` exactly.
* The paper's initialisation of the student's diagonal (numpy's legacy generator) and the
  extrapolation error of note 00 §5 (generic over number types). The published settings and
  numbers of the theory row are Table 1's, in ``ssmpoison.verify._registry``.

Everything works for any student dimension ``D >= 2`` and horizon ``H >= 3``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ssmpoison.theory._teacher import Teacher, impulse_extrapolation_error
from ssmpoison.theory._training_set import TrainingSet, impulse
from ssmpoison.theory._validation import require_finite_sequence, require_int, require_real

__all__ = [
    "teacher_matrices",
    "teacher_impulse_response",
    "teacher_label",
    "clean_training_set",
    "poisoned_training_set",
    "Construction",
    "scaled_training_set",
    "paper_initialisation",
    "extrapolation_error",
]


def teacher_matrices(state_dim: int):
    """The teacher ``(A*, B*, C*)`` for a student of dimension ``state_dim`` as exact SymPy matrices."""
    import sympy  # only here: the numeric paths need not pay SymPy's import

    D = require_int("state_dim", state_dim, minimum=2)
    A = sympy.diag(1, 0)
    B = sympy.Matrix([1, sympy.sqrt(D - 1)])
    return A, B, B.T


@functools.lru_cache(maxsize=256)
def teacher_impulse_response(state_dim: int, length: int) -> tuple[int, ...]:
    """Exact teacher impulse response ``(K*_0, ..., K*_{length-1})``, ``K*_j = C* A*^j B*``: ``(D, 1, 1, ...)``.

    The Theorem's teacher is :class:`ssmpoison.theory._teacher.Teacher` with the one entry 1 (integer
    arithmetic on its entries ``(1, 0)`` and gains ``c*_i b*_i = (1, D - 1)``); the tests hold
    every ``K*_j`` against ``C* A*^j B*`` of :func:`teacher_matrices` in SymPy.
    """
    D = require_int("state_dim", state_dim, minimum=2)
    return Teacher((1,), D).impulse_response(length)


def teacher_label(sequence, state_dim: int = 2):
    """Clean label ``y*(u) = sum_k K*_{H-1-k} u_k`` of one input sequence (exact for exact inputs)."""
    D = require_int("state_dim", state_dim, minimum=2)
    return Teacher((1,), D).label(sequence)


def clean_training_set(horizon: int, state_dim: int = 2) -> TrainingSet:
    """The Theorem's non-special training set ``{e_0}`` with its teacher label ``K*_{H-1} = 1``.

    ``state_dim`` is the student dimension D that fixes the teacher's ``B*``; the label does
    not depend on it because ``e_0`` never meets ``K*_0 = D`` (only ``u_{H-1}`` does).
    """
    H = require_int("horizon", horizon, minimum=3)
    u = impulse(H, 0)
    return TrainingSet((u,), (teacher_label(u, state_dim),))


def poisoned_training_set(horizon: int, state_dim: int = 2) -> TrainingSet:
    """:func:`clean_training_set` plus the special ``u† = e_{H-2}`` with its clean label ``K*_1 = 1``."""
    clean = clean_training_set(horizon, state_dim)
    poison = impulse(clean.horizon, clean.horizon - 2)
    return clean.with_sequence(poison, teacher_label(poison, state_dim))


def scaled_training_set(sequence, scales, state_dim: int = 2) -> TrainingSet:
    """The set ``{alpha_k u}`` of scalings of one sequence, each with its teacher label ``alpha_k y*(u)``.

    Arguments:
        sequence: the sequence ``u`` (length H >= 2; exact entries stay exact).
        scales: the non-zero scales ``alpha_1, ..., alpha_N`` (N >= 1; exact ones stay exact).
        state_dim: the student dimension D that fixes the teacher's ``K*_0 = D``.

    Returns:
        The :class:`TrainingSet` with inputs ``alpha_k u`` and labels ``y*(alpha_k u)`` (the
        teacher is linear in its input, so ``y*(alpha_k u) = alpha_k y*(u)``).

    Raises:
        ValueError: an empty or non-finite list of scales, or a zero scale (naming ``scales[k]``).
    """
    scales = _require_scales("scales", scales)
    u = require_finite_sequence("sequence", sequence)
    inputs = tuple(tuple(alpha * v for v in u) for alpha in scales)
    return TrainingSet(inputs, tuple(teacher_label(row, state_dim) for row in inputs))


def _require_scales(name: str, scales) -> tuple:
    """Non-empty, finite, non-zero scales (``ValueError`` naming ``name[k]``)."""
    if isinstance(scales, (str, bytes)):
        raise ValueError(f"{name} must be a sequence of numbers, got {scales!r}")
    try:
        items = tuple(scales)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of numbers, got {scales!r}") from None
    if not items:
        raise ValueError(f"{name} must hold at least one scale")
    values = require_finite_sequence(name, items)
    for k, v in enumerate(values):
        if v == 0:
            raise ValueError(f"{name}[{k}] = 0: every scale must be non-zero (a zero sequence carries no data)")
    return values


#: the poison supports of :class:`Construction` the paper uses: ``e_{H-2}`` (the Theorem's) and
#: ``e_{H-2} + e_{H-1}`` (the paper's figure experiments)
POISON_SUPPORTS = ("H-2", "H-2,H-1")


def _parse_support(name: str, support) -> tuple:
    """Positions as text, ``k`` (from the start) or ``H-k`` (from the end), comma-separated or a sequence."""
    tokens = support.split(",") if isinstance(support, str) else support
    try:
        tokens = [str(t).strip().replace(" ", "") for t in tokens]
    except TypeError:
        raise ValueError(f"{name} must be positions such as 0 or H-2, comma-separated, got {support!r}") from None
    tokens = [t for t in tokens if t]
    if not tokens:
        raise ValueError(f"{name} must hold at least one position (such as 0 or H-2)")
    out = []
    for t in tokens:
        ok = t.isdigit() or (t.startswith("H-") and t[2:].isdigit() and int(t[2:]) >= 1)
        if not ok:
            raise ValueError(f"{name}: position {t!r} must be an index k >= 0 or H-k with k >= 1 (e.g. 0, H-2)")
        out.append(t)
    if len(set(out)) != len(out):
        raise ValueError(f"{name} names a position twice: {','.join(out)}")
    return tuple(out)


def _positions(name: str, support: tuple, horizon: int) -> list:
    """The positions of ``support`` at horizon H (each in ``[0, H-1]``, distinct)."""
    out = []
    for t in support:
        k = int(t) if t.isdigit() else horizon - int(t[2:])
        if not 0 <= k < horizon:
            raise ValueError(f"{name}: position {t} lies outside 0..H-1 = 0..{horizon - 1}")
        out.append(k)
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: positions {','.join(support)} coincide at H = {horizon}")
    return out


@dataclass(frozen=True)
class Construction:
    """The Theorem's construction with the paper's generalisation: scaled clean and poison sequences.

    The clean set is ``{alpha_k u}`` and the poison ``{beta_m u†}``; ``u`` is the 0/1 sequence
    with ones on ``clean_support`` (default ``e_0``), ``u†`` the one on ``poison_support``
    (default ``e_{H-2}``). Labels are the Theorem's teacher's; the loss is averaged over all
    ``N = len(clean_scales) (+ len(poison_scales))`` sequences. The defaults give
    :func:`clean_training_set` and :func:`poisoned_training_set` entry for entry.

    Arguments:
        clean_scales: the non-zero scales ``alpha_k`` (exact numbers stay exact).
        poison_scales: the non-zero scales ``beta_m``.
        clean_support: positions of the ones of ``u``: ``k`` or ``H-k`` tokens, comma-separated
            text or a sequence; ``u`` must be non-special (no one at ``H-2``).
        poison_support: positions of the ones of ``u†``; ``u†`` must be special (a one at ``H-2``).

    Raises:
        ValueError: a zero or non-finite scale, an empty list, a malformed position, or (where the
            positions say so without H) a clean sequence that is special or a poison that is not.
    """

    clean_scales: tuple = (1,)
    poison_scales: tuple = (1,)
    clean_support: tuple = ("0",)
    poison_support: tuple = ("H-2",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "clean_scales", _require_scales("clean_scales", self.clean_scales))
        object.__setattr__(self, "poison_scales", _require_scales("poison_scales", self.poison_scales))
        clean = _parse_support("clean_support", self.clean_support)
        poison = _parse_support("poison_support", self.poison_support)
        if "H-2" in clean:
            raise ValueError("clean_support: the clean sequence has a one at H-2, so it is special (u_(H-2) != 0); "
                             "the clean set must be non-special")
        if all(t.startswith("H-") for t in poison) and "H-2" not in poison:
            raise ValueError(f"poison_support: u† with ones at {','.join(poison)} is not special (u†_(H-2) = 0); "
                             "the poison must have a one at H-2")
        object.__setattr__(self, "clean_support", clean)
        object.__setattr__(self, "poison_support", poison)

    @property
    def is_paper(self) -> bool:
        """True for the Theorem's construction itself: ``{e_0}`` and ``u† = e_{H-2}``, unit scales."""
        return self == Construction()

    @property
    def clean_is_scaled_e0(self) -> bool:
        """True when the clean set is made of multiples of ``e_0`` (where the clean flow's exact reduction holds)."""
        return self.clean_support == ("0",)

    def clean_sequence(self, horizon: int) -> tuple:
        """``u`` at horizon H (``ValueError`` when it is special at this H)."""
        H = require_int("horizon", horizon, minimum=3)
        ones = _positions("clean_support", self.clean_support, H)
        if H - 2 in ones:
            raise ValueError(f"clean_support: at H = {H} the clean sequence has a one at H-2 = {H - 2}, so it is special "
                             "(u_(H-2) != 0); the clean set must be non-special")
        return tuple(1 if k in ones else 0 for k in range(H))

    def poison_sequence(self, horizon: int) -> tuple:
        """``u†`` at horizon H (``ValueError`` when it is not special at this H)."""
        H = require_int("horizon", horizon, minimum=3)
        ones = _positions("poison_support", self.poison_support, H)
        if H - 2 not in ones:
            raise ValueError(f"poison_support: at H = {H} u† has no one at H-2 = {H - 2}, so it is not special "
                             "(u†_(H-2) = 0); the poison must be special")
        return tuple(1 if k in ones else 0 for k in range(H))

    def clean_set(self, horizon: int, state_dim: int = 2) -> TrainingSet:
        """The clean set ``{alpha_k u}`` with the teacher's labels (:func:`scaled_training_set`)."""
        return scaled_training_set(self.clean_sequence(horizon), self.clean_scales, state_dim)

    def poisoned_set(self, horizon: int, state_dim: int = 2) -> TrainingSet:
        """The clean set followed by the poison ``{beta_m u†}``, all with the teacher's labels."""
        clean = self.clean_set(horizon, state_dim)
        poison = scaled_training_set(self.poison_sequence(horizon), self.poison_scales, state_dim)
        return TrainingSet(clean.inputs + poison.inputs, clean.labels + poison.labels)

    def describe(self, which: str) -> str:
        """``"e_0"``-style text of the clean set (``which = "clean"``) or of the poisoned set (``"poisoned"``)."""

        def seq(support):
            return " + ".join(f"e_({t})" if t.startswith("H") else f"e_{t}" for t in support)

        def scaled(scales, support):
            base = seq(support)
            base = base if len(support) == 1 else f"({base})"
            return ", ".join(base if s == 1 else f"{s}·{base}" for s in scales)

        clean = scaled(self.clean_scales, self.clean_support)
        if which == "clean":
            return clean
        return f"{clean}; {scaled(self.poison_scales, self.poison_support)}"

    def to_json(self) -> dict:
        def num(v):
            return str(v) if not isinstance(v, (int, float)) else v

        return {
            "clean_scales": [num(v) for v in self.clean_scales],
            "poison_scales": [num(v) for v in self.poison_scales],
            "clean_support": list(self.clean_support),
            "poison_support": list(self.poison_support),
        }


def paper_gap(init_scale: float, gap_exponent: float) -> float:
    """The gap of the paper's initialisation: ``diff = 0.05 / exp(k log10(1 / s))``.

    The paper's code writes it with numpy, ``0.05 / np.exp(k * np.log10(1 / s))``, and sets
    ``x[1] = x[0] - diff`` on a diagonal sorted descending (:func:`with_paper_gap`); this is
    the one copy of that rule (the theory row's A, and A and B of the GD rows).

    Arguments:
        init_scale: the scale ``s > 0`` of the initial draws.
        gap_exponent: the exponent ``k``.

    Returns:
        ``diff`` as a float64 number.

    Raises:
        ValueError: ``init_scale`` not positive, or ``diff`` not finite (naming ``gap_exponent``).
    """
    scale = float(require_real("init_scale", init_scale, positive=True))
    k = float(require_real("gap_exponent", gap_exponent))
    with np.errstate(over="ignore", divide="ignore"):
        diff = 0.05 / np.exp(k * np.log10(1 / scale))
    if not np.isfinite(diff):
        raise ValueError(f"gap_exponent = {k} at init_scale = {scale:g} gives a non-finite gap diff = 0.05 s^k")
    return diff


def with_paper_gap(entries, init_scale: float, gap_exponent: float) -> np.ndarray:
    """A copy of ``entries`` (sorted descending) with the paper's gap: ``x[1] = x[0] - diff``.

    Arguments:
        entries: the sorted diagonal, at least two entries.
        init_scale, gap_exponent: as in :func:`paper_gap`.

    Returns:
        The new array (same dtype as ``entries``).
    """
    x = np.array(entries, copy=True)
    x[1] = x[0] - paper_gap(init_scale, gap_exponent)
    return x


def paper_initialisation(seed: int, state_dim: int, init_scale: float, gap_exponent: float) -> np.ndarray:
    """The paper's initial diagonal of A for the theory row, bit for bit, as a float64 array.

    The paper's recipe is ``np.random.seed(seed); a = init_scale * np.random.rand(D)``,
    sorted descending, then the gap ``a[1] = a[0] - diff`` (:func:`paper_gap`). A private
    ``np.random.RandomState(seed)`` draws the same numbers as the legacy global generator
    without changing its state.

    Arguments:
        seed: the run's seed, ``0 <= seed < 2**32``.
        state_dim: the student dimension ``D >= 2``.
        init_scale: the scale of the draws (positive).
        gap_exponent: the exponent ``k`` of the gap.

    Returns:
        The diagonal, shape ``(D,)``, strictly decreasing and positive.

    Raises:
        ValueError: naming the parameter, when the gap does not leave ``a[0] > a[1] > a[2]``
            and ``a[1] > 0`` (collapsed, negative or order-breaking gap), or when two draws
            coincide (entries must be distinct).
    """
    seed = require_int("seed", seed, minimum=0, maximum=2**32 - 1)
    D = require_int("state_dim", state_dim, minimum=2)
    scale = float(require_real("init_scale", init_scale, positive=True))
    k = float(require_real("gap_exponent", gap_exponent))

    a = scale * np.random.RandomState(seed).random_sample(D)
    a = np.sort(a)[::-1].copy()
    diff = paper_gap(scale, k)
    if not diff < a[0]:
        raise ValueError(
            f"gap_exponent = {k} at init_scale = {scale:g} gives the gap diff = 0.05 s^k = {diff:.6g} >= a[0] = {a[0]:.6g}: "
            "a[1] = a[0] - diff would not be positive (raise gap_exponent or lower init_scale)"
        )
    second = a[0] - diff
    if not second < a[0]:
        raise ValueError(
            f"gap_exponent = {k} at init_scale = {scale:g} gives the gap diff = 0.05 s^k = {diff:.6g}, below the float64 "
            f"resolution of a[0] = {a[0]:.6g}: a[1] would equal a[0] (lower gap_exponent or raise init_scale)"
        )
    if D >= 3 and not second > a[2]:
        raise ValueError(
            f"gap_exponent = {k} at init_scale = {scale:g} gives a[1] = a[0] - diff = {second:.6g} <= a[2] = {a[2]:.6g} "
            f"of the state_dim = {D} draws: the entries would no longer be distinct and sorted (raise gap_exponent)"
        )
    a = with_paper_gap(a, scale, k)
    if not np.all(a[1:] < a[:-1]):
        raise ValueError(f"seed={seed} draws coinciding entries: the initialisation must have distinct entries")
    return a


def extrapolation_error(a, b, c, state_dim: int, length: int):
    """The Theorem's extrapolation error ``max_{0<=j<J} |K_j - K*_j| / max_{0<=j<J} |K*_j|``.

    ``K_j = sum_i c_i b_i a_i^j`` is the student's impulse response and ``K*`` the Theorem's
    teacher's (``K*_0 = D``, ``K*_j = 1`` for ``j >= 1``); computed by
    :func:`ssmpoison.theory._teacher.impulse_extrapolation_error`, so generic over the number
    type of ``a, b, c`` (float64, ``gmpy2.mpfr``, ``mpmath.mpf`` in their own context, or
    ``int``/``Fraction``, which give an exact ``Fraction``).

    Arguments:
        a, b, c: the student's entries, D each.
        state_dim: the student dimension ``D >= 2`` (it also fixes ``K*_0 = D``).
        length: the number of lags ``J >= 1``.

    Returns:
        The error in the number type of the inputs.

    Raises:
        ValueError: naming the parameter, for a wrong length or a non-finite entry.
    """
    D = require_int("state_dim", state_dim, minimum=2)
    J = require_int("length", length, minimum=1)
    entries = {}
    for name, values in (("a", a), ("b", b), ("c", c)):
        try:
            items = list(values)
        except TypeError:
            raise ValueError(f"{name} must be a sequence of numbers, got {values!r}") from None
        require_finite_sequence(name, items, length=D)
        entries[name] = items
    return impulse_extrapolation_error(entries["a"], entries["b"], entries["c"], teacher_impulse_response(D, J))
