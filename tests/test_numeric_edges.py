"""Numeric edge cases, as the README states them ("Non-finite values"), on every ISA.

- NaN/Inf in activations propagate as in numpy (float64 on the same inputs): the same outputs
  are NaN, the same are +-Inf, the rest are finite. One documented difference: with quantized
  weights the activations are quantized to int8 per block first, so a row holding NaN or Inf
  gives NaN in every output of that row (numpy: NaN or +-Inf); other rows are untouched.
- A quantized block whose fp16 scale is NaN or Inf is not rejected at load: it propagates as
  IEEE arithmetic does (dequantize as the gguf package; matmul non-finite exactly where numpy
  on the dequantized weights is).
- Attention: a row that sees no key (all evicted, or outside its window) gives zeros, never
  NaN, with or without sinks and soft-capping; a NaN or +Inf score makes the row NaN (numpy's
  softmax), a NaN in one row never leaks into another.
"""

from __future__ import annotations

import numpy as np
import pytest

import slmkernels as sk

FLOAT_W = ["f32", "f16", "bf16"]


@pytest.fixture(autouse=True)
def _quiet_numpy():
    """The numpy references compute with NaN/Inf on purpose."""
    with np.errstate(all="ignore"):
        yield

QUANT_W = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q5_k", "q6_k"]


def nonfinite_pattern(a: np.ndarray):
    return np.isnan(a), np.isposinf(a), np.isneginf(a)


def assert_same_nonfinite(got: np.ndarray, ref: np.ndarray):
    for name, g, r in zip(("NaN", "+Inf", "-Inf"), nonfinite_pattern(got), nonfinite_pattern(ref)):
        assert np.array_equal(g, r), f"{name} positions differ: got {np.argwhere(g).tolist()}, numpy {np.argwhere(r).tolist()}"


def poisoned(shape, rng, spots):
    x = rng.standard_normal(shape).astype(np.float32)
    for idx, v in spots:
        x[idx] = v
    return x


SPOTS = [((1, 5), np.nan), ((2, 7), np.inf), ((3, 9), -np.inf), ((4, 0), np.inf), ((4, 1), -np.inf)]


# ---- matmul ----


@pytest.mark.parametrize("fmt", FLOAT_W)
def test_matmul_float_weights_propagate_like_numpy(isa, fmt):
    rng = np.random.default_rng(0)
    x = poisoned((6, 64), rng, SPOTS)
    wf = rng.standard_normal((5, 64)).astype(np.float32)
    wf[0] = np.abs(wf[0]) + 0.1  # all positive: +Inf in x stays +Inf
    w = sk.quantize(wf, fmt)
    ref = x.astype(np.float64) @ sk.dequantize(w).astype(np.float64).T
    with np.errstate(invalid="ignore"):
        got = sk.matmul(x, w)
    assert_same_nonfinite(got, ref)
    ok = np.isfinite(ref)
    np.testing.assert_allclose(got[ok], ref[ok], rtol=1e-4, atol=1e-4)
    assert np.isposinf(got[2, 0])  # a case where the sign matters


@pytest.mark.parametrize("fmt", QUANT_W)
def test_matmul_quantized_weights_make_a_nonfinite_row_nan(isa, fmt):
    rng = np.random.default_rng(1)
    K = 256
    x = poisoned((6, K), rng, SPOTS)
    w = sk.quantize(rng.standard_normal((7, K)).astype(np.float32), fmt)
    got = sk.matmul(x, w)
    bad = ~np.isfinite(x).all(axis=1)
    assert np.isnan(got[bad]).all(), "a row with NaN/Inf input must be NaN in every output"
    clean = sk.matmul(np.ascontiguousarray(x[~bad]), w)
    assert got[~bad].tobytes() == clean.tobytes(), "a non-finite row changed another row"


