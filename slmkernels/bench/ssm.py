"""SSM area: the Mamba-2 kernels at the shape of one Granite 4.0 H-1B mixer layer.

Decode (one token) streams the recurrent state: read and written once per token, d_state x
d_inner floats (1.5 MiB a layer here), so its limit is memory bandwidth. As in decoding, where
every Mamba layer has its own state, the decode rows cycle through distinct state copies
totalling more than the last-level cache. Prefill rows compare the token-by-token scan with
the chunked (SSD) scan on the same tokens.
"""

from __future__ import annotations

import numpy as np

import slmkernels as sk

from . import Bench, case, entry_name
from .gemm import copies_for, cycler
from ..tolerances import OPS_RTOL, SSM_RTOL  # the tests' bounds
from .gemm import ratio as _ratio

# Granite 4.0 H-1B's mixer (config.json: hidden_size 1536, mamba_expand 2, mamba_n_heads 48,
# mamba_d_head 64, mamba_d_state 128, mamba_n_groups 1, mamba_d_conv 4)
SHAPE = dict(hidden=1536, nh=48, hd=64, ds=128, ng=1, K=4)


def _tokens(ctx) -> list:
    """Decode (1 token) and the prefill token counts: --rows, or the rows of an explicit MxNxK shape."""
    fixed = [m for p in ctx.presets for m in p.rows]
    return sorted(set([1] + (fixed or list(ctx.rows))))


def _inputs(rng, T):
    s = SHAPE
    nh, hd, ds, ng = s["nh"], s["hd"], s["ds"], s["ng"]
    return dict(
        x=rng.standard_normal((T, nh, hd)).astype(np.float32),
        dt=rng.standard_normal((T, nh)).astype(np.float32),
        A=(-np.exp(rng.standard_normal(nh))).astype(np.float32),
        B=rng.standard_normal((T, ng, ds)).astype(np.float32),
        C=rng.standard_normal((T, ng, ds)).astype(np.float32),
        D=rng.standard_normal(nh).astype(np.float32),
        dt_bias=rng.standard_normal(nh).astype(np.float32),
    ), rng.standard_normal((nh, ds, hd)).astype(np.float32)


def _reference(a, state):
    """float64 outputs of the recurrence and each output's scale (the largest |term| its head sums)."""
    x, dt, A, B, C, D, bias = (a[k].astype(np.float64) for k in ("x", "dt", "A", "B", "C", "D", "dt_bias"))
    H = state.astype(np.float64)  # (nh, ds, hd)
    T, nh, hd = x.shape
    g = np.arange(nh) // (nh // B.shape[1])
    y = np.zeros_like(x)
    scale = np.zeros((T, nh, 1))
    for t in range(T):
        u = dt[t] + bias
        d = np.where(u > 20, u, np.log1p(np.exp(np.minimum(u, 20))))
        H = np.exp(d * A)[:, None, None] * H + (d[:, None] * x[t])[:, None, :] * B[t][g][:, :, None]
        terms = H * C[t][g][:, :, None]
        y[t] = terms.sum(axis=1) + D[:, None] * x[t]
        scale[t, :, 0] = np.maximum(np.abs(terms).max(axis=(1, 2)), np.abs(D[:, None] * x[t]).max(axis=1))
    return y, scale


@case("ssm", requires=("ssm_scan",))
def scan(ctx):
    rng = ctx.rng
    s = SHAPE
    nh, hd, ds = s["nh"], s["hd"], s["ds"]
    label = f"H={nh} P={hd} N={ds}"
    for T in _tokens(ctx):
        a, state = _inputs(rng, T)
        ref, scale = _reference(a, state)
        bound = SSM_RTOL * scale + 1e-30
        state_bytes = state.nbytes
        io_bytes = sum(v.nbytes for v in a.values()) + a["x"].nbytes  # inputs + y
        for chunked in ([False] if T == 1 else [False, True]):
            n_copies = copies_for(state_bytes, ctx.working_set) if T == 1 else 1
            states = [state.copy() for _ in range(n_copies)]
            out = np.empty_like(a["x"])

            def run_on(st, chunked=chunked, a=a, out=out):
                return sk.ssm_scan(a["x"], a["dt"], a["A"], a["B"], a["C"], a["D"], a["dt_bias"], st,
                                   chunked=chunked, out=out)

            yield Bench(area="ssm", name=("decode scan" if T == 1 else "prefill scan chunked" if chunked else
                                          "prefill scan token by token"),
                        op="ssm_scan", kernel=entry_name("ssm_chunk" if chunked else "ssm_scan", "f32"), format="f32",
                        shape=f"T={T} {label}",
                        params=dict(T=T, n_heads=nh, head_dim=hd, d_state=ds, chunked=chunked,
                                    working_set_bytes=state_bytes * n_copies),
                        run=cycler(run_on, states),
                        check_run=lambda run_on=run_on, state=state: run_on(state.copy()),
                        check=lambda got, ref=ref, b=bound: _ratio(got, ref, b),
                        # per state element and token: decay, input, read-out (5 flops)
                        flops=5.0 * T * nh * hd * ds, bytes=float(2 * state_bytes + io_bytes), compute="fp32")


