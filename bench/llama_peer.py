"""Runs llama.cpp (through llama-cpp-python) on a GGUF file and prints JSON: token ids, logits at
the last prompt position, greedy continuations, perplexity over a text, and llama.cpp's own
timings of llama_decode itself (one ctypes call per batch) for prefill and decode. Run by compare_llama.py with the
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
    llm = None
    if req.get("prompts") or req.get("ppl_ids"):
        llm = Llama(model_path=req["model"], n_ctx=n_ctx, n_batch=n_ctx, n_threads=req["threads"],
                    n_threads_batch=req["threads"], logits_all=True, verbose=False)
    out = {"prompts": [], "ppl": None, "speed": None}
    greedy_n = req.get("greedy_tokens", 64)

    def greedy(n_prompt):
        # continues greedily from the logits of the last prompt position; records each step's
        # top-2 logit gap (how close to a tie llama.cpp itself was when it chose)
        cont, gaps, pos = [], [], n_prompt - 1
        for _ in range(greedy_n):
            sc = np.asarray(llm.scores[pos])
            o = np.argpartition(sc, -2)[-2:]
            t = int(o[np.argmax(sc[o])])
            gaps.append(float(abs(sc[o[1]] - sc[o[0]])))
            if t == llm.token_eos():
                break
            cont.append(t)
            llm.eval([t])
            pos = llm.n_tokens - 1
        return cont, gaps

    for text in req.get("prompts", []):
        ids = llm.tokenize(text.encode(), add_bos=False, special=True)
        # mode 1: the prompt in one batch (how llama.cpp runs a prompt)
        llm.reset()
        llm.eval(ids)
        last = np.array(llm.scores[len(ids) - 1], dtype=np.float32)
        cont, gaps = greedy(len(ids))
        # mode 2: the prompt fed one token at a time; llama.cpp's kernels differ with the batch
        # size, so this is the yardstick of how far llama.cpp agrees with itself
        llm.reset()
        for t in ids:
            llm.eval([t])
        cont_tw, gaps_tw = greedy(len(ids))
        out["prompts"].append({"ids": ids, "last_logits": last.tolist(), "greedy": cont, "gaps": gaps,
                               "greedy_tokenwise": cont_tw, "gaps_tokenwise": gaps_tw})
    out["tiny"] = []
    for t in req.get("tiny", []):
        # a tiny random-weight file: all-position logits of a fixed prompt, from an empty cache,
        # then of each decode step;
        # K and V cached as F32 and no flash attention (its CPU path casts K/V to F16), so that
        # neither side rounds anything the other does not
        n = t.get("n_ctx", 64)
        kv = {"type_k": 0, "type_v": 0} if t.get("kv_f32", True) else {}  # GGML_TYPE_F32
        tl = Llama(model_path=t["model"], n_ctx=n, n_batch=n, n_ubatch=n, n_threads=req["threads"],
                   n_threads_batch=req["threads"], logits_all=True, flash_attn=False, verbose=False, **kv)
        tl.eval(t["ids"])
        for tok in t.get("decode", []):  # then decode steps, one token per call
            tl.eval([tok])
        n_out = len(t["ids"]) + len(t.get("decode", []))
        out["tiny"].append(np.array(tl.scores[:n_out], dtype=np.float32).tolist())
        del tl
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
        # llama_perf_context reads zeros through this wrapper's eval path, so time llama_decode
        # itself: one ctypes call per batch, synchronized, with no copy of the logits (the
        # wrapper's per-token Python work is not counted against llama.cpp).
        import time

        sp = req["speed"]
        prompt = sp["prompt_ids"]
        llm2 = Llama(model_path=req["model"], n_ctx=n_ctx, n_batch=512, n_threads=req["threads"],
                     n_threads_batch=req["threads"], logits_all=False, verbose=False)
        ctx, batch = llm2._ctx, llm2._batch
        best = None
        for _ in range(sp.get("repeat", 3)):
            ctx.kv_cache_seq_rm(-1, 0, -1)
            batch.set_batch(batch=prompt, n_past=0, logits_all=False)
            t0 = time.perf_counter()
            ctx.decode(batch)
            llama_cpp.llama_synchronize(llm2.ctx)
            tp = time.perf_counter() - t0
            n_past = len(prompt)
            t0 = time.perf_counter()
            for i in range(sp["decode_tokens"]):
                batch.set_batch(batch=[i % 1000 + 100], n_past=n_past, logits_all=False)
                ctx.decode(batch)
                llama_cpp.llama_synchronize(llm2.ctx)
                n_past += 1
            td = time.perf_counter() - t0
            r = {"prefill_tok_s": len(prompt) / tp, "decode_tok_s": sp["decode_tokens"] / td}
            if best is None or r["decode_tok_s"] > best["decode_tok_s"]:
                best = r
        out["speed"] = best
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
