"""attention over the KV cache against a float64 numpy reference, on every ISA.

The reference reads the cache's own dequantized contents (KVCache.keys/values), so the cache
dtype's quantization error is not part of the comparison: what is left is float32 rounding of
the kernels (dot products, online softmax, exp), bounded below.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import slmkernels as sk
from slmkernels.tolerances import ATTN_TOL  # relative to max|v|; where it comes from: there

DTYPES = ["f32", "f16", "q8_0", "q4_0"]


def ref_attention(q, K, V, kpos, qpos, scale, window=None, softcap=None, sinks=None):
    """q (T, H, D); K, V (N, Hkv, D); kpos (N,); qpos (T,). float64."""
    T, H, D = q.shape
    G = H // K.shape[1]
    out = np.zeros((T, H, D))
    q64, K64, V64 = q.astype(np.float64), K.astype(np.float64), V.astype(np.float64)
    for h in range(H):
        s = q64[:, h, :] @ K64[:, h // G, :].T * scale  # (T, N)
        if softcap:
            s = softcap * np.tanh(s / softcap)
        vis = kpos[None, :] <= qpos[:, None]
        if window:
            vis &= qpos[:, None] - kpos[None, :] < window
        s = np.where(vis, s, -np.inf)
        m = s.max(axis=1)
        if sinks is not None:
            m = np.maximum(m, sinks[h])
        for t in range(T):
            if m[t] == -np.inf:
                continue
            p = np.exp(s[t] - m[t])
            den = p.sum() + (np.exp(sinks[h] - m[t]) if sinks is not None else 0.0)
            out[t, h] = p @ V64[:, h // G, :] / den
    return out


def filled_cache(rng, *, n_kv, D, L, dtype, block_tokens=32, n_layers=1, layer_windows=None, scale_data=1.0):
    c = sk.KVCache(n_layers, n_kv, D, capacity_tokens=L + 2 * block_tokens, block_tokens=block_tokens, dtype=dtype,
                   layer_windows=layer_windows)
    s = c.new_sequence()
    c.extend(s, L)
    for layer in range(n_layers):
        k = (rng.standard_normal((L, n_kv, D)) * scale_data).astype(np.float32)
        v = rng.standard_normal((L, n_kv, D)).astype(np.float32)
        c.write(layer, s, k, v)
    return c, s


def check_against_ref(c, s, q, layer=0, **kw):
    out = sk.attention(q, c, layer, s, **kw)
    K, V, kpos = c.keys(layer, s), c.values(layer, s), c.positions(layer, s)
    L = c.length(s)
    T = q.shape[0]
    scale = kw.get("scale") or 1.0 / np.sqrt(q.shape[2])
    window = kw.get("window") or (c.layer_windows[layer] or None)
    ref = ref_attention(q, K, V, kpos, np.arange(L - T, L), scale, window, kw.get("softcap"), kw.get("sinks"))
    vmax = max(1.0, float(np.abs(V).max()) if V.size else 1.0)
    err = np.abs(out - ref).max() / vmax
    assert np.isfinite(out).all()
    assert err <= ATTN_TOL, f"max error {err:.3g} relative to max|v|"
    return out


@settings(max_examples=25)
@given(
    D=st.sampled_from([64, 72, 80, 100, 128, 256]),  # 72, 100: SIMD tails (not multiples of 16 / 8)
    n_kv=st.integers(1, 2),
    ratio=st.integers(1, 8),
    L=st.integers(1, 300),
    T=st.integers(1, 9),
    dtype=st.sampled_from(DTYPES),
    block_tokens=st.sampled_from([16, 32]),
    window=st.one_of(st.none(), st.integers(1, 100)),
    softcap=st.one_of(st.none(), st.floats(1.0, 50.0)),
    use_sinks=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_attention_matches_reference(isa, D, n_kv, ratio, L, T, dtype, block_tokens, window, softcap, use_sinks, seed):
    rng = np.random.default_rng(seed)
    T = min(T, L)
    c, s = filled_cache(rng, n_kv=n_kv, D=D, L=L, dtype=dtype, block_tokens=block_tokens)
    H = n_kv * ratio
    q = rng.standard_normal((T, H, D)).astype(np.float32)
    sinks = rng.standard_normal(H).astype(np.float32) * 2 if use_sinks else None
    check_against_ref(c, s, q, window=window, softcap=softcap, sinks=sinks)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("L", [1, 31, 32, 33, 255, 256, 257, 700])
def test_lengths_around_blocks_and_partitions(isa, dtype, L):
    rng = np.random.default_rng(L)
    c, s = filled_cache(rng, n_kv=3, D=64, L=L, dtype=dtype)
    q = rng.standard_normal((min(L, 5), 9, 64)).astype(np.float32)
    check_against_ref(c, s, q)


def test_large_scores_and_outliers(isa):
    # scores of several hundred: the online softmax must rescale without overflow
    rng = np.random.default_rng(7)
    c, s = filled_cache(rng, n_kv=1, D=128, L=600, dtype="f32", scale_data=8.0)
    q = (rng.standard_normal((3, 4, 128)) * 8).astype(np.float32)
    check_against_ref(c, s, q)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("D", [80, 100])
def test_identical_for_any_thread_count_and_query_split(isa, dtype, D):
    # decode and short prefills (<= 8 rows per KV head) read K/V straight from the cache, longer
    # ones through dequantized buffers: the same bits either way
    rng = np.random.default_rng(3)
    L = 1100
    c, s = filled_cache(rng, n_kv=2, D=D, L=L, dtype=dtype)
    q = rng.standard_normal((70, 8, D)).astype(np.float32)
    before = sk.get_num_threads()
    try:
        outs = []
        for n in (1, 2, 3):
            sk.set_num_threads(n)
            outs.append(sk.attention(q, c, 0, s, window=900, softcap=20.0))
        for o in outs[1:]:
            assert np.array_equal(o, outs[0])
        # the last rows of a prefill equal a shorter prefill and a decode, bit for bit
        for k in (1, 2, 17, 64):
            assert np.array_equal(sk.attention(q[-k:], c, 0, s, window=900, softcap=20.0), outs[0][-k:])
    finally:
        sk.set_num_threads(before)


def test_batch_equals_single(isa):
    rng = np.random.default_rng(5)
    c = sk.KVCache(1, 2, 64, capacity_tokens=3000, dtype="q8_0")
    seqs = []
    for L in (1, 40, 300, 1000):
        s = c.new_sequence()
        c.append(0, s, rng.standard_normal((L, 2, 64)).astype(np.float32), rng.standard_normal((L, 2, 64)).astype(np.float32))
        seqs.append(s)
    q = rng.standard_normal((len(seqs), 6, 64)).astype(np.float32)
    sinks = rng.standard_normal(6).astype(np.float32)
    out = sk.attention_batch(q, c, 0, seqs, sinks=sinks)
    for i, s in enumerate(seqs):
        assert np.array_equal(out[i : i + 1], sk.attention(q[i : i + 1], c, 0, s, sinks=sinks))


def test_sliding_window_layer_frees_blocks_and_stays_exact(isa):
    rng = np.random.default_rng(11)
    W = 40
    c = sk.KVCache(2, 1, 64, capacity_tokens=512, block_tokens=16, dtype="f16", layer_windows=[None, W])
    s = c.new_sequence()
    for step in range(30):
        n = 1 if step else 50
        c.extend(s, n)
        for layer in (0, 1):
            c.write(layer, s, rng.standard_normal((n, 1, 64)).astype(np.float32),
                    rng.standard_normal((n, 1, 64)).astype(np.float32))
        q = rng.standard_normal((n, 2, 64)).astype(np.float32)
        check_against_ref(c, s, q, layer=1)
        check_against_ref(c, s, q, layer=0)
    assert len(c.positions(1, s)) < W + 16 + 1  # only the window (plus the rest of a block) is kept
    assert len(c.positions(0, s)) == c.length(s)
    with pytest.raises(ValueError, match="sliding window"):
        sk.attention(q, c, 1, s, window=W + 1)
    with pytest.raises(ValueError, match="reaches back"):
        sk.attention(rng.standard_normal((10, 2, 64)).astype(np.float32), c, 1, s)


def test_streaming_eviction_is_exact_for_kept_tokens(isa):
    rng = np.random.default_rng(13)
    c, s = filled_cache(rng, n_kv=1, D=64, L=500, dtype="f32", block_tokens=32)
    K, V = c.keys(0, s), c.values(0, s)
    c.evict(s, n_sink=4, window=100)
    kept = np.r_[0:4, 400:500]
    assert np.array_equal(c.positions(0, s), kept)
    q = rng.standard_normal((3, 2, 64)).astype(np.float32)
    out = sk.attention(q, c, 0, s)
    ref = ref_attention(q, K[kept], V[kept], kept, np.arange(497, 500), 1 / 8.0)
    assert np.abs(out - ref).max() <= ATTN_TOL * np.abs(V).max()


def test_fully_masked_rows_are_zero(isa):
    rng = np.random.default_rng(17)
    c, s = filled_cache(rng, n_kv=1, D=64, L=64, dtype="f16")
    c.evict(s, n_sink=0, window=0)  # nothing left
    q = rng.standard_normal((2, 2, 64)).astype(np.float32)
    out = sk.attention(q, c, 0, s, sinks=np.zeros(2, np.float32))
    assert np.array_equal(out, np.zeros_like(out))
    assert np.array_equal(sk.attention_batch(q[:1], c, 0, [s]), np.zeros((1, 2, 64), np.float32))


def test_out_argument_and_kernel_names():
    rng = np.random.default_rng(19)
    c, s = filled_cache(rng, n_kv=1, D=64, L=10, dtype="f16")
    q = rng.standard_normal((2, 2, 64)).astype(np.float32)
    out = np.empty_like(q)
    r = sk.attention(q, c, 0, s, out=out)
    assert r is out or np.shares_memory(r, out)
    names = {k: v for k, v in sk.kernel_names().items() if k.startswith("attn_chunk_")}
    assert set(names) == {"attn_chunk_f32", "attn_chunk_f16", "attn_chunk_q8_0", "attn_chunk_q4_0"}
    assert all(sk.get_isa().split("_")[0] in v or "scalar" in v for v in names.values())


def test_bad_arguments():
    rng = np.random.default_rng(23)
    c, s = filled_cache(rng, n_kv=2, D=64, L=10, dtype="f16")
    q = rng.standard_normal((2, 4, 64)).astype(np.float32)
    with pytest.raises(TypeError, match="q"):
        sk.attention(q.astype(np.float64), c, 0, s)
    with pytest.raises(ValueError, match="head_dim"):
        sk.attention(q[:, :, :32].copy(), c, 0, s)
    with pytest.raises(ValueError, match="multiple"):
        sk.attention(rng.standard_normal((2, 3, 64)).astype(np.float32), c, 0, s)
    with pytest.raises(IndexError, match="layer"):
        sk.attention(q, c, 1, s)
    with pytest.raises(KeyError, match="seq"):
        sk.attention(q, c, 0, 99)
    with pytest.raises(ValueError, match="tokens"):
        sk.attention(rng.standard_normal((11, 4, 64)).astype(np.float32), c, 0, s)
    with pytest.raises(ValueError, match="sinks"):
        sk.attention(q, c, 0, s, sinks=np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="window"):
        sk.attention(q, c, 0, s, window=0)
    with pytest.raises(ValueError, match="softcap"):
        sk.attention(q, c, 0, s, softcap=-1.0)
    with pytest.raises(ValueError, match="scale"):
        sk.attention(q, c, 0, s, scale=float("nan"))
    with pytest.raises(ValueError, match="out"):
        sk.attention(q, c, 0, s, out=np.empty((2, 4, 63), np.float32))
    with pytest.raises(ValueError, match="overlap"):
        sk.attention(q, c, 0, s, out=q)
    with pytest.raises(ValueError, match="one token per sequence"):
        sk.attention_batch(q, c, 0, [s])
    c.extend(s, 1)
    with pytest.raises(ValueError, match="not yet written"):
        sk.attention(q, c, 0, s)


# ---- attention_dense: caller-owned K/V read in place ----


@pytest.mark.parametrize("dtype", ["f32", "f16"])
@pytest.mark.parametrize("L,T", [(1, 1), (37, 5), (300, 1), (700, 20)])
def test_dense_equals_cache_bit_for_bit(isa, dtype, L, T):
    # a cache whose blocks hold kAttnPartition (256) tokens is cut into the same chunks as dense K/V
    rng = np.random.default_rng(L + T)
    np_dt = np.float32 if dtype == "f32" else np.float16
    k = rng.standard_normal((L, 2, 64)).astype(np_dt)
    v = rng.standard_normal((L, 2, 64)).astype(np_dt)
    c = sk.KVCache(1, 2, 64, capacity_tokens=L + 256, block_tokens=256, dtype=dtype)
    s = c.new_sequence()
    c.append(0, s, k.astype(np.float32), v.astype(np.float32))
    q = rng.standard_normal((T, 6, 64)).astype(np.float32)
    sinks = rng.standard_normal(6).astype(np.float32)
    for kw in ({}, dict(window=30, softcap=15.0, sinks=sinks)):
        got = sk.attention_dense(q, k, v, **kw)
        assert np.array_equal(got, sk.attention(q, c, 0, s, **kw))
    # and against the float64 reference
    ref = ref_attention(q, k, v, np.arange(L), np.arange(L - T, L), 1 / 8)
    assert np.abs(sk.attention_dense(q, k, v) - ref).max() / np.abs(v).max() <= ATTN_TOL


def test_dense_strided_kv_is_not_copied():
    # a (n_kv_heads, tokens, head_dim) cache transposed to (tokens, n_kv_heads, head_dim): read in
    # place (numpy reports its allocations to tracemalloc: no array of K/V's size is made), same
    # bits as its contiguous copy
    rng = np.random.default_rng(29)
    kh = rng.standard_normal((2, 4000, 32)).astype(np.float32)  # 1 MB each
    vh = rng.standard_normal((2, 4000, 32)).astype(np.float32)
    q = rng.standard_normal((3, 4, 32)).astype(np.float32)
    k, v = kh.transpose(1, 0, 2), vh.transpose(1, 0, 2)
    tracemalloc.start()
    try:
        got = sk.attention_dense(q, k, v)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < kh.nbytes // 4, f"{peak} bytes allocated for a {kh.nbytes}-byte K"
    assert np.array_equal(got, sk.attention_dense(q, np.ascontiguousarray(k), np.ascontiguousarray(v)))
    # a view of the first 20 tokens of a longer buffer (a preallocated cache)
    got20 = sk.attention_dense(q, k[:20], v[:20])
    assert np.array_equal(got20, sk.attention_dense(q, k[:20].copy(), v[:20].copy()))
    # out= is written in place
    out = np.empty_like(q)
    assert np.shares_memory(sk.attention_dense(q, k, v, out=out), out)


def test_dense_bad_arguments():
    rng = np.random.default_rng(31)
    k = rng.standard_normal((10, 2, 64)).astype(np.float32)
    q = rng.standard_normal((2, 4, 64)).astype(np.float32)
    with pytest.raises(TypeError, match="k must have dtype"):
        sk.attention_dense(q, k.astype(np.float64), k)
    with pytest.raises(TypeError, match="same dtype"):
        sk.attention_dense(q, k, k.astype(np.float16))
    with pytest.raises(ValueError, match="3-D"):
        sk.attention_dense(q, k[0], k[0])
    with pytest.raises(ValueError, match="same shape"):
        sk.attention_dense(q, k, k[:9])
    with pytest.raises(ValueError, match="head_dim"):
        sk.attention_dense(q[:, :, :32].copy(), k, k)
    with pytest.raises(ValueError, match="multiple"):
        sk.attention_dense(q[:, :3].copy(), k, k)
    with pytest.raises(ValueError, match="tokens"):
        sk.attention_dense(rng.standard_normal((11, 4, 64)).astype(np.float32), k, k)
    with pytest.raises(ValueError, match="window"):
        sk.attention_dense(q, k, k, window=0)
    with pytest.raises(ValueError, match="overlap"):
        sk.attention_dense(q[:, :2].copy(), k, k, out=k[:2])
