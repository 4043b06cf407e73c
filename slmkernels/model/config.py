"""Model hyperparameters from GGUF metadata, type- and range-checked, cross-checked with tensor
shapes, and turned once into the typed per-layer description the C++ step runs
(``slmkernels._core.ModelSpec``: one ``LayerSpec`` per layer, see csrc/model/spec.h).

Keys and tensor names are llama.cpp's (gguf-py ``gguf.constants``), keys prefixed by
``general.architecture``; what each architecture reads follows llama.cpp's src/models/<arch>.cpp
and src/llama-model.cpp (cited below where it matters). Supported architectures:

- ``llama`` (SmolLM2, Llama 3.x with ``rope_freqs.weight``; a ``{arch}.attention.sliding_window``
  applies to every layer, as Mistral 7B v0.1), ``mistral`` (the same layout);
- ``qwen2`` (Q/K/V biases, NeoX RoPE, optional ``output.bias``), ``qwen3`` (per-head q/k RMSNorm,
  head_dim from ``attention.key_length``);
- ``gemma3`` (GeGLU, q/k norms, post-attention and post-FFN norms, embeddings scaled by
  sqrt(hidden), local sliding-window layers with their own RoPE base between global layers,
  optional final logit soft-cap);
- ``phi3`` (Phi-3.5-mini, Phi-4-mini: fused ``attn_qkv`` and ``ffn_up`` = [gate; up], partial
  rotary, LongRoPE short/long factors and ``rope.scaling.attn_factor``);
- ``smollm3`` (a Llama block where every 4th layer has no RoPE);
- ``granite`` (Granite 3.x and the dense Granite 4.0 micro: embedding / residual / attention /
  logit multipliers, per-layer head-count arrays, ``rope.scaling.finetuned`` false = no RoPE);
- ``granitehybrid`` (Granite 4.0 H-Micro / H-1B / H-350M, dense FFN: granite's rules, and a
  Mamba-2 mixer instead of attention on every layer whose ``attention.head_count_kv`` entry is
  0, sized by the ``ssm.*`` keys; llama.cpp's src/models/granite-hybrid.cpp and mamba-base.cpp);
- ``phonelm`` (BUPT's PhoneLM, not a llama.cpp architecture: what ``Model.from_pretrained``
  writes for PhoneLMForCausalLM checkpoints, slmkernels/model/hf.py): the Llama block with NeoX
  RoPE pairing and a ReLU-gated FFN, down(relu(gate) * up), with llama's keys and tensor names.
Every architecture may store Q/K/V fused (``attn_qkv``) or separately, with or without biases,
as llama.cpp's ``create_tensor_qkv`` allows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .gguf_reader import FLOAT_TYPES, INTEGER_TYPES, GGUFError, GGUFReader, GGUFStringArray, GGUFValueType

__all__ = ["ModelConfig", "LayerTensors", "SUPPORTED_ARCHITECTURES"]


@dataclass(frozen=True)
class _Arch:
    """What an architecture's llama.cpp graph reads beyond the common Llama block."""

    rope: str  # "norm": pairs (2i, 2i+1), "neox": pairs (i, i + rot/2) (llama_model_rope_type)
    activation: str = "silu"  # gated FFN: "silu" (SwiGLU), "gelu_tanh" (GeGLU) or "relu" (ReGLU)
    qk_norm: bool = False  # blk.N.attn_q_norm / attn_k_norm (head_dim), before RoPE
    post_norms: bool = False  # blk.N.post_attention_norm / post_ffw_norm
    fused_up: bool = False  # blk.N.ffn_up holds [gate; up] and there is no ffn_gate (phi3)
    extra_biases: bool = False  # optional attn_output / ffn_{gate,up,down} biases (llama, granite)
    head_bias: bool = False  # optional output.bias (qwen2)
    window: str = ""  # "all": attention.sliding_window on every layer; "pattern": gemma3's local layers
    rope_freqs: bool = False  # optional rope_freqs.weight (Llama 3 frequency factors)
    longrope: str = ""  # "always": rope_factors_long/short when present (phi3); "typed": when scaling is longrope
    nope_every: int = 0  # layers il with (il + 1) % n == 0 have no RoPE (smollm3: 4)
    granite: bool = False  # embedding / residual / attention / logit multipliers; rope.scaling.finetuned false: no RoPE
    mamba2: bool = False  # a head_count_kv entry of 0 marks a Mamba-2 layer (granitehybrid)


