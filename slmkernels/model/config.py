"""Model hyperparameters from GGUF metadata, type- and range-checked, cross-checked with tensor shapes.

Keys are llama.cpp's (gguf-py ``gguf.constants.Keys``), prefixed by ``general.architecture``.
Supported: ``llama`` (SmolLM2, TinyLlama, Llama 3.x; Mistral is stored as ``llama`` with an
optional ``llama.attention.sliding_window``), ``mistral`` (same layout), ``qwen2`` (Q/K/V
biases, NeoX rope), ``granite`` (embedding / residual / attention / logit multipliers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .gguf_reader import FLOAT_TYPES, INTEGER_TYPES, GGUFError, GGUFReader, GGUFValueType

__all__ = ["ModelConfig", "SUPPORTED_ARCHITECTURES"]

# architecture -> rope pairing. "norm": rotate adjacent pairs (x[2i], x[2i+1]) as llama.cpp's
# LLAMA_ROPE_TYPE_NORM; "neox": rotate (x[i], x[i + d/2]) as LLAMA_ROPE_TYPE_NEOX (llama-model.cpp,
# llama_model_rope_type).
SUPPORTED_ARCHITECTURES = {"llama": "norm", "mistral": "norm", "granite": "norm", "qwen2": "neox"}

# Range limits: far above every model this package targets (and above e.g. Llama-3-405B:
# 126 layers, hidden 16384, 128 heads, vocab 128256), low enough that a hostile file cannot ask
# for absurd allocations through them.
MAX_LAYERS = 1024
MAX_HIDDEN = 1 << 16
MAX_HEADS = 1024
MAX_HEAD_DIM = 1024
MAX_FFN = 1 << 20
MAX_VOCAB = 1 << 22
MAX_CONTEXT = 1 << 24
ROPE_SCALING_TYPES = ("none", "linear", "yarn")


@dataclass(frozen=True)
class ModelConfig:
    architecture: str
    n_layers: int
    hidden: int  # embedding length
    n_heads: int
    n_kv_heads: int
    head_dim: int
    ffn: int  # feed-forward (SwiGLU) inner size
    vocab: int
    rms_norm_eps: float
    context_length: int
    rope_base: float
    rope_dim: int  # rotated dims per head (<= head_dim)
    rope_type: str  # "norm" (adjacent pairs) or "neox" (halves)
    rope_scaling_type: str = "none"
    rope_scaling_factor: float = 1.0
    rope_original_context: int = 0
    tied_embeddings: bool = False  # no output.weight: the head reuses token_embd.weight
    sliding_window: int = 0  # 0 = full attention
    qkv_bias: bool = False  # qwen2: attn_{q,k,v}.bias present
    # granite multipliers (1.0 elsewhere); attention_scale is the effective q.k scale
    embedding_scale: float = 1.0  # x = embed(tokens) * embedding_scale
    residual_scale: float = 1.0  # x = x + residual_scale * block(x)
    attention_scale: float = 0.0  # scores = q.k * attention_scale (1/sqrt(head_dim) unless set)
    logit_scale: float = 1.0  # logits = head(x) / logit_scale
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def q_dim(self) -> int:
        return self.n_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_dim

    @classmethod
    def from_gguf(cls, reader: GGUFReader) -> "ModelConfig":
        m = _Meta(reader)
        arch = m.str("general.architecture")
        if arch not in SUPPORTED_ARCHITECTURES:
            raise GGUFError(
                f"unsupported architecture {arch!r} (supported: {', '.join(sorted(SUPPORTED_ARCHITECTURES))})"
            )
        a = arch + "."
        n_layers = m.int(a + "block_count", 1, MAX_LAYERS)
        hidden = m.int(a + "embedding_length", 1, MAX_HIDDEN)
        ffn = m.int(a + "feed_forward_length", 1, MAX_FFN)
        n_heads = m.int(a + "attention.head_count", 1, MAX_HEADS)
        n_kv = m.int(a + "attention.head_count_kv", 1, MAX_HEADS, default=n_heads)
        if n_heads % n_kv:
            raise GGUFError(
                f"{a}attention.head_count {n_heads} is not a multiple of {a}attention.head_count_kv {n_kv}"
            )
        head_dim_default = hidden // n_heads if hidden % n_heads == 0 else None
        head_dim = m.int(a + "attention.key_length", 1, MAX_HEAD_DIM, default=head_dim_default)
        if head_dim is None:
            raise GGUFError(
                f"{a}embedding_length {hidden} is not a multiple of {a}attention.head_count {n_heads} "
                f"and {a}attention.key_length is absent"
            )
        v_dim = m.int(a + "attention.value_length", 1, MAX_HEAD_DIM, default=head_dim)
        if v_dim != head_dim:
            raise GGUFError(f"{a}attention.value_length {v_dim} differs from key_length {head_dim}: unsupported")
        eps = m.float(a + "attention.layer_norm_rms_epsilon", 0.0, 1.0, open_lo=True)
        ctx = m.int(a + "context_length", 1, MAX_CONTEXT)
        rope_base = m.float(a + "rope.freq_base", 0.0, 1e12, open_lo=True, default=10000.0)
        rope_dim = m.int(a + "rope.dimension_count", 2, head_dim, default=head_dim)
        if rope_dim % 2:
            raise GGUFError(f"{a}rope.dimension_count {rope_dim} is odd")
        scaling = m.str(a + "rope.scaling.type", default="none")
        if scaling not in ROPE_SCALING_TYPES:
            raise GGUFError(f"{a}rope.scaling.type {scaling!r} unsupported (supported: {', '.join(ROPE_SCALING_TYPES)})")
        factor = m.float(a + "rope.scaling.factor", 0.0, 1e6, open_lo=True, default=1.0)
        orig_ctx = m.int(a + "rope.scaling.original_context_length", 1, MAX_CONTEXT, default=0)
        window = m.int(a + "attention.sliding_window", 0, MAX_CONTEXT, default=0)

        tensors = reader.tensors
        vocab_default = None
        if "token_embd.weight" in tensors and len(tensors["token_embd.weight"].dims) == 2:
            vocab_default = tensors["token_embd.weight"].dims[1]
        tokens = reader.metadata.get("tokenizer.ggml.tokens")
        if isinstance(tokens, list):
            vocab_default = len(tokens)
        vocab = m.int(a + "vocab_size", 1, MAX_VOCAB, default=vocab_default)
        if vocab is None:
            raise GGUFError(f"cannot tell the vocabulary size: no {a}vocab_size, tokens or token_embd.weight")

        granite = arch == "granite"
        emb_scale = m.float(a + "embedding_scale", 0.0, 1e6, open_lo=True, default=1.0) if granite else 1.0
        res_scale = m.float(a + "residual_scale", 0.0, 1e6, open_lo=True, default=1.0) if granite else 1.0
        att_scale = m.float(a + "attention.scale", 0.0, 1e6, default=0.0) if granite else 0.0
        logit_scale = m.float(a + "logit_scale", 0.0, 1e6, open_lo=True, default=1.0) if granite else 1.0
        if att_scale == 0.0:
            att_scale = 1.0 / math.sqrt(head_dim)

        cfg = cls(
            architecture=arch,
            n_layers=n_layers,
            hidden=hidden,
            n_heads=n_heads,
            n_kv_heads=n_kv,
            head_dim=head_dim,
            ffn=ffn,
            vocab=vocab,
            rms_norm_eps=eps,
            context_length=ctx,
            rope_base=rope_base,
            rope_dim=rope_dim,
            rope_type=SUPPORTED_ARCHITECTURES[arch],
            rope_scaling_type=scaling,
            rope_scaling_factor=factor,
            rope_original_context=orig_ctx,
            tied_embeddings="output.weight" not in tensors,
            sliding_window=window,
            qkv_bias="blk.0.attn_q.bias" in tensors,
            embedding_scale=emb_scale,
            residual_scale=res_scale,
            attention_scale=att_scale,
            logit_scale=logit_scale,
        )
        cfg.check_tensors(reader)
        return cfg

    def expected_tensors(self) -> dict[str, tuple[int, ...]]:
        """name -> dims (ggml order) of every tensor the forward pass reads."""
        h, q, kv, f = self.hidden, self.q_dim, self.kv_dim, self.ffn
        out: dict[str, tuple[int, ...]] = {
            "token_embd.weight": (h, self.vocab),
            "output_norm.weight": (h,),
        }
        if not self.tied_embeddings:
            out["output.weight"] = (h, self.vocab)
        for i in range(self.n_layers):
            b = f"blk.{i}."
            out[b + "attn_norm.weight"] = (h,)
            out[b + "attn_q.weight"] = (h, q)
            out[b + "attn_k.weight"] = (h, kv)
            out[b + "attn_v.weight"] = (h, kv)
            out[b + "attn_output.weight"] = (q, h)
            out[b + "ffn_norm.weight"] = (h,)
            out[b + "ffn_gate.weight"] = (h, f)
            out[b + "ffn_up.weight"] = (h, f)
            out[b + "ffn_down.weight"] = (f, h)
            if self.qkv_bias:
                out[b + "attn_q.bias"] = (q,)
                out[b + "attn_k.bias"] = (kv,)
                out[b + "attn_v.bias"] = (kv,)
        return out

    def check_tensors(self, reader: GGUFReader) -> None:
        """Every expected tensor is present with the shape the metadata implies."""
        for name, dims in self.expected_tensors().items():
            t = reader.tensors.get(name)
            if t is None:
                raise GGUFError(f"tensor {name!r} is missing (architecture {self.architecture})")
            if t.dims != dims:
                raise GGUFError(
                    f"tensor {name!r} has dims {list(t.dims)}, but the metadata implies {list(dims)}"
                )
        # A layer beyond block_count means the metadata and the tensors disagree.
        extra = f"blk.{self.n_layers}.attn_norm.weight"
        if extra in reader.tensors:
            raise GGUFError(f"tensor {extra!r} exists but block_count is {self.n_layers}")


class _Meta:
    """Typed, range-checked metadata getters whose errors name the key."""

    def __init__(self, reader: GGUFReader) -> None:
        self.md = reader.metadata
        self.types = reader.metadata_types

    def _type(self, key: str) -> str:
        t = self.types[key]
        if isinstance(t, tuple):
            return "ARRAY of " + GGUFValueType(t[1]).name
        return GGUFValueType(t).name

    def int(self, key: str, lo: int, hi: int, default: Any = ...) -> Any:
        if key not in self.md:
            if default is ...:
                raise GGUFError(f"required metadata {key!r} is missing")
            return default
        if self.types[key] not in INTEGER_TYPES:
            raise GGUFError(f"metadata {key!r} must be an integer, got {self._type(key)} {self.md[key]!r:.60}")
        v = self.md[key]
        if not lo <= v <= hi:
            raise GGUFError(f"metadata {key!r} = {v} is out of range [{lo}, {hi}]")
        return v

    def float(self, key: str, lo: float, hi: float, *, open_lo: bool = False, default: Any = ...) -> Any:
        if key not in self.md:
            if default is ...:
                raise GGUFError(f"required metadata {key!r} is missing")
            return default
        t = self.types[key]
        if t not in FLOAT_TYPES and t not in INTEGER_TYPES:
            raise GGUFError(f"metadata {key!r} must be a number, got {self._type(key)} {self.md[key]!r:.60}")
        v = float(self.md[key])
        if not math.isfinite(v) or v < lo or v > hi or (open_lo and v == lo):
            lb = "(" if open_lo else "["
            raise GGUFError(f"metadata {key!r} = {v} is out of range {lb}{lo}, {hi}]")
        return v

    def str(self, key: str, default: Any = ...) -> Any:
        if key not in self.md:
            if default is ...:
                raise GGUFError(f"required metadata {key!r} is missing")
            return default
        if self.types[key] != GGUFValueType.STRING:
            raise GGUFError(f"metadata {key!r} must be a string, got {self._type(key)}")
        return self.md[key]
