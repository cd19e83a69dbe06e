r"""The native step loop: a whole anchored flow of exponential collocation in compiled code (float64, longdouble, MPFR).

The compiled engine (:mod:`ssmpoison.verify._compiled`) moves the arithmetic of a step into heyoka
kernels, but the step itself — the frozen linear part, the weights, six or so Picard sweeps, the
spectral error estimate, the step control and the loss that stops the flow — is still about a
thousand small NumPy operations, whose interpreter overhead is most of a theory-row flow's time.
This module runs the *whole* loop of :func:`ssmpoison.verify._expcoll._integrate` for one flow in
anchored coordinates (:mod:`ssmpoison.verify._anchored`) in C++ (``_native_expcoll.cpp``, beside
this module), templated on the working type: ``double`` at 53 bits, x86 ``long double`` at 64, and
MPFR numbers of the working precision at any other (where the certification policy's ``P`` path asks
for compiled code: ``FlowOptions(compiled_multiprecision=True)``).

The same mathematics, step by step, as the reference loop and the compiled engine: the forcing of
:func:`ssmpoison.verify._anchored.neg_grad_anchored` split around ``y_n``, the frozen part of
:func:`ssmpoison.verify._anchored.anchored_linear_part` (the Gram matrix's eigenvectors in double by
cyclic Jacobi rotations, ascending as ``numpy.linalg.eigh``; any orthonormal eigenbasis is a valid
splitting), the weights of the compiled engine's weight kernel (long double recurrences from the
same starts, with the nodes' powers and the Lagrange coefficients rounded once from the reference's
guarded values), the continued polynomial as a Picard start, the Picard rule, the spectral estimate,
the predictive step control, the compensated state, and :func:`ssmpoison.verify._flow.run_flows`'
stopping rules (the loss at or below its tolerance, an entry past ``blowup``, the command's
wall-clock budget). The tables that need guard bits (the ``z = 0`` weights, the Legendre transform,
the weight recurrences' constants) are computed in Python, as the reference computes them, and
passed in. Only the order of the operations differs, so a native run differs from a reference run in
the last bits (the test-suite holds them to each other's certified digits).

**Multiprecision** (MPFR, as the multiprecision engine of :mod:`ssmpoison.verify._compiled` computes in
heyoka's ``real``): the state, the tables and every operation at the working precision ``P``; the weights
by the recurrences at ``P + 64`` bits (forward for ``z >= M``, backward from the start that damps
``2^-(P+64)`` for ``z < 1`` or ``z < M``), rounded once to ``P``; and the Picard iteration with the
multiprecision engine's Newton corrections: while a sweep changes the stages by more than ``10^4``
tolerances, the next sweep is taken at ``z + d``, ``d = r + J d`` solved by fixed-point passes in double,
``J`` the Picard map's Jacobian applied without forming it, from ``dG/dz`` at the step's stages (forward-mode
dual numbers in double through the same forcing code, for ``D <= 64``). The sweep's change is measured in
double from the exact difference. Numbers cross the boundary as text (hex mantissa and binary exponent),
exactly both ways. Nothing is allocated per step beyond the loop's own vectors, so memory stays constant
(heyoka's ``real`` arrays are never freed by NumPy: that engine is capped at 192 bits; this loop is not).

Build: the source is compiled once (``$CXX`` or ``c++``, ``-O2 -ffp-contract=off``: every operation
rounds once, no fused multiply-add) into the kernel cache directory of :mod:`ssmpoison.verify._compiled`,
named by a digest of the source and the command, and loaded with :mod:`ctypes`; a later process
loads the library. MPFR's headers come with gmpy2's wheel (``mpfr.h``, ``gmp.h`` beside its module) and its
library from gmpy2's bundled copy (else the system's ``libmpfr.so.6``); without them the library is built
without the multiprecision loop. Without a compiler, on a platform whose ``long double`` is not x86's
80-bit type, or with ``SSMPOISON_ENGINE`` set to ``reference`` or ``heyoka``, the flows take the other paths.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction

import numpy as np

from ssmpoison.verify._integrator import IntegrationResult
from ssmpoison.verify._status import Status

__all__ = ["native_available", "integrate_anchored"]

_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_native_expcoll.cpp")
_FINGERPRINT_FILES = (_SOURCE,)  # a saved result's code fingerprint covers the compiled source (verify._code_fingerprint)
_FLAGS = ["-O2", "-std=c++17", "-shared", "-fPIC", "-ffp-contract=off"]
_OUTCOMES = {0: Status.T_END, 1: Status.STOPPED, 2: Status.BLOWUP, 3: Status.STEP_TOO_SMALL, 4: Status.MAX_STEPS}

#: Seconds spent compiling or loading the native library in this process: ``{"compile": s, "load": s}``.
build_seconds = {"compile": 0.0, "load": 0.0}


def _suffix(precision_bits: int) -> str | None:
    if precision_bits == 53:
        return "f64"
    if precision_bits == 64 and np.finfo(np.longdouble).nmant == 63 and np.dtype(np.longdouble).itemsize == 16:
        return "f80"
    return None


def _mpfr_flags() -> list[str]:
    """Compiler flags for MPFR: gmpy2's headers (its wheel ships ``mpfr.h`` and ``gmp.h``) and its MPFR library
    (bundled beside it, else the system's ``libmpfr.so.6``); ``[]`` when the headers are not there."""
    import gmpy2

    include = os.path.dirname(os.path.abspath(gmpy2.__file__))
    if not (os.path.exists(os.path.join(include, "mpfr.h")) and os.path.exists(os.path.join(include, "gmp.h"))):
        return []
    bundled = os.path.join(os.path.dirname(include), "gmpy2.libs")
    libs = sorted(f for f in os.listdir(bundled) if f.startswith("libmpfr")) if os.path.isdir(bundled) else []
    link = [f"-L{bundled}", f"-l:{libs[0]}", f"-Wl,-rpath,{bundled}"] if libs else ["-l:libmpfr.so.6"]
    return ["-DSSM_MPFR", f"-I{include}", *link]


def _build(compiler: str, flags: list[str], directory: str, source: bytes):
    """The library built with ``flags`` (cached in ``directory`` under a digest of everything that makes it),
    or ``None`` when the compiler fails."""
    digest = hashlib.sha256(repr((source, compiler, _FLAGS, flags, sys.platform)).encode()).hexdigest()[:32]
    path = os.path.join(directory, f"native-{digest}.so")
    if os.path.exists(path):
        return path
    start = time.perf_counter()
    with open(os.path.join(directory, f"native-{digest}.lock"), "w") as lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)  # one process compiles; the others wait for it and load its library
        except (ImportError, OSError):  # no POSIX locks: each process compiles, the last rename wins
            pass
        if not os.path.exists(path):
            fd, tmp = tempfile.mkstemp(dir=directory, suffix=".so")
            os.close(fd)
            try:
                done = subprocess.run([compiler, *_FLAGS, "-o", tmp, _SOURCE, *flags], capture_output=True, timeout=300)
            except (OSError, subprocess.SubprocessError):
                done = None
            if done is None or done.returncode != 0:
                os.unlink(tmp)
                return None
            os.replace(tmp, path)  # atomic: a process that does not lock loads either no library or the whole one
    build_seconds["compile"] += time.perf_counter() - start
    return path


