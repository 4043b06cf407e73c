"""Model area: end-to-end prefill and decode of a GGUF file (``--model PATH``) with our Model,
and llama.cpp as the peer when ``--llama-python`` is given."""

from __future__ import annotations

from . import Bench, case
from .peers import llama_cpp_model

N_PROMPT, N_GEN = 128, 32


@case("model", requires=("Model",))
def model_generate(ctx):
    import numpy as np

    import slmkernels as sk

    common = dict(area="model", op="model", bytes=0.0, compute=None, kind="end-to-end", unit="token", format="gguf")
    if not ctx.model_path:
        yield Bench(**common, name="prefill", run=None, check=None, flops=0, skip="skipped: needs --model PATH")
        return
    m = sk.Model.from_gguf(ctx.model_path, context=N_PROMPT + N_GEN + 8)
    ids = np.random.default_rng(0).integers(100, min(m.config.vocab, 30000), size=N_PROMPT)
    name = ctx.model_path.rsplit("/", 1)[-1]

    def check(_out):
        # Batch invariance carried through the whole step: 16 tokens as one prompt give the
        # same bits as the same tokens fed one at a time (the model's numerics are checked
        # against a float64 numpy reference in tests/test_model.py).
        a, b = m.new_sequence(), m.new_sequence()
        whole = m.forward(a, ids[:16], all_logits=True)
        one_by_one = np.stack([m.forward(b, [int(t)]) for t in ids[:16]])
        m.free(a)
        m.free(b)
        return 0.0 if np.array_equal(whole, one_by_one) else float("inf")

    def prefill():
        s = m.new_sequence()
        out = m.forward(s, ids)
        m.free(s)
        return out

    def decode():
        s = m.new_sequence()
        m.forward(s, ids[:8])
        for i in range(N_GEN):
            out = m.forward(s, [int(ids[i])])
        m.free(s)
        return out

    yield Bench(**common, name=f"prefill {name}", shape=f"{N_PROMPT} tokens", run=prefill, check=check,
                flops=float(N_PROMPT), kernel="Model.forward")
    yield Bench(**common, name=f"decode {name}", shape=f"{N_GEN} tokens after 8", run=decode, check=check,
                flops=float(N_GEN), kernel="Model.forward")


@case("model", peer=True)
def llama_cpp(ctx):
    common = dict(area="model", impl="llama.cpp", op="llama.cpp", kernel="llama-cpp-python", format="gguf",
                  check=None, bytes=0.0, compute=None, kind="end-to-end", unit="token")
    if not ctx.llama_python:
        yield Bench(**common, name="prefill", shape=f"{N_PROMPT} tokens", run=None, flops=0,
                    skip="skipped: llama.cpp peer needs --llama-python PATH")
        return
    res, why = llama_cpp_model(ctx.llama_python, ctx.model_path, N_PROMPT, N_GEN, ctx.threads)
    model = (ctx.model_path or "?").rsplit("/", 1)[-1]
    if res is None:
        yield Bench(**common, name="prefill", shape=f"{N_PROMPT} tokens", run=None, flops=0, skip=why)
        return
    params = dict(model=model, llama_cpp_version=res["version"])
    yield Bench(**common, name=f"prefill {model}", shape=f"{N_PROMPT} tokens", params=params, run=None,
                flops=float(N_PROMPT), seconds=res["prefill"])
    yield Bench(**common, name=f"decode {model}", shape=f"1 token after {N_PROMPT}", params=params, run=None,
                flops=1.0, seconds=res["decode"])
