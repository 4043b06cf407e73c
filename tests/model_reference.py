"""A float64 numpy forward pass of the Llama family as GGUF stores it: the reference the
runtime is checked against on tiny random-weight files (one per architecture).

Conventions (from llama.cpp's llama-model.cpp graph builders and gguf-py's constants):
- llama / granite / mistral: RoPE "normal" (adjacent pairs; the converter permuted Q/K so),
  qwen2: "neox" (halves) plus Q/K/V biases;
- granite: x = embd * embedding_scale; residual branches scaled by residual_scale; attention
  logits scaled by attention_scale instead of 1/sqrt(head_dim); logits divided by logit_scale;
- `{arch}.attention.sliding_window`: each query sees the last `window` positions;
- tied output head when there is no output.weight.
Reads tensors with the `gguf` package (independent of our reader) and dequantizes them with
gguf.quants.dequantize.
"""

from __future__ import annotations

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


class ReferenceModel:
    def __init__(self, path):
        r = GGUFReader(str(path))
        self.kv = {f.name: f.contents() for f in r.fields.values()}
        self.arch = self.kv["general.architecture"]
        a = self.arch
        self.n_layers = int(self.kv[f"{a}.block_count"])
        self.hidden = int(self.kv[f"{a}.embedding_length"])
        self.n_heads = int(self.kv[f"{a}.attention.head_count"])
        self.n_kv = int(self.kv.get(f"{a}.attention.head_count_kv", self.n_heads))
        self.head_dim = int(self.kv.get(f"{a}.attention.key_length", self.hidden // self.n_heads))
        self.eps = float(self.kv[f"{a}.attention.layer_norm_rms_epsilon"])
        self.theta = float(self.kv.get(f"{a}.rope.freq_base", 10000.0))
        self.rot = int(self.kv.get(f"{a}.rope.dimension_count", self.head_dim))
        self.window = int(self.kv.get(f"{a}.attention.sliding_window", 0))
        self.emb_scale = float(self.kv.get(f"{a}.embedding_scale", 1.0))
        self.res_scale = float(self.kv.get(f"{a}.residual_scale", 1.0))
        self.attn_scale = float(self.kv.get(f"{a}.attention.scale", 0.0)) or 1.0 / np.sqrt(self.head_dim)
        self.logit_scale = float(self.kv.get(f"{a}.logit_scale", 1.0))
        self.neox = a in ("qwen2",)
        self.t = {}
        for t in r.tensors:
            shape = tuple(int(d) for d in reversed(t.shape))  # numpy order (rows..., cols)
            self.t[t.name] = dequantize(np.asarray(t.data), t.tensor_type).astype(np.float64).reshape(shape)

    def rope(self, x, pos):
        """x (T, H, D) float64."""
        half = self.rot // 2
        inv = self.theta ** (-2.0 * np.arange(half) / self.rot)
        if "rope_freqs.weight" in self.t:
            inv = inv / self.t["rope_freqs.weight"]
        ang = pos[:, None].astype(np.float64) * inv[None, :]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        y = x.copy()
        if self.neox:
            a, b = x[..., :half], x[..., half : self.rot]
            y[..., :half], y[..., half : self.rot] = a * c - b * s, a * s + b * c
        else:
            a, b = x[..., 0 : self.rot : 2], x[..., 1 : self.rot : 2]
            y[..., 0 : self.rot : 2], y[..., 1 : self.rot : 2] = a * c - b * s, a * s + b * c
        return y

    def rmsnorm(self, x, w):
        return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + self.eps) * w

    def forward(self, ids):
        """Logits (T, vocab) for every position of `ids`, from an empty cache."""
        ids = np.asarray(ids)
        T = len(ids)
        pos = np.arange(T)
        x = self.t["token_embd.weight"][ids] * self.emb_scale
        H, KV, D = self.n_heads, self.n_kv, self.head_dim
        for i in range(self.n_layers):
            p = f"blk.{i}."
            h = self.rmsnorm(x, self.t[p + "attn_norm.weight"])
            q = h @ self.t[p + "attn_q.weight"].T
            k = h @ self.t[p + "attn_k.weight"].T
            v = h @ self.t[p + "attn_v.weight"].T
            if p + "attn_q.bias" in self.t:
                q, k, v = q + self.t[p + "attn_q.bias"], k + self.t[p + "attn_k.bias"], v + self.t[p + "attn_v.bias"]
            q = self.rope(q.reshape(T, H, D), pos)
            k = self.rope(k.reshape(T, KV, D), pos)
            v = v.reshape(T, KV, D)
            g = H // KV
            out = np.zeros((T, H, D))
            for hq in range(H):
                s = (q[:, hq, :] @ k[:, hq // g, :].T) * self.attn_scale  # (T, T)
                mask = pos[None, :] > pos[:, None]
                if self.window:
                    mask |= (pos[:, None] - pos[None, :]) >= self.window
                s = np.where(mask, -np.inf, s)
                s = np.exp(s - s.max(axis=1, keepdims=True))
                out[:, hq, :] = (s / s.sum(axis=1, keepdims=True)) @ v[:, hq // g, :]
            x = x + (out.reshape(T, H * D) @ self.t[p + "attn_output.weight"].T) * self.res_scale
            h = self.rmsnorm(x, self.t[p + "ffn_norm.weight"])
            gte = h @ self.t[p + "ffn_gate.weight"].T
            up = h @ self.t[p + "ffn_up.weight"].T
            x = x + ((gte / (1 + np.exp(-gte)) * up) @ self.t[p + "ffn_down.weight"].T) * self.res_scale
        x = self.rmsnorm(x, self.t["output_norm.weight"])
        w_out = self.t.get("output.weight", self.t["token_embd.weight"])
        return (x @ w_out.T) / self.logit_scale
