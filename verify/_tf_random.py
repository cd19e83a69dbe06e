"""TensorFlow's stateless normal stream in numpy, bit for bit: ``tf.random.stateless_normal([n], seed=[s, 0])``.

The paper's Keras initialisers ``RandomNormal(0, sd, seed=s)`` are *stateless*: each returns
the first ``prod(shape)`` numbers (row-major) of one float32 stream ``z_0, z_1, ...`` that
depends on the seed only, times ``sd``. This module computes that stream without TensorFlow,
as TensorFlow computes it on a CPU (``alg="philox"``, the CPU's default; float32 output):

1. **Key and counter from the seed pair** ``(s_0, s_1)`` (64-bit integers, read as unsigned
   two's complement). The words ``(lo(s_0), hi(s_0), lo(s_1), hi(s_1))`` are scrambled by one
   Philox-4x32-10 block under the fixed key ``(0x3EC8F720, 0x02461E29)``; its output
   ``(m_0, m_1, m_2, m_3)`` gives the stream's key ``(m_0, m_1)`` and first counter
   ``(0, 0, m_2, m_3)`` (least significant word first).
2. **Philox-4x32-10** (Salmon et al., SC 2011): block ``i`` is the 128-bit counter ``c + i``
   sent through ten rounds; a round maps ``(x_0, x_1, x_2, x_3)`` under key ``(k_0, k_1)`` to
   ``(hi(B x_2) ^ x_1 ^ k_0, lo(B x_2), hi(A x_0) ^ x_3 ^ k_1, lo(A x_0))`` with
   ``A = 0xD2511F53``, ``B = 0xCD9E8D57`` (64-bit products split into 32-bit halves), and the
   key grows by ``(0x9E3779B9, 0xBB67AE85)`` (mod 2^32) between rounds. Block ``i`` yields
   words ``4i .. 4i+3`` of the stream, so output ``j`` depends on ``j`` alone: the first
   ``n`` numbers of a longer stream are the stream of length ``n``.
3. **Uniforms.** A word ``w`` becomes ``u(w) = 1.m - 1`` in float32, where ``1.m`` is the
   float32 with exponent 0 and the low 23 bits of ``w`` as mantissa: ``u = (w mod 2^23) / 2^23``
   exactly, in ``[0, 1)``.
4. **Box–Muller on consecutive pairs** ``(w_{2j}, w_{2j+1})``: ``u_1 = max(u(w_{2j}), 1e-7)``,
   ``v = fl32(2 pi u(w_{2j+1}))`` (the product taken in float64, then rounded),
   ``r = sqrt(-2 log u_1)`` and ``z_{2j} = r sin v``, ``z_{2j+1} = r cos v``, every operation
   in float32 arithmetic.

The float32 ``log``, ``sin`` and ``cos`` are those of the C library TensorFlow calls on
x86-64 Linux (glibc's ``logf`` and ``sincosf``), which are not correctly rounded: with
correctly rounded ones instead, some outputs would differ in their last bit. :func:`_logf` and :func:`_sincosf` evaluate glibc's algorithms (table-driven
reduction, then short polynomials, in float64, rounded once to float32) with glibc's
constants. On the inputs Box–Muller can give them — every ``u_1`` in ``{1e-7} ∪ 2^-23 {1, ...,
2^23 - 1}`` and every ``v`` it makes — they agree with glibc 2.36 bit for bit (checked
exhaustively, 2^23 inputs each); ``tests/test_tf_random.py`` compares whatever C library the
machine has on a sample of them.

Public: :func:`philox_4x32_10`, :func:`stateless_key_counter`, :func:`tf_stateless_normal`,
:func:`keras_random_normal`.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np

from ssmpoison.theory._validation import require_int, require_real

__all__ = ["philox_4x32_10", "stateless_key_counter", "tf_stateless_normal", "keras_random_normal"]

_MASK32 = 0xFFFFFFFF
_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)  # Philox multipliers
_W0, _W1 = 0x9E3779B9, 0xBB67AE85  # Weyl key increments
_SCRAMBLE_KEY = (0x3EC8F720, 0x02461E29)  # TensorFlow's fixed key for the seed scramble
_SEED_LIMIT = 2**63  # a seed word is a signed 64-bit integer
_MAX_LENGTH = 2**31  # numbers per call (a bound on memory, not on TensorFlow)


def philox_4x32_10(counter, key):
    """Ten Philox-4x32 rounds on each counter (vectorised over the counters).

    Arguments:
        counter: four arrays (or integers) of 32-bit words ``(x_0, x_1, x_2, x_3)``, least
            significant first; all of one shape.
        key: two 32-bit integers ``(k_0, k_1)``.

    Returns:
        Four ``uint32`` arrays: the block of each counter.
    """
    x = [np.asarray(w, dtype=np.uint64) & np.uint64(_MASK32) for w in counter]
    k0, k1 = int(key[0]) & _MASK32, int(key[1]) & _MASK32
    shift = np.uint64(32)
    for _ in range(10):
        p0, p1 = _M0 * x[0], _M1 * x[2]  # exact: 32 x 32 -> 64 bits
        x = [(p1 >> shift) ^ x[1] ^ np.uint64(k0), p1 & np.uint64(_MASK32),
             (p0 >> shift) ^ x[3] ^ np.uint64(k1), p0 & np.uint64(_MASK32)]
        k0, k1 = (k0 + _W0) & _MASK32, (k1 + _W1) & _MASK32
    return [w.astype(np.uint32) for w in x]


def _seed_pair(seed) -> tuple[int, int]:
    """``s`` -> ``(s, 0)``; a pair as given; each word a signed 64-bit integer."""
    if isinstance(seed, (Integral, str)) and not isinstance(seed, bool):
        pair = (seed, 0)
    else:
        try:
            pair = tuple(seed)
        except TypeError:
            raise ValueError(f"seed must be an integer or a pair of integers, got {seed!r}") from None
        if len(pair) != 2:
            raise ValueError(f"seed must be an integer or a pair of integers, got {len(pair)} values")
    return tuple(require_int(f"seed[{k}]", s, minimum=-_SEED_LIMIT, maximum=_SEED_LIMIT - 1) for k, s in enumerate(pair))


def stateless_key_counter(seed):
    """TensorFlow's Philox key and first counter of the stateless ops for ``seed``.

    Arguments:
        seed: an integer ``s`` (the pair ``(s, 0)``, as Keras passes it) or a pair ``(s_0, s_1)``
            of signed 64-bit integers.

    Returns:
        ``(key, counter)``: ``key = (m_0, m_1)``, ``counter = (0, 0, m_2, m_3)``, where ``m`` is
        the Philox block of ``(lo(s_0), hi(s_0), lo(s_1), hi(s_1))`` under the key
        ``(0x3EC8F720, 0x02461E29)``.

    Raises:
        ValueError: a seed that is not an integer or a pair of integers in ``[-2^63, 2^63)``.
    """
    s0, s1 = (s % 2**64 for s in _seed_pair(seed))
    words = (s0 & _MASK32, s0 >> 32, s1 & _MASK32, s1 >> 32)
    m = [int(w) for w in philox_4x32_10(words, _SCRAMBLE_KEY)]
    return (m[0], m[1]), (0, 0, m[2], m[3])


def _words(n_blocks: int, key, counter) -> np.ndarray:
    """The stream's first ``4 n_blocks`` 32-bit words: block ``i`` is Philox of ``counter + i`` (128-bit)."""
    i = np.arange(n_blocks, dtype=np.uint64)
    x, carry = [], i
    for w in counter:  # add i to the 128-bit counter, word by word with carries
        total = np.uint64(w) + carry
        x.append(total & np.uint64(_MASK32))
        carry = total >> np.uint64(32)
    return np.stack(philox_4x32_10(x, key), axis=1).reshape(-1)


