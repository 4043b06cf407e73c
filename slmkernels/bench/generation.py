"""``slmkernels bench generation --model GGUF``: generation-level costs, each printed as a
markdown table of its own (these are whole-pipeline timings, not kernel rows on a roofline, so
they do not use report.py's row schema):

  ttft        time to first token of each turn of a 5-turn chat, with and without prefix reuse
  serve       aggregate decode tokens/s of `slmkernels serve` at 1, 4 and 16 concurrent streaming
              clients (the official openai client, on 127.0.0.1)
  sampler     the C++ sampler's cost per token next to a decode step, per configuration
  structured  per-token cost of computing the grammar mask: llguidance vs outlines-core

    slmkernels bench generation --model SmolLM2-135M-Instruct.Q4_1.gguf --parts ttft,serve,sampler,structured

A part whose optional packages are missing is skipped with a one-line reason. Ratios are
measured in one run, interleaved where it matters (ttft alternates the two modes). Not part of
``bench all``: it needs a model and takes minutes (serve runs 16 concurrent clients).
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
import threading
import time

import numpy as np

PARTS = ["ttft", "serve", "sampler", "structured"]
# what each part imports beyond the package, and how to get it
NEEDS = {"serve": (("openai", "starlette", "uvicorn"), "pip install 'slmkernels[server]' openai"),
         "structured": (("llguidance",), "pip install 'slmkernels[structured]'")}

QUESTIONS = ["What is the capital of France?", "And of Germany?", "Which of the two is larger?",
             "Name a famous museum in the first one.", "Summarize our conversation in one sentence."]


def _load(path: str, context: int):
    """The model, or one line and exit status 1 for a file that cannot be read."""
    from slmkernels.model import Model
    from slmkernels.model.gguf_reader import GGUFError

    try:
        return Model.from_gguf(path, context=context)
    except (OSError, GGUFError) as e:
        print(f"slmkernels bench generation: cannot load {path}: {e}", file=sys.stderr)
        raise SystemExit(1) from None


def missing(part: str) -> str:
    """Why ``part`` cannot run here ("" when it can)."""
    mods, how = NEEDS.get(part, ((), ""))
    absent = [m for m in mods if importlib.util.find_spec(m) is None]
    return f"skipped: needs {', '.join(absent)} ({how})" if absent else ""


def bench_ttft(path: str, repeats: int) -> None:
    rows = {True: [[] for _ in QUESTIONS], False: [[] for _ in QUESTIONS]}
    m = _load(path, 2048)
    for _ in range(repeats):
        for reuse in (True, False):  # interleaved
            m._slmk_prefix_cache = None
            msgs = [{"role": "system", "content": "You are a helpful assistant. Answer in two sentences."}]
            for turn, q in enumerate(QUESTIONS):
                msgs.append({"role": "user", "content": q})
                g = m.chat(msgs, 48, reuse_prefix=reuse)
                list(g)
                rows[reuse][turn].append((g.stats.first_token_seconds, g.stats.prompt_tokens, g.stats.cached_tokens))
                msgs.append({"role": "assistant", "content": g.text})
    print("\n| turn | prompt tokens | reused (with) | TTFT with reuse | TTFT without | ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    for turn in range(len(QUESTIONS)):
        w = statistics.median(r[0] for r in rows[True][turn])
        wo = statistics.median(r[0] for r in rows[False][turn])
        _, n, cached = rows[True][turn][0]
        print(f"| {turn + 1} | {n} | {cached} | {w * 1e3:.1f} ms | {wo * 1e3:.1f} ms | {wo / w:.1f}x |")


def bench_serve(path: str, clients_list: list[int], tokens: int) -> None:
    """The server runs as `slmkernels serve` in its own process (so the clients' parsing does
    not share its interpreter), the clients are threads here."""
    import os
    import socket
    import subprocess

    import openai

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    n_max = max(clients_list)
    proc = subprocess.Popen([sys.executable, "-P", "-m", "slmkernels", "serve", "--model", path, "--port", str(port),
                             "--parallel", str(n_max), "--context", "512", "--name", "m"],
                            stderr=subprocess.DEVNULL, env=dict(os.environ))
    try:
        c = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0, timeout=600)
        for _ in range(600):
            try:
                c.models.list()
                break
            except openai.APIConnectionError:
                if proc.poll() is not None:
                    raise RuntimeError(f"slmkernels serve exited with status {proc.returncode}") from None
                time.sleep(0.1)
        c.completions.create(model="m", prompt="warm up", max_tokens=4)

        def one(i, counts):
            s = c.chat.completions.create(
                model="m", messages=[{"role": "user", "content": f"Write a long story about robot number {i}."}],
                max_tokens=tokens, temperature=0, stream=True, logit_bias={"2": -100, "0": -100})
            counts[i] = sum(1 for k in s if k.choices and k.choices[0].delta.content is not None)

        print("\n| clients | tokens/s (aggregate) | per client | vs 1 client | wall |")
        print("| --- | --- | --- | --- | --- |")
        base = None
        for n in clients_list:
            counts = [0] * n
            threads = [threading.Thread(target=one, args=(i, counts)) for i in range(n)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            rate = sum(counts) / wall
            base = base or rate
            print(f"| {n} | {rate:.1f} | {rate / n:.1f} | {rate / base:.2f}x | {wall:.1f} s |")
    finally:
        proc.terminate()
        proc.wait(30)


def bench_sampler(path: str, repeats: int) -> None:
    from slmkernels import _core

    m = _load(path, 512)
    s = m.new_sequence()
    logits = m.forward(s, m.tokenizer.encode("The history of the Roman Empire", add_bos=False))
    step = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        logits = m.forward(s, [int(np.argmax(logits))])
        step.append(time.perf_counter() - t0)
    step_s = statistics.median(step)
    configs = {
        "greedy": {}, "temperature 0.8": dict(temperature=0.8),
        "llama.cpp defaults (top-k 40, top-p 0.95, min-p 0.05, T 0.8)": dict(temperature=0.8, top_k=40, top_p=0.95,
                                                                             min_p=0.05),
        "top-p 0.95, T 0.8": dict(temperature=0.8, top_p=0.95), "min-p 0.05, T 1": dict(temperature=1.0, min_p=0.05),
        "penalties (rep 1.1, presence 0.5, frequency 0.5) + T 0.8": dict(
            temperature=0.8, repetition_penalty=1.1, presence_penalty=0.5, frequency_penalty=0.5),
        "typical-p 0.9, T 1": dict(temperature=1.0, typical_p=0.9),
    }
    rng = np.random.default_rng(0)
    print(f"\ndecode step (1 token): {step_s * 1e3:.2f} ms (median of {repeats})")
    print("\n| sampler configuration | per token | of a decode step |")
    print("| --- | --- | --- |")
    for name, kw in configs.items():
        smp = _core.Sampler(m.config.vocab, **kw)
        smp.add_context(np.arange(0, 600, 3) % m.config.vocab)  # a history for the penalties
        for t in range(0, 200, 7):
            smp.accept(t % m.config.vocab)
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            smp.sample(logits, rng.random())
            ts.append(time.perf_counter() - t0)
        t = statistics.median(ts)
        print(f"| {name} | {t * 1e6:.0f} us | {t / step_s * 100:.1f}% |")
    m.free(s)


def bench_structured(path: str, tokens: int) -> None:
    """Mask cost per token along the same token sequence (a JSON document the model wrote under
    the schema), for each engine; the decode step for scale."""
    import json

    from slmkernels.model.structured import JSONSchemaConstraint, ll_tokenizer

    m = _load(path, 1024)
    schema = {"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 30}, "age": {"type": "integer"},
        "color": {"enum": ["red", "green", "blue"]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 4},
        "address": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30}},
                    "required": ["city"], "additionalProperties": False}},
        "required": ["name", "age", "color", "tags", "address"], "additionalProperties": False}
    t0 = time.perf_counter()
    ll_tokenizer(m)
    ll_build = time.perf_counter() - t0
    g = m.chat([{"role": "user", "content": "Describe a person as JSON."}], tokens,
               constraint=JSONSchemaConstraint(m, schema))
    ids = [t.id for t in g]
    print(f"\nJSON under the schema ({len(ids)} tokens): {g.text}")
    V = m.config.vocab
    logits = np.zeros(V, np.float32)
    rows = []
    # llguidance
    t0 = time.perf_counter()
    c = JSONSchemaConstraint(m, schema)
    compile_s = time.perf_counter() - t0
    ts = []
    for t in ids:
        t1 = time.perf_counter()
        c.mask(logits)
        ts.append(time.perf_counter() - t1)
        c.accept(t)
    rows.append(("llguidance", ll_build, compile_s, statistics.median(ts), max(ts)))
    # outlines-core: an index over the vocabulary per schema (its regex), then a table lookup per token
    try:
        import outlines_core

        tok = m.tokenizer
        eos = tok.eos_id
        t0 = time.perf_counter()
        vocab_map: dict = {}
        for i in range(V):
            if i == eos or tok.token_types[i] != 1:
                continue
            vocab_map.setdefault(tok.token_to_piece(i).decode("latin-1"), []).append(i)
        voc = outlines_core.Vocabulary(eos, vocab_map)
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        regex = outlines_core.json_schema.build_regex_from_schema(json.dumps(schema))
        index = outlines_core.Index(regex, voc)
        compile_s = time.perf_counter() - t0
        guide = outlines_core.Guide(index)
        ts = []
        for t in ids:
            t1 = time.perf_counter()
            allowed = np.fromiter(guide.get_tokens(), dtype=np.int64)
            masked = np.full(V, -np.inf, np.float32)
            masked[allowed] = logits[allowed]
            ts.append(time.perf_counter() - t1)
            if guide.is_finished():
                break
            guide.advance(t)
        rows.append(("outlines-core", build, compile_s, statistics.median(ts), max(ts)))
    except Exception as e:  # noqa: BLE001 (a peer that cannot run here is reported, not fatal)
        print(f"outlines-core: not measured ({type(e).__name__}: {e})")
    print("\n| engine | vocabulary setup | schema compile | mask per token (median) | worst token |")
    print("| --- | --- | --- | --- | --- |")
    for name, b, cpl, med, worst in rows:
        print(f"| {name} | {b * 1e3:.0f} ms | {cpl * 1e3:.1f} ms | {med * 1e6:.0f} us | {worst * 1e6:.0f} us |")
    print("xgrammar: not measured (its wheel requires torch, transformers and triton)")


def run(path: str, parts: list, repeats: int, clients: list, tokens: int) -> int:
    """Each part in turn; a part whose packages are missing is one line on stderr. Exit status 0."""
    for part in parts:
        why = missing(part)
        if why:
            print(f"generation {part}: {why}", file=sys.stderr)
        elif part == "ttft":
            bench_ttft(path, repeats)
        elif part == "serve":
            bench_serve(path, clients, tokens)
        elif part == "sampler":
            bench_sampler(path, max(repeats, 30))
        else:
            bench_structured(path, 200)
        sys.stdout.flush()
    return 0
