"""Where the Theorem's prediction holds: the checker over a grid of two parameters of a setting.

:func:`sweep_checks` runs the sweep job ``check`` (:mod:`ssmpoison.verify._sweep_jobs`: the
Theorem's checker on the paper's initialisation) over a grid of two of its parameters (e.g. scale
``sd_A`` × gap exponent ``k``, or ``D`` × ``H``) through the one sweep machinery
(:func:`ssmpoison.verify._sweep.run_sweep`, an in-memory store unless one is given) and returns one
flattened record per grid point; :func:`sweep_summary` counts them;
:func:`ssmpoison.verify._sweep_plots.plot_grid` draws them. Nothing here prints. The note's maps are
sweep files run by ``ssmpoison sweep`` (``proofs_notes/sweeps/``).
"""

from __future__ import annotations

from ssmpoison.verify._parallel import Backend
from ssmpoison.verify._store import Store
from ssmpoison.verify._sweep import SweepSpec, run_sweep
from ssmpoison.verify._sweep_plots import flatten

__all__ = ["sweep_checks", "sweep_summary"]


def sweep_checks(base: dict, x: tuple, y: tuple, progress=None, backend: Backend = Backend()) -> list[dict]:
    """Check the Theorem on every point of a two-parameter grid of the paper's initialisation.

    Arguments:
        base: the fixed parameters of the job ``check``: ``horizon``, ``state_dim``, ``init_scale``,
            ``gap_exponent`` (gap ``0.05 / e^(k log10(1/sd_A))``), ``seed``, and optionally
            ``extrapolate_to`` (default 20) and ``clean_tolerance`` (default 0.01); values of the two
            varied ones are ignored.
        x: ``(name, values)``: the inner axis.
        y: ``(name, values)``: the outer axis.
        progress: ``None``, or ``progress(done, failed, total)`` (:func:`ssmpoison.verify._sweep.run_sweep`).
        backend: where the points run.

    Returns:
        One record per grid point, ``y`` outer, ``x`` inner: the point's parameters, the job's
        metrics (``conditions_hold`` — the conditions that are not advisory —, ``all_conditions_hold``,
        ``failing``, the certified ``clean`` and ``poisoned`` errors with their digits, ``ratio``,
        ``matches_theorem``, ``outcome_as_predicted``), ``status`` and ``valid`` (the point could be
        checked: a gap that would unsort the draws has no initialisation, and a flow that cannot reach
        its tolerance within the time limit is refused; ``reason`` then says which).

    Raises:
        ValueError: an axis that is not a parameter of the job, the same name on both axes, or a
            fixed parameter missing.
    """
    (xn, xs), (yn, ys) = x, y
    if xn == yn:
        raise ValueError(f"sweep axes must differ, got {xn!r} twice")
    fixed = {k: v for k, v in base.items() if k not in (xn, yn)}  # the varied ones override the base
    spec = SweepSpec("checks", "check", fixed, {yn: list(ys), xn: list(xs)}, where="sweep")
    with Store(":memory:") as store:
        run_sweep(spec, store, backend, progress=progress)
        return flatten(store.rows(spec.name))


def sweep_summary(records: list[dict]) -> dict:
    """Counts of a sweep of the job ``check``.

    Arguments:
        records: flattened records (:func:`sweep_checks`, or :func:`ssmpoison.verify._sweep_plots.flatten`).

    Returns:
        ``{"settings": grid points, "inside_conditions": valid points where every condition that is not
        advisory holds, "match_theorem": those of them whose verdict matches the Theorem,
        "inside_all_conditions": valid points where every condition holds (the advisory poisoned-side
        ones too), "match_inside_all": those of them whose verdict matches}``.
    """
    hold = [r for r in records if r.get("valid") and r["conditions_hold"]]
    every = [r for r in hold if r.get("all_conditions_hold")]
    return {"settings": len(records), "inside_conditions": len(hold),
            "match_theorem": sum(1 for r in hold if r["matches_theorem"]),
            "inside_all_conditions": len(every), "match_inside_all": sum(1 for r in every if r["matches_theorem"])}
