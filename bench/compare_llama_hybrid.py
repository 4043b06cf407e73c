"""granitehybrid (Mamba-2 + attention) against llama.cpp on tiny random-weight GGUF files.

    python bench/compare_llama_hybrid.py --llama-python /path/to/venv-with-llama-cpp-python/bin/python

For each file (written by tests/tiny_hybrid.py with the gguf package's writer): the logits of
every position of a prompt longer than the conv window (one prefill call on both sides), then
several decode steps (one token per call on both sides). Criterion (issue 18): argmax equal at
every position, max |ours - llama.cpp| <= 1e-3 of the largest logit. Fidelity as elsewhere: the
mean KL divergence of each side's next-token distributions from the float64 reference forward
pass (tests/tiny_hybrid.py HybridReference) over the same positions. Prints a markdown table;
exit 1 if a row fails, 0 with a message when the peer is not available.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

PROMPT = [1, 40, 7, 99, 23, 64, 12, 5, 77, 31, 18, 50, 3, 200, 9, 120, 44, 8, 250, 60]  # 20 > d_conv
DECODE = [11, 300, 2, 150, 71, 33]
TOL = 1e-3

# Float weights: the peer build at hand stops with SIGILL/SIGSEGV in its quantized (q8_0, q4_0)
# matmuls on this CPU, on any architecture; the SSM tensors are float32 in every real file anyway.
FILES = {
    "MMAM, f32": dict(kinds="MMAM", fmt="f32"),
    "MMAMMA, f16, untied": dict(kinds="MMAMMA", fmt="f16"),
    # (with a conv bias: llama.cpp adds ssm_conv1d.bias unconditionally, mamba-base.cpp)
    "AMMM, 2 groups, f32, tied": dict(kinds="AMMM", ssm_groups=2, fmt="f32", tied=True),
    "MAM, d_state 64, f32": dict(kinds="MAM", ssm_state=64, n_heads=2, n_kv=1, fmt="f32"),
}

PEER = r"""
import json, sys
import numpy as np
from llama_cpp import Llama
req = json.load(sys.stdin)
out = []
for f in req["files"]:
    m = Llama(model_path=f, n_ctx=64, n_batch=64, n_threads=req["threads"], n_threads_batch=req["threads"],
              logits_all=True, verbose=False)
    m.eval(req["prompt"])
    for t in req["decode"]:
        m.eval([t])
    n = len(req["prompt"]) + len(req["decode"])
    out.append(np.array(m.scores[:n], dtype=np.float32).tolist())
    del m
json.dump(out, sys.stdout)
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-python", required=True, help="a python with llama-cpp-python")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args(argv)

    import slmkernels as sk
    from slmkernels.model.runtime import Model
    from tiny_hybrid import HybridReference, write_tiny_granitehybrid

    sk.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="slmk-hybrid-"))
    paths = [write_tiny_granitehybrid(tmp / f"h{i}.gguf", seed=i, **kw) for i, kw in enumerate(FILES.values())]
    req = {"files": [str(p) for p in paths], "prompt": PROMPT, "decode": DECODE, "threads": args.threads}
    try:
        r = subprocess.run([args.llama_python, "-c", PEER], input=json.dumps(req), capture_output=True, text=True,
                           timeout=600)
    except OSError as e:
        print(f"llama.cpp peer not available: {e}")
        return 0
    if r.returncode != 0:
        print("llama.cpp peer failed:\n" + r.stderr[-3000:])
        return 1
    theirs_all = json.loads(r.stdout)
    rows, ok = [], True
    def kl(ref, x):  # mean over positions of KL(softmax(ref) || softmax(x))
        lp = ref - ref.max(1, keepdims=True)
        lp -= np.log(np.exp(lp).sum(1, keepdims=True))
        lq = x - x.max(1, keepdims=True)
        lq -= np.log(np.exp(lq).sum(1, keepdims=True))
        return float((np.exp(lp) * (lp - lq)).sum(1).mean())

    for name, path, theirs in zip(FILES, paths, theirs_all):
        theirs = np.asarray(theirs, np.float64)
        ref = HybridReference(path)
        want, st = ref.forward(PROMPT)
        for t in DECODE:
            w1, st = ref.forward([t], st)
            want = np.concatenate([want, w1])
        for mode in ("chunked", "token-by-token"):
            m = Model.from_gguf(path, chunked_prefill=mode == "chunked")
            s = m.new_sequence()
            ours = [m.forward(s, PROMPT, all_logits=True)] + [m.forward(s, [t])[None] for t in DECODE]
            ours = np.concatenate(ours).astype(np.float64)
            for part, sl in (("prefill", slice(0, len(PROMPT))), ("decode", slice(len(PROMPT), None))):
                a, b = ours[sl], theirs[sl]
                rel = float(np.abs(a - b).max() / np.abs(b).max())
                same = int((a.argmax(1) == b.argmax(1)).sum())
                good = same == len(a) and rel <= TOL
                ok &= good
                rows.append(dict(file=name, scan=mode, part=part, positions=len(a), argmax_equal=same,
                                 rel_max_diff=rel, kl_ours=kl(want[sl], a), kl_llama=kl(want[sl], b), ok=good))
    print("| file | prefill scan | part | positions | argmax equal | max diff / largest logit | KL ours | "
          "KL llama.cpp | ok |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r_ in rows:
        print(f"| {r_['file']} | {r_['scan']} | {r_['part']} | {r_['positions']} | {r_['argmax_equal']} | "
              f"{r_['rel_max_diff']:.2e} | {r_['kl_ours']:.1e} | {r_['kl_llama']:.1e} | {'yes' if r_['ok'] else 'NO'} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