@functools.lru_cache(maxsize=1)
def _library():
    """The native library (:class:`ctypes.CDLL`), compiled on first use, or ``None`` when it cannot be built:
    with MPFR (the multiprecision loop) when gmpy2's headers are there and it builds, else without."""
    from ssmpoison.verify._compiled import _cache_dir

    try:
        with open(_SOURCE, "rb") as fh:
            source = fh.read()
    except OSError:
        return None
    compiler = os.environ.get("CXX", "c++")
    directory = _cache_dir() or tempfile.gettempdir()
    mpfr = _mpfr_flags()
    for flags in ([mpfr] if mpfr else []) + [[]]:
        for _ in range(2):  # a cached library that does not load (truncated, say) is built again, once
            path = _build(compiler, flags, directory, source)
            if path is None:
                break
            start = time.perf_counter()
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                try:
                    os.unlink(path)
                except OSError:
                    pass
                continue
            build_seconds["load"] += time.perf_counter() - start
            return lib
    return None


def native_available(precision_bits: int, multiprecision: bool = False, state_dim: int = 1) -> bool:
    """Whether the native step loop runs at ``precision_bits``.

    Arguments:
        precision_bits: the working precision.
        multiprecision: also at the precisions whose reference type is ``gmpy2.mpfr`` (every precision but 53
            and x86 longdouble's 64), in MPFR.
        state_dim: the flow's ``D`` (the multiprecision loop's Newton corrections take ``D <= 64``).

    Returns:
        ``True`` at 53 bits (float64) and at 64 bits (x86 longdouble), and with ``multiprecision`` at the
        others when the library was built with MPFR and ``state_dim <= 64``, when the library builds and
        ``SSMPOISON_ENGINE`` is neither ``reference`` nor ``heyoka``; ``False`` otherwise.
    """
    if os.environ.get("SSMPOISON_ENGINE", "").strip().lower() in ("reference", "heyoka"):
        return False
    lib = _library()
    if lib is None:
        return False
    if _suffix(precision_bits) is not None:
        return True
    return multiprecision and state_dim <= _DUAL_MAX and bool(lib.ssm_has_mpfr())


