"""The real-world data set: scikit-learn's handwritten digits read pixel by pixel as sequences.

``sklearn.datasets.load_digits`` ships 1797 images of 8 × 8 pixels with values 0 … 16 inside the
scikit-learn package (nothing is downloaded). Each image becomes a sequence of L = 64 time steps,
one input channel, ``u_k = pixel_k / 16 ∈ [0, 1]`` in row-major order (so the last two steps are
the two bottom-right pixels). The train/test split is fixed: a stratified split drawn once from
seed 0, whatever the experiment's seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Digits", "load_digit_sequences", "require_realworld_extra", "INSTALL_HINT"]

#: the one-line hint when the optional extra is missing
INSTALL_HINT = "needs the optional extra: pip install 'ssmpoison[realworld]'"


def require_realworld_extra() -> None:
    """Check that torch and scikit-learn import.

    Raises:
        ValueError: one of them is missing; the message is the one-line install hint.
    """
    try:
        import torch  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError as exc:
        raise ValueError(f"{INSTALL_HINT} ({exc})") from None


@dataclass(frozen=True)
class Digits:
    """The digits as sequences, split once.

    Attributes:
        x_train, x_test: ``(n, L, 1)`` float arrays in [0, 1].
        y_train, y_test: ``(n,)`` integer labels 0 … 9.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def length(self) -> int:
        """The sequence length L."""
        return self.x_train.shape[1]

    @property
    def classes(self) -> int:
        """The number of classes."""
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def load_digit_sequences(test_fraction: float = 0.25, limit: int | None = None) -> Digits:
    """The digits as 64-step sequences with the fixed stratified split (seed 0).

    Arguments:
        test_fraction: the share of each class held out for the test set (0 < f < 1).
        limit: keep only the first ``limit`` images (before the split; for tiny test runs), or all.

    Returns:
        A :class:`Digits`.

    Raises:
        ValueError: ``test_fraction`` outside (0, 1) or ``limit`` < 20.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if limit is not None and limit < 20:
        raise ValueError(f"limit must be >= 20, got {limit}")
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    x = (images / 16.0).astype(np.float32)[:, :, None]
    y = labels.astype(np.int64)
    rng = np.random.default_rng(0)
    test = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        chosen = rng.choice(members, size=max(1, int(round(test_fraction * len(members)))), replace=False)
        test[chosen] = True
    return Digits(x[~test], y[~test], x[test], y[test])
