"""rmsnorm, swiglu, embedding against numpy (float64), every ISA."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import slmkernels as sk
from slmkernels.tolerances import OPS_RTOL  # 64 ulp; where it comes from: there


def ref_rmsnorm(x, w, eps):
    x64 = x.astype(np.float64)
    return x64 / np.sqrt((x64**2).mean(axis=-1, keepdims=True) + eps) * w


def ref_swiglu(g, u):
    g64 = g.astype(np.float64)
    return g64 / (1 + np.exp(-g64)) * u


@given(rows=st.integers(1, 5), n=st.sampled_from([1, 7, 16, 64, 576, 1000, 2048]), seed=st.integers(0, 2**32 - 1),
       scale=st.sampled_from([1e-3, 1.0, 1e3]))
def test_rmsnorm(isa, rows, n, seed, scale):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, n)) * scale).astype(np.float32)
    w = rng.standard_normal(n).astype(np.float32)
    got = sk.rmsnorm(x, w, 1e-5)
    ref = ref_rmsnorm(x, w, 1e-5)
    assert np.allclose(got, ref, rtol=OPS_RTOL, atol=OPS_RTOL * np.abs(w).max() * 1e-3)


@given(rows=st.integers(1, 5), n=st.sampled_from([1, 5, 16, 33, 1536]), seed=st.integers(0, 2**32 - 1),
       scale=st.sampled_from([0.1, 3.0, 30.0]))
def test_swiglu(isa, rows, n, seed, scale):
    rng = np.random.default_rng(seed)
    gu = (rng.standard_normal((rows, 2 * n)) * scale).astype(np.float32)
    g, u = gu[:, :n], gu[:, n:]  # strided halves of a fused projection
    got = sk.swiglu(g, u)
    ref = ref_swiglu(g, u)
    assert np.allclose(got, ref, rtol=OPS_RTOL, atol=1e-30)


def test_swiglu_extremes_and_nan():
    g = np.array([-200.0, -88.0, -20.0, 0.0, 20.0, 88.0, 200.0, np.nan], np.float32)
    u = np.ones_like(g)
    y = sk.swiglu(g, u)
    assert np.isnan(y[-1]) and np.isfinite(y[:-1]).all()
    np.testing.assert_allclose(y[:-1], ref_swiglu(g[:-1], u[:-1]), rtol=OPS_RTOL, atol=1e-30)


def test_in_place_and_threads():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((37, 576)).astype(np.float32)
    w = rng.standard_normal(576).astype(np.float32)
    ref = sk.rmsnorm(x, w, 1e-6)
    before = sk.get_num_threads()
    try:
        for t in (1, 2, 3):
            sk.set_num_threads(t)
            np.testing.assert_array_equal(sk.rmsnorm(x, w, 1e-6), ref)
    finally:
        sk.set_num_threads(before)
    y = x.copy()
    sk.rmsnorm(y, w, 1e-6, out=y)
    np.testing.assert_array_equal(y, ref)


def test_embedding(isa):
    rng = np.random.default_rng(1)
    table = sk.quantize(rng.standard_normal((100, 64)).astype(np.float32), "q8_0")
    ids = np.array([0, 99, 5, 5])
    np.testing.assert_array_equal(sk.embedding(table, ids), sk.dequantize(table)[ids])


def test_errors():
    x = np.zeros((2, 8), np.float32)
    with pytest.raises(ValueError, match="w must be 1-D"):
        sk.rmsnorm(x, np.zeros(7, np.float32), 1e-5)
    with pytest.raises(TypeError, match="float32"):
        sk.rmsnorm(x.astype(np.float64), np.zeros(8, np.float32), 1e-5)
    with pytest.raises(ValueError, match="eps"):
        sk.rmsnorm(x, np.zeros(8, np.float32), float("nan"))
    with pytest.raises(ValueError, match="same shape"):
        sk.swiglu(x, np.zeros((2, 7), np.float32))
    out = np.full((2, 8), 5.0, np.float32)
    with pytest.raises(ValueError, match="shape"):
        sk.swiglu(x, x, out=np.zeros((2, 7), np.float32))
    with pytest.raises(ValueError, match="contiguous rows"):
        sk.swiglu(np.zeros((2, 16), np.float32)[:, ::2], x, out=out)
    assert (out == 5.0).all()
    table = sk.quantize(np.zeros((4, 32), np.float32), "q8_0")
    with pytest.raises(ValueError, match="out of range"):
        sk.embedding(table, np.array([4]))
    with pytest.raises(ValueError, match="out of range"):
        sk.embedding(table, np.array([-1]))
