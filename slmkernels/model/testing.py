"""Tiny random-weight GGUF models for tests, written with the ``gguf`` package's GGUFWriter.

``write_tiny_model(path, arch="llama")`` writes a complete model of the given architecture
(all tensors the forward pass reads, F32, small shapes) with a byte-level BPE vocabulary, so
config, tokenizer and (later) forward-pass tests need no download. Needs the ``gguf`` package
(a test dependency).
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

__all__ = ["TINY", "write_tiny_model", "tiny_vocab"]

# hyperparameters of the tiny models: small, but GQA (4 query heads over 2 KV heads)
TINY = dict(n_layers=2, hidden=64, n_heads=4, n_kv_heads=2, ffn=96, context=128, rope_base=10000.0, eps=1e-5)


def tiny_vocab() -> tuple[list[str], list[int], list[str]]:
    """A byte-level BPE vocabulary: 3 control tokens, the 256 byte symbols, a few merges."""
    from .tokenizer import BYTE_TO_UNICODE

    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    types = [3, 3, 3]
    tokens += [BYTE_TO_UNICODE[b] for b in range(256)]
    types += [1] * 256
    merges = ["h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld"]
    for m in merges:
        tokens.append(m.replace(" ", ""))
        types.append(1)
    return tokens, types, merges


def write_tiny_model(
    path: str | os.PathLike[str],
    arch: str = "llama",
    *,
    seed: int = 0,
    tied: bool = True,
    dtype: Any = np.float32,
    override: Callable[[Any], None] | None = None,
    skip_keys: tuple[str, ...] = (),
    tensor_shapes: dict[str, tuple[int, ...]] | None = None,
    skip_tensors: tuple[str, ...] = (),
) -> str:
    """Writes a tiny ``arch`` model to ``path`` and returns the path.

    ``override(writer)`` runs after the standard keys, to add or replace metadata (GGUFWriter
    overwrites a repeated key). ``skip_keys`` leaves keys out; ``tensor_shapes`` replaces the
    numpy shape of named tensors; ``skip_tensors`` leaves tensors out.
    """
    import gguf

    p = TINY
    h, nh, nkv, f = p["hidden"], p["n_heads"], p["n_kv_heads"], p["ffn"]
    hd = h // nh
    tokens, types, merges = tiny_vocab()
    vocab = len(tokens)
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(os.fspath(path), arch)
    keys: dict[str, tuple[str, Any]] = {
        f"{arch}.block_count": ("uint32", p["n_layers"]),
        f"{arch}.context_length": ("uint32", p["context"]),
        f"{arch}.embedding_length": ("uint32", h),
        f"{arch}.feed_forward_length": ("uint32", f),
        f"{arch}.attention.head_count": ("uint32", nh),
        f"{arch}.attention.head_count_kv": ("uint32", nkv),
        f"{arch}.rope.freq_base": ("float32", p["rope_base"]),
        f"{arch}.attention.layer_norm_rms_epsilon": ("float32", p["eps"]),
        f"{arch}.rope.dimension_count": ("uint32", hd),
        f"{arch}.vocab_size": ("uint32", vocab),
        "tokenizer.ggml.model": ("string", "gpt2"),
        "tokenizer.ggml.pre": ("string", "smollm"),
        "tokenizer.ggml.bos_token_id": ("uint32", 1),
        "tokenizer.ggml.eos_token_id": ("uint32", 2),
        "tokenizer.ggml.add_bos_token": ("bool", False),
        "tokenizer.chat_template": (
            "string",
            "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}"
            "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
        ),
    }
    if arch == "granite":
        keys[f"{arch}.embedding_scale"] = ("float32", 12.0)
        keys[f"{arch}.residual_scale"] = ("float32", 0.22)
        keys[f"{arch}.attention.scale"] = ("float32", 0.0078125)
        keys[f"{arch}.logit_scale"] = ("float32", 8.0)
    for k, (kind, v) in keys.items():
        if k not in skip_keys:
            getattr(w, f"add_{kind}")(k, v)
    if "tokenizer.ggml.tokens" not in skip_keys:
        w.add_array("tokenizer.ggml.tokens", tokens)
    w.add_array("tokenizer.ggml.token_type", types)
    w.add_array("tokenizer.ggml.merges", merges)
    if override is not None:
        override(w)

    shapes: dict[str, tuple[int, ...]] = {"token_embd.weight": (vocab, h), "output_norm.weight": (h,)}
    if not tied:
        shapes["output.weight"] = (vocab, h)
    for i in range(p["n_layers"]):
        b = f"blk.{i}."
        shapes.update(
            {
                b + "attn_norm.weight": (h,),
                b + "attn_q.weight": (nh * hd, h),
                b + "attn_k.weight": (nkv * hd, h),
                b + "attn_v.weight": (nkv * hd, h),
                b + "attn_output.weight": (h, nh * hd),
                b + "ffn_norm.weight": (h,),
                b + "ffn_gate.weight": (f, h),
                b + "ffn_up.weight": (f, h),
                b + "ffn_down.weight": (h, f),
            }
        )
        if arch == "qwen2":
            shapes.update({b + "attn_q.bias": (nh * hd,), b + "attn_k.bias": (nkv * hd,), b + "attn_v.bias": (nkv * hd,)})
    shapes.update(tensor_shapes or {})
    for name, shape in shapes.items():
        if name in skip_tensors:
            continue
        if name.endswith("norm.weight"):
            x = 1.0 + 0.1 * rng.standard_normal(shape)
        else:
            x = 0.1 * rng.standard_normal(shape)
        w.add_tensor(name, x.astype(dtype))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return os.fspath(path)
