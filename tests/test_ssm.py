"""Mamba-2 kernels (ssm_conv1d, ssm_scan token by token and chunked, ssm_gated_rmsnorm) against
the float64 reference written from Dao & Gu 2024 (tests/ssm_reference.py), on every ISA."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import slmkernels as sk
import ssm_reference as ref
from ssm_reference import scan_inputs
from slmkernels.tolerances import OPS_RTOL, SSM_CHUNK_RTOL, SSM_RTOL  # where each comes from: there


def ref_scan(x, dt, A, B, C, D, dt_bias, state):
    """float64 outputs, final state (ours: n_heads, d_state, head_dim) and each output's scale:
    the largest |term| its head sums (|C_t[n] H_t[n, p]| and |D x|)."""
    H0 = state.transpose(0, 2, 1)  # the paper's (head_dim, d_state) per head
    y, H = ref.ssd_recurrence(x, dt, A, B, C, D, dt_bias, H0)
    # the states along the way, for the scale of each output
    T, nh, hd = x.shape
    g = np.arange(nh) // (nh // B.shape[1])
    scale = np.zeros((T, nh))
    Hs = np.array(H0, np.float64)
    for t in range(T):
        d = ref.softplus(dt[t].astype(np.float64) + dt_bias)
        a = np.exp(d * A)
        Hs = a[:, None, None] * Hs + d[:, None, None] * x[t][:, :, None] * B[t][g][:, None, :]
        terms = np.abs(Hs * C[t][g][:, None, :])
        scale[t] = np.maximum(terms.max(axis=(1, 2)), np.abs(D[:, None] * x[t]).max(axis=1))
    return y, H.transpose(0, 2, 1), scale


shapes = st.tuples(
    st.integers(1, 150),                      # T: one token, a partial chunk, several chunks
    st.sampled_from([(1, 1), (2, 1), (4, 2), (6, 3), (8, 1)]),  # (n_heads, n_groups)
    st.sampled_from([1, 5, 16, 24, 64]),      # head_dim: below, at, and off the vector widths
    st.sampled_from([1, 7, 16, 128]),         # d_state
)


@given(shape=shapes, seed=st.integers(0, 2**32 - 1), chunked=st.booleans())
def test_scan_matches_reference(isa, shape, seed, chunked):
    T, (nh, ng), hd, ds = shape
    rng = np.random.default_rng(seed)
    x, dt, A, B, C, D, dt_bias, state = scan_inputs(rng, T, nh, hd, ds, ng)
    y_ref, s_ref, scale = ref_scan(x, dt, A, B, C, D, dt_bias, state)
    st_ = state.copy()
    y = sk.ssm_scan(x, dt, A, B, C, D, dt_bias, st_, chunked=chunked)
    tol = (SSM_CHUNK_RTOL if chunked else SSM_RTOL) * scale[:, :, None]
    assert (np.abs(y - y_ref) <= tol).all()
    s_scale = np.abs(s_ref).max(axis=(1, 2), keepdims=True) + np.abs(state).max(axis=(1, 2), keepdims=True)
    assert (np.abs(st_ - s_ref) <= SSM_RTOL * s_scale).all()


def test_reference_chunked_equals_recurrence():
    """The float64 SSD chunked form equals the recurrence: the reference is self-consistent."""
    rng = np.random.default_rng(1)
    x, dt, A, B, C, D, dt_bias, state = scan_inputs(rng, 100, 4, 8, 16, 2)
    H0 = state.transpose(0, 2, 1)
    y1, H1 = ref.ssd_recurrence(x, dt, A, B, C, D, dt_bias, H0)
    for chunk in (1, 7, 64, 128):
        y2, H2 = ref.ssd_chunked(x, dt, A, B, C, D, dt_bias, H0, chunk)
        np.testing.assert_allclose(y2, y1, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(H2, H1, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("T", [1, 63, 64, 65, 200])
def test_chunked_equals_token_by_token(T):
    rng = np.random.default_rng(T)
    x, dt, A, B, C, D, dt_bias, state = scan_inputs(rng, T, 8, 64, 128, 1)
    s1, s2 = state.copy(), state.copy()
    y1 = sk.ssm_scan(x, dt, A, B, C, D, dt_bias, s1)
    y2 = sk.ssm_scan(x, dt, A, B, C, D, dt_bias, s2, chunked=True)
    _, _, scale = ref_scan(x, dt, A, B, C, D, dt_bias, state)
    assert (np.abs(y2 - y1) <= SSM_CHUNK_RTOL * scale[:, :, None]).all()
    assert np.abs(s2 - s1).max() <= SSM_CHUNK_RTOL * np.abs(s1).max()


def test_scan_extremes():
    """dt past softplus's linear threshold (20), decays that underflow to 0, a zero state."""
    rng = np.random.default_rng(5)
    x, dt, A, B, C, D, dt_bias, state = scan_inputs(rng, 70, 4, 16, 16, 1, dt_scale=30.0)
    A[0] = -1e4  # a_t = exp(-1e4 dt) = 0: the state restarts every token
    state[:] = 0
    for chunked in (False, True):
        y_ref, s_ref, scale = ref_scan(x, dt, A, B, C, D, dt_bias, state)
        s = state.copy()
        y = sk.ssm_scan(x, dt, A, B, C, D, dt_bias, s, chunked=chunked)
        assert np.isfinite(y).all()
        assert (np.abs(y - y_ref) <= SSM_CHUNK_RTOL * scale[:, :, None]).all()


