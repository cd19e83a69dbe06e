"""The real-world experiment: clean-label poisoning of S4D and LRU classifiers on the digits, over seeds and budgets.

For each model kind and seed: a clean model (seed s) is trained and the poisons are crafted on
it; a *victim* (seed s + ``victim_seed_offset``: another initialisation and batch order) is then
trained from scratch on the clean set and on each poisoned set. The target is a random test sample the
clean model classifies correctly, relabelled to the clean model's second choice for it (the adversarial class); at
each budget b the poisoned samples are ``round(b · n_train)`` training samples of that class
(their labels are correct: clean-label). Variants at each budget, on the same samples:

* ``gm`` — gradient matching, no regulariser;
* ``gm_end`` — gradient matching with the end-of-sequence energy regulariser (β, last k steps);
* ``gm_first_half`` — gradient matching with δ restricted to the first half of the sequence;
* ``random`` — random sign noise of the same ε.

and, at the largest budget, ``untargeted`` gradient matching (poisons drawn from every class,
L_adv = minus the loss of clean training samples), measured by the victim's clean accuracy.
Recorded per run: the victim's clean test accuracy, the target's adversarial-class probability
and whether it is classified as that class, the poison's energy profile and its share in the
last 1 and 2 steps, and the audit (training samples ranked by their last-steps energy share).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ssmpoison.verify._realworld_data import require_realworld_extra

__all__ = ["RealWorldConfig", "RealWorldReport", "run_realworld", "realworld_text", "plot_realworld", "FIGURES",
           "TARGETED_VARIANTS", "tiny_config"]

#: the model kinds (:data:`ssmpoison.verify._realworld_layers.MODEL_KINDS`, repeated here so that a configuration
#: is checked without importing torch)
MODEL_KINDS = ("s4d", "lru")
#: the targeted variants, in the order they are run and shown
TARGETED_VARIANTS = ("gm", "gm_end", "gm_first_half", "random")
#: the figures :func:`plot_realworld` writes
FIGURES = ("realworld_budget.png", "realworld_energy_profile.png", "realworld_effect_vs_share.png")


@dataclass(frozen=True)
class RealWorldConfig:
    """One real-world experiment.

    Attributes:
        models: model kinds (``"s4d"``, ``"lru"``).
        seeds: seeds (each: a clean model, a target, poisons, victims).
        budgets: poison budgets, fractions of the training set in (0, 1).
        epsilon: the ℓ∞ bound ε of every perturbation, in (0, 1].
        regulariser: β of the ``gm_end`` variant (> 0).
        last_steps: k, the final time steps of the regulariser and of the energy share.
        poison_steps: signed Adam steps of each crafting.
        victim_seed_offset: the victims' seed is the clean model's plus this.
        untargeted: also run the untargeted variant.
        limit: use only the first ``limit`` digits (tiny runs), or all.
        train: the :class:`~ssmpoison.verify._realworld_training.TrainConfig` (a dict of its fields).
    """

    models: tuple = ("s4d", "lru")
    seeds: tuple = (0, 1, 2, 3, 4)
    budgets: tuple = (0.02, 0.05)
    epsilon: float = 0.25
    regulariser: float = 1.0
    last_steps: int = 2
    poison_steps: int = 40
    victim_seed_offset: int = 1000
    untargeted: bool = True
    limit: int | None = None
    train: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.models or any(m not in MODEL_KINDS for m in self.models):
            raise ValueError(f"model must be among {', '.join(MODEL_KINDS)}, got {self.models!r}")
        if not self.seeds or any(isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < 2**31
                                 for s in self.seeds) or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct integers in [0, 2^31), got {self.seeds!r}")
        if not self.budgets or any(not (isinstance(b, float) and 0 < b < 1) for b in self.budgets) or len(
                set(self.budgets)) != len(self.budgets):
            raise ValueError(f"budget must be distinct reals in (0, 1), got {self.budgets!r}")
        if not (isinstance(self.epsilon, float) and 0 < self.epsilon <= 1):
            raise ValueError(f"epsilon must be a real in (0, 1], got {self.epsilon!r}")
        if not (isinstance(self.regulariser, float) and 0 < self.regulariser < math.inf):
            raise ValueError(f"regulariser must be a finite real > 0, got {self.regulariser!r}")

    def train_config(self):
        """The training configuration."""
        from ssmpoison.verify._realworld_training import TrainConfig

        return TrainConfig(**{"pooling": "last", "epochs": 8, **self.train})

    def to_json(self) -> dict:
        """The configuration as a JSON object."""
        return {"models": list(self.models), "seeds": list(self.seeds), "budgets": list(self.budgets),
                "epsilon": self.epsilon, "regulariser": self.regulariser, "last_steps": self.last_steps,
                "poison_steps": self.poison_steps, "victim_seed_offset": self.victim_seed_offset,
                "untargeted": self.untargeted, "limit": self.limit, "train": self.train_config().to_json()}


def tiny_config(**changes) -> RealWorldConfig:
    """A configuration that runs in seconds (tests, the executed note): 300 digits, small models, 2 seeds.

    Arguments:
        changes: fields of :class:`RealWorldConfig` to set instead.
    """
    values = dict(seeds=(0, 1), budgets=(0.05,), poison_steps=8, limit=300,
                  train={"width": 16, "state_dim": 8, "epochs": 10, "learning_rate": 2e-2})
    values.update(changes)
    return RealWorldConfig(**values)


@dataclass
class RealWorldReport:
    """The runs of a real-world experiment and their summaries.

    Attributes:
        config: the :class:`RealWorldConfig`.
        clean: one dict per (model, seed): clean and clean-victim accuracies, the target and its classes.
        runs: one dict per (model, seed, budget, variant): the victim's accuracy, the target's
            adversarial probability and success, the energy profile and shares, the audit.
        status: ``"done"`` or ``"time_limit"`` (runs skipped once the budget ran out).
        seconds: wall-clock and CPU seconds of the whole experiment.
    """

    config: RealWorldConfig
    clean: list
    runs: list
    status: str
    seconds: dict

    def summary(self) -> dict:
        """Means and standard deviations over seeds: per model, clean accuracy; per (model, budget, variant),
        the victim's accuracy, success rate, adversarial probability, last-steps share and audit."""
        out = {}
        for model in self.config.models:
            clean = [c for c in self.clean if c["model"] == model]
            entry = {"clean_accuracy": _spread([c["clean_accuracy"] for c in clean]),
                     "clean_victim_accuracy": _spread([c["victim_accuracy"] for c in clean]),
                     "clean_victim_target_probability": _spread([c["victim_target_probability"] for c in clean]),
                     "variants": {}}
            for run in (r for r in self.runs if r["model"] == model):
                key = f"{run['variant']}@{run['budget']:g}"
                entry["variants"].setdefault(key, []).append(run)
            for key, runs in entry["variants"].items():
                entry["variants"][key] = {
                    "runs": len(runs),
                    "victim_accuracy": _spread([r["victim_accuracy"] for r in runs]),
                    "accuracy_drop": _spread([r["accuracy_drop"] for r in runs]),
                    "target_success": _spread([float(r["target_success"]) for r in runs if r["targeted"]]),
                    "target_probability": _spread([r["target_probability"] for r in runs if r["targeted"]]),
                    "target_probability_gain": _spread([r["target_probability_gain"] for r in runs if r["targeted"]]),
                    "last1_share": _spread([r["last1_share"] for r in runs]),
                    "last2_share": _spread([r["last2_share"] for r in runs]),
                    "audit_auc": _spread([r["audit"]["auc"] for r in runs]),
                    "audit_top_fraction": _spread([r["audit"]["top_fraction"] for r in runs]),
                }
            out[model] = entry
        return out

    def to_json(self) -> dict:
        """Everything as a JSON object (configuration, summary, runs)."""
        return {"config": self.config.to_json(), "status": self.status, "seconds": self.seconds,
                "summary": self.summary(), "clean": self.clean, "runs": self.runs}