def _uniform(words: np.ndarray) -> np.ndarray:
    """``u(w) = (w mod 2^23) / 2^23`` in float32 (TensorFlow builds ``1.m`` and subtracts 1, exactly)."""
    return ((words & np.uint32(0x7FFFFF)) | np.uint32(0x3F800000)).view(np.float32) - np.float32(1.0)


# ------------------------------------------------ glibc's logf and sincosf (x86-64), evaluated in numpy

_h = float.fromhex
#: logf: 16 subintervals of [0x3f330000, 2 * 0x3f330000) as floats, each with 1/c and log(c) for a c near its centre
_LOGF_INVC = np.array([_h(s) for s in (
    "0x1.661ec79f8f3bep+0", "0x1.571ed4aaf883dp+0", "0x1.49539f0f010bp+0", "0x1.3c995b0b80385p+0",
    "0x1.30d190c8864a5p+0", "0x1.25e227b0b8eap+0", "0x1.1bb4a4a1a343fp+0", "0x1.12358f08ae5bap+0",
    "0x1.0953f419900a7p+0", "0x1p+0", "0x1.e608cfd9a47acp-1", "0x1.ca4b31f026aap-1",
    "0x1.b2036576afce6p-1", "0x1.9c2d163a1aa2dp-1", "0x1.886e6037841edp-1", "0x1.767dcf5534862p-1")])
