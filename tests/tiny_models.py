"""Tiny random-weight GGUF files, one per supported architecture, written with gguf's writer."""

from __future__ import annotations

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFWriter

import slmkernels as sk

# A byte-level vocabulary: token i < 256 is the GPT-2 byte-to-unicode character of byte i.
def _byte_tokens():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, (chr(c) for c in cs)))
    return [table[b] for b in range(256)]


def write_tiny(path, arch="llama", *, n_layers=2, hidden=64, n_heads=4, n_kv=2, ffn=96, vocab=320, fmt="q8_0",
               window=0, tied=True, seed=0, context=256):
    rng = np.random.default_rng(seed)
    w = GGUFWriter(str(path), arch)
    head_dim = hidden // n_heads
    w.add_block_count(n_layers)
    w.add_context_length(context)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ffn)
    w.add_head_count(n_heads)
    w.add_head_count_kv(n_kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(head_dim)
    if window:
        w.add_sliding_window(window)
    if arch == "granite":
        w.add_embedding_scale(3.0)
        w.add_residual_scale(0.5)
        w.add_attention_scale(0.2)
        w.add_logit_scale(4.0)
    toks = _byte_tokens() + [f"<extra_{i}>" for i in range(vocab - 256 - 2)] + ["<|bos|>", "<|eos|>"]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(toks)
    w.add_token_types([1] * (vocab - 2) + [3, 3])
    w.add_token_merges([])
    w.add_bos_token_id(vocab - 2)
    w.add_eos_token_id(vocab - 1)

    def mat(name, rows, cols, scale, qfmt=fmt):
        x = (rng.standard_normal((rows, cols)) * scale).astype(np.float32)
        if qfmt == "f32":
            w.add_tensor(name, x)
        else:
            q = sk.quantize(x, qfmt)
            w.add_tensor(name, q.data.reshape(rows, -1), raw_dtype=T[qfmt.upper()])

    def vec(name, n, center=1.0, scale=0.1):
        w.add_tensor(name, (center + rng.standard_normal(n) * scale).astype(np.float32))

    mat("token_embd.weight", vocab, hidden, 1.0, "q8_0")
    for i in range(n_layers):
        p = f"blk.{i}."
        vec(p + "attn_norm.weight", hidden)
        mat(p + "attn_q.weight", n_heads * head_dim, hidden, hidden**-0.5)
        mat(p + "attn_k.weight", n_kv * head_dim, hidden, hidden**-0.5)
        mat(p + "attn_v.weight", n_kv * head_dim, hidden, hidden**-0.5)
        if arch == "qwen2":
            vec(p + "attn_q.bias", n_heads * head_dim, 0.0, 0.5)
            vec(p + "attn_k.bias", n_kv * head_dim, 0.0, 0.5)
            vec(p + "attn_v.bias", n_kv * head_dim, 0.0, 0.5)
        mat(p + "attn_output.weight", hidden, n_heads * head_dim, (n_heads * head_dim) ** -0.5)
        vec(p + "ffn_norm.weight", hidden)
        mat(p + "ffn_gate.weight", ffn, hidden, hidden**-0.5)
        mat(p + "ffn_up.weight", ffn, hidden, hidden**-0.5)
        mat(p + "ffn_down.weight", hidden, ffn, ffn**-0.5)
    vec("output_norm.weight", hidden)
    if not tied:
        mat("output.weight", vocab, hidden, hidden**-0.5)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