def _spread(values) -> dict:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return {"mean": None, "std": None, "n": 0}
    arr = np.asarray(values, dtype=float)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0, "n": len(arr)}


def _units(config: RealWorldConfig) -> int:
    per_budget = len(TARGETED_VARIANTS) * 2 - 1  # 3 craftings + 4 trainings
    per_seed = 2 + len(config.budgets) * per_budget + (2 if config.untargeted else 0)
    return len(config.models) * len(config.seeds) * per_seed


def run_realworld(config: RealWorldConfig, progress=None) -> RealWorldReport:
    """Run the experiment (see the module's docstring); deterministic for a configuration on one machine.

    Arguments:
        config: a :class:`RealWorldConfig`.
        progress: optional ``progress(label, done, total, note)`` callback, called after every training and crafting.

    Returns:
        A :class:`RealWorldReport`; runs not started when the command's wall-clock budget ran out are missing
        and its status is ``"time_limit"``.

    Raises:
        ValueError: the optional extra (torch, scikit-learn) is missing.
    """
    require_realworld_extra()
    from ssmpoison.verify._budget import budget_expired
    from ssmpoison.verify._realworld_data import load_digit_sequences
    from ssmpoison.verify._realworld_poisons import (PoisonConfig, audit_ranking, craft_poison, energy_profile,
                                                     last_share, random_poison)
    from ssmpoison.verify._realworld_training import accuracy, deterministic_torch, predict, train_classifier

    deterministic_torch()
    wall, cpu = time.perf_counter(), time.process_time()
    data = load_digit_sequences(limit=config.limit)
    tc = config.train_config()
    classes, length = data.classes, data.length
    n_train = len(data.y_train)
    total, done = _units(config), 0
    clean_records, runs = [], []
    status = "done"

    def tick(note=""):
        nonlocal done
        done += 1
        if progress is not None:
            progress("realworld", done, total, note)

    first_half = np.zeros(length, dtype=np.float32)
    first_half[: length // 2] = 1
    plain = PoisonConfig(epsilon=config.epsilon, steps=config.poison_steps, last_steps=config.last_steps)
    regularised = PoisonConfig(epsilon=config.epsilon, steps=config.poison_steps, last_steps=config.last_steps,
                               regulariser=config.regulariser)
    if progress is not None:
        progress("realworld", 0, total, "")
    try:
        for model_kind in config.models:
            for seed in config.seeds:
                if budget_expired():
                    raise _OutOfTime
                victim_seed = seed + config.victim_seed_offset
                model = _trained(train_classifier, budget_expired, model_kind, data.x_train, data.y_train, classes,
                                 seed, tc)
                tick(f"{model_kind}=seed {seed}")
                clean_acc = accuracy(model, data.x_test, data.y_test)
                victim = _trained(train_classifier, budget_expired, model_kind, data.x_train, data.y_train, classes,
                                  victim_seed, tc)
                tick()
                victim_acc = accuracy(victim, data.x_test, data.y_test)
                rng = np.random.default_rng([seed, 21])
                probabilities = predict(model, data.x_test)
                correct = np.flatnonzero(probabilities.argmax(axis=1) == data.y_test)
                target = int(rng.choice(correct if len(correct) else np.arange(len(data.y_test))))
                true_class = int(data.y_test[target])
                runner_up = probabilities[target].copy()
                runner_up[true_class] = -1
                adv_class = int(np.argmax(runner_up))  # the clean model's second choice
                x_target = data.x_test[target:target + 1]
                clean_p_adv = float(predict(victim, x_target)[0, adv_class])
                clean_records.append({
                    "model": model_kind, "seed": seed, "clean_accuracy": clean_acc, "victim_accuracy": victim_acc,
                    "target": target, "true_class": true_class, "adversarial_class": adv_class,
                    "victim_target_probability": clean_p_adv})
                members = np.flatnonzero(data.y_train == adv_class)
                for budget in config.budgets:
                    count = int(min(len(members), max(1, round(budget * n_train))))
                    chosen = np.sort(rng.choice(members, size=count, replace=False))
                    x_p, y_p = data.x_train[chosen], data.y_train[chosen]
                    deltas = {}
                    for variant in TARGETED_VARIANTS:
                        if budget_expired():
                            raise _OutOfTime
                        if variant == "random":
                            deltas[variant] = random_poison(x_p, config.epsilon, seed)
                        else:
                            pc = regularised if variant == "gm_end" else plain
                            mask = first_half if variant == "gm_first_half" else None
                            deltas[variant], _ = craft_poison(model, x_p, y_p, x_target, np.array([adv_class]), pc,
                                                              mask=mask, seed=seed)
                            tick()
                        runs.append(_victim_run(model_kind, seed, budget, variant, True, data, chosen,
                                                deltas[variant], victim_seed, tc, classes, x_target, adv_class,
                                                (victim_acc, clean_p_adv), config.last_steps, train_classifier, accuracy, predict,
                                                energy_profile, last_share, audit_ranking))
                        tick(f"{variant}=p_adv {runs[-1]['target_probability']:.2f}")
                if config.untargeted:
                    if budget_expired():
                        raise _OutOfTime
                    budget = max(config.budgets)
                    count = int(max(1, round(budget * n_train)))
                    chosen = np.sort(rng.choice(n_train, size=count, replace=False))
                    reference = rng.choice(n_train, size=min(256, n_train), replace=False)
                    delta, _ = craft_poison(model, data.x_train[chosen], data.y_train[chosen],
                                            data.x_train[reference], data.y_train[reference], plain, targeted=False,
                                            seed=seed)
                    tick()
                    runs.append(_victim_run(model_kind, seed, budget, "untargeted", False, data, chosen, delta,
                                            victim_seed, tc, classes, x_target, adv_class,
                                            (victim_acc, clean_p_adv), config.last_steps, train_classifier, accuracy, predict, energy_profile,
                                            last_share, audit_ranking))
                    tick()
    except _OutOfTime:
        status = "time_limit"
    seconds = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
    return RealWorldReport(config, clean_records, runs, status, seconds)


class _OutOfTime(Exception):
    """The command's wall-clock budget ran out (internal)."""


def _trained(train_classifier, budget_expired, *args):
    """A model trained to the end, or :class:`_OutOfTime` when the budget ran out between two epochs."""
    model, complete = train_classifier(*args, should_stop=budget_expired)
    if not complete:
        raise _OutOfTime
    return model


def _victim_run(model_kind, seed, budget, variant, targeted, data, chosen, delta, victim_seed, tc, classes, x_target,
                adv_class, clean_victim, last_steps, train_classifier, accuracy, predict, energy_profile, last_share,
                audit_ranking) -> dict:
    """Train the victim on the set poisoned by ``delta`` at ``chosen`` and measure it (one run's record).

    ``clean_victim`` is ``(accuracy, p_adv)`` of the victim trained on the clean set: the differences are the
    effect (``accuracy_drop``, ``target_probability_gain``).
    """
    victim_acc, clean_p_adv = clean_victim
    x_poisoned = data.x_train.copy()
    x_poisoned[chosen] += delta
    from ssmpoison.verify._budget import budget_expired

    victim = _trained(train_classifier, budget_expired, model_kind, x_poisoned, data.y_train, classes, victim_seed, tc)
    acc = accuracy(victim, data.x_test, data.y_test)
    p_adv = float(predict(victim, x_target)[0, adv_class])
    success = bool(predict(victim, x_target)[0].argmax() == adv_class)
    profile = energy_profile(delta)
    return {"model": model_kind, "seed": seed, "budget": budget, "variant": variant, "targeted": targeted,
            "poisons": int(len(chosen)), "victim_accuracy": acc, "accuracy_drop": victim_acc - acc,
            "target_probability": p_adv if targeted else None, "target_success": success if targeted else None,
            "target_probability_gain": p_adv - clean_p_adv if targeted else None,
            "energy_profile": [float(e) for e in profile],
            "last1_share": last_share(profile, 1), "last2_share": last_share(profile, 2),
            "audit": audit_ranking(x_poisoned, chosen, last_steps)}


def _fmt(s: dict, scale: float = 1.0, digits: int = 2) -> str:
    if s["mean"] is None:
        return "—"
    return f"{s['mean'] * scale:.{digits}f} ± {s['std'] * scale:.{digits}f}"


def realworld_text(report: RealWorldReport) -> str:
    """A plain-text account: per model the clean accuracy, then per budget and variant the effect (mean ± std).

    Arguments:
        report: a :class:`RealWorldReport`.

    Returns:
        The text, one line per model and one per (variant, budget).
    """
    cfg = report.config
    lines = [f"realworld: digits as {64}-step sequences, models {', '.join(cfg.models)}, seeds "
             f"{', '.join(map(str, cfg.seeds))}, budgets {', '.join(f'{b:g}' for b in cfg.budgets)}, "
             f"epsilon {cfg.epsilon:g}, regulariser {cfg.regulariser:g} on the last {cfg.last_steps} steps "
             f"(status {report.status}; {report.seconds['wall']:.0f} s wall, {report.seconds['cpu']:.0f} s CPU)"]
    for model, entry in report.summary().items():
        lines.append(f"{model}: clean test accuracy {_fmt(entry['clean_accuracy'], 100, 1)} % "
                     f"(victim seeds {_fmt(entry['clean_victim_accuracy'], 100, 1)} %, target's adversarial "
                     f"probability {_fmt(entry['clean_victim_target_probability'])})")
        lines.append(f"  {'variant@budget':<22}{'victim acc %':>14}{'success':>13}{'p_adv':>13}{'p_adv gain':>14}"
                     f"{'last-2 share':>14}{'audit AUC':>13}")
        for key, v in entry["variants"].items():
            lines.append(f"  {key:<22}{_fmt(v['victim_accuracy'], 100, 1):>14}{_fmt(v['target_success']):>13}"
                         f"{_fmt(v['target_probability']):>13}{_fmt(v['target_probability_gain']):>14}"
                         f"{_fmt(v['last2_share']):>14}{_fmt(v['audit_auc']):>13}")
    return "\n".join(lines)


def plot_realworld(report: RealWorldReport, directory) -> list:
    """The figures :data:`FIGURES` in ``directory``: accuracy and target success versus budget; the energy
    profile of the poisons (mean share per time step) per variant; the effect (the target's adversarial probability's
    gain over the clean victim) against the poison's last-steps energy share, one point per run.

    Arguments:
        report: a :class:`RealWorldReport` with at least one run.
        directory: an existing directory (each figure is written atomically).

    Returns:
        The paths written.
    """
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ssmpoison.verify._jsonio import save_figure

    directory = Path(directory)
    models = report.config.models
    colours = {"gm": "C0", "gm_end": "C3", "gm_first_half": "C2", "random": "C7", "untargeted": "C4"}
    paths = []
    summary = report.summary()
    metrics = (("victim_accuracy", 100, "victim clean test accuracy (%)"), ("target_success", 1, "target success rate"),
               ("target_probability_gain", 1, "target's p_adv minus the clean victim's"))
    fig, axes = plt.subplots(len(metrics), len(models), figsize=(5 * len(models), 10), squeeze=False)
    for j, model in enumerate(models):
        variants = summary[model]["variants"]
        for k, variant in enumerate(TARGETED_VARIANTS):
            pts = sorted((float(key.split("@")[1]), v) for key, v in variants.items() if key.split("@")[0] == variant)
            if not pts:
                continue
            b = [p[0] * 100 + 0.04 * (k - 1.5) for p in pts]  # side by side
            for i, (metric, scale, _) in enumerate(metrics):
                m = [p[1][metric]["mean"] * scale for p in pts]
                s = [p[1][metric]["std"] * scale for p in pts]
                axes[i, j].errorbar(b, m, yerr=s, marker="o", capsize=3, label=variant, color=colours[variant])
        for i, (_, _, title) in enumerate(metrics):
            axes[i, j].set_title(f"{model}: {title}", fontsize=9)
        for i in range(len(metrics)):
            axes[i, j].set_xlabel("budget (% of the training set)")
            axes[i, j].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, directory / FIGURES[0])
    paths.append(directory / FIGURES[0])

    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.5), squeeze=False)
    for j, model in enumerate(models):
        for variant in (*TARGETED_VARIANTS, "untargeted"):
            profiles = [np.asarray(r["energy_profile"]) / max(sum(r["energy_profile"]), 1e-300) for r in report.runs
                        if r["model"] == model and r["variant"] == variant]
            if profiles:
                axes[0, j].plot(np.mean(profiles, axis=0), label=variant, color=colours[variant])
        axes[0, j].set_yscale("log")
        axes[0, j].set_xlabel("time step t")
        axes[0, j].set_title(f"{model}: poison energy share per time step")
        axes[0, j].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, directory / FIGURES[1])
    paths.append(directory / FIGURES[1])

    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.5), squeeze=False)
    for j, model in enumerate(models):
        for variant in TARGETED_VARIANTS:
            runs = [r for r in report.runs if r["model"] == model and r["variant"] == variant]
            if runs:
                axes[0, j].scatter([r["last2_share"] for r in runs], [r["target_probability_gain"] for r in runs],
                                   s=14, label=variant, color=colours[variant])
        axes[0, j].axhline(0, color="k", lw=0.5)
        axes[0, j].set_xlabel(f"poison energy share in the last {report.config.last_steps} steps")
        axes[0, j].set_ylabel("target's p_adv minus the clean victim's")
        axes[0, j].set_title(f"{model}: effect against end-of-sequence energy")
        axes[0, j].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, directory / FIGURES[2])
    paths.append(directory / FIGURES[2])
    return paths
