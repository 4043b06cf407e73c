"""A float64 forward pass of a GGUF Llama-family model over its dequantized weights: the
reference every implementation's logits are compared with by ``slmkernels eval``.

It is the model as the file defines it, with no quantized activations, no float16 KV cache and
no float32 rounding: what the weights compute in exact arithmetic (to float64's precision).
Conventions are llama.cpp's graph builders (llama-model.cpp): RMSNorm, RoPE "normal"
(adjacent pairs) for llama/mistral/granite and "neox" (halves) for qwen2, Q/K/V biases when the
file has them, granite's embedding / residual / attention / logit multipliers, a sliding window
when the file sets one, the tied head when there is no output.weight.

Weights are dequantized once (``slmkernels.dequantize``, bit-identical to the gguf package) and
kept as float32 (dequantized values are float32 by the format definitions, so nothing is lost);
each matrix is widened to float64 only while it is used, so the resident cost is 4 bytes per
weight. ``max_resident_bytes`` bounds that: above it, layers are dequantized again for every
chunk instead of kept.
"""

from __future__ import annotations

import numpy as np

import slmkernels as sk
from slmkernels.model.config import ModelConfig
from slmkernels.model.gguf_reader import GGUFReader

_LAYER_TENSORS = ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up",
                  "ffn_down")
_BIASES = ("attn_q.bias", "attn_k.bias", "attn_v.bias")


