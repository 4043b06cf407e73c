"""The forward pass of the Llama family on slmkernels' kernels.

Python only sequences kernel calls: embedding rows, RMSNorm, one fused QKV GEMM, RoPE, KV cache
write, attention over the paged cache, output GEMM, one fused gate/up GEMM, SwiGLU, down GEMM,
residual adds (numpy, in place), final norm, output head. Weights are repacked once at load
into the interleaved layout the GEMM kernels read (Q, K, V rows stacked into one matrix, gate
and up rows into another, when their formats agree).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

import slmkernels as sk

from .config import ModelConfig
from .gguf_reader import GGUFError, GGUFReader


def _stack(reader: GGUFReader, names: list[str]):
    """One packed matrix of the rows of several same-format, same-width tensors (or None)."""
    ts = [reader.tensor(n) for n in names]
    if len({t.format for t in ts}) != 1 or len({t.shape[1] for t in ts}) != 1:
        return None
    raw = np.concatenate([np.asarray(t.data) for t in ts])
    rows = sum(t.shape[0] for t in ts)
    return sk.pack(sk.QuantizedTensor(raw, ts[0].format, (rows, ts[0].shape[1])))


def _int_array(v, name: str) -> np.ndarray:
    """v (token ids or sequence ids: an int, a sequence of ints, an integer array) as 1-D int64."""
    if v is None or isinstance(v, (str, bytes)):
        raise TypeError(f"{name} must be an int or a sequence of ints, got {type(v).__name__}")
    try:
        return np.asarray(v, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"{name} must be integers: {e}") from None


@dataclass
class _Layer:
    attn_norm: np.ndarray
    ffn_norm: np.ndarray
    qkv: object  # PackedWeights of [q; k; v] rows, or a tuple of three
    qkv_bias: np.ndarray | None
    wo: object
    gate_up: object  # PackedWeights of [gate; up], or a tuple of two
    down: object


class Model:
    """A GGUF Llama-family model (llama, qwen2, granite, sliding-window llama/mistral) ready to run.

    `Model.from_gguf(path)` maps the file, checks every tensor against the metadata, packs the
    weights and allocates a paged KV cache of `context` tokens (default: the file's context
    length, at most 4096) in `kv_dtype`."""

    def __init__(self, reader: GGUFReader, config: ModelConfig, *, context: int | None = None, kv_dtype: str = "f16",
                 max_sequences: int = 1):
        self.reader = reader
        self.config = c = config
        # the keyword arguments are checked before anything is built from the file
        for name, v in (("context", context), ("max_sequences", max_sequences)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer))):
                raise TypeError(f"{name} must be an int, got {type(v).__name__}")
        if max_sequences is None or max_sequences < 1:
            raise ValueError(f"max_sequences must be >= 1, got {max_sequences}")
        if not isinstance(kv_dtype, str):
            raise TypeError(f"kv_dtype must be a str, got {type(kv_dtype).__name__}")
        if kv_dtype.lower() not in ("f32", "f16", "q8_0", "q4_0"):
            raise ValueError(f"kv_dtype must be 'f32', 'f16', 'q8_0' or 'q4_0', got {kv_dtype!r}")
        self.context = int(context or min(c.context_length, 4096))
        if self.context < 1:
            raise ValueError("context must be >= 1")
        self.tok_embd = reader.tensor("token_embd.weight")
        self.layers: list[_Layer] = []
        for i in range(c.n_layers):
            p = f"blk.{i}."
            qkv = _stack(reader, [p + "attn_q.weight", p + "attn_k.weight", p + "attn_v.weight"])
            if qkv is None:
                qkv = tuple(sk.pack(reader.tensor(p + n)) for n in ("attn_q.weight", "attn_k.weight", "attn_v.weight"))
            gu = _stack(reader, [p + "ffn_gate.weight", p + "ffn_up.weight"])
            if gu is None:
                gu = (sk.pack(reader.tensor(p + "ffn_gate.weight")), sk.pack(reader.tensor(p + "ffn_up.weight")))
            bias = None
            if c.qkv_bias:
                bias = np.concatenate([reader.tensor_f32(p + n) for n in ("attn_q.bias", "attn_k.bias", "attn_v.bias")])
            self.layers.append(_Layer(
                attn_norm=reader.tensor_f32(p + "attn_norm.weight"),
                ffn_norm=reader.tensor_f32(p + "ffn_norm.weight"),
                qkv=qkv, qkv_bias=bias,
                wo=sk.pack(reader.tensor(p + "attn_output.weight")),
                gate_up=gu,
                down=sk.pack(reader.tensor(p + "ffn_down.weight")),
            ))
        self.out_norm = reader.tensor_f32("output_norm.weight")
        self.head = sk.pack(self.tok_embd if c.tied_embeddings else reader.tensor("output.weight"))
        self.rope_mode = "neox" if c.rope_type == "neox" else "normal"
        self.rope_scaling = None
        if c.rope_scaling_type == "linear":
            self.rope_scaling = {"type": "linear", "factor": c.rope_scaling_factor}
        elif c.rope_scaling_type == "yarn":
            self.rope_scaling = {"type": "yarn", "factor": c.rope_scaling_factor,
                                 "original_context": c.rope_original_context or c.context_length}
        self.freq_factors = reader.tensor_f32("rope_freqs.weight") if "rope_freqs.weight" in reader.tensors else None
        # Sliding-window layers keep only their window in the cache (extend frees what no query
        # of the new chunk can see); attention applies the window.
        self.window = c.sliding_window or None
        self.cache = sk.KVCache(c.n_layers, c.n_kv_heads, c.head_dim, capacity_tokens=self.context * max_sequences,
                                dtype=kv_dtype, layer_windows=[self.window] * c.n_layers)
        self._tokenizer = None
        self._cpp = self._build_cpp()

    def _build_cpp(self):
        """The same step sequenced in C++ (one call per step instead of ~13 per layer)."""
        from slmkernels import _core

        c = self.config
        rs = self.rope_scaling or {}
        rope = dict(theta=c.rope_base, rotary_dim=c.rope_dim, mode=self.rope_mode,
                    freq_scale=1.0 / rs["factor"] if rs.get("type") in ("linear", "yarn") else 1.0,
                    ext_factor=1.0 if rs.get("type") == "yarn" else 0.0, attn_factor=1.0, beta_fast=32.0,
                    beta_slow=1.0, original_context=float(rs.get("original_context", 0)),
                    freq_factors=self.freq_factors)
        as_list = lambda w: list(w) if isinstance(w, tuple) else [w]  # noqa: E731
        layers = [dict(attn_norm=L.attn_norm, ffn_norm=L.ffn_norm, qkv_bias=L.qkv_bias, qkv=as_list(L.qkv), wo=L.wo,
                       gate_up=as_list(L.gate_up), down=L.down) for L in self.layers]
        cfg = dict(n_heads=c.n_heads, n_kv_heads=c.n_kv_heads, head_dim=c.head_dim, hidden=c.hidden, ffn=c.ffn,
                   vocab=c.vocab, eps=c.rms_norm_eps, embedding_scale=c.embedding_scale,
                   residual_scale=c.residual_scale, attention_scale=c.attention_scale, logit_scale=c.logit_scale,
                   window=self.window or 0)
        return _core.Transformer(cfg, layers, self.out_norm, self.head, self.tok_embd, rope)

    @classmethod
    def from_gguf(cls, path: str | os.PathLike[str], **kw) -> "Model":
        reader = GGUFReader(path)
        try:
            if cls is Model and reader.metadata.get("general.architecture") == "granitehybrid":
                from .hybrid import HybridModel  # Mamba-2 + attention layers

                return HybridModel.from_reader(reader, **kw)
            config = ModelConfig.from_gguf(reader)
            return cls(reader, config, **kw)
        except BaseException:
            try:
                reader.close()
            except BufferError:
                pass  # tensor views (held by the traceback) still map the file; it goes with them
            raise

    # ---- the forward pass ----
    def _proj(self, w, x):
        if isinstance(w, tuple):
            return np.concatenate([sk.matmul(x, wi) for wi in w], axis=1)
        return sk.matmul(x, w)

    def forward(self, seq: int, ids, *, all_logits: bool = False) -> np.ndarray:
        """Runs `ids` (new tokens of sequence `seq`) through the model, appending to its cache.
        Returns the logits of the last token (vocab,), or of every token (T, vocab)."""
        ids = self._check(seq, ids)
        return self._cpp.forward(self.cache, seq, ids, all_logits)

    def forward_batch(self, seqs, ids) -> np.ndarray:
        """Decodes one new token for each of several sequences in one step (the GEMMs run on all
        rows at once). Returns (len(seqs), vocab); row i is the same bits as forward(seqs[i],
        [ids[i]]) alone. All sequences advance, or none does."""
        seqs = _int_array(seqs, "seqs")
        ids = _int_array(ids, "ids")
        for s in seqs:
            if self.cache.length(int(s)) + 1 > self.context:
                raise ValueError(f"sequence {int(s)} is at the context of {self.context} tokens")
        return self._cpp.forward_batch(self.cache, seqs, ids)

    def _check(self, seq: int, ids) -> np.ndarray:
        c = self.config
        ids = _int_array(ids, "ids")
        if len(ids) == 0:
            raise ValueError("ids must not be empty")
        if ids.min() < 0 or ids.max() >= c.vocab:
            raise ValueError(f"token ids must be in 0..{c.vocab - 1}")
        if self.cache.length(seq) + len(ids) > self.context:
            raise ValueError(f"sequence {seq} would reach {self.cache.length(seq) + len(ids)} tokens, "
                             f"past the context of {self.context}")
        return ids

    def forward_python(self, seq: int, ids, *, all_logits: bool = False) -> np.ndarray:
        """The same step sequenced call by call from Python (the readable spec of forward;
        the tests check both give the same bits)."""
        c = self.config
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        T = len(ids)
        if T == 0:
            raise ValueError("ids must not be empty")
        if ids.min() < 0 or ids.max() >= c.vocab:
            raise ValueError(f"token ids must be in 0..{c.vocab - 1}")
        pos0 = self.cache.length(seq)
        if pos0 + T > self.context:
            raise ValueError(f"sequence {seq} would reach {pos0 + T} tokens, past the context of {self.context}")
        self.cache.extend(seq, T)
        positions = np.arange(pos0, pos0 + T, dtype=np.int64)
        H, KV, D = c.n_heads, c.n_kv_heads, c.head_dim
        x = sk.embedding(self.tok_embd, ids)
        if c.embedding_scale != 1.0:
            x *= np.float32(c.embedding_scale)
        h = np.empty_like(x)
        rope_kw = dict(theta=c.rope_base, mode=self.rope_mode, rotary_dim=c.rope_dim, scaling=self.rope_scaling,
                       freq_factors=self.freq_factors)
        res = np.float32(c.residual_scale)
        for li, L in enumerate(self.layers):
            sk.rmsnorm(x, L.attn_norm, c.rms_norm_eps, out=h)
            qkv = self._proj(L.qkv, h)
            if L.qkv_bias is not None:
                qkv += L.qkv_bias
            q = np.ascontiguousarray(qkv[:, : H * D]).reshape(T, H, D)
            k = np.ascontiguousarray(qkv[:, H * D : (H + KV) * D]).reshape(T, KV, D)
            v = np.ascontiguousarray(qkv[:, (H + KV) * D :]).reshape(T, KV, D)
            sk.rope(q, positions, out=q, **rope_kw)
            sk.rope(k, positions, out=k, **rope_kw)
            self.cache.write(li, seq, k, v)
            o = sk.attention(q, self.cache, li, seq, scale=c.attention_scale, window=self.window)
            a = sk.matmul(o.reshape(T, H * D), L.wo)
            if res != 1.0:
                a *= res
            x += a
            sk.rmsnorm(x, L.ffn_norm, c.rms_norm_eps, out=h)
            gu = self._proj(L.gate_up, h)
            f = sk.swiglu(gu[:, : c.ffn], gu[:, c.ffn :])
            d = sk.matmul(f, L.down)
            if res != 1.0:
                d *= res
            x += d
        last = x if all_logits else x[-1:]
        last = sk.rmsnorm(np.ascontiguousarray(last), self.out_norm, c.rms_norm_eps)
        logits = sk.matmul(last, self.head)
        if c.logit_scale != 1.0:
            logits /= np.float32(c.logit_scale)
        return logits if all_logits else logits[0]

    def new_sequence(self) -> int:
        return self.cache.new_sequence()

    def free(self, seq: int) -> None:
        self.cache.free(seq)


# ---- text generation (slmkernels/model/generate.py) ----
from .generate import GenerationStats, Token, chat as _chat, evicting as _evicting, generate as _generate, sample, tokenizer as _tokenizer  # noqa: E402,F401,E501

Model.forward = _evicting(Model.forward)  # cached prefixes give way to a step that needs their blocks
Model.forward_batch = _evicting(Model.forward_batch)
Model.tokenizer = property(_tokenizer)
Model.generate = _generate
Model.chat = _chat


def _from_pretrained(cls, directory, **kw) -> "Model":
    """A model from a Hugging Face checkpoint directory (config.json, *.safetensors, tokenizer.json):
    see slmkernels.model.hf (dtype= the format 2-D weights are quantized to, save_gguf= a path to
    keep the converted GGUF file at; the other keywords as from_gguf)."""
    from .hf import from_pretrained

    return from_pretrained(directory, **kw)


Model.from_pretrained = classmethod(_from_pretrained)
