"""Run by a Python that has llama-cpp-python (never imported by slmkernels): evaluates the chunks of
``slmkernels eval`` with llama.cpp and writes, per chunk, the float32 logits of the scored rows
(rows first .. ctx-2, row-major, vocab wide) to stdout as raw bytes.

    python llama_peer.py REQUEST.json      # {"model", "threads", "ctx", "first", "kv_dtype", "chunks": [[ids]...]}

llama.cpp's KV cache gets the same type as ours ("kv_dtype"), so a quantized cache is compared like
for like; its quantized V cache needs flash attention, so a quantized cache turns it on.
"""

import json
import sys

import numpy as np

# ggml's type ids (ggml.h, enum ggml_type) of the KV dtypes `slmkernels eval --kv-dtype` offers
GGML_TYPE = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 8}


def main() -> int:
    with open(sys.argv[1]) as fh:
        req = json.load(fh)
    from llama_cpp import Llama

    ctx, first = req["ctx"], req["first"]
    kv = req.get("kv_dtype", "f16")
    kv_opts = {} if kv == "f16" else {"type_k": GGML_TYPE[kv], "type_v": GGML_TYPE[kv], "flash_attn": kv != "f32"}
    llm = Llama(model_path=req["model"], n_ctx=ctx, n_batch=ctx, n_ubatch=ctx, n_threads=req["threads"],
                n_threads_batch=req["threads"], logits_all=True, verbose=False, **kv_opts)
    if llm.n_vocab() != req["vocab"]:
        print(f"llama.cpp reads a vocabulary of {llm.n_vocab()}, slmkernels {req['vocab']}", file=sys.stderr)
        return 1
    out = sys.stdout.buffer
    for ids in req["chunks"]:
        llm.reset()
        llm.eval(ids)
        out.write(np.ascontiguousarray(llm.scores[first : ctx - 1], dtype=np.float32).tobytes())
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
