"""Runs llama.cpp (through llama-cpp-python) on a GGUF file and prints JSON: token ids, logits at
the last prompt position, greedy continuations, perplexity over a text, and llama.cpp's own
C-side timings (llama_perf_context) for prefill and decode. Run by compare_llama.py with the
Python that has llama-cpp-python installed (a separate venv: it is never a dependency)."""

from __future__ import annotations

import json
import sys

import numpy as np


def main() -> int:
    req = json.load(sys.stdin)
    import llama_cpp
    from llama_cpp import Llama

    n_ctx = req.get("n_ctx", 1024)
    llm = Llama(model_path=req["model"], n_ctx=n_ctx, n_batch=n_ctx, n_threads=req["threads"],
                n_threads_batch=req["threads"], logits_all=True, verbose=False)
    out = {"prompts": [], "ppl": None, "speed": None}
    for text in req.get("prompts", []):
        ids = llm.tokenize(text.encode(), add_bos=False, special=True)
        llm.reset()
        llm.eval(ids)
        last = np.array(llm.scores[len(ids) - 1], dtype=np.float32)
        cont = []
        for _ in range(req.get("greedy_tokens", 64)):
            t = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            if t == llm.token_eos():
                break
            cont.append(t)
            llm.eval([t])
        out["prompts"].append({"ids": ids, "last_logits": last.tolist(), "greedy": cont})
    if req.get("ppl_ids"):
        ids, chunk = req["ppl_ids"], req.get("ppl_chunk", 512)
        nll, count = 0.0, 0
        for s in range(0, len(ids) - 1, chunk):
            part = ids[s : s + chunk]
            if len(part) < 2:
                break
            llm.reset()
            llm.eval(part)
            lg = np.array(llm.scores[: len(part)], dtype=np.float64)
            lg -= lg.max(axis=1, keepdims=True)
            logp = lg - np.log(np.exp(lg).sum(axis=1, keepdims=True))
            nll -= logp[np.arange(len(part) - 1), part[1:]].sum()
            count += len(part) - 1
        out["ppl"] = float(np.exp(nll / count))
        out["ppl_tokens"] = count
    if req.get("speed"):
        sp = req["speed"]
        prompt = sp["prompt_ids"]
        llm2 = Llama(model_path=req["model"], n_ctx=n_ctx, n_batch=512, n_threads=req["threads"],
                     n_threads_batch=req["threads"], logits_all=False, verbose=False)
        best = None
        for _ in range(sp.get("repeat", 3)):
            llm2.reset()
            llama_cpp.llama_perf_context_reset(llm2.ctx)
            llm2.eval(prompt)
            t = 0
            for _ in range(sp["decode_tokens"]):
                llm2.eval([t % 1000 + 100])
                t += 1
            p = llama_cpp.llama_perf_context(llm2.ctx)
            r = {"prefill_tok_s": 1000.0 * p.n_p_eval / p.t_p_eval_ms, "decode_tok_s": 1000.0 * p.n_eval / p.t_eval_ms,
                 "n_p_eval": p.n_p_eval, "n_eval": p.n_eval}
            if best is None or r["decode_tok_s"] > best["decode_tok_s"]:
                best = r
        out["speed"] = best
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