ARCHS: dict[str, _Arch] = {
    "llama": _Arch("norm", extra_biases=True, window="all", rope_freqs=True, longrope="typed"),
    "mistral": _Arch("norm", extra_biases=True, window="all", rope_freqs=True, longrope="typed"),
    "granite": _Arch("norm", extra_biases=True, rope_freqs=True, longrope="typed", granite=True),
    "granitehybrid": _Arch("norm", extra_biases=True, rope_freqs=True, granite=True, mamba2=True),
    "qwen2": _Arch("neox", head_bias=True),
    "qwen3": _Arch("neox", qk_norm=True),
    "smollm3": _Arch("norm", nope_every=4),
    "gemma3": _Arch("neox", activation="gelu_tanh", qk_norm=True, post_norms=True, window="pattern"),
    "phi3": _Arch("neox", fused_up=True, longrope="always"),
    "phonelm": _Arch("neox", activation="relu"),
}
SUPPORTED_ARCHITECTURES = tuple(sorted(ARCHS))

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
MAX_SSM = 4096  # SSM heads, head size and state size (Granite 4.0 H: 48-128 heads of 64, state 128)
MAX_CONV = 64  # conv taps (Mamba-2: 4)
ROPE_SCALING_TYPES = ("none", "linear", "yarn", "longrope")
GEMMA3_SWA_PATTERN = 6  # llama.cpp gemma3.cpp: load_swa_pattern(ml, 6) -> 5 local layers, then 1 global
GEMMA3_SWA_BASE = 10000.0  # llama_hparams::rope_freq_base_train_swa default (gemma3 local layers)


@dataclass(frozen=True)
class LayerTensors:
    """The names of one layer's tensors in the file (None / empty: the layer has none). An
    attention layer has qkv and wo; a Mamba-2 layer has the ssm_* tensors instead."""

    attn_norm: str  # the norm before the mixer, either kind
    qkv: tuple[str, ...]  # one fused attn_qkv, or attn_q, attn_k, attn_v; () in a Mamba-2 layer
    qkv_bias: tuple[str | None, ...]  # () none; (fused,) or (q, k, v) each possibly None
    wo: str | None
    ffn_norm: str
    gate_up: tuple[str, ...]  # one fused ffn_up ([gate; up]), or ffn_gate, ffn_up
    down: str
    q_norm: str | None = None
    k_norm: str | None = None
    wo_bias: str | None = None
    post_attention_norm: str | None = None
    gate_up_bias: tuple[str | None, ...] = ()  # () none, or (gate, up) each possibly None
    down_bias: str | None = None
    post_ffn_norm: str | None = None
    # Mamba-2 layers (llama.cpp's names: ssm_a and ssm_d have no .weight suffix)
    ssm_in: str | None = None
    ssm_conv1d: str | None = None
    ssm_conv1d_bias: str | None = None
    ssm_dt_bias: str | None = None
    ssm_a: str | None = None
    ssm_d: str | None = None
    ssm_norm: str | None = None
    ssm_out: str | None = None


@dataclass(frozen=True)
class ModelConfig:
    architecture: str
    n_layers: int
    hidden: int  # embedding length
    n_heads: int  # query heads (of the first attention layer when the file gives them per layer)
    n_kv_heads: int
    head_dim: int
    ffn: int  # feed-forward inner size (of layer 0 when per layer)
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
    sliding_window: int = 0  # 0 = full attention (gemma3: the local layers' window)
    qkv_bias: bool = False  # Q/K/V biases present
    # granite multipliers (1.0 elsewhere); attention_scale is the effective q.k scale
    embedding_scale: float = 1.0  # x = embed(tokens) * embedding_scale
    residual_scale: float = 1.0  # x = x + residual_scale * block(x)
    attention_scale: float = 0.0  # scores = q.k * attention_scale (1/sqrt(head_dim) unless set)
    logit_scale: float = 1.0  # logits = head(x) / logit_scale
    final_logit_softcap: float = 0.0
    head_bias: str | None = None  # output.bias
    layers: tuple[LayerTensors, ...] = field(default=(), compare=False, repr=False)
    spec: Any = field(default=None, compare=False, repr=False)  # slmkernels._core.ModelSpec
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def q_dim(self) -> int:
        return self.n_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_dim

    @property
    def layer_windows(self) -> list[int]:
        """Each attention layer's sliding window (0: full attention), for the KV cache (which
        holds the attention layers only)."""
        return [int(ls.attention.window) for ls in self.spec.layers if ls.kind == ls.kind.attention]

    @property
    def layer_kinds(self) -> tuple[str, ...]:
        """Per layer: "attention" or "mamba2"."""
        return tuple(ls.kind.name for ls in self.spec.layers)

    @property
    def n_attention_layers(self) -> int:
        return self.layer_kinds.count("attention")

    @property
    def n_recurrent_layers(self) -> int:
        return self.layer_kinds.count("mamba2")

    @property
    def recurrent_state_floats(self) -> int:
        """Floats of one Mamba-2 layer's state per sequence (0: no such layer)."""
        return next((int(ls.mamba2.state_floats) for ls in self.spec.layers if ls.kind.name == "mamba2"), 0)

    @classmethod
    def from_gguf(cls, reader: GGUFReader) -> "ModelConfig":
        return _build(reader)

    def expected_tensors(self) -> dict[str, tuple[int, ...]]:
        """name -> dims (ggml order) of every tensor the forward pass reads."""
        return {name: dims for name, (dims, _why) in _expected(self).items()}


