"""Smoke test of an installed wheel, run in a fresh environment (by .ci/wheel and cibuildwheel's
test-command): the extension imports and its kernels agree with numpy; the C API files are there.
Needs numpy only. Prints one 'N passed, N failed' line; exit status 1 on any failure."""

import os
import sys
import traceback

import numpy as np

import slmkernels as sk

checks = []


def check(fn):
    checks.append(fn)
    return fn


@check
def installed_not_source_tree():
    assert "site-packages" in sk.__file__ or "dist-packages" in sk.__file__, sk.__file__


@check
def quantize_roundtrip():
    x = np.random.default_rng(0).standard_normal((8, 64)).astype(np.float32)
    for fmt in ("q8_0", "q4_0", "f16"):
        err = np.abs(sk.dequantize(sk.quantize(x, fmt)) - x).max()
        assert err < 0.5, (fmt, err)


@check
def matmul_matches_numpy():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((48, 256)).astype(np.float32)
    x = rng.standard_normal((3, 256)).astype(np.float32)
    for fmt in ("q8_0", "q4_k"):
        qt = sk.quantize(w, fmt)
        ref = x @ sk.dequantize(qt).T
        got = sk.matmul(x, qt)
        assert np.abs(got - ref).max() <= 0.05 * np.abs(ref).max(), fmt


@check
def rope_and_attention_run():
    rng = np.random.default_rng(2)
    q = rng.standard_normal((2, 4, 64)).astype(np.float32)
    r = sk.rope(q, np.array([0, 1]), theta=10000.0, mode="neox")
    np.testing.assert_allclose(r[0], q[0], atol=1e-6)  # position 0: no rotation
    c = sk.KVCache(1, 2, 64, capacity_tokens=32, dtype="f32")
    s = c.new_sequence()
    k = rng.standard_normal((2, 2, 64)).astype(np.float32)
    c.append(0, s, k, k)
    o = sk.attention(q, c, 0, s)
    np.testing.assert_allclose(o[0, 0], k[0, 0], atol=1e-5)  # the first token sees only itself


@check
def c_api_files():
    assert os.path.isfile(os.path.join(sk.get_include(), "slmkernels.h"))
    assert os.path.isfile(os.path.join(sk.get_cmake_dir(), "slmkernelsConfig.cmake"))
    libdir = os.path.join(os.path.dirname(sk.__file__), "lib")
    assert any(f.startswith("libslmkernels") for f in os.listdir(libdir)), os.listdir(libdir)


failed = 0
for fn in checks:
    try:
        fn()
    except Exception:
        failed += 1
        print(f"FAILED {fn.__name__}", file=sys.stderr)
        traceback.print_exc()
print(f"wheel smoke ({sk.get_isa()}): {len(checks) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
