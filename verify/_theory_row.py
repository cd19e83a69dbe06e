"""The theory row (Table 1; note 00 §5–6): clean and poisoned flows for the seeds of its settings.

For each :class:`~ssmpoison.verify._settings.TheoryRowSetting` (the paper's are
:mod:`ssmpoison.verify._registry`'s), each of its seeds and each condition (without / with the
poison u† = e_{H-2}), the student starts from the paper's initialisation, trains A (B = C = 1) by
gradient flow to convergence, and the extrapolation error over the setting's J steps is
reported with its certified digits (:mod:`ssmpoison.verify._certified_flow`).
"""

from __future__ import annotations

from dataclasses import dataclass

import mpmath

from ssmpoison.theory._construction import clean_training_set, extrapolation_error, paper_initialisation, poisoned_training_set
from ssmpoison.theory._validation import require_int
from ssmpoison.verify._certification import CertificationPolicy
from ssmpoison.verify._settings import TheoryRowSetting
from ssmpoison.verify._certified_flow import CertifiedRun, certified_flows, oracle_applies, require_reachable, serial_flows
from ssmpoison.verify._flow import FlowProblem, run_flows
from ssmpoison.verify._status import Status
from ssmpoison.verify._workers import worker_pool

__all__ = ["TheoryRowRun", "theory_row_problems", "check_theory_row", "run_theory_row", "row_summary", "PUBLISHED_METHOD_DIGITS"]

# The published numbers came from float64 odeint, default tolerances, fixed final times (note 00 §6, §8):
# re-running that method gets 3.1-4.4 correct digits per run (benchmarks/theory_row.py measures it).
PUBLISHED_METHOD_DIGITS = 3

_T_MAX = 1e20  # the time limit of the row's flows (certified_flows' default)


@dataclass(frozen=True)
class TheoryRowRun:
    horizon: int
    seed: int
    poisoned: bool
    run: CertifiedRun

    def to_json(self) -> dict:
        r = self.run
        return {
            "horizon": self.horizon,
            "seed": self.seed,
            "poisoned": self.poisoned,
            "ext_error": r.quantity.text,
            "certified_digits": r.quantity.digits,
            "train_loss": f"{r.train_loss:.3e}",
            "status": r.status,
            "t_converged": None if r.t_converged is None else float(f"{r.t_converged:.3e}"),
            "precision_bits": r.precision_bits,
            "reference_bits": r.reference_bits,
            "method": r.method,
        }


def theory_row_problems(setting: TheoryRowSetting, poisoned: bool) -> list[tuple[int, FlowProblem]]:
    """``(seed, problem)`` for every seed of ``setting``, without or with the poison.

    Arguments:
        setting: the theory row's setting at one horizon.
        poisoned: add ``u† = e_{H-2}`` to the training set ``{e_0}``.
    """
    ts = poisoned_training_set(setting.horizon) if poisoned else clean_training_set(setting.horizon)
    return [
        (seed, FlowProblem(ts, tuple(paper_initialisation(seed, setting.state_dim, setting.init_scale, setting.gap_exponent))))
        for seed in setting.seeds
    ]


def check_theory_row(settings, precision_bits: int | None = None) -> None:
    """Refuse, before any run, settings whose initialisations cannot be drawn or whose clean flows cannot converge.

    Arguments:
        settings: the :class:`TheoryRowSetting` values to run.
        precision_bits: as for :func:`run_theory_row`.

    Raises:
        ValueError: the paper's initialisation fails for a seed (naming ``init_scale``/``gap_exponent``), or a clean
            flow converges only past the time limit (:func:`ssmpoison.verify._certified_flow.require_reachable`).
    """
    policy = CertificationPolicy(precision_bits=precision_bits)
    for s in settings:
        require_reachable([p for _, p in theory_row_problems(s, poisoned=False)], policy)


