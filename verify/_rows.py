"""Row models: one class per kind of row of Table 1, each running its settings and returning values.

A row model holds the settings of one row by horizon and knows how to run them:

* :class:`TheoryRow` — gradient flow of the Theorem's construction, certified digits
  (:mod:`ssmpoison.verify._theory_row`);
* :class:`BeyondRow` — A, B, C trained by full-batch GD with the adaptive step;
* :class:`NonlinearRow` — SSM + ReLU head trained by Adam (both :mod:`ssmpoison.verify._gd_rows`).

Every model checks a horizon in one place (:meth:`RowModel.setting`), builds a user's own
setting from a template (:meth:`RowModel.user_setting`), runs a tuple of settings
(:meth:`RowModel.run`, returning a result object with ``ok`` and ``to_json()``), renders that
result as text (:meth:`RowModel.text`) and records one run's dynamics
(:meth:`RowModel.dynamics`). The CLI and ``--row all`` only ever dispatch through these methods,
so a new row (a new entry of :mod:`ssmpoison.verify._registry`) runs through ``reproduce``,
``check`` and ``dynamics`` unchanged.

Progress is reported through one callback, ``progress(label, done, total, note)``: ``label``
names the phase (a new label starts a new phase), ``done`` of ``total`` units are finished
(``total`` is ``None`` when unknown) and ``note`` is a short status. Nothing here prints.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Callable, ClassVar

from ssmpoison.theory._validation import require_int
from ssmpoison.verify._gd_config import BeyondConfig, NonlinearConfig
from ssmpoison.verify._settings import GDRowSetting, TheoryRowSetting, override
from ssmpoison.verify._status import Status

__all__ = ["Progress", "RowModel", "TheoryRow", "BeyondRow", "NonlinearRow", "TheoryRowResult", "GDRowsResult"]

Progress = Callable[[str, int, "int | None", str], None]
"""``progress(label, done, total, note)``; see the module docstring."""


class RowModel:
    """The settings of one row of Table 1 by horizon, and how to run, render and record them.

    Arguments:
        name: the row's name on the command line (``--row NAME``) and in the JSON.
        settings: its settings, one per horizon (the first is the template of a user's own setting).
        title: the first line of its printed table (default: the name and the kind of row).

    Raises:
        ValueError: when ``settings`` is empty, of the wrong kind or repeats a horizon.
    """

    setting_type: ClassVar[type]
    #: CLI option (``--state-dim`` -> ``state_dim``) -> setting key of this kind of row
    option_keys: ClassVar[dict[str, str]]
    #: whether the Theorem's checker applies (``ssmpoison check --row NAME``)
    checkable: ClassVar[bool] = False
    #: whether a working precision (``--precision``) applies
    precision_applies: ClassVar[bool] = False
    #: whether the perturbed re-runs and the skipped seeds apply (``reproduce --perturbations``, ``--skipped-seeds``)
    perturbations_apply: ClassVar[bool] = False
    def dynamics_method(self, setting) -> str:
        """How a run of ``setting`` is trained, as the dynamics summary says it."""
        raise NotImplementedError

    #: the kind of row (theory, beyond, nonlinear) and what it trains, for the default title
    kind: ClassVar[str]
    description: ClassVar[str]

    def __init__(self, name: str, settings, *, title: str | None = None) -> None:
        if not isinstance(name, str) or not name or any(ch.isspace() for ch in name) or name == "all":
            raise ValueError(f"name must be a non-empty word other than 'all', got {name!r}")
        settings = tuple(settings)
        if not settings or not all(isinstance(s, self.setting_type) for s in settings):
            raise ValueError(f"settings must be one or more {self.setting_type.__name__}")
        by_horizon = {s.horizon: s for s in settings}
        if len(by_horizon) != len(settings):
            raise ValueError(f"settings must have distinct horizons, got {[s.horizon for s in settings]}")
        self.name = name
        self.title = f"Row {name} (a {self.kind} row) — {self.description}" if title is None else str(title)
        self._settings = by_horizon

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, horizons={self.horizons})"

    @property
    def horizons(self) -> tuple[int, ...]:
        """The horizons of the row's settings, ascending."""
        return tuple(sorted(self._settings))

    def setting(self, horizon):
        """The row's setting at ``horizon``.

        Raises:
            ValueError: ``horizon must be one of ... for the NAME row`` when the row has no setting there.
        """
        H = require_int("horizon", horizon)
        if H not in self._settings:
            raise ValueError(f"horizon must be one of {', '.join(map(str, self.horizons))} for the {self.name} row, got {H}")
        return self._settings[H]

    def settings(self, horizons=None) -> tuple:
        """The settings at ``horizons`` (default: every horizon of the row, ascending)."""
        return tuple(self.setting(h) for h in (self.horizons if horizons is None else horizons))

    def user_setting(self, values: dict, *, horizon=None, source: str = "config"):
        """A user's own setting: the row's setting at ``horizon`` (or, at a horizon the row does not have, its
        first setting moved there) with ``values`` put in (:func:`ssmpoison.verify._settings.override`).

        It keeps the published values only if it equals the published setting.
        """
        values = dict(values)
        if "horizon" in values:
            given = values.pop("horizon")
            if isinstance(given, bool) or not isinstance(given, int) or given < 3:
                raise ValueError(f"{source} key 'horizon' must be an integer >= 3, got {given!r}")
            if horizon is not None and given != horizon:
                raise ValueError(f"horizon given twice with different values: {horizon} and {source} key 'horizon' = {given}")
            horizon = given
        H = self.horizons[0] if horizon is None else require_int("horizon", horizon, minimum=3)
        if H in self._settings:
            return override(self._settings[H], values, source=source)
        template = self._settings[self.horizons[0]]
        return override(template, {"horizon": H, **values}, source=source)

    # -- to be provided by each kind of row
    def run(self, settings, *, progress: Progress | None = None, precision_bits: int | None = None, jobs: int = 1,
            perturbations: int | None = None, perturbation_size: float | None = None, skipped_seeds: bool = False):
        """Run ``settings``; ``perturbations`` (K perturbed re-runs of each run) and ``perturbation_size`` (their
        relative size) apply to the GD rows, ``skipped_seeds`` (also run the seeds the paper's list skips) to
        the rows that can run them; ``None`` / ``False``: the row's defaults."""
        raise NotImplementedError

    def text(self, result) -> str:
        raise NotImplementedError

    def table1_cells(self, result) -> list[tuple[int, bool, float | None, str, str]]:
        """``(horizon, poisoned, mean, mean_text, published_text)`` for each setting and condition of ``result``
        (the cells of Table 1's summary; ``published_text`` is ``-`` where there is none)."""
        raise NotImplementedError

    def dynamics(self, setting, *, seed: int, conditions, extrapolation_length=None, points: int,
                 progress: Progress | None = None):
        raise NotImplementedError

    def condition_title(self, horizon: int, poisoned: bool) -> str:
        raise NotImplementedError


# ---------------------------------------------------------------- theory row


def clean_flow_robustness(setting: TheoryRowSetting, seed: int, perturbations: int, perturbation_size: float) -> dict:
    """The robustness of one clean theory-row flow, by its exact oracle: the GD rows' labels, for a flow.

    The clean flow's limit is exact (:func:`ssmpoison.theory._oracle.clean_limit`, note 02 §1), so the flow
    from the paper's initialisation ``a(0)`` and from ``a(0)(1 + eps xi)`` (k = 1..K,
    :func:`ssmpoison.verify._gd_data.perturb_initial`, condition clean) each cost one root-finding, at 64 bits.
    The outcome of a flow is its number of learned entries (``|a_i(inf)| >=``
    :data:`ssmpoison.verify._gd_rows.LEARNED_LEVEL`) and its extrapolation error's class (within a factor
    :data:`ssmpoison.verify._gd_rows.ERROR_FACTOR` of the unperturbed flow's), as for a GD run
    (:func:`ssmpoison.verify._gd_rows.run_robustness`).

    Arguments:
        setting: the theory row's setting; seed: the seed; perturbations: K >= 0; perturbation_size: eps >= 0.

    Returns:
        The keys of :func:`ssmpoison.verify._gd_rows.run_robustness` (``status`` ``"converged"``), plus
        ``horizon`` and ``ext_errors``: the K re-runs' errors in order of k.
    """
    import gmpy2
    import numpy as np

    from ssmpoison.theory._construction import extrapolation_error, paper_initialisation
    from ssmpoison.theory._oracle import clean_limit
    from ssmpoison.verify._expcoll import _mp_to_gmpy as mpf_to_mpfr
    from ssmpoison.verify._gd_data import perturb_initial
    from ssmpoison.verify._gd_rows import ERROR_FACTOR, LEARNED_LEVEL, _label

    D, H, J = setting.state_dim, setting.horizon, setting.extrapolation_length
    a0 = np.array(paper_initialisation(seed, D, setting.init_scale, setting.gap_exponent), dtype=float)

    def outcome(k):
        (a,) = perturb_initial((a0,), seed, False, k, perturbation_size)
        limit = clean_limit([float(v) for v in a], H, precision_bits=64)
        with gmpy2.context(precision=64):  # the same correctly rounded 64-bit arithmetic as mpmath's, faster
            error = float(extrapolation_error([mpf_to_mpfr(v) for v in limit], [1] * D, [1] * D, D, J))
        return sum(abs(float(v)) >= LEARNED_LEVEL for v in limit), error

    learned, error = outcome(0)
    reruns = [outcome(k) for k in range(1, perturbations + 1)]
    differing = [k for k, (n, e) in enumerate(reruns, start=1)
                 if n != learned or not 1 / ERROR_FACTOR <= e / error <= ERROR_FACTOR]
    errors = np.array([e for _, e in reruns])
    counts: dict[str, int] = {}
    for n, _ in sorted(reruns):
        counts[str(n)] = counts.get(str(n), 0) + 1
    return {
        "horizon": H, "seed": seed, "poisoned": False, "status": Status.CONVERGED, "learned": learned, "ext_error": error,
        "perturbations": perturbations, "differ": len(differing), "differing": differing,
        "robust": None if not perturbations else not differing, "label": _label(len(differing), perturbations),
        "learned_counts": counts, "statuses": {Status.CONVERGED: perturbations} if perturbations else {},
        "ext_error_min": float(errors.min()) if perturbations else None,
        "ext_error_median": float(np.median(errors)) if perturbations else None,
        "ext_error_max": float(errors.max()) if perturbations else None,
        "ext_errors": [float(e) for e in errors],
    }


@dataclass(frozen=True)
class TheoryRowResult:
    """The theory row's certified runs at its settings.

    Arguments:
        row: the row's name; settings: the settings run; precision_bits: the working precision (``None``: the
        default path); runs: :class:`~ssmpoison.verify._theory_row.TheoryRowRun` by setting, condition, seed;
        seconds: wall time; robustness: :func:`clean_flow_robustness` of every clean flow (published seeds, then
        skipped ones); perturbations, perturbation_size: its K and eps; skipped_runs: the runs of the settings'
        skipped seeds (empty unless requested), out of the means.
    """

    row: str
    settings: tuple[TheoryRowSetting, ...]
    precision_bits: int | None
    runs: tuple
    seconds: float
    robustness: tuple = ()
    perturbations: int = 0
    perturbation_size: float = 0.0
    skipped_runs: tuple = ()

    @property
    def skipped_summaries(self) -> list[dict]:
        """The means of the skipped seeds' runs, by setting and condition (no published values)."""
        from ssmpoison.verify._theory_row import row_summary

        return [{**row_summary(self.skipped_runs, s.unpublished(), p), "seeds": list(s.skipped_seeds)}
                for s in self.settings if s.skipped_seeds for p in (False, True)] if self.skipped_runs else []

    @property
    def summaries(self) -> list[dict]:
        from ssmpoison.verify._theory_row import row_summary

        return [row_summary(self.runs, s, p) for s in self.settings for p in (False, True)]

    @property
    def ok(self) -> bool:
        """Every run converged."""
        return all(r.run.status == Status.CONVERGED for r in self.runs)

    def to_json(self) -> dict:
        from ssmpoison.verify._gd_rows import ERROR_FACTOR, LEARNED_LEVEL

        return {
            "row": self.row,
            "precision_bits": self.precision_bits if self.precision_bits is not None else 53,
            "runs": [r.to_json() for r in self.runs],
            "summary": self.summaries,
            "robustness": {"perturbations": self.perturbations, "perturbation_size": self.perturbation_size,
                           "learned_level": LEARNED_LEVEL, "error_factor": ERROR_FACTOR, "method": "exact oracle",
                           "clean_runs": list(self.robustness), "poisoned_runs": "not labelled"},
            "skipped_runs": [r.to_json() for r in self.skipped_runs],
            "skipped_summary": self.skipped_summaries,
        }


class TheoryRow(RowModel):
    """The theory row: the gradient flow of the Theorem's construction without and with ``u† = e_{H-2}``."""

    setting_type = TheoryRowSetting
    option_keys = {"state_dim": "state_dim", "seeds": "seeds", "init_scale": "init_scale",
                   "gap_exponent": "gap_exponent", "extrapolate_to": "extrapolation_length"}
    checkable = True
    precision_applies = True
    perturbations_apply = True
    kind = "theory"
    description = "gradient flow, only A trained, B = C = 1"

    def dynamics_method(self, setting) -> str:
        return "gradient flow, float64"

    def run(self, settings, *, progress=None, precision_bits=None, jobs=1, perturbations=None, perturbation_size=None,
            skipped_seeds=False) -> TheoryRowResult:
        """Both flows for every seed of every setting, with certified digits
        (:func:`ssmpoison.verify._theory_row.run_theory_row`); the clean flows' robustness under ``perturbations``
        perturbed initialisations of relative size ``perturbation_size`` by their exact oracle
        (:func:`clean_flow_robustness`; the poisoned flows have no oracle and are not labelled); and, if
        ``skipped_seeds``, the settings' skipped seeds, out of the means."""
        from ssmpoison.verify._gd_rows import DEFAULT_PERTURBATION_SIZE, DEFAULT_PERTURBATIONS
        from ssmpoison.theory._validation import require_real
        from ssmpoison.verify._theory_row import check_theory_row, run_theory_row

        K = DEFAULT_PERTURBATIONS if perturbations is None else require_int("perturbations", perturbations, minimum=0)
        eps = DEFAULT_PERTURBATION_SIZE if perturbation_size is None else float(
            require_real("perturbation_size", perturbation_size, nonnegative=True))
        settings = tuple(settings)
        skipped = tuple(dataclasses.replace(s, seeds=s.skipped_seeds, skipped_seeds=()).unpublished()
                        for s in settings if s.skipped_seeds) if skipped_seeds else ()
        check_theory_row(settings, precision_bits)  # initialisations and reachability, before any progress
        if skipped:
            check_theory_row(skipped, precision_bits)
        total = sum(2 * len(s.seeds) for s in (*settings, *skipped))
        done = [0]

        def count(n):
            done[0] += n
            if progress is not None:
                progress("theory row flows", done[0], total, "")

        if progress is not None:
            progress("theory row flows", 0, total, "")
        start = time.perf_counter()
        robustness = []  # the clean flows' robustness (oracle, this process) while the workers integrate

        def robustness_runs():
            robustness.extend(clean_flow_robustness(s, seed, K, eps) for s in settings
                              for seed in (*s.seeds, *(s.skipped_seeds if skipped else ())))

        runs = run_theory_row(settings, precision_bits, progress=count, parallel=jobs, meanwhile=robustness_runs)
        skipped_runs = run_theory_row(skipped, precision_bits, progress=count, parallel=jobs) if skipped else []
        robustness = tuple(robustness)
        return TheoryRowResult(self.name, settings, precision_bits, tuple(runs), time.perf_counter() - start,
                               robustness, K, eps, tuple(skipped_runs))

    def text(self, result: TheoryRowResult) -> str:
        from ssmpoison.verify._reporting import theory_row_text

        return theory_row_text(result, self.title)

    def table1_cells(self, result: TheoryRowResult):
        cells = []
        for s in result.summaries:
            values = [v["published"] for v in s["published"].values()]
            mean = None if s["mean"] is None else float(s["mean"])
            cells.append((s["horizon"], s["poisoned"], mean, "-" if mean is None else f"{mean:.3g}",
                          "/".join(f"{v:.3g}" for v in values) or "-"))
        return cells

    def dynamics(self, setting, *, seed, conditions, extrapolation_length=None, points, progress=None):
        from ssmpoison.verify._dynamics import theory_dynamics

        runs = []
        for k, poisoned in enumerate(conditions):
            if progress is not None:
                progress("gradient flows", k, len(conditions), "")
            runs.append(theory_dynamics(setting, seed, poisoned, points, extrapolation_length, row=self.name))
        if progress is not None:
            progress("gradient flows", len(conditions), len(conditions), "")
        return runs

    def condition_title(self, horizon, poisoned) -> str:
        return f"poisoned: {{e_0, u† = e_{horizon - 2}}}" if poisoned else "clean: {e_0} (non-special)"


# ---------------------------------------------------------------- gradient-descent rows


@dataclass(frozen=True)
class GDRowsResult:
    """A GD row at its settings: one :class:`~ssmpoison.verify._gd_rows.GDRowResult` per setting."""

    row: str
    results: tuple

    @property
    def ok(self) -> bool:
        """Every mean (each setting, each condition) could be computed."""
        from ssmpoison.verify._gd_rows import condition_summary

        return all(condition_summary(r.runs, p, r.published)["mean"] is not None for r in self.results for p in (False, True))

    def to_json(self) -> dict:
        from ssmpoison.verify._gd_rows import row_json

        return row_json(list(self.results))


class _GDRow(RowModel):
    setting_type = GDRowSetting
    perturbations_apply = True

    def dynamics_method(self, setting) -> str:
        return f"gradient descent, {setting.config.dtype}"

    def __init__(self, name, settings, *, title=None) -> None:
        super().__init__(name, settings, title=title)
        config_type = self.config_type
        if not all(isinstance(s.config, config_type) for s in self._settings.values()):
            raise ValueError(f"settings of the {name} row must hold a {config_type.__name__}")

    def run(self, settings, *, progress=None, precision_bits=None, jobs=1, perturbations=None, perturbation_size=None,
            skipped_seeds=False) -> GDRowsResult:
        """Every seed of every setting without and with the special sequences, plus the spread draws, the
        perturbed re-runs and, if ``skipped_seeds``, the seeds the paper's list skips
        (:func:`ssmpoison.verify._gd_rows.run_gd_row`), in each setting's ``dtype`` (float64 or float32).
        ``precision_bits`` does not apply."""
        from ssmpoison.verify._gd_rows import run_gd_row

        if precision_bits is not None:
            raise ValueError(f"precision applies to the theory row only, not to the {self.name} row")
        results = []
        for s in settings:
            label = f"{self.name} row H={s.horizon}"
            callback = None if progress is None else (lambda done, total, step, label=label:
                                                      progress(label, done, total, f"step={step}"))
            results.append(run_gd_row(s, row=self.name, progress=callback, perturbations=perturbations,
                                      perturbation_size=perturbation_size, skipped_seeds=skipped_seeds))
        return GDRowsResult(self.name, tuple(results))

    def text(self, result: GDRowsResult) -> str:
        from ssmpoison.verify._gd_rows import gd_row_text

        return gd_row_text(self.kind, list(result.results), self.title)

    def table1_cells(self, result: GDRowsResult):
        from ssmpoison.verify._gd_rows import condition_summary

        cells = []
        for r in result.results:
            for p in (False, True):
                s = condition_summary(r.runs, p, r.published)
                mean = s["mean"]
                cells.append((r.horizon, p, mean, "-" if mean is None or not math.isfinite(mean) else f"{mean:.3g}",
                              "-" if s["published"] is None else f"{s['published']:.3g}"))
        return cells

    def dynamics(self, setting, *, seed, conditions, extrapolation_length=None, points, progress=None):
        from ssmpoison.verify._dynamics import gd_dynamics

        label = f"{self.name} row, GD"
        callback = None if progress is None else (lambda step, active: progress(label, step, None, f"active={active}"))
        return gd_dynamics(setting, seed, conditions, points=points, extrapolation_length=extrapolation_length,
                           progress=callback, row=self.name)

    def condition_title(self, horizon, poisoned) -> str:
        return "poisoned: special sequences added" if poisoned else "clean: no special sequence"


class BeyondRow(_GDRow):
    """The beyond row: A, B, C trained by full-batch GD with the adaptive step (teacher ``A* = B* = C* = 1``)."""

    kind = "beyond"
    description = "A, B, C trained by full-batch GD with the adaptive step, teacher A* = B* = C* = 1"
    option_keys = {"state_dim": "state_dim", "seeds": "seeds", "init_scale": "sd_a", "gap_exponent": "gap_k",
                   "extrapolate_to": "extrapolation_length", "draws": "draws", "epochs": "epochs", "dtype": "dtype"}
    config_type = BeyondConfig


class NonlinearRow(_GDRow):
    """The non-linear row: SSM + two ReLU layers + linear head trained by Adam."""

    kind = "nonlinear"
    description = "SSM + two ReLU layers (no bias) + linear head, Adam, teacher SSM 1,1,1 + ReLU head"
    option_keys = {"state_dim": "state_dim", "seeds": "seeds", "init_scale": "sd_ssm", "gap_exponent": "gap_k",
                   "extrapolate_to": "extrapolation_length", "draws": "draws", "epochs": "epochs", "dtype": "dtype"}
    config_type = NonlinearConfig