_DUAL_MAX = 64  # DUAL_MAX of the C++ source


def _pointer(array: np.ndarray):
    return array.ctypes.data_as(ctypes.c_void_p)


@functools.lru_cache(maxsize=16)
def _tables(M: int, precision_bits: int):
    """The tables of ``M`` nodes: the ``z = 0`` weights and the Legendre transform in the working type,
    the float64 nodes, and the weight recurrences' constants in longdouble (the nodes' powers, the
    Lagrange coefficients, ``1/j``) with the backward start ``J``."""
    from ssmpoison.verify._compiled import _longdouble_fraction, _longdouble_weight_tables
    from ssmpoison.verify._expcoll import _float_nodes, _working_tables

    A, legendre = _working_tables(M, precision_bits)
    powers, lc, J = _longdouble_weight_tables(M)
    inv = np.array([0] + [_longdouble_fraction(Fraction(1, j)) for j in range(1, J + 1)], dtype=np.longdouble)
    return (np.ascontiguousarray(A), np.ascontiguousarray(legendre), np.ascontiguousarray(_float_nodes(M)),
            np.ascontiguousarray(powers), np.ascontiguousarray(lc), inv, J)


def _problem(precision_bits: int, U, labels):
    """The working type of a fixed-width ``precision_bits`` and the problem's data in it, as the library reads
    them: ``(dtype, U, labels, 2(l+1)/N for l < H - 1, 2/N)``."""
    dtype = np.dtype(np.float64 if _suffix(precision_bits) == "f64" else np.longdouble)
    U = np.ascontiguousarray(np.asarray(U).astype(dtype))
    N, H = U.shape
    labels = np.ascontiguousarray(np.asarray(labels).astype(dtype))
    return dtype, U, labels, _gains(H, N, dtype), dtype.type(2) / dtype.type(N)


def _gains(H: int, N: int, dtype) -> np.ndarray:
    """``2 (l + 1) / N`` for ``l < H - 1``, rounded once to longdouble (then to the working type)."""
    from ssmpoison.verify._compiled import _longdouble_fraction

    return np.array([_longdouble_fraction(Fraction(2 * (l + 1), N)) for l in range(H - 1)], dtype=np.longdouble).astype(dtype)


