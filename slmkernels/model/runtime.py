"""A GGUF model on slmkernels' kernels: the file's weights and the per-layer description that
ModelConfig builds, handed to the C++ step (csrc/model), which runs every kernel of a forward
pass in one call. Weights are repacked once at load into the interleaved layout the GEMM kernels
read (Q, K, V rows stacked into one matrix, gate and up rows into another, when their formats
agree).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

import slmkernels as sk

from .config import LayerTensors, ModelConfig
from .gguf_reader import GGUFError, GGUFReader


def _pack(t):
    """t packed, and the file pages t was read from given back slice by slice as they are packed:
    the packed copy is what the kernels read, so without this the weights would be resident twice
    (and a large matrix, the 1B file's 205 MiB head, would add its size to the peak RSS)."""
    return sk.pack(t, release_pages=True)


def _stack(reader: GGUFReader, names: tuple[str, ...]):
    """The tensors as packed matrices: one matrix of their rows stacked when their formats and
    widths agree (one GEMM for Q, K and V, or for gate and up), else one each. Stacked straight
    from the file's pages (given back as packed): a concatenated copy beside the packed matrix
    was the load's peak (+18.5 MiB for a gate/up of the 1B)."""
    ts = [reader.tensor(n) for n in names]
    if len(ts) > 1 and len({t.format for t in ts}) == 1 and len({t.shape[1] for t in ts}) == 1:
        if all(t.shape[0] % 16 == 0 for t in ts[:-1]):  # (pack's rule: no 16-row group across two)
            return [sk.pack(ts, release_pages=True)]
        raw = np.concatenate([np.asarray(t.data) for t in ts])
        for t in ts:  # copied: the file pages are not needed while the copy is packed
            sk.release_pages(t)
        rows = sum(t.shape[0] for t in ts)
        return [sk.pack(sk.QuantizedTensor(raw, ts[0].format, (rows, ts[0].shape[1])))]
    return [_pack(t) for t in ts]


def _int_array(v, name: str) -> np.ndarray:
    """v (token ids or sequence ids: an int, a sequence of ints, an integer array) as 1-D int64."""
    if v is None or isinstance(v, (str, bytes)):
        raise TypeError(f"{name} must be an int or a sequence of ints, got {type(v).__name__}")
    try:
        return np.asarray(v, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"{name} must be integers: {e}") from None


def _layer_weights(reader: GGUFReader, lt: LayerTensors, ls):
    """One layer's weights as _core.LayerWeights, for its description `ls` (_core.LayerSpec)."""
    from slmkernels import _core

    f32 = lambda name: None if name is None else reader.tensor_f32(name).reshape(-1)  # noqa: E731

    def biases(names, widths):
        if not names:
            return None
        if len(names) == 1:
            return f32(names[0])
        return np.concatenate([f32(n) if n else np.zeros(w, np.float32) for n, w in zip(names, widths)])

    w = _core.LayerWeights()
    w.attn_norm = f32(lt.attn_norm)
    if lt.ssm_in:  # a Mamba-2 layer
        s = ls.mamba2
        w.ssm_in = _pack(reader.tensor(lt.ssm_in))
        # the file's (conv_dim, d_conv) rows as the kernel's taps: (d_conv, conv_dim)
        w.ssm_conv1d = np.ascontiguousarray(f32(lt.ssm_conv1d).reshape(s.conv_dim, s.d_conv).T).reshape(-1)
        w.ssm_conv1d_bias = f32(lt.ssm_conv1d_bias)
        w.ssm_dt_bias, w.ssm_a, w.ssm_d = f32(lt.ssm_dt_bias), f32(lt.ssm_a), f32(lt.ssm_d)
        w.ssm_norm = f32(lt.ssm_norm)
        w.ssm_out = _pack(reader.tensor(lt.ssm_out))
    else:
        at = ls.attention
        q, kv = at.n_heads * at.head_dim, at.n_kv_heads * at.head_dim
        w.q_norm, w.k_norm = f32(lt.q_norm), f32(lt.k_norm)
        w.qkv = _stack(reader, lt.qkv)
        w.qkv_bias = biases(lt.qkv_bias, (q, kv, kv))
        w.wo = _pack(reader.tensor(lt.wo))
        w.wo_bias = f32(lt.wo_bias)
        w.post_attention_norm = f32(lt.post_attention_norm)
    w.ffn_norm = f32(lt.ffn_norm)
    w.gate_up = _stack(reader, lt.gate_up)
    w.gate_up_bias = biases(lt.gate_up_bias, (ls.ffn, ls.ffn))
    w.down = _pack(reader.tensor(lt.down))
    w.down_bias = f32(lt.down_bias)
    w.post_ffn_norm = f32(lt.post_ffn_norm)
    return w


class Model:
    """A GGUF decoder (see ModelConfig for the architectures) ready to run: the per-layer
    description ModelConfig builds from the metadata, run by the C++ step with the file's weights.

    `Model.from_gguf(path)` maps the file, checks every tensor against the metadata, packs the
    weights and allocates a paged KV cache of `context` tokens (default: the file's context
    length, at most 4096) in `kv_dtype`, for `max_sequences` sequences at once.

    The cache's blocks hold `kv_block_tokens` tokens (default 256; at most the context rounded
    up to a multiple of 16, so a short context does not take blocks it can never fill). Decode
    attention makes one kernel call per run of slots in a block, so larger blocks cost fewer
    calls. Chunks are cut at blocks and at every 256 tokens (csrc/attention/attention.h), so
    full-attention layers give the same bits with blocks of 256, of any multiple of 256, or of
    the whole context; smaller blocks agree within rounding, not bit for bit. The pool holds
    ceil(context / block) + 1 blocks per sequence and layer: each sequence's full context, plus
    the copy-on-write tail a forked prefix may need (the server reserves it per request).

    A hybrid model (granitehybrid) keeps each sequence's Mamba-2 state beside its KV blocks (the
    cache's recurrent state). That state cannot be cut back token by token: snapshots of it are
    kept after every prompt (a forward call of more than one token) and before its last token,
    and every `snapshot_interval` decoded positions, at most `max_snapshots` per sequence; prefix
    reuse and `cache.truncate` go back to those positions."""

    def __init__(self, reader: GGUFReader, config: ModelConfig, *, context: int | None = None, kv_dtype: str = "f16",
                 max_sequences: int = 1, snapshot_interval: int = 256, max_snapshots: int = 8,
                 kv_block_tokens: int = 256):
        from slmkernels import _core

        self.reader = reader
        self.config = c = config
        # the keyword arguments are checked before anything is built from the file
        for name, v in (("context", context), ("max_sequences", max_sequences),
                        ("snapshot_interval", snapshot_interval), ("max_snapshots", max_snapshots)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer))):
                raise TypeError(f"{name} must be an int, got {type(v).__name__}")
        if max_sequences is None or max_sequences < 1:
            raise ValueError(f"max_sequences must be >= 1, got {max_sequences}")
        if snapshot_interval is None or snapshot_interval < 0 or max_snapshots is None or not 0 <= max_snapshots <= 1024:
            raise ValueError("snapshot_interval must be >= 0 (0: none) and max_snapshots in 0..1024")
        if isinstance(kv_block_tokens, bool) or not isinstance(kv_block_tokens, (int, np.integer)):
            raise TypeError(f"kv_block_tokens must be an int, got {type(kv_block_tokens).__name__}")
        if not 1 <= kv_block_tokens <= 4096:
            raise ValueError(f"kv_block_tokens must be in 1..4096, got {kv_block_tokens}")
        if not isinstance(kv_dtype, str):
            raise TypeError(f"kv_dtype must be a str, got {type(kv_dtype).__name__}")
        if kv_dtype.lower() not in ("f32", "f16", "q8_0", "q4_0"):
            raise ValueError(f"kv_dtype must be 'f32', 'f16', 'q8_0' or 'q4_0', got {kv_dtype!r}")
        self.context = int(context or min(c.context_length, 4096))
        if self.context < 1:
            raise ValueError("context must be >= 1")
        block = min(int(kv_block_tokens), -(-self.context // 16) * 16)
        # each sequence's full context (the last block partly used) and one copy-on-write tail
        capacity = max_sequences * (-(-self.context // block) + 1) * block
        self.tok_embd = reader.tensor("token_embd.weight")
        self.layer_weights = [_layer_weights(reader, lt, ls) for lt, ls in zip(c.layers, c.spec.layers)]
        self.out_norm = reader.tensor_f32("output_norm.weight")
        # (the embedding rows a step reads come back from the file page by page)
        self.head = _pack(self.tok_embd if c.tied_embeddings else reader.tensor("output.weight"))
        head_bias = reader.tensor_f32(c.head_bias) if c.head_bias else None
        # Sliding-window layers keep only their window in the cache (extend frees what no query
        # of the new chunk can see); attention applies the window.
        # The cache holds the attention layers' K/V and the Mamba-2 layers' recurrent state.
        self.cache = sk.KVCache(c.n_attention_layers, c.n_kv_heads, c.head_dim,
                                capacity_tokens=capacity, block_tokens=block, dtype=kv_dtype,
                                layer_windows=[w or None for w in c.layer_windows],
                                recurrent_layers=c.n_recurrent_layers,
                                recurrent_state_floats=c.recurrent_state_floats, max_snapshots=max_snapshots,
                                snapshot_interval=snapshot_interval)
        self._tokenizer = None
        # The step sequenced in C++ (one call per step instead of ~13 kernel calls per layer).
        self._cpp = _core.Transformer(c.spec, self.layer_weights, self.out_norm, self.head, head_bias, self.tok_embd, self.context)
        # temporaries freed between packed matrices that stay (a stacked copy of rows not in
        # 16-row groups, numpy's and the reader's) leave holes in the heap: give them back
        _core.release_free_heap()

    @classmethod
    def from_gguf(cls, path: str | os.PathLike[str], **kw) -> "Model":
        reader = GGUFReader(path)
        try:
            config = ModelConfig.from_gguf(reader)
            return cls(reader, config, **kw)
        except BaseException:
            try:
                reader.close()
            except BufferError:
                pass  # tensor views (held by the traceback) still map the file; it goes with them
            raise

    # ---- the forward pass ----
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
