"""Model area: llama-bench's tests on whole GGUF models, ours and llama.cpp interleaved.

For each model (``--model``: paths, or ``llama-1b-q4_k_m`` for the synthetic Llama-3.2-1B-shaped
file of synthetic.py), each depth D (``--depth``, default 0 and 4096 cached tokens) and each
thread count (``--model-threads``, default 1 and 2):

- ``pp512``: one prompt of ``--n-prompt`` tokens on top of D cached tokens (llama-bench -p);
- ``tg128``: ``--n-gen`` single-token steps on top of D cached tokens (llama-bench -n);

as llama-bench runs them (random token ids, logits of the last token only, no sampling). The D
tokens are prefilled once per model and depth and every test drops what it added afterwards, so
the cache a test sees is the same as llama-bench's fresh prefill. Each repetition (``--model-reps``)
runs every test once for us and once for llama.cpp (``--llama-python``, a persistent process of
llama_bench_peer.py), alternating who goes first, next to a read-bandwidth and an int8-peak probe
at the same thread count; rows report medians over the repetitions and their spread.

Every row is placed on a roofline. tg: the bytes one decode step must read (every weight matrix,
the tied/untied head, the KV cache at the test's mean context, f16) over the read bandwidth
measured in the same repetition at the same thread count. pp: operations per prompt token
(2 per weight of every matrix, plus attention's 4 * q_dim per cached key per layer) over the
measured int8 multiply-add peak.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import numpy as np

from . import Bench, case

SYNTHETIC = "llama-1b-q4_k_m"
DEFAULTS = dict(n_prompt=512, n_gen=128, depths=(0, 4096), threads=(1, 2), reps=3, bandwidth_bytes=1 << 30,
                peak_seconds=0.1, acts=("q8x2-head",))
_PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "llama_bench_peer.py")


def resolve_model(spec: str) -> str:
    if spec == SYNTHETIC:
        from .synthetic import llama_1b_q4_k_m

        return llama_1b_q4_k_m()
    return spec


class _Peer:
    """llama_bench_peer.py in its own interpreter, one JSON line per request."""

    def __init__(self, python: str):
        self.p = subprocess.Popen([python, _PEER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)

    def ask(self, **req) -> dict:
        self.p.stdin.write(json.dumps(req) + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            self.p.wait()
            err = (self.p.stderr.read().strip().splitlines() or [f"exit status {self.p.returncode}"])[-1]
            raise RuntimeError(f"llama.cpp peer stopped: {err}")
        return json.loads(line)

    def close(self) -> None:
        try:
            self.p.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.p.stdin.close()
            self.p.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            self.p.kill()
        for f in (self.p.stdout, self.p.stderr):
            f.close()


def model_costs(model, kv_bytes_per_elem: float = 2.0) -> dict:
    """Bytes a decode step reads for weights, KV bytes per cached token, operations per token."""
    c, r = model.config, model.reader
    weight_bytes, matmul_params = 0, 0
    for t in r:
        if t.name.endswith(".weight") and len(t.shape) == 2 and t.name != "token_embd.weight":
            weight_bytes += t.nbytes
            matmul_params += t.shape[0] * t.shape[1]
    head = r.tensors["token_embd.weight"] if c.tied_embeddings else r.tensors["output.weight"]
    if c.tied_embeddings:
        weight_bytes += head.nbytes
    head_params = head.shape[0] * head.shape[1]
    body_params = matmul_params - (0 if c.tied_embeddings else head_params)
    kv_per_token = c.n_layers * 2 * c.kv_dim * kv_bytes_per_elem
    return dict(weight_bytes=weight_bytes, kv_bytes_per_token=kv_per_token, body_params=body_params,
                head_params=head_params, attn_ops_per_key=4 * c.n_layers * c.q_dim)


def _median_spread(v: list) -> tuple[float, float]:
    a = np.asarray(v, dtype=np.float64)
    med = float(np.median(a))
    q1, q3 = np.percentile(a, [25, 75])
    return med, float((q3 - q1) / med) if med > 0 else 0.0


def _options(ctx) -> dict:
    o = dict(DEFAULTS)
    o.update({k: v for k, v in ctx.extra.get("model_bench", {}).items() if v is not None})
    return o


@case("model", requires=("Model",))
def llama_bench(ctx):
    import slmkernels as sk
    from slmkernels import _core

    o = _options(ctx)
    specs = ctx.extra.get("models") or ([ctx.model_path] if ctx.model_path else [])
    common = dict(area="model", op="model", compute=None, kind="end-to-end", unit="token", format="gguf", run=None,
                  check=None)
    if not specs:
        why = ctx.model_missing or "none given"
        yield Bench(**common, name="pp/tg", flops=0, bytes=0, skip=f"skipped: needs --model PATH ({why})")
        return
    peers = ctx.extra.get("peers", True) and bool(ctx.llama_python)
    before_threads, before_act = sk.get_num_threads(), sk.get_act_mode()
    # our candidates: one per activation mode (set_act_mode), "slmkernels" being the default mode
    impl_act = {("slmkernels" if a == DEFAULTS["acts"][0] else f"slmkernels act={a}"): a for a in o["acts"]}
    ours_impls = list(impl_act)
    for spec in specs:
        path = resolve_model(spec)
        name = os.path.basename(path)
        D, P, G = list(o["depths"]), o["n_prompt"], o["n_gen"]
        n_ctx = max(D) + max(P, G) + 8
        m = sk.Model.from_gguf(path, context=n_ctx)
        costs = model_costs(m)
        rng = np.random.default_rng(ctx.seed)
        vocab = m.config.vocab
        depth_ids = {d: rng.integers(0, vocab, size=d).tolist() for d in D}
        pp_ids, tg_ids = rng.integers(0, vocab, size=P).tolist(), rng.integers(0, vocab, size=G).tolist()
        # Validate before timing: batch invariance through the whole step, 16 tokens as one prompt
        # give the bits of the same tokens fed one at a time (the model's numerics against a
        # float64 reference: tests/test_model.py and slmkernels eval).
        a = m.new_sequence()
        try:
            whole = m.forward(a, pp_ids[:16], all_logits=True)
            m.cache.truncate(a, 0)
            same = np.array_equal(whole, np.stack([m.forward(a, [t]) for t in pp_ids[:16]]))
        finally:
            m.free(a)
        if not same:  # an invalid row (exit status 1), nothing timed
            yield Bench(**dict(common, run=lambda: None, check=lambda _: float("inf")), name=f"pp/tg {name}", flops=0,
                        bytes=0)
            continue
        peer, why = None, None
        if peers and not os.path.exists(ctx.llama_python):
            peers, why = False, f"skipped: --llama-python {ctx.llama_python!r} not found"
        if peers:
            try:
                peer = _Peer(ctx.llama_python)
                info = peer.ask(op="load", model=os.path.abspath(path), n_ctx=n_ctx, n_batch=512)
            except (OSError, RuntimeError, ValueError) as e:
                why = f"skipped: {e}"
                if peer:
                    peer.close()
                peer = None
        # samples[(impl, test, depth, threads)] = seconds per call; probes[(kind, threads)] = values
        samples: dict = {}
        probes: dict = {}
        seq = m.new_sequence()

        def ours(kind: str, d: int, act: str) -> float:
            sk.set_act_mode(act)
            t0 = time.perf_counter()
            if kind == "pp":
                for s in range(0, P, 512):
                    m.forward(seq, pp_ids[s : s + 512])
            else:
                for t in tg_ids:
                    m.forward(seq, [t])
            dt = time.perf_counter() - t0
            m.cache.truncate(seq, d)
            return dt

        try:
            for d in D:
                m.cache.truncate(seq, 0)
                for s in range(0, d, 512):
                    m.forward(seq, depth_ids[d][s : s + 512])
                if peer:
                    peer.ask(op="depth", ids=depth_ids[d], threads=max(o["threads"]))
                for rep in range(o["reps"]):
                    for t in o["threads"]:
                        sk.set_num_threads(t)
                        probes.setdefault(("bw", t), []).append(
                            _core._probe_read_bandwidth(int(o["bandwidth_bytes"]), 1)["gb_per_s"])
                        probes.setdefault(("int8", t), []).append(_core._probe_peak("int8", o["peak_seconds"])["gops"])
                        for kind, ids in (("pp", pp_ids), ("tg", tg_ids)):
                            order = [*ours_impls, "llama.cpp"]
                            if (rep + (kind == "tg")) % 2:
                                order.reverse()
                            for impl in order:
                                if impl != "llama.cpp":
                                    s = ours(kind, d, impl_act[impl])
                                elif peer:
                                    s = peer.ask(op=kind, ids=ids, threads=t)["seconds"]
                                else:
                                    continue
                                samples.setdefault((impl, kind, d, t), []).append(s)
        finally:
            m.free(seq)
            sk.set_num_threads(before_threads)
            sk.set_act_mode(before_act)
            if peer:
                peer.close()
        for d in D:
            for t in o["threads"]:
                bw = float(np.median(probes[("bw", t)]))
                peak = float(np.median(probes[("int8", t)]))
                for kind in ("pp", "tg"):
                    n = P if kind == "pp" else G
                    if kind == "tg":
                        ctx_mean = d + (G + 1) / 2
                        bytes_tok = costs["weight_bytes"] + costs["kv_bytes_per_token"] * ctx_mean
                        roof, limit = bw * 1e9 / bytes_tok, f"bandwidth roofline ({bw:.1f} GB/s)"
                    else:
                        ops_tok = (2 * costs["body_params"] + 2 * costs["head_params"] / P
                                   + costs["attn_ops_per_key"] * (d + (P + 1) / 2))
                        bytes_tok = (costs["weight_bytes"] + costs["kv_bytes_per_token"] * (d + P / 2)) / P
                        roof, limit = peak * 1e9 / ops_tok, f"int8 peak ({peak:.0f} GOPS)"
                    test = f"{kind}{n}"
                    for impl in (*ours_impls, "llama.cpp"):
                        key = (impl, kind, d, t)
                        label = impl
                        params = dict(model=name, test=test, depth=d, n_tokens=n, bytes_per_token=bytes_tok,
                                      roofline_tok_s=roof, roofline_limit=limit, read_gb_per_s=bw, int8_gops=peak,
                                      samples=samples.get(key, []))
                        row = dict(common, impl=label, name=f"{test} {name}", shape=f"depth {d}, {t} thr",
                                   threads=t, flops=float(n), bytes=bytes_tok * n, params=params,
                                   kernel="llama_decode" if impl == "llama.cpp" else "Model.forward")
                        if key not in samples:
                            if impl == "llama.cpp":
                                yield Bench(**dict(row, skip=why or "skipped: llama.cpp peer needs --llama-python PATH"))
                            continue
                        med, spread = _median_spread(samples[key])
                        yield Bench(**row, seconds=med, timing=dict(
                            seconds=med, seconds_min=min(samples[key]), seconds_max=max(samples[key]), spread=spread,
                            reps=len(samples[key]), err_ratio=None if impl == "llama.cpp" else 0.0))
        del m


def summary_table(rows: list) -> str:
    """llama-bench's view of the model rows: tokens/s of each candidate (median ± spread), the
    ratio of ours to llama.cpp, and each candidate's share of the row's roofline. Empty when
    there are no measured model rows."""
    ok = [r for r in rows if r["area"] == "model" and r["status"] == "ok" and r["params"].get("test")]
    if not ok:
        return ""
    impls = list(dict.fromkeys(r["impl"] for r in ok))
    key = lambda r: (r["params"]["model"], r["params"]["test"], r["params"]["depth"], r["threads"])  # noqa: E731
    by: dict = {}
    for r in ok:
        by.setdefault(key(r), {})[r["impl"]] = r
    ours = [i for i in impls if i != "llama.cpp"]
    ratio_cols = [f"{i} / llama.cpp" for i in ours] if "llama.cpp" in impls else []
    head = (["model", "test", "depth", "threads"] + [f"{i} tok/s" for i in impls] + ratio_cols
            + ["roofline tok/s", "limit"] + [f"{i} of roofline" for i in impls])
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for k, pair in by.items():
        ref = next(iter(pair.values()))
        cells = [str(v) for v in k]
        cells += [f"{pair[i]['rate']:.1f} ± {100 * pair[i]['spread']:.0f}%" if i in pair else "-" for i in impls]
        ll = pair.get("llama.cpp")
        cells += [f"{pair[i]['rate'] / ll['rate']:.2f}x" if i in pair and ll else "-" for i in ours][: len(ratio_cols)]
        cells += [f"{ref['params']['roofline_tok_s']:.1f}", ref["params"]["roofline_limit"]]
        cells += [f"{100 * pair[i]['frac_of_limit']:.0f}%" if i in pair and pair[i].get("frac_of_limit") else "-"
                  for i in impls]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