def integrate_anchored(z0, anchor: int, kappa, U, labels, *, precision_bits: int, nodes: int, max_picard: int,
                       t_end, rtol, atol, initial_step, loss_tol, blowup: float, max_steps: int,
                       deadline: float | None):
    """Integrate one anchored flow with the native step loop (module docstring).

    Arguments:
        z0: the initial state in anchored coordinates, shape ``(D,)``, in the working type.
        anchor: the anchor's index.
        kappa: the common gain ``c_i b_i``; U: the ``(N, H)`` inputs; labels: the ``N`` labels (working type).
        precision_bits: 53 or 64, or with MPFR any other precision (:func:`native_available`); the numbers are
            then ``gmpy2.mpfr`` of that precision, in and out.
        nodes, max_picard: the collocation's ``M`` and its Picard sweeps per step attempt.
        t_end, rtol, atol, initial_step: the final time, the tolerances and the first step (working type).
        loss_tol: the flow stops (``STOPPED``) after the first step whose loss is at or below it.
        blowup: the flow stops (``BLOWUP``) when an entry's magnitude exceeds it.
        max_steps: the budget of step attempts.
        deadline: the wall-clock deadline on :func:`time.monotonic`'s clock, or ``None``.

    Returns:
        ``(result, t_converged)``: the :class:`~ssmpoison.verify._integrator.IntegrationResult` (the state
        in anchored coordinates, ``details["nodes"] = M``) and the end time of the step that reached
        ``loss_tol`` (``None`` if none did).
    """
    suffix = _suffix(precision_bits)
    if suffix is None:
        return _integrate_mp(z0, anchor, kappa, U, labels, precision_bits=precision_bits, nodes=nodes, max_picard=max_picard,
                             t_end=t_end, rtol=rtol, atol=atol, initial_step=initial_step, loss_tol=loss_tol, blowup=blowup,
                             max_steps=max_steps, deadline=deadline)
    dtype, U, labels, gw, scale = _problem(precision_bits, U, labels)
    N, H = U.shape
    z0 = np.ascontiguousarray(np.asarray(z0).astype(dtype))
    D = z0.shape[0]
    A, legendre, c, powers, lc, inv, J = _tables(nodes, precision_bits)
    ints = np.array([D, H, N, int(anchor), nodes, J, max_picard, min(max_steps, 2**31 - 1)], dtype=np.intc)
    scalars = np.array([0, t_end, rtol, atol, initial_step, kappa, scale, loss_tol], dtype=dtype)
    doubles = np.array([blowup, math.inf if deadline is None else deadline], dtype=np.float64)
    y = np.empty(D, dtype=dtype)
    t = np.empty(2, dtype=dtype)
    counts = np.zeros(5, dtype=np.int64)
    _interruptible(getattr(_library(), f"ssm_integrate_{suffix}"), *map(_pointer, (ints, scalars, doubles, U, labels, gw, A, legendre, c,
                                                                         powers, lc, inv, z0, y, t, counts)))
    status, steps, rejected, nfev, converged = (int(v) for v in counts)
    result = IntegrationResult(t[0], y, _OUTCOMES[status], steps, rejected, nfev, {"nodes": nodes})
    return result, (t[1] if converged else None)


_ONE_AT_A_TIME = threading.Lock()


def _interruptible(function, *args):
    """``function(*args, cancel)`` (a library call, which releases the GIL) in a thread of its own, while this
    thread waits in short slices: a signal's Python handler then runs here at once (the interpreter runs
    handlers between bytecodes, never inside a foreign call), and its exception sets ``cancel``, which the
    loop reads before every step, waits for the call to stop and propagates. Calls from several threads run
    one after the other. Returns the call's result."""
    cancel = ctypes.c_int(0)
    result = []

    def call():
        with _ONE_AT_A_TIME:  # the library's working precision and scratch numbers are per process
            result.append(function(*args, ctypes.byref(cancel)))

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.05)
    except BaseException:
        cancel.value = 1
        worker.join()
        raise
    return result[0]


def _mpfr(v, bits: int):
    """``v`` (a ``gmpy2.mpfr``, int, float or :class:`~fractions.Fraction`) as a ``gmpy2.mpfr`` of ``bits`` bits, rounded once."""
    import gmpy2

    if isinstance(v, Fraction):
        v = gmpy2.mpq(v.numerator, v.denominator)
    return gmpy2.mpfr(v, bits)


