"""Peers: what a user would run instead. Each is optional; a missing one is a skipped row."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Optional


def torch_or_reason():
    """(torch module, None) or (None, why not)."""
    try:
        import torch  # noqa: PLC0415
    except Exception as e:  # ImportError, or a broken install
        return None, f"skipped: PyTorch not installed ({type(e).__name__})"
    return torch, None


def set_peer_threads(threads: int) -> None:
    """Give the peers the same thread count as our kernels (numpy's BLAS via threadpoolctl)."""
    torch, _ = torch_or_reason()
    if torch is not None:
        torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415

        threadpool_limits(threads)
    except Exception:
        pass  # numpy's BLAS keeps its own default (OPENBLAS_NUM_THREADS)


# ---- llama.cpp via llama-cpp-python, in its own interpreter ----

# Run by the peer's python: loads the GGUF, times a prefill of n_prompt tokens and n_gen decode
# steps with llama.cpp's own batch API, prints one JSON line.
_LLAMA_SCRIPT = r"""
import json, sys, time
import llama_cpp
path, n_prompt, n_gen, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
llm = llama_cpp.Llama(model_path=path, n_ctx=n_prompt + n_gen + 8, n_batch=n_prompt, n_threads=threads,
                      n_threads_batch=threads, verbose=False)
toks = [(i * 7919) % (llm.n_vocab() - 100) + 50 for i in range(n_prompt)]
res = {"version": llama_cpp.__version__, "prefill": [], "decode": []}
for rep in range(3):
    llm.reset(); llm._ctx.memory_clear(True) if hasattr(llm._ctx, "memory_clear") else None
    t0 = time.perf_counter(); llm.eval(toks); t1 = time.perf_counter()
    tok = toks[-1]
    for i in range(n_gen):
        llm.eval([tok]); tok = (tok * 31 + 7) % (llm.n_vocab() - 100) + 50
    t2 = time.perf_counter()
    res["prefill"].append(t1 - t0); res["decode"].append((t2 - t1) / n_gen)
print(json.dumps(res))
"""


def llama_cpp_model(python: str, model: str, n_prompt: int, n_gen: int, threads: int) -> tuple[Optional[dict], str]:
    """Median prefill seconds and decode seconds/token from llama.cpp, or (None, reason)."""
    if not python or not os.path.exists(python):
        return None, f"skipped: --llama-python {python!r} not found"
    if not model or not os.path.exists(model):
        return None, f"skipped: model file {model!r} not found (--model PATH)"
    try:
        r = subprocess.run([python, "-c", _LLAMA_SCRIPT, model, str(n_prompt), str(n_gen), str(threads)],
                           capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"skipped: llama.cpp run failed ({e})"
    if r.returncode < 0:
        import signal  # noqa: PLC0415

        name = signal.Signals(-r.returncode).name if -r.returncode in signal.Signals._value2member_map_ else str(-r.returncode)
        hint = " (its build uses an instruction this CPU lacks)" if name == "SIGILL" else ""
        return None, f"skipped: llama.cpp was killed by {name}{hint}"
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["?"])[-1]
        return None, f"skipped: llama.cpp run failed: {tail}"
    try:
        res = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None, "skipped: llama.cpp printed no result"
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    return {"version": res["version"], "prefill": med(res["prefill"]), "decode": med(res["decode"]),
            "prefill_all": res["prefill"], "decode_all": res["decode"]}, ""


def default_model_path() -> Optional[str]:
    """shared/models/SmolLM2-135M-Instruct.Q4_1.gguf in a parent of the working directory or
    of the installed package (the project keeps models beside the checkout), if there."""
    for base in (os.getcwd(), os.path.dirname(os.path.abspath(__file__))):
        d = base
        while True:
            cand = os.path.join(d, "shared", "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
            if os.path.exists(cand):
                return cand
            if os.path.dirname(d) == d:
                break
            d = os.path.dirname(d)
    return None


if __name__ == "__main__":  # manual check: python -m slmkernels.bench.peers PYTHON MODEL
    print(llama_cpp_model(sys.argv[1], sys.argv[2], 64, 16, 2))