# ---- building the description ----
def _build(reader: GGUFReader) -> ModelConfig:
    from .. import _core

    m = _Meta(reader)
    arch = m.str("general.architecture")
    if arch not in ARCHS:
        raise GGUFError(f"unsupported architecture {arch!r} (supported: {', '.join(SUPPORTED_ARCHITECTURES)})")
    rules = ARCHS[arch]
    a = arch + "."
    tensors = reader.tensors
    n_layers = m.int(a + "block_count", 1, MAX_LAYERS)
    hidden = m.int(a + "embedding_length", 1, MAX_HIDDEN)
    ffn = m.per_layer(a + "feed_forward_length", n_layers, 1, MAX_FFN)
    lo = 0 if rules.mamba2 else 1  # granitehybrid: 0 marks a Mamba-2 layer
    n_heads = m.per_layer(a + "attention.head_count", n_layers, lo, MAX_HEADS)
    n_kv = m.per_layer(a + "attention.head_count_kv", n_layers, lo, MAX_HEADS, default=n_heads)
    is_ssm = [rules.mamba2 and v == 0 for v in n_kv]
    attn = [i for i in range(n_layers) if not is_ssm[i]]
    if not attn:
        raise GGUFError(f"metadata {a + 'attention.head_count_kv'!r} marks no attention layer (every entry is 0): "
                        "a model of Mamba-2 layers only is not supported (the KV cache holds the positions)")
    if len({n_kv[i] for i in attn}) != 1:
        raise GGUFError(f"{a}attention.head_count_kv differs between layers ({sorted({n_kv[i] for i in attn})}): "
                        "unsupported (the KV cache holds one head count for every layer)")
    for i in attn:
        if n_heads[i] == 0:
            raise GGUFError(f"{a}attention.head_count is 0 on attention layer {i}")
        if n_heads[i] % n_kv[i]:
            raise GGUFError(f"{a}attention.head_count {n_heads[i]} is not a multiple of "
                            f"{a}attention.head_count_kv {n_kv[i]}" + (f" (layer {i})" if n_layers > 1 else ""))
    h0 = n_heads[attn[0]]
    head_dim_default = hidden // h0 if hidden % h0 == 0 else None
    head_dim = m.int(a + "attention.key_length", 1, MAX_HEAD_DIM, default=head_dim_default)
    if head_dim is None:
        raise GGUFError(f"{a}embedding_length {hidden} is not a multiple of {a}attention.head_count {h0} "
                        f"and {a}attention.key_length is absent")
    v_dim = m.int(a + "attention.value_length", 1, MAX_HEAD_DIM, default=head_dim)
    if v_dim != head_dim:
        raise GGUFError(f"{a}attention.value_length {v_dim} differs from key_length {head_dim}: unsupported")
    eps = m.float(a + "attention.layer_norm_rms_epsilon", 0.0, 1.0, open_lo=True)
    ctx = m.int(a + "context_length", 1, MAX_CONTEXT)

    # ---- Mamba-2 layers (llama.cpp granite-hybrid.cpp load_arch_hparams: the ssm.* keys) ----
    mamba = None
    if any(is_ssm):
        if m.int(a + "expert_count", 0, 1 << 16, default=0):
            raise GGUFError(f"metadata {a + 'expert_count'!r} is set: Mixture-of-Experts FFNs (Granite 4.0 H-Tiny, "
                            "H-Small) are not supported")
        mamba = _core.Mamba2Spec()
        mamba.d_conv = m.int(a + "ssm.conv_kernel", 2, MAX_CONV)
        d_inner = m.int(a + "ssm.inner_size", 1, MAX_SSM * MAX_SSM)
        mamba.n_heads = m.int(a + "ssm.time_step_rank", 1, MAX_SSM)
        if d_inner % mamba.n_heads or d_inner // mamba.n_heads > MAX_SSM:
            raise GGUFError(f"{a}ssm.inner_size {d_inner} is not a multiple of {a}ssm.time_step_rank "
                            f"{mamba.n_heads} (with at most {MAX_SSM} values per head)")
        mamba.head_dim = d_inner // mamba.n_heads
        mamba.d_state = m.int(a + "ssm.state_size", 1, MAX_SSM)
        mamba.n_groups = m.int(a + "ssm.group_count", 1, mamba.n_heads)
        if mamba.n_heads % mamba.n_groups:
            raise GGUFError(f"{a}ssm.time_step_rank {mamba.n_heads} is not a multiple of {a}ssm.group_count "
                            f"{mamba.n_groups}")

    # ---- RoPE (llama-model.cpp load_hparams: base, dims, scaling type / factor / context) ----
    rope_base = m.float(a + "rope.freq_base", 0.0, 1e12, open_lo=True, default=10000.0)
    rope_dim = m.int(a + "rope.dimension_count", 2, head_dim, default=head_dim)
    if rope_dim % 2:
        raise GGUFError(f"{a}rope.dimension_count {rope_dim} is odd")
    if arch in ("llama", "mistral") and rope_dim != head_dim:
        # llama-model.cpp: "invalid n_rot" for LLM_ARCH_LLAMA
        raise GGUFError(f"{a}rope.dimension_count {rope_dim} differs from the head size {head_dim}")
    scaling = m.str(a + "rope.scaling.type", default="none")
    if scaling not in ROPE_SCALING_TYPES:
        raise GGUFError(f"{a}rope.scaling.type {scaling!r} unsupported (supported: {', '.join(ROPE_SCALING_TYPES)})")
    factor = m.float(a + "rope.scaling.factor", 0.0, 1e6, open_lo=True, default=1.0)
    orig_ctx = m.int(a + "rope.scaling.original_context_length", 1, MAX_CONTEXT, default=0)
    attn_factor = m.float(a + "rope.scaling.attn_factor", 0.0, 1e6, open_lo=True, default=1.0)

    rope = _core.RopeSpec()
    rope.base = rope_base
    rope.rotary_dim = rope_dim
    rope.mode = _core.RopeMode.neox if rules.rope == "neox" else _core.RopeMode.normal
    rope.attn_factor = attn_factor
    if scaling == "linear" and factor != 1.0:
        rope.scaling, rope.factor = _core.RopeScaling.linear, factor
    elif scaling == "yarn":
        rope.scaling, rope.factor = _core.RopeScaling.yarn, factor
        rope.original_context = orig_ctx or ctx
    if rules.rope_freqs and "rope_freqs.weight" in tensors:
        rope.freq_factors = _factors(reader, "rope_freqs.weight", rope_dim, f"{a}rope.dimension_count")
    longrope = scaling == "longrope" or (rules.longrope == "always" and "rope_factors_long.weight" in tensors)
    if longrope:
        if not rules.longrope:
            raise GGUFError(f"{a}rope.scaling.type 'longrope' is not read by architecture {arch!r}")
        for name in ("rope_factors_long.weight", "rope_factors_short.weight"):
            if name not in tensors:
                raise GGUFError(f"tensor {name!r} is missing (LongRoPE needs rope_factors_long and rope_factors_short)")
        rope.scaling = _core.RopeScaling.longrope
        rope.freq_factors = _factors(reader, "rope_factors_short.weight", rope_dim, f"{a}rope.dimension_count")
        rope.long_factors = _factors(reader, "rope_factors_long.weight", rope_dim, f"{a}rope.dimension_count")
        rope.original_context = orig_ctx or ctx

    # ---- which layers rotate, and their windows ----
    use_rope = [True] * n_layers
    if rules.granite and not m.bool(a + "rope.scaling.finetuned", default=True):
        use_rope = [False] * n_layers  # granite.cpp, granite-hybrid.cpp: rope_finetuned switches RoPE off
    if rules.nope_every:
        use_rope = [(i + 1) % rules.nope_every != 0 for i in range(n_layers)]  # smollm3.cpp
    window = 0
    is_swa = [False] * n_layers
    if rules.window:
        window = m.int(a + "attention.sliding_window", 0, MAX_CONTEXT, default=0)
    if window and rules.window == "all":
        is_swa = [True] * n_layers
    elif window and rules.window == "pattern":
        is_swa = m.swa_pattern(a + "attention.sliding_window_pattern", n_layers, GEMMA3_SWA_PATTERN)
    swa_base = m.float(a + "rope.freq_base_swa", 0.0, 1e12, open_lo=True, default=GEMMA3_SWA_BASE)

    # ---- model-wide scales ----
    granite = rules.granite
    emb_scale = m.float(a + "embedding_scale", 0.0, 1e6, default=0.0) if granite else 0.0
    res_scale = m.float(a + "residual_scale", 0.0, 1e6, default=0.0) if granite else 0.0
    att_scale = m.float(a + "attention.scale", 0.0, 1e6, default=0.0) if granite else 0.0
    logit_scale = m.float(a + "logit_scale", 0.0, 1e6, open_lo=True, default=1.0) if granite else 1.0
    if arch == "gemma3":
        emb_scale = math.sqrt(hidden)  # gemma3.cpp: inpL * sqrtf(n_embd)
        # gemma3.cpp (after gemma_pytorch's config): 27B (62 layers) scales by hidden / heads
        att_scale = 1.0 / math.sqrt(hidden / h0 if n_layers == 62 else head_dim)
    final_softcap = 0.0
    if arch == "gemma3":
        final_softcap = m.float(a + "final_logit_softcapping", 0.0, 1e6, default=0.0)
    if att_scale == 0.0:
        att_scale = 1.0 / math.sqrt(head_dim)
    emb_scale = emb_scale or 1.0  # llama.cpp: a 0 multiplier means none
    res_scale = res_scale or 1.0

    # ---- vocabulary ----
    vocab_default = None
    if "token_embd.weight" in tensors and len(tensors["token_embd.weight"].dims) == 2:
        vocab_default = tensors["token_embd.weight"].dims[1]
    toks = reader.metadata.get("tokenizer.ggml.tokens")
    if isinstance(toks, GGUFStringArray):
        vocab_default = len(toks)
    vocab = m.int(a + "vocab_size", 1, MAX_VOCAB, default=vocab_default)
    if vocab is None:
        raise GGUFError(f"cannot tell the vocabulary size: no {a}vocab_size, tokens or token_embd.weight")

    # ---- the description ----
    spec = _core.ModelSpec()
    spec.hidden, spec.vocab, spec.eps = hidden, vocab, eps
    spec.embedding_scale, spec.residual_scale = emb_scale, res_scale
    spec.logit_scale, spec.final_logit_softcap = logit_scale, final_softcap
    activation = getattr(_core.FfnActivation, rules.activation)
    layer_specs = []
    for i in range(n_layers):
        ls = _core.LayerSpec()
        ls.ffn = ffn[i]
        ls.activation = activation
        if is_ssm[i]:
            ls.kind = _core.LayerKind.mamba2
            ls.mamba2 = mamba
            layer_specs.append(ls)
            continue
        at = _core.AttentionSpec()
        at.n_heads, at.n_kv_heads, at.head_dim = n_heads[i], n_kv[i], head_dim
        at.scale = att_scale
        at.window = window if is_swa[i] else 0
        at.rope = use_rope[i]
        if rules.window == "pattern" and is_swa[i]:
            local = _core.RopeSpec()  # gemma3's local layers: their own base, never scaled
            local.base, local.rotary_dim, local.mode = swa_base, rope_dim, rope.mode
            at.rope_spec = local
        else:
            at.rope_spec = rope
        ls.attention = at
        layer_specs.append(ls)
    spec.layers = layer_specs

    layers = tuple(_layer_tensors(reader, rules, i, is_ssm[i]) for i in range(n_layers))
    cfg = ModelConfig(
        architecture=arch, n_layers=n_layers, hidden=hidden, n_heads=h0, n_kv_heads=n_kv[attn[0]], head_dim=head_dim,
        ffn=ffn[0], vocab=vocab, rms_norm_eps=eps, context_length=ctx, rope_base=rope_base, rope_dim=rope_dim,
        rope_type=rules.rope, rope_scaling_type="longrope" if longrope else scaling,
        rope_scaling_factor=factor, rope_original_context=orig_ctx,
        tied_embeddings="output.weight" not in tensors, sliding_window=window,
        qkv_bias=any(n is not None for n in layers[attn[0]].qkv_bias),
        embedding_scale=emb_scale, residual_scale=res_scale, attention_scale=att_scale, logit_scale=logit_scale,
        final_logit_softcap=final_softcap,
        head_bias="output.bias" if rules.head_bias and "output.bias" in tensors else None,
        layers=layers, spec=spec,
        extra={"array_keys": {k for k in (a + "feed_forward_length", a + "attention.head_count",
                                          a + "attention.head_count_kv") if isinstance(m.types.get(k), tuple)},
               "key_length": a + "attention.key_length" in m.md},
    )
    _check_tensors(cfg, reader)
    return cfg


