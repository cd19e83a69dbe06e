"""TensorFlow's stateless normal stream in numpy (``ssmpoison.verify._tf_random``), bit for bit.

``tests/data/tf_stateless_normal.json`` holds the first 625 numbers of
``tf.random.stateless_normal([625], seed=[s, 0])`` (tensorflow-cpu 2.15.0, x86_64 Linux) for
every seed of the paper's gradient-descent experiments, as float32 bit patterns.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import platform
from pathlib import Path

import numpy as np
import pytest

from ssmpoison.verify._registry import published_setting
from ssmpoison.verify._tf_random import (
    _logf,
    _sincosf,
    _uniform,
    keras_random_normal,
    philox_4x32_10,
    stateless_key_counter,
    tf_stateless_normal,
)

DATA = json.loads((Path(__file__).parent / "data" / "tf_stateless_normal.json").read_text())
STREAMS = {int(seed): np.array([int(w, 16) for w in words.split()], dtype=np.uint32).view(np.float32)
           for seed, words in DATA["streams"].items()}


def _bits(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).view(np.uint32)


def test_reference_file_covers_the_papers_gd_seeds():
    # beyond H=6 and H=10, non-linear H=6 and H=10, the dynamics figures (standalone and SSM in network)
    used = {200, 201, 204, 205, 1200, 1201, 1203, 1204, 4540, 4541, 4543, 4544, 4545, 100, 105, 4000, 4001, 4542, 4603}
    assert used <= set(STREAMS) and all(len(z) == DATA["length"] == 625 for z in STREAMS.values())


@pytest.mark.parametrize("seed", sorted(STREAMS))
def test_stream_equals_tensorflow_bit_for_bit(seed):
    ours = tf_stateless_normal(625, seed)
    assert ours.dtype == np.float32 and ours.shape == (625,)
    np.testing.assert_array_equal(_bits(ours), _bits(STREAMS[seed]))


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 7, 10, 100, 625])
def test_prefixes_of_every_length(n):
    """TensorFlow fills its output one Philox block (4 words -> 2 Box-Muller pairs -> 4 normals) at a
    time and cuts the last block: number j depends on j alone, so ``stateless_normal([n])`` is the
    first n numbers of any longer stream, odd n included."""
    for seed, reference in STREAMS.items():
        np.testing.assert_array_equal(_bits(tf_stateless_normal(n, seed)), _bits(reference[:n]))


def test_seed_forms():
    np.testing.assert_array_equal(_bits(tf_stateless_normal(9, (4541, 0))), _bits(STREAMS[4541][:9]))
    np.testing.assert_array_equal(_bits(tf_stateless_normal(9, np.int64(4541))), _bits(STREAMS[4541][:9]))
    assert not np.array_equal(tf_stateless_normal(8, (4541, 1)), STREAMS[4541][:8])  # another stream
    assert not np.array_equal(tf_stateless_normal(8, (0, 4541)), STREAMS[4541][:8])
    # a seed word is a signed 64-bit integer, read as unsigned: -1 is 2^64 - 1
    key, counter = stateless_key_counter((-1, 0))
    assert counter[:2] == (0, 0) and all(0 <= w < 2**32 for w in (*key, *counter))


def test_philox_known_answers():
    """Random123's known-answer vectors of Philox-4x32-10."""
    cases = [
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
         (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
    ]
    for counter, key, expected in cases:
        assert tuple(int(w) for w in philox_4x32_10(counter, key)) == expected


def test_keras_random_normal_is_the_stream_times_sd_row_major():
    z = tf_stateless_normal(100, 4541)
    kernel = keras_random_normal((10, 10), 0.01, 4541)
    assert kernel.dtype == np.float32 and kernel.shape == (10, 10)
    np.testing.assert_array_equal(kernel.reshape(-1), z * np.float32(0.01))
    np.testing.assert_array_equal(np.diag(kernel), z[::11] * np.float32(0.01))  # the diagonal is z[0], z[D+1], ...
    np.testing.assert_array_equal(keras_random_normal((1, 10), 0.01, 4541)[0], kernel.reshape(-1)[:10])
    np.testing.assert_array_equal(keras_random_normal((10, 1), 0.01, 4541)[:, 0], kernel.reshape(-1)[:10])


def test_the_papers_printed_initial_diagonal_for_nonlinear_seed_4541():
    """The paper's SSM-in-network dynamics notebook prints, at epoch 0 of non-linear seed 4541 (D = 10,
    sd_A = 0.01, no warm start), the 7 largest |a_i|: 0.01807914 0.01438873 0.00980635 0.00793589
    0.0067946 0.00550804 0.00461668 (the second largest draw was replaced by the gap: a_2 = a_1 - diff
    < 0). The toolkit's run of that seed starts from them plus the row's warm start 0.001."""
    from ssmpoison.verify._dynamics import gd_dynamics

    printed = [0.01807914, 0.01438873, 0.00980635, 0.00793589, 0.0067946, 0.00550804, 0.00461668]
    setting = published_setting("nonlinear", 6)
    (run,) = gd_dynamics(setting, 4541, (False,), points=2, max_steps=1)
    assert run.series.times[0] == 0
    start = np.sort(np.abs(np.asarray(run.series.entries[0], dtype=float) - setting.config.warm_start))[::-1]
    np.testing.assert_allclose(start[:7], printed, rtol=1e-6)


# ------------------------------------------------ the C library's float32 log, sin and cos


def _glibc():
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64") or platform.libc_ver()[0] != "glibc":
        pytest.skip("TensorFlow's numbers are those of glibc's logf/sincosf on x86-64 Linux")
    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    for name in ("logf", "sinf", "cosf"):
        getattr(libm, name).restype, getattr(libm, name).argtypes = ctypes.c_float, [ctypes.c_float]
    return libm


def _box_muller_inputs(words: np.ndarray):
    """The log's inputs ``max(u, 1e-7)`` and the angle ``fl32(2 pi u)`` Box-Muller makes of ``words``."""
    u = _uniform(words)
    return np.maximum(u, np.float32(1e-7)), (2.0 * np.pi * u.astype(np.float64)).astype(np.float32)


def _compare_with_libm(words: np.ndarray):
    libm = _glibc()
    u1, v = _box_muller_inputs(words)
    log_c = np.array([libm.logf(float(x)) for x in u1], dtype=np.float32)
    sin_c = np.array([libm.sinf(float(x)) for x in v], dtype=np.float32)
    cos_c = np.array([libm.cosf(float(x)) for x in v], dtype=np.float32)
    sin_ours, cos_ours = _sincosf(v)
    np.testing.assert_array_equal(_bits(_logf(u1)), _bits(log_c))
    np.testing.assert_array_equal(_bits(sin_ours), _bits(sin_c))
    np.testing.assert_array_equal(_bits(cos_ours), _bits(cos_c))


def test_log_sin_cos_equal_the_c_librarys_on_a_sample():
    rng = np.random.default_rng(15)
    words = np.concatenate([rng.integers(0, 2**23, 20_000, dtype=np.uint32),
                            np.arange(0, 64, dtype=np.uint32), np.arange(2**23 - 64, 2**23, dtype=np.uint32)])
    _compare_with_libm(words)


@pytest.mark.slow
def test_log_sin_cos_equal_the_c_librarys_on_every_input():
    """Every u in 2^-23 {0, ..., 2^23 - 1}: every input Box-Muller can give logf and sincosf (about a minute)."""
    _compare_with_libm(np.arange(0, 2**23, dtype=np.uint32))


@pytest.mark.parametrize(
    "call, name",
    [(lambda: tf_stateless_normal(-1, 3), "n"), (lambda: tf_stateless_normal(2.0, 3), "n"),
     (lambda: tf_stateless_normal(3, 2**63), r"seed\[0\]"), (lambda: tf_stateless_normal(3, (1, 2, 3)), "seed"),
     (lambda: tf_stateless_normal(3, 1.5), "seed"), (lambda: tf_stateless_normal(3, True), "seed"),
     (lambda: keras_random_normal((2, -1), 0.1, 3), r"shape\[1\]"), (lambda: keras_random_normal(3, 0.1, 3), "shape"),
     (lambda: keras_random_normal((2, 2), 0.0, 3), "stddev")],
)
def test_bad_arguments_are_refused_naming_the_parameter(call, name):
    with pytest.raises(ValueError, match=f"^{name}"):
        call()