def _text(values, bits: int) -> str:
    """Numbers as the library reads them: ``mantissa exponent`` pairs (hex mantissa, value ``m 2^e``), each rounded
    once to ``bits`` bits."""
    out = []
    for v in values:
        x = _mpfr(v, bits)
        if not x:
            out.append("0 0")
            continue
        m, e = x.as_mantissa_exp()
        out.append(f"{int(m):x} {int(e)}")
    return " ".join(out)


def _parse(line: str, bits: int):
    """A number the library wrote (``digits exponent``: ``0.digits 16^exponent``, MPFR's form) as a ``gmpy2.mpfr``."""
    import gmpy2

    digits, exponent = line.split()
    if "@" in digits:  # @NaN@, @Inf@, -@Inf@
        return gmpy2.mpfr("nan" if "NaN" in digits else ("-inf" if digits.startswith("-") else "inf"), bits)
    count = len(digits.lstrip("-"))
    with gmpy2.context(precision=bits):
        return gmpy2.mul_2exp(gmpy2.mpfr(int(digits, 16)), 4 * (int(exponent) - count))


@functools.lru_cache(maxsize=16)
def _mp_tables(M: int, precision_bits: int):
    """The multiprecision loop's tables of ``M`` nodes, as text: the ``z = 0`` weights and the Legendre transform
    at ``precision_bits`` (rounded once from ``precision_bits + 128`` bits), and the weight recurrences'
    constants at ``precision_bits + 64`` bits (the nodes' powers and the Lagrange coefficients rounded once
    from ``+ 128``, ``1/j``) with the backward starts for ``z < 1`` and ``z < M`` (as the multiprecision weight
    kernels of :mod:`ssmpoison.verify._compiled`)."""
    import gmpy2

    from ssmpoison.verify._compiled import _backward_start, _node_powers
    from ssmpoison.verify._expcoll import _GUARD, _mp_to_gmpy, _nodes_tables

    _, _, _, A_mp, legendre_mp = _nodes_tables(M, precision_bits + _GUARD)
    with gmpy2.context(precision=precision_bits + _GUARD):
        A = [_mp_to_gmpy(v) for row in A_mp for v in row]
        legendre = [_mp_to_gmpy(v) for row in legendre_mp for v in row]
    guarded = precision_bits + 64
    J1, JM = _backward_start(M, guarded, 1), _backward_start(M, guarded, M)
    Jmax = max(J1, JM, M - 1)
    rows, Lc = _node_powers(M, guarded + 64, Jmax)
    powers = [v for row in rows for v in row]
    inv = [0] + [Fraction(1, j) for j in range(1, Jmax + 1)]
    working = _text(A, precision_bits) + " " + _text(legendre, precision_bits)
    weights = " ".join([_text(powers, guarded), _text([v for row in Lc for v in row], guarded), _text(inv, guarded)])
    return working, weights, J1, JM, Jmax