def run_theory_row(settings, precision_bits: int | None = None, progress=None, parallel: int = 1,
                   meanwhile=None) -> list[TheoryRowRun]:
    """Run the row at ``settings`` (a sequence of :class:`TheoryRowSetting` with distinct horizons).

    Arguments:
        settings: the settings to run, in the order of the result.
        precision_bits: ``None`` for the fast path, else the working precision in bits (>= 53)
            (:class:`~ssmpoison.verify._certification.CertificationPolicy`).
        progress: ``progress(n)`` is called as runs finish (``n`` runs each time).
        parallel: the processes that share the work, this one included: ``> 1`` starts ``parallel - 1``
            worker processes (:func:`ssmpoison.verify._workers.worker_pool`) on the integrations (each
            poisoned flow's run and re-run, each one task, queued by horizon, longest first) while this
            process runs the clean flows (exact oracle) and ``meanwhile``, then takes the integrations
            no worker has started from the end of the queue (:func:`_started_flows`).
        meanwhile: ``None``, or work for this process while the workers integrate: called once with no
            arguments after the clean flows (after every run when ``parallel == 1``).

    Returns:
        The runs, by setting, condition (clean first) and seed.

    Raises:
        ValueError: naming the argument.
    """
    settings = tuple(settings)
    if not settings or not all(isinstance(s, TheoryRowSetting) for s in settings):
        raise ValueError("settings must be one or more TheoryRowSetting")
    by_horizon = {s.horizon: s for s in settings}
    if len(by_horizon) != len(settings):
        raise ValueError(f"settings must have distinct horizons, got {[s.horizon for s in settings]}")
    policy = CertificationPolicy(precision_bits=precision_bits)
    parallel = require_int("parallel", parallel, minimum=1)
    groups = [(s.horizon, poisoned) for s in settings for poisoned in (False, True)]
    out: list[TheoryRowRun] = []

    def finished(runs):
        out.extend(runs)
        if progress is not None:
            progress(len(runs))

    if parallel > 1:
        with worker_pool(parallel - 1) as pool:
            flows = _started_flows(pool, settings, policy)
            for H, p in sorted(groups, key=lambda g: g[1]):  # clean first: the oracle runs here while the workers integrate
                if p and meanwhile is not None:
                    meanwhile()
                    meanwhile = None
                finished(_run_group(by_horizon[H], p, policy, flows))
    else:
        for H, p in groups:
            finished(_run_group(by_horizon[H], p, policy))
    if meanwhile is not None:
        meanwhile()
    order = {(H, p): k for k, (H, p) in enumerate(groups)}
    return sorted(out, key=lambda r: (order[(r.horizon, r.poisoned)], r.seed))


def _quantity(setting: TheoryRowSetting):
    """The extrapolation error over the setting's J steps, ``(a, b, c) -> E``."""
    D, J = setting.state_dim, setting.extrapolation_length
    return lambda a, b, c: extrapolation_error(a, b, c, D, J)


def _run_group(setting: TheoryRowSetting, poisoned: bool, policy: CertificationPolicy, flows=serial_flows) -> list[TheoryRowRun]:
    seeds_problems = theory_row_problems(setting, poisoned)
    runs = certified_flows([p for _, p in seeds_problems], _quantity(setting), policy, flows=flows)
    return [TheoryRowRun(setting.horizon, seed, poisoned, run) for (seed, _), run in zip(seeds_problems, runs)]


def _flow(problem: FlowProblem, options) -> object:
    """One integration (a worker's task): :func:`ssmpoison.verify._flow.run_flows` of one problem."""
    return run_flows([problem], options)[0]


