"""llama.cpp's side of ``slmkernels bench model``: run by a Python that has llama-cpp-python (never
imported by slmkernels), it answers one JSON request per stdin line with one JSON line, so the
bench can interleave llama.cpp's runs with ours in one process lifetime each.

Requests (llama-bench's tests; timings are of llama_decode itself, synchronized):
  {"op": "load", "model": PATH, "n_ctx": N, "n_batch": B}   -> {"version", "n_vocab"}
  {"op": "depth", "ids": [...], "threads": T}   clear the cache, prefill ids (the depth context)
  {"op": "pp", "ids": [...], "threads": T}      one prompt of len(ids) tokens after the depth
  {"op": "tg", "ids": [...], "threads": T}      len(ids) single-token steps after the depth
  {"op": "quit"}
pp and tg answer {"seconds": s} and then drop what they added, back to the depth context.
Context defaults follow llama-bench (n_ubatch 512, f16 KV cache, flash attention on: what its
default "auto" resolves to on the CPU backend).
"""

import json
import sys
import time


def main() -> int:
    import llama_cpp
    from llama_cpp import Llama

    llm, depth = None, 0
    for line in sys.stdin:
        req = json.loads(line)
        op = req["op"]
        if op == "quit":
            break
        if op == "load":
            llm = Llama(model_path=req["model"], n_ctx=req["n_ctx"], n_batch=req["n_batch"], n_ubatch=512,
                        flash_attn=True, logits_all=False, verbose=False)
            res = {"version": llama_cpp.__version__, "n_vocab": llm.n_vocab()}
        else:
            ctx, batch = llm._ctx, llm._batch
            llama_cpp.llama_set_n_threads(llm.ctx, req["threads"], req["threads"])
            ids, n_batch = req["ids"], req.get("n_batch", 512)
            if op == "depth":
                ctx.kv_cache_seq_rm(-1, 0, -1)
                depth = 0
            t0 = time.perf_counter()
            if op == "tg":
                for i, t in enumerate(ids):
                    batch.set_batch(batch=[t], n_past=depth + i, logits_all=False)
                    ctx.decode(batch)
                    llama_cpp.llama_synchronize(llm.ctx)
            else:
                for s in range(0, len(ids), n_batch):
                    batch.set_batch(batch=ids[s : s + n_batch], n_past=depth + s, logits_all=False)
                    ctx.decode(batch)
                llama_cpp.llama_synchronize(llm.ctx)
            res = {"seconds": time.perf_counter() - t0}
            if op == "depth":
                depth = len(ids)
            else:
                ctx.kv_cache_seq_rm(-1, depth, -1)
        sys.stdout.write(json.dumps(res) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
