"""rmsnorm, swiglu, geglu, reglu, embedding against numpy (float64), every ISA."""

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


def ref_geglu(g, u):
    """GELU's tanh approximation (Hendrycks & Gimpel 2016) times up, float64:
    0.5 g (1 + tanh(z)), z = sqrt(2/pi)(g + 0.044715 g^3), written as g / (1 + exp(-2z)) (the same
    value; 1 + tanh(z) would cancel to 0 in float64 below z of about -18)."""
    g64 = g.astype(np.float64)
    z = np.sqrt(2 / np.pi) * (g64 + 0.044715 * g64**3)
    with np.errstate(over="ignore"):
        return g64 / (1 + np.exp(-2 * z)) * u


def geglu_rtol(g):
    """The kernels take exp(-t), t = g (c1 + c3 g^2): t's few float32 roundings (~3 ulp) become a
    relative error |t| times that, so the bound grows by 4 ulp per unit of |t| over OPS_RTOL."""
    g64 = g.astype(np.float64)
    t = np.abs(g64 * (2 * np.sqrt(2 / np.pi)) * (1 + 0.044715 * g64**2))
    return OPS_RTOL + 4 * 2**-24 * t


@pytest.mark.parametrize("op", ["swiglu", "geglu"])
@given(rows=st.integers(1, 5), n=st.sampled_from([1, 5, 16, 33, 1536]), seed=st.integers(0, 2**32 - 1),
       scale=st.sampled_from([0.1, 3.0, 30.0]))
def test_gated(isa, op, rows, n, seed, scale):
    rng = np.random.default_rng(seed)
    gu = (rng.standard_normal((rows, 2 * n)) * scale).astype(np.float32)
    g, u = gu[:, :n], gu[:, n:]  # strided halves of a fused projection
    got = getattr(sk, op)(g, u)
    ref, rtol = (ref_swiglu(g, u), OPS_RTOL) if op == "swiglu" else (ref_geglu(g, u), geglu_rtol(g))
    assert (np.abs(got - ref) <= rtol * np.abs(ref) + 1e-30).all()


def test_geglu_extremes_and_nan(isa):
    g = np.array([-1e20, -200.0, -10.0, -5.0, -1.0, 0.0, 0.5, 5.0, 200.0, 1e20, np.inf, np.nan, -np.inf], np.float32)
    u = np.full_like(g, 2.0)
    y = sk.geglu(g, u)
    assert np.isnan(y[-2:]).all() and y[-3] == np.inf and np.isfinite(y[:-3]).all()
    ref = ref_geglu(g[:-3], u[:-3])
    assert (np.abs(y[:-3] - ref) <= geglu_rtol(g[:-3]) * np.abs(ref) + 1e-30).all()


@given(rows=st.integers(1, 5), n=st.sampled_from([1, 5, 16, 33, 1536]), seed=st.integers(0, 2**32 - 1),
       scale=st.sampled_from([1e-30, 1.0, 1e30]))
def test_reglu(isa, rows, n, seed, scale):
    """relu(g) * u is one rounding of a product float64 holds exactly: every ISA gives numpy's
    float32 rounding of it, bit for bit (overflow to inf and underflow included)."""
    rng = np.random.default_rng(seed)
    gu = (rng.standard_normal((rows, 2 * n)) * scale).astype(np.float32)
    g, u = gu[:, :n], gu[:, n:]  # strided halves of a fused projection
    with np.errstate(over="ignore"):
        want = (np.maximum(g.astype(np.float64), 0.0) * u).astype(np.float32)
    np.testing.assert_array_equal(sk.reglu(g, u), want)


def test_reglu_zeros_nan_inf(isa):
    g = np.array([-0.0, 0.0, -1.0, 2.0, np.nan, -np.inf, np.inf, -3.0, 5.0] * 3, np.float32)
    u = np.array([1.0, -1.0, np.inf, -2.0, 1.0, 1.0, 0.0, np.nan, np.inf] * 3, np.float32)
    y = sk.reglu(g, u)
    # relu keeps -0 and NaN (g < 0 ? +0 : g); 0 * inf and inf * 0 are NaN, NaN * anything NaN
    with np.errstate(invalid="ignore"):
        want = np.where(g < 0, np.float32(0.0), g) * u
    np.testing.assert_array_equal(y.view(np.uint32)[~np.isnan(want)], want.view(np.uint32)[~np.isnan(want)])
    assert np.array_equal(np.isnan(y), np.isnan(want))


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