def _integrate_mp(z0, anchor: int, kappa, U, labels, *, precision_bits: int, nodes: int, max_picard: int, t_end, rtol, atol,
                  initial_step, loss_tol, blowup: float, max_steps: int, deadline: float | None):
    """:func:`integrate_anchored` at a multiprecision ``precision_bits`` (MPFR; numbers as text both ways)."""
    from ssmpoison.verify._expcoll import _float_nodes

    P, M = precision_bits, nodes
    U = np.asarray(U, dtype=object)
    N, H = U.shape
    D = len(z0)
    working, weights, J1, JM, Jmax = _mp_tables(M, P)
    scalars = [0, t_end, rtol, atol, initial_step, kappa, Fraction(2, N), loss_tol]
    gw = [Fraction(2 * (l + 1), N) for l in range(H - 1)]
    text = " ".join([_text(scalars, P), _text(U.reshape(-1), P), _text(labels, P), _text(gw, P), working,
                     _text(z0, P), weights])
    ints = np.array([D, H, N, int(anchor), M, JM, max_picard, min(max_steps, 2**31 - 1), P, J1, Jmax], dtype=np.intc)
    doubles = np.array([blowup, math.inf if deadline is None else deadline], dtype=np.float64)
    c = np.ascontiguousarray(_float_nodes(M))
    size = (D + 2) * (P // 4 + 40) + 64
    out = ctypes.create_string_buffer(size)
    counts = np.zeros(5, dtype=np.int64)
    failed = _interruptible(_library().ssm_integrate_mp, _pointer(ints), text.encode(), _pointer(doubles), _pointer(c), out,
                            ctypes.c_long(size), _pointer(counts))
    if failed:
        raise ArithmeticError("the native loop's output did not fit its buffer")
    lines = out.value.decode().split("\n")
    values = [_parse(line, P) for line in lines[: D + 2]]
    status, steps, rejected, nfev, converged = (int(v) for v in counts)
    y = np.array(values[:D], dtype=object)
    result = IntegrationResult(values[D], y, _OUTCOMES[status], steps, rejected, nfev, {"nodes": M})
    return result, (values[D + 1] if converged else None)


def _call(name: str, precision_bits: int, anchor: int, kappa, U, labels, *arrays_and_outputs):
    """One of the library's kernels (tests hold them to the reference formulas)."""
    dtype, U, labels, gw, scale = _problem(precision_bits, U, labels)
    N, H = U.shape
    ints = np.array([arrays_and_outputs[0].shape[-1], H, N, int(anchor)], dtype=np.intc)
    scalars = np.array([kappa, scale], dtype=dtype)
    fn = getattr(_library(), f"ssm_{name}_{_suffix(precision_bits)}")
    fn(*map(_pointer, (ints, scalars, U, labels, gw, *arrays_and_outputs)))


def forcing(z, yn, mu, P, Q, anchor: int, kappa, U, labels, precision_bits: int):
    """The native forcing ``G = f(z) + sum_r mu_r p_r (q_r . (z - y_n))`` and ``VG = Q G`` at one state (for tests)."""
    dtype = np.asarray(z).dtype
    D, R = len(z), len(mu)
    G, VG = np.empty(D, dtype=dtype), np.empty(R, dtype=dtype)
    args = [np.ascontiguousarray(np.asarray(v).astype(dtype)) for v in (z, yn, mu, P, Q)]
    _call("forcing", precision_bits, anchor, kappa, U, labels, *args, G, VG)
    return G, VG


def linear_part(z, anchor: int, kappa, U, labels, precision_bits: int):
    """The native frozen stiff part ``(mu, P, Q)`` at one state (for tests)."""
    dtype = np.asarray(z).dtype
    D, N = len(z), np.asarray(U).shape[0]
    mu, P, Q = np.empty(N, dtype=dtype), np.empty((N, D), dtype=dtype), np.empty((N, D), dtype=dtype)
    _call("linear_part", precision_bits, anchor, kappa, U, labels, np.ascontiguousarray(z), mu, P, Q)
    return mu, P, Q


def loss(z, anchor: int, kappa, U, labels, precision_bits: int):
    """The native training loss at one anchored state (for tests)."""
    out = np.empty(1, dtype=np.asarray(z).dtype)
    _call("loss", precision_bits, anchor, kappa, U, labels, np.ascontiguousarray(z), out)
    return out[0]


def weights(M: int, z_values) -> np.ndarray:
    """The native longdouble weights ``W[n, p, k]`` of the rates ``z_values`` (for tests)."""
    _, _, _, powers, lc, inv, J = _tables(M, 64)
    z = np.ascontiguousarray(np.asarray(z_values, dtype=np.longdouble).reshape(-1))
    out = np.empty((z.size, M + 1, M), dtype=np.longdouble)
    _library().ssm_weights(ctypes.c_int(M), ctypes.c_int(J), *map(_pointer, (powers, lc, inv, z)), ctypes.c_int(z.size),
                           _pointer(out))
    return out