def _factors(reader: GGUFReader, name: str, rope_dim: int, key: str) -> list[float]:
    t = reader.tensors[name]
    if t.dims != (rope_dim // 2,):
        raise GGUFError(f"tensor {name!r} has dims {list(t.dims)}, but {key} = {rope_dim} implies [{rope_dim // 2}]")
    if t.ggml_type not in (0, 1):
        raise GGUFError(f"tensor {name!r} must be F32 or F16, got {t.type_name}")
    f = reader.tensor_f32(name).astype(np.float64)
    if not (np.isfinite(f).all() and (f > 0).all()):
        raise GGUFError(f"tensor {name!r} must hold positive finite factors")
    return f.tolist()


def _layer_tensors(reader: GGUFReader, rules: _Arch, i: int, ssm: bool = False) -> LayerTensors:
    """Which of a layer's optional / fused tensors the file has (as llama.cpp's loader looks)."""
    t = reader.tensors
    b = f"blk.{i}."
    have = lambda n: (b + n) in t  # noqa: E731
    opt = lambda n: (b + n) if have(n) else None  # noqa: E731
    if ssm:  # granite-hybrid.cpp load_arch_tensors: a recurrent layer
        qkv: tuple[str, ...] = ()
        qkv_bias: tuple[str | None, ...] = ()
    elif have("attn_qkv.weight"):  # create_tensor_qkv: the fused form first
        qkv: tuple[str, ...] = (b + "attn_qkv.weight",)
        if have("attn_qkv.bias"):
            qkv_bias: tuple[str | None, ...] = (b + "attn_qkv.bias",)
        elif have("attn_q.bias") and have("attn_k.bias") and have("attn_v.bias"):
            qkv_bias = (b + "attn_q.bias", b + "attn_k.bias", b + "attn_v.bias")
        else:
            qkv_bias = ()
    else:
        qkv = (b + "attn_q.weight", b + "attn_k.weight", b + "attn_v.weight")
        qkv_bias = tuple(opt(n) for n in ("attn_q.bias", "attn_k.bias", "attn_v.bias"))
        if all(x is None for x in qkv_bias):
            qkv_bias = ()
    gate_up = (b + "ffn_up.weight",) if rules.fused_up else (b + "ffn_gate.weight", b + "ffn_up.weight")
    gate_up_bias: tuple[str | None, ...] = ()
    if rules.extra_biases and (have("ffn_gate.bias") or have("ffn_up.bias")):
        gate_up_bias = (opt("ffn_gate.bias"), opt("ffn_up.bias"))
    mamba: dict[str, str | None] = {}
    if ssm:
        mamba = dict(ssm_in=b + "ssm_in.weight", ssm_conv1d=b + "ssm_conv1d.weight", ssm_conv1d_bias=opt("ssm_conv1d.bias"),
                     ssm_dt_bias=b + "ssm_dt.bias", ssm_a=b + "ssm_a", ssm_d=b + "ssm_d", ssm_norm=b + "ssm_norm.weight",
                     ssm_out=b + "ssm_out.weight")
    return LayerTensors(
        attn_norm=b + "attn_norm.weight", qkv=qkv, qkv_bias=qkv_bias, wo=None if ssm else b + "attn_output.weight",
        ffn_norm=b + "ffn_norm.weight", gate_up=gate_up, down=b + "ffn_down.weight",
        q_norm=b + "attn_q_norm.weight" if rules.qk_norm else None,
        k_norm=b + "attn_k_norm.weight" if rules.qk_norm else None,
        wo_bias=opt("attn_output.bias") if rules.extra_biases and not ssm else None,
        post_attention_norm=b + "post_attention_norm.weight" if rules.post_norms else None,
        gate_up_bias=gate_up_bias,
        down_bias=opt("ffn_down.bias") if rules.extra_biases else None,
        post_ffn_norm=b + "post_ffw_norm.weight" if rules.post_norms else None,
        **mamba,
    )


def _expected(cfg: ModelConfig) -> dict[str, tuple[tuple[int, ...], str]]:
    """name -> (dims in ggml order, the metadata that implies them) of every tensor read."""
    a = cfg.architecture + "."
    h = cfg.hidden
    hk = f"{a}embedding_length = {h}"
    out: dict[str, tuple[tuple[int, ...], str]] = {
        "token_embd.weight": ((h, cfg.vocab), f"{hk} and the vocabulary size {cfg.vocab}"),
        "output_norm.weight": ((h,), hk),
    }
    if not cfg.tied_embeddings:
        out["output.weight"] = ((h, cfg.vocab), f"{hk} and the vocabulary size {cfg.vocab}")
    if cfg.head_bias:
        out["output.bias"] = ((cfg.vocab,), f"the vocabulary size {cfg.vocab}")
    D = cfg.head_dim
    dk = f"{a}attention.key_length = {D}" if cfg.extra.get("key_length") else f"the head size {D}"
    arrays = cfg.extra.get("array_keys", set())

    def key(name: str, i: int, v: int) -> str:  # a per-layer array entry is named with its index
        return f"{a}{name}[{i}] = {v}" if a + name in arrays else f"{a}{name} = {v}"

    for i, (lt, ls) in enumerate(zip(cfg.layers, cfg.spec.layers)):
        H, KV, F = ls.attention.n_heads, ls.attention.n_kv_heads, ls.ffn
        hq = f"{key('attention.head_count', i, H)}, {dk}"
        hkv = f"{key('attention.head_count_kv', i, KV)}, {dk}"
        fk = key("feed_forward_length", i, F)
        out[lt.attn_norm] = ((h,), hk)
        out[lt.ffn_norm] = ((h,), hk)
        if lt.ssm_in:
            out.update(_expected_mamba2(lt, ls.mamba2, a, h, hk))
        elif len(lt.qkv) == 1:
            out[lt.qkv[0]] = ((h, (H + 2 * KV) * D), f"{hk}, {hq}, {hkv}")
        else:
            out[lt.qkv[0]] = ((h, H * D), f"{hk}, {hq}")
            out[lt.qkv[1]] = ((h, KV * D), f"{hk}, {hkv}")
            out[lt.qkv[2]] = ((h, KV * D), f"{hk}, {hkv}")
        if len(lt.qkv_bias) == 1:
            out[lt.qkv_bias[0]] = (((H + 2 * KV) * D,), f"{hq}, {hkv}")
        else:
            for name, n, why in zip(lt.qkv_bias, (H * D, KV * D, KV * D), (hq, hkv, hkv)):
                if name:
                    out[name] = ((n,), why)
        if lt.wo:
            out[lt.wo] = ((H * D, h), f"{hk}, {hq}")
        if lt.wo_bias:
            out[lt.wo_bias] = ((h,), hk)
        if lt.q_norm:
            out[lt.q_norm] = ((D,), dk)
            out[lt.k_norm] = ((D,), dk)
        if lt.post_attention_norm:
            out[lt.post_attention_norm] = ((h,), hk)
            out[lt.post_ffn_norm] = ((h,), hk)
        if len(lt.gate_up) == 1:
            out[lt.gate_up[0]] = ((h, 2 * F), f"{hk}, {fk} (ffn_up holds gate and up)")
        else:
            out[lt.gate_up[0]] = ((h, F), f"{hk}, {fk}")
            out[lt.gate_up[1]] = ((h, F), f"{hk}, {fk}")
        for name in lt.gate_up_bias:
            if name:
                out[name] = ((F,), fk)
        out[lt.down] = ((F, h), f"{hk}, {fk}")
        if lt.down_bias:
            out[lt.down_bias] = ((h,), hk)
    return out


def _expected_mamba2(lt: LayerTensors, s: Any, a: str, h: int, hk: str) -> dict[str, tuple[tuple[int, ...], str]]:
    """A Mamba-2 layer's tensors (ggml order; llama.cpp granite-hybrid.cpp load_arch_tensors)."""
    heads = f"{a}ssm.time_step_rank = {s.n_heads}"
    inner = f"{a}ssm.inner_size = {s.d_inner}"
    groups = f"{a}ssm.group_count = {s.n_groups}, {a}ssm.state_size = {s.d_state}"
    conv = f"{inner}, {groups}"
    out = {
        lt.ssm_in: ((h, s.d_in_proj), f"{hk}, {conv}, {heads} (z, x, B, C, dt)"),
        lt.ssm_conv1d: ((s.d_conv, s.conv_dim), f"{a}ssm.conv_kernel = {s.d_conv}, {conv}"),
        lt.ssm_dt_bias: ((s.n_heads,), heads),
        lt.ssm_a: ((1, s.n_heads), heads),
        lt.ssm_d: ((1, s.n_heads), heads),
        lt.ssm_norm: ((s.d_inner // s.n_groups, s.n_groups), f"{inner}, {a}ssm.group_count = {s.n_groups}"),
        lt.ssm_out: ((s.d_inner, h), f"{hk}, {inner}"),
    }
    if lt.ssm_conv1d_bias:
        out[lt.ssm_conv1d_bias] = ((s.conv_dim,), conv)
    return out


def _check_tensors(cfg: ModelConfig, reader: GGUFReader) -> None:
    """Every tensor the step reads is present with the shape the metadata implies; the error
    names the tensor and the keys."""
    for name, (dims, why) in _expected(cfg).items():
        t = reader.tensors.get(name)
        if t is None:
            raise GGUFError(f"tensor {name!r} is missing (architecture {cfg.architecture}: {why})")
        if t.dims != dims:
            raise GGUFError(f"tensor {name!r} has dims {list(t.dims)}, but the metadata ({why}) implies {list(dims)}")
    # A layer beyond block_count means the metadata and the tensors disagree.
    extra = f"blk.{cfg.n_layers}.attn_norm.weight"
    if extra in reader.tensors:
        raise GGUFError(f"tensor {extra!r} exists but {cfg.architecture}.block_count is {cfg.n_layers}")


class _Meta:
    """Typed, range-checked metadata getters whose errors name the key."""

    def __init__(self, reader: GGUFReader) -> None:
        self.md = reader.metadata
        self.types = reader.metadata_types

    @staticmethod
    def _absent(key: str, default: Any) -> Any:
        if default is ...:
            raise GGUFError(f"required metadata {key!r} is missing")
        return default

    def _type(self, key: str) -> str:
        t = self.types[key]
        if isinstance(t, tuple):
            return "ARRAY of " + GGUFValueType(t[1]).name
        return GGUFValueType(t).name

    def int(self, key: str, lo: int, hi: int, default: Any = ...) -> Any:
        if key not in self.md:
            return self._absent(key, default)
        if self.types[key] not in INTEGER_TYPES:
            raise GGUFError(f"metadata {key!r} must be an integer, got {self._type(key)} {self.md[key]!r:.60}")
        v = self.md[key]
        if not lo <= v <= hi:
            raise GGUFError(f"metadata {key!r} = {v} is out of range [{lo}, {hi}]")
        return v

    def per_layer(self, key: str, n_layers: int, lo: int, hi: int, default: Any = ...) -> list[int]:
        """An integer, or an array of one integer per layer (llama.cpp's get_key_or_arr)."""
        t = self.types.get(key)
        if isinstance(t, tuple):
            if len(t) != 2 or t[1] not in INTEGER_TYPES:
                raise GGUFError(f"metadata {key!r} must be an integer or an array of integers, got {self._type(key)}")
            arr = [int(v) for v in self.md[key]]
            if len(arr) != n_layers:
                raise GGUFError(f"metadata {key!r} has {len(arr)} entries, but block_count is {n_layers}")
            for i, v in enumerate(arr):
                if not lo <= v <= hi:
                    raise GGUFError(f"metadata {key!r}[{i}] = {v} is out of range [{lo}, {hi}]")
            return arr
        v = self.int(key, lo, hi, default=default)
        return list(v) if isinstance(v, list) else [v] * n_layers

    def swa_pattern(self, key: str, n_layers: int, default: int) -> list[bool]:
        """Which layers use the sliding window: an array of one bool per layer, or a period n
        (layer il is local unless il % n == n - 1; llama_hparams::set_swa_pattern)."""
        t = self.types.get(key)
        if isinstance(t, tuple):
            if len(t) != 2 or t[1] not in (GGUFValueType.BOOL, *INTEGER_TYPES):
                raise GGUFError(f"metadata {key!r} must be an integer or an array of bools, got {self._type(key)}")
            arr = [bool(v) for v in self.md[key]]
            if len(arr) != n_layers:
                raise GGUFError(f"metadata {key!r} has {len(arr)} entries, but block_count is {n_layers}")
            return arr
        n = self.int(key, 0, MAX_LAYERS, default=default)
        return [n == 0 or il % n < n - 1 for il in range(n_layers)]

    def float(self, key: str, lo: float, hi: float, *, open_lo: bool = False, default: Any = ...) -> Any:
        if key not in self.md:
            return self._absent(key, default)
        t = self.types[key]
        if t not in FLOAT_TYPES and t not in INTEGER_TYPES:
            raise GGUFError(f"metadata {key!r} must be a number, got {self._type(key)} {self.md[key]!r:.60}")
        v = float(self.md[key])
        if not math.isfinite(v) or v < lo or v > hi or (open_lo and v == lo):
            lb = "(" if open_lo else "["
            raise GGUFError(f"metadata {key!r} = {v} is out of range {lb}{lo}, {hi}]")
        return v

    def bool(self, key: str, default: Any = ...) -> Any:
        if key not in self.md:
            return self._absent(key, default)
        if self.types[key] != GGUFValueType.BOOL:
            raise GGUFError(f"metadata {key!r} must be a bool, got {self._type(key)}")
        return bool(self.md[key])

    def str(self, key: str, default: Any = ...) -> Any:
        if key not in self.md:
            return self._absent(key, default)
        if self.types[key] != GGUFValueType.STRING:
            raise GGUFError(f"metadata {key!r} must be a string, got {self._type(key)}")
        return self.md[key]