@pytest.mark.parametrize("chunked", [False, True])
def test_scan_simd_bits_equal_scalar(chunked):
    """Every ISA's scan gives the scalar twin's bits (lanes over head_dim, no fused multiply-add)."""
    rng = np.random.default_rng(3)
    args = scan_inputs(rng, 130, 6, 24, 16, 2)
    outs = {}
    before = sk.get_isa()
    try:
        for isa in sk.cpu_info()["supported_isas"]:
            sk.set_isa(isa)
            s = args[-1].copy()
            outs[isa] = (sk.ssm_scan(*args[:-1], s, chunked=chunked), s)
    finally:
        sk.set_isa(before)
    y0, s0 = outs["scalar"]
    for isa, (y, s) in outs.items():
        np.testing.assert_array_equal(y, y0, err_msg=isa)
        np.testing.assert_array_equal(s, s0, err_msg=isa)


def test_decode_steps_equal_one_call(isa):
    """Token by token (decode) gives the bits of one sequential call over the same tokens."""
    rng = np.random.default_rng(4)
    x, dt, A, B, C, D, dt_bias, state = scan_inputs(rng, 9, 4, 16, 32, 2)
    s1 = state.copy()
    y1 = sk.ssm_scan(x, dt, A, B, C, D, dt_bias, s1)
    s2 = state.copy()
    y2 = np.concatenate([sk.ssm_scan(x[t:t + 1], dt[t:t + 1], A, B[t:t + 1], C[t:t + 1], D, dt_bias, s2)
                         for t in range(9)])
    np.testing.assert_array_equal(y2, y1)
    np.testing.assert_array_equal(s2, s1)


def test_thread_count_invariance():
    rng = np.random.default_rng(6)
    args = scan_inputs(rng, 150, 8, 64, 64, 2)
    xc = rng.standard_normal((40, 300)).astype(np.float32)
    wc = rng.standard_normal((300, 4)).astype(np.float32)
    sc = rng.standard_normal((3, 300)).astype(np.float32)
    yz = rng.standard_normal((2, 37, 512)).astype(np.float32)
    wn = rng.standard_normal(512).astype(np.float32)
    before = sk.get_num_threads()
    runs = []
    try:
        for n in (1, 2, 3, 7):
            sk.set_num_threads(n)
            out = []
            for chunked in (False, True):
                s = args[-1].copy()
                out += [sk.ssm_scan(*args[:-1], s, chunked=chunked), s]
            s = sc.copy()
            out += [sk.ssm_conv1d(xc, s, wc), s, sk.ssm_gated_rmsnorm(yz[0], yz[1], wn, 4, 1e-5)]
            runs.append(out)
    finally:
        sk.set_num_threads(before)
    for r in runs[1:]:
        for a, b in zip(r, runs[0]):
            np.testing.assert_array_equal(a, b)


