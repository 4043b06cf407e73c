"""Our matmul against llama.cpp's own per-kernel timings, row by row, on llama.cpp's shapes.

    python bench/compare_backend_ops.py --backend-ops /path/to/test-backend-ops --md ops.md --json ops.json

llama.cpp's `test-backend-ops perf -o MUL_MAT -b CPU` times ggml's MUL_MAT on fixed shapes (its
perf list: m=4096 weight rows, k=14336, n = 1, 2, 3, 4, 5, 8, 512 activation rows, every weight
type; and Q4_K at m=4096, k=4096, n = 1..8). It runs on half the hardware threads, so we time ours
with the same thread count (printed). Both sides reuse one weight tensor run after run (weights warm
in cache for the small ones, as in llama.cpp's harness). ggml's MUL_MAT multiplies (k, m) weights by
(k, n) activations: its n is our M and its m our N.

Every one of our rows is validated against a float64 numpy product of the dequantized weights
(within the activation-quantization bound) before it is timed. Skips cleanly (exit 0, a message)
when the binary is not given or not found; build it from the llama-cpp-python sdist
(bench/build_llama_peer.sh leaves it in the build tree's bin/).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

import slmkernels as sk
from slmkernels.bench.gemm import error_bound, ratio  # the bound `slmkernels bench` and the tests use
from slmkernels.bench.runner import measure

# ggml type name -> ours
TYPES = {"f32": "f32", "f16": "f16", "bf16": "bf16", "q8_0": "q8_0", "q4_0": "q4_0", "q4_1": "q4_1",
         "q5_0": "q5_0", "q5_1": "q5_1", "q4_K": "q4_k", "q5_K": "q5_k", "q6_K": "q6_k"}
LINE = re.compile(r"MUL_MAT\(type_a=(\w+),type_b=f32,m=(\d+),n=(\d+),k=(\d+),bs=\[1,1\],nr=\[1,1\],per=\[0,1,2,3\]"
                  r"[^)]*\):\s+(\d+) runs -\s+([\d.]+) us/run")


def llama_rows(binary: str, types: list[str], batches: list[int]) -> dict:
    """{(ggml_type, n, m, k): us_per_run} for the plain (non-permuted, non-broadcast) MUL_MAT cases."""
    pat = "type_a=(" + "|".join(types) + "),type_b=f32,m=4096,n=(" + "|".join(map(str, batches)) + "),k=(14336|4096),bs=\\[1,1\\],nr=\\[1,1\\],per=\\[0,1,2,3\\]"
    r = subprocess.run([binary, "perf", "-o", "MUL_MAT", "-b", "CPU", "-p", pat], capture_output=True, text=True,
                       timeout=7200)
    if r.returncode != 0:
        raise RuntimeError(f"test-backend-ops failed ({r.returncode}): {r.stderr[-2000:]}")
    out = {}
    for line in r.stdout.splitlines():
        m = LINE.search(line)
        if m:
            t, m_, n_, k_, _runs, us = m.groups()
            out[(t, int(n_), int(m_), int(k_))] = float(us)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend-ops", default=os.environ.get("SLMK_TEST_BACKEND_OPS"),
                    help="path to llama.cpp's test-backend-ops")
    ap.add_argument("--types", default=",".join(TYPES), help="ggml type names, comma separated")
    ap.add_argument("--batches", default="1,2,3,4,5,8,512", help="n (our M) values")
    ap.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 2),
                    help="ours; test-backend-ops uses half the hardware threads")
    ap.add_argument("--min-time", type=float, default=0.5)
    ap.add_argument("--json", default="compare_backend_ops.json")
    ap.add_argument("--md", default="compare_backend_ops.md")
    args = ap.parse_args(argv)
    if not args.backend_ops or not Path(args.backend_ops).exists():
        print("llama.cpp test-backend-ops: skipped (pass --backend-ops PATH or set SLMK_TEST_BACKEND_OPS)")
        return 0
    types = [t for t in args.types.split(",") if t]
    unknown = [t for t in types if t not in TYPES]
    if unknown:
        ap.error(f"--types: unknown {unknown}; known: {list(TYPES)}")
    batches = [int(b) for b in args.batches.split(",")]
    print(f"llama.cpp test-backend-ops on {types}, n in {batches} ...", file=sys.stderr)
    ref = llama_rows(args.backend_ops, types, batches)
    if not ref:
        print("test-backend-ops printed no MUL_MAT rows for these filters", file=sys.stderr)
        return 1

    sk.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows, weights = [], {}
    for (t, M, N, K), llama_us in sorted(ref.items(), key=lambda kv: (types.index(kv[0][0]), kv[0][3], kv[0][1])):
        fmt = TYPES[t]
        if (fmt, N, K) not in weights:
            weights.clear()
            w = rng.standard_normal((N, K)).astype(np.float32)
            qt = sk.quantize(w, fmt)
            weights[(fmt, N, K)] = (sk.pack(qt), sk.dequantize(qt))
        packed, w_deq = weights[(fmt, N, K)]
        x = rng.standard_normal((M, K)).astype(np.float32)
        out = np.empty((M, N), np.float32)
        got = sk.matmul(x, packed)
        err = ratio(got, x.astype(np.float64) @ w_deq.astype(np.float64).T, error_bound(x, w_deq, fmt))
        ok = err <= 1.0
        sec = measure(lambda: sk.matmul(x, packed, out=out), 5, args.min_time)["seconds"] if ok else None
        row = {"type": t, "M": M, "N": N, "K": K, "llama_us": llama_us, "ours_us": sec * 1e6 if sec else None,
               "check": err, "ok": ok,
               "speedup": llama_us / (sec * 1e6) if sec else None,
               "ours_gops": 2 * M * N * K / sec / 1e9 if sec else None}
        rows.append(row)
        print(f"{t:5s} {M:4d}x{N}x{K}: ours {row['ours_us'] or float('nan'):10.1f} us, llama.cpp {llama_us:10.1f} us, "
              f"{row['speedup'] or float('nan'):.2f}x {'ok' if ok else 'FAILED CHECK %.2f' % err}", file=sys.stderr)

    faster = sum(1 for r in rows if r["speedup"] and r["speedup"] >= 1.0)
    md = [f"Our `matmul` (ISA {sk.get_isa()}, {args.threads} thread(s)) against llama.cpp's `test-backend-ops perf -o MUL_MAT -b CPU` "
          f"(its own timings, {args.threads} thread(s): half the hardware threads), same shapes, same run. "
          f"Equal or faster on {faster}/{len(rows)} rows.", "",
          "| type | M (ggml n) | N x K | llama.cpp | slmkernels | speedup | our GOPS | check |",
          "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        ours = f"{r['ours_us']:.1f} us" if r["ours_us"] else "-"
        sp = f"{r['speedup']:.2f}x" if r["speedup"] else "-"
        gops = f"{r['ours_gops']:.1f}" if r["ours_gops"] else "-"
        md.append(f"| {r['type']} | {r['M']} | {r['N']}x{r['K']} | {r['llama_us']:.1f} us | {ours} | {sp} | {gops} | "
                  f"{'ok' if r['ok'] else 'FAILED'} {r['check']:.2f} |")
    Path(args.md).write_text("\n".join(md) + "\n")
    with open(args.json, "w") as fh:
        json.dump({"threads": args.threads, "isa": sk.get_isa(), "rows": rows}, fh, indent=1)
    print("\n".join(md))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
