"""Ops area: rope, rmsnorm, swiglu, geglu, reglu, embedding rows (each registered when the build has it)."""

from __future__ import annotations

import numpy as np

import slmkernels as sk

from . import Bench, case, entry_name
from .gemm import ratio as _ratio  # max |got - ref| / bound (inf on shape or NaN)
from ..tolerances import F32_EPS, OPS_RTOL, ROPE_RTOL  # the tests' tolerances
from .peers import torch_or_reason



def ref_rope(x: np.ndarray, pos: np.ndarray, theta: float, mode: str) -> np.ndarray:
    """float64 RoFormer rotation, all of head_dim rotated, no scaling."""
    T, H, D = x.shape
    freq = theta ** (-2.0 * np.arange(D // 2) / D)
    ang = pos.astype(np.float64)[:, None] * freq[None, :]
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    x64 = x.astype(np.float64)
    y = np.empty_like(x64)
    if mode == "normal":
        a, b = x64[..., 0::2], x64[..., 1::2]
        y[..., 0::2], y[..., 1::2] = a * c - b * s, a * s + b * c
    else:
        a, b = x64[..., : D // 2], x64[..., D // 2 :]
        y[..., : D // 2], y[..., D // 2 :] = a * c - b * s, a * s + b * c
    return y


def _token_counts(ctx, p):
    """Decode (1 token) and the prefill row counts, once each."""
    return sorted(set([1] + ctx.m_values(p)))


@case("ops", requires=("rope",))
def rope(ctx):
    rng = ctx.rng
    for p in ctx.presets:
        H, D = p.heads, p.head_dim
        for T in _token_counts(ctx, p):
            for mode in ("normal", "neox"):
                x = rng.standard_normal((T, H, D)).astype(np.float32)
                pos = np.arange(1000, 1000 + T, dtype=np.int64)
                out = np.empty_like(x)
                ref = ref_rope(x, pos, 10000.0, mode)
                bound = ROPE_RTOL * np.abs(x).max(axis=-1, keepdims=True) + 1e-30
                yield Bench(area="ops", name=f"rope {mode}", op="rope", kernel="rope", format="f32",
                            shape=f"T={T} H={H} D={D}", params=dict(T=T, H=H, D=D, preset=p.name),
                            run=lambda x=x, pos=pos, out=out, mode=mode: sk.rope(x, pos, theta=10000.0, mode=mode, out=out),
                            check=lambda got, ref=ref, b=bound: _ratio(got, ref, b),
                            flops=3.0 * T * H * D, bytes=2.0 * x.nbytes + pos.nbytes, compute="fp32")


@case("ops", requires=("rmsnorm",))
def rmsnorm(ctx):
    rng = ctx.rng
    torch, why = torch_or_reason()
    for p in ctx.presets:
        n = p.hidden
        for T in _token_counts(ctx, p):
            x = rng.standard_normal((T, n)).astype(np.float32)
            w = rng.uniform(0.5, 1.5, n).astype(np.float32)
            out = np.empty_like(x)
            x64 = x.astype(np.float64)
            ref = x64 / np.sqrt((x64 * x64).mean(axis=1, keepdims=True) + 1e-6) * w
            bound = OPS_RTOL * np.abs(ref) + 1e-30
            common = dict(area="ops", name="rmsnorm", format="f32", shape=f"{T}x{n}", params=dict(T=T, n=n, preset=p.name),
                          check=lambda got, ref=ref, b=bound: _ratio(got, ref, b), flops=4.0 * T * n,
                          bytes=2.0 * x.nbytes + w.nbytes, compute="fp32")
            yield Bench(**common, op="rmsnorm", kernel=entry_name("rmsnorm", "f32"),
                        run=lambda x=x, w=w, out=out: sk.rmsnorm(x, w, 1e-6, out=out))
            if ctx.extra.get("peers") and torch is not None and hasattr(torch.nn.functional, "rms_norm"):
                xt, wt = torch.from_numpy(x), torch.from_numpy(w)
                yield Bench(**common, impl="torch", op="torch.rms_norm", kernel="torch.nn.functional.rms_norm",
                            run=lambda xt=xt, wt=wt: torch.nn.functional.rms_norm(xt, (n,), wt, 1e-6).numpy())


def _gated(ctx, op):
    """swiglu / geglu / reglu rows: (T, ffn) gate and up, checked against float64 numpy, then timed."""
    rng = ctx.rng
    torch = torch_or_reason()[0] if op == "swiglu" else None
    for p in ctx.presets:
        n = p.ffn
        for T in _token_counts(ctx, p):
            g = (rng.standard_normal((T, n)) * 3).astype(np.float32)
            u = rng.standard_normal((T, n)).astype(np.float32)
            out = np.empty_like(g)
            g64 = g.astype(np.float64)
            if op == "swiglu":
                ref = g64 / (1 + np.exp(-g64)) * u
                bound = OPS_RTOL * np.abs(ref) + 1e-30
            elif op == "reglu":
                ref = np.maximum(g64, 0.0) * u  # one rounding: the float32 product is exact to 1/2 ulp
                bound = 2.0**-24 * np.abs(ref) + 1e-30
            else:
                t = g64 * 2 * np.sqrt(2 / np.pi) * (1 + 0.044715 * g64**2)
                ref = g64 / (1 + np.exp(-t)) * u  # gelu_tanh(g) u, as tests/test_ops.py ref_geglu
                # exp of a computed t: grows by 4 ulp per unit of |t| (tests/test_ops.py geglu_rtol)
                bound = (OPS_RTOL + 4 * F32_EPS * np.abs(t)) * np.abs(ref) + 1e-30
            common = dict(area="ops", name=op, format="f32", shape=f"{T}x{n}", params=dict(T=T, n=n, preset=p.name),
                          check=lambda got, ref=ref, b=bound: _ratio(got, ref, b),
                          flops={"swiglu": 5.0, "geglu": 9.0, "reglu": 2.0}[op] * T * n, bytes=3.0 * g.nbytes,
                          compute="fp32")
            fn = getattr(sk, op)
            yield Bench(**common, op=op, kernel=entry_name(op, "f32"), run=lambda g=g, u=u, out=out, fn=fn: fn(g, u, out=out))
            if ctx.extra.get("peers") and torch is not None:
                gt, ut = torch.from_numpy(g), torch.from_numpy(u)
                yield Bench(**common, impl="torch", op="torch.silu_mul", kernel="torch silu(g) * u",
                            run=lambda gt=gt, ut=ut: (torch.nn.functional.silu(gt) * ut).numpy())


@case("ops", requires=("swiglu",))
def swiglu(ctx):
    yield from _gated(ctx, "swiglu")


@case("ops", requires=("geglu",))
def geglu(ctx):
    yield from _gated(ctx, "geglu")


@case("ops", requires=("reglu",))
def reglu(ctx):
    yield from _gated(ctx, "reglu")


@case("ops", requires=("embedding",))
def embedding(ctx):
    rng = ctx.rng
    for p in ctx.presets:
        fmt = next((f for f in ctx.formats if p.hidden % sk.formats()[f]["block_size"] == 0), None)
        if fmt is None:
            continue
        table = sk.quantize(rng.standard_normal((p.vocab, p.hidden)).astype(np.float32), fmt)
        deq = sk.dequantize(table)
        for T in _token_counts(ctx, p):
            ids = rng.integers(0, p.vocab, size=T).astype(np.int64)
            out = np.empty((T, p.hidden), np.float32)
            ref = deq[ids].astype(np.float64)
            row_bytes = table.nbytes // p.vocab
            yield Bench(area="ops", name="embedding rows", op="embedding", kernel=entry_name("dequantize", fmt), format=fmt,
                        shape=f"{T} of {p.vocab}x{p.hidden}", params=dict(T=T, vocab=p.vocab, n=p.hidden, preset=p.name),
                        run=lambda ids=ids, out=out: sk.embedding(table, ids, out=out),
                        # dequantization is exact: any difference is a failure
                        check=lambda got, ref=ref: _ratio(got, ref, np.full(ref.shape, 1e-300)),
                        flops=0.0, bytes=float(T * row_bytes + ids.nbytes + out.nbytes), compute=None)
