"""Optimised clean-label poisons: the most damaging at a budget, and the smallest reaching a target.

**Max damage at a budget.** ``max E(u)`` subject to ``||u|| <= rho`` (the 2-norm or the max-norm),
optionally with ``u_{H-2} = 0`` forced (a *non-special* poison: its lowest excited lag is then at
least 1, :func:`ssmpoison.theory._training_set.is_special`), where ``E`` is the damage of
:mod:`ssmpoison.verify._poisons` and its gradient comes from forward sensitivities. The problem is
handed to ``scipy.optimize.minimize`` (SLSQP: the 2-norm ball as the inequality constraint
``rho^2 - |u|^2 >= 0``, the max-norm ball as bounds; the forced zero by leaving ``u_{H-2}`` out of
the variables), from several starting points: ``rho e_{H-2}`` (the Theorem's poison, unless
non-special) and ``restarts`` seeded random points on the sphere of radius ``rho`` (a numpy
``default_rng(seed)``: the same seed gives the same poison). The best point is then re-run by
the certified engine (:func:`ssmpoison.verify._poisons.certified_damage`), beside ``rho e_{H-2}``
(whose 2-norm and max-norm are both ``rho``) and the clean flow.

**Minimal poison.** The smallest ``|u_{H-2}|`` of the Theorem's poison ``s e_{H-2}`` whose damage
reaches a target error (bisection on ``s``), and the smallest budget ``rho`` at which the optimised
damage reaches it (bisection on ``rho`` over the optimised damage).

No function here prints; progress is ``progress(label, done, total, note)``, supplied by the caller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ssmpoison.theory._validation import require_int, require_real
from ssmpoison.verify._budget import budget_expired
from ssmpoison.verify._certification import CertificationPolicy
from ssmpoison.verify._poisons import PoisonSetting, certified_damage, damage, special_poison
from ssmpoison.verify._status import Status

__all__ = ["NORMS", "PoisonResult", "optimise_poison", "MinimalPoison", "minimal_special_scale", "minimal_budget",
           "DamageCurve", "damage_curve", "require_budget", "require_norm"]

#: the norms of a budget: ``"2"`` (Euclidean) or ``"inf"`` (largest entry)
NORMS = ("2", "inf")

#: SEULEX's tolerance of the float64 damage evaluations inside the optimiser (the reported damage is certified)
SEARCH_RTOL = 1e-8


def require_budget(budget) -> float:
    """A budget ``rho > 0`` (finite), else ``ValueError`` naming ``budget``."""
    return float(require_real("budget", budget, positive=True))


def require_norm(norm) -> str:
    """``"2"`` or ``"inf"`` (also ``2`` and ``math.inf``), else ``ValueError`` naming ``norm``."""
    text = str(norm).strip().lower()
    text = {"2.0": "2", "infinity": "inf", "max": "inf"}.get(text, text)
    if text not in NORMS:
        raise ValueError(f"norm must be 2 or inf, got {norm!r}")
    return text


def norm_of(u, norm: str) -> float:
    """``||u||_2`` or ``||u||_inf``."""
    v = np.asarray(u, dtype=float)
    return float(np.linalg.norm(v)) if norm == "2" else float(np.abs(v).max(initial=0.0))


def _run_json(run) -> dict | None:
    if run is None:
        return None
    q = run.quantity
    return {
        "ext_error": q.text,
        "certified_digits": q.digits,
        "run_value": float(q.value),
        "status": run.status,
        "method": run.method,
        "precision_bits": run.precision_bits,
        "reference_bits": run.reference_bits,
        "learned_a": [float(v) for v in run.limit],
    }


@dataclass(frozen=True)
class PoisonResult:
    """The poison found at a budget, with certified damages beside the Theorem's poison and the clean flow.

    ``u`` is the best poison (float64 entries); ``search_damage`` its float64 damage in the
    optimiser; ``poisoned``, ``special`` and ``clean`` are
    :class:`~ssmpoison.verify._certified_flow.CertifiedRun` values of the set with ``u``, with
    ``rho e_{H-2}``, and of the base set alone; ``starts`` holds, per starting point, its
    ``(start, end, damage, iterations)``; ``projected_gradient`` is the gradient of the damage
    at ``u`` projected on the tangent of the constraint (its size says how stationary ``u`` is);
    ``evaluations`` counts the float64 damage evaluations of the search (``evaluations``, their
    ``seconds``, and ``not_converged``: per status, those whose flow ended without converging).
    """

    setting: PoisonSetting
    budget: float
    norm: str
    non_special: bool
    u: tuple
    search_damage: float
    poisoned: object
    special: object
    clean: object
    starts: tuple = field(default=(), repr=False)
    projected_gradient: tuple = ()
    special_projected_gradient: tuple = ()
    evaluations: dict = field(default_factory=dict, repr=False)

    @property
    def damage(self) -> float:
        return float(self.poisoned.quantity.value)

    @property
    def special_damage(self) -> float:
        return float(self.special.quantity.value)

    @property
    def clean_error(self) -> float:
        return float(self.clean.quantity.value)

    @property
    def converged(self) -> bool:
        """Every certified run converged (``False`` without certified runs)."""
        return all(r is not None and r.status == Status.CONVERGED for r in (self.poisoned, self.special, self.clean))

    def to_json(self) -> dict:
        return {
            "horizon": self.setting.horizon,
            "state_dim": self.setting.state_dim,
            "extrapolation_length": self.setting.extrapolation_length,
            "train": self.setting.train,
            "init": [float(v) for v in self.setting.a0],
            "budget": self.budget,
            "norm": self.norm,
            "non_special": self.non_special,
            "poison": [float(v) for v in self.u],
            "poison_norm": norm_of(self.u, self.norm),
            "search_damage": self.search_damage,
            "damage": _run_json(self.poisoned),
            "special_poison": [float(v) for v in special_poison(self.setting, self.budget)],
            "special_damage": _run_json(self.special),
            "clean": _run_json(self.clean),
            "damage_over_special": self.damage / self.special_damage if self.converged and self.special_damage else None,
            "damage_over_clean": self.damage / self.clean_error if self.converged and self.clean_error else None,
            "projected_gradient": list(self.projected_gradient),
            "special_projected_gradient": list(self.special_projected_gradient),
            "starts": [{"start": list(s), "end": list(e), "damage": d, "iterations": n} for s, e, d, n in self.starts],
            "evaluations": dict(self.evaluations),
        }


def _free_indices(horizon: int, non_special: bool) -> list[int]:
    return [k for k in range(horizon) if not (non_special and k == horizon - 2)]


def projected_gradient(gradient, u, budget: float, norm: str, free) -> np.ndarray:
    """The gradient restricted to the free entries and, where a constraint is active, to its tangent.

    For the 2-norm on the sphere ``|u| = rho`` the radial part is removed when it points outwards;
    for the max-norm the components pushing entries at ``+-rho`` outwards are removed.
    """
    g = np.zeros(len(u))
    g[free] = np.asarray(gradient, dtype=float)[free]
    x = np.asarray(u, dtype=float)
    if norm == "2":
        r = np.linalg.norm(x)
        if r >= budget * (1 - 1e-9) and r > 0:
            radial = g @ x / r
            if radial > 0:
                g = g - radial * x / r
    else:
        at = np.abs(x) >= budget * (1 - 1e-9)
        g[at & (np.sign(g) == np.sign(x))] = 0.0
    return g


def _random_start(rng, horizon: int, free, budget: float, norm: str) -> np.ndarray:
    x = np.zeros(horizon)
    x[free] = rng.standard_normal(len(free))
    return x * (budget / norm_of(x, norm))


def _warm_start(u, horizon: int, free, budget: float, norm: str) -> np.ndarray:
    """A given starting point with its forced entries zeroed, rescaled onto the boundary ``||u|| = rho``."""
    v = np.asarray(u, dtype=float)
    if v.shape != (horizon,) or not np.all(np.isfinite(v)):
        raise ValueError(f"starts: each start must be {horizon} finite numbers")
    x = np.zeros(horizon)
    x[free] = v[free]
    size = norm_of(x, norm)
    if size == 0:
        raise ValueError("starts: a start is zero on the free entries")
    return x * (budget / size)


def optimise_poison(setting: PoisonSetting, budget: float, norm: str = "2", *, non_special: bool = False,
                    restarts: int = 2, seed: int = 0, max_iterations: int = 30,
                    policy: CertificationPolicy = CertificationPolicy(), progress=None, certify: bool = True,
                    starts=(), max_steps: int = 20_000, evaluation_time: float | None = None,
                    project: bool = False) -> PoisonResult:
    """The most damaging clean-label poison within ``||u|| <= budget`` (module docstring).

    SLSQP works in the scaled variables ``x = u / rho`` on the unit ball (``||x|| <= 1``), so that
    its steps and its constraint are of order one whatever the budget: in ``u`` itself the
    gradient grows like ``1/rho`` and the constraint ``rho^2 - |u|^2`` shrinks like ``rho^2``, and
    at small budgets SLSQP's steps leave the ball by orders of magnitude. At ``rho = 1`` the two
    are the same iteration. Every start is evaluated, and the poison returned is the best of the
    starts' and the ends' damages: with ``rho e_{H-2}`` among the starts (unless
    ``non_special``), its search damage is never below that of ``rho e_{H-2}``.

    Arguments:
        setting: the :class:`~ssmpoison.verify._poisons.PoisonSetting`.
        budget: ``rho > 0``.
        norm: ``"2"`` or ``"inf"``.
        non_special: force ``u_{H-2} = 0``.
        restarts: random starts besides ``rho e_{H-2}`` and ``starts`` (>= 0; with ``non_special``
            and no ``starts`` at least one is used).
        seed: seed of the random starting points.
        max_iterations: SLSQP iterations per start (>= 1).
        policy: certification of the final poison, of ``rho e_{H-2}`` and of the clean flow.
        progress: ``progress(label, done, total, note)`` after each start, or ``None``.
        certify: run the certified engine on the result (``False``: the three runs are ``None``).
        starts: further starting points (warm starts, e.g. the optimum at a neighbouring budget):
            each is H numbers; its forced entries are zeroed and it is rescaled onto ``||u|| = rho``.
            They are tried after ``rho e_{H-2}`` and before the random starts.
        max_steps: SEULEX's step budget of each float64 evaluation (>= 1).
        evaluation_time: wall-clock seconds of each float64 evaluation (``None``: no limit besides
            the command's). An evaluation whose flow does not converge within its budgets counts
            as damage 0 with gradient 0, and is counted in ``PoisonResult.evaluations`` under its
            status.
        project: evaluate a trial point ``x`` outside the ball at its projection ``P(x)`` (``x/||x||``
            for the 2-norm, entries clipped to ``[-1, 1]`` for the max-norm), with the chain rule's
            gradient ``DP(x)^T grad``: the objective is then the continuous extension of ``E``
            constant along the projection, and no flow is run for a sequence outside the budget
            (SLSQP's trial points can leave the ball by orders of magnitude, where the flows are
            long); and the poison returned is the best converged evaluation inside the ball, not
            only the best start or end (SLSQP can end at a point whose flow did not converge).
            ``False`` (the default) evaluates ``E`` wherever SLSQP asks, as the earlier search did.

    Returns:
        The :class:`PoisonResult`.

    Raises:
        ValueError: a budget that is not a positive finite number, an unknown norm, a bad count,
            a start of the wrong length (naming it).
    """
    import time

    from scipy.optimize import minimize

    from ssmpoison.verify._budget import wall_clock_budget

    rho = require_budget(budget)
    norm = require_norm(norm)
    restarts = require_int("restarts", restarts, minimum=0)
    seed = require_int("seed", seed, minimum=0)
    max_iterations = require_int("max_iterations", max_iterations, minimum=1)
    max_steps = require_int("max_steps", max_steps, minimum=1)
    if evaluation_time is not None:
        evaluation_time = float(require_real("evaluation_time", evaluation_time, positive=True))
    H = setting.horizon
    free = _free_indices(H, non_special)
    warm = [_warm_start(v, H, free, rho, norm) for v in starts]
    rng = np.random.default_rng(seed)
    points = [] if non_special else [np.array(special_poison(setting, rho))]
    points += warm
    points += [_random_start(rng, H, free, rho, norm) for _ in range(max(restarts, 1 if non_special and not warm else 0))]

    cache: dict = {}
    seen: list = [None]  # with ``project``: the best converged evaluation inside the ball
    counts: dict = {"evaluations": 0, "seconds": 0.0, "not_converged": {}}

    def full(x):
        """``u = rho x`` from the scaled free variables ``x``."""
        u = np.zeros(H)
        u[free] = rho * np.asarray(x, dtype=float)
        return u

    def evaluate(x):
        """``(E(u), dE/dx)`` at ``u = rho x`` (the gradient in the scaled variables is ``rho dE/du``)."""
        x = np.asarray(x, dtype=float)
        if project and norm_of(x, norm) > 1.0:
            if norm == "2":
                r = float(np.linalg.norm(x))
                value, g = evaluate(x / r)
                unit = x / r
                return value, (g - (g @ unit) * unit) / r
            inside = np.abs(x) <= 1.0
            value, g = evaluate(np.clip(x, -1.0, 1.0))
            return value, np.where(inside, g, 0.0)
        key = tuple(float(v) for v in x)
        if key not in cache:
            began = time.monotonic()
            with wall_clock_budget(evaluation_time):
                d = damage(setting, full(x), 53, rtol=SEARCH_RTOL, max_steps=max_steps)
            counts["evaluations"] += 1
            counts["seconds"] += time.monotonic() - began
            ok = d.status == Status.CONVERGED
            if not ok:
                counts["not_converged"][str(d.status)] = counts["not_converged"].get(str(d.status), 0) + 1
            cache[key] = (float(d.value) if ok else 0.0,
                          rho * np.asarray(d.gradient, dtype=float)[free] if ok else np.zeros(len(free)))
            if project and ok and norm_of(x, norm) <= 1.0 and (seen[0] is None or cache[key][0] > seen[0][1]):
                seen[0] = (np.array(x, dtype=float), cache[key][0])
        return cache[key]

    constraints = ()
    bounds = None
    if norm == "2":
        constraints = ({"type": "ineq", "fun": lambda x: 1.0 - x @ x, "jac": lambda x: -2 * x},)
    else:
        bounds = [(-1.0, 1.0)] * len(free)
    records, best = [], None
    total = len(points)
    if progress is not None:
        progress("poison: starts", 0, total, "")
    for i, start in enumerate(points):
        if i and budget_expired():
            break
        x0 = start[free] / rho
        start_value = evaluate(x0)[0]
        res = minimize(lambda x: -evaluate(x)[0], x0, jac=lambda x: -evaluate(x)[1], method="SLSQP",
                       constraints=constraints, bounds=bounds, options={"maxiter": max_iterations, "ftol": 1e-9})
        x = np.asarray(res.x, dtype=float)
        if norm_of(x, norm) > 1.0:  # SLSQP may end a hair outside: back onto the ball
            x = x / norm_of(x, norm) if norm == "2" else np.clip(x, -1.0, 1.0)
        value = evaluate(x)[0]
        records.append((tuple(float(v) for v in full(x0)), tuple(float(v) for v in full(x)), value, int(res.nit)))
        for cand, cand_value in ((x, value), (x0, start_value)) + ((seen[0],) if seen[0] is not None else ()):
            if best is None or cand_value > best[1]:
                best = (full(cand), cand_value)
        if progress is not None:
            progress("poison: starts", i + 1, total, f"best={best[1]:.4g}")
    u = tuple(float(v) for v in best[0])

    def gradient_u(point):
        """``dE/du`` at the poison ``point`` (zero on the forced entries)."""
        g = np.zeros(H)
        g[free] = evaluate(np.asarray(point, dtype=float)[free] / rho)[1] / rho
        return g

    proj = projected_gradient(gradient_u(best[0]), u, rho, norm, free)
    special_proj = ()
    if not non_special:
        e = np.array(special_poison(setting, rho))
        special_proj = tuple(float(v) for v in projected_gradient(gradient_u(e), e, rho, norm, free))
    runs = (None, None, None)
    if certify:
        if progress is not None:
            progress("poison: certified flows", 0, 3, "")
        runs = []
        for k, v in enumerate((u, special_poison(setting, rho), None)):
            runs.append(certified_damage(setting, v, policy))
            if progress is not None:
                progress("poison: certified flows", k + 1, 3, "")
    counts["seconds"] = round(counts["seconds"], 3)
    return PoisonResult(setting, rho, norm, non_special, u, best[1], *runs, starts=tuple(records),
                        projected_gradient=tuple(float(v) for v in proj), special_projected_gradient=special_proj,
                        evaluations=counts)


@dataclass(frozen=True)
class MinimalPoison:
    """The smallest size (``|u_{H-2}|`` of ``s e_{H-2}``, or the budget of the optimised poison) whose damage reaches ``target``.

    ``size`` is the upper end of the final bracket ``[low, size]`` (the damage at ``size`` reaches
    the target, at ``low`` it does not); ``run`` the certified run at ``size``; ``u`` the poison
    there. ``size`` is ``None`` when even the largest size tried stays below the target.
    """

    kind: str
    target: float
    size: float | None
    low: float
    u: tuple | None
    run: object | None

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "target_error": self.target,
            "size": self.size,
            "bracket": [self.low, self.size],
            "poison": None if self.u is None else [float(v) for v in self.u],
            "damage": None if self.run is None else _run_json(self.run),
        }


def _bisect(reaches, low: float, high: float, steps: int):
    """Shrink ``[low, high]`` (``reaches(high)`` true, ``reaches(low)`` false) geometrically ``steps`` times."""
    for _ in range(steps):
        mid = math.sqrt(low * high)
        if reaches(mid):
            high = mid
        else:
            low = mid
    return low, high


def minimal_special_scale(setting: PoisonSetting, target_error: float, *, low: float = 1e-4, high: float = 10.0,
                          steps: int = 14, policy: CertificationPolicy = CertificationPolicy(), progress=None) -> MinimalPoison:
    """The smallest ``s`` such that the damage of ``s e_{H-2}`` reaches ``target_error`` (geometric bisection).

    Arguments:
        setting: the :class:`~ssmpoison.verify._poisons.PoisonSetting`.
        target_error: the damage to reach (> 0).
        low, high: the initial bracket of ``s`` (``0 < low < high``).
        steps: bisection steps (the bracket's ratio shrinks to ``(high/low)^(2^-steps)``).
        policy: certification of the damage at the final ``s``.
        progress: ``progress(label, done, total, note)``, or ``None``.

    Returns:
        The :class:`MinimalPoison` (``kind = "special_scale"``).
    """
    target = float(require_real("target_error", target_error, positive=True))
    low = float(require_real("low", low, positive=True))
    high = float(require_real("high", high, positive=True))
    steps = require_int("steps", steps, minimum=0)
    done = [0]

    def reaches(s):
        d = damage(setting, special_poison(setting, s), 53, gradient=False, rtol=SEARCH_RTOL)
        done[0] += 1
        if progress is not None:
            progress("poison: minimal |u_(H-2)|", done[0], steps + 2, f"s={s:.3g}")
        return d.status == Status.CONVERGED and float(d.value) >= target

    if not reaches(high):
        return MinimalPoison("special_scale", target, None, high, None, None)
    if reaches(low):
        return MinimalPoison("special_scale", target, low, 0.0, special_poison(setting, low),
                             certified_damage(setting, special_poison(setting, low), policy))
    low, high = _bisect(reaches, low, high, steps)
    u = special_poison(setting, high)
    return MinimalPoison("special_scale", target, high, low, u, certified_damage(setting, u, policy))


def minimal_budget(setting: PoisonSetting, target_error: float, norm: str = "2", *, non_special: bool = False,
                   low: float = 0.01, high: float = 1.0, steps: int = 5, restarts: int = 1, seed: int = 0,
                   max_iterations: int = 15, policy: CertificationPolicy = CertificationPolicy(), progress=None) -> MinimalPoison:
    """The smallest budget ``rho`` at which the optimised poison's damage reaches ``target_error``.

    Geometric bisection on ``rho`` over :func:`optimise_poison` (float64 damages); the poison at the
    final ``rho`` is certified. Arguments as in :func:`optimise_poison` and :func:`minimal_special_scale`.

    Returns:
        The :class:`MinimalPoison` (``kind = "budget"``).
    """
    target = float(require_real("target_error", target_error, positive=True))
    found: dict = {}

    def reaches(rho):
        r = optimise_poison(setting, rho, norm, non_special=non_special, restarts=restarts, seed=seed,
                            max_iterations=max_iterations, certify=False)
        found[rho] = r.u
        if progress is not None:
            progress("poison: minimal budget", len(found), steps + 2, f"rho={rho:.3g}")
        return r.search_damage >= target

    if not reaches(high):
        return MinimalPoison("budget", target, None, high, found[high], None)
    if reaches(low):
        return MinimalPoison("budget", target, low, 0.0, found[low], certified_damage(setting, found[low], policy))
    low, high = _bisect(reaches, low, high, steps)
    return MinimalPoison("budget", target, high, low, found[high], certified_damage(setting, found[high], policy))


@dataclass(frozen=True)
class DamageCurve:
    """Certified damage against the budget, for the optimised poison and for ``rho e_{H-2}``."""

    budgets: tuple
    optimised: tuple  # PoisonResult per budget
    norm: str
    non_special: bool

    def to_json(self) -> dict:
        return {
            "norm": self.norm,
            "non_special": self.non_special,
            "points": [{"budget": rho, "poison": [float(v) for v in r.u], "search_damage": r.search_damage,
                        "damage": _run_json(r.poisoned), "special_damage": _run_json(r.special),
                        "clean": _run_json(r.clean),
                        "damage_over_special": (r.damage / r.special_damage
                                                if r.converged and r.special_damage else None),
                        "damage_over_clean": r.damage / r.clean_error if r.converged and r.clean_error else None,
                        "starts": [{"start": list(s0), "end": list(e), "damage": d, "iterations": n}
                                   for s0, e, d, n in r.starts],
                        "evaluations": dict(r.evaluations)}
                       for rho, r in zip(self.budgets, self.optimised)],
        }


def damage_curve(setting: PoisonSetting, budgets, norm: str = "2", *, non_special: bool = False, restarts: int = 1,
                 seed: int = 0, max_iterations: int = 15, policy: CertificationPolicy = CertificationPolicy(),
                 progress=None, continuation: bool = True, max_steps: int = 20_000,
                 evaluation_time: float | None = None, starts=(), project: bool = True) -> DamageCurve:
    """:func:`optimise_poison` at each budget (certified), beside ``rho e_{H-2}``.

    With ``continuation`` the budgets are taken in decreasing order (the flows are fastest at
    large budgets) and the optimum found at the previous budget, rescaled onto the new sphere,
    is one more start at the next: a warm start from the neighbouring point of the curve, so
    that at every budget the poison found is at least as damaging, in the search, as
    ``rho e_{H-2}`` and as the previous optimum rescaled.

    Arguments:
        setting: the :class:`~ssmpoison.verify._poisons.PoisonSetting`.
        budgets: the budgets ``rho > 0``.
        norm, non_special, restarts, seed, max_iterations, policy, max_steps, evaluation_time, project: as
            in :func:`optimise_poison` (``project`` on by default here).
        progress: ``progress(label, done, total, note)`` after each budget, or ``None``.
        continuation: warm-start each budget from the previous budget's optimum.
        starts: further starts tried at every budget (each rescaled onto its sphere).

    Returns:
        The :class:`DamageCurve` (its points in decreasing budget with ``continuation``, else in
        the order given).
    """
    rhos = tuple(require_budget(b) for b in budgets)
    if continuation:
        rhos = tuple(sorted(set(rhos), reverse=True))
    out = []
    for k, rho in enumerate(rhos):
        warm = tuple(starts) + ((out[-1].u,) if continuation and out else ())
        out.append(optimise_poison(setting, rho, norm, non_special=non_special, restarts=restarts, seed=seed,
                                   max_iterations=max_iterations, policy=policy, starts=warm, max_steps=max_steps,
                                   evaluation_time=evaluation_time, project=project))
        if progress is not None:
            progress("poison: damage vs budget", k + 1, len(rhos), f"rho={rho:g}")
    return DamageCurve(rhos, tuple(out), require_norm(norm), non_special)


# ----------------------------------------------------------------------------- rendering


def _value(run) -> str:
    return "—" if run is None else run.value_text()


def _entries(values, digits: int = 4) -> str:
    return "(" + ", ".join(f"{float(v):.{digits}g}" for v in values) + ")"


def poison_text(result: PoisonResult, minimal: MinimalPoison | None = None, curve: DamageCurve | None = None) -> str:
    """The printed report of :func:`optimise_poison` (and of a minimal poison and a damage curve, when given)."""
    s = result.setting
    H = s.horizon
    kind = "non-special (u_(H-2) = 0 forced)" if result.non_special else "special allowed"
    norm = "||u||_2" if result.norm == "2" else "||u||_inf"
    lines = [f"Poison: H = {H}, D = {s.state_dim}, H' = {s.extrapolation_length}, trained {s.train}; "
             f"budget {norm} <= {result.budget:g}, {kind}", ""]
    lines.append(f"clean error (no poison)          : {_value(result.clean)}")
    lines.append(f"optimised poison u               : {_entries(result.u, 6)}   {norm} = {norm_of(result.u, result.norm):.6g}")
    lines.append(f"  its damage E(u)                : {_value(result.poisoned)}")
    lines.append(f"{result.budget:g} e_(H-2) (the Theorem's poison): {_value(result.special)}")
    if result.converged and result.special_damage and result.clean_error:
        lines.append(f"  E(u) / E({result.budget:g} e_(H-2)) = {result.damage / result.special_damage:.4g};  "
                     f"E(u) / clean = {result.damage / result.clean_error:.4g};  "
                     f"E({result.budget:g} e_(H-2)) / clean = {result.special_damage / result.clean_error:.4g}")
    lines.append(f"  projected gradient at u: max |g| = {max(abs(v) for v in result.projected_gradient):.3g}"
                 + ("" if not result.special_projected_gradient else
                    f"; at {result.budget:g} e_(H-2): max |g| = {max(abs(v) for v in result.special_projected_gradient):.3g}"))
    lines.append("")
    lines.append("learned diagonal of A:")
    for name, run in (("without a poison", result.clean), ("with u", result.poisoned),
                      (f"with {result.budget:g} e_(H-2)", result.special)):
        if run is not None:
            lines.append(f"  {name:<22}: {_entries(run.limit)}")
    lines.append("")
    lines.append(f"starts ({len(result.starts)}): " + "; ".join(f"damage {d:.5g} after {n} iterations"
                                                           for _, _, d, n in result.starts))
    if minimal is not None:
        lines.append("")
        if minimal.size is None:
            lines.append(f"minimal poison: no s <= {minimal.low:g} makes s e_(H-2) reach the target error {minimal.target:.3g}")
        else:
            lines.append(f"minimal poison: the smallest |u_(H-2)| of s e_(H-2) reaching {minimal.target:.3g}: "
                         f"s in ({minimal.low:.4g}, {minimal.size:.4g}]; damage at s = {minimal.size:.4g}: {_value(minimal.run)}")
    if curve is not None:
        lines += ["", f"damage versus budget ({norm}):", f"  {'rho':>6}  {'optimised':<34}  rho e_(H-2)"]
        for rho, r in zip(curve.budgets, curve.optimised):
            lines.append(f"  {rho:>6g}  {_value(r.poisoned):<34}  {_value(r.special)}")
    return "\n".join(lines)


#: file names of the figures of ``poison --out DIR``
FIGURES = ("poison_entries.png", "damage_vs_budget.png")


def plot_poison(result: PoisonResult, curve: DamageCurve | None, out_dir) -> list:
    """PNG figures: the poison's entries over the time steps (beside ``rho e_{H-2}``), and damage versus budget.

    Arguments:
        result: the :class:`PoisonResult`.
        curve: the :class:`DamageCurve` (``None``: only the first figure).
        out_dir: an existing directory.

    Returns:
        The paths written (each written atomically).
    """
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ssmpoison.verify._jsonio import save_figure

    out_dir = Path(out_dir)
    H = result.setting.horizon
    paths = []
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    k = np.arange(H)
    ax.bar(k - 0.2, result.u, width=0.4, color="tab:red", label=f"optimised poison (E = {result.damage:.4g})")
    ax.bar(k + 0.2, special_poison(result.setting, result.budget), width=0.4, color="tab:gray",
           label=f"{result.budget:g} e_(H-2) (E = {result.special_damage:.4g})")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xticks(k)
    ax.set_xlabel("time step k (H-2 is the special position)")
    ax.set_ylabel("u_k")
    ax.set_title(f"poison at budget {result.budget:g} (norm {result.norm}), H = {H}, D = {result.setting.state_dim}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out_dir / FIGURES[0]
    save_figure(fig, path)
    paths.append(path)
    if curve is not None:
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        rhos = list(curve.budgets)
        ax.plot(rhos, [float(r.poisoned.quantity.value) for r in curve.optimised], "o-", color="tab:red",
                label="optimised poison" + (" (non-special)" if curve.non_special else ""))
        ax.plot(rhos, [float(r.special.quantity.value) for r in curve.optimised], "s--", color="tab:gray", label="rho e_(H-2)")
        ax.axhline(float(curve.optimised[0].clean.quantity.value), color="tab:blue", lw=1, ls=":", label="clean error")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"budget rho (norm {curve.norm})")
        ax.set_ylabel("certified damage E (extrapolation error)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / FIGURES[1]
        save_figure(fig, path)
        paths.append(path)
    return paths
