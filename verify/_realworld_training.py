"""Training and evaluation of the real-world SSM classifiers (PyTorch, CPU, deterministic for a seed).

Training minimises the mean cross-entropy by Adam on shuffled mini-batches; the model's
initialisation and the batch order are drawn from the seed alone, torch runs with one thread
(faster than two for these small tensors, and reproducible) and deterministic algorithms, so
the same seed and data give the same model bit for bit on one machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ssmpoison.verify._realworld_layers import SequenceClassifier, build_model

__all__ = ["TrainConfig", "train_classifier", "accuracy", "predict", "deterministic_torch"]


def deterministic_torch() -> None:
    """One thread and deterministic algorithms for every torch computation of the process from now on."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


@dataclass(frozen=True)
class TrainConfig:
    """How a classifier is built and trained.

    Attributes:
        width: model width H.
        state_dim: each SSM layer's state size.
        layers: number of SSM blocks.
        pooling: ``"mean"`` or ``"last"`` (what the decoder reads).
        epochs: passes over the training set.
        batch_size: mini-batch size.
        learning_rate: Adam's step size.
    """

    width: int = 32
    state_dim: int = 32
    layers: int = 1
    pooling: str = "mean"
    epochs: int = 12
    batch_size: int = 64
    learning_rate: float = 5e-3

    def __post_init__(self):
        for name in ("width", "state_dim", "layers", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not (isinstance(self.learning_rate, float) and 0 < self.learning_rate < 1):
            raise ValueError(f"learning_rate must be a real in (0, 1), got {self.learning_rate!r}")
        if self.pooling not in ("mean", "last"):
            raise ValueError(f"pooling must be 'mean' or 'last', got {self.pooling!r}")

    def sizes(self) -> dict:
        """The model sizes, as :func:`build_model` takes them."""
        return dict(width=self.width, state_dim=self.state_dim, layers=self.layers, pooling=self.pooling)

    def to_json(self) -> dict:
        """The configuration as a JSON object."""
        return dict(self.__dict__)


def train_classifier(kind: str, x: np.ndarray, y: np.ndarray, classes: int, seed: int, config: TrainConfig,
                     should_stop=None) -> tuple[SequenceClassifier, bool]:
    """Train a classifier from scratch on ``(x, y)``.

    Arguments:
        kind: ``"s4d"`` or ``"lru"``.
        x: ``(n, L, inputs)`` inputs; y: ``(n,)`` labels.
        classes: number of classes.
        seed: the seed of the initialisation and of the batch order.
        config: a :class:`TrainConfig`.
        should_stop: optional callable checked after every epoch (e.g. the wall-clock budget); training
            ends early when it returns true.

    Returns:
        ``(model, complete)``: the trained model in evaluation mode and whether every epoch ran.
    """
    model = build_model(kind, x.shape[-1], classes, seed, **config.sizes())
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    xs, ys = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y)
    order = torch.Generator().manual_seed(int(seed) + 2)
    complete = True
    model.train()
    for _ in range(config.epochs):
        if should_stop is not None and should_stop():
            complete = False
            break
        permutation = torch.randperm(len(xs), generator=order)
        for start in range(0, len(xs), config.batch_size):
            batch = permutation[start:start + config.batch_size]
            loss = torch.nn.functional.cross_entropy(model(xs[batch]), ys[batch])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    model.eval()
    return model, complete


@torch.no_grad()
def predict(model: SequenceClassifier, x: np.ndarray) -> np.ndarray:
    """Class probabilities of ``x`` (``(n, L, inputs)``): ``(n, classes)`` float64 array."""
    logits = model(torch.as_tensor(x, dtype=torch.float32))
    return torch.softmax(logits.double(), dim=-1).numpy()


def accuracy(model: SequenceClassifier, x: np.ndarray, y: np.ndarray) -> float:
    """The fraction of ``x`` classified as ``y``."""
    return float(np.mean(predict(model, x).argmax(axis=1) == y))