@case("ssm", requires=("ssm_conv1d",))
def conv(ctx):
    rng = ctx.rng
    s = SHAPE
    C = s["nh"] * s["hd"] + 2 * s["ng"] * s["ds"]
    K = s["K"]
    for T in _tokens(ctx):
        x = (rng.standard_normal((T, C)) * 3).astype(np.float32)
        w = rng.standard_normal((C, K)).astype(np.float32)
        b = rng.standard_normal(C).astype(np.float32)
        state = rng.standard_normal((K - 1, C)).astype(np.float32)
        win = np.concatenate([state, x]).astype(np.float64)
        pre = np.stack([(win[t:t + K] * w.T).sum(axis=0) for t in range(T)]) + b
        ref = pre / (1 + np.exp(-pre))
        bound = OPS_RTOL * (np.abs(np.stack([win[t:t + K] * w.T for t in range(T)])).sum(axis=1) + np.abs(b)
                            + np.abs(ref)) + 1e-30
        out = np.empty_like(x)
        st = state.copy()
        yield Bench(area="ssm", name="conv1d + silu", op="ssm_conv1d", kernel=entry_name("ssm_conv", "f32"),
                    format="f32", shape=f"T={T} C={C} K={K}", params=dict(T=T, channels=C, K=K),
                    run=lambda x=x, w=w, b=b, st=st, out=out: sk.ssm_conv1d(x, st, w, b, out=out),
                    check_run=lambda x=x, w=w, b=b, state=state: sk.ssm_conv1d(x, state.copy(), w, b),
                    check=lambda got, ref=ref, bd=bound: _ratio(got, ref, bd),
                    flops=2.0 * T * C * K + 5.0 * T * C, bytes=float(2 * x.nbytes + w.nbytes + 2 * state.nbytes),
                    compute="fp32")


@case("ssm", requires=("ssm_gated_rmsnorm",))
def gated_norm(ctx):
    rng = ctx.rng
    s = SHAPE
    n = s["nh"] * s["hd"]
    for T in _tokens(ctx):
        y = rng.standard_normal((T, n)).astype(np.float32)
        z = (rng.standard_normal((T, n)) * 3).astype(np.float32)
        w = rng.uniform(0.5, 1.5, n).astype(np.float32)
        g = y.astype(np.float64) * z / (1 + np.exp(-z.astype(np.float64)))
        gg = g.reshape(T, s["ng"], -1)
        ref = (gg / np.sqrt((gg**2).mean(axis=-1, keepdims=True) + 1e-5)).reshape(T, n) * w
        bound = (n / 2 + 8) * 2.0**-24 * np.abs(ref) + OPS_RTOL * np.abs(ref) + 1e-30
        out = np.empty_like(y)
        yield Bench(area="ssm", name="gated rmsnorm", op="ssm_gated_rmsnorm",
                    kernel=entry_name("ssm_gated_norm", "f32"), format="f32", shape=f"{T}x{n}",
                    params=dict(T=T, n=n, groups=s["ng"]),
                    run=lambda y=y, z=z, w=w, out=out: sk.ssm_gated_rmsnorm(y, z, w, s["ng"], 1e-5, out=out),
                    check=lambda got, ref=ref, b=bound: _ratio(got, ref, b),
                    flops=10.0 * T * n, bytes=float(3 * y.nbytes + w.nbytes), compute="fp32")
