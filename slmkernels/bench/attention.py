"""Attention and KV-cache areas: decode and prefill attention over the paged cache (and torch's
scaled_dot_product_attention and a float32 numpy implementation on the same keys and values),
decode over every cache dtype (hot, and streaming through caches that outgrow the last-level
cache, as a model's layers do), cache appends."""

from __future__ import annotations

import numpy as np

import slmkernels as sk

from . import Bench, case, entry_name
from .gemm import ratio as _ratio  # max |got - ref| / bound (inf on shape or NaN)
from ..tolerances import ATTN_TOL  # the tests' tolerance, relative to max|v|
from .peers import torch_or_reason

CONTEXTS = (512, 2048)  # cached tokens
KV_DTYPES = ("f32", "f16", "q8_0", "q4_0")  # decode rows: one per cache dtype (attn_chunk entry)


def ref_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """float64 causal GQA attention of the newest T positions: q (T, H, D), k/v (L, G, D)."""
    T, H, D = q.shape
    L, G, _ = k.shape
    kk = np.repeat(k.astype(np.float64), H // G, axis=1)  # (L, H, D)
    vv = np.repeat(v.astype(np.float64), H // G, axis=1)
    s = np.einsum("thd,lhd->htl", q.astype(np.float64), kk) / np.sqrt(D)
    visible = np.arange(L)[None, :] <= (L - T + np.arange(T))[:, None]  # (T, L)
    s = np.where(visible[None], s, -np.inf)
    p = np.exp(s - s.max(axis=2, keepdims=True))
    p /= p.sum(axis=2, keepdims=True)
    return np.einsum("htl,lhd->thd", p, vv)


def _filled_cache(rng, p, L, dtype=None, kv=None):
    kw = {} if dtype is None else dict(dtype=dtype)
    cache = sk.KVCache(1, p.kv_heads, p.head_dim, capacity_tokens=L + 64, **kw)
    seq = cache.new_sequence()
    if kv is None:
        kv = (rng.standard_normal((L, p.kv_heads, p.head_dim)).astype(np.float32),
              rng.standard_normal((L, p.kv_heads, p.head_dim)).astype(np.float32))
    cache.append(0, seq, *kv)
    return cache, seq, cache.keys(0, seq), cache.values(0, seq)


def numpy_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """float32 causal GQA attention in numpy (the peer): q (T, H, D), k/v (L, G, D)."""
    T, H, D = q.shape
    L, G, _ = k.shape
    R = H // G  # query heads per KV head (head h reads KV head h // R)
    qg = np.ascontiguousarray(q.reshape(T, G, R, D).transpose(1, 0, 2, 3)).reshape(G, T * R, D)
    kt = np.ascontiguousarray(k.transpose(1, 2, 0))  # (G, D, L)
    vt = np.ascontiguousarray(v.transpose(1, 0, 2))  # (G, L, D)
    s = np.matmul(qg, kt).reshape(G, T, R, L) * np.float32(1 / np.sqrt(D))  # BLAS, batched over G
    future = np.arange(L)[None, :] > (L - T + np.arange(T))[:, None]  # (T, L): causal mask
    s = np.where(future[None, :, None, :], np.float32(-np.inf), s)
    s = np.exp(s - s.max(axis=-1, keepdims=True))
    s /= s.sum(axis=-1, keepdims=True)
    o = np.matmul(s.reshape(G, T * R, L), vt).reshape(G, T, R, D)
    return o.transpose(1, 0, 2, 3).reshape(T, H, D)


@case("attention", requires=("KVCache", "attention"))
def attention(ctx):
    rng = ctx.rng
    torch, why = torch_or_reason()
    for p in ctx.presets:
        H, G, D = p.heads, p.kv_heads, p.head_dim
        for L in CONTEXTS:
            cache, seq, k, v = _filled_cache(rng, p, L)
            kv_bytes = cache.stats()["bytes_per_token"] * L
            for T in sorted(set([1] + [m for m in ctx.m_values(p) if m <= L])):
                q = rng.standard_normal((T, H, D)).astype(np.float32)
                out = np.empty_like(q)
                ref = ref_attention(q, k, v)
                bound = ATTN_TOL * np.abs(v).max() + 1e-30
                visible = T * L - T * (T - 1) / 2  # causal (query, key) pairs
                common = dict(area="attention", name=f"{'decode' if T == 1 else 'prefill'} attention", format=cache.dtype,
                              shape=f"T={T} L={L} H={H}/{G} D={D}", params=dict(T=T, L=L, H=H, G=G, D=D, preset=p.name),
                              check=lambda got, ref=ref, b=bound: _ratio(got, ref, b),
                              flops=4.0 * visible * H * D, compute="fp32")
                yield Bench(**common, op="attention", kernel=entry_name("attn_chunk", cache.dtype),
                            bytes=float(kv_bytes + 2 * q.nbytes),
                            run=lambda q=q, out=out: sk.attention(q, cache, 0, seq, out=out))
                if not ctx.extra.get("peers"):
                    continue
                if T > 1:
                    yield Bench(**{**common, "format": "f32"}, impl="numpy", op="numpy.attention",
                                kernel="numpy matmul + softmax (f32)", bytes=float(k.nbytes + v.nbytes + 2 * q.nbytes),
                                run=lambda q=q, k=k, v=v: numpy_attention(q, k, v))
                if torch is None:
                    yield Bench(**common, impl="torch", op="torch.sdpa", run=None, bytes=0, skip=why)
                    continue
                qt = torch.from_numpy(q).permute(1, 0, 2)[None]  # (1, H, T, D)
                kt = torch.from_numpy(k).permute(1, 0, 2)[None].contiguous()  # (1, G, L, D)
                vt = torch.from_numpy(v).permute(1, 0, 2)[None].contiguous()
                mask = torch.from_numpy(np.arange(L)[None, :] <= (L - T + np.arange(T))[:, None])

                def sdpa(qt=qt, kt=kt, vt=vt, mask=mask):
                    with torch.inference_mode():
                        o = torch.nn.functional.scaled_dot_product_attention(qt, kt, vt, attn_mask=mask, enable_gqa=True)
                    return o[0].permute(1, 0, 2).numpy()

                yield Bench(**{**common, "format": "f32"}, impl="torch", op="torch.sdpa",
                            kernel="torch scaled_dot_product_attention (f32)",
                            bytes=float(k.nbytes + v.nbytes + 2 * q.nbytes), run=sdpa)


@case("attention", requires=("KVCache", "attention"))
def decode_dtypes(ctx):
    """One query token over L cached tokens, for every cache dtype (each runs its own attn_chunk
    entry). "hot": one cache, which the last-level cache holds; "streaming": distinct caches
    cycled, totalling the GEMV working set (2x the LLC by default), so the K/V bytes come from
    memory as a model's layers do. params: bytes per cached token, and the largest difference from
    the same keys and values in an f32 cache, relative to max|v| (what the dtype costs in accuracy,
    not a kernel error: the check is against the cache's own contents)."""
    from .gemm import copies_for

    rng = ctx.rng
    for p in ctx.presets:
        H, G, D, L = p.heads, p.kv_heads, p.head_dim, CONTEXTS[-1]
        kv = (rng.standard_normal((L, G, D)).astype(np.float32), rng.standard_normal((L, G, D)).astype(np.float32))
        q = rng.standard_normal((1, H, D)).astype(np.float32)
        exact = None
        for dtype in ("f32",) + tuple(d for d in KV_DTYPES if d != "f32"):
            cache, seq, k, v = _filled_cache(rng, p, L, dtype, kv)
            got = sk.attention(q, cache, 0, seq)
            exact = got if dtype == "f32" else exact
            per_token = cache.stats()["bytes_per_token"]
            n = copies_for(per_token * L, ctx.working_set)
            caches = [(cache, seq)] + [_filled_cache(rng, p, L, dtype, kv)[:2] for _ in range(n - 1)]
            ref = ref_attention(q, k, v)
            bound = ATTN_TOL * np.abs(v).max() + 1e-30
            params = dict(T=1, L=L, H=H, G=G, D=D, preset=p.name, bytes_per_token=per_token,
                          diff_vs_f32_cache=float(np.abs(got - exact).max() / np.abs(kv[1]).max()))
            out = np.empty_like(q)
            for label, pool in (("hot", caches[:1]), ("streaming", caches)):
                if label == "streaming" and len(pool) == 1:
                    continue  # --working-set-mib 0: hot only
                i = [0]

                def run(pool=pool, i=i, out=out):
                    c, s_ = pool[i[0] % len(pool)]
                    i[0] += 1
                    return sk.attention(q, c, 0, s_, out=out)

                yield Bench(area="attention", name=f"decode attention, {label}", op="attention",
                            kernel=entry_name("attn_chunk", dtype), format=dtype, shape=f"T=1 L={L} H={H}/{G} D={D}",
                            params={**params, "working_set_bytes": per_token * L * len(pool)},
                            run=run, check_run=lambda c=cache, s_=seq: sk.attention(q, c, 0, s_),
                            check=lambda got, ref=ref, b=bound: _ratio(got, ref, b),
                            flops=4.0 * L * H * D, bytes=float(per_token * L + 2 * q.nbytes), compute="fp32")
            del caches


@case("kvcache", requires=("KVCache",))
def kv_append(ctx):
    """Appending T tokens' keys and values to a sequence of L (each call then truncates back)."""
    rng = ctx.rng
    for p in ctx.presets:
        G, D = p.kv_heads, p.head_dim
        L = 512
        for T in sorted(set([1] + ctx.m_values(p))):
            cache = sk.KVCache(1, G, D, capacity_tokens=L + T + 64)
            seq = cache.new_sequence()
            cache.append(0, seq, rng.standard_normal((L, G, D)).astype(np.float32),
                         rng.standard_normal((L, G, D)).astype(np.float32))
            k = rng.standard_normal((T, G, D)).astype(np.float32)
            v = rng.standard_normal((T, G, D)).astype(np.float32)
            want = k.astype(np.float16 if cache.dtype == "f16" else np.float32).astype(np.float64)

            def run(cache=cache, seq=seq, k=k, v=v):
                cache.truncate(seq, L)
                cache.append(0, seq, k, v)

            def run_and_read(cache=cache, seq=seq, k=k, v=v):
                cache.truncate(seq, L)
                cache.append(0, seq, k, v)
                return cache.keys(0, seq)[L:]

            stored = cache.stats()["bytes_per_token"] * T
            yield Bench(area="kvcache", name="append + truncate", op="kvcache.append", kernel="KVCache.append",
                        format=cache.dtype, shape=f"T={T} onto L={L} G={G} D={D}",
                        params=dict(T=T, L=L, G=G, D=D, preset=p.name), run=run,
                        check_run=run_and_read, check=lambda got, want=want: _ratio(got, want, np.full(want.shape, 1e-300)),
                        flops=0.0, bytes=float(k.nbytes + v.nbytes + stored), compute=None)