_LOGF_LOGC = np.array([_h(s) for s in (
    "-0x1.57bf7808caadep-2", "-0x1.2bef0a7c06ddbp-2", "-0x1.01eae7f513a67p-2", "-0x1.b31d8a68224e9p-3",
    "-0x1.6574f0ac07758p-3", "-0x1.1aa2bc79c81p-3", "-0x1.a4e76ce8c0e5ep-4", "-0x1.1973c5a611cccp-4",
    "-0x1.252f438e10c1ep-5", "0x0p+0", "0x1.aa5aa5df25984p-5", "0x1.c5e53aa362eb4p-4",
    "0x1.526e57720db08p-3", "0x1.bc2860d22477p-3", "0x1.1058bc8a07ee1p-2", "0x1.4043057b6ee09p-2")])
_LN2 = _h("0x1.62e42fefa39efp-1")
_LOGF_P = (_h("-0x1.00ea348b88334p-2"), _h("0x1.5575b0be00b6ap-2"), _h("-0x1.ffffef20a4123p-2"))
#: sincosf: 2/pi * 2^24, pi/2, the cosine (1, c1..c4) and sine (s1..s3) polynomials
_HPI_INV, _HPI = _h("0x1.45f306dc9c883p+23"), _h("0x1.921fb54442d18p+0")
_COS_P = (1.0, _h("-0x1.ffffffd0c621cp-2"), _h("0x1.55553e1068f19p-5"), _h("-0x1.6c087e89a359dp-10"),
          _h("0x1.99343027bf8c3p-16"))
_SIN_P = (_h("-0x1.555545995a603p-3"), _h("0x1.1107605230bc4p-7"), _h("-0x1.994eb3774cf24p-13"))
_PIO4F_TOP = (int(np.float32(_h("0x1.921fb6p-1")).view(np.uint32)) >> 20) & 0x7FF
_TINY_TOP = (int(np.float32(2.0**-12).view(np.uint32)) >> 20) & 0x7FF


def _logf(x: np.ndarray) -> np.ndarray:
    """glibc's ``logf`` of positive normal float32 ``x``.

    ``x = 2^k z`` with ``z`` in ``[0x3f330000, 2 * 0x3f330000)`` (as float bits) and exact;
    with the table's ``c`` for the subinterval of ``z``, ``r = z/c - 1`` and
    ``log x = log1p(r) + log c + k ln 2``, ``log1p(r) ~ r + P(r) r^2`` (degree-4 polynomial),
    all in float64, rounded once to float32; ``log 1 = 0``.
    """
    ix = x.view(np.uint32)
    tmp = ix - np.uint32(0x3F330000)
    i = (tmp >> np.uint32(19)) & np.uint32(15)
    k = (tmp.view(np.int32) >> 23).astype(np.float64)
    z = (ix - (tmp & np.uint32(0xFF800000))).view(np.float32).astype(np.float64)
    a0, a1, a2 = _LOGF_P
    r = z * _LOGF_INVC[i] - 1.0
    y0 = _LOGF_LOGC[i] + k * _LN2
    r2 = r * r
    y = a0 * r2 + (a1 * r + a2)
    y = y * r2 + (y0 + r)
    return np.where(ix == np.uint32(0x3F800000), np.float32(0.0), y.astype(np.float32))