def _started_flows(pool, settings, policy: CertificationPolicy):
    """Queue every integration of the row in ``pool`` at once; return the ``flows`` function of
    :func:`~ssmpoison.verify._certified_flow.certified_flows` that collects them, sharing the work.

    The integrations are each flow's re-run and its run (every flow without an exact oracle), each
    one task. Ordered longest first by a proxy of their cost (the larger horizon first, the re-run
    before the run), they are dealt alternately to the two ends of the queue, so that the longest are
    at both ends and the shortest in the middle. The workers take tasks from the front; when this
    process first asks for flows, it runs here every task that no worker has started yet (its future
    cancelled), from the end of the queue backwards, keeping the results of the groups it will ask for
    later, and then waits only for the tasks the workers hold. So the work is shared without a
    measured cost: the workers and this process meet once, among the shortest tasks, and this process
    waits at most for what the workers hold then (the task each computes and the one queued to it).
    The results do not depend on who computes them.
    Integrations asked for that were not queued (the fast path's escalations, decided by the digits
    of the first two) run here.

    Arguments:
        pool: a :func:`ssmpoison.verify._workers.worker_pool`.
        settings: the row's settings.
        policy: the certification policy.

    Returns:
        ``flows(items)``: the flow results of ``(problem, options)`` pairs, in order.
    """
    tasks = []  # the longest first: the larger horizon, and within one the re-run (more bits) before the run
    for s in sorted(settings, key=lambda s: -s.horizon):
        problems = [p for poisoned in (True, False) for _, p in theory_row_problems(s, poisoned) if not oracle_applies(p)]
        tasks += [(p, options) for options in (policy.reference_options(_T_MAX), policy.run_options(_T_MAX)) for p in problems]
    queue = tasks[0::2] + tasks[1::2][::-1]  # dealt to both ends: the processes meet among the shortest
    started = {}
    for key in queue:
        if key not in started:
            started[key] = (len(started), pool.submit(_flow, *key))

    done = {}

    def flows(items):
        if items:  # first every task no worker has started, from the end of the queue backwards
            for key, (_, future) in sorted(started.items(), key=lambda kv: -kv[1][0]):
                if future.cancel():
                    del started[key]
                    done[key] = _flow(*key)
        results = []
        for item in items:
            if item in done:
                results.append(done.pop(item))
            elif item in started:
                results.append(started.pop(item)[1].result())
            else:  # not queued: an escalation
                results.append(_flow(*item))
        return results

    return flows


def row_summary(runs, setting: TheoryRowSetting, poisoned: bool) -> dict:
    """Mean of the certified errors of one setting and condition (digits: the fewest among the seeds), the
    published values and their comparison (none for a setting that is not the paper's)."""
    horizon = setting.horizon
    sel = [r for r in runs if r.horizon == horizon and r.poisoned == poisoned]
    ok = [r for r in sel if r.run.status == Status.CONVERGED and r.run.quantity.digits > 0]
    published = setting.published(poisoned)
    if not ok:  # nothing to compare: each source keeps only its published value, in the comparisons' shape
        return {"horizon": horizon, "poisoned": poisoned, "mean": None,
                "published": {source: {"published": value} for source, value in published.items()}, "excluded": len(sel)}
    with mpmath.workprec(256):
        mean = mpmath.fsum(r.run.quantity.value for r in ok) / len(ok)
    digits = min(r.run.quantity.digits for r in ok)
    comparison = {}
    for source, value in published.items():
        rel = float(abs(mean - value) / value)
        printed_digits = len(f"{value:.6e}".split("e")[0].replace(".", "").rstrip("0"))
        # agreement to every digit the published value prints: our mean rounds to it
        within_print = mpmath.nstr(mean, printed_digits) == mpmath.nstr(mpmath.mpf(value), printed_digits)
        comparison[source] = {
            "published": value,
            "relative_difference": float(f"{rel:.3g}"),
            "agrees_to_printed_digits": bool(within_print),
        }
    return {
        "horizon": horizon,
        "poisoned": poisoned,
        "mean": mpmath.nstr(mean, min(digits, 12), strip_zeros=False, min_fixed=1, max_fixed=0),
        "mean_digits": min(digits, 12),
        "runs": len(ok),
        "excluded": len(sel) - len(ok),
        "published": comparison,
    }


def explain_difference(summary: dict) -> list[str]:
    """Plain-language reasons for differences between our mean and the published ones."""
    lines = []
    for source, cmp in summary.get("published", {}).items():
        if not isinstance(cmp, dict):
            continue
        if cmp["agrees_to_printed_digits"]:
            lines.append(f"{source}: agrees to every digit the published value prints.")
        elif source == "poster":
            lines.append(
                f"{source}: differs by {cmp['relative_difference']:.1%}; the paper's code prints a mean that our "
                "certified mean matches, so the poster's number is not the mean of these four seeds' flows "
                "(a different run, or a rounding of a different average)."
            )
        else:
            lines.append(
                f"{source}: differs by {cmp['relative_difference']:.2g} relative; the published method (float64 odeint, "
                f"default tolerances, fixed final time) carries about {PUBLISHED_METHOD_DIGITS}-4 correct digits per run, "
                "so differences below ~1e-3 relative are its error, not ours."
            )
    return lines

