"""GEMV / GEMM benchmark against the machine's limits, numpy (OpenBLAS) and llama.cpp.

Every kernel is validated against a float64 numpy reference on the same inputs before it is
timed. Writes JSON and a markdown table.

    python bench/bench_gemm.py --threads 2 --json gemm.json --md gemm.md [--llama-bin PATH]
    python bench/bench_gemm.py --threads 1 --gemv-only --gemv-shape 4096x14336 --llama-bin PATH

The GEMV table against llama.cpp: one process per format, the formats interleaved and the
rounds repeated (each process measures ours and llama.cpp's back to back, with the machine's
read bandwidth), then the runs merged into one table of medians:

    for r in 1 2 3; do for f in q8_0 q4_0 q4_1 q5_0 q5_1 q4_k q5_k q6_k f16; do
      python bench/bench_gemm.py --threads 1 --gemv-only --gemv-shape 4096x14336 --formats $f \
        --llama-bin PATH --json runs/$r-$f.json --md /dev/null; done; done
    python bench/bench_gemm.py --merge runs/*.json --md gemv.md

GEMV rows come in three weight layouts: `packed` (sk.pack), `raw` (matmul on QuantizedTensors in
GGUF layout: packed and cached on each tensor by its first call, so the steady state; the first
call's time, packing included, is reported beside it) and `raw, repacked per call` (the cache
dropped before every call: what every call cost before the cache). Those cycle through distinct
weight copies (2x the last-level cache at least), so weights stream from memory as in decoding;
`packed, one copy` re-reads one copy as test-backend-ops does (its weights may partly stay in
the last-level cache).

--llama-bin: llama.cpp's test-backend-ops (built from the llama-cpp-python sdist); its own
MUL_MAT timings (`perf -o MUL_MAT -p <this shape and format>`) are read and put beside ours,
measured right after ours for each format. It runs on hardware_concurrency / 2 threads (1 on a
2-core host), whatever --threads says: the JSON records both. Skipped when not given or not found.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time

import numpy as np

import slmkernels as sk
from slmkernels import _core

GEMV_FORMATS = ["q4_0", "q4_1", "q8_0", "q4_k", "q6_k"]
GEMM_FORMATS = ["q4_0", "q4_k"]
GEMM_M = [128, 512]
N = K = 4096


def timeit(fn, min_time: float = 0.5, min_reps: int = 5) -> tuple[float, float]:
    """Median and spread (max-min)/median of per-call seconds."""
    fn()
    times = []
    t_end = time.perf_counter() + min_time
    while len(times) < min_reps or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    return med, (times[-1] - times[0]) / med


def validate(x: np.ndarray, w_deq: np.ndarray, got: np.ndarray, block: int) -> float:
    """Max error relative to the activation-quantization bound (must be <= 1)."""
    ref = x.astype(np.float64) @ w_deq.astype(np.float64).T
    M, k = x.shape
    d = np.abs(x.astype(np.float64)).reshape(M, k // block, block).max(axis=2) / 127.0
    wl1 = np.abs(w_deq.astype(np.float64)).reshape(w_deq.shape[0], k // block, block).sum(axis=2)
    bound = (d / 2 * (1 + 1e-6)) @ wl1.T + 1e-5 * (np.abs(x) @ np.abs(w_deq).T) + 1e-30
    return float((np.abs(got - ref) / bound).max())


# our format names -> ggml's type names (test-backend-ops' -p filter is case-sensitive: q4_K)
LLAMA_TYPES = {f: f.replace("_k", "_K") for f in
               ("f32", "f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q4_k", "q5_k", "q6_k")}


def llama_backend_ops(binary: str, fmts: list[str], m: int, n: int, k: int) -> dict:
    """llama.cpp's own MUL_MAT timings for our (M, N, K) in formats `fmts`:
    {(type, m, n, k): (us_per_run, gflops)}. ggml's MUL_MAT is (k, m) weights x (k, n)
    activations, so its 'n' is our M and its 'm' our N."""
    types = "|".join(LLAMA_TYPES[f] for f in fmts if f in LLAMA_TYPES)
    if not types:
        return {}
    flt = f"type_a=({types}),type_b=f32,m={n},n={m},k={k},"
    r = subprocess.run([binary, "perf", "-o", "MUL_MAT", "-b", "CPU", "-p", flt], capture_output=True, text=True,
                       timeout=3600)
    out = {}
    pat = re.compile(r"MUL_MAT\(type_a=(\w+),type_b=f32,m=(\d+),n=(\d+),k=(\d+),.*?:\s+(\d+) runs -\s+([\d.]+) us/run -.*?([\d.]+) (G|T)FLOPS")
    for line in r.stdout.splitlines():
        mm = pat.search(line)
        if mm:
            t, m_, n_, k_, _, us, fl, unit = mm.groups()
            out[(t.lower(), int(n_), int(m_), int(k_))] = (float(us), float(fl) * (1000 if unit == "T" else 1))
    return out


def merge(paths: list[str], md: str) -> int:
    """One GEMV table from several runs (rounds x formats): per format and layout the median time
    over the runs, as % of the read bandwidth measured in the same run, and llama.cpp's."""
    runs = [json.load(open(p)) for p in paths]
    cells: dict[tuple[str, str], list[tuple[float, float]]] = {}
    first: dict[str, list[float]] = {}
    nbytes: dict[str, int] = {}
    for run in runs:
        bw = run["meta"]["read_gb_per_s"]
        for r in run["rows"]:
            if r["kind"] != "gemv":
                continue
            f = r["format"]
            nbytes[f] = r["weight_bytes"]
            cells.setdefault((f, r["layout"]), []).append((r["seconds"], r["frac_bandwidth"]))
            if "first_call_seconds" in r:
                first.setdefault(f, []).append(r["first_call_seconds"])
            if r["layout"] == "packed" and "llama_us" in r:
                cells.setdefault((f, "llama.cpp"), []).append((r["llama_us"] * 1e-6, r["weight_bytes"] / r["llama_us"] / 1e3 / bw))

    def med(v):
        return float(np.median(v))

    def cell(f, layout):
        v = cells.get((f, layout))
        if not v:
            return "-"
        t = [x[0] for x in v]
        return f"{med(t)*1e3:.2f} ms ({min(t)*1e3:.2f}-{max(t)*1e3:.2f}), {med([x[1] for x in v]):.0%}"

    layouts = ["packed", "packed, one copy", "raw", "raw, repacked per call", "llama.cpp"]
    bws = [r["meta"]["read_gb_per_s"] for r in runs]
    loads = [r["meta"]["load_average_before"] for r in runs] + [r["meta"]["load_average_after"] for r in runs]
    m0 = runs[0]["meta"]
    fmts = [f for f in dict.fromkeys(f for f, _ in cells)]
    per = [len(cells[(f, "packed")]) for f in fmts if (f, "packed") in cells] or [0]
    shape = next(f"1x{r['N']}x{r['K']}" for run in runs for r in run["rows"] if r["kind"] == "gemv")
    lines = [f"GEMV {shape}, {m0['threads']} thread(s) ours ({m0['isa']}), llama.cpp test-backend-ops "
             f"{m0.get('llama_threads') or '-'} thread(s); {len(runs)} runs, {min(per)}-{max(per)} per format, "
             f"formats interleaved. Each cell: median time (min-max) and % of the read bandwidth measured in the same run "
             f"({min(bws):.1f}-{max(bws):.1f} GB/s over the runs); load average {min(loads):.1f}-{max(loads):.1f}.", "",
             "| format | weights | packed | packed, one copy | raw GGUF, cached | raw: first call | raw, repacked per call "
             "| llama.cpp | llama.cpp / packed |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for f in fmts:
        ratio = "-"
        if cells.get((f, "llama.cpp")) and cells.get((f, "packed")):
            ratio = f"{med([x[0] for x in cells[(f, 'llama.cpp')]]) / med([x[0] for x in cells[(f, 'packed')]]):.2f}x"
        fc = f"{med(first[f])*1e3:.0f} ms" if f in first else "-"
        lines.append(f"| {f} | {nbytes[f] / 2**20:.1f} MiB | {cell(f, 'packed')} | {cell(f, 'packed, one copy')} | "
                     f"{cell(f, 'raw')} | {fc} | {cell(f, 'raw, repacked per call')} | {cell(f, 'llama.cpp')} | {ratio} |")
    text = "\n".join(lines) + "\n"
    with open(md, "w") as fh:
        fh.write(text)
    print(text)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=sk.cpu_info()["physical_cores"])
    ap.add_argument("--json", default="bench_gemm.json")
    ap.add_argument("--md", default="bench_gemm.md")
    ap.add_argument("--min-time", type=float, default=1.0)
    ap.add_argument("--llama-bin", default=None)
    ap.add_argument("--working-set-mb", type=int, default=0, help="GEMV weight working set (default 2x LLC, >= 640 MB)")
    ap.add_argument("--gemv-shape", default=f"{N}x{K}", help="N x K of the GEMV weights (test-backend-ops: 4096x14336)")
    ap.add_argument("--gemv-only", action="store_true", help="GEMV rows only (no GEMM, no call overhead)")
    ap.add_argument("--formats", default=",".join(GEMV_FORMATS), help="GEMV formats")
    ap.add_argument("--merge", nargs="+", metavar="JSON", help="merge the GEMV rows of earlier runs into one table (--md)")
    args = ap.parse_args(argv)
    if args.merge:
        return merge(args.merge, args.md)
    sk.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []

    load_before = os.getloadavg()[0]
    bw = _core._probe_read_bandwidth(1 << 30, 5)
    peak8 = _core._probe_peak("int8", 0.3)  # the ISA's best int8 instruction (AMX: TDPBSSD)
    peak32 = _core._probe_peak("fp32", 0.3)
    # With AMX the int8 peak is the tile unit's; also give the vpdpbusd zmm peak for comparison.
    peak_vnni = None
    if sk.get_isa() == "avx512_amx":
        sk.set_isa("avx512_vnni")
        peak_vnni = _core._probe_peak("int8", 0.3)["gops"]
        sk.set_isa("avx512_amx")
    vnni_txt = f", vpdpbusd peak {peak_vnni:.0f} GOPS" if peak_vnni else ""
    print(f"machine: read bandwidth {bw['gb_per_s']:.1f} GB/s, int8 peak {peak8['gops']:.0f} GOPS{vnni_txt}, "
          f"fp32 peak {peak32['gops']:.0f} GFLOPS ({sk.get_isa()}, {args.threads} threads, "
          f"load average {load_before:.2f})", file=sys.stderr)

    # ---- GEMV: working set larger than the last-level cache, weights cycled ----
    ws = args.working_set_mb * 2**20 or 640 * 2**20
    gn, gk = (int(v) for v in args.gemv_shape.lower().split("x"))
    w_f32 = rng.standard_normal((gn, gk)).astype(np.float32)
    x1 = rng.standard_normal((1, gk)).astype(np.float32)
    out = np.empty((1, gn), np.float32)
    binary = args.llama_bin
    if binary and not os.path.exists(binary):
        binary = shutil.which(binary)
    llama = {}

    def gemv_row(fmt, layout, qt, t, spread, err, extra=None):
        gbs = qt.nbytes / t / 1e9
        rows.append(dict(kind="gemv", layout=layout, format=fmt, M=1, N=gn, K=gk, seconds=t, spread=spread,
                         valid=err <= 1.0, err_ratio=err, weight_bytes=qt.nbytes, gb_per_s=gbs,
                         frac_bandwidth=gbs / bw["gb_per_s"], kernel=sk.kernel_names().get("gemm_" + fmt),
                         **(extra or {})))
        print(f"gemv {fmt} {layout}: {t*1e6:.0f} us, {gbs:.1f} GB/s = {gbs / bw['gb_per_s']:.0%} of read bandwidth",
              file=sys.stderr)

    def cycled(mats):
        idx = [0]

        def run():
            sk.matmul(x1, mats[idx[0] % len(mats)], out=out)
            idx[0] += 1

        return run

    for fmt in args.formats.split(","):
        qt = sk.quantize(w_f32, fmt)
        w_deq = sk.dequantize(qt)
        block = 256 if fmt.endswith("_k") else 32
        count = max(2, int(np.ceil(ws / qt.nbytes)))
        # distinct copies, cycled, so none stays in cache
        raws = [sk.QuantizedTensor(qt.data.copy(), fmt, qt.shape) for _ in range(count)]
        mats = [sk.pack(r) for r in raws]
        err = validate(x1, w_deq, sk.matmul(x1, mats[0]), block)
        t, spread = timeit(cycled(mats), args.min_time) if err <= 1.0 else (float("nan"), float("nan"))
        gemv_row(fmt, "packed", qt, t, spread, err)
        # one copy read again and again, as test-backend-ops measures (part may stay in cache)
        t, spread = timeit(cycled(mats[:1]), args.min_time) if err <= 1.0 else (float("nan"), float("nan"))
        gemv_row(fmt, "packed, one copy", qt, t, spread, err)
        del mats
        # raw GGUF layout: each tensor's first call packs and caches; then the steady state
        first = []
        for r in raws:
            t0 = time.perf_counter()
            sk.matmul(x1, r, out=out)
            first.append(time.perf_counter() - t0)
        err = validate(x1, w_deq, sk.matmul(x1, raws[0]), block)
        t, spread = timeit(cycled(raws), args.min_time) if err <= 1.0 else (float("nan"), float("nan"))
        gemv_row(fmt, "raw", qt, t, spread, err, dict(first_call_seconds=float(np.median(first)),
                                                      cached_bytes=raws[0].packed_nbytes))
        # the cache dropped before every call: the repack-per-call trap the cache removes
        def repack():
            r = raws[repack.i % count]
            repack.i += 1
            r.drop_packed()
            sk.matmul(x1, r, out=out)

        repack.i = 0
        t, spread = timeit(repack, args.min_time, min_reps=3)
        gemv_row(fmt, "raw, repacked per call", qt, t, spread, err)
        del raws
        # llama.cpp on the same shape and format, right after ours
        if binary and fmt in LLAMA_TYPES:
            got = llama_backend_ops(binary, [fmt], 1, gn, gk)
            llama.update(got)
            for key, (us, _) in got.items():
                gbs = qt.nbytes / (us * 1e-6) / 1e9
                print(f"gemv {fmt} llama.cpp: {us:.0f} us, {gbs:.1f} GB/s = {gbs / bw['gb_per_s']:.0%} of read bandwidth",
                      file=sys.stderr)

    # ---- GEMM vs numpy float32 on the dequantized weights ----
    for fmt in [] if args.gemv_only else GEMM_FORMATS:
        qt = sk.quantize(w_f32, fmt)
        pw = sk.pack(qt)
        w_deq = np.ascontiguousarray(sk.dequantize(qt))
        for m in GEMM_M:
            x = rng.standard_normal((m, K)).astype(np.float32)
            out = np.empty((m, N), np.float32)
            err = validate(x[:8], w_deq, sk.matmul(x[:8], pw), 256 if fmt.endswith("_k") else 32)
            ok = err <= 1.0
            t, spread = timeit(lambda: sk.matmul(x, pw, out=out), args.min_time)
            tn, _ = timeit(lambda: x @ w_deq.T, args.min_time)
            gops = 2 * m * N * K / t / 1e9
            rows.append(dict(kind="gemm", format=fmt, M=m, N=N, K=K, seconds=t, spread=spread, valid=ok, err_ratio=err,
                             gops=gops, frac_int8_peak=gops / peak8["gops"] if peak8["gops"] else None,
                             frac_vnni_peak=gops / peak_vnni if peak_vnni else None,
                             numpy_seconds=tn, speedup_vs_numpy=tn / t, kernel=sk.kernel_names().get("gemm_" + fmt)))
            vn = f", {gops / peak_vnni:.0%} of vpdpbusd peak" if peak_vnni else ""
            print(f"gemm {fmt} M={m}: {gops:.0f} GOPS ({gops / peak8['gops']:.0%} of int8 peak{vn}), "
                  f"{tn / t:.2f}x numpy", file=sys.stderr)

    # ---- per-call overhead ----
    n_calls = 0 if args.gemv_only else 200000
    tiny = sk.quantize(rng.standard_normal((16, 32)).astype(np.float32), "q8_0")
    ptiny = sk.pack(tiny)
    xt = rng.standard_normal((1, 32)).astype(np.float32)
    ot = np.empty((1, 16), np.float32)
    sk.matmul(xt, ptiny, out=ot)
    t0 = time.perf_counter()
    for _ in range(n_calls):
        sk.matmul(xt, ptiny, out=ot)
    if n_calls:
        overhead = (time.perf_counter() - t0) / n_calls
        rows.append(dict(kind="overhead", format="q8_0", M=1, N=16, K=32, seconds=overhead, valid=True))
        print(f"per-call overhead (1x32 @ 32x16, out given): {overhead*1e6:.2f} us", file=sys.stderr)

    # ---- llama.cpp ----
    if binary:
        gemm_keys = {(r["format"], r["M"], r["N"], r["K"]) for r in rows if r["kind"] == "gemm"}
        for fmt, m, n, k in sorted(gemm_keys):
            llama.update(llama_backend_ops(binary, [fmt], m, n, k))
        for r in rows:
            key = (r["format"], r["M"], r["N"], r["K"])
            if key in llama:
                r["llama_us"], r["llama_gflops"] = llama[key]
                r["speedup_vs_llama"] = llama[key][0] / (r["seconds"] * 1e6)
                if r["kind"] == "gemv":
                    r["llama_frac_bandwidth"] = r["weight_bytes"] / (llama[key][0] * 1e-6) / 1e9 / bw["gb_per_s"]
    else:
        print("llama.cpp: skipped (no --llama-bin)", file=sys.stderr)

    meta = dict(machine=platform.machine(), isa=sk.get_isa(), threads=args.threads, version=sk.__version__,
                read_gb_per_s=bw["gb_per_s"], int8_peak_gops=peak8["gops"], fp32_peak_gflops=peak32["gops"],
                vnni_peak_gops=peak_vnni, load_average_before=load_before, load_average_after=os.getloadavg()[0],
                llama_threads=max(1, (os.cpu_count() or 2) // 2) if binary else None)
    with open(args.json, "w") as fh:
        json.dump(dict(meta=meta, rows=rows), fh, indent=1)
    lines = [f"Machine: {meta['machine']}, ISA {meta['isa']}, {args.threads} threads; read bandwidth "
             f"{bw['gb_per_s']:.1f} GB/s, int8 peak {peak8['gops']:.0f} GOPS{vnni_txt}, fp32 peak {peak32['gops']:.0f} GFLOPS; "
             f"load average {load_before:.2f} before, {meta['load_average_after']:.2f} after.", "",
             "| kernel | format | M x N x K | time | rate | vs limit | vs numpy | vs llama.cpp |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        shape = f"{r['M']}x{r['N']}x{r['K']}"
        lc = f"{r['speedup_vs_llama']:.2f}x" if "speedup_vs_llama" in r else "-"
        if r["kind"] == "gemv":
            first = f" (first call {r['first_call_seconds']*1e3:.1f} ms)" if "first_call_seconds" in r else ""
            lines.append(f"| gemv, {r['layout']}{first} | {r['format']} | {shape} | {r['seconds']*1e6:.0f} us | {r['gb_per_s']:.1f} GB/s | "
                         f"{r['frac_bandwidth']:.0%} of bandwidth | - | {lc} |")
        elif r["kind"] == "gemm":
            fp = f"{r['frac_int8_peak']:.0%} of int8 peak" if r["frac_int8_peak"] else "-"
            if r.get("frac_vnni_peak"):
                fp += f" ({r['frac_vnni_peak']:.0%} of vpdpbusd)"
            lines.append(f"| gemm | {r['format']} | {shape} | {r['seconds']*1e3:.2f} ms | {r['gops']:.0f} GOPS | {fp} | "
                         f"{r['speedup_vs_numpy']:.2f}x | {lc} |")
        else:
            lines.append(f"| call overhead | {r['format']} | {shape} | {r['seconds']*1e6:.2f} us | - | - | - | - |")
    with open(args.md, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(r["valid"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
