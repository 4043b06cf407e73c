"""Run by a Python that has llama-cpp-python (never imported by slmkernels): evaluates the chunks of
``slmkernels eval`` with llama.cpp and writes, per chunk, the float32 logits of the scored rows
(rows first .. ctx-2, row-major, vocab wide) to stdout as raw bytes.

    python llama_peer.py REQUEST.json      # {"model", "threads", "ctx", "first", "chunks": [[ids]...]}
"""

import json
import sys

import numpy as np


def main() -> int:
    with open(sys.argv[1]) as fh:
        req = json.load(fh)
    from llama_cpp import Llama

    ctx, first = req["ctx"], req["first"]
    llm = Llama(model_path=req["model"], n_ctx=ctx, n_batch=ctx, n_ubatch=ctx, n_threads=req["threads"],
                n_threads_batch=req["threads"], logits_all=True, verbose=False)
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
