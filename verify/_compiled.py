r"""The compiled engine of exponential collocation in anchored coordinates (float64, longdouble, multiprecision).

:mod:`ssmpoison.verify._expcoll` spends its time, per step, on the weights
``W_{r,k}(x_p) = int_0^{x_p} e^{-(x_p - xi) z_r} l_k(xi) d xi`` of the frozen rates
``z_r = h mu_r`` and, per Picard sweep, on the right-hand side in anchored coordinates
(:mod:`ssmpoison.verify._anchored`) at the ``M`` stages and the forcing
``g = f - L (y - y_n)`` with its components ``q_r . g`` along the frozen directions. The
reference implementation does both with small NumPy (and gmpy2) operations, where the
interpreter, not the arithmetic, is the cost. This module compiles them with heyoka
(``heyoka.cfunc``, an optional dependency: the extra ``fast``) into two kernels:

* **the stage kernel** of a problem shape ``(D, H, N, R)`` and working type: for one stage
  ``z`` (the anchor first), with parameters ``y_n``, ``kappa``, the inputs ``U``, the labels,
  ``mu``, ``P``, ``Q`` (``L = -sum_r mu_r p_r q_r^T``), it returns ``G = f(z) + sum_r mu_r p_r
  (q_r . (z - y_n))`` and ``VG_r = q_r . G``. ``f`` is the formula of
  :func:`ssmpoison.verify._anchored.neg_grad_anchored`: ``a_r = z_r``, ``a_i = z_r + z_i``,
  ``K_j = kappa sum_i a_i^j``, the residuals ``delta_n = y_n - sum_j K_j u^(n)_{H-1-j}``, the
  Proposition's ``gamma^(l) = 2(l+1)/N sum_n delta_n u^(n)_{H-2-l}``, then
  ``dz_r/dt = kappa phi(a_r)`` (Horner) and ``dz_i/dt = kappa z_i sum_{l>=1} gamma^(l)
  h_{l-1}(a_i, a_r)`` (synthetic division by ``x - a_r``, then Horner in ``a_i``). The ``M``
  stages are one call (heyoka's multiple evaluation); the sums over the stages
  (``sum_k A_k(x_p) G_k`` and the stiff corrections) stay in NumPy.
* **the weight kernel** of a node count ``M``: for one rate ``z`` the ``(M+1) x M`` weights by the
  recurrences of :func:`ssmpoison.verify._expcoll._monomial_weights` (forward from
  ``I_0 = -expm1(-x z)/z`` for ``z >= M``, backward from a fixed start ``J`` for ``z < M``,
  chosen so the start's error is damped below ``2^-72``), then ``W = I Lc^T``. It computes in
  longdouble whatever the working type, with the nodes' powers and the Lagrange coefficients
  rounded once from the reference's guarded values: the monomial basis loses
  ``log2 max_p sum_{j,k} |Lc_kj I_j(x_p)| / max_k |W_pk|`` bits to cancellation (its size for the
  node counts in use is in note 02 §8), so a weight differs from the reference's (rounded once
  from ``precision_bits + 128`` bits) by that many bits less than longdouble's 64, relative to
  the largest weight of its row.

**Multiprecision** (any other precision ``P``, where the reference computes in ``gmpy2.mpfr``; only when
asked for: ``FlowOptions(compiled_multiprecision=True)``, which the certification policy's ``P`` path
sets): the engine computes in heyoka's ``real`` of ``P`` bits, NumPy arrays of which the integrator then
carries as its state (:class:`_RealNumbers` converts exactly from and to ``gmpy2.mpfr`` for the
right-hand side's first call, ``observe`` and ``stop``). Three more kernels:

* **the sweep kernel** (:func:`_sweep_kernel`): a whole sweep, all ``M`` stages and the sums over them,
  the new values at the nodes and the end point and the sweep's change ``max |new - z| / (atol + rtol
  |new|)`` in one call, written into preallocated arrays (NumPy does not free the limbs of a ``real``
  array: every temporary would stay allocated until the process ends);
* **the Jacobian kernel** (:func:`_jacobian_kernel`, float64): ``dG/dz`` at the stages, from which the
  Picard map's Jacobian ``J`` gives Newton corrections ``d = r + J d`` (``r`` the last sweep's residual):
  while a sweep changes the stages by more than ``10^4`` tolerances the next one is taken at ``z + d``,
  so that it gains float64's relative accuracy instead of the map's contraction factor; the last
  sweeps are plain Picard sweeps. The fixed point and the convergence rule are the reference's;
* **the real weight kernels** (:func:`_real_weight_kernel`): the recurrences above in ``real`` of
  ``P + 64`` bits (forward for ``z >= M``; backward from the start that damps ``2^-(P+64)`` for
  ``z < 1`` or ``z < M``), rounded once to ``P`` bits: at most the basis's cancellation is lost from the
  64 guard bits, so a weight is the correctly rounded value or one unit in the last place from it,
  as the reference's (from ``P + 128`` bits).

Every kernel rounds differently from the reference (heyoka orders the operations its own way), so
a compiled run differs from a reference run in the last bits of the state: the certified digits
are the same (the test-suite holds the two paths to each other's certified digits), uncertified
figures at the rounding level such as the final training loss are not.

Caching: a kernel is compiled once per process and key (an in-memory table), and its compiled
object is kept on disk (pickled, in ``$SSMPOISON_CACHE_DIR`` or ``~/.cache/ssmpoison``, keyed by
the heyoka version, this module's source and the key; not written where the directory cannot be
made) so a later process loads it instead of compiling. The environment variable
``SSMPOISON_ENGINE=reference`` forces the reference path everywhere (as does
``FlowOptions(compiled=False)`` for one flow).
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import pickle
import sys
import tempfile
import time
from fractions import Fraction

import numpy as np

__all__ = ["engine_available", "anchored_engine", "AnchoredEngine", "compile_seconds"]

#: Seconds spent compiling (or loading from the disk cache) kernels in this process: ``{"compile": s, "load": s}``.
compile_seconds = {"compile": 0.0, "load": 0.0}

_ENV_ENGINE = "SSMPOISON_ENGINE"
_ENV_CACHE = "SSMPOISON_CACHE_DIR"
_BACKWARD_DAMPING_BITS = 72


@functools.lru_cache(maxsize=1)
def _heyoka():
    """heyoka, imported without SymPy when SymPy is not loaded yet.

    heyoka's extension module imports SymPy, when it can, for its SymPy conversions (which this
    module does not use); that import is most of heyoka's start-up. A ``None`` entry in
    ``sys.modules`` makes it fail for the duration of heyoka's import (Python's documented way
    to block an import), and the entry is removed afterwards, so a later ``import sympy`` works.

    heyoka's own thread pool is set to one thread: a kernel's multiple evaluation (the M stages) is
    too small to gain from a second thread, whose waiting costs as much CPU as the call, and the
    commands run their parallel work in processes (one per CPU).
    """
    blocked = "sympy" not in sys.modules
    if blocked:
        sys.modules["sympy"] = None
    try:
        import heyoka
    except ImportError:
        return None
    finally:
        if blocked and sys.modules.get("sympy", 0) is None:
            del sys.modules["sympy"]
    heyoka.set_nthreads(1)
    return heyoka


def engine_available(precision_bits: int, multiprecision: bool = False) -> bool:
    """Whether the compiled engine runs at ``precision_bits``.

    The multiprecision engine stops at :data:`MULTIPRECISION_MAX_BITS`: NumPy does not free the limbs
    of heyoka ``real`` arrays (heyoka's NumPy memory handler does not take effect with this NumPy), so
    a process keeps the memory of every temporary ``real`` array until it exits, in proportion to the
    work; the bound keeps that to the scale of the 128-bit row (its runs at 128 bits and its re-runs
    at 160), and longer runs at more bits take the reference path, whose memory is constant.

    Arguments:
        precision_bits: the working precision.
        multiprecision: also run at the precisions whose reference type is ``gmpy2.mpfr`` (every
            precision but 53 and x86 longdouble's 64) up to :data:`MULTIPRECISION_MAX_BITS`, in
            heyoka's ``real`` of that precision.

    Returns:
        ``True`` for 53 bits (float64) and 64 bits (x86 longdouble with a 64-bit mantissa), and with
        ``multiprecision`` for the other precisions up to :data:`MULTIPRECISION_MAX_BITS`, when heyoka
        imports and ``SSMPOISON_ENGINE`` is not ``reference``; ``False`` otherwise (the reference path).
    """
    if os.environ.get(_ENV_ENGINE, "").strip().lower() == "reference":
        return False
    if not _fixed_width(precision_bits) and not (multiprecision and precision_bits <= MULTIPRECISION_MAX_BITS):
        return False
    return _heyoka() is not None


#: The most bits at which the multiprecision engine runs (:func:`engine_available`).
MULTIPRECISION_MAX_BITS = 192


def _fixed_width(precision_bits: int) -> bool:
    """Whether the working type of ``precision_bits`` is a NumPy float (float64, x86 longdouble)."""
    return precision_bits == 53 or (precision_bits == 64 and np.finfo(np.longdouble).nmant == 63)


def _cache_dir() -> str | None:
    path = os.environ.get(_ENV_CACHE) or os.path.join(os.path.expanduser("~"), ".cache", "ssmpoison")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return None
    return path if os.access(path, os.W_OK) else None


@functools.lru_cache(maxsize=1)
def _source_digest() -> str:
    with open(__file__, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()[:16]


_KERNELS: dict = {}


def _kernel(key: tuple, build):
    """The compiled kernel of ``key``: from this process's table, else the disk cache, else ``build()`` (then stored)."""
    cf = _KERNELS.get(key)
    if cf is not None:
        return cf
    hy = _heyoka()
    directory = _cache_dir()
    path = None
    if directory is not None:
        name = hashlib.sha256(repr((hy.__version__, _source_digest(), key)).encode()).hexdigest()[:32]
        path = os.path.join(directory, f"kernel-{name}.pickle")
        start = time.perf_counter()
        try:
            with open(path, "rb") as fh:
                cf = pickle.load(fh)
        except Exception:  # absent, truncated or from another heyoka: compile afresh
            cf = None
        if cf is not None:
            compile_seconds["load"] += time.perf_counter() - start
    if cf is None:
        start = time.perf_counter()
        cf = build()
        compile_seconds["compile"] += time.perf_counter() - start
        if path is not None:
            try:
                fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
                with os.fdopen(fd, "wb") as fh:
                    pickle.dump(cf, fh)
                os.replace(tmp, path)
            except OSError:
                pass
    _KERNELS[key] = cf
    return cf


def _fp_type(precision_bits: int):
    return np.float64 if precision_bits == 53 else np.longdouble


def _cfunc(outputs, variables, precision_bits: int):
    """``heyoka.cfunc`` of ``outputs`` in the working type of ``precision_bits`` (float64, longdouble, or
    ``real`` of that precision, compiled in compact mode: its large expressions compile in a fraction of
    the time, and multiprecision arithmetic, not the code layout, is the cost)."""
    hy = _heyoka()
    if _fixed_width(precision_bits):
        return hy.cfunc(outputs, variables, fp_type=_fp_type(precision_bits))
    return hy.cfunc(outputs, variables, fp_type=hy.real, prec=precision_bits, compact_mode=True)


def _stage_expressions(hy, z, yn, kappa, U, labels, mu, P, Q, rational):
    """The forcing ``G = f(z) + sum_r mu_r p_r (q_r . (z - y_n))`` and ``VG_r = q_r . G`` at one stage
    ``z`` (anchor first) as heyoka expressions (module docstring, the stage kernel); ``rational(q)`` is the
    constant of a :class:`~fractions.Fraction` in the kernel's type."""
    D, N, H, R = len(z), len(U), len(U[0]), len(mu)
    a = [z[0]] + [z[0] + z[i] for i in range(1, D)]
    powers = []
    for i in range(D):
        row = [None, a[i]]
        for _ in range(2, H):
            row.append(row[-1] * a[i])
        powers.append(row)
    K = [kappa * float(D)] + [kappa * hy.sum([powers[i][j] for i in range(D)]) for j in range(1, H)]
    delta = [labels[n] - hy.sum([K[j] * U[n][H - 1 - j] for j in range(H)]) for n in range(N)]
    L = H - 1
    # 2(l+1)/N as a constant of the working type (heyoka folds a division by a constant into a product
    # with its reciprocal in the constant's type: a float constant would cost float64 rounding in longdouble)
    gam = [hy.sum([delta[n] * U[n][H - 2 - l] for n in range(N)]) * rational(Fraction(2 * (l + 1), N)) for l in range(L)]
    if L == 0:
        F = [0.0 * z[0]] * D
    else:
        phi = gam[L - 1]
        for l in range(L - 2, -1, -1):
            phi = phi * a[0] + gam[l]
        F = [kappa * phi]
        coeffs = [None] * L  # the synthetic division of phi by x - a_r
        coeffs[L - 1] = gam[L - 1]
        for l in range(L - 2, 0, -1):
            coeffs[l] = coeffs[l + 1] * a[0] + gam[l]
        for i in range(1, D):
            if L < 2:
                F.append(0.0 * z[i])
                continue
            q = coeffs[L - 1]
            for l in range(L - 2, 0, -1):
                q = q * a[i] + coeffs[l]
            F.append(kappa * (z[i] * q))
    QS = [hy.sum([Q[r][i] * (z[i] - yn[i]) for i in range(D)]) for r in range(R)]
    G = [F[i] + hy.sum([(mu[r] * QS[r]) * P[r][i] for r in range(R)]) for i in range(D)]
    VG = [hy.sum([Q[r][i] * G[i] for i in range(D)]) for r in range(R)]
    return G, VG


def _stage_parameters(hy, D: int, H: int, N: int, R: int):
    """The stage's parameters ``y_n, kappa, U, labels, mu, P, Q`` as heyoka parameters in the order of
    :meth:`AnchoredEngine._parameters`, and the next free parameter index."""
    count = iter(range(10**9))

    def par():
        return hy.par[next(count)]

    yn = [par() for _ in range(D)]
    kappa = par()
    U = [[par() for _ in range(H)] for _ in range(N)]
    labels = [par() for _ in range(N)]
    mu = [par() for _ in range(R)]
    P = [[par() for _ in range(D)] for _ in range(R)]
    Q = [[par() for _ in range(D)] for _ in range(R)]
    return (yn, kappa, U, labels, mu, P, Q), next(count)


def _stage_kernel(D: int, H: int, N: int, R: int, precision_bits: int):
    """The stage kernel (module docstring) of the shape ``(D, H, N, R)``; parameters in the order of
    :meth:`AnchoredEngine._parameters`."""

    def build():
        hy = _heyoka()
        z = [hy.expression(f"z_{i}") for i in range(D)]
        pars, _ = _stage_parameters(hy, D, H, N, R)
        G, VG = _stage_expressions(hy, z, *pars, _constant)
        return hy.cfunc(G + VG, z, fp_type=_fp_type(precision_bits))

    return _kernel(("stage", D, H, N, R, precision_bits), build)


def _sweep_kernel(D: int, H: int, N: int, R: int, M: int, precision_bits: int):
    """The sweep kernel of a multiprecision engine: one whole Picard sweep of ``M`` stages in heyoka's
    ``real`` of ``precision_bits`` bits, with the sweep's change measured.

    Variables: stages ``x_{m,i}`` and corrections ``d_{m,i}`` (anchor first), ``m < M``, ``i < D``; the sweep
    is taken at ``z = x + d``. Parameters: those of the stage kernel, then ``W_{r,k}(x_p) - A_k(x_p)``
    (``R (M+1) M``), ``A_k(x_p)`` (``(M+1) M``), ``h``, ``atol`` and ``rtol``. With the increments
    ``incr_p = h (sum_k A_k(x_p) G_k + sum_r p_r sum_k (W_{r,k}(x_p) - A_k(x_p)) VG_{k,r})``, the outputs
    are: ``z`` (``M D``), the new values ``y_n + incr_p`` at the ``M`` nodes and the end point
    (``(M+1) D``), the end point's increment (``D``), ``G`` (``M D``), ``VG`` (``M R``), the residuals
    ``new_{m,i} - z_{m,i}`` (``M D``), the change ``max_{m,i} |new_{m,i} - z_{m,i}| / (atol + rtol
    |new_{m,i}|)`` and the sum of the new values (finite exactly when all of them are).
    """

    def build():
        hy = _heyoka()
        x = [[hy.expression(f"x_{m}_{i}") for i in range(D)] for m in range(M)]
        dx = [[hy.expression(f"d_{m}_{i}") for i in range(D)] for m in range(M)]
        z = [[x[m][i] + dx[m][i] for i in range(D)] for m in range(M)]
        pars, first = _stage_parameters(hy, D, H, N, R)
        yn, P = pars[0], pars[5]
        count = iter(range(first, 10**9))
        WmA = [[[hy.par[next(count)] for _ in range(M)] for _ in range(M + 1)] for _ in range(R)]
        A = [[hy.par[next(count)] for _ in range(M)] for _ in range(M + 1)]
        h, atol, rtol = (hy.par[next(count)] for _ in range(3))

        def rational(q):
            return _real_constant(q, precision_bits)

        def absolute(e):
            return hy.select(hy.gt(e, 0.0), e, -e)

        stages = [_stage_expressions(hy, zm, *pars, rational) for zm in z]
        G = [g for g, _ in stages]
        VG = [vg for _, vg in stages]
        new, end_incr, ratios, residual = [], [], [], []
        for p in range(M + 1):
            corr = [hy.sum([WmA[r][p][k] * VG[k][r] for k in range(M)]) for r in range(R)]
            for i in range(D):
                incr = h * (hy.sum([A[p][k] * G[k][i] for k in range(M)]) + hy.sum([P[r][i] * corr[r] for r in range(R)]))
                value = yn[i] + incr
                new.append(value)
                if p == M:
                    end_incr.append(incr)
                else:
                    residual.append(value - z[p][i])
                    ratios.append(absolute(residual[-1]) / (atol + rtol * absolute(value)))
        change = ratios[0]
        for r in ratios[1:]:
            change = hy.select(hy.gt(r, change), r, change)
        outputs = ([v for row in z for v in row] + new + end_incr + [g for row in G for g in row] + [v for row in VG for v in row]
                   + residual + [change, hy.sum(new)])
        return _cfunc(outputs, [v for row in x for v in row] + [v for row in dx for v in row], precision_bits)

    return _kernel(("sweep", D, H, N, R, M, precision_bits), build)


def _jacobian_kernel(D: int, H: int, N: int, R: int):
    """The Jacobian ``dG_i/dz_j`` of the forcing at one stage (anchor first), in float64: ``D^2`` outputs
    (row-major), the stage kernel's variables and parameters. A multiprecision engine's Newton
    corrections use it (:class:`_RealSweeps`)."""

    def build():
        hy = _heyoka()
        z = [hy.expression(f"z_{i}") for i in range(D)]
        pars, _ = _stage_parameters(hy, D, H, N, R)
        G, _ = _stage_expressions(hy, z, *pars, _constant)
        outputs = [hy.diff(G[i], z[j]) for i in range(D) for j in range(D)]
        return hy.cfunc(outputs, z, fp_type=np.float64, compact_mode=True)

    return _kernel(("jacobian", D, H, N, R), build)


def _synthetic_division(hy, coeffs, anchor):
    """``b_l`` with ``P(x) - P(a_r) = (x - a_r) sum_{l>=1} b_l x^(l-1)`` for ``P = sum_l coeffs_l x^l`` (``b_0`` unused)."""
    L = len(coeffs)
    b = [None] * L
    b[L - 1] = coeffs[L - 1]
    for l in range(L - 2, 0, -1):
        b[l] = b[l + 1] * anchor + coeffs[l]
    return b


def _horner(b, x, low: int):
    """``sum_{l >= low} b_l x^(l - low)`` by Horner's scheme."""
    q = b[-1]
    for l in range(len(b) - 2, low - 1, -1):
        q = q * x + b[l]
    return q


def _linear_kernel(D: int, H: int, N: int, precision_bits: int):
    """The kernel of the frozen stiff part's rows at one state ``z`` (anchor first): the output gradients
    ``g_n`` (``G[n, i] = kappa sum_l (l+1) a_i^l u^(n)_{H-2-l}``), their images ``T^{-1} g_n`` (the anchor's
    entry ``G[n, r]``, the others ``kappa z_i (p_n(a_i) - p_n(a_r)) / (a_i - a_r)`` by synthetic division)
    and ``T^T g_n`` (the anchor's entry ``sum_i G[n, i]``): ``3 N D`` outputs, parameters ``kappa`` and ``U``."""

    def build():
        hy = _heyoka()
        z = [hy.expression(f"z_{i}") for i in range(D)]
        kappa = hy.par[0]
        U = [[hy.par[1 + n * (H - 1) + j] for j in range(H - 1)] for n in range(N)]  # u^(n)_{H-1} does not enter
        a = [z[0]] + [z[0] + z[i] for i in range(1, D)]
        G, Pn, Qn = [], [], []
        for n in range(N):
            coeffs = [U[n][H - 2 - l] * float(l + 1) for l in range(H - 1)]  # p_n' coefficients
            if not coeffs:
                coeffs = [0.0 * z[0]]
            row = [kappa * _horner(coeffs, a[i], 0) for i in range(D)]
            if len(coeffs) >= 2:
                b = _synthetic_division(hy, coeffs, a[0])
                gaps = [kappa * (z[i] * _horner(b, a[i], 1)) for i in range(1, D)]
            else:
                gaps = [0.0 * z[i] for i in range(1, D)]
            G.extend(row)
            Pn.extend([row[0]] + gaps)
            Qn.extend([hy.sum(row)] + row[1:])
        return _cfunc(G + Pn + Qn, z, precision_bits)

    return _kernel(("linear", D, H, N, precision_bits), build)


def _longdouble_fraction(q: Fraction) -> np.longdouble:
    """The rational ``q`` rounded once to longdouble (a division of two exact longdouble integers)."""
    return np.longdouble(q.numerator) / np.longdouble(q.denominator)


def _constant(q: Fraction):
    """The rational ``q`` as a heyoka constant rounded once to longdouble (to float64 in a float64 kernel: twice)."""
    return _heyoka().expression(_longdouble_fraction(q))


@functools.lru_cache(maxsize=32)
def _node_powers(M: int, tables_bits: int, J: int):
    """The weight recurrences' tables of ``M`` nodes at ``tables_bits`` bits (``gmpy2.mpfr``): the powers
    ``x_p^j`` (``j <= J``) of the points ``x_p`` (the nodes and 1) and the Lagrange monomial coefficients
    ``Lc[k][j]``, from the reference's guarded tables."""
    import gmpy2

    from ssmpoison.verify._expcoll import _gmpy_tables

    points, Lc, _ = _gmpy_tables(M, tables_bits)
    with gmpy2.context(precision=tables_bits):
        return [[x**j for j in range(J + 1)] for x in points], Lc


def _backward_start(M: int, damping_bits: int = _BACKWARD_DAMPING_BITS, bound: float | None = None) -> int:
    """``J`` with ``prod_{j=M+1}^{J} b / j <= 2^-damping_bits`` (72 unless given; ``b = bound``, ``M`` unless
    given): the backward recurrence's start for every ``z < b``."""
    b = M if bound is None else bound
    J, damp = M, 0.0
    while damp > -damping_bits * math.log(2):
        J += 1
        damp += math.log(b / J)
    return J


def _weight_columns(hy, z, x, powers, const, reciprocal, M: int, start: int | None) -> list:
    """``[I_0(x), ..., I_{M-1}(x)]`` of :func:`ssmpoison.verify._expcoll._monomial_weights` at one point ``x``
    as heyoka expressions of the rate ``z``: forward from ``I_0 = -expm1(-x z)/z`` (``start`` ``None``), or
    backward, ``I_{j-1} = (x^j - z I_j) / j``, from ``I_start = 0``; ``powers[j] = x^j``, ``const(v)`` makes
    a constant of the kernel's type and ``reciprocal(j)`` the constant ``1/j``."""
    if start is None:
        cols = [-hy.expm1(-(const(x) * z)) / z]
        for j in range(1, M):
            cols.append((const(powers[j]) - float(j) * cols[-1]) / z)
        return cols
    cols = [None] * M
    I = 0.0 * z
    for j in range(start, 0, -1):
        I = (const(powers[j]) - z * I) * reciprocal(j)
        if j - 1 < M:
            cols[j - 1] = I
    return cols


def _weight_kernel(M: int):
    """The weight kernel (module docstring) of ``M`` nodes, in longdouble: outputs the forward and the
    backward weights, ``2 (M+1) M`` values (the caller selects by ``z >= M``)."""

    def build():
        hy = _heyoka()
        powers, Lc, J = _longdouble_weight_tables(M)
        z = hy.expression("z")
        lc = [[hy.expression(v) for v in row] for row in Lc]
        outs_f, outs_b = [], []
        for p in range(M + 1):
            for start, outs in ((None, outs_f), (J, outs_b)):
                cols = _weight_columns(hy, z, powers[p, 1], powers[p], hy.expression, lambda j: _constant(Fraction(1, j)), M,
                                       start)
                outs.extend(hy.sum([lc[k][j] * cols[j] for j in range(M)]) for k in range(M))
        return hy.cfunc(outs_f + outs_b, [z], fp_type=np.longdouble)

    return _kernel(("weights", M), build)


@functools.lru_cache(maxsize=16)
def _longdouble_weight_tables(M: int):
    """The constants of the longdouble weight recurrences of ``M`` nodes: the points' powers ``x_p^j``
    (``(M+1, J+1)``) and the Lagrange monomial coefficients ``Lc[k, j]`` (``(M, M)``), each rounded once to
    longdouble from ``64 + 128`` bits (as the sum of its float64 rounding and the rounded rest: 106 bits,
    then one rounding), and the backward start ``J`` (:func:`_backward_start`)."""
    J = _backward_start(M)
    powers, Lc = _node_powers(M, 64 + 128, J)

    def ld(v):
        hi = float(v)
        return np.longdouble(hi) + np.longdouble(float(v - hi))

    powers = np.array([[ld(v) for v in row] for row in powers], dtype=np.longdouble)
    lc = np.array([[ld(v) for v in row] for row in Lc], dtype=np.longdouble)
    powers.flags.writeable = False
    lc.flags.writeable = False
    return powers, lc, J


def _real_constant(q, precision_bits: int):
    """The rational ``q`` (a :class:`~fractions.Fraction`) as a heyoka ``real`` constant of ``precision_bits``
    bits, rounded once (:func:`_to_real`)."""
    return _heyoka().expression(_to_real(q, precision_bits))


def _to_real(v, precision_bits: int):
    """``v`` (int, float, NumPy float, ``gmpy2.mpfr``, :class:`~fractions.Fraction` or heyoka ``real``) as a
    heyoka ``real`` of ``precision_bits`` bits: exact where ``v`` fits, else rounded once."""
    import gmpy2

    hy = _heyoka()
    if isinstance(v, hy.real):
        return v if v.prec == precision_bits else hy.real(v, precision_bits)
    if isinstance(v, (int, np.integer)):
        return hy.real(int(v), precision_bits)
    if isinstance(v, float) or (isinstance(v, np.floating) and v.dtype.itemsize <= 8):
        return hy.real(float(v), precision_bits)
    if isinstance(v, Fraction):
        with gmpy2.context(precision=precision_bits):
            v = gmpy2.mpfr(gmpy2.mpq(v.numerator, v.denominator))
    if not math.isfinite(float(v)):
        return hy.real(float(v), precision_bits)
    p, q = v.as_integer_ratio()  # q is a power of two: one rounding (of p), then an exact division
    return hy.real(int(p), precision_bits) / hy.real(int(q), precision_bits)


def _from_real(v, precision_bits: int):
    """A heyoka ``real`` as a ``gmpy2.mpfr`` of ``precision_bits`` bits (exact for a ``real`` of at most
    that many bits)."""
    import gmpy2

    f = float(v)
    if f == 0 or not math.isfinite(f):
        return gmpy2.mpfr(f, precision_bits)
    k = max(precision_bits, v.prec) - math.frexp(f)[1] + 2  # v 2^k is an integer
    scaled = v * _heyoka().real(2**k, v.prec) if k >= 0 else v / _heyoka().real(2**-k, v.prec)
    with gmpy2.context(precision=precision_bits):
        return gmpy2.mul_2exp(gmpy2.mpfr(int(scaled)), -k)


class _RealNumbers:
    """The working numbers of a multiprecision engine: NumPy arrays of heyoka ``real`` of ``precision_bits``
    bits, and their conversions from and to the reference's ``gmpy2.mpfr`` (exact both ways).

    Arguments:
        precision_bits: the working precision.
    """

    def __init__(self, precision_bits: int):
        self.precision_bits = precision_bits
        self.dtype = np.array([self.scalar(0)]).dtype

    def scalar(self, v):
        """``v`` as a ``real`` of the working precision (:func:`_to_real`)."""
        return _to_real(v, self.precision_bits)

    def array(self, values) -> np.ndarray:
        """An array of numbers as an array of ``real`` (same shape)."""
        arr = np.asarray(values)
        return np.array([self.scalar(v) for v in arr.reshape(-1)], dtype=self.dtype).reshape(arr.shape)

    def export_scalar(self, v):
        """A ``real`` as the reference's ``gmpy2.mpfr``."""
        return _from_real(v, self.precision_bits)

    def export(self, values) -> np.ndarray:
        """An array of ``real`` as an object array of ``gmpy2.mpfr`` (same shape)."""
        arr = np.asarray(values)
        return np.array([self.export_scalar(v) for v in arr.reshape(-1)], dtype=object).reshape(arr.shape)

    def table(self, rows) -> np.ndarray:
        """A table of ``mpmath.mpf`` (more bits than the working precision) rounded once to ``real``."""
        from ssmpoison.verify._expcoll import _mp_to_gmpy

        return np.array([[self.scalar(_mp_to_gmpy(v)) for v in row] for row in rows], dtype=self.dtype)


_REAL_GUARD = 64  # extra bits of a multiprecision engine's weights (the monomial basis loses < 2^17 at M = 16)


def _real_weight_kernel(M: int, guarded_bits: int, bound: int | None):
    """The weights of ``M`` nodes in heyoka's ``real`` of ``guarded_bits`` bits: for one rate ``z`` the
    ``(M+1) x M`` values ``W_k(x_p) = sum_j Lc_kj I_j(x_p)`` from the forward recurrence (``bound`` ``None``:
    for ``z >= M``) or the backward one started at :func:`_backward_start` of ``guarded_bits`` and
    ``bound`` (for ``z < bound <= M``), as the weight kernel
    (module docstring) but at ``guarded_bits``, with the nodes' powers and the Lagrange coefficients
    rounded once from the reference's guarded values."""

    def build():
        hy = _heyoka()
        forward = bound is None
        J = M - 1 if forward else _backward_start(M, guarded_bits, bound)
        pw, Lc = _node_powers(M, guarded_bits + 64, J)

        def const(v):
            return hy.expression(_to_real(v, guarded_bits))

        z = hy.expression("z")
        lc = [[const(v) for v in row] for row in Lc]
        outs = []
        for p in range(M + 1):
            cols = _weight_columns(hy, z, pw[p][1], pw[p], const, lambda j: _real_constant(Fraction(1, j), guarded_bits), M,
                                   None if forward else J)
            outs.extend(hy.sum([lc[k][j] * cols[j] for j in range(M)]) for k in range(M))
        return _cfunc(outs, [z], guarded_bits)

    return _kernel(("real weights", M, guarded_bits, bound), build)


class AnchoredEngine:
    """The compiled stage sweep and weights of one batch of anchored flows (module docstring).

    Arguments:
        anchor: the anchors, shape ``(B,)`` (:func:`ssmpoison.verify._anchored.anchor_index`).
        kappa: the common gain ``c_i b_i``.
        U: the ``(N, H)`` inputs, in the working type.
        labels: the ``N`` labels, in the working type.
        precision_bits: 53 or 64 (float64, longdouble), or any other precision: heyoka's ``real`` of that
            many bits (a multiprecision engine), whose working numbers differ from the reference's
            ``gmpy2.mpfr``: ``numbers`` converts between the two (``None`` at 53 and 64 bits). A
            multiprecision engine's sweep is one kernel for all the stages and the sums over them, and its
            weights are computed with 64 guard bits and rounded once.
    """

    def __init__(self, anchor, kappa, U, labels, precision_bits: int):
        self.precision_bits = precision_bits
        anchor = np.atleast_1d(np.asarray(anchor))
        U = np.asarray(U)
        self.N, self.H = U.shape
        self.B = anchor.shape[0]
        if _fixed_width(precision_bits):
            self.numbers = None
            self.dtype = np.dtype(_fp_type(precision_bits))
            self._fixed = (np.asarray(kappa, dtype=self.dtype).reshape(1), U.astype(self.dtype).reshape(-1),
                           np.asarray(labels).astype(self.dtype).reshape(-1))
        else:
            self.numbers = _RealNumbers(precision_bits)
            self.dtype = self.numbers.dtype
            self._fixed = (self.numbers.array([kappa]), self.numbers.array(U).reshape(-1),
                           self.numbers.array(labels).reshape(-1))
        self._anchor = anchor
        self._perm = None
        self._inverse = None
        self._linear_pars = None
        self._uniform = True
        self._buffers = None

    def _permutations(self, D: int):
        if self._perm is None:
            perm = np.array([[r] + [i for i in range(D) if i != r] for r in self._anchor])  # (B, D): the anchor first
            self._perm = perm
            self._inverse = np.argsort(perm, axis=-1)
            self._uniform = bool((perm == perm[0]).all())
        return self._perm, self._inverse

    def _gather(self, x, index, axis_shape):
        """``x`` permuted along its last axis by ``index`` (``(B, D)``, broadcast over ``axis_shape``)."""
        if self._uniform:
            return x[..., index[0]]
        return np.take_along_axis(x, index.reshape(axis_shape), axis=-1)

    def weights(self, M: int, h, mu):
        """The weights ``W`` of shape ``mu.shape + (M+1, M)`` of the rates ``h mu`` (working type).

        Arguments:
            M: the node count.
            h: the step, in the working type.
            mu: the frozen rates, shape ``(B, R)``, in the working type.

        Returns:
            ``W[b, r, p, k] = W_k(x_p)`` at ``z = h mu[b, r]``.
        """
        mu = np.asarray(mu)
        if self.numbers is not None:
            return self._real_weights(M, h, mu)
        z = (h * mu).astype(np.longdouble).reshape(1, -1)
        out = _weight_kernel(M)(np.ascontiguousarray(z))  # (2 (M+1) M, B R)
        half = (M + 1) * M
        forward = z[0] >= M
        W = np.where(forward[None], out[:half], out[half:]).T.reshape(mu.shape + (M + 1, M))
        return W.astype(self.dtype)

    def _real_weights(self, M: int, h, mu):
        """:meth:`weights` of a multiprecision engine: the kernels at ``precision_bits + 64``, rounded once."""
        bits = self.precision_bits
        guarded = bits + _REAL_GUARD
        flat = (h * mu).reshape(-1)
        out = np.empty(((M + 1) * M, flat.size), dtype=self.dtype)
        # the recurrence of each rate: forward for z >= M, backward from the start of z < 1 or of z < M
        kinds = [None if float(v) >= M else (1 if float(v) < 1 else M) for v in flat]
        real = _heyoka().real
        for kind in (None, 1, M):
            index = [i for i, k in enumerate(kinds) if k == kind]
            if index:
                z = np.array([[real(flat[i], guarded) for i in index]], dtype=self.dtype)
                W = _real_weight_kernel(M, guarded, kind)(z)
                out[:, index] = np.array([real(v, bits) for v in W.reshape(-1).tolist()], dtype=self.dtype).reshape(W.shape)
        return out.T.reshape(mu.shape + (M + 1, M))

    def linear_part(self, z, scale):
        """The frozen stiff part ``-scale T^{-1} G^T G T = -sum_r mu_r p_r q_r^T`` at ``z``, as
        :func:`ssmpoison.verify._anchored.anchored_linear_part` computes it (its rows from the compiled
        kernel; the float64 eigenvectors of the Gram matrix, the bi-orthonormalisation and the Rayleigh
        quotients in NumPy).

        Arguments:
            z: the state, shape ``(B, D)``, in the working type.
            scale: the loss's weight ``2/N``, in the working type.

        Returns:
            ``(mu, P, Q)``: shapes ``(B, R)``, ``(B, R, D)``, ``(B, R, D)`` with ``R = N``.
        """
        from ssmpoison.verify._anchored import _biorthonormalise

        B, D = z.shape
        N = self.N
        if self.numbers is not None:
            scale = self.numbers.scalar(scale)
        perm, inverse = self._permutations(D)
        kernel = _linear_kernel(D, self.H, N, self.precision_bits)
        if self._linear_pars is None or self._linear_pars.shape[1] != B:
            kappa, U, _ = self._fixed
            U = U.reshape(N, self.H)[:, : self.H - 1].reshape(-1)
            self._linear_pars = np.ascontiguousarray(np.tile(np.concatenate([kappa, U])[:, None], (1, B)))
        x = self._gather(z, perm, (B, D)).T
        out = kernel(np.ascontiguousarray(x), pars=self._linear_pars).T.reshape(B, 3, N, D)
        rows = self._gather(out, inverse, (B, 1, 1, D))
        G, Pn, Qn = rows[:, 0], rows[:, 1], rows[:, 2]
        G64 = np.asarray(G, dtype=np.float64)
        _, W = np.linalg.eigh(float(scale) * np.matmul(G64, G64.transpose(0, 2, 1)))  # (B, N, R)
        WT = np.asarray(W, dtype=self.dtype).transpose(0, 2, 1)
        P, Q = _biorthonormalise(np.matmul(WT, Pn), np.matmul(WT, Qn))
        GP = np.matmul(P, Qn.transpose(0, 2, 1))  # (B, R, N): g_n . v_r
        mu = scale * (GP * GP).sum(axis=-1)
        return mu, P, Q

    def _parameters(self, y, mu, P, Q, perm):
        """Per batch member: ``y_n``, ``kappa``, ``U``, labels, ``mu``, ``P``, ``Q`` (anchor first), shape ``(npar, B)``."""
        B = y.shape[0]
        kappa, U, labels = self._fixed
        yp = self._gather(y, perm, (B, -1))
        Pp = self._gather(P, perm, (B, 1, -1)).reshape(B, -1)
        Qp = self._gather(Q, perm, (B, 1, -1)).reshape(B, -1)
        shared = np.concatenate([kappa, U, labels])
        return np.concatenate([yp, np.broadcast_to(shared, (B, shared.size)), mu, Pp, Qp], axis=1).T

    def step(self, y, mu, P, Q, W_minus_A, A, h):
        """Prepare the sweeps of one step (the step's frozen data as the kernel's parameters).

        Arguments:
            y: the state ``y_n``, shape ``(B, D)``.
            mu, P, Q: the frozen linear part (shapes ``(B, R)``, ``(B, R, D)``, ``(B, R, D)``).
            W_minus_A: the weights less the ``z = 0`` weights, shape ``(B, R, M+1, M)``.
            A: the ``z = 0`` weights ``A_k(x_p)``, shape ``(M+1, M)``.
            h: the step.

        Returns:
            ``sweep(stages) -> (incr, G, VG)`` for stages of shape ``(M, B, D)``: the forcing
            ``G = f(stages) - L (stages - y_n)`` (``(M, B, D)``), ``VG = Q . G`` (``(M, B, R)``) and the
            increments ``h (sum_k A_k(x_p) G_k + sum_r p_r sum_k (W_{r,k}(x_p) - A_k(x_p)) VG_{k,r})``
            at the nodes and the end point (``(M+1, B, D)``), as in the reference sweep.
        """
        if self.numbers is not None:
            return self._real_step(y, mu, P, Q, W_minus_A, A, h)
        B, D = y.shape
        R = mu.shape[-1]
        M = A.shape[1]
        perm, inverse = self._permutations(D)
        kernel = _stage_kernel(D, self.H, self.N, R, self.precision_bits)
        pars = self._parameters(y, mu, P, Q, perm)
        columns = np.ascontiguousarray(np.tile(pars, (1, M)))  # column m B + b: member b at stage m
        uniform = self._uniform
        order, back = perm[0], inverse[0]
        PT = np.ascontiguousarray(P)  # (B, R, D)

        def sweep(stages):
            if uniform:
                x = stages[..., order].reshape(M * B, D).T
            else:
                x = np.take_along_axis(stages, perm[None], axis=-1).reshape(M * B, D).T
            out = kernel(np.ascontiguousarray(x), pars=columns)
            G = out[:D].T.reshape(M, B, D)
            G = G[..., back] if uniform else np.take_along_axis(G, inverse[None], axis=-1)
            VG = out[D:].T.reshape(M, B, R)
            AG = np.matmul(A, G.reshape(M, B * D)).reshape(M + 1, B, D)
            corr = np.matmul(W_minus_A, VG.transpose(1, 2, 0)[..., None])[..., 0]  # (B, R, M+1)
            stiff = np.matmul(corr.transpose(0, 2, 1), PT)  # (B, M+1, D)
            return h * (AG + stiff.transpose(1, 0, 2)), G, VG

        return sweep

    def _real_step(self, y, mu, P, Q, W_minus_A, A, h):
        """:meth:`step` of a multiprecision engine: a :class:`_RealSweeps` of the step."""
        B, D = y.shape
        R = mu.shape[-1]
        M = A.shape[1]
        perm, _ = self._permutations(D)
        kernel = _sweep_kernel(D, self.H, self.N, R, M, self.precision_bits)
        stage_pars = self._parameters(y, mu, P, Q, perm)
        step_pars = np.concatenate([stage_pars, W_minus_A.reshape(B, -1).T,
                                    np.broadcast_to(A.reshape(-1, 1), (A.size, B)),
                                    np.broadcast_to(np.array([[self.numbers.scalar(h)]], dtype=self.dtype), (1, B))])
        key = (B, D, R, M)
        if self._buffers is None or self._buffers[0] != key:
            zero = self.numbers.scalar(0)
            rows = 3 * M * D + (M + 1) * D + D + M * R + 2
            self._buffers = (key, [np.array([[zero] * B for _ in range(rows)], dtype=self.dtype) for _ in range(2)],
                             np.array([[zero] * B for _ in range(M * D)], dtype=self.dtype))
        newton = (_jacobian_kernel(D, self.H, self.N, R), np.asarray(stage_pars, dtype=np.float64),
                  np.asarray(A, dtype=np.float64), np.asarray(W_minus_A, dtype=np.float64)[:, :, :M, :],
                  np.asarray(self._gather(P, perm, (B, 1, -1)), dtype=np.float64),
                  np.asarray(self._gather(Q, perm, (B, 1, -1)), dtype=np.float64), float(h))
        return _RealSweeps(self, kernel, step_pars, self._buffers[1], self._buffers[2], M, R, newton)


_NEWTON_UNTIL = 1e4  # Newton corrections while a sweep changes the stages by more than this many tolerances


class _RealSweeps:
    """The collocation iteration of one step of a multiprecision engine (:meth:`AnchoredEngine.step`).

    Every sweep is one call of :func:`_sweep_kernel` at ``z = x + d`` writing into one of two preallocated
    arrays (NumPy does not free the digits of a ``real`` array, so temporaries would accumulate). After a
    sweep with residual ``r = Phi(z) - z`` (``Phi`` the Picard map), the next one is taken at ``z + d``
    with ``d`` the Newton correction ``d = r + J d`` solved in float64 (``J`` the Picard map's Jacobian,
    from the forcing's float64 Jacobian at the first sweep's stages; a few fixed-point passes, as the map
    contracts): a sweep then gains the float64 relative accuracy of ``d`` instead of the map's contraction
    factor. The fixed point and the convergence rule are those of the Picard iteration.
    """

    def __init__(self, engine, kernel, step_pars, buffers, zeros, M: int, R: int, newton):
        self.engine, self.kernel, self.step_pars, self.buffers, self.zeros = engine, kernel, step_pars, buffers, zeros
        self.M, self.R, self.newton = M, R, newton

    def __call__(self, stages):
        """One sweep from ``stages`` (``(M, B, D)``), the change unmeasured: ``(new, end_incr, G, VG)`` in
        natural order (the new values at the nodes and the end point, ``(M+1, B, D)``)."""
        zero = self.engine.numbers.scalar(0)
        return self._unpack(self._run(self._input(stages), self.zeros, self._pars(zero, zero), self.buffers[0]))

    def _input(self, stages):
        engine = self.engine
        perm, _ = engine._permutations(stages.shape[-1])
        x = stages[..., perm[0]] if engine._uniform else np.take_along_axis(stages, perm[None], axis=-1)
        M, B, D = x.shape
        return np.ascontiguousarray(x.transpose(0, 2, 1).reshape(M * D, B))

    def _pars(self, atol, rtol):
        """The kernel's parameters with the tolerances (``atol``, ``rtol`` in the working type)."""
        B = self.step_pars.shape[1]
        tol = np.array([[atol] * B, [rtol] * B], dtype=self.engine.dtype)
        return np.ascontiguousarray(np.concatenate([self.step_pars, tol]))

    def _run(self, x, dx, pars, out):
        self.kernel(np.concatenate([x, dx]), pars=pars, outputs=out)
        return out

    def _layout(self, out):
        M, R = self.M, self.R
        D = (out.shape[0] - 2 - M * R) // (4 * M + 2)
        sizes = (("z", M * D), ("new", (M + 1) * D), ("end", D), ("G", M * D), ("VG", M * R), ("res", M * D))
        offsets, row = {}, 0
        for name, n in sizes:
            offsets[name] = (row, row + n)
            row += n
        return D, offsets

    def _unpack(self, out):
        """The outputs in natural order: new values ``(M+1, B, D)``, end increment ``(B, D)``, ``G`` ``(M, B, D)``,
        ``VG`` ``(M, B, R)`` (copies)."""
        engine, M, R = self.engine, self.M, self.R
        B = out.shape[1]
        D, offsets = self._layout(out)
        _, inverse = engine._permutations(D)

        def block(name, shape):
            a, b = offsets[name]
            return np.moveaxis(out[a:b].reshape(shape + (B,)), -1, -2 if len(shape) > 1 else 0)

        new, end_incr, G, VG = block("new", (M + 1, D)), block("end", (D,)), block("G", (M, D)), block("VG", (M, R))
        if engine._uniform:
            back = inverse[0]
            return new[..., back], end_incr[..., back], G[..., back], np.array(VG, copy=True)
        return (np.take_along_axis(new, inverse[None], axis=-1), np.take_along_axis(end_incr, inverse, axis=-1),
                np.take_along_axis(G, inverse[None], axis=-1), np.array(VG, copy=True))

    def _jacobian(self, z64):
        """``dG/dz`` at the stages ``z64`` (``(M, B, D)``, float64, anchor first): ``(M, B, D, D)``."""
        kernel, stage_pars = self.newton[0], self.newton[1]
        M, B, D = z64.shape
        x = np.ascontiguousarray(z64.reshape(M * B, D).T)
        pars = np.ascontiguousarray(np.tile(stage_pars, (1, M)))
        return kernel(x, pars=pars).reshape(D, D, M, B).transpose(2, 3, 0, 1)

    def _operator(self, Jg):
        """The Picard map's Jacobian from the forcing's (``Jg``, ``(M, B, D, D)``), per member a
        ``(M D) x (M D)`` float64 matrix: ``(J d)_p = h (sum_k A_k(x_p) u_k + sum_r p_r sum_k (W_{r,k}(x_p) -
        A_k(x_p)) (q_r . u_k))`` with ``u_k = Jg_k d_k``."""
        _, _, A, WmA, P, Q, h = self.newton
        M, B, D, _ = Jg.shape
        direct = np.einsum("pk,kbij->bpikj", A[:M], Jg)
        QJ = np.einsum("brd,kbdj->brkj", Q, Jg)
        stiff = np.einsum("bri,brpk,brkj->bpikj", P, WmA, QJ)
        return h * (direct + stiff).reshape(B, M * D, M * D)

    def _correction(self, r, J):
        """The Newton correction: ``d = r + J d`` by fixed-point passes in float64 (``r``, ``d``: ``(M, B, D)``;
        ``J`` from :meth:`_operator`); ``r`` itself (the Picard step) where the passes do not stay finite."""
        M, B, D = r.shape
        r = r.transpose(1, 0, 2).reshape(B, M * D, 1)
        d = r
        for _ in range(12):
            new = r + np.matmul(J, d)
            step = float(np.abs(new - d).max())
            d = new
            if not math.isfinite(step):
                d = r
                break
            if step <= 1e-17 * float(np.abs(d).max()):
                break
        return d.reshape(B, M, D).transpose(1, 0, 2)

    def iterate(self, stages, sweeps: int, atol, rtol, verdict):
        """The iteration from ``stages`` (``(M, B, D)``): at most ``sweeps`` sweeps, each one kernel call;
        ``verdict(it, change, previous, contraction) -> (converged, abandon, contraction)`` is the
        integrator's rule (:func:`ssmpoison.verify._expcoll._picard_verdict`).

        Returns:
            ``(ok, stages, end, end_incr, G, VG, contraction, count)``: whether it converged, the stages
            ``(M, B, D)``, the end point and its increment ``(B, D)``, ``G`` and ``VG`` of the last sweep, the
            contraction observed and the number of sweeps; ``None`` in place of the arrays when it did not
            converge.
        """
        M = self.M
        x = self._input(stages)
        dx = self.zeros
        B = x.shape[1]
        D, offsets = self._layout(self.buffers[0])
        total_row = self.buffers[0].shape[0] - 1
        previous, contraction, Jg = math.inf, 0.0, None
        bits = self.engine.precision_bits
        real = _heyoka().real
        pars = self._pars(atol, rtol)
        for it in range(sweeps):
            out = self._run(x, dx, pars, self.buffers[it % 2])
            if not all(math.isfinite(float(v)) for v in out[total_row]):
                return False, None, None, None, None, None, contraction, it + 1
            change = max(float(v) for v in out[total_row - 1])
            ok, abandon, contraction = verdict(it, change, previous, contraction)
            if ok:
                new, end_incr, G, VG = self._unpack(out)
                return True, new[:M], new[M], end_incr, G, VG, contraction, it + 1
            if abandon:
                return False, None, None, None, None, None, contraction, it + 1
            a, b = offsets["z"]
            x = out[a:b]
            if change <= _NEWTON_UNTIL:  # a plain Picard sweep: the stages end as the Picard map's image
                a, b = offsets["new"]
                x, dx = out[a:a + M * D], self.zeros
                previous = change
                continue
            if Jg is None:
                Jg = self._operator(self._jacobian(np.asarray(x, dtype=np.float64).reshape(M, D, B).transpose(0, 2, 1)))
            a, b = offsets["res"]
            r = np.asarray(out[a:b], dtype=np.float64).reshape(M, D, B).transpose(0, 2, 1)
            d = self._correction(r, Jg)
            dx = np.array([real(v, bits) for v in d.transpose(0, 2, 1).reshape(-1).tolist()], dtype=self.engine.dtype).reshape(M * D, B)
            previous = change
        return False, None, None, None, None, None, contraction, sweeps


def anchored_engine(anchor, kappa, U, labels, precision_bits: int, multiprecision: bool = False):
    """An :class:`AnchoredEngine` when the compiled engine runs at ``precision_bits``, else ``None``.

    Arguments:
        anchor, kappa, U, labels, precision_bits: as for :class:`AnchoredEngine`.
        multiprecision: as for :func:`engine_available`.

    Returns:
        The engine, or ``None`` (:func:`engine_available` false): the caller keeps the reference path.
    """
    if not engine_available(precision_bits, multiprecision):
        return None
    return AnchoredEngine(anchor, kappa, U, labels, precision_bits)
