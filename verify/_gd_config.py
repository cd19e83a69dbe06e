"""Settings of the two gradient-descent rows: :class:`BeyondConfig` and :class:`NonlinearConfig`.

Both share the fields of one training setting (:class:`_GDConfig`: horizon, student
dimension, initialisation gap and warm start, training data, step size, stopping rule,
extrapolation length) and one validator. A config holds no published values: the paper's
settings of Table 1 are :mod:`ssmpoison.verify._registry`'s. The only defaults are
algorithmic (optimiser constants, divergence bound, which reading of the paper's code runs, the
arithmetic: float64, or float32 as the paper's TensorFlow code).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ssmpoison.theory._teacher import Teacher
from ssmpoison.theory._validation import require_int, require_real

__all__ = ["BeyondConfig", "NonlinearConfig", "DTYPES", "teacher_impulse"]

#: the arithmetic a GD row may train in: ``dtype`` of its config (float64 is the default, float32 the paper's)
DTYPES = ("float64", "float32")


def _require_positions(name: str, positions, horizon: int) -> tuple[int, ...]:
    """Distinct positions in ``0..H-1`` other than the special position ``H-2``."""
    try:
        items = tuple(positions)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of integers, got {positions!r}") from None
    if not items:
        raise ValueError(f"{name} must hold at least one position")
    out = tuple(require_int(f"{name}[{k}]", p, minimum=0, maximum=horizon - 1) for k, p in enumerate(items))
    if len(set(out)) != len(out):
        raise ValueError(f"{name} must be distinct, got {out}")
    if horizon - 2 in out:
        raise ValueError(f"{name} must not contain the special position H-2 = {horizon - 2}")
    return tuple(sorted(out))


def _require_special_positions(positions, horizon: int) -> tuple[int, ...]:
    """Distinct positions in ``0..H-1`` that contain the special position ``H-2``, ascending."""
    try:
        items = tuple(positions)
    except TypeError:
        raise ValueError(f"special_positions must be a sequence of integers, got {positions!r}") from None
    out = tuple(require_int(f"special_positions[{k}]", p, minimum=0, maximum=horizon - 1) for k, p in enumerate(items))
    if len(set(out)) != len(out):
        raise ValueError(f"special_positions must be distinct, got {out}")
    if horizon - 2 not in out:
        raise ValueError(f"special_positions must contain the special position H-2 = {horizon - 2}, got {out}")
    return tuple(sorted(out))


def _require_reals(name: str, values, *, positive: bool, minimum_length: int = 0, maximum_length=None
                   ) -> tuple[float, ...]:
    """A tuple of finite reals (each > 0 when ``positive``) of a length in the given range."""
    try:
        items = tuple(values)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of numbers, got {values!r}") from None
    if len(items) < minimum_length or (maximum_length is not None and len(items) > maximum_length):
        bound = f"at most {maximum_length}" if len(items) >= minimum_length else f"at least {minimum_length}"
        raise ValueError(f"{name} must hold {bound} numbers, got {len(items)}")
    return tuple(float(require_real(f"{name}[{k}]", v, positive=positive)) for k, v in enumerate(items))


def teacher_impulse(teacher_a, length: int) -> np.ndarray:
    """The impulse response ``K*_j = sum_i (a*_i)^j`` (``j = 0..length-1``) of the teacher ``A* = diag(a*)``,
    ``B* = C* = (1, ..., 1)``, in float64.

    Arguments:
        teacher_a: the teacher's diagonal ``a*``.
        length: how many entries.

    Returns:
        Shape ``(length,)``: :meth:`ssmpoison.theory._teacher.Teacher.impulse_response` of the teacher with
        the entries ``a*`` (D* = D), in float64.

    Raises:
        ValueError: a negative or non-integer ``length``; a zero, repeated or unstable entry of ``teacher_a``.
    """
    length = require_int("length", length, minimum=0)
    if length == 0:
        return np.zeros(0)
    return np.array(_teacher(teacher_a).impulse_response(length), dtype=np.float64)


def _teacher(teacher_a) -> Teacher:
    """The teacher ``A* = diag(a*)``, ``B* = C* = 1`` as the theory's :class:`ssmpoison.theory._teacher.Teacher`
    (its D* = D entries, so ``K*_0 = len(a*)``): the one copy of its impulse response.

    Raises:
        ValueError: ``teacher_a`` with a zero, a repeated or an unstable (``|a*_i| > 1``) entry.
    """
    try:
        return Teacher(tuple(float(v) for v in teacher_a), len(teacher_a))
    except ValueError as exc:
        raise ValueError(f"teacher_a: {exc}") from None


def _require_unit_interval(name: str, value) -> float:
    value = float(require_real(name, value))
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return value


def _require_bool(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _reported_extra(extra_steps: int, log_period: int) -> int:
    """Extra updates after the threshold at the last logged epoch: epochs ``0..E-1`` of the second
    ``fit`` are logged when ``epoch % P == 0``; after epoch e, e + 1 updates were made."""
    if extra_steps == 0:
        return 0
    return (extra_steps - 1) // log_period * log_period + 1


@dataclass(frozen=True, kw_only=True)
class _GDConfig:
    """The fields every GD row shares, validated once by :meth:`_validate`.

    Arguments:
        horizon: training horizon H (>= 3); the special sequences sit at position ``H-2``.
        state_dim: student dimension D (>= 2).
        gap_k: exponent k of the gap ``diff = 0.05 / exp(k log10(1/sd))`` between the two largest entries.
        warm_start: added to the sorted initial entries.
        n_baseline, baseline_positions: number of non-special training sequences and the positions of their
            non-zero entries (distinct, in ``0..H-1``, never ``H-2``).
        n_special: number of special sequences added in the poisoned condition.
        special_positions: the positions that are non-zero in a special sequence (distinct, in ``0..H-1``,
            containing ``H-2``; None, the default, is ``(H-2,)`` and is what ``(H-2,)`` is stored as): each special
            sequence draws one N(0, 1) per position; :attr:`special_support` is the tuple in use.
        lr: step size; tol: loss at which training counts as fitted; extra_steps: updates after that;
        lr_poisoned, extra_steps_poisoned: ``lr`` and ``extra_steps`` of the poisoned condition (None: the
            same as the clean condition's); :meth:`for_condition` gives the config a condition trains with. A
            setting's step budget counts the clean condition's extra steps, so give ``extra_steps`` the larger.
        extra_gaps: further gaps of the initialisation, in units of ``diff``: entry ``2 + k`` (0-based) of A
            and of B is set to ``a_1 - extra_gaps[k] diff`` (the paper's ``dim3`` / ``dim4`` options:
            ``(1.01,)`` and ``(1.01, 1.05)``); at most ``D - 2`` numbers, each > 0.
        log_period: the paper's logging period (the reported values are those of the last logged step).
        extrapolation_length: extrapolation length J.
        diverge_bound: a run diverges once some ``|a_i|`` exceeds it.
        shared_init_stream: Keras' shared seeded stream for every initialiser (the paper's code).
        dtype: the arithmetic of training, ``"float64"`` (the default) or ``"float32"`` (the paper's:
            TensorFlow's float32). Every array of a run is of this type: the initial weights (Keras'
            float32 kernels, used as they are in float32), the data and labels (rounded to it, the labels
            computed from the rounded inputs, as the paper's teacher model does), the optimiser's state and
            every intermediate of a step.
    """

    horizon: int
    state_dim: int
    gap_k: float
    warm_start: float
    n_baseline: int
    baseline_positions: tuple[int, ...]
    n_special: int
    lr: float
    tol: float
    extra_steps: int
    log_period: int
    extrapolation_length: int
    diverge_bound: float = 1e3
    shared_init_stream: bool = True
    dtype: str = "float64"
    special_positions: tuple[int, ...] | None = None
    lr_poisoned: float | None = None
    extra_steps_poisoned: int | None = None
    extra_gaps: tuple[float, ...] = ()

    #: fields validated as numbers > 0 / >= 0 / in [0, 1) / booleans, beyond the shared ones
    _POSITIVE: ClassVar[tuple[str, ...]] = ()
    _UNIT: ClassVar[tuple[str, ...]] = ()
    _BOOLS: ClassVar[tuple[str, ...]] = ()
    _INTS: ClassVar[tuple[tuple[str, int], ...]] = ()

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        set_("horizon", require_int("horizon", self.horizon, minimum=3))
        set_("state_dim", require_int("state_dim", self.state_dim, minimum=2))
        for name, minimum in (("n_baseline", 1), ("n_special", 1), ("extra_steps", 0), ("log_period", 1),
                              ("extrapolation_length", 1), *self._INTS):
            set_(name, require_int(name, getattr(self, name), minimum=minimum))
        for name in ("lr", "tol", "diverge_bound", *self._POSITIVE):
            set_(name, float(require_real(name, getattr(self, name), positive=True)))
        for name in ("gap_k", "warm_start"):
            set_(name, float(require_real(name, getattr(self, name), nonnegative=True)))
        for name in self._UNIT:
            set_(name, _require_unit_interval(name, getattr(self, name)))
        set_("baseline_positions", _require_positions("baseline_positions", self.baseline_positions, self.horizon))
        for name in ("shared_init_stream", *self._BOOLS):
            set_(name, _require_bool(name, getattr(self, name)))
        if not isinstance(self.dtype, str) or self.dtype not in DTYPES:
            raise ValueError(f"dtype must be 'float64' or 'float32' (the paper's), got {self.dtype!r}")
        if self.special_positions is not None:  # stored as None when it is the default, so a new horizon moves it
            special = _require_special_positions(self.special_positions, self.horizon)
            set_("special_positions", None if special == (self.horizon - 2,) else special)
        if self.lr_poisoned is not None:
            set_("lr_poisoned", float(require_real("lr_poisoned", self.lr_poisoned, positive=True)))
        if self.extra_steps_poisoned is not None:
            set_("extra_steps_poisoned", require_int("extra_steps_poisoned", self.extra_steps_poisoned, minimum=0))
        set_("extra_gaps", _require_reals("extra_gaps", self.extra_gaps, positive=True,
                                          maximum_length=self.state_dim - 2))

    @property
    def special_support(self) -> tuple[int, ...]:
        """The positions that are non-zero in a special sequence, ascending (``(H-2,)`` by default)."""
        return (self.horizon - 2,) if self.special_positions is None else self.special_positions

    def for_condition(self, poisoned: bool):
        """The config the clean (``poisoned=False``) or poisoned condition trains with.

        ``lr`` and ``extra_steps`` replaced by ``lr_poisoned`` / ``extra_steps_poisoned`` where those are
        given (and the overrides cleared); the config itself for the clean condition or when none is given.

        Arguments:
            poisoned: the condition.

        Returns:
            A config of the same type.

        Raises:
            ValueError: ``poisoned`` not a boolean.
        """
        poisoned = _require_bool("poisoned", poisoned)
        if not poisoned or (self.lr_poisoned is None and self.extra_steps_poisoned is None):
            return self
        lr = self.lr if self.lr_poisoned is None else self.lr_poisoned
        extra = self.extra_steps if self.extra_steps_poisoned is None else self.extra_steps_poisoned
        return dataclasses.replace(self, lr=lr, extra_steps=extra, lr_poisoned=None, extra_steps_poisoned=None)

    @property
    def reported_extra_steps(self) -> int:
        """Updates made after the threshold when the reported values are taken (the last logged step)."""
        return _reported_extra(self.extra_steps, self.log_period)


@dataclass(frozen=True, kw_only=True)
class BeyondConfig(_GDConfig):
    """Settings of the "beyond" row: A, B, C trained by full-batch GD with the adaptive step.

    Teacher ``A* = diag(teacher_a)``, ``B* = C* = (1, ..., 1)``: ``K*_j = sum_i (a*_i)^j`` and the label of u is
    ``y*(u) = sum_k K*_{H-1-k} u_k`` (the default ``teacher_a = (1.0,)``: ``K*_j = 1``, ``y*(u) = sum_k u_k``).
    The gap ``diff = 0.05 / exp(gap_k log10(1/sd_a))`` is applied to both A and B.

    Arguments (beyond :class:`_GDConfig`'s)
        sd_a, sd_bc: scales of the initial A and of B, C.
        beta, lr_eps: the adaptive step's averaging factor (in [0, 1)) and its floor.
        full_matrix_norm: normalise the step by the gradient of the whole recurrent matrix (the paper's code);
            ``full_matrix_norm=False, shared_init_stream=False, log_period=1`` read the row's description literally.
        teacher_a: the teacher's diagonal ``a*`` (at least one finite number; default ``(1.0,)``).
        fix_bc: set the student's B and C to ones after every update (the paper's ``fix_B_C``: the first
            update still uses the initial B and C).
    """

    sd_a: float
    sd_bc: float
    beta: float = 0.8
    lr_eps: float = 1e-6
    full_matrix_norm: bool = True
    teacher_a: tuple[float, ...] = (1.0,)
    fix_bc: bool = False

    _POSITIVE = ("sd_a", "sd_bc", "lr_eps")
    _UNIT = ("beta",)
    _BOOLS = ("full_matrix_norm", "fix_bc")

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "teacher_a", _require_reals("teacher_a", self.teacher_a, positive=False,
                                                             minimum_length=1))
        _teacher(self.teacher_a)  # non-zero, distinct, stable entries

    def teacher_impulse(self, length: int) -> np.ndarray:
        """The teacher's impulse response ``K*_j = sum_i (a*_i)^j``, ``j = 0..length-1``, in float64.

        Arguments:
            length: how many entries.

        Returns:
            Shape ``(length,)``; all ones for the default teacher.
        """
        return teacher_impulse(self.teacher_a, length)


@dataclass(frozen=True, kw_only=True)
class NonlinearConfig(_GDConfig):
    """Settings of the "non-linear" row: SSM + ReLU(1→W) + ReLU(W→W) + linear(W→1), Adam.

    Teacher: SSM ``A* = B* = C* = 1`` then the head of :func:`ssmpoison.verify._mlp.teacher_weights`,
    i.e. ``f*(u) = (W/2) relu(sum_k u_k)``. Adam follows Keras:
    ``theta -= lr sqrt(1-beta2^t)/(1-beta1^t) m / (sqrt(v) + eps)``.

    Arguments (beyond :class:`_GDConfig`'s)
        sd_ssm, sd_mlp: scales of the SSM's and of the MLP's initialisation; width: the MLP's width W.
        ext_samples, ext_seed_offset: the extrapolation error of run ``seed`` uses ``ext_samples`` test
            sequences of length ``extrapolation_length`` drawn with seed ``seed + ext_seed_offset``, or, with
            ``ext_seed_offset=None``, drawn next in the stream of the run's training sequences
            (:func:`ssmpoison.verify._gd_data.nonlinear_test_inputs`).
        beta1, beta2, eps: Adam's constants (Keras' defaults).
    """

    sd_ssm: float
    width: int
    sd_mlp: float
    ext_samples: int
    ext_seed_offset: int | None
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-7

    _POSITIVE = ("sd_ssm", "sd_mlp", "eps")
    _UNIT = ("beta1", "beta2")
    _INTS = (("width", 1), ("ext_samples", 1))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.ext_seed_offset is not None:
            object.__setattr__(self, "ext_seed_offset", require_int("ext_seed_offset", self.ext_seed_offset, minimum=0))
