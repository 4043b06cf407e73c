"""GEMM area: matmul on packed weights (GEMV M=1 and prefill M>1), the per-call overhead, and
the peers (numpy float32 on the dequantized weights, torch.matmul, torch dynamic int8 linear)."""

from __future__ import annotations

import copy
import math
import time
import warnings

import numpy as np

import slmkernels as sk

from . import Bench, case, entry_name
from .peers import torch_or_reason

FLOAT_FORMATS = ("f32", "f16", "bf16")
MAX_COPIES = 1024  # cap on distinct weight copies for a cold GEMV (tiny matrices)
MAX_TORCH_INT8_COPIES = 256  # each is a deepcopy of a quantized Linear: ~2 ms apiece


# ---- reference and bounds ----


def act_block(fmt: str) -> int:
    return 256 if fmt.endswith("_k") else 32


def error_bound(x: np.ndarray, w: np.ndarray, fmt: str, act: str = "q8") -> np.ndarray:
    """Worst-case |matmul - x @ w.T| (M, N); tests/test_gemm.py asserts it too.

    Activations are quantized per block of B values to q = rne(x/d), d = amax/127, so each
    |x - q*d| <= d/2 (plus float rounding of x/d, 2^-24 relative); weights are decoded exactly.
    The float epilogue adds ~K/B roundings of 2^-24 relative: 1e-5 * (|x| @ |w|.T).
    act "q8x2" (set_act_mode): the residual r = x - q*d (|r| <= d/2) is quantized again with
    d2 = amax(r)/127 <= d/254, so the error is d2/2 <= (d/2)/254, plus the residual's own float
    rounding (2^-24 |x| per element, inside the 1e-5 term)."""
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    rounding = 1e-5 * (np.abs(x64) @ np.abs(w64).T) + 1e-30
    if fmt in FLOAT_FORMATS:
        return rounding
    B = act_block(fmt)
    M, K = x.shape
    d = np.abs(x64).reshape(M, K // B, B).max(axis=2) / 127.0  # (M, K/B)
    wl1 = np.abs(w64).reshape(w.shape[0], K // B, B).sum(axis=2)  # (N, K/B)
    if act == "q8x2":
        d = d / 254.0 * (1 + 1e-5)
    return (d / 2 * (1 + 1e-6)) @ wl1.T + rounding


def float_peer_bound(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """float32 dot products of length K in any summation order: |err| <= K 2^-24 (|x| @ |w|.T)
    (Higham, Accuracy and Stability of Numerical Algorithms, eq. 3.5)."""
    K = x.shape[1]
    return K * 2.0**-24 * (np.abs(x.astype(np.float64)) @ np.abs(w.astype(np.float64)).T) + 1e-30


# torch's dynamic int8 linear quantizes activations per tensor to 7 bits (reduce_range) and
# weights per tensor to int8, with observers we do not replicate exactly: the bound is the sum of
# the two half-steps times the other operand's L1 norm, with a factor 2 of slack for that.
TORCH_INT8_SLACK = 2.0


def torch_int8_bound(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    sx = (max(x64.max(), 0) - min(x64.min(), 0)) / 127.0
    sw = 2 * np.abs(w64).max() / 255.0
    K = x.shape[1]
    b = (sx / 2) * np.abs(w64).sum(axis=1)[None, :] + (sw / 2) * np.abs(x64).sum(axis=1)[:, None] + K * sx * sw / 4
    return TORCH_INT8_SLACK * b + float_peer_bound(x, w)


def ratio(got: np.ndarray, ref: np.ndarray, bound: np.ndarray) -> float:
    got = np.asarray(got, dtype=np.float64)
    if got.shape != ref.shape:
        return math.inf
    r = np.abs(got - ref) / bound
    return math.inf if not np.isfinite(r).all() else float(r.max())


def copies_for(nbytes: int, working_set: int) -> int:
    """How many distinct copies make a working set no cache holds (1: hot cache)."""
    if working_set <= 0:
        return 1
    return int(min(MAX_COPIES, max(1, math.ceil(working_set / max(nbytes, 1)))))


def read_probe(ctx, nbytes: int):
    """A read-bandwidth probe over `nbytes` (a cold GEMV's working set), the same kind of pages as the
    packed weights, taken between a row's timed samples (runner.measure): a cold GEMV row is placed
    against the bandwidth of its own moment, not the run's start. One buffer per size per run."""
    probes = ctx.extra.setdefault("read_probes", {})
    if nbytes not in probes:
        probes[nbytes] = sk._core._ReadProbe(nbytes)
    p = probes[nbytes]
    return lambda: p.measure(3)["gb_per_s"]


def cycler(fn, objs):
    """A call that runs fn(next object) in turn, so each call reads weights from memory."""
    i = [0]
    n = len(objs)

    def run():
        o = objs[i[0] % n]
        i[0] += 1
        return fn(o)

    return run


# ---- our kernels ----


def _shapes(ctx):
    for p in ctx.presets:
        for layer, N, K, prefill in p.linears():
            for M in ctx.m_values(p):
                if M > 1 and not prefill:
                    continue
                yield p, layer, M, N, K


@case("gemm")
def matmul_packed(ctx):
    rng = ctx.rng
    for p, layer, M, N, K in _shapes(ctx):
        label = f"{'gemv' if M == 1 else 'gemm'} {layer}" + ("" if p.explicit else f" ({p.name})")
        for fmt in ctx.formats:
            shape = f"{M}x{N}x{K}"
            common = dict(area="gemm", name=label, op="matmul", format=fmt, shape=shape,
                          params=dict(M=M, N=N, K=K, layer=layer, preset=p.name),
                          kernel=entry_name("gemm", fmt, M, packed=True))
            blk = sk.formats()[fmt]["block_size"]
            if K % blk or K % act_block(fmt):
                yield Bench(**common, run=None, check=None, flops=0, bytes=0, compute=None,
                            skip=f"skipped: K={K} is not a multiple of {fmt}'s block ({max(blk, act_block(fmt))})")
                continue
            w = rng.standard_normal((N, K)).astype(np.float32)
            x = rng.standard_normal((M, K)).astype(np.float32)
            qt = sk.quantize(w, fmt)
            w_deq = sk.dequantize(qt)
            del w
            n_copies = copies_for(qt.nbytes, ctx.working_set) if M == 1 else 1
            packed = [sk.pack(qt) for _ in range(n_copies)]
            wbytes = packed[0].nbytes
            out = np.empty((M, N), np.float32)
            ref = x.astype(np.float64) @ w_deq.astype(np.float64).T
            bound = error_bound(x, w_deq, fmt)
            common["params"]["working_set_bytes"] = wbytes * n_copies
            cold = M == 1 and ctx.working_set > 0
            yield Bench(**common, run=cycler(lambda pw: sk.matmul(x, pw, out=out), packed),
                        check=lambda got, ref=ref, bound=bound: ratio(got, ref, bound),
                        flops=2.0 * M * N * K, bytes=float(wbytes + x.nbytes + out.nbytes),
                        compute="fp32" if fmt in FLOAT_FORMATS else "int8",
                        probe=read_probe(ctx, wbytes * n_copies) if cold else None)
            del packed


@case("gemm")
def matmul_gguf_layout(ctx):
    """GEMV on QuantizedTensors in GGUF layout, as a model file's tensors are before packing, on
    each preset's largest matrix: the steady state (each tensor packs itself on its first call and
    keeps the copy; params.first_call_seconds is that first call, packing included) and, as an
    overhead row, every call repacking (the cache dropped before it: what the cache saves)."""
    rng = ctx.rng
    for p in ctx.presets:
        layer, N, K, _ = max((t for t in p.linears() if t[0] != "lm_head"), key=lambda t: t[1] * t[2])
        label = f"gemv {layer}" + ("" if p.explicit else f" ({p.name})")
        for fmt in ctx.formats:
            common = dict(area="gemm", op="matmul", format=fmt, shape=f"1x{N}x{K}",
                          kernel=entry_name("gemm", fmt, 1, packed=True))
            blk = sk.formats()[fmt]["block_size"]
            if K % blk or K % act_block(fmt):
                yield Bench(**common, name=f"{label}, gguf layout", run=None, check=None, flops=0, bytes=0, compute=None,
                            skip=f"skipped: K={K} is not a multiple of {fmt}'s block ({max(blk, act_block(fmt))})")
                continue
            qt = sk.quantize(rng.standard_normal((N, K)).astype(np.float32), fmt)
            w_deq = sk.dequantize(qt)
            x = rng.standard_normal((1, K)).astype(np.float32)
            out = np.empty((1, N), np.float32)
            ref = x.astype(np.float64) @ w_deq.astype(np.float64).T
            bound = error_bound(x, w_deq, fmt)
            n_copies = copies_for(qt.nbytes, ctx.working_set)
            raws = [sk.QuantizedTensor(qt.data.copy(), fmt, qt.shape) for _ in range(n_copies)]
            first = []
            for r in raws:
                t0 = time.perf_counter()
                sk.matmul(x, r, out=out)
                first.append(time.perf_counter() - t0)
            params = dict(M=1, N=N, K=K, layer=layer, preset=p.name, working_set_bytes=qt.nbytes * n_copies,
                          first_call_seconds=float(np.median(first)))
            check = lambda got, ref=ref, bound=bound: ratio(got, ref, bound)  # noqa: E731
            yield Bench(**common, name=f"{label}, gguf layout (packed once, cached)", params=params,
                        run=cycler(lambda r: sk.matmul(x, r, out=out), raws), check=check,
                        flops=2.0 * N * K, bytes=float(raws[0].packed_nbytes + x.nbytes + out.nbytes),
                        compute="fp32" if fmt in FLOAT_FORMATS else "int8",
                        probe=read_probe(ctx, raws[0].packed_nbytes * n_copies) if ctx.working_set > 0 else None)

            def repack(r, x=x, out=out):
                r.drop_packed()
                return sk.matmul(x, r, out=out)

            yield Bench(**common, name=f"{label}, gguf layout (repacked per call)", params=dict(params),
                        run=cycler(repack, raws), check=check, flops=2.0 * N * K, bytes=float(qt.nbytes),
                        compute=None, kind="overhead")
            del raws


@case("gemm")
def matmul_call_overhead(ctx):
    """The fixed cost of one call: a 1x32 @ 32x16 q8_0 product into a given output."""
    rng = ctx.rng
    w = rng.standard_normal((16, 32)).astype(np.float32)
    qt = sk.quantize(w, "q8_0")
    pw = sk.pack(qt)
    x = rng.standard_normal((1, 32)).astype(np.float32)
    out = np.empty((1, 16), np.float32)
    ref = x.astype(np.float64) @ sk.dequantize(qt).astype(np.float64).T
    bound = error_bound(x, sk.dequantize(qt), "q8_0")
    yield Bench(area="gemm", name="call overhead", op="matmul", format="q8_0", shape="1x16x32",
                params=dict(M=1, N=16, K=32), kernel=entry_name("gemm", "q8_0", 1, packed=True),
                run=lambda: sk.matmul(x, pw, out=out), check=lambda got: ratio(got, ref, bound),
                flops=2.0 * 16 * 32, bytes=float(pw.nbytes + x.nbytes + out.nbytes), compute=None, kind="overhead")


# ---- peers ----


@case("gemm", peer=True)
def matmul_peers(ctx):
    """numpy and torch on the same problems; weights are the first format's dequantized values
    (the peers compute in float32 or their own int8, whatever format we store)."""
    rng = ctx.rng
    torch, why = torch_or_reason()
    fmt0 = ctx.formats[0]
    for p, layer, M, N, K in _shapes(ctx):
        label = f"{'gemv' if M == 1 else 'gemm'} {layer}" + ("" if p.explicit else f" ({p.name})")
        shape = f"{M}x{N}x{K}"
        base = dict(area="gemm", name=label, format="f32", shape=shape, params=dict(M=M, N=N, K=K, layer=layer, preset=p.name))
        w = rng.standard_normal((N, K)).astype(np.float32)
        if K % sk.formats()[fmt0]["block_size"] == 0:
            w = sk.dequantize(sk.quantize(w, fmt0))
        x = rng.standard_normal((M, K)).astype(np.float32)
        ref = x.astype(np.float64) @ w.astype(np.float64).T
        fbound = float_peer_bound(x, w)
        io = float(x.nbytes + M * N * 4)

        # numpy float32 (BLAS sgemm on a transposed view)
        n_copies = copies_for(w.nbytes, ctx.working_set) if M == 1 else 1
        ws = [w.copy() for _ in range(n_copies)]
        yield Bench(**{**base, "params": {**base["params"], "working_set_bytes": w.nbytes * n_copies}},
                    impl="numpy", op="numpy.matmul", kernel="numpy x @ w.T (f32)",
                    run=cycler(lambda wi: x @ wi.T, ws), check=lambda got, ref=ref, b=fbound: ratio(got, ref, b),
                    flops=2.0 * M * N * K, bytes=w.nbytes + io, compute="fp32")
        del ws
        if torch is None:
            yield Bench(**base, impl="torch", op="torch.matmul", run=None, check=None, flops=0, bytes=0, compute=None, skip=why)
            continue
        with torch.inference_mode():
            xt = torch.from_numpy(x)
            wts = [torch.from_numpy(w.copy()) for _ in range(n_copies)]
            yield Bench(**{**base, "params": {**base["params"], "working_set_bytes": w.nbytes * n_copies}},
                        impl="torch", op="torch.matmul", kernel="torch.matmul (f32)",
                        run=cycler(lambda wt: torch.matmul(xt, wt.T).numpy(), wts),
                        check=lambda got, ref=ref, b=fbound: ratio(got, ref, b),
                        flops=2.0 * M * N * K, bytes=w.nbytes + io, compute="fp32")
            del wts
            li = torch.nn.Linear(K, N, bias=False)
            li.weight.data.copy_(torch.from_numpy(w))
            with warnings.catch_warnings():  # torch.ao.quantization warns that it is deprecated
                warnings.simplefilter("ignore")
                q0 = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(li), {torch.nn.Linear},
                                                            dtype=torch.qint8, inplace=True)[0]
            del li
            n_q = min(MAX_TORCH_INT8_COPIES, copies_for(N * K, ctx.working_set)) if M == 1 else 1
            qs = [q0] + [copy.deepcopy(q0) for _ in range(n_q - 1)]
            ibound = torch_int8_bound(x, w)
            yield Bench(**{**base, "format": "qint8", "params": {**base["params"], "working_set_bytes": N * K * n_q}},
                        impl="torch-int8", op="torch.int8_linear",
                        kernel="torch dynamic int8 Linear",
                        run=cycler(lambda m: m(xt).numpy(), qs),
                        check=lambda got, ref=ref, b=ibound: ratio(got, ref, b),
                        flops=2.0 * M * N * K, bytes=N * K + io, compute="int8")
            del qs
