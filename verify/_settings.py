"""Typed, frozen, validated settings of the rows of Table 1, and their overrides.

A *setting* is everything one row needs at one horizon: the student dimension D, the seeds,
the initialisation, the training data, the stopping rule, the extrapolation length and,
for the paper's own settings only, the published values. :class:`TheoryRowSetting` is the
theory row's (gradient flow, only A trained, B = C = 1); :class:`GDRowSetting` wraps a
:class:`~ssmpoison.verify._gd_config.BeyondConfig` or
:class:`~ssmpoison.verify._gd_config.NonlinearConfig` with the row's seeds and step budget.

:func:`override` turns a setting and a mapping of user values (the CLI's options or a TOML
settings file) into a new setting, checking each key's name and type and naming the key in
every error. A setting that differs from the published one carries no published values.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from ssmpoison.theory._validation import require_int, require_real
from ssmpoison.verify._gd_config import BeyondConfig, NonlinearConfig

__all__ = ["TheoryRowSetting", "GDRowSetting", "PAPER_EPOCHS", "override", "setting_keys"]

#: Updates a GD run of the paper may make before its loss must reach ``tol``: its code's ``epochs = 1e6``
#: (Table 1's rows and every dynamics notebook).
PAPER_EPOCHS = 1_000_000


def _seeds(seeds) -> tuple[int, ...]:
    try:
        items = tuple(seeds)
    except TypeError:
        raise ValueError(f"seeds must be a sequence of integers, got {seeds!r}") from None
    if not items:
        raise ValueError("seeds must hold at least one seed")
    out = tuple(require_int(f"seeds[{k}]", s, minimum=0, maximum=2**32 - 1) for k, s in enumerate(items))
    if len(set(out)) != len(out):
        raise ValueError(f"seeds must be distinct, got {out}")
    return out


def _skipped_seeds(skipped, seeds) -> tuple[int, ...]:
    """The skipped seeds of a setting: empty, or distinct seeds none of which is in ``seeds``."""
    if not tuple(skipped):
        return ()
    out = _seeds(skipped)
    if set(out) & set(seeds):
        raise ValueError(f"skipped_seeds must not repeat a seed of seeds, got {sorted(set(out) & set(seeds))}")
    return out


def _published(name: str, values) -> tuple[tuple[str, float], ...]:
    """``(source, value)`` pairs, in the order given (a mapping or pairs); empty when there is none."""
    items = tuple(values.items()) if isinstance(values, Mapping) else tuple(values)
    return tuple((str(src), float(require_real(f"{name}[{src!r}]", v, positive=True))) for src, v in items)


@dataclass(frozen=True, kw_only=True)
class TheoryRowSetting:
    """The theory row at one horizon: the Theorem's construction with the paper's initialisation.

    Arguments:
        horizon: training horizon H (>= 3); the poison is ``u† = e_{H-2}``.
        state_dim: student dimension D (>= 2); it fixes the teacher's ``B* = (1, sqrt(D-1))``.
        init_scale, gap_exponent: the paper's initialisation
            (:func:`ssmpoison.theory._construction.paper_initialisation`).
        seeds: seeds of numpy's legacy generator, one run per seed and condition.
        extrapolation_length: J of the extrapolation error ``max_{j<J} |K_j - K*_j| / max_{j<J} |K*_j|``.
        published_clean, published_poisoned: ``(source, mean)`` pairs of Table 1 ("poster", or "code" for the
            mean the paper's code prints); empty for a setting that is not the paper's.
        final_time_clean, final_time_poisoned: fixed final times of the published float64 integrations
            (``None`` for a setting that is not the paper's).
        skipped_seeds: seeds the paper's seed list skips (registry data; distinct, none of them in ``seeds``).

    Raises:
        ValueError: naming the first invalid argument.
    """

    horizon: int
    state_dim: int
    init_scale: float
    gap_exponent: float
    seeds: tuple[int, ...]
    extrapolation_length: int
    published_clean: tuple[tuple[str, float], ...] = ()
    published_poisoned: tuple[tuple[str, float], ...] = ()
    final_time_clean: float | None = None
    final_time_poisoned: float | None = None
    skipped_seeds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        set_("horizon", require_int("horizon", self.horizon, minimum=3))
        set_("state_dim", require_int("state_dim", self.state_dim, minimum=2))
        set_("init_scale", float(require_real("init_scale", self.init_scale, positive=True)))
        set_("gap_exponent", float(require_real("gap_exponent", self.gap_exponent)))
        set_("seeds", _seeds(self.seeds))
        set_("skipped_seeds", _skipped_seeds(self.skipped_seeds, self.seeds))
        set_("extrapolation_length", require_int("extrapolation_length", self.extrapolation_length, minimum=1))
        set_("published_clean", _published("published_clean", self.published_clean))
        set_("published_poisoned", _published("published_poisoned", self.published_poisoned))
        for name in ("final_time_clean", "final_time_poisoned"):
            value = getattr(self, name)
            set_(name, None if value is None else float(require_real(name, value, positive=True)))

    def published(self, poisoned: bool) -> dict[str, float]:
        """Published means of one condition, by source (empty for a setting that is not the paper's)."""
        return dict(self.published_poisoned if poisoned else self.published_clean)

    @property
    def is_published(self) -> bool:
        return bool(self.published_clean or self.published_poisoned)

    def unpublished(self) -> "TheoryRowSetting":
        """The same setting without published values or final times (a user's own setting)."""
        return dataclasses.replace(self, published_clean=(), published_poisoned=(), final_time_clean=None,
                                   final_time_poisoned=None)


@dataclass(frozen=True, kw_only=True)
class GDRowSetting:
    """A gradient-descent row at one horizon: the training config, the seeds, the step budget and the spread.

    Arguments:
        config: a :class:`BeyondConfig` or :class:`NonlinearConfig` (horizon, D, initialisation, data, stopping).
        seeds: one run per seed and condition (numpy's legacy generator draws each run's data).
        epochs: updates allowed before the loss must have reached ``config.tol`` (the paper's epochs).
        draws: further initialisation draws per seed for the spread of the mean.
        published_clean, published_poisoned: means of Table 1 without / with the special sequences
            (``None`` where the paper gives none).
        skipped_seeds: seeds the paper's seed list skips (e.g. 4542 between 4541 and 4543), run beside the
            published seeds and kept out of their means (``reproduce --skipped-seeds``); distinct, and none
            of them in ``seeds``. A setting whose ``seeds`` a user changes has none.

    Raises:
        ValueError: naming the first invalid argument.
    """

    config: BeyondConfig | NonlinearConfig
    seeds: tuple[int, ...]
    epochs: int
    draws: int
    published_clean: float | None = None
    published_poisoned: float | None = None
    skipped_seeds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        if not isinstance(self.config, (BeyondConfig, NonlinearConfig)):
            raise ValueError(f"config must be a BeyondConfig or NonlinearConfig, got {type(self.config).__name__}")
        set_("seeds", _seeds(self.seeds))
        set_("skipped_seeds", _skipped_seeds(self.skipped_seeds, self.seeds))
        set_("epochs", require_int("epochs", self.epochs, minimum=0))
        set_("draws", require_int("draws", self.draws, minimum=0))
        if (self.published_clean is None) != (self.published_poisoned is None):
            raise ValueError("published_clean and published_poisoned must both be given or both be None")
        for name in ("published_clean", "published_poisoned"):
            value = getattr(self, name)
            set_(name, None if value is None else float(require_real(name, value, positive=True)))

    @property
    def horizon(self) -> int:
        return self.config.horizon

    @property
    def state_dim(self) -> int:
        return self.config.state_dim

    @property
    def published(self) -> dict[bool, float] | None:
        """``{False: without, True: with special sequences}``, or ``None`` where the paper gives no number."""
        if self.published_clean is None:
            return None
        return {False: self.published_clean, True: self.published_poisoned}

    @property
    def is_published(self) -> bool:
        return self.published_clean is not None

    @property
    def step_budget(self) -> int:
        """Total updates allowed per run: :attr:`epochs` plus the reported extra steps."""
        return self.epochs + self.config.reported_extra_steps

    def unpublished(self) -> "GDRowSetting":
        return dataclasses.replace(self, published_clean=None, published_poisoned=None)


# ---------------------------------------------------------------- overrides (CLI options, TOML files)

_THEORY_KEYS = ("horizon", "state_dim", "init_scale", "gap_exponent", "seeds", "extrapolation_length")
_GD_OWN_KEYS = ("seeds", "epochs", "draws")


def setting_keys(setting) -> tuple[str, ...]:
    """The keys a user may set for ``setting``'s kind (a TOML file's keys, besides ``row``)."""
    if isinstance(setting, TheoryRowSetting):
        return _THEORY_KEYS
    return (*_GD_OWN_KEYS, *(f.name for f in dataclasses.fields(setting.config)))


def _typed(key: str, value, example, source: str):
    """``value`` checked against the type of the published ``example`` (TOML values are typed)."""
    def bad(kind: str):
        return ValueError(f"{source} key {key!r} must be {kind}, got {value!r}")

    if isinstance(example, bool):
        if not isinstance(value, bool):
            raise bad("true or false")
    elif isinstance(example, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
    elif isinstance(example, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
    elif isinstance(example, tuple):
        if not isinstance(value, (list, tuple)) or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
            raise bad("a list of integers")
        value = tuple(value)
    elif isinstance(example, str):
        if not isinstance(value, str):
            raise bad("a string")
    return value


def _replace(setting, key: str, value):
    if isinstance(setting, GDRowSetting) and key not in _GD_OWN_KEYS:
        return dataclasses.replace(setting, config=dataclasses.replace(setting.config, **{key: value}))
    if key == "seeds" and tuple(value) != setting.seeds:  # the skipped seeds are those of the paper's seed list
        return dataclasses.replace(setting, seeds=value, skipped_seeds=())
    return dataclasses.replace(setting, **{key: value})


def override(setting, values: Mapping[str, Any], *, source: str = "config", published=None):
    """``setting`` with ``values`` (key -> value) put in, validated key by key.

    Arguments:
        setting: a :class:`TheoryRowSetting` or :class:`GDRowSetting` (the template).
        values: the user's keys (:func:`setting_keys`) and values, typed as TOML types them.
        source: the word that opens each error message (``config`` for a file, ``option`` for the CLI).
        published: the published setting the result is compared with (default ``setting``): if the result
            equals it, it is returned with its published values; otherwise the result carries none.

    Returns:
        The new setting.

    Raises:
        ValueError: ``"{source} key 'K' ..."`` for an unknown key, a value of the wrong type or a bad value.
    """
    keys = setting_keys(setting)
    base = setting.unpublished()
    typed = {}
    for key, value in values.items():
        if key not in keys:
            raise ValueError(f"{source} key {key!r} is not a setting of this row (keys: {', '.join(keys)})")
        example = getattr(base.config, key) if isinstance(base, GDRowSetting) and key not in _GD_OWN_KEYS \
            else getattr(base, key)
        typed[key] = _typed(key, value, example, source)
    try:
        new = base
        for key, value in typed.items():
            new = _replace(new, key, value)
    except ValueError as exc:
        for key, value in typed.items():  # name the key whose value alone is invalid, if there is one,
            try:
                _replace(base, key, value)
            except ValueError as single:
                raise ValueError(f"{source} key {key!r}: {single}") from None
        new = base
        for key, value in typed.items():  # else the key at which the values, put in in order, stop fitting together
            try:
                new = _replace(new, key, value)
            except ValueError as joint:
                raise ValueError(f"{source} key {key!r}: {joint}") from None
        raise ValueError(f"{source}: {exc}") from None  # pragma: no cover - the loop above fails where this did
    reference = setting if published is None else published
    if isinstance(new, GDRowSetting):  # nor do the spread's draws or the arithmetic (dtype) change the setting the
        # published means are of
        as_published = dataclasses.replace(new, draws=reference.draws,
                                           config=dataclasses.replace(new.config, dtype=reference.config.dtype))
        if as_published == reference.unpublished():
            return dataclasses.replace(reference, draws=new.draws,
                                       config=dataclasses.replace(reference.config, dtype=new.config.dtype))
        return new
    return reference if new == reference.unpublished() else new
