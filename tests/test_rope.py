"""rope against a float64 numpy reference written from the published formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import slmkernels as sk
from slmkernels.tolerances import ROPE_RTOL  # a few ulps of |x|; where it comes from: there


def ref_freqs(theta, rot, scaling=None, freq_factors=None):
    """Per-pair (extrapolated frequency, interpolation scale, ramp mix, magnitude)."""
    i = np.arange(rot // 2, dtype=np.float64)
    freq = theta ** (-2.0 * i / rot)  # RoFormer: theta_i = base^(-2i/d)
    ff = np.ones_like(freq)
    freq_scale, ramp, mscale = 1.0, np.zeros_like(freq), 1.0
    if scaling and scaling["type"] == "linear":
        freq_scale = 1.0 / scaling["factor"]
    elif scaling and scaling["type"] == "yarn":
        # YaRN (Peng et al. 2023, sec. 3.2-3.4): pairs rotating more than beta_fast times in the
        # original context extrapolate, fewer than beta_slow interpolate, a linear ramp between.
        freq_scale = 1.0 / scaling["factor"]
        ext = scaling.get("ext_factor", 1.0)
        orig = scaling["original_context"]

        def corr_dim(n_rot):
            return rot * math.log(orig / (n_rot * 2 * math.pi)) / (2 * math.log(theta))

        low = max(0.0, math.floor(corr_dim(scaling.get("beta_fast", 32.0))))
        high = min(rot - 1.0, math.ceil(corr_dim(scaling.get("beta_slow", 1.0))))
        y = (i - low) / max(0.001, high - low)
        ramp = (1.0 - np.clip(y, 0.0, 1.0)) * ext
        mscale = scaling.get("attn_factor", 1.0)
        if ext != 0:
            mscale *= 1.0 + 0.1 * math.log(scaling["factor"])  # sqrt(1/t) = 0.1 ln(s) + 1
    elif scaling and scaling["type"] == "llama3":
        # Llama 3.1: long wavelengths divided by `factor`, short kept, smooth in between.
        factor, lo, hi, orig = (scaling[k] for k in ("factor", "low_freq_factor", "high_freq_factor", "original_context"))
        wavelen = 2 * math.pi / freq
        smooth = (orig / wavelen - lo) / (hi - lo)
        new = np.where(wavelen < orig / hi, freq, np.where(wavelen > orig / lo, freq / factor,
                                                           (1 - smooth) * freq / factor + smooth * freq))
        ff = freq / new
    if freq_factors is not None:
        ff = ff * np.asarray(freq_factors, np.float64)
    return freq / ff, freq_scale, ramp, mscale


def ref_rope(x, pos, theta, mode, rot=None, scaling=None, freq_factors=None):
    T, H, D = x.shape
    rot = rot or D
    freq, fs, ramp, mscale = ref_freqs(theta, rot, scaling, freq_factors)
    extrap = pos.astype(np.float64)[:, None] * freq[None, :]
    ang = fs * extrap * (1 - ramp) + extrap * ramp
    c = (np.cos(ang) * mscale)[:, None, :]
    s = (np.sin(ang) * mscale)[:, None, :]
    y = x.astype(np.float64).copy()
    half = rot // 2
    if mode == "normal":
        a, b = x[..., 0:rot:2].astype(np.float64), x[..., 1:rot:2].astype(np.float64)
        y[..., 0:rot:2], y[..., 1:rot:2] = a * c - b * s, a * s + b * c
    else:
        a, b = x[..., :half].astype(np.float64), x[..., half:rot].astype(np.float64)
        y[..., :half], y[..., half:rot] = a * c - b * s, a * s + b * c
    return y


SCALINGS = [
    None,
    {"type": "linear", "factor": 4.0},
    {"type": "yarn", "factor": 8.0, "original_context": 4096, "ext_factor": 1.0, "attn_factor": 1.0, "beta_fast": 32.0, "beta_slow": 1.0},
    {"type": "yarn", "factor": 4.0, "original_context": 2048, "ext_factor": 0.5, "attn_factor": 0.9},
    {"type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_context": 8192},
]


@pytest.mark.parametrize("mode", ["normal", "neox"])
@pytest.mark.parametrize("scaling", SCALINGS, ids=["none", "linear", "yarn", "yarn-partial", "llama3"])
@given(
    head_dim=st.sampled_from([64, 80, 128, 256]),
    heads=st.integers(1, 4),
    tokens=st.integers(1, 5),
    partial=st.booleans(),
    big=st.booleans(),
    ff=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_rope_matches_reference(mode, scaling, head_dim, heads, tokens, partial, big, ff, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((tokens, heads, head_dim)).astype(np.float32)
    pos = rng.integers(0, 1_000_001 if big else 4096, size=tokens)
    rot = head_dim // 2 if partial else None
    r = rot or head_dim
    factors = rng.uniform(0.5, 8.0, size=r // 2) if ff else None
    theta = 500000.0 if scaling and scaling["type"] == "llama3" else 10000.0
    got = sk.rope(x, pos, theta=theta, mode=mode, rotary_dim=rot, scaling=scaling, freq_factors=factors)
    ref = ref_rope(x, pos, theta, mode, rot, scaling, factors)
    scale = np.abs(x).max(axis=-1, keepdims=True) * (1.5 if scaling and scaling["type"] == "yarn" else 1.0)
    assert (np.abs(got - ref) <= ROPE_RTOL * scale + 1e-30).all()
    if rot:
        np.testing.assert_array_equal(got[..., rot:], x[..., rot:])  # the rest passes through


def test_rope_in_place_and_positions_dtypes():
    x = np.random.default_rng(0).standard_normal((3, 2, 64)).astype(np.float32)
    y = sk.rope(x, np.array([0, 5, 9], np.int32), theta=10000.0, mode="neox")
    z = x.copy()
    r = sk.rope(z, np.array([0, 5, 9]), theta=10000.0, mode="neox", out=z)
    np.testing.assert_array_equal(z, y)
    assert np.shares_memory(r, z)
    np.testing.assert_array_equal(y[0], x[0])  # position 0 is the identity


def test_rope_errors():
    x = np.zeros((2, 1, 64), np.float32)
    p = np.array([0, 1])
    with pytest.raises(ValueError, match="mode"):
        sk.rope(x, p, theta=1e4, mode="gptj")
    with pytest.raises(ValueError, match="rotary_dim"):
        sk.rope(x, p, theta=1e4, mode="normal", rotary_dim=63)
    with pytest.raises(ValueError, match="one position per token"):
        sk.rope(x, np.array([0]), theta=1e4, mode="normal")
    with pytest.raises(TypeError, match="integer"):
        sk.rope(x, np.array([0.0, 1.0]), theta=1e4, mode="normal")
    with pytest.raises(ValueError, match="3-D"):
        sk.rope(np.zeros((2, 64), np.float32), p, theta=1e4, mode="normal")
    with pytest.raises(ValueError, match="original_context"):
        sk.rope(x, p, theta=1e4, mode="normal", scaling={"type": "yarn", "factor": 2.0})
    with pytest.raises(ValueError, match="unknown scaling"):
        sk.rope(x, p, theta=1e4, mode="normal", scaling={"type": "ntk", "factor": 2.0})
    with pytest.raises(ValueError, match="freq_factors"):
        sk.rope(x, p, theta=1e4, mode="normal", freq_factors=np.ones(5))
    with pytest.raises(ValueError, match="theta"):
        sk.rope(x, p, theta=-1.0, mode="normal")
    out = np.full((2, 1, 64), 3.0, np.float32)
    with pytest.raises(ValueError):
        sk.rope(x, p, theta=1e4, mode="gptj", out=out)
    assert (out == 3.0).all()