class ReferenceModel:
    ARCHITECTURES = ("llama", "mistral", "qwen2", "granite")

    def __init__(self, reader: GGUFReader, config: ModelConfig, max_resident_bytes: int = 4 << 30):
        c = config
        if c.architecture not in self.ARCHITECTURES:
            raise ValueError(f"the float64 reference implements {', '.join(self.ARCHITECTURES)}, not {c.architecture!r}")
        if c.rope_scaling_type not in ("none", "linear"):
            raise ValueError(f"the float64 reference does not implement {c.rope_scaling_type!r} rope scaling")
        for L in c.layers:
            if (len(L.qkv) != 3 or len(L.gate_up) != 2 or L.q_norm or L.k_norm or L.wo_bias or L.post_attention_norm
                    or any(L.gate_up_bias) or L.down_bias or L.post_ffn_norm):
                raise ValueError("the float64 reference implements separate q/k/v and gate/up matrices with "
                                 "optional q/k/v biases only")
        if c.head_bias or c.final_logit_softcap:
            raise ValueError("the float64 reference implements no output bias or logit soft-capping")
        self.reader, self.c = reader, c
        weight_bytes = sum(4 * t.n_elements for t in reader)
        self.keep = weight_bytes <= max_resident_bytes
        self._cache: dict[int, dict] = {}
        # RoPE inverse frequencies (llama.cpp ggml_rope: theta_i = pos * freq_scale * base^(-2i/d) / factor_i)
        half = c.rope_dim // 2
        inv = c.rope_base ** (-2.0 * np.arange(half, dtype=np.float64) / c.rope_dim)
        if "rope_freqs.weight" in reader.tensors:
            inv = inv / reader.tensor_f32("rope_freqs.weight").astype(np.float64)
        if c.rope_scaling_type == "linear":
            inv = inv / c.rope_scaling_factor
        self.inv_freq = inv
        self.attn_scale = c.attention_scale or 1.0 / np.sqrt(c.head_dim)
        self.embd = reader.tensor("token_embd.weight")
        self.out_norm = reader.tensor_f32("output_norm.weight").astype(np.float64)
        self.head_name = "token_embd.weight" if c.tied_embeddings else "output.weight"
        self._head = None

    def _matrix(self, name: str) -> np.ndarray:
        return sk.dequantize(self.reader.tensor(name))  # float32 (rows, cols)

    def _layer(self, i: int) -> dict:
        if i in self._cache:
            return self._cache[i]
        p = f"blk.{i}."
        L = {n: self._matrix(p + n + ".weight") for n in _LAYER_TENSORS if not n.endswith("norm")}
        L["attn_norm"] = self.reader.tensor_f32(p + "attn_norm.weight").astype(np.float64)
        L["ffn_norm"] = self.reader.tensor_f32(p + "ffn_norm.weight").astype(np.float64)
        for b in _BIASES:
            if p + b in self.reader.tensors:
                L[b] = self.reader.tensor_f32(p + b).astype(np.float64)
        if self.keep:
            self._cache[i] = L
        return L

    def _head_matrix(self) -> np.ndarray:
        if self._head is not None:
            return self._head
        h = self._matrix(self.head_name)
        if self.keep:
            self._head = h
        return h

    def rmsnorm(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + self.c.rms_norm_eps) * w

    def rope(self, x: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """x (T, H, D) float64, rotated in place of the first rope_dim dims."""
        c = self.c
        half = c.rope_dim // 2
        ang = pos[:, None].astype(np.float64) * self.inv_freq[None, :]
        cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        y = x.copy()
        if c.rope_type == "neox":
            a, b = x[..., :half], x[..., half : c.rope_dim]
            y[..., :half], y[..., half : c.rope_dim] = a * cos - b * sin, a * sin + b * cos
        else:
            a, b = x[..., 0 : c.rope_dim : 2], x[..., 1 : c.rope_dim : 2]
            y[..., 0 : c.rope_dim : 2], y[..., 1 : c.rope_dim : 2] = a * cos - b * sin, a * sin + b * cos
        return y

    @staticmethod
    def _mm(x: np.ndarray, w32: np.ndarray) -> np.ndarray:
        return x @ w32.astype(np.float64).T

    def forward(self, ids, rows: slice | None = None) -> np.ndarray:
        """float64 logits (T', vocab) of the positions `rows` (default: all) of `ids` run from an
        empty cache (positions 0..T-1)."""
        c = self.c
        ids = np.asarray(ids, dtype=np.int64)
        T = len(ids)
        pos = np.arange(T)
        x = sk.embedding(self.embd, ids).astype(np.float64) * c.embedding_scale
        H, KV, D = c.n_heads, c.n_kv_heads, c.head_dim
        g = H // KV
        mask = pos[None, :] > pos[:, None]
        if c.sliding_window:
            mask |= (pos[:, None] - pos[None, :]) >= c.sliding_window
        for i in range(c.n_layers):
            L = self._layer(i)
            h = self.rmsnorm(x, L["attn_norm"])
            q, k, v = self._mm(h, L["attn_q"]), self._mm(h, L["attn_k"]), self._mm(h, L["attn_v"])
            if "attn_q.bias" in L:
                q, k, v = q + L["attn_q.bias"], k + L["attn_k.bias"], v + L["attn_v.bias"]
            q = self.rope(q.reshape(T, H, D), pos)
            k = self.rope(k.reshape(T, KV, D), pos)
            v = v.reshape(T, KV, D)
            out = np.empty((T, H, D))
            for hq in range(H):
                s = (q[:, hq, :] @ k[:, hq // g, :].T) * self.attn_scale
                s = np.where(mask, -np.inf, s)
                s = np.exp(s - s.max(axis=1, keepdims=True))
                out[:, hq, :] = (s / s.sum(axis=1, keepdims=True)) @ v[:, hq // g, :]
            x = x + self._mm(out.reshape(T, H * D), L["attn_output"]) * c.residual_scale
            h = self.rmsnorm(x, L["ffn_norm"])
            gate, up = self._mm(h, L["ffn_gate"]), self._mm(h, L["ffn_up"])
            x = x + self._mm(gate / (1.0 + np.exp(-gate)) * up, L["ffn_down"]) * c.residual_scale
        x = x[rows] if rows is not None else x
        x = self.rmsnorm(x, self.out_norm)
        return self._mm(x, self._head_matrix()) / c.logit_scale