def _sincosf(v: np.ndarray):
    """glibc's ``sincosf`` of float32 ``v`` with ``0 <= v < 120``.

    ``|v| < 2^-12``: ``(v, 1)``. ``|v| < pi/4`` (compared on the top 12 bits): the polynomials
    at ``x = v``. Otherwise ``n = round(v 2/pi)`` (from a float64 product scaled by 2^24) and
    ``x = v - n pi/2`` in float64; quadrant ``n`` sets the signs and swaps sine and cosine.
    ``sin x ~ x + x^3 (s1 + x^2 s2 + x^4 s3)``, ``cos x ~ 1 + x^2 c1 + x^4 c2 + x^6 (c3 + x^2 c4)``,
    each in float64, rounded once to float32.
    """
    top = (v.view(np.uint32) >> np.uint32(20)) & np.uint32(0x7FF)
    x = v.astype(np.float64)
    small = top < _PIO4F_TOP
    n = ((x * _HPI_INV).astype(np.int64).astype(np.int32) + np.int32(0x800000)) >> 24
    n = np.where(small, 0, n)
    x = np.where(small, x, x - n * _HPI)
    quadrant = n & 3
    xs = np.where((quadrant == 1) | (quadrant == 2), -x, x)  # sign of the sine in quadrants 0..3
    flip = np.where((n & 2) != 0, -1.0, 1.0)  # the cosine polynomial is negated in quadrants 2, 3
    c0, c1, c2, c3, c4 = (flip * c for c in _COS_P)
    s1, s2, s3 = _SIN_P
    x2 = x * x
    x3, x4 = x2 * xs, x2 * x2
    sin_poly = (xs + x3 * s1) + (x3 * x2) * (s2 + x2 * s3)
    cos_poly = (c0 + x2 * c1 + x4 * c2) + (x4 * x2) * (c3 + x2 * c4)
    sin_poly, cos_poly = sin_poly.astype(np.float32), cos_poly.astype(np.float32)
    odd = (n & 1) == 1
    tiny = top < _TINY_TOP
    sin_v = np.where(tiny, v, np.where(odd, cos_poly, sin_poly))
    cos_v = np.where(tiny, np.float32(1.0), np.where(odd, sin_poly, cos_poly))
    return sin_v, cos_v


def _box_muller(words: np.ndarray) -> np.ndarray:
    """Float32 normals from consecutive word pairs (module docstring, step 4)."""
    u1 = np.maximum(_uniform(words[0::2]), np.float32(1e-7))
    v = (2.0 * np.pi * _uniform(words[1::2]).astype(np.float64)).astype(np.float32)
    radius = np.sqrt(np.float32(-2.0) * _logf(u1))
    sin_v, cos_v = _sincosf(v)
    out = np.empty(words.shape[0], dtype=np.float32)
    out[0::2], out[1::2] = sin_v * radius, cos_v * radius
    return out


def tf_stateless_normal(n: int, seed) -> np.ndarray:
    """The first ``n`` numbers of ``tf.random.stateless_normal([n], seed=[s, 0])`` (TensorFlow, CPU), bit for bit.

    Philox-4x32-10 keyed from the seed pair, then Box–Muller on pairs of its words (module
    docstring). TensorFlow fills the output four words (one Philox block, two Box–Muller pairs)
    at a time and cuts the last block, so this is the prefix of any longer stream.

    Arguments:
        n: how many numbers (``0 <= n < 2^31``).
        seed: an integer ``s`` (the pair ``(s, 0)``, as Keras' seeded initialisers use) or a pair
            ``(s_0, s_1)`` of signed 64-bit integers.

    Returns:
        A float32 array of shape ``(n,)``.

    Raises:
        ValueError: ``n`` or ``seed`` out of range or not integers.
    """
    n = require_int("n", n, minimum=0, maximum=_MAX_LENGTH - 1)
    key, counter = stateless_key_counter(seed)
    return _box_muller(_words((n + 3) // 4, key, counter))[:n]


def keras_random_normal(shape, stddev, seed) -> np.ndarray:
    """What Keras' ``RandomNormal(mean=0, stddev=stddev, seed=seed)`` returns for ``shape`` (float32).

    The stateless stream cut to ``prod(shape)`` numbers, laid out row-major, times ``stddev``
    in float32: ``fl32(z_j * fl32(stddev))``. Every initialiser seeded alike returns the same
    numbers, whatever layer holds it.

    Arguments:
        shape: a sequence of non-negative integers (a kernel's shape, e.g. ``(D, D)``).
        stddev: the standard deviation (a positive real).
        seed: as in :func:`tf_stateless_normal`.

    Returns:
        A float32 array of shape ``shape``.

    Raises:
        ValueError: a bad shape, stddev or seed.
    """
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError(f"shape must be a sequence of integers, got {shape!r}") from None
    dims = tuple(require_int(f"shape[{k}]", d, minimum=0) for k, d in enumerate(dims))
    size = int(np.prod(dims, dtype=object)) if dims else 1
    if size >= _MAX_LENGTH:
        raise ValueError(f"shape must hold fewer than 2^31 numbers, got {size}")
    scale = np.float32(float(require_real("stddev", stddev, positive=True)))
    return (tf_stateless_normal(size, seed) * scale).reshape(dims)
