"""Clean-label poisons of the real-world classifiers: gradient matching (Witches' Brew), baselines, energy profiles.

A poison perturbs a small set P of correctly labelled training samples, ``x_i + δ_i`` with
``‖δ_i‖∞ ≤ ε`` and ``x_i + δ_i ∈ [0, 1]``, labels unchanged. Gradient matching (Geiping et al.,
2021) chooses δ on a trained model θ so that training on the poisons pushes θ the way the
adversary wants: it minimises

    M(δ) = 1 − cos(∇_θ L_adv(θ), ∇_θ Σ_{i∈P} ℓ(f_θ(x_i + δ_i), y_i)) + β R(δ),

where ``L_adv`` is, **targeted**, the loss of one test sample ``x_t`` relabelled to the adversarial
class (the poisons are training samples *of that class*, so their labels stay clean) and,
**untargeted**, minus the loss of clean training samples (training on the poisons then raises it).
The optional regulariser pushes the perturbation's energy onto the last ``k`` time steps,

    R(δ) = Σ_i Σ_{t < L−k} ‖δ_{i,t}‖² / (Σ_i Σ_t ‖δ_{i,t}‖² + 10⁻¹²),

the share of the energy *outside* the last k steps. M is minimised by signed Adam steps (the sign
of ∇_δ M, Adam's moments, step ``α ε`` decayed ×0.1 at 3/8, 5/8 and 7/8 of the steps) each
followed by the projection onto the ε-box and the data box; a ``mask`` restricts δ to some time
steps (the baseline "first half"). Baseline "random": ``δ = ε · sign noise`` clipped to the data box.

The energy profile of a poison is ``e_t = Σ_i ‖δ_{i,t}‖²`` and its last-k share is
``Σ_{t ≥ L−k} e_t / Σ_t e_t`` — the real-world analogue of the theory's special score (the
theory's special sequence has its only non-zero entry at time step H−2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["PoisonConfig", "matching_objective", "craft_poison", "random_poison", "energy_profile", "last_share",
           "audit_ranking"]


@dataclass(frozen=True)
class PoisonConfig:
    """How a gradient-matching poison is crafted.

    Attributes:
        epsilon: the ℓ∞ bound ε of each perturbation (> 0).
        steps: signed Adam steps.
        step_scale: α, the step as a multiple of ε.
        regulariser: β ≥ 0, the weight of the end-of-sequence energy regulariser R (0: none).
        last_steps: k, the number of final time steps R favours.
    """

    epsilon: float = 0.25
    steps: int = 60
    step_scale: float = 0.1
    regulariser: float = 0.0
    last_steps: int = 2

    def __post_init__(self):
        if not (isinstance(self.epsilon, float) and 0 < self.epsilon <= 1):
            raise ValueError(f"epsilon must be a real in (0, 1], got {self.epsilon!r}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError(f"steps must be an integer >= 0, got {self.steps!r}")
        if not self.step_scale > 0:
            raise ValueError(f"step_scale must be > 0, got {self.step_scale!r}")
        if not self.regulariser >= 0:
            raise ValueError(f"regulariser must be >= 0, got {self.regulariser!r}")
        if isinstance(self.last_steps, bool) or not isinstance(self.last_steps, int) or self.last_steps < 1:
            raise ValueError(f"last_steps must be an integer >= 1, got {self.last_steps!r}")


def _flat_gradient(loss: torch.Tensor, params: list[torch.Tensor], create_graph: bool) -> torch.Tensor:
    grads = torch.autograd.grad(loss, params, create_graph=create_graph)
    return torch.cat([g.reshape(-1) for g in grads])


def adversarial_gradient(model, x_adv: torch.Tensor, y_adv: torch.Tensor, targeted: bool) -> torch.Tensor:
    """∇_θ L_adv: of the cross-entropy of ``(x_adv, y_adv)`` (targeted) or of minus it (untargeted); detached."""
    params = [p for p in model.parameters() if p.requires_grad]
    loss = torch.nn.functional.cross_entropy(model(x_adv), y_adv)
    return _flat_gradient(loss if targeted else -loss, params, create_graph=False).detach()


def matching_objective(model, x: torch.Tensor, y: torch.Tensor, delta: torch.Tensor, target_gradient: torch.Tensor,
                       regulariser: float = 0.0, last_steps: int = 2) -> torch.Tensor:
    """M(δ) = 1 − cos(∇_θ L_adv, ∇_θ Σ_i ℓ(f_θ(x_i + δ_i), y_i)) + β R(δ), differentiable in δ.

    Arguments:
        model: the trained classifier (its parameters θ).
        x, y: the poisons' clean samples ``(P, L, inputs)`` and labels.
        delta: the perturbations, same shape as ``x``.
        target_gradient: ∇_θ L_adv, flattened (:func:`adversarial_gradient`).
        regulariser: β.
        last_steps: k of R.

    Returns:
        The scalar M(δ).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    loss = torch.nn.functional.cross_entropy(model(x + delta), y, reduction="sum")
    grad = _flat_gradient(loss, params, create_graph=True)
    cosine = torch.dot(grad, target_gradient) / (grad.norm() * target_gradient.norm() + 1e-12)
    value = 1 - cosine
    if regulariser:
        energy = (delta**2).sum(dim=(0, 2))
        value = value + regulariser * energy[:-last_steps].sum() / (energy.sum() + 1e-12)
    return value