def _block_with_scale(fmt: str, rows: int, K: int, scale_bits: int, row: int, block: int, rng):
    """A quantized (rows, K) tensor whose block `block` of row `row` has fp16 scale bits."""
    q = sk.quantize(rng.standard_normal((rows, K)).astype(np.float32), fmt)
    raw = np.asarray(q.data).copy()
    info = sk.formats()[fmt]
    off = (row * (K // info["block_size"]) + block) * info["type_size"]
    off += info["type_size"] - 2 if fmt == "q6_k" else 0  # d: the first field, the last in block_q6_K
    raw[off : off + 2] = np.frombuffer(np.uint16(scale_bits).tobytes(), np.uint8)
    return sk.QuantizedTensor(raw, fmt, (rows, K))


F16_NAN, F16_INF, F16_NINF = 0x7E00, 0x7C00, 0xFC00


@pytest.mark.parametrize("fmt", ["q8_0", "q4_0", "q4_1", "q5_0", "q4_k", "q6_k"])
@pytest.mark.parametrize("bits", [F16_NAN, F16_INF, F16_NINF], ids=["nan", "inf", "-inf"])
def test_nonfinite_block_scale_propagates(isa, fmt, bits):
    rng = np.random.default_rng(2)
    K = 512
    w = _block_with_scale(fmt, 4, K, bits, row=2, block=1, rng=rng)
    d = sk.dequantize(w)
    bs = sk.formats()[fmt]["block_size"]
    blk = d[2, bs : 2 * bs]
    assert not np.isfinite(blk).all(), "the block with a non-finite scale must dequantize non-finite"
    others = np.delete(d.reshape(-1), np.arange(2 * K + bs, 2 * K + 2 * bs))
    assert np.isfinite(others).all(), "a non-finite scale leaked out of its block"
    if bits == F16_NAN:
        assert np.isnan(blk).all()
    x = rng.standard_normal((3, K)).astype(np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        ref = x.astype(np.float64) @ d.astype(np.float64).T
    got = sk.matmul(x, w)
    assert np.array_equal(np.isfinite(got), np.isfinite(ref))
    assert not np.isfinite(got[:, 2]).any() and np.isfinite(np.delete(got, 2, axis=1)).all()
    if bits == F16_NAN:
        assert np.isnan(got[:, 2]).all()
    # the same through pack() and embedding()
    assert np.array_equal(np.isfinite(sk.matmul(x, sk.pack(w))), np.isfinite(got))
    e = sk.embedding(w, np.array([2, 0]))
    assert np.array_equal(e[0], d[2], equal_nan=True) and np.isfinite(e[1]).all()


def test_nonfinite_block_scale_dequantizes_like_the_gguf_package():
    gguf = pytest.importorskip("gguf")
    rng = np.random.default_rng(3)
    for fmt in ["q8_0", "q4_0", "q4_1", "q5_1", "q4_k", "q5_k", "q6_k"]:
        for bits in (F16_NAN, F16_INF, F16_NINF):
            w = _block_with_scale(fmt, 2, 256, bits, row=1, block=0, rng=rng)
            with np.errstate(invalid="ignore", over="ignore"):
                ref = gguf.quants.dequantize(np.asarray(w.data).reshape(2, -1), gguf.GGMLQuantizationType[fmt.upper()])
            got = sk.dequantize(w)
            assert_same_nonfinite(got, ref.reshape(got.shape))
            ok = np.isfinite(ref.reshape(got.shape))
            assert np.array_equal(got[ok], ref.reshape(got.shape)[ok]), fmt


# ---- row ops ----


def test_rmsnorm_propagates_like_numpy(isa):
    rng = np.random.default_rng(4)
    for n in (8, 37, 64):
        x = poisoned((5, n), rng, [((1, 3), np.nan), ((2, 2), np.inf), ((3, 0), -np.inf), ((3, 1), np.inf)])
        w = rng.standard_normal(n).astype(np.float32)
        got = sk.rmsnorm(x, w, 1e-5)
        x64 = x.astype(np.float64)
        with np.errstate(invalid="ignore"):
            ref = x64 / np.sqrt((x64**2).mean(axis=1, keepdims=True) + 1e-5) * w
        assert_same_nonfinite(got, ref)
        np.testing.assert_allclose(got[np.isfinite(ref)], ref[np.isfinite(ref)], rtol=1e-5, atol=1e-6)


def test_swiglu_propagates_like_numpy(isa):
    """silu(g) * u with g, u in {NaN, +-Inf, huge, tiny}: SIMD paths used to give -Inf for
    g = -Inf (their exp saturates) where numpy and the scalar twin give NaN."""
    edge = np.array([np.nan, np.inf, -np.inf, -1000.0, -100.0, -88.0, -20.0, 0.0, 20.0, 88.0, 1000.0, 1.0],
                    np.float32)
    g, u = np.meshgrid(edge, edge)
    g = np.ascontiguousarray(g.reshape(-1))
    u = np.ascontiguousarray(u.reshape(-1))
    got = sk.swiglu(g, u)
    with np.errstate(all="ignore"):
        ref = (g / (np.float32(1) + np.exp(-g)) * u).astype(np.float32)  # numpy in float32, as the kernels
    assert_same_nonfinite(got, ref)
    ok = np.isfinite(ref)
    np.testing.assert_allclose(got[ok], ref[ok], rtol=1e-5, atol=1e-30)


@pytest.mark.parametrize("mode", ["normal", "neox"])
def test_rope_keeps_a_nonfinite_value_in_its_pair(isa, mode):
    T, H, D = 3, 2, 16
    x = np.random.default_rng(5).standard_normal((T, H, D)).astype(np.float32)
    x[1, 0, 3] = np.nan
    x[2, 1, 4] = np.inf
    got = sk.rope(x, np.arange(T) + 7, theta=10000.0, mode=mode)
    partner = (lambda i: i ^ 1) if mode == "normal" else (lambda i: (i + D // 2) % D)
    bad = ~np.isfinite(got)
    assert bad[1, 0, 3] and bad[1, 0, partner(3)]
    assert bad[2, 1, 4] or bad[2, 1, partner(4)]  # (Inf * cos 0 ... one of the pair at least)
    expect_bad = np.zeros_like(bad)
    for t, h, i in [(1, 0, 3), (2, 1, 4)]:
        expect_bad[t, h, [i, partner(i)]] = True
    assert not (bad & ~expect_bad).any(), "a non-finite value leaked out of its rotation pair"


# ---- attention ----


def _ref_attention(q, k, v, kpos, qpos, scale, window=None):
    """numpy float64: softmax over the visible keys; a row that sees none gives zeros."""
    T, H, D = q.shape
    G = H // k.shape[1]
    out = np.zeros((T, H, D))
    for t in range(T):
        vis = (kpos <= qpos[t]) & ((qpos[t] - kpos < window) if window else True)
        if not vis.any():
            continue
        for h in range(H):
            s = k[vis, h // G].astype(np.float64) @ q[t, h].astype(np.float64) * scale
            with np.errstate(invalid="ignore"):
                p = np.exp(s - s.max())
                out[t, h] = (p / p.sum()) @ v[vis, h // G]
    return out


@pytest.mark.parametrize("dtype", ["f32", "f16", "q8_0", "q4_0"])
def test_fully_masked_rows_give_zeros(isa, dtype):
    rng = np.random.default_rng(6)
    c = sk.KVCache(1, 2, 32, capacity_tokens=128, block_tokens=8, dtype=dtype)
    s = c.new_sequence()
    kv = rng.standard_normal((20, 2, 32)).astype(np.float32)
    c.append(0, s, kv, -kv)
    q = rng.standard_normal((4, 4, 32)).astype(np.float32)
    # keep only the newest position: the three older query rows see nothing
    c.evict(s, n_sink=0, window=1)
    for kw in (dict(), dict(softcap=3.0), dict(sinks=np.full(4, 2.0, np.float32)), dict(window=1)):
        o = sk.attention(q, c, 0, s, **kw)
        assert np.isfinite(o).all()
        assert not o[:3].any(), "a row that sees no key must be zeros"
        assert o[3].any()
    # everything evicted: every row (prefill and decode, batched too) is zeros
    c.evict(s, n_sink=0, window=0)
    assert len(c.positions(0, s)) == 0
    for kw in (dict(), dict(sinks=np.zeros(4, np.float32))):
        assert not sk.attention(q, c, 0, s, **kw).any()
        assert not sk.attention(q[:1], c, 0, s, **kw).any()
        assert not sk.attention_batch(q[:2], c, 0, [s, s], **kw).any()
    assert np.isfinite(sk.attention(q, c, 0, s)).all()


@pytest.mark.parametrize("dtype", ["f32", "f16"])
@pytest.mark.parametrize("T", [1, 5])
def test_nonfinite_activations_in_attention_propagate_like_numpy(isa, dtype, T):
    """NaN in q (one row), NaN in a key (rows that see it), +Inf in a key with a positive
    query (an +Inf score: NaN, as numpy's softmax), Inf in a value (Inf or NaN as numpy)."""
    rng = np.random.default_rng(7)
    L, Hkv, H, D = 70, 2, 4, 32  # more than one chunk/partition of keys
    k = rng.standard_normal((L, Hkv, D)).astype(np.float32)
    v = rng.standard_normal((L, Hkv, D)).astype(np.float32)
    k[L - 3, 0, 1] = np.nan  # seen by the last rows only (causal)
    k[10, 1, 2] = np.inf
    v[20, 0, 5] = np.inf
    c = sk.KVCache(1, Hkv, D, capacity_tokens=128, block_tokens=16, dtype=dtype)
    s = c.new_sequence()
    c.append(0, s, k, v)
    kc, vc = c.keys(0, s), c.values(0, s)  # what the cache stores (f16 rounding)
    q = rng.standard_normal((T, H, D)).astype(np.float32)
    q[:, 3, 2] = np.abs(q[:, 3, 2]) + 0.5  # head 3 (KV head 1) meets the +Inf key with a positive weight
    if T > 1:
        q[0, 0, 0] = np.nan
    qpos = np.arange(L - T, L)
    scale = 1 / np.sqrt(D)
    for window in (None, 8):
        got = sk.attention(q, c, 0, s, window=window)
        ref = _ref_attention(q, kc, vc, np.arange(L), qpos, scale, window)
        assert_same_nonfinite(got, ref)
        ok = np.isfinite(ref)
        np.testing.assert_allclose(got[ok], ref[ok], rtol=2e-5, atol=2e-5)
        if T == 1:  # the batched decode path agrees
            b = sk.attention_batch(q, c, 0, [s], window=window)
            assert_same_nonfinite(b, ref)


def test_float_caches_store_nonfinite_values():
    for dtype in ("f32", "f16"):
        c = sk.KVCache(1, 1, 32, capacity_tokens=8, dtype=dtype)
        s = c.new_sequence()
        k = np.zeros((2, 1, 32), np.float32)
        k[0, 0, :3] = [np.nan, np.inf, -np.inf]
        c.append(0, s, k, k)
        assert_same_nonfinite(c.keys(0, s), k)
        assert_same_nonfinite(c.values(0, s), k)
