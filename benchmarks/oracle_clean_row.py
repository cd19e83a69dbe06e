"""The theory row's 8 clean runs through the exact oracle (note 00 §6, §8).

For each run (H = 7: D = 10, scale 0.001, k = 5, seeds 242 243 244 246; H = 9: D = 20,
scale 0.005, k = 10, seeds 342 344 345 346) this computes, with B = C = 1:

* the limit of the clean gradient flow with :func:`ssmpoison.theory._oracle.clean_limit` at 200 and
  400 bits, and its extrapolation error over J = 20 (``K_j = sum_i a_i^j``, ``K*_0 = D``,
  ``K*_j = 1``) in the same precision; the digits of agreement of the two;
* the time at which the loss reaches 1e-30 (:func:`ssmpoison.theory._oracle.clean_convergence_time`,
  200 bits);
* the wall time of each oracle call;

then the mean error per H next to the published means. Run from the repository root:
``python benchmarks/oracle_clean_row.py``.
"""

from __future__ import annotations

import time

import mpmath

from ssmpoison.theory import extrapolation_error, paper_initialisation
from ssmpoison.verify import row_model
from ssmpoison.theory import clean_convergence_time, clean_limit

LOSS_THRESHOLD = 1e-30
TIME_BITS = 200


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


def error_at(a0, horizon, bits, length):
    """Oracle limit at ``bits`` and its extrapolation error in ``bits``-bit arithmetic."""
    limit, wall = timed(clean_limit, a0, horizon, precision_bits=bits)
    ones = [1] * len(a0)
    with mpmath.workprec(bits):
        return extrapolation_error(limit, ones, ones, len(a0), length), wall


def digits_of_agreement(x, reference, bits):
    """``-log10 |x/reference - 1|``, capped at the precision of the reference."""
    with mpmath.workprec(bits):
        cap = bits * mpmath.log10(2)
        gap = abs(x - reference) / abs(reference)
        return float(cap if gap == 0 else min(cap, -mpmath.log10(gap)))


def main() -> None:
    header = (
        f"{'H':>2} {'seed':>4} {'error (400 bits)':>22} {'digits 200v400':>14} "
        f"{'t(loss=1e-30)':>14} {'wall 200b':>9} {'wall 400b':>9} {'wall time':>9}"
    )
    print(header)
    print("-" * len(header))
    for row in row_model("theory").settings():
        H, J = row.horizon, row.extrapolation_length
        errors = []
        for seed in row.seeds:
            a0 = paper_initialisation(seed, row.state_dim, row.init_scale, row.gap_exponent)
            e200, w200 = error_at(a0, H, 200, J)
            e400, w400 = error_at(a0, H, 400, J)
            t, wt = timed(clean_convergence_time, a0, H, LOSS_THRESHOLD, precision_bits=TIME_BITS)
            errors.append(e400)
            print(
                f"{H:>2} {seed:>4} {mpmath.nstr(e400, 17):>22} {digits_of_agreement(e200, e400, 400):>14.1f} "
                f"{float(t):>14.6e} {w200:>8.4f}s {w400:>8.4f}s {wt:>8.2f}s"
            )
        with mpmath.workprec(400):
            mean = mpmath.fsum(errors) / len(errors)
        published = ", ".join(
            f"{source} {value:.3g} (ratio {float(mean) / value:.3f})" for source, value in row.published(False).items()
        )
        print(f"   mean H={H}: {mpmath.nstr(mean, 6)}   published: {published}")
        print()


if __name__ == "__main__":
    main()