@given(T=st.integers(1, 20), C=st.sampled_from([1, 7, 16, 33, 300]), K=st.sampled_from([2, 3, 4]),
       bias=st.booleans(), act=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_conv_matches_reference(isa, T, C, K, bias, act, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((T, C)) * 3).astype(np.float32)
    w = rng.standard_normal((C, K)).astype(np.float32)
    b = rng.standard_normal(C).astype(np.float32) if bias else None
    state = rng.standard_normal((K - 1, C)).astype(np.float32)
    y_ref, s_ref = ref.causal_conv1d(x, state, w, b, activation=act)
    s = state.copy()
    y = sk.ssm_conv1d(x, s, w, b, silu=act)
    np.testing.assert_array_equal(s, s_ref.astype(np.float32))  # the state is a copy of inputs
    # K products summed, a bias, SiLU: a few ulp of the sum of |terms|
    pre = np.abs(np.concatenate([state, x])[np.arange(T)[:, None] + np.arange(K)] * w.T).sum(axis=1)
    if b is not None:
        pre = pre + np.abs(b)
    assert (np.abs(y - y_ref) <= OPS_RTOL * (pre + np.abs(y_ref)) + 1e-30).all()


def test_conv_state_rolls_across_calls(isa):
    """Tokens fed in pieces (prefill, then decode steps) give the bits of one call."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((11, 50)).astype(np.float32)
    w = rng.standard_normal((50, 4)).astype(np.float32)
    b = rng.standard_normal(50).astype(np.float32)
    s1 = np.zeros((3, 50), np.float32)
    y1 = sk.ssm_conv1d(x, s1, w, b)
    s2 = np.zeros((3, 50), np.float32)
    y2 = np.concatenate([sk.ssm_conv1d(x[:2], s2, w, b)] + [sk.ssm_conv1d(x[t:t + 1], s2, w, b) for t in range(2, 11)])
    np.testing.assert_array_equal(y2, y1)
    np.testing.assert_array_equal(s2, s1)


@given(rows=st.integers(1, 4), n=st.sampled_from([8, 24, 64, 200, 3072]), groups=st.sampled_from([1, 2, 4, 8]),
       seed=st.integers(0, 2**32 - 1))
def test_gated_rmsnorm_matches_reference(isa, rows, n, groups, seed):
    if n % groups:
        groups = 1
    rng = np.random.default_rng(seed)
    y = rng.standard_normal((rows, n)).astype(np.float32)
    z = (rng.standard_normal((rows, n)) * 4).astype(np.float32)
    w = rng.standard_normal(n).astype(np.float32)
    got = sk.ssm_gated_rmsnorm(y, z, w, groups, 1e-5)
    want = ref.gated_rmsnorm(y, z, w, groups, 1e-5)
    np.testing.assert_allclose(got, want, rtol=OPS_RTOL, atol=OPS_RTOL * np.abs(w).max() * 1e-3)


def test_kernel_names_follow_isa(isa):
    names = {op: name for op, name in sk.kernel_names().items() if op.startswith("ssm_")}
    assert set(names) == {"ssm_conv_f32", "ssm_scan_f32", "ssm_gram_f32", "ssm_chunk_f32", "ssm_gated_norm_f32"}
    want = {"avx_vnni": "avx2", "avx512_vnni": "avx512", "avx512_amx": "avx512", "neon_dotprod": "neon",
            "neon_i8mm": "neon"}.get(isa, isa)
    assert all(v.endswith("_" + want) for v in names.values())


# ---- arguments: a bad call raises naming the argument and leaves the state untouched ----

def test_scan_bad_arguments_change_nothing():
    rng = np.random.default_rng(9)
    x, dt, A, B, C, D, dt_bias, state = scan_inputs(rng, 3, 4, 8, 16, 2)
    keep = state.copy()
    bad = [
        (dict(x=x[:, :2].copy()), ValueError, r"dt must have shape \(3, 2\)"),
        (dict(x=x[:, :3]), ValueError, "C-contiguous"),
        (dict(B=B[:, :, :5].copy()), ValueError, "C must have shape"),
        (dict(B=np.ascontiguousarray(B[:, :1].repeat(3, 1))), ValueError, "multiple of n_groups"),
        (dict(dt=dt[:2]), ValueError, "dt must have shape"),
        (dict(A=A[:3]), ValueError, "A must have shape"),
        (dict(state=state[:, :, :4].copy()), ValueError, "state must have shape"),
        (dict(x=x.astype(np.float64)), TypeError, "x"),
        (dict(out=np.zeros((3, 4, 7), np.float32)), ValueError, "out must have shape"),
        (dict(out=state), ValueError, "out"),
    ]
    for change, exc, msg in bad:
        kw = dict(x=x, dt=dt, A=A, B=B, C=C, D=D, dt_bias=dt_bias, state=state) | change
        with pytest.raises(exc, match=msg):
            sk.ssm_scan(**kw)
        np.testing.assert_array_equal(state, keep)
    ro = state.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="state must be writeable"):
        sk.ssm_scan(x, dt, A, B, C, D, dt_bias, ro)


def test_conv_and_norm_bad_arguments():
    x = np.ones((2, 8), np.float32)
    w = np.ones((8, 4), np.float32)
    s = np.zeros((3, 8), np.float32)
    with pytest.raises(ValueError, match="state must have shape"):
        sk.ssm_conv1d(x, np.zeros((2, 8), np.float32), w)
    with pytest.raises(ValueError, match="w must have shape"):
        sk.ssm_conv1d(x, s, np.ones((7, 4), np.float32))
    with pytest.raises(ValueError, match="b must have shape"):
        sk.ssm_conv1d(x, s, w, np.ones(3, np.float32))
    with pytest.raises(ValueError, match="overlaps"):
        sk.ssm_conv1d(x, s, w, out=s[:2])
    assert not s.any()
    with pytest.raises(ValueError, match="n_groups"):
        sk.ssm_gated_rmsnorm(x, x, np.ones(8, np.float32), 3, 1e-5)
    with pytest.raises(TypeError, match="n_groups"):
        sk.ssm_gated_rmsnorm(x, x, np.ones(8, np.float32), 2.0, 1e-5)
    with pytest.raises(ValueError, match="eps"):
        sk.ssm_gated_rmsnorm(x, x, np.ones(8, np.float32), 2, float("nan"))