def craft_poison(model, x: np.ndarray, y: np.ndarray, x_adv: np.ndarray, y_adv: np.ndarray, config: PoisonConfig,
                 targeted: bool = True, mask: np.ndarray | None = None, seed: int = 0) -> tuple[np.ndarray, float]:
    """Perturbations δ minimising the gradient-matching objective :func:`matching_objective`.

    Arguments:
        model: the trained classifier the poison is crafted on (its parameters are not changed).
        x, y: the clean samples to perturb ``(P, L, inputs)`` and their (clean) labels.
        x_adv, y_adv: the adversarial samples and labels of L_adv (the target relabelled, or clean samples).
        config: a :class:`PoisonConfig`.
        targeted: L_adv is the loss (True) or minus the loss (False, untargeted).
        mask: ``(L,)`` of 0/1: the time steps δ may use (default all).
        seed: the seed of the random start (uniform in the ε-box).

    Returns:
        ``(delta, objective)``: the perturbations (float32 array of the shape of ``x``, within the ε-box and
        the data box, zero where the mask is 0) and the final M(δ).
    """
    eps = config.epsilon
    xs = torch.as_tensor(x, dtype=torch.float32)
    ys = torch.as_tensor(y)
    window = torch.ones(xs.shape[1]) if mask is None else torch.as_tensor(mask, dtype=torch.float32)
    window = window[None, :, None]
    target = adversarial_gradient(model, torch.as_tensor(x_adv, dtype=torch.float32), torch.as_tensor(y_adv),
                                  targeted)
    generator = torch.Generator().manual_seed(int(seed))
    start = (torch.rand(xs.shape, generator=generator) * 2 - 1) * eps * window
    delta = (torch.clamp(xs + start, 0, 1) - xs).requires_grad_(True)
    optimiser = torch.optim.Adam([delta], lr=config.step_scale * eps)
    milestones = [config.steps * 3 // 8, config.steps * 5 // 8, config.steps * 7 // 8]
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimiser, milestones=milestones, gamma=0.1)
    for _ in range(config.steps):
        optimiser.zero_grad(set_to_none=True)
        value = matching_objective(model, xs, ys, delta, target, config.regulariser, config.last_steps)
        (grad,) = torch.autograd.grad(value, delta)
        delta.grad = grad.sign() * window
        optimiser.step()
        schedule.step()
        with torch.no_grad():
            delta.copy_((torch.clamp(xs + torch.clamp(delta, -eps, eps), 0, 1) - xs) * window)
    for p in model.parameters():
        p.grad = None
    final = float(matching_objective(model, xs, ys, delta.detach(), target, config.regulariser, config.last_steps).detach())
    return delta.detach().numpy().astype(np.float32), final


def random_poison(x: np.ndarray, epsilon: float, seed: int) -> np.ndarray:
    """The baseline: ``δ = ε · s`` with independent random signs s, clipped so that ``x + δ ∈ [0, 1]``."""
    rng = np.random.default_rng(seed)
    delta = epsilon * rng.choice([-1.0, 1.0], size=x.shape)
    return (np.clip(x + delta, 0, 1) - x).astype(np.float32)


def energy_profile(delta: np.ndarray) -> np.ndarray:
    """``e_t = Σ_i ‖δ_{i,t}‖²``: the poison's energy per time step, ``(L,)`` float64."""
    return np.sum(np.asarray(delta, dtype=np.float64) ** 2, axis=(0, 2))


def last_share(profile: np.ndarray, last_steps: int) -> float:
    """``Σ_{t ≥ L−k} e_t / Σ_t e_t`` (0 for an all-zero profile)."""
    total = float(np.sum(profile))
    return float(np.sum(profile[-last_steps:]) / total) if total > 0 else 0.0


def audit_ranking(x: np.ndarray, poisoned: np.ndarray, last_steps: int = 2) -> dict:
    """Rank training samples by the share of their energy in the last ``k`` steps (the special-score analogue).

    The score of a sample u is ``Σ_{t ≥ L−k} ‖u_t‖² / Σ_t ‖u_t‖²`` — what an auditor sees, without the
    clean data; the highest scores come first.

    Arguments:
        x: the (poisoned) training inputs ``(n, L, inputs)``.
        poisoned: indices of the poisoned samples.
        last_steps: k.

    Returns:
        ``{"auc": …, "top_fraction": …, "median_rank": …}``: the ROC AUC of the score for poisoned against
        clean (1: every poison ranks above every clean sample; ties count ½), the fraction of the poisons
        among the top ``len(poisoned)`` ranks, and the poisons' median rank (1 = first).
    """
    energy = np.sum(np.asarray(x, dtype=np.float64) ** 2, axis=2)
    total = energy.sum(axis=1)
    score = np.divide(energy[:, -last_steps:].sum(axis=1), total, out=np.zeros_like(total), where=total > 0)
    flags = np.zeros(len(x), dtype=bool)
    flags[np.asarray(poisoned, dtype=int)] = True
    pos, neg = score[flags], score[~flags]
    auc = float(np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :]))) if len(pos) and len(
        neg) else float("nan")
    order = np.argsort(-score, kind="stable")
    ranks = np.empty(len(x), dtype=int)
    ranks[order] = np.arange(1, len(x) + 1)
    top = float(np.mean(flags[order[:flags.sum()]])) if flags.any() else float("nan")
    return {"auc": auc, "top_fraction": top, "median_rank": float(np.median(ranks[flags])) if flags.any() else None}
