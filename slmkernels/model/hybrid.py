"""Hybrid Mamba-2 + attention decoders: ``granitehybrid`` as llama.cpp names it (IBM Granite 4.0
H-Micro / H-1B / H-350M: dense SwiGLU FFN; Bamba-style).

Each layer is one of two kinds, told apart in the GGUF metadata as llama.cpp does
(src/models/granite-hybrid.cpp): ``attention.head_count_kv`` is an array with 0 for a Mamba-2
layer. Layer = RMSNorm -> (attention without RoPE | Mamba-2 mixer) -> x += residual_scale * out
-> RMSNorm -> SwiGLU FFN -> x += residual_scale * out. Granite's multipliers: embeddings times
embedding_scale, q.k times attention_scale, logits divided by logit_scale. RoPE only when
``rope.scaling.finetuned`` is true (the converter sets it for Bamba and all-attention files);
Granite 4.0 H files have none.

The KV cache holds only the attention layers; each sequence's Mamba-2 state (conv window + SSM
state per Mamba layer) is the cache's recurrent state (see KVCache). The Mamba mixer runs in
C++ (``_core.Mamba2Mixer``); the rest of the step is sequenced from Python over the same kernels.
Snapshots of the recurrent state are kept after every prompt (a forward call of more than one
token) and every ``snapshot_interval`` decoded positions, so generation's prefix reuse and
``truncate`` can go back to those positions.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

import slmkernels as sk
from slmkernels import _core

from .config import MAX_CONTEXT, MAX_FFN, MAX_HEAD_DIM, MAX_HEADS, MAX_HIDDEN, MAX_LAYERS, MAX_VOCAB, _Meta
from .generate import evicting
from .gguf_reader import GGUFError, GGUFReader
from .runtime import Model, _int_array, _stack

MAX_STATE = 1024  # d_state, head_dim of the SSM heads: far above Mamba-2's 64/128
MAX_CONV = 64


@dataclass(frozen=True)
class HybridConfig:
    architecture: str
    n_layers: int
    hidden: int
    ffn: int
    vocab: int
    rms_norm_eps: float
    context_length: int
    n_heads: int  # attention layers
    n_kv_heads: int
    head_dim: int
    layer_kinds: tuple  # "attention" or "mamba2" per layer
    ssm_heads: int
    ssm_head_dim: int
    ssm_state: int
    ssm_groups: int
    ssm_conv: int
    embedding_scale: float = 1.0
    residual_scale: float = 1.0
    attention_scale: float = 0.0  # 0: 1/sqrt(head_dim)
    logit_scale: float = 1.0
    tied_embeddings: bool = False

    @property
    def ssm_inner(self) -> int:
        return self.ssm_heads * self.ssm_head_dim

    @classmethod
    def from_gguf(cls, reader: GGUFReader) -> "HybridConfig":
        m = _Meta(reader)
        arch = m.str("general.architecture")
        a = arch + "."
        n_layers = m.int(a + "block_count", 1, MAX_LAYERS)
        hidden = m.int(a + "embedding_length", 1, MAX_HIDDEN)
        ffn = m.int(a + "feed_forward_length", 1, MAX_FFN)
        n_heads = m.int(a + "attention.head_count", 1, MAX_HEADS)
        kv_key = a + "attention.head_count_kv"
        kv = reader.metadata.get(kv_key)
        if isinstance(kv, np.ndarray) and kv.ndim == 1 and kv.dtype.kind in "iu":
            kv = [int(v) for v in kv]
        if not isinstance(kv, list) or len(kv) != n_layers or not all(isinstance(v, int) for v in kv):
            raise GGUFError(f"metadata {kv_key!r} must be an array of {n_layers} integers (0 marks a Mamba-2 layer)")
        kv_heads = sorted({v for v in kv if v})
        if not kv_heads:
            raise GGUFError(f"metadata {kv_key!r} marks no attention layer: a model of Mamba-2 layers only is "
                            "not supported")
        if len(kv_heads) > 1 or not 1 <= kv_heads[0] <= n_heads or n_heads % kv_heads[0]:
            raise GGUFError(f"metadata {kv_key!r} = {kv} must hold one KV head count dividing "
                            f"{a}attention.head_count {n_heads}")
        head_dim = m.int(a + "attention.key_length", 1, MAX_HEAD_DIM,
                         default=hidden // n_heads if hidden % n_heads == 0 else None)
        if head_dim is None:
            raise GGUFError(f"{a}embedding_length {hidden} is not a multiple of {a}attention.head_count {n_heads}")
        if m.int(a + "attention.value_length", 1, MAX_HEAD_DIM, default=head_dim) != head_dim:
            raise GGUFError(f"{a}attention.value_length differs from key_length: unsupported")
        if reader.metadata.get(a + "rope.scaling.finetuned", True) is not False:
            raise GGUFError(f"metadata {a + 'rope.scaling.finetuned'!r} is absent or true: attention layers with "
                            "RoPE (Bamba-style) are not supported by granitehybrid here; Granite 4.0 H files set it "
                            "false")
        if reader.metadata.get(a + "expert_count", 0):
            raise GGUFError(f"metadata {a + 'expert_count'!r} is set: Mixture-of-Experts FFNs (Granite 4.0 H-Tiny, "
                            "H-Small) are not supported")
        d_inner = m.int(a + "ssm.inner_size", 1, MAX_HIDDEN * 4)
        ssm_heads = m.int(a + "ssm.time_step_rank", 1, MAX_HEADS * 16)
        if d_inner % ssm_heads:
            raise GGUFError(f"{a}ssm.inner_size {d_inner} is not a multiple of {a}ssm.time_step_rank {ssm_heads}")
        ssm_head_dim = d_inner // ssm_heads
        if ssm_head_dim > MAX_STATE:
            raise GGUFError(f"SSM head_dim {ssm_head_dim} (ssm.inner_size / ssm.time_step_rank) exceeds {MAX_STATE}")
        ssm_state = m.int(a + "ssm.state_size", 1, MAX_STATE)
        ssm_groups = m.int(a + "ssm.group_count", 1, ssm_heads)
        if ssm_heads % ssm_groups:
            raise GGUFError(f"{a}ssm.time_step_rank {ssm_heads} is not a multiple of {a}ssm.group_count {ssm_groups}")
        ssm_conv = m.int(a + "ssm.conv_kernel", 2, MAX_CONV)
        vocab = reader.tensors["token_embd.weight"].dims[1] if "token_embd.weight" in reader.tensors else 0
        tokens = reader.metadata.get("tokenizer.ggml.tokens")
        if isinstance(tokens, list):
            vocab = len(tokens)
        if not 1 <= vocab <= MAX_VOCAB:
            raise GGUFError(f"vocabulary size {vocab} is out of range [1, {MAX_VOCAB}]")
        cfg = cls(
            architecture=arch, n_layers=n_layers, hidden=hidden, ffn=ffn, vocab=vocab,
            rms_norm_eps=m.float(a + "attention.layer_norm_rms_epsilon", 0.0, 1.0, open_lo=True),
            context_length=m.int(a + "context_length", 1, MAX_CONTEXT),
            n_heads=n_heads, n_kv_heads=kv_heads[0], head_dim=head_dim,
            layer_kinds=tuple("attention" if v else "mamba2" for v in kv),
            ssm_heads=ssm_heads, ssm_head_dim=ssm_head_dim, ssm_state=ssm_state, ssm_groups=ssm_groups,
            ssm_conv=ssm_conv,
            embedding_scale=m.float(a + "embedding_scale", 0.0, 1e6, open_lo=True, default=1.0),
            residual_scale=m.float(a + "residual_scale", 0.0, 1e6, open_lo=True, default=1.0),
            attention_scale=m.float(a + "attention.scale", 0.0, 1e6, default=0.0),
            logit_scale=m.float(a + "logit_scale", 0.0, 1e6, open_lo=True, default=1.0),
            tied_embeddings="output.weight" not in reader.tensors,
        )
        cfg.check_tensors(reader)
        return cfg

    def expected_tensors(self) -> dict[str, tuple[int, ...]]:
        """Name -> (rows, cols) as numpy sees them (GGUF dims reversed)."""
        d = self.ssm_inner
        conv_dim = d + 2 * self.ssm_groups * self.ssm_state
        t = {"token_embd.weight": (self.vocab, self.hidden), "output_norm.weight": (self.hidden,)}
        if not self.tied_embeddings:
            t["output.weight"] = (self.vocab, self.hidden)
        for i, kind in enumerate(self.layer_kinds):
            p = f"blk.{i}."
            t[p + "attn_norm.weight"] = (self.hidden,)
            t[p + "ffn_norm.weight"] = (self.hidden,)
            t[p + "ffn_gate.weight"] = (self.ffn, self.hidden)
            t[p + "ffn_up.weight"] = (self.ffn, self.hidden)
            t[p + "ffn_down.weight"] = (self.hidden, self.ffn)
            if kind == "attention":
                t[p + "attn_q.weight"] = (self.n_heads * self.head_dim, self.hidden)
                t[p + "attn_k.weight"] = (self.n_kv_heads * self.head_dim, self.hidden)
                t[p + "attn_v.weight"] = (self.n_kv_heads * self.head_dim, self.hidden)
                t[p + "attn_output.weight"] = (self.hidden, self.n_heads * self.head_dim)
            else:
                t[p + "ssm_in.weight"] = (2 * d + 2 * self.ssm_groups * self.ssm_state + self.ssm_heads, self.hidden)
                t[p + "ssm_conv1d.weight"] = (conv_dim, self.ssm_conv)
                t[p + "ssm_dt.bias"] = (self.ssm_heads,)
                t[p + "ssm_a"] = (self.ssm_heads, 1)
                t[p + "ssm_d"] = (self.ssm_heads, 1)
                t[p + "ssm_norm.weight"] = (self.ssm_groups, d // self.ssm_groups)
                t[p + "ssm_out.weight"] = (self.hidden, d)
        return t

    def check_tensors(self, reader: GGUFReader) -> None:
        for name, shape in self.expected_tensors().items():
            if name not in reader.tensors:
                raise GGUFError(f"tensor {name!r} is missing")
            dims = tuple(reversed(reader.tensors[name].dims))
            if dims != shape:
                raise GGUFError(f"tensor {name!r} has shape {dims}, expected {shape} from the metadata")
        extra = f"blk.{self.n_layers}.attn_norm.weight"
        if extra in reader.tensors:
            raise GGUFError(f"tensor {extra!r} exists but block_count is {self.n_layers}")


@dataclass
class _HybridLayer:
    kind: str
    index: int  # KV cache layer (attention) or recurrent layer (mamba2)
    attn_norm: np.ndarray
    ffn_norm: np.ndarray
    gate_up: Any
    down: Any
    qkv: Any = None
    wo: Any = None
    mixer: Any = None


class HybridModel(Model):
    """A ``granitehybrid`` GGUF model: Mamba-2 and attention layers, a dense SwiGLU FFN."""

    @staticmethod
    def _proj(w, x):
        """x @ w^T for one packed matrix, or the matrices of a tuple side by side."""
        if isinstance(w, tuple):
            return np.concatenate([sk.matmul(x, wi) for wi in w], axis=1)
        return sk.matmul(x, w)

    def __init__(self, reader: GGUFReader, config: HybridConfig, *, context: int | None = None,
                 kv_dtype: str = "f16", max_sequences: int = 1, chunked_prefill: bool = True,
                 snapshot_interval: int = 256, max_snapshots: int = 8):
        self.reader = reader
        self.config = c = config
        for name, v in (("context", context), ("max_sequences", max_sequences),
                        ("snapshot_interval", snapshot_interval), ("max_snapshots", max_snapshots)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer))):
                raise TypeError(f"{name} must be an int, got {type(v).__name__}")
        if max_sequences < 1:
            raise ValueError(f"max_sequences must be >= 1, got {max_sequences}")
        if snapshot_interval < 0 or not 0 <= max_snapshots <= 1024:
            raise ValueError("snapshot_interval must be >= 0 and max_snapshots in 0..1024")
        if not isinstance(kv_dtype, str) or kv_dtype.lower() not in ("f32", "f16", "q8_0", "q4_0"):
            raise ValueError(f"kv_dtype must be 'f32', 'f16', 'q8_0' or 'q4_0', got {kv_dtype!r}")
        # Granite 4.0 H files claim a 2^20-token context (no RoPE to bound it); the cache is sized
        # by `context` (default 4096)
        self.context = int(context or min(c.context_length, 4096))
        if self.context < 1:
            raise ValueError("context must be >= 1")
        self.chunked_prefill = bool(chunked_prefill)
        self.snapshot_interval = int(snapshot_interval)
        self.tok_embd = reader.tensor("token_embd.weight")
        dims = dict(hidden=c.hidden, n_heads=c.ssm_heads, head_dim=c.ssm_head_dim, d_state=c.ssm_state,
                    n_groups=c.ssm_groups, d_conv=c.ssm_conv, eps=c.rms_norm_eps)
        self.layers: list[_HybridLayer] = []
        n_attn = n_ssm = 0
        for i, kind in enumerate(c.layer_kinds):
            p = f"blk.{i}."
            gu = _stack(reader, (p + "ffn_gate.weight", p + "ffn_up.weight"))  # one stacked matrix, or each
            gu = gu[0] if len(gu) == 1 else tuple(gu)
            L = _HybridLayer(kind=kind, index=n_attn if kind == "attention" else n_ssm,
                             attn_norm=reader.tensor_f32(p + "attn_norm.weight"),
                             ffn_norm=reader.tensor_f32(p + "ffn_norm.weight"), gate_up=gu,
                             down=sk.pack(reader.tensor(p + "ffn_down.weight")))
            if kind == "attention":
                qkv = _stack(reader, (p + "attn_q.weight", p + "attn_k.weight", p + "attn_v.weight"))
                qkv = qkv[0] if len(qkv) == 1 else tuple(qkv)
                L.qkv, L.wo = qkv, sk.pack(reader.tensor(p + "attn_output.weight"))
                n_attn += 1
            else:
                conv_b = reader.tensor_f32(p + "ssm_conv1d.bias") if p + "ssm_conv1d.bias" in reader.tensors else None
                L.mixer = _core.Mamba2Mixer(
                    dims, sk.pack(reader.tensor(p + "ssm_in.weight")),
                    np.ascontiguousarray(reader.tensor_f32(p + "ssm_conv1d.weight").reshape(-1, c.ssm_conv)),
                    conv_b, reader.tensor_f32(p + "ssm_dt.bias").reshape(-1),
                    reader.tensor_f32(p + "ssm_a").reshape(-1), reader.tensor_f32(p + "ssm_d").reshape(-1),
                    reader.tensor_f32(p + "ssm_norm.weight").reshape(-1), sk.pack(reader.tensor(p + "ssm_out.weight")))
                n_ssm += 1
            self.layers.append(L)
        self.out_norm = reader.tensor_f32("output_norm.weight")
        self.head = sk.pack(self.tok_embd if c.tied_embeddings else reader.tensor("output.weight"))
        state_floats = next(L.mixer.state_floats for L in self.layers if L.mixer is not None) if n_ssm else 0
        self.cache = sk.KVCache(n_attn, c.n_kv_heads, c.head_dim, capacity_tokens=self.context * max_sequences,
                                dtype=kv_dtype, recurrent_layers=n_ssm, recurrent_state_floats=state_floats,
                                max_snapshots=max_snapshots, snapshot_interval=self.snapshot_interval)
        self._tokenizer = None
        self._step = threading.Lock()  # the mixers' scratch serves one step at a time

    @classmethod
    def from_reader(cls, reader: GGUFReader, **kw) -> "HybridModel":
        return cls(reader, HybridConfig.from_gguf(reader), **kw)

    # ---- the forward pass ----
    def forward(self, seq: int, ids, *, all_logits: bool = False) -> np.ndarray:
        """Runs `ids` (new tokens of sequence `seq`) through the model, appending to its cache and
        advancing its recurrent state. Logits of the last token (vocab,), or of every token."""
        ids = self._check(seq, ids)
        with self._step:
            self.cache.extend(seq, len(ids))
            if len(ids) == 1:
                logits = self._run([seq], ids, all_logits)
                if self.snapshot_interval and self.cache.length(seq) % self.snapshot_interval == 0:
                    self.cache.snapshot(seq)
            else:
                # a prompt: snapshots before its last token (what prefix reuse can go back to: it
                # always runs the last prompt token again) and after it
                snaps = np.empty((self.cache.recurrent_layers, self.cache.recurrent_state_floats), np.float32)
                logits = self._run([seq], ids, all_logits, snaps)
                n = self.cache.length(seq)
                self.cache.add_snapshot(seq, n - 1, snaps.reshape(-1))
                self.cache.snapshot(seq)
        return logits if all_logits else logits[-1]

    def forward_batch(self, seqs, ids) -> np.ndarray:
        """One new token for each of several distinct sequences; (len(seqs), vocab)."""
        seqs = _int_array(seqs, "seqs")
        ids = _int_array(ids, "ids")
        if len(seqs) != len(ids) or len(seqs) == 0:
            raise ValueError("seqs and ids must be 1-D, non-empty and of the same length")
        if len(set(seqs.tolist())) != len(seqs):
            raise ValueError("seqs must be distinct")
        for s, t in zip(seqs.tolist(), ids.tolist()):
            self._check(s, [t])
        with self._step:
            self.cache.extend_batch(seqs.tolist())
            logits = self._run(seqs.tolist(), ids, True)
            for s in seqs.tolist():
                if self.snapshot_interval and self.cache.length(s) % self.snapshot_interval == 0:
                    self.cache.snapshot(s)
        return logits

    def _run(self, seqs: list, ids: np.ndarray, all_logits: bool, snaps: np.ndarray | None = None) -> np.ndarray:
        """The layer stack over rows `ids`: one sequence of T tokens, or one token per sequence.
        snaps (recurrent layers, state floats): filled with the state before the last row."""
        c = self.config
        T = len(ids)
        H, KV, D = c.n_heads, c.n_kv_heads, c.head_dim
        x = sk.embedding(self.tok_embd, ids)
        if c.embedding_scale != 1.0:
            x *= np.float32(c.embedding_scale)
        h = np.empty_like(x)
        res = np.float32(c.residual_scale)
        scale = c.attention_scale or None
        for L in self.layers:
            sk.rmsnorm(x, L.attn_norm, c.rms_norm_eps, out=h)
            if L.kind == "attention":
                qkv = self._proj(L.qkv, h)
                q = np.ascontiguousarray(qkv[:, : H * D]).reshape(T, H, D)
                k = np.ascontiguousarray(qkv[:, H * D : (H + KV) * D]).reshape(T, KV, D)
                v = np.ascontiguousarray(qkv[:, (H + KV) * D :]).reshape(T, KV, D)
                if len(seqs) == 1:
                    self.cache.write(L.index, seqs[0], k, v)
                    o = sk.attention(q, self.cache, L.index, seqs[0], scale=scale)
                else:
                    for r, s in enumerate(seqs):
                        self.cache.write(L.index, s, k[r : r + 1], v[r : r + 1])
                    o = sk.attention_batch(q, self.cache, L.index, seqs, scale=scale)
                a = sk.matmul(o.reshape(T, H * D), L.wo)
            else:
                a = L.mixer.forward(self.cache, L.index, seqs, h, chunked=self.chunked_prefill,
                                    snapshot_out=None if snaps is None else snaps[L.index])
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
        return logits

    def forward_python(self, seq: int, ids, *, all_logits: bool = False) -> np.ndarray:
        return self.forward(seq, ids, all_logits=all_logits)


# cached prefixes give way to a step that needs their blocks (as Model's steps)
HybridModel.forward = evicting(HybridModel.forward)
HybridModel.forward_batch = evicting(HybridModel.forward_batch)
