"""Real SSM layers for the real-world experiment: S4D and LRU in PyTorch, and a small sequence classifier.

Both layers are linear time-invariant diagonal state space models with complex states, applied to
every channel of a sequence ``u_0 … u_{L-1}``:

* **S4D** (Gu et al., 2022): per channel h, state ``x_k = Ā x_{k-1} + B̄ u_k``, output
  ``y_k = 2 Re(C x_k) + D u_k`` with ``Ā = exp(Δ A)``, ``B̄ = (exp(Δ A) − 1)/A`` (zero-order hold,
  B = 1), ``A_n = −exp(a_n) + i ω_n``; the output is the causal convolution with the kernel
  ``K_l = 2 Re Σ_n C_n B̄_n Ā_n^l`` (computed from the parameters at every call, applied by FFT).
  S4D-Lin initialisation: ``A_n = −1/2 + iπn``, ``log Δ`` uniform in ``[log Δ_min, log Δ_max]``.
* **LRU** (Orvieto et al., 2023): states ``x_k = λ ⊙ x_{k-1} + γ ⊙ (B u_k)``, output
  ``y_k = Re(C x_k) + D ⊙ u_k``, with ``λ_n = exp(−(exp(ν_n) + ν_min) + i exp(θ_n))`` (exponents capped, :meth:`LRU.log_eigenvalues`) so that
  ``|λ_n| ≤ exp(−ν_min) < 1`` for every value of the parameters, and the normalisation
  ``γ_n = sqrt(1 − |λ_n|²)``; the states are the causal convolution of ``γ ⊙ B u`` with ``λ^l`` (FFT).

Both have a step-by-step recurrence (:meth:`S4D.recurrence`, :meth:`LRU.recurrence`), the
reference the convolutions are tested against. This module imports torch: import it only where
the optional extra ``ssmpoison[realworld]`` is needed.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["S4D", "LRU", "SequenceClassifier", "build_model", "MODEL_KINDS"]

#: the layer kinds :func:`build_model` knows
MODEL_KINDS = ("s4d", "lru")


def _causal_convolution(u: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """``y_k = Σ_{l=0}^{k} kernel_l u_{k-l}`` along the last axis, by FFT of length 2L (no wrap-around).

    Arguments:
        u: ``(..., L)`` real or complex.
        kernel: ``(..., L)`` broadcastable against ``u``; real or complex.

    Returns:
        ``(..., L)``, real when both are real.
    """
    L = u.shape[-1]
    if u.is_complex() or kernel.is_complex():
        return torch.fft.ifft(torch.fft.fft(u, 2 * L) * torch.fft.fft(kernel, 2 * L))[..., :L]
    return torch.fft.irfft(torch.fft.rfft(u, 2 * L) * torch.fft.rfft(kernel, 2 * L), 2 * L)[..., :L]


class S4D(nn.Module):
    """An S4D layer on ``channels`` independent channels, each a diagonal complex SSM of ``state_dim`` states.

    Arguments:
        channels: the number of channels H (each its own SSM).
        state_dim: the real state size N (even; N/2 complex states in conjugate pairs, hence ``2 Re``).
        dt_min, dt_max: the range of the initial step Δ (log-uniform).
        generator: the torch generator of the initialisation (``None``: torch's global one).

    Raises:
        ValueError: ``channels`` < 1, ``state_dim`` not a positive even integer, or not
            ``0 < dt_min <= dt_max``.
    """

    def __init__(self, channels: int, state_dim: int = 32, dt_min: float = 1e-3, dt_max: float = 1e-1,
                 generator: torch.Generator | None = None):
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        if state_dim < 2 or state_dim % 2:
            raise ValueError(f"state_dim must be a positive even integer, got {state_dim}")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"dt_min, dt_max must satisfy 0 < dt_min <= dt_max, got {dt_min}, {dt_max}")
        half = state_dim // 2
        u = torch.rand(channels, generator=generator)
        self.log_dt = nn.Parameter(u * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        self.log_a_real = nn.Parameter(torch.full((channels, half), math.log(0.5)))
        self.a_imag = nn.Parameter(math.pi * torch.arange(half, dtype=torch.float32).repeat(channels, 1))
        self.c = nn.Parameter(torch.randn(channels, half, 2, generator=generator) * math.sqrt(0.5))
        self.d = nn.Parameter(torch.randn(channels, generator=generator))

    def discretised(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The zero-order-hold discretisation: ``(Ā, B̄, C)``, each ``(H, N/2)`` complex."""
        dt = torch.exp(self.log_dt)
        a = -torch.exp(self.log_a_real) + 1j * self.a_imag
        dta = a * dt[:, None]
        a_bar = torch.exp(dta)
        b_bar = (a_bar - 1) / a
        return a_bar, b_bar, torch.view_as_complex(self.c)

    def kernel(self, length: int) -> torch.Tensor:
        """The convolution kernel ``K_l = 2 Re Σ_n C_n B̄_n Ā_n^l``, ``l = 0 … length-1``: ``(H, length)`` real."""
        dt = torch.exp(self.log_dt)
        a = -torch.exp(self.log_a_real) + 1j * self.a_imag
        dta = a * dt[:, None]
        _, b_bar, c = self.discretised()
        steps = torch.arange(length, dtype=self.log_dt.dtype, device=self.log_dt.device)
        powers = torch.exp(dta[:, :, None] * steps)  # Ā^l = exp(l Δ A)
        return 2 * torch.einsum("hn,hnl->hl", c * b_bar, powers).real

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """The layer's output on ``u``: ``(batch, L, H)`` → ``(batch, L, H)`` (convolution form)."""
        x = u.transpose(1, 2)
        y = _causal_convolution(x, self.kernel(x.shape[-1])) + self.d[:, None] * x
        return y.transpose(1, 2)

    def recurrence(self, u: torch.Tensor) -> torch.Tensor:
        """The same output by the step-by-step recurrence (the reference; slow): ``(batch, L, H)`` → ``(batch, L, H)``."""
        a_bar, b_bar, c = self.discretised()
        state = torch.zeros(u.shape[0], *a_bar.shape, dtype=a_bar.dtype)
        out = []
        for k in range(u.shape[1]):
            state = a_bar * state + b_bar * u[:, k, :, None]
            out.append(2 * (c * state).sum(-1).real + self.d * u[:, k])
        return torch.stack(out, dim=1)


class LRU(nn.Module):
    """A linear recurrent unit: a stable diagonal complex recurrence with γ normalisation, ``channels`` → ``channels``.

    Arguments:
        channels: input and output width H.
        state_dim: the number of complex states N.
        r_min, r_max: the initial moduli |λ| are drawn uniformly on the ring r_min ≤ |λ| ≤ r_max.
        max_phase: the initial phases are uniform in ``[0, max_phase]``.
        nu_min: the floor ν_min > 0 of −log|λ| (so ``|λ| ≤ exp(−nu_min) < 1`` in any precision).
        generator: the torch generator of the initialisation.

    Raises:
        ValueError: ``channels`` or ``state_dim`` < 1, not ``0 <= r_min < r_max < 1``, ``max_phase`` <= 0
            or ``nu_min`` <= 0.
    """

    def __init__(self, channels: int, state_dim: int = 32, r_min: float = 0.4, r_max: float = 0.99,
                 max_phase: float = math.pi, nu_min: float = 1e-4, generator: torch.Generator | None = None):
        super().__init__()
        if channels < 1 or state_dim < 1:
            raise ValueError(f"channels and state_dim must be >= 1, got {channels}, {state_dim}")
        if not 0 <= r_min < r_max < 1:
            raise ValueError(f"r_min, r_max must satisfy 0 <= r_min < r_max < 1, got {r_min}, {r_max}")
        if not max_phase > 0 or not nu_min > 0:
            raise ValueError(f"max_phase and nu_min must be > 0, got {max_phase}, {nu_min}")
        self.nu_min = float(nu_min)
        u1 = torch.rand(state_dim, generator=generator)
        u2 = torch.rand(state_dim, generator=generator)
        # |λ|² uniform on [r_min², r_max²]: ν = −log|λ| = −½ log(u (r_max² − r_min²) + r_min²)
        nu = -0.5 * torch.log(u1 * (r_max**2 - r_min**2) + r_min**2)
        self.nu_log = nn.Parameter(torch.log(torch.clamp(nu - nu_min, min=1e-6)))
        self.theta_log = nn.Parameter(torch.log(max_phase * u2 + 1e-6))
        scale_b = 1 / math.sqrt(2 * channels)
        self.b = nn.Parameter(torch.randn(state_dim, channels, 2, generator=generator) * scale_b)
        self.c = nn.Parameter(torch.randn(channels, state_dim, 2, generator=generator) / math.sqrt(state_dim))
        self.d = nn.Parameter(torch.randn(channels, generator=generator))

    def log_eigenvalues(self) -> torch.Tensor:
        """``log λ_n = −(min(exp(ν_n), 30) + ν_min) + i exp(min(θ_n, 20))``: ``(N,)`` complex, real part in
        [−30 − ν_min, −ν_min].

        The caps (|λ| ≥ e⁻³⁰, numerically 0 for a sequence of any useful length; a phase below e²⁰) keep λ
        finite when a large update sends ν_n or θ_n to infinity; they never bring |λ| to 1.
        """
        nu = torch.clamp(torch.exp(self.nu_log), max=30.0)
        return -(nu + self.nu_min) + 1j * torch.exp(torch.clamp(self.theta_log, max=20.0))

    def eigenvalues(self) -> torch.Tensor:
        """λ: ``(N,)`` complex, strictly inside the unit circle."""
        return torch.exp(self.log_eigenvalues())

    def gamma(self) -> torch.Tensor:
        """The normalisation ``γ_n = sqrt(1 − |λ_n|²)`` (> 0), from ``|λ_n|² = exp(2 Re log λ_n)``."""
        return torch.sqrt(-torch.expm1(2 * self.log_eigenvalues().real))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """The layer's output on ``u``: ``(batch, L, H)`` → ``(batch, L, H)`` (states by FFT convolution)."""
        length = u.shape[1]
        b = torch.view_as_complex(self.b)
        c = torch.view_as_complex(self.c)
        v = (u.to(b.dtype) @ b.T) * self.gamma()  # (batch, L, N)
        steps = torch.arange(length, dtype=self.nu_log.dtype, device=self.nu_log.device)
        powers = torch.exp(self.log_eigenvalues()[:, None] * steps)  # λ^l, (N, L)
        states = _causal_convolution(v.transpose(1, 2), powers).transpose(1, 2)  # (batch, L, N)
        return (states @ c.T).real + self.d * u

    def recurrence(self, u: torch.Tensor) -> torch.Tensor:
        """The same output by the step-by-step recurrence (the reference; slow)."""
        lam, gamma = self.eigenvalues(), self.gamma()
        b = torch.view_as_complex(self.b)
        c = torch.view_as_complex(self.c)
        state = torch.zeros(u.shape[0], lam.shape[0], dtype=lam.dtype)
        out = []
        for k in range(u.shape[1]):
            state = lam * state + gamma * (u[:, k].to(b.dtype) @ b.T)
            out.append((state @ c.T).real + self.d * u[:, k])
        return torch.stack(out, dim=1)


class SequenceClassifier(nn.Module):
    """Encoder, SSM blocks, pooling and a linear decoder: ``(batch, L, inputs)`` → ``(batch, classes)`` logits.

    Each block is ``x ← LayerNorm(x + W GELU(SSM(x)))`` (W a learnt ``width × width`` mixing); the
    decoder reads the mean over time (``pooling="mean"``) or the last step (``"last"``).

    Arguments:
        kind: ``"s4d"`` or ``"lru"``.
        inputs: input channels per time step.
        classes: number of classes.
        width: the model width H.
        state_dim: each layer's state size.
        layers: number of SSM blocks (1 or more).
        pooling: ``"mean"`` or ``"last"``.
        generator: the torch generator of the SSM layers' initialisation.

    Raises:
        ValueError: an unknown ``kind`` or ``pooling``, or a size < 1.
    """

    def __init__(self, kind: str, inputs: int, classes: int, width: int = 32, state_dim: int = 32, layers: int = 1,
                 pooling: str = "mean", generator: torch.Generator | None = None):
        super().__init__()
        if kind not in MODEL_KINDS:
            raise ValueError(f"model must be one of {', '.join(MODEL_KINDS)}, got {kind!r}")
        if pooling not in ("mean", "last"):
            raise ValueError(f"pooling must be 'mean' or 'last', got {pooling!r}")
        if min(inputs, classes, width, state_dim, layers) < 1:
            raise ValueError("inputs, classes, width, state_dim and layers must be >= 1")
        self.kind, self.pooling = kind, pooling
        self.encoder = nn.Linear(inputs, width)
        make = (lambda: S4D(width, state_dim, generator=generator)) if kind == "s4d" else (
            lambda: LRU(width, state_dim, generator=generator))
        self.ssms = nn.ModuleList(make() for _ in range(layers))
        self.mixers = nn.ModuleList(nn.Linear(width, width) for _ in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(layers))
        self.decoder = nn.Linear(width, classes)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """Logits of ``u`` (``(batch, L, inputs)``)."""
        x = self.encoder(u)
        for ssm, mixer, norm in zip(self.ssms, self.mixers, self.norms):
            x = norm(x + mixer(nn.functional.gelu(ssm(x))))
        pooled = x.mean(dim=1) if self.pooling == "mean" else x[:, -1]
        return self.decoder(pooled)


def build_model(kind: str, inputs: int, classes: int, seed: int, **sizes) -> SequenceClassifier:
    """A :class:`SequenceClassifier` initialised from ``seed`` alone (torch's global generator is left untouched).

    Arguments:
        kind: ``"s4d"`` or ``"lru"``.
        inputs, classes: input channels and classes.
        seed: the initialisation's seed (integer >= 0).
        sizes: ``width``, ``state_dim``, ``layers``, ``pooling`` of :class:`SequenceClassifier`.

    Returns:
        The model, float32, in training mode.
    """
    generator = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed) + 1)  # nn.Linear / LayerNorm draw from the global generator
        return SequenceClassifier(kind, inputs, classes, generator=generator, **sizes)
