"""Attention over the paged KV cache: decode bandwidth, prefill against numpy / PyTorch, memory.

Every measured configuration is first validated against a float64 numpy reference on the
cache's own (dequantized) contents. Writes JSON and a markdown table.

    python bench/bench_attention.py --threads 2 --json attention.json --md attention.md

- decode: 9 query heads over 3 KV heads, head_dim 64, 4096 cached tokens, one query token.
  "hot": one layer, the cache fits the last-level cache; "streaming": a step over enough layers
  (each its own 4096-token cache) that the working set is >= 2x the LLC, as in a real model.
  KV bytes read per second against the streaming-read bandwidth (_probe_read_bandwidth(1 GiB)).
- prefill: 512 tokens causal, same heads, against a float32 numpy implementation and
  torch.nn.functional.scaled_dot_product_attention (skipped when torch is not importable).
- memory: bytes per cached token per dtype, pool overhead (block rounding + partial tails),
  and each dtype's attention error against an f32 cache (the q4_0 quality question).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

import numpy as np

import slmkernels as sk

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/, also under python -P
from bench_gemm import timeit as _gemm_timeit  # noqa: E402
from slmkernels import _core

HQ, HKV, D, L_DECODE, T_PREFILL = 9, 3, 64, 4096, 512
DTYPES = ["f32", "f16", "q8_0", "q4_0"]
TOL = 2e-4  # relative to max|v|, as tests/test_attention.py (ATTN_TOL)


def timeit_rounds(fns: dict, min_time: float, rounds: int = 3) -> dict:
    """Median seconds per call of each of fns: `rounds` rounds in which each gets its own block of
    calls (timeit, min_time / rounds), then the median over rounds. Blocks, not alternating
    calls: on a small machine one library's spinning worker threads would slow the next call
    of another; rounds, so that a slow spell of a shared machine does not fall on one alone."""
    per = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            per[k].append(timeit(fn, min_time / rounds))
    return {k: float(np.median(v)) for k, v in per.items()}


def timeit(fn, min_time: float, min_reps: int = 5) -> float:
    """Median seconds per call (bench_gemm's timer, which also gives the spread)."""
    return _gemm_timeit(fn, min_time, min_reps)[0]


def ref_attention(q, K, V, kpos, qpos, scale):
    T, H, _ = q.shape
    G = H // K.shape[1]
    out = np.zeros(q.shape)
    for h in range(H):
        s = q[:, h].astype(np.float64) @ K[:, h // G].astype(np.float64).T * scale
        s = np.where(kpos[None, :] <= qpos[:, None], s, -np.inf)
        p = np.exp(s - s.max(axis=1, keepdims=True))
        out[:, h] = p @ V[:, h // G].astype(np.float64) / p.sum(axis=1, keepdims=True)
    return out


def numpy_attention(q, K, V):
    """float32 causal attention for the newest T positions, the straightforward numpy way."""
    T, H, d = q.shape
    L = K.shape[0]
    G = H // K.shape[1]
    out = np.empty_like(q)
    mask = np.arange(L)[None, :] > (np.arange(L - T, L))[:, None]
    for h in range(H):
        s = (q[:, h] @ K[:, h // G].T) * np.float32(1 / np.sqrt(d))
        s[mask] = -np.inf
        s -= s.max(axis=1, keepdims=True)
        np.exp(s, out=s)
        s /= s.sum(axis=1, keepdims=True)
        out[:, h] = s @ V[:, h // G]
    return out


def make_cache(rng, dtype, n_layers, L, capacity=None):
    c = sk.KVCache(n_layers, HKV, D, capacity_tokens=capacity or L, dtype=dtype)
    s = c.new_sequence()
    c.extend(s, L)
    for layer in range(n_layers):
        c.write(layer, s, rng.standard_normal((L, HKV, D)).astype(np.float32),
                rng.standard_normal((L, HKV, D)).astype(np.float32))
    return c, s


def validate(c, s, q, layer=0):
    out = sk.attention(q, c, layer, s)
    K, V, kpos = c.keys(layer, s), c.values(layer, s), c.positions(layer, s)
    L = c.length(s)
    ref = ref_attention(q, K, V, kpos, np.arange(L - q.shape[0], L), 1 / np.sqrt(D))
    err = float(np.abs(out - ref).max() / max(1.0, np.abs(V).max()))
    if not err <= TOL:
        sys.exit(f"validation failed: {c.dtype} error {err:.3g} > {TOL}")
    return err


def llc_bytes() -> int:
    best = 0
    for idx in range(8):
        p = f"/sys/devices/system/cpu/cpu0/cache/index{idx}/size"
        if os.path.exists(p):
            txt = open(p).read().strip()
            mult = {"K": 1 << 10, "M": 1 << 20}.get(txt[-1], 1)
            best = max(best, int(txt.rstrip("KM")) * mult)
    return best or (32 << 20)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default="bench_attention.json")
    ap.add_argument("--md", default="bench_attention.md")
    ap.add_argument("--min-time", type=float, default=0.5)
    args = ap.parse_args()
    sk.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    bw = _core._probe_read_bandwidth(1 << 30, 3)["gb_per_s"]
    llc = llc_bytes()
    meta = dict(isa=sk.get_isa(), threads=args.threads, cpu=platform.processor() or platform.machine(),
                kernels={k: v for k, v in sk.kernel_names().items() if k.startswith("attn_chunk_")}, read_bandwidth_gb_s=bw, llc_bytes=llc)
    rows = []

    # ---- decode ----
    for dtype in ["f16", "q8_0"]:
        per_layer = None
        c1, s1 = make_cache(rng, dtype, 1, L_DECODE)
        q = rng.standard_normal((1, HQ, D)).astype(np.float32)
        err = validate(c1, s1, q)
        per_layer = c1.stats()["bytes_per_token"] * L_DECODE  # K + V bytes one decode step reads
        t_hot = timeit(lambda: sk.attention(q, c1, 0, s1), args.min_time)
        n_layers = max(2, int(np.ceil(2 * llc / per_layer)))
        cN, sN = make_cache(rng, dtype, n_layers, L_DECODE)
        out = np.empty_like(q)

        def step():
            for layer in range(n_layers):
                sk.attention(q, cN, layer, sN, out=out)

        t_cold = timeit(step, args.min_time, 3) / n_layers
        for kind, t in (("hot", t_hot), ("streaming", t_cold)):
            gbs = per_layer / t / 1e9
            rows.append(dict(bench="decode", dtype=dtype, kind=kind, layers=1 if kind == "hot" else n_layers,
                             tokens=L_DECODE, us=t * 1e6, kv_bytes=per_layer, gb_s=gbs, frac_bw=gbs / bw, max_err=err))
        del cN

    # ---- prefill ----
    for dtype in ["f32", "f16", "q8_0"]:
        c, s = make_cache(rng, dtype, 1, T_PREFILL)
        q = rng.standard_normal((T_PREFILL, HQ, D)).astype(np.float32)
        err = validate(c, s, q)
        K, V = c.keys(0, s), c.values(0, s)
        ours = sk.attention(q, c, 0, s)
        fns = {"ours": lambda: sk.attention(q, c, 0, s), "numpy": lambda: numpy_attention(q, K, V)}
        assert np.abs(numpy_attention(q, K, V) - ours).max() < 1e-3
        try:
            import torch  # noqa: PLC0415

            torch.set_num_threads(args.threads)
            G = HQ // HKV
            tq = torch.from_numpy(q).permute(1, 0, 2).unsqueeze(0)
            tk = torch.from_numpy(np.repeat(K, G, axis=1)).permute(1, 0, 2).unsqueeze(0)
            tv = torch.from_numpy(np.repeat(V, G, axis=1)).permute(1, 0, 2).unsqueeze(0)
            sdpa = torch.nn.functional.scaled_dot_product_attention
            got = sdpa(tq, tk, tv, is_causal=True)[0].permute(1, 0, 2).numpy()
            if not np.abs(got - ours).max() < 1e-3:  # the peer is checked too before it is timed
                sys.exit(f"validation failed: torch SDPA differs from ours by {np.abs(got - ours).max():.3g}")
            fns["torch"] = lambda: sdpa(tq, tk, tv, is_causal=True)
        except ImportError:
            pass
        med = timeit_rounds(fns, 3 * args.min_time)
        t_ours, t_np, t_torch = med["ours"], med["numpy"], med.get("torch")
        rows.append(dict(bench="prefill", dtype=dtype, tokens=T_PREFILL, us=t_ours * 1e6, numpy_us=t_np * 1e6,
                         torch_us=None if t_torch is None else t_torch * 1e6, vs_numpy=t_np / t_ours,
                         vs_torch=None if t_torch is None else t_torch / t_ours, max_err=err))

    # ---- memory and quality ----
    q = rng.standard_normal((8, HQ, D)).astype(np.float32)
    k = rng.standard_normal((1000, HKV, D)).astype(np.float32)
    v = rng.standard_normal((1000, HKV, D)).astype(np.float32)
    outs = {}
    for dtype in DTYPES:
        c = sk.KVCache(1, HKV, D, capacity_tokens=8192, dtype=dtype)
        seqs = []
        for L in (4096, 1000, 17):  # full blocks and partial tails
            s = c.new_sequence()
            c.extend(s, L)
            c.write(0, s, np.resize(k, (L, HKV, D)), np.resize(v, (L, HKV, D)))
            seqs.append(s)
        st = c.stats()
        tokens = 4096 + 1000 + 17
        payload = tokens * st["bytes_per_token"]
        outs[dtype] = sk.attention(q, c, 0, seqs[1])
        key_err = float(np.sqrt(np.mean((c.keys(0, seqs[1]) - k) ** 2) / np.mean(k**2)))
        rows.append(dict(bench="memory", dtype=dtype, bytes_per_token=st["bytes_per_token"],
                         bytes_per_token_per_head=st["bytes_per_token"] / HKV, block_bytes=st["block_bytes"],
                         pool_overhead=(st["bytes_used"] - payload) / payload, key_rel_rms=key_err))
    for r in rows:
        if r["bench"] == "memory":
            o = outs[r["dtype"]]
            r["attn_rel_rms_vs_f32"] = float(np.sqrt(np.mean((o - outs["f32"]) ** 2) / np.mean(outs["f32"] ** 2)))

    with open(args.json, "w") as fh:
        json.dump(dict(meta=meta, rows=rows), fh, indent=1)
    lines = [f"# attention ({meta['isa']}, {args.threads} threads; streaming read {bw:.1f} GB/s, LLC {llc >> 20} MB)", ""]
    lines += ["## decode: 9 q heads / 3 KV heads, head_dim 64, 4096 tokens", "",
              "| dtype | working set | layers | us/layer | KV GB/s | of read bw | max err |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["bench"] == "decode":
            lines.append(f"| {r['dtype']} | {r['kind']} | {r['layers']} | {r['us']:.1f} | {r['gb_s']:.2f} | "
                         f"{100 * r['frac_bw']:.0f}% | {r['max_err']:.1e} |")
    lines += ["", "## prefill: 512 tokens causal", "",
              "| dtype | ours us | numpy us | torch sdpa us | x numpy | x torch |", "|---|---|---|---|---|---|"]
    for r in rows:
        if r["bench"] == "prefill":
            tt = "n/a (torch not installed)" if r["torch_us"] is None else f"{r['torch_us']:.0f}"
            vt = "n/a" if r["vs_torch"] is None else f"{r['vs_torch']:.2f}"
            lines.append(f"| {r['dtype']} | {r['us']:.0f} | {r['numpy_us']:.0f} | {tt} | {r['vs_numpy']:.2f} | {vt} |")
    lines += ["", "## memory (3 KV heads x 64, one layer) and quality", "",
              "| dtype | bytes/token | bytes/token/head | block bytes | pool overhead | key rel RMS | attn rel RMS vs f32 |",
              "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["bench"] == "memory":
            lines.append(f"| {r['dtype']} | {r['bytes_per_token']} | {r['bytes_per_token_per_head']:.0f} | {r['block_bytes']} | "
                         f"{100 * r['pool_overhead']:.1f}% | {r['key_rel_rms']:.4f} | {r['attn_rel_rms_vs_f32']:.4f} |")
    with open(args.md, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
