"""Shared test configuration: deterministic Hypothesis runs (same examples on every CI run), and the
theory row's first poisoned state as a fixture."""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def row_state():
    """``row_state(precision_bits, index=0)``: the theory row's poisoned flow ``index`` at H = 7 as
    ``(problem, U, labels, anchors, z)`` in float64 (53) or longdouble (64), ``z`` its anchored start ``(1, D)``."""
    from ssmpoison.theory._construction import poisoned_training_set
    from ssmpoison.verify import row_model
    from ssmpoison.verify._anchored import anchor_index, to_anchored
    from ssmpoison.verify._theory_row import theory_row_problems

    def state(precision_bits, index=0):
        setting = row_model("theory").settings((7,))[0]
        ts = poisoned_training_set(setting.horizon)
        _, problem = theory_row_problems(setting, True)[index]
        dtype = np.float64 if precision_bits == 53 else np.longdouble
        U = np.array(ts.inputs, dtype=float).astype(dtype)
        y = np.array(ts.labels, dtype=float).astype(dtype)
        a0 = np.array([problem.a0], dtype=float).astype(dtype)
        r = anchor_index(a0)
        return problem, U, y, r, to_anchored(a0, r)

    return state
