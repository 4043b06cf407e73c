"""The one writer of tiny random-weight GGUF models for the tests, the fuzz corpus and
bench/compare_llama.py, built on the ``gguf`` package's GGUFWriter.

``write_tiny_model(path, arch)`` writes a complete model of any supported architecture with
llama.cpp's real tensor names and metadata keys (gguf-py ``gguf.constants``): every tensor the
architecture's graph reads (src/models/<arch>.cpp), in the layouts its converter writes
(convert_hf_to_gguf.py: fused ``attn_qkv`` and ``ffn_up`` = [gate; up] for phi3, norms already
shifted by +1 for gemma3, ...), with the layer patterns that matter: NoPE layers (smollm3: every
4th), local/global layers (gemma3: ``sliding_window_pattern``), partial rotary and LongRoPE
factors (phi3), per-layer head-count arrays (the dense Granite 4.0 conversion), Mamba-2 layers
between attention layers (granitehybrid: ``layer_kinds``, the ``ssm.*`` keys and ``ssm_*``
tensors of convert_hf_to_gguf.py GraniteHybridModel / Mamba2Model), biases, tied or separate
output heads. Weights are float32 by default (``fmt`` picks a GGUF block format for
the matrices), with a byte-level BPE vocabulary (or a SentencePiece one, ``vocab="spm"``) and a
ChatML template, so config, tokenizer and forward-pass tests need no download.

``ARCH_VARIANTS`` names the files that cover every feature (one per architecture and pattern);
tests/test_model.py runs each against the numpy reference and bench/compare_llama.py against
llama.cpp.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

__all__ = ["ARCH_VARIANTS", "TINY", "byte_tokens", "mini_vocab", "tiny_vocab", "spm_vocab", "write_tiny_model"]

# default hyperparameters: small, but GQA (4 query heads over 2 KV heads)
TINY = dict(n_layers=2, hidden=64, n_heads=4, n_kv_heads=2, ffn=96, context=128, rope_base=10000.0, eps=1e-5)

CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def byte_tokens() -> list[str]:
    """The 256 byte symbols of byte-level BPE (GPT-2's byte-to-unicode map), byte order."""
    from slmkernels.model.tokenizer import BYTE_TO_UNICODE

    return [BYTE_TO_UNICODE[b] for b in range(256)]


def tiny_vocab() -> tuple[list[str], list[int], list[str]]:
    """A byte-level BPE vocabulary: 3 control tokens, the 256 byte symbols, a few merges."""
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    types = [3, 3, 3]
    tokens += byte_tokens()
    types += [1] * 256
    merges = ["h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld"]
    for m in merges:
        tokens.append(m.replace(" ", ""))
        types.append(1)
    return tokens, types, merges


def mini_vocab(spm: bool = False) -> tuple[list[str], list[int], list[str], list[float]]:
    """A 40-token vocabulary for the fuzz corpus (files of a few KiB): 3 control tokens, 34
    letters, 3 merged pieces; BPE merges, or SentencePiece scores with ``spm``."""
    from slmkernels.model.tokenizer import BYTE_TO_UNICODE

    toks = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    toks += [BYTE_TO_UNICODE[b] for b in range(ord("a"), ord("a") + 34)]
    toks += ["ab", "abc", "Ġa"]
    types = [3, 3, 3] + [1] * (len(toks) - 3)
    scores = [0.0] * 3 + [-float(i) for i in range(len(toks) - 3)]
    return toks, types, ([] if spm else ["a b", "ab c", "Ġ a"]), (scores if spm else [])


def spm_vocab() -> tuple[list[str], list[int], list[float]]:
    """A SentencePiece vocabulary (tokenizer.ggml.model "llama", as Gemma 3): <pad> <eos> <bos>
    <unk>, chat control tokens, the 256 byte-fallback tokens, a few scored pieces."""
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
    types = [3, 3, 3, 2, 3, 3]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [6] * 256
    pieces = ["▁", "▁t", "he", "▁the", "▁a", "in", "er", "on", "▁w", "or", "ld", "▁wor", "▁world", "▁he", "llo",
              "▁hello"]
    tokens += pieces
    types += [1] * len(pieces)
    scores = [0.0] * 262 + [-float(i) for i in range(len(pieces))]
    return tokens, types, scores


# name -> write_tiny_model keyword arguments: every architecture, and the patterns that matter.
ARCH_VARIANTS: dict[str, dict[str, Any]] = {
    "llama": dict(arch="llama"),
    "llama-untied-bias": dict(arch="llama", tied=False, bias=True),
    "llama-rope-freqs": dict(arch="llama", rope_freqs=True, rope_base=500000.0),  # Llama 3.2
    "llama-fused-qkv": dict(arch="llama", fused_qkv=True),
    "mistral-window": dict(arch="mistral", window=5, n_layers=3),
    "qwen2": dict(arch="qwen2", bias=True),
    "qwen2-untied-head-bias": dict(arch="qwen2", bias=True, tied=False, head_bias=True),
    "qwen3": dict(arch="qwen3", head_dim=32),  # q is 4 x 32 = 128 wide on a hidden of 64
    "qwen3-untied": dict(arch="qwen3", head_dim=32, tied=False, rope_base=1000000.0),
    "smollm3": dict(arch="smollm3", n_layers=4),  # layer 3 has no RoPE
    # layers: local, local, global, local; local RoPE base 10000 (the default), global 1e6
    "gemma3": dict(arch="gemma3", n_layers=4, head_dim=32, window=4, swa_pattern=3, rope_base=1e6),
    "gemma3-softcap-scaled": dict(arch="gemma3", n_layers=4, head_dim=32, window=4, swa_pattern=3, rope_base=1e6,
                                  tied=False, final_softcap=3.0, rope_scaling=dict(type="linear", factor=8.0)),
    # partial rotary (12 of 16 dims); LongRoPE with an original context of 2048 / 4 = 512 tokens
    # (llama.cpp pads its context to a multiple of 256, so both factor sets are reachable there)
    "phi3": dict(arch="phi3", rope_dim=12, longrope=True, context=2048),
    "phi3-separate": dict(arch="phi3", fused_qkv=False, tied=False),
    "granite": dict(arch="granite"),
    "granite4-dense": dict(arch="granite", kv_array=True, tied=False, bias=True),
    # Granite 4.0 H: Mamba-2 (M) and attention (A) layers, no RoPE; d_inner = 2 hidden = 8 heads x 16
    "granitehybrid": dict(arch="granitehybrid", layer_kinds="MMAMMA", tied=False),
    "granitehybrid-groups2-tied": dict(arch="granitehybrid", layer_kinds="AMMM", ssm_groups=2),
    "granitehybrid-no-conv-bias": dict(arch="granitehybrid", layer_kinds="MA", conv_bias=False, tied=False),
    "granitehybrid-state64": dict(arch="granitehybrid", layer_kinds="MAM", ssm_state=64, n_heads=2, n_kv=1,
                                  tied=False),
    # Bamba-style: RoPE on the attention layers (rope.scaling.finetuned absent), attention biases
    "granitehybrid-rope": dict(arch="granitehybrid", layer_kinds="MAMA", rope=True, bias=True, tied=False),
    "phonelm": dict(arch="phonelm", n_kv=4, tied=False),  # PhoneLM-1.5B: as many KV heads as heads
}


def write_tiny_model(
    path: str | os.PathLike[str],
    arch: str = "llama",
    *,
    n_layers: int = TINY["n_layers"],
    hidden: int = TINY["hidden"],
    n_heads: int = TINY["n_heads"],
    n_kv: int = TINY["n_kv_heads"],
    head_dim: int | None = None,
    ffn: int = TINY["ffn"],
    context: int = TINY["context"],
    rope_base: float = TINY["rope_base"],
    rope_dim: int | None = None,
    fmt: str = "f32",
    embd_fmt: str | None = None,
    down_fmt: str | None = None,
    formats: dict[str, str] | None = None,
    seed: int = 0,
    tied: bool = True,
    bias: bool | None = None,
    head_bias: bool = False,
    fused_qkv: bool | None = None,
    window: int = 0,
    swa_pattern: int | list[bool] | None = None,
    rope_scaling: dict[str, Any] | None = None,
    rope_freqs: bool = False,
    longrope: bool = False,
    kv_array: bool = False,
    final_softcap: float = 0.0,
    vocab: str = "bpe",
    extra_tokens: int = 0,
    override: Callable[[Any], None] | None = None,
    skip_keys: tuple[str, ...] = (),
    tensor_shapes: dict[str, tuple[int, ...]] | None = None,
    skip_tensors: tuple[str, ...] = (),
    layer_kinds: str | None = None,
    ssm_heads: int = 8,
    ssm_state: int = 16,
    ssm_groups: int = 1,
    d_conv: int = 4,
    conv_bias: bool = True,
    rope: bool = False,
) -> str:
    """Writes a tiny ``arch`` model to ``path`` and returns the path.

    Shapes: ``head_dim`` (default hidden / n_heads) is written as attention.key_length when it
    is not hidden / n_heads; ``rope_dim`` (default head_dim) as rope.dimension_count. ``bias``:
    Q/K/V biases (default: qwen2 only), and for llama/granite also attn_output and FFN biases.
    ``fused_qkv`` (default: phi3) writes attn_qkv. ``fmt`` is the matrices' format (the
    embedding's ``embd_fmt``, ffn_down's ``down_fmt``, defaulting to it; ``formats`` maps a
    tensor-name suffix to its own); norms, biases and factors are F32. ``vocab``: "bpe" (268
    tokens), "spm" (SentencePiece), "mini" / "mini-spm" (40 tokens, for the fuzz corpus). ``override(writer)`` runs after the standard keys, to add or replace
    metadata (GGUFWriter keeps the last value of a repeated key); ``skip_keys`` leaves keys out;
    ``tensor_shapes`` replaces the numpy shape of named tensors; ``skip_tensors`` leaves them out.

    granitehybrid: ``layer_kinds`` one letter per layer, M (Mamba-2) or A (attention; it sets
    n_layers); d_inner = 2 * hidden (Granite's expansion, which llama.cpp asserts) in ``ssm_heads``
    heads, ``ssm_state``, ``ssm_groups``, ``d_conv`` taps, ``conv_bias``; ``rope`` leaves
    rope.scaling.finetuned out (llama.cpp then applies RoPE, as for Bamba) instead of false.
    """
    import gguf

    import slmkernels as sk

    rng = np.random.default_rng(seed)
    granite = arch in ("granite", "granitehybrid")
    kinds = layer_kinds or "A" * n_layers
    if arch == "granitehybrid":
        n_layers = len(kinds)
        kv_array = True  # head_count_kv per layer: 0 marks a Mamba-2 layer
    d_inner = 2 * hidden
    hd = head_dim or hidden // n_heads
    rot = rope_dim or hd
    bias = (arch == "qwen2") if bias is None else bias
    fused_qkv = (arch == "phi3") if fused_qkv is None else fused_qkv
    if vocab == "spm":
        tokens, types, scores = spm_vocab()
        merges: list[str] = []
    elif vocab in ("mini", "mini-spm"):
        tokens, types, merges, scores = mini_vocab(spm=vocab == "mini-spm")
    else:
        tokens, types, merges = tiny_vocab()
        scores = []
    spm = vocab in ("spm", "mini-spm")
    tokens = tokens + [f"<extra_{i}>" for i in range(extra_tokens)]
    types = types + [1] * extra_tokens
    scores = scores + [-100.0] * (extra_tokens if scores else 0)
    n_vocab = len(tokens)

    w = gguf.GGUFWriter(os.fspath(path), arch)
    a = arch + "."
    keys: dict[str, tuple[str, Any]] = {
        a + "block_count": ("uint32", n_layers),
        a + "context_length": ("uint32", context),
        a + "embedding_length": ("uint32", hidden),
        a + "feed_forward_length": ("uint32", ffn),
        a + "attention.head_count": ("uint32", n_heads),
        a + "attention.head_count_kv": ("uint32", n_kv) if not kv_array else ("array", [n_kv if k == "A" else 0
                                                                                       for k in kinds]),
        a + "rope.freq_base": ("float32", rope_base),
        a + "attention.layer_norm_rms_epsilon": ("float32", TINY["eps"]),
        a + "rope.dimension_count": ("uint32", rot),
        a + "vocab_size": ("uint32", n_vocab),
        "tokenizer.ggml.model": ("string", "llama" if spm else "gpt2"),
        "tokenizer.ggml.bos_token_id": ("uint32", 2 if vocab == "spm" else 1),
        "tokenizer.ggml.eos_token_id": ("uint32", 1 if vocab == "spm" else 2),
        "tokenizer.ggml.add_bos_token": ("bool", vocab == "spm"),
        "tokenizer.chat_template": ("string", CHATML),
    }
    if vocab == "spm":
        keys["tokenizer.ggml.add_space_prefix"] = ("bool", False)  # as Gemma 3's converter writes
    elif not spm:
        keys["tokenizer.ggml.pre"] = ("string", "smollm")
    if hd * n_heads != hidden or arch in ("gemma3", "qwen3"):
        keys[a + "attention.key_length"] = ("uint32", hd)
        keys[a + "attention.value_length"] = ("uint32", hd)
    if window:
        keys[a + "attention.sliding_window"] = ("uint32", window)
    if isinstance(swa_pattern, int):
        keys[a + "attention.sliding_window_pattern"] = ("uint32", swa_pattern)
    if granite:
        keys[a + "embedding_scale"] = ("float32", 12.0)
        keys[a + "residual_scale"] = ("float32", 0.22)
        keys[a + "attention.scale"] = ("float32", 0.0078125)
        keys[a + "logit_scale"] = ("float32", 8.0)
        if kv_array and arch == "granite":  # the dense Granite 4.0 conversion (GraniteHybridModel with no Mamba layer)
            keys[a + "rope.scaling.finetuned"] = ("bool", True)
    if arch == "granitehybrid":
        keys[a + "context_length"] = ("uint32", 1 << 20)  # what the converter writes for models without RoPE
        if not rope:
            keys[a + "rope.scaling.finetuned"] = ("bool", False)  # Granite 4.0 H: no RoPE
        keys[a + "ssm.conv_kernel"] = ("uint32", d_conv)
        keys[a + "ssm.inner_size"] = ("uint32", d_inner)
        keys[a + "ssm.state_size"] = ("uint32", ssm_state)
        keys[a + "ssm.time_step_rank"] = ("uint32", ssm_heads)
        keys[a + "ssm.group_count"] = ("uint32", ssm_groups)
    if final_softcap:
        keys[a + "final_logit_softcapping"] = ("float32", final_softcap)
    if rope_scaling:
        keys[a + "rope.scaling.type"] = ("string", rope_scaling["type"])
        if "factor" in rope_scaling:
            keys[a + "rope.scaling.factor"] = ("float32", rope_scaling["factor"])
        if "original_context" in rope_scaling:
            keys[a + "rope.scaling.original_context_length"] = ("uint32", rope_scaling["original_context"])
    if longrope:  # Phi-3's converter: original context, attn_factor, short/long factor tensors
        keys[a + "rope.scaling.original_context_length"] = ("uint32", context // 4)
        keys[a + "rope.scaling.attn_factor"] = ("float32", 1.19)
    for k, (kind, v) in keys.items():
        if k not in skip_keys:
            getattr(w, f"add_{kind}")(k, v)
    if isinstance(swa_pattern, list):
        w.add_array(a + "attention.sliding_window_pattern", swa_pattern)
    if "tokenizer.ggml.tokens" not in skip_keys:
        w.add_array("tokenizer.ggml.tokens", tokens)
    w.add_array("tokenizer.ggml.token_type", types)
    if spm:
        w.add_array("tokenizer.ggml.scores", scores)
    else:
        w.add_array("tokenizer.ggml.merges", merges)
    if override is not None:
        override(w)

    # ---- tensors: numpy shape (rows, cols) = ggml (cols, rows) ----
    h, q, kv, f = hidden, n_heads * hd, n_kv * hd, ffn
    mats: dict[str, tuple[int, ...]] = {"token_embd.weight": (n_vocab, h)}
    vecs: dict[str, tuple[int, float]] = {"output_norm.weight": (h, 1.0)}  # name -> (n, centre)
    if not tied:
        mats["output.weight"] = (n_vocab, h)
    if head_bias:
        vecs["output.bias"] = (n_vocab, 0.0)
    if rope_freqs:
        vecs["rope_freqs.weight"] = (rot // 2, 0.0)
    if longrope:
        vecs["rope_factors_short.weight"] = (rot // 2, 0.0)
        vecs["rope_factors_long.weight"] = (rot // 2, 0.0)
    ssm_raw: dict[str, Callable[[], np.ndarray]] = {}  # Mamba-2 tensors of their own shapes and ranges
    gs = ssm_groups * ssm_state
    for i in range(n_layers):
        b = f"blk.{i}."
        vecs[b + "attn_norm.weight"] = (h, 1.0)
        vecs[b + "ffn_norm.weight"] = (h, 1.0)
        if kinds[i] == "M":
            mats[b + "ssm_in.weight"] = (2 * d_inner + 2 * gs + ssm_heads, h)  # [z; x B C; dt]
            mats[b + "ssm_out.weight"] = (h, d_inner)
            mats.update({b + "ffn_gate.weight": (f, h), b + "ffn_up.weight": (f, h), b + "ffn_down.weight": (h, f)})
            ssm_raw[b + "ssm_conv1d.weight"] = lambda: 0.5 * rng.standard_normal((d_inner + 2 * gs, d_conv))
            if conv_bias:
                ssm_raw[b + "ssm_conv1d.bias"] = lambda: 0.1 * rng.standard_normal(d_inner + 2 * gs)
            ssm_raw[b + "ssm_dt.bias"] = lambda: rng.uniform(-2.0, 0.5, ssm_heads)
            ssm_raw[b + "ssm_a"] = lambda: -np.exp(rng.uniform(-1.0, 1.5, (ssm_heads, 1)))  # -exp(A_log)
            ssm_raw[b + "ssm_d"] = lambda: rng.standard_normal((ssm_heads, 1))
            ssm_raw[b + "ssm_norm.weight"] = lambda: 1 + 0.1 * rng.standard_normal((ssm_groups, d_inner // ssm_groups))
            continue
        if fused_qkv:
            mats[b + "attn_qkv.weight"] = (q + 2 * kv, h)
        else:
            mats.update({b + "attn_q.weight": (q, h), b + "attn_k.weight": (kv, h), b + "attn_v.weight": (kv, h)})
        if bias:
            if fused_qkv:
                vecs[b + "attn_qkv.bias"] = (q + 2 * kv, 0.0)
            else:
                vecs.update({b + "attn_q.bias": (q, 0.0), b + "attn_k.bias": (kv, 0.0), b + "attn_v.bias": (kv, 0.0)})
        mats[b + "attn_output.weight"] = (h, q)
        if arch in ("qwen3", "gemma3"):
            vecs[b + "attn_q_norm.weight"] = (hd, 1.0)
            vecs[b + "attn_k_norm.weight"] = (hd, 1.0)
        if arch == "gemma3":
            vecs[b + "post_attention_norm.weight"] = (h, 1.0)
            vecs[b + "post_ffw_norm.weight"] = (h, 1.0)
        if arch == "phi3":
            mats[b + "ffn_up.weight"] = (2 * f, h)  # [gate; up]
        else:
            mats[b + "ffn_gate.weight"] = (f, h)
            mats[b + "ffn_up.weight"] = (f, h)
        mats[b + "ffn_down.weight"] = (h, f)
        if bias and arch in ("llama", "mistral", "granite", "granitehybrid"):
            vecs.update({b + "attn_output.bias": (h, 0.0), b + "ffn_gate.bias": (f, 0.0), b + "ffn_up.bias": (f, 0.0),
                         b + "ffn_down.bias": (h, 0.0)})

    def put(name: str, x: np.ndarray, tfmt: str) -> None:
        if tfmt == "f32":
            w.add_tensor(name, x.astype(np.float32))
        elif tfmt == "f16":
            w.add_tensor(name, x.astype(np.float16))
        else:
            qt = sk.quantize(np.ascontiguousarray(x, dtype=np.float32), tfmt)
            w.add_tensor(name, np.asarray(qt.data).reshape(x.shape[0], -1), raw_dtype=gguf.GGMLQuantizationType[tfmt.upper()])

    shapes = dict(tensor_shapes or {})
    for name, shape in mats.items():
        if name in skip_tensors:
            continue
        shape = shapes.pop(name, shape)
        # embeddings small enough that a tied head's logits are not just "repeat the token"
        scale = 0.3 if name == "token_embd.weight" else shape[-1] ** -0.5
        if name == "token_embd.weight":
            tfmt = embd_fmt or fmt
        else:
            tfmt = (down_fmt or fmt) if "ffn_down" in name else fmt
        tfmt = next((f for suffix, f in (formats or {}).items() if name.endswith(suffix)), tfmt)
        put(name, scale * rng.standard_normal(shape), tfmt)
    for name, (n, centre) in vecs.items():
        if name in skip_tensors:
            continue
        shape = shapes.pop(name, (n,))
        if name.startswith("rope_f"):  # frequency divisors: positive, around 1..4
            x = np.exp(rng.uniform(0.0, 1.4, shape))
        else:
            x = centre + (0.1 if centre else 0.5) * rng.standard_normal(shape)
        w.add_tensor(name, x.astype(np.float32))
    for name, make in ssm_raw.items():
        if name in skip_tensors:
            continue
        x = rng.standard_normal(shapes.pop(name)) if name in shapes else make()
        w.add_tensor(name, x.astype(np.float32))
    for name, shape in shapes.items():  # a shape for a tensor the architecture does not have
        w.add_tensor(name, rng.standard_normal(shape).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return os.fspath(path)
