"""Hugging Face checkpoints without a conversion step: ``Model.from_pretrained(directory)``.

Reads ``config.json``, the ``*.safetensors`` files (headers through the ``safetensors`` package;
data memory-mapped, bf16/f16/f32) and ``tokenizer.json`` / ``tokenizer_config.json``, checks
every config key's range and every tensor's name and shape first (a ``CheckpointError`` naming
the key or tensor, before anything is allocated), then writes the model as a GGUF file in
llama.cpp's layout (the names, the Q/K row permutation for Llama's RoPE pairing, metadata keys
of convert_hf_to_gguf.py), quantizing 2-D weights with this package's exact quantizers to the
format asked for (f16 / bf16 checkpoints kept as they are with ``dtype="f16"`` / ``"bf16"``), and
loads that file with ``Model.from_gguf``. One model code path serves both; the file (``save_gguf``
names where it stays) is what llama.cpp loads too.

Architectures (the GGUF architecture each becomes):
- LlamaForCausalLM (llama: Q/K rows permuted to llama.cpp's adjacent-pair RoPE order);
- Qwen2ForCausalLM (qwen2: Q/K/V biases);
- Qwen3ForCausalLM (qwen3: per-head q/k RMSNorm before RoPE);
- Gemma3ForCausalLM, text only (gemma3: embeddings times sqrt(hidden), GeGLU, q/k norms,
  post-attention and post-FFN norms, sliding-window layers from ``layer_types`` with their own
  RoPE base; Gemma's RMSNorm multiplies by (1 + w), so 1 is added to every norm weight as
  convert_hf_to_gguf.py's Gemma converters do);
- PhoneLMForCausalLM (BUPT's PhoneLM, mllmTeam/PhoneLM-0.5B/1.5B; the ``phonelm`` architecture
  of this package, which llama.cpp does not have): a Llama block with rotate-half RoPE and a
  ReLU-gated FFN, down(relu(gate(h)) * up(h)) (PhoneLMMLP of the published modeling_phonelm.py).
  That modeling file also rounds RoPE's cos and sin to 8-bit steps (k / 127 of their largest
  magnitude in the call; mllm's on-device IRoPE: k / 127), for phone NPUs; the exact float values
  are used here (each cos/sin entry differs by at most 1/254; tests/test_hf.py measures the logit
  difference that makes).

config.json keys are read in both of transformers' spellings: ``rope_theta`` / ``rope_scaling``
(and Gemma 3's ``rope_local_base_freq``), or v5's ``rope_parameters`` (one dict, or one per layer
type). RoPE scaling: none, linear, (Llama 3.1+) llama3, written as llama.cpp's converter does: a
``rope_freqs.weight`` tensor of per-pair frequency divisors; yarn and dynamic (Llama, Qwen2,
Qwen3) as _rope says.

tokenizer.json: a byte-level BPE becomes llama.cpp's ``gpt2`` vocabulary (tokens + merges, run by
`tokenizers`); a SentencePiece-style one (Gemma 3's: byte fallback, spaces as '▁') becomes its
``llama`` (SentencePiece) vocabulary, with scores from the merge ranks (_spm_vocab), run by this
package's SPM tokenizer as any Gemma 3 GGUF is. The checkpoint is loaded from the GGUF it was
converted to, so the directory and the file tokenize through one path, and llama.cpp reads the
same vocabulary.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

import slmkernels as sk

from .tokenizer import _BYTE_TOKEN, BYTE, CONTROL, NORMAL, SPM_SPACE, UNKNOWN, UNUSED, USER_DEFINED

ARCHITECTURES = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2", "Qwen3ForCausalLM": "qwen3",
                 "Gemma3ForCausalLM": "gemma3", "PhoneLMForCausalLM": "phonelm"}
# config.json's activation key, the value the architecture computes, and the default of the
# architecture's config class when the key is absent (PhoneLMConfig's is silu: refused)
_ACTIVATION = {"llama": ("hidden_act", "silu", "silu"), "qwen2": ("hidden_act", "silu", "silu"),
               "qwen3": ("hidden_act", "silu", "silu"),
               "gemma3": ("hidden_activation", "gelu_pytorch_tanh", "gelu_pytorch_tanh"),
               "phonelm": ("hidden_act", "relu", "silu")}
# checkpoint tensors no forward pass reads (buffers older transformers versions saved)
_IGNORED_SUFFIXES = (".rotary_emb.inv_freq",)
FORMATS = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q5_k", "q6_k")


class CheckpointError(ValueError):
    """A Hugging Face checkpoint this package cannot load: the message names the file, key or tensor."""


# ---- config ----

def _key(cfg: dict, name: str, kind: type, lo=None, hi=None, default: Any = ...) -> Any:
    if name not in cfg or cfg[name] is None:
        if default is ...:
            raise CheckpointError(f"config.json: required key {name!r} is missing")
        return default
    v = cfg[name]
    if kind is int and (isinstance(v, bool) or not isinstance(v, int)):
        raise CheckpointError(f"config.json: {name!r} must be an integer, got {v!r:.60}")
    if kind is float and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
        raise CheckpointError(f"config.json: {name!r} must be a finite number, got {v!r:.60}")
    if kind is bool and not isinstance(v, bool):
        raise CheckpointError(f"config.json: {name!r} must be true or false, got {v!r:.60}")
    if lo is not None and not lo <= v <= hi:
        raise CheckpointError(f"config.json: {name!r} = {v} is out of range [{lo}, {hi}]")
    return v


def read_config(directory: Path) -> dict:
    from .config import MAX_CONTEXT, MAX_FFN, MAX_HEAD_DIM, MAX_HEADS, MAX_HIDDEN, MAX_LAYERS, MAX_VOCAB

    p = directory / "config.json"
    try:
        cfg = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{directory}: no config.json (not a Hugging Face checkpoint directory)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{p}: unreadable: {e}") from None
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{p}: not a JSON object")
    archs = cfg.get("architectures")
    arch = archs[0] if isinstance(archs, list) and archs and isinstance(archs[0], str) else None
    if arch not in ARCHITECTURES:
        raise CheckpointError(f"config.json: architecture {arch!r} is not supported "
                              f"(supported: {', '.join(sorted(ARCHITECTURES))})")
    c = {"hf_arch": arch, "arch": ARCHITECTURES[arch]}
    c["hidden"] = _key(cfg, "hidden_size", int, 1, MAX_HIDDEN)
    c["n_layers"] = _key(cfg, "num_hidden_layers", int, 1, MAX_LAYERS)
    c["n_heads"] = _key(cfg, "num_attention_heads", int, 1, MAX_HEADS)
    c["n_kv_heads"] = _key(cfg, "num_key_value_heads", int, 1, c["n_heads"], default=c["n_heads"])
    if c["n_heads"] % c["n_kv_heads"]:
        raise CheckpointError(f"config.json: num_attention_heads {c['n_heads']} is not a multiple of "
                              f"num_key_value_heads {c['n_kv_heads']}")
    default_hd = c["hidden"] // c["n_heads"] if c["hidden"] % c["n_heads"] == 0 else ...
    c["head_dim"] = _key(cfg, "head_dim", int, 2, MAX_HEAD_DIM, default=default_hd)
    if c["head_dim"] % 2:
        raise CheckpointError(f"config.json: head_dim {c['head_dim']} is odd")
    c["ffn"] = _key(cfg, "intermediate_size", int, 1, MAX_FFN)
    c["vocab"] = _key(cfg, "vocab_size", int, 1, MAX_VOCAB)
    c["eps"] = _key(cfg, "rms_norm_eps", float, 1e-12, 1.0)
    c["context"] = _key(cfg, "max_position_embeddings", int, 1, MAX_CONTEXT, default=4096)
    c["tied"] = _key(cfg, "tie_word_embeddings", bool, default=c["arch"] == "gemma3")
    act_key, act, act_default = _ACTIVATION[c["arch"]]
    got = cfg.get(act_key, act_default)
    if c["arch"] == "gemma3" and got == "gelu_tanh":
        got = act  # the same function under its other name
    if got != act:
        raise CheckpointError(f"config.json: {act_key} {got!r} is not supported for {arch} ({act} only)")
    if _key(cfg, "attention_bias", bool, default=False) and c["arch"] != "qwen2":
        raise CheckpointError(f"config.json: attention_bias true is not supported for {arch}")
    if _key(cfg, "mlp_bias", bool, default=False):
        raise CheckpointError(f"config.json: mlp_bias true is not supported for {arch}")
    if c["arch"] in ("qwen2", "qwen3") and cfg.get("use_sliding_window"):
        raise CheckpointError(f"config.json: use_sliding_window is not supported for {arch} checkpoints")
    c["theta"], c["rope_linear"], c["rope_llama3"], c["rope_yarn"], c["rope_dynamic"] = _rope(
        cfg, "full_attention", default_theta=10000.0, arch=c["arch"])
    if c["arch"] == "gemma3":
        _gemma3(cfg, c)
    return c


# RoPE scaling types from_pretrained reads per architecture (beyond none and linear): the ones
# llama.cpp's converter writes and its graph runs for it, and transformers computes the same way
# (PhoneLM's modeling_phonelm.py computes its own RoPE: none or linear only)
_ROPE_TYPES = {"llama": ("llama3", "yarn", "dynamic"), "qwen2": ("yarn", "dynamic"), "qwen3": ("yarn", "dynamic")}


def _rope(cfg: dict, layer_type: str, default_theta: float,
          arch: str | None = None) -> tuple[float, float, dict | None, dict | None, bool]:
    """(base, linear scaling factor or 0, llama3 parameters or None, yarn parameters or None,
    whether the type is dynamic) of one layer type, from rope_parameters (transformers v5: one
    dict, or one per layer type) or rope_theta / rope_scaling (earlier versions). `arch`: which of
    _ROPE_TYPES this layer type may use (None: none and linear only).

    yarn (Qwen2.5 / Qwen3 long context): transformers' _compute_yarn_parameters with its defaults
    (beta_fast 32, beta_slow 1, truncated correction range, attention factor 1 + 0.1 ln factor)
    is ggml's rope_yarn as llama.cpp runs it from rope.scaling.type / factor /
    original_context_length; other values of those keys are refused. dynamic (NTK): transformers
    uses the plain frequencies up to max_position_embeddings and rescales the base past it;
    llama.cpp's converter writes no scaling, so neither do we, and from_pretrained refuses a
    context past max_position_embeddings."""
    rp = cfg.get("rope_parameters")
    if isinstance(rp, dict) and isinstance(rp.get(layer_type), dict):
        rp, where = rp[layer_type], f"rope_parameters[{layer_type!r}]"
    else:
        where = "rope_parameters"
    if isinstance(rp, dict):
        theta = _key(rp, "rope_theta", float, 1e-3, 1e12, default=default_theta)
        scaling = rp
    elif rp is not None:
        raise CheckpointError(f"config.json: rope_parameters must be an object, got {rp!r:.60}")
    else:
        where = "rope_scaling"
        theta = _key(cfg, "rope_theta", float, 1e-3, 1e12, default=default_theta)
        scaling = cfg.get("rope_scaling") or {}
        if not isinstance(scaling, dict):
            raise CheckpointError(f"config.json: rope_scaling must be an object, got {scaling!r:.60}")
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    allowed = _ROPE_TYPES.get(arch, ()) if arch else ()
    if kind in ("default", None):
        return theta, 0.0, None, None, False
    if kind == "linear":
        return theta, _key(scaling, "factor", float, 1.0, 1e6), None, None, False
    if kind == "dynamic" and kind in allowed:
        _key(scaling, "factor", float, 1.0, 1e6)
        return theta, 0.0, None, None, True
    if kind == "yarn" and kind in allowed:
        orig = _key(scaling, "original_max_position_embeddings", int, 1, 1 << 24)
        factor = _key(scaling, "factor", float, 1.0, 1e6)
        for k, default in (("beta_fast", 32), ("beta_slow", 1), ("extrapolation_factor", 1), ("truncate", True)):
            v = scaling.get(k)
            if v is not None and v != default:
                raise CheckpointError(f"config.json: {where} yarn {k} = {v!r:.20} is not supported (llama.cpp's yarn "
                                      f"runs {k} = {default})")
        for k in ("attention_factor", "attn_factor", "mscale", "mscale_all_dim"):
            if scaling.get(k) is not None:
                raise CheckpointError(f"config.json: {where} yarn {k} is not supported (llama.cpp's yarn scales "
                                      "cos/sin by 1 + 0.1 ln factor)")
        return theta, 0.0, None, {"factor": factor, "original": orig}, False
    if kind == "llama3" and kind in allowed:
        # transformers' _compute_llama3_parameters defaults (the keys Llama 3.1/3.2 configs carry)
        p = {"factor": _key(scaling, "factor", float, 1.0, 1e6, default=8.0),
             "low": _key(scaling, "low_freq_factor", float, 1e-6, 1e6, default=1.0),
             "high": _key(scaling, "high_freq_factor", float, 1e-6, 1e6, default=4.0),
             "original": _key(scaling, "original_max_position_embeddings", int, 1, 1 << 24, default=8192)}
        if not p["high"] > p["low"]:
            raise CheckpointError(f"config.json: {where} high_freq_factor must be above low_freq_factor")
        return theta, 0.0, p, None, False
    raise CheckpointError(f"config.json: {where} type {kind!r} is not supported by from_pretrained for this "
                          f"architecture (supported: {', '.join(('default', 'linear') + allowed)})")


def llama3_freq_factors(head_dim: int, base: float, factor: float = 32.0, low: float = 1.0, high: float = 4.0,
                        original_context: int = 8192) -> np.ndarray:
    """Llama 3.1+ RoPE frequency factors, per pair: the divisor of its frequency (Meta's reference
    apply_scaling; stored as llama.cpp's convert_hf_to_gguf.py stores them, rope_freqs.weight)."""
    freqs = 1.0 / base ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    low_wl, high_wl = original_context / low, original_context / high
    out = []
    for fr in freqs:
        wl = 2 * math.pi / fr
        if wl < high_wl:
            out.append(1.0)
        elif wl > low_wl:
            out.append(factor)
        else:
            smooth = (original_context / wl - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, dtype=np.float32)


def _gemma3(cfg: dict, c: dict) -> None:
    """Gemma 3's sliding-window layers, their RoPE base, the attention scale and the soft-caps."""
    n = c["n_layers"]
    types = cfg.get("layer_types")
    if types is None:  # earlier configs: a period (layer il is global when (il + 1) % period == 0)
        period = _key(cfg, "sliding_window_pattern", int, 1, 1 << 10, default=6)
        types = ["full_attention" if (i + 1) % period == 0 else "sliding_attention" for i in range(n)]
    if not (isinstance(types, list) and len(types) == n
            and all(t in ("sliding_attention", "full_attention") for t in types)):
        raise CheckpointError(f"config.json: layer_types must list 'sliding_attention' or 'full_attention' for "
                              f"each of the {n} layers, got {types!r:.80}")
    c["local"] = [t == "sliding_attention" for t in types]
    c["window"] = _key(cfg, "sliding_window", int, 1, c["context"], default=4096) if any(c["local"]) else 0
    # the local layers' base: rope_local_base_freq (earlier configs) or their own rope_parameters
    local_default = _key(cfg, "rope_local_base_freq", float, 1e-3, 1e12, default=10000.0)
    c["theta_local"], local_linear = _rope(cfg, "sliding_attention", default_theta=local_default)[:2]
    if isinstance(cfg.get("rope_parameters"), dict) and "sliding_attention" not in cfg["rope_parameters"]:
        c["theta_local"], local_linear = local_default, 0.0  # one dict: it describes the global layers
    if local_linear:
        raise CheckpointError("config.json: RoPE scaling on Gemma 3's sliding-window layers is not supported")
    # scores scale by query_pre_attn_scalar^-1/2; the GGUF (llama.cpp's gemma3) implies head_dim,
    # or hidden / heads for the 62-layer 27B model
    implied = c["hidden"] // c["n_heads"] if n == 62 else c["head_dim"]
    qs = _key(cfg, "query_pre_attn_scalar", float, 1e-6, 1e9, default=implied)
    if qs != implied:
        raise CheckpointError(f"config.json: query_pre_attn_scalar {qs} must be {implied} for this model "
                              "(the attention scale llama.cpp's gemma3 applies)")
    if cfg.get("attn_logit_softcapping") is not None:
        raise CheckpointError("config.json: attn_logit_softcapping is not supported for Gemma 3 (null only)")
    c["final_softcap"] = _key(cfg, "final_logit_softcapping", float, 1e-6, 1e6, default=0.0)


# ---- safetensors ----

_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}


class _Tensors:
    """Names -> (file, dtype, shape, byte range) from the safetensors headers; data memory-mapped."""

    def __init__(self, directory: Path):
        from safetensors import safe_open

        files = sorted(directory.glob("*.safetensors"))
        if not files:
            raise CheckpointError(f"{directory}: no *.safetensors files")
        self.where: dict[str, tuple[Path, str, tuple[int, ...], int, int]] = {}
        for f in files:
            try:
                with safe_open(str(f), framework="numpy") as st:
                    names = list(st.keys())
                    info = {n: (st.get_slice(n).get_dtype(), tuple(st.get_slice(n).get_shape())) for n in names}
                with open(f, "rb") as fh:
                    n_header = int.from_bytes(fh.read(8), "little")
                    header = json.loads(fh.read(n_header))
            except Exception as e:  # noqa: BLE001 - any unreadable file is one clear error
                raise CheckpointError(f"{f}: not a readable safetensors file: {e}") from None
            for n in names:
                dtype, shape = info[n]
                if dtype not in _DTYPES:
                    raise CheckpointError(f"{f}: tensor {n!r} has dtype {dtype} (supported: F32, F16, BF16)")
                b0, b1 = header[n]["data_offsets"]
                self.where[n] = (f, dtype, shape, 8 + n_header + b0, 8 + n_header + b1)
        self._maps: dict[Path, np.memmap] = {}

    def shape(self, name: str):
        return self.where[name][2] if name in self.where else None

    def dtype(self, name: str) -> str:
        return self.where[name][1]

    def raw(self, name: str) -> np.ndarray:
        f, dtype, shape, b0, b1 = self.where[name]
        if f not in self._maps:
            self._maps[f] = np.memmap(f, dtype=np.uint8, mode="r")
        return self._maps[f][b0:b1].view(_DTYPES[dtype]).reshape(shape)

    def f32(self, name: str) -> np.ndarray:
        a = self.raw(name)
        if self.dtype(name) == "BF16":
            return (a.astype(np.uint32) << 16).view(np.float32)
        return np.asarray(a, dtype=np.float32)


def _expected(c: dict) -> dict[str, tuple[int, ...]]:
    """Every tensor the architecture reads -> its shape implied by config.json."""
    H, KV, D, hid, F = c["n_heads"], c["n_kv_heads"], c["head_dim"], c["hidden"], c["ffn"]
    t = {"model.embed_tokens.weight": (c["vocab"], hid), "model.norm.weight": (hid,)}
    if not c["tied"]:
        t["lm_head.weight"] = (c["vocab"], hid)
    for i in range(c["n_layers"]):
        p = f"model.layers.{i}."
        t.update({p + "input_layernorm.weight": (hid,), p + "post_attention_layernorm.weight": (hid,),
                  p + "self_attn.q_proj.weight": (H * D, hid), p + "self_attn.k_proj.weight": (KV * D, hid),
                  p + "self_attn.v_proj.weight": (KV * D, hid), p + "self_attn.o_proj.weight": (hid, H * D),
                  p + "mlp.gate_proj.weight": (F, hid), p + "mlp.up_proj.weight": (F, hid),
                  p + "mlp.down_proj.weight": (hid, F)})
        if c["arch"] == "qwen2":
            t.update({p + "self_attn.q_proj.bias": (H * D,), p + "self_attn.k_proj.bias": (KV * D,),
                      p + "self_attn.v_proj.bias": (KV * D,)})
        if c["arch"] in ("qwen3", "gemma3"):
            t.update({p + "self_attn.q_norm.weight": (D,), p + "self_attn.k_norm.weight": (D,)})
        if c["arch"] == "gemma3":
            t.update({p + "pre_feedforward_layernorm.weight": (hid,), p + "post_feedforward_layernorm.weight": (hid,)})
    return t


def _check_tensors(c: dict, ts: "_Tensors") -> None:
    """Every tensor read is present with its shape; no tensor is left unread (an unread one means
    config.json describes another model, e.g. biases it does not announce)."""
    want = _expected(c)
    for name, shape in want.items():
        got = ts.shape(name)
        if got is None:
            raise CheckpointError(f"tensor {name!r} is missing from the checkpoint")
        if got != shape:
            raise CheckpointError(f"tensor {name!r} has shape {got}, expected {shape} from config.json")
    extra = [n for n in ts.where if n not in want and not n.endswith(_IGNORED_SUFFIXES)
             and not (c["tied"] and n == "lm_head.weight")]
    if extra:
        raise CheckpointError(f"tensor {sorted(extra)[0]!r} is not read by {c['hf_arch']} as config.json describes it"
                              + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""))


# ---- tokenizer ----

def _tokenizer_meta(directory: Path, vocab: int) -> dict | None:
    """GGUF tokenizer metadata from tokenizer.json / tokenizer_config.json (None when there is no
    tokenizer.json): a byte-level BPE becomes llama.cpp's ``gpt2`` vocabulary (tokens + merges), a
    SentencePiece-style BPE (byte fallback, '▁' for spaces: Gemma 3's) its ``llama`` one (tokens +
    scores + types, see _spm_vocab)."""
    p = directory / "tokenizer.json"
    if not p.exists():
        return None
    try:
        tj = json.loads(p.read_text(encoding="utf-8"))
        tc = json.loads((directory / "tokenizer_config.json").read_text(encoding="utf-8")) \
            if (directory / "tokenizer_config.json").exists() else {}
        template = _chat_template(directory, tc)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{p}: unreadable: {e}") from None
    if not isinstance(tj, dict) or not isinstance(tc, dict):
        raise CheckpointError(f"{p}: not a JSON object")
    model = tj.get("model") or {}
    if not isinstance(model, dict) or model.get("type") != "BPE":
        raise CheckpointError(f"{p}: only BPE tokenizers are supported, got "
                              f"{model.get('type') if isinstance(model, dict) else model!r:.40}")
    added = tj.get("added_tokens") or []
    for what, ok in (("model.vocab", isinstance(model.get("vocab"), dict)),
                     ("model.merges", isinstance(model.get("merges") or [], list)),
                     ("added_tokens", isinstance(added, list) and all(isinstance(x, dict) for x in added))):
        if not ok:
            raise CheckpointError(f"{p}: {what} has the wrong JSON type")
    if not _has_byte_level(tj.get("pre_tokenizer")):
        return _spm_vocab(p, tj, tc, vocab) | {"template": template}
    tokens = [f"[PAD{i}]" for i in range(vocab)]
    types = [UNUSED] * vocab  # until set
    for tok, i in model["vocab"].items():
        if 0 <= i < vocab:
            tokens[i], types[i] = tok, NORMAL
    for at in tj.get("added_tokens", []):
        i = at.get("id")
        if isinstance(i, int) and 0 <= i < vocab:
            tokens[i] = at["content"]
            types[i] = CONTROL if at.get("special") else USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]

    def tid(v):
        v = v.get("content") if isinstance(v, dict) else v
        return tokens.index(v) if isinstance(v, str) and v in tokens else None

    return dict(model="gpt2", tokens=tokens, types=types, merges=merges, bos=tid(tc.get("bos_token")),
                eos=tid(tc.get("eos_token")), template=template)


def _chat_template(directory: Path, tc: dict) -> str | None:
    """The chat template: chat_template.jinja (transformers v5 saves it there), chat_template.json,
    or tokenizer_config.json's chat_template (a string, or a list of named ones: 'default')."""
    if (directory / "chat_template.jinja").exists():
        return (directory / "chat_template.jinja").read_text(encoding="utf-8")
    t = tc.get("chat_template")
    if (directory / "chat_template.json").exists():
        t = json.loads((directory / "chat_template.json").read_text(encoding="utf-8"))
        t = t.get("chat_template") if isinstance(t, dict) else None
    if isinstance(t, list):
        t = next((x.get("template") for x in t if isinstance(x, dict) and x.get("name") == "default"), None)
    return t if isinstance(t, str) else None


def _has_byte_level(node) -> bool:
    """Whether a tokenizer.json pre-tokenizer (possibly a Sequence of them) includes ByteLevel."""
    if not isinstance(node, dict):
        return False
    subs = node.get("pretokenizers")
    return node.get("type") == "ByteLevel" or any(_has_byte_level(n) for n in (subs if isinstance(subs, list) else []))


def _spm_space_prefix(p: Path, tj: dict, tokens: dict[str, int]) -> tuple[bool, bool]:
    """(whether '▁' is put before each text, whether spaces are escaped by the normalizer) of a
    SentencePiece-style tokenizer.json, or a CheckpointError for a pipeline llama.cpp's SPM
    tokenizer cannot reproduce. That tokenizer (llama-vocab.cpp, LLAMA_VOCAB_TYPE_SPM) replaces
    every space by '▁' and, with add_space_prefix, puts one '▁' before the text and before each
    text that follows a special token, whatever the text starts with; it never splits the text."""
    norm, pre = tj.get("normalizer"), tj.get("pre_tokenizer")
    steps = norm.get("normalizers") if isinstance(norm, dict) and norm.get("type") == "Sequence" else [norm]
    if not isinstance(steps or [], list):
        raise CheckpointError(f"{p}: normalizer Sequence without a list of normalizers")
    replace = prepend = False
    for s in steps or []:
        if s is None:
            continue
        if not isinstance(s, dict):
            raise CheckpointError(f"{p}: normalizer {s!r:.60} is not an object")
        if s.get("type") == "Replace" and s.get("pattern") == {"String": " "} and s.get("content") == SPM_SPACE:
            replace = True  # Gemma's: spaces written as '▁', nothing prepended
        elif s.get("type") == "Prepend" and s.get("prepend") == SPM_SPACE:
            prepend = True  # Llama 2's (with Replace): '▁' before each text between added tokens
        else:
            raise CheckpointError(f"{p}: normalizer {s.get('type')!r} ({json.dumps(s)[:80]}) is not supported for "
                                  "a SentencePiece-style tokenizer (Replace ' ' -> '▁' and Prepend '▁' are)")
    pres = pre.get("pretokenizers") if isinstance(pre, dict) and pre.get("type") == "Sequence" else [pre]
    if not isinstance(pres or [], list):
        raise CheckpointError(f"{p}: pre_tokenizer Sequence without a list of pre-tokenizers")
    metaspace = False
    for s in pres or []:
        if s is None:
            continue
        kind = s.get("type") if isinstance(s, dict) else None
        if kind == "Split" and replace and s.get("pattern") == {"String": " "} and not s.get("invert"):
            continue  # splits on spaces the normalizer has already replaced: a no-op (Gemma 3's)
        if kind == "Metaspace" and s.get("replacement", SPM_SPACE) == SPM_SPACE:
            scheme = s.get("prepend_scheme", "always" if s.get("add_prefix_space", True) else "never")
            if scheme != "never":
                # 'always' skips a text that already starts with a space, 'first' every text after
                # an added token: neither is llama.cpp's add_space_prefix
                raise CheckpointError(f"{p}: a Metaspace pre-tokenizer with prepend_scheme {scheme!r} is not "
                                      "supported (only 'never', or a Prepend '▁' normalizer)")
            if s.get("split", True):
                # it splits the text before each '▁'; the same as not splitting while no token
                # holds a '▁' after its first character
                bad = next((t for t in tokens if SPM_SPACE in t[1:]), None)
                if bad is not None:
                    raise CheckpointError(f"{p}: the Metaspace pre-tokenizer splits words, but token {bad!r} spans "
                                          "a word boundary: not expressible as a SentencePiece vocabulary")
            metaspace = True
            continue
        raise CheckpointError(f"{p}: pre-tokenizer {kind!r} is not supported for a SentencePiece-style tokenizer "
                              "(none, Metaspace, or Split on ' ' after a Replace ' ' -> '▁' normalizer)")
    if not (replace or metaspace):
        raise CheckpointError(f"{p}: a BPE tokenizer with neither a ByteLevel pre-tokenizer nor spaces written as "
                              "'▁' (Replace normalizer or Metaspace) is not supported")
    return prepend, replace


def _spm_vocab(p: Path, tj: dict, tc: dict, vocab: int) -> dict:
    """llama.cpp's SentencePiece (``llama``) vocabulary for a SentencePiece-style BPE tokenizer.json
    (Gemma 3's: a BPE over '▁'-escaped text with byte fallback, as transformers' SpmConverter writes
    it from tokenizer.model, merges generated from the vocabulary).

    llama.cpp's SPM tokenizer (llm_tokenizer_spm_session) repeatedly merges the adjacent pair whose
    concatenation is the highest-scoring token, leftmost first, then writes a piece that is not a
    token as its UTF-8 bytes' <0xNN> tokens. A BPE merges the pair of lowest merge rank. The two
    agree when each token's score orders it as its merges' rank does and every pair that
    concatenates to a token is one of its merges; so a token's score is minus the rank of its
    first merge (transformers built those merges sorted by the SentencePiece scores, so this
    ordering is tokenizer.model's), and a tokenizer.json with a pair that forms a token but is not
    a merge is refused (SPM would merge it, the BPE never does). Tokens: the model's vocabulary and
    the added tokens by id; ids at or past config.json's vocab_size are dropped and free ids are
    '[PADi]' (as convert_hf_to_gguf.py's _create_vocab_sentencepiece). Types: <0xNN> BYTE, added
    special CONTROL, other added USER_DEFINED, the unk token UNKNOWN, the rest NORMAL."""
    model = tj["model"]
    if not model.get("byte_fallback"):
        raise CheckpointError(f"{p}: a BPE tokenizer without a ByteLevel pre-tokenizer must have byte_fallback "
                              "(SentencePiece-style) to be converted")
    for key in ("continuing_subword_prefix", "end_of_word_suffix"):
        if model.get(key):
            raise CheckpointError(f"{p}: model.{key} is not supported for a SentencePiece-style tokenizer")
    if model.get("ignore_merges"):
        raise CheckpointError(f"{p}: model.ignore_merges is not supported for a SentencePiece-style tokenizer")
    tokens = [f"[PAD{i}]" for i in range(vocab)]
    types = [UNUSED] * vocab
    for t, i in model["vocab"].items():
        if not isinstance(i, int) or not isinstance(t, str):
            raise CheckpointError(f"{p}: model.vocab entry {t!r:.40}: {i!r:.20} is not a string -> id")
        if 0 <= i < vocab:
            tokens[i] = t
            types[i] = BYTE if _BYTE_TOKEN.fullmatch(t) else UNKNOWN if t == model.get("unk_token") else NORMAL
    text_ids = {t: i for i, t in enumerate(tokens) if types[i] != UNUSED}
    add_space_prefix, replaced = _spm_space_prefix(p, tj, text_ids)
    for at in tj.get("added_tokens") or []:
        i, content = at.get("id"), at.get("content")
        if not isinstance(i, int) or not isinstance(content, str) or not content:
            raise CheckpointError(f"{p}: added token {json.dumps(at)[:80]} has no id or content")
        if any(at.get(k) for k in ("lstrip", "rstrip", "single_word")):
            raise CheckpointError(f"{p}: added token {content!r} has lstrip/rstrip/single_word, which llama.cpp's "
                                  "tokenizer does not do")
        if 0 <= i < vocab:
            if at.get("normalized") and replaced:
                content = content.replace(SPM_SPACE, " ")  # matched after the normalizer: its spaces are raw spaces
            tokens[i] = content
            types[i] = CONTROL if at.get("special") else USER_DEFINED
    text_ids = {t: i for i, t in enumerate(tokens) if types[i] != UNUSED}
    # merges -> the rank of each token's first merge
    first_rank: dict[str, int] = {}
    pairs: set[tuple[str, str]] = set()
    merges = model.get("merges") or []
    for r, m in enumerate(merges):
        parts = m.split(" ") if isinstance(m, str) else m
        if not (isinstance(parts, list) and len(parts) == 2 and all(isinstance(x, str) and x for x in parts)):
            raise CheckpointError(f"{p}: merges[{r}] = {m!r:.60} is not two tokens")
        left, right = parts
        if left not in model["vocab"] or right not in model["vocab"] or left + right not in model["vocab"]:
            raise CheckpointError(f"{p}: merges[{r}] = {m!r:.60} names a token not in the vocabulary")
        pairs.add((left, right))
        first_rank.setdefault(left + right, r)
    for t, i in text_ids.items():
        if types[i] != NORMAL:
            continue
        last = len(t) - 1
        for k in range(1, len(t)):
            left, right = t[:k], t[k:]
            # SPM can form t from two symbols: each a token or a single character
            if (k == 1 or left in text_ids) and (k == last or right in text_ids) and (left, right) not in pairs:
                raise CheckpointError(
                    f"{p}: token {t!r} can be formed from {left!r} + {right!r}, which is not one of the merges: this "
                    "BPE cannot be written as a SentencePiece vocabulary (llama.cpp's merges any adjacent pair "
                    "that forms a token)")
    never = -float(len(merges) + 1)  # below every merge: the tokens no merge forms
    scores = [-float(first_rank[t]) if t in first_rank else never for t in tokens]

    def tid(key: str, default=None):
        v = tc.get(key, default)
        v = v.get("content") if isinstance(v, dict) else v
        return text_ids.get(v) if isinstance(v, str) else None

    bos, eos = tid("bos_token"), tid("eos_token")
    add_bos = tc.get("add_bos_token")
    if not isinstance(add_bos, bool):
        add_bos = bos is not None and _post_processor_adds(tj, tokens[bos], first=True)
    add_eos = tc.get("add_eos_token")
    if not isinstance(add_eos, bool):
        add_eos = eos is not None and _post_processor_adds(tj, tokens[eos], first=False)
    if add_bos and bos is None:
        raise CheckpointError(f"{p}: add_bos_token is true but the bos_token is not in the vocabulary")
    if add_eos and eos is None:
        raise CheckpointError(f"{p}: add_eos_token is true but the eos_token is not in the vocabulary")
    return dict(model="llama", tokens=tokens, types=types, scores=scores, bos=bos, eos=eos,
                unk=tid("unk_token", model.get("unk_token")), pad=tid("pad_token"), add_bos=add_bos,
                add_eos=add_eos, add_space_prefix=add_space_prefix)


def _post_processor_adds(tj: dict, text: str, first: bool) -> bool:
    """Whether tokenizer.json's TemplateProcessing puts the special token `text` first (or last)
    around a single sequence, as Gemma's '<bos> $A'."""
    pp = tj.get("post_processor")
    procs = pp.get("processors") if isinstance(pp, dict) and pp.get("type") == "Sequence" else [pp]
    for q in procs if isinstance(procs, list) else []:
        if isinstance(q, dict) and q.get("type") == "TemplateProcessing" and isinstance(q.get("single"), list) \
                and q["single"]:
            end = q["single"][0 if first else -1]
            if isinstance(end, dict) and (end.get("SpecialToken") or {}).get("id") == text:
                return True
    return False


# ---- GGUF ----

def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF's rotate-half Q/K rows -> llama.cpp's adjacent-pair order (convert_hf_to_gguf.py
    LlamaModel.permute)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(directory: str | os.PathLike[str], path: str | os.PathLike[str], *, dtype: str = "q8_0") -> Path:
    """Converts a Hugging Face checkpoint directory into a GGUF file at `path` (see the module
    docstring); everything is checked before the file is created."""
    from gguf import GGMLQuantizationType, GGUFWriter, RopeScalingType

    directory = Path(directory)
    if not isinstance(dtype, str) or dtype.lower() not in FORMATS:
        raise ValueError(f"dtype must be one of {', '.join(FORMATS)}, got {dtype!r}")
    dtype = dtype.lower()
    c = read_config(directory)
    ts = _Tensors(directory)
    _check_tensors(c, ts)
    tok = _tokenizer_meta(directory, c["vocab"])

    a = c["arch"]
    w = GGUFWriter(str(path), a)
    w.add_name(directory.name)
    w.add_context_length(c["context"])
    w.add_embedding_length(c["hidden"])
    w.add_block_count(c["n_layers"])
    w.add_feed_forward_length(c["ffn"])
    w.add_head_count(c["n_heads"])
    w.add_head_count_kv(c["n_kv_heads"])
    w.add_key_length(c["head_dim"])
    w.add_value_length(c["head_dim"])
    w.add_rope_dimension_count(c["head_dim"])
    w.add_rope_freq_base(c["theta"])
    if c["rope_linear"]:
        w.add_rope_scaling_type(RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(c["rope_linear"])
    if c["rope_yarn"]:  # as convert_hf_to_gguf.py writes it
        w.add_rope_scaling_type(RopeScalingType.YARN)
        w.add_rope_scaling_factor(c["rope_yarn"]["factor"])
        w.add_rope_scaling_orig_ctx_len(c["rope_yarn"]["original"])
    w.add_layer_norm_rms_eps(c["eps"])
    if a == "gemma3":
        if c["window"]:
            w.add_sliding_window(c["window"])
            w.add_sliding_window_pattern(c["local"])  # one bool per layer: true = sliding window
        w.add_rope_freq_base_swa(c["theta_local"])
        if c["final_softcap"]:
            w.add_final_logit_softcapping(c["final_softcap"])
    if tok and tok["model"] == "gpt2":
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre({"qwen2": "qwen2", "qwen3": "qwen2", "phonelm": "smollm"}.get(a, "default"))
        w.add_token_list(tok["tokens"])
        w.add_token_types(tok["types"])
        w.add_token_merges(tok["merges"])
    elif tok:  # SentencePiece, as convert_hf_to_gguf.py's _set_vocab_sentencepiece writes it
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        w.add_token_list(tok["tokens"])
        w.add_token_scores(tok["scores"])
        w.add_token_types(tok["types"])
        for key in ("unk", "pad"):
            if tok[key] is not None:
                getattr(w, f"add_{key}_token_id")(tok[key])
        w.add_add_bos_token(tok["add_bos"])
        w.add_add_eos_token(tok["add_eos"])
        w.add_add_space_prefix(tok["add_space_prefix"])
    if tok:
        if tok["bos"] is not None:
            w.add_bos_token_id(tok["bos"])
        if tok["eos"] is not None:
            w.add_eos_token_id(tok["eos"])
        if tok["template"]:
            w.add_chat_template(tok["template"])

    def put(gname: str, x: np.ndarray, quantize: bool):
        if quantize and x.ndim == 2:
            if dtype in ("f16", "bf16") or x.shape[1] % sk.formats()[dtype]["block_size"]:
                fmt = dtype if dtype in ("f16", "bf16") else "f16"
            else:
                fmt = dtype
            if fmt != "f32":
                q = sk.quantize(np.ascontiguousarray(x, np.float32), fmt)
                w.add_tensor(gname, np.asarray(q.data).reshape(x.shape[0], -1),
                             raw_dtype=GGMLQuantizationType[fmt.upper()])
                return
        w.add_tensor(gname, np.ascontiguousarray(x, np.float32))

    def g(name):
        return ts.f32(name)

    def norm(name):  # Gemma's RMSNorm scales by (1 + w): stored as llama.cpp reads it
        return g(name) + np.float32(1.0) if a == "gemma3" else g(name)

    put("token_embd.weight", g("model.embed_tokens.weight"), True)
    if c["rope_llama3"]:
        r = c["rope_llama3"]
        put("rope_freqs.weight", llama3_freq_factors(c["head_dim"], c["theta"], r["factor"], r["low"], r["high"],
                                                     r["original"]), False)
    for i in range(c["n_layers"]):
        p, b = f"model.layers.{i}.", f"blk.{i}."
        q, k = g(p + "self_attn.q_proj.weight"), g(p + "self_attn.k_proj.weight")
        if a == "llama":
            q, k = _permute(q, c["n_heads"]), _permute(k, c["n_kv_heads"])
        put(b + "attn_norm.weight", norm(p + "input_layernorm.weight"), False)
        put(b + "attn_q.weight", q, True)
        put(b + "attn_k.weight", k, True)
        put(b + "attn_v.weight", g(p + "self_attn.v_proj.weight"), True)
        if a == "qwen2":
            for n in ("q", "k", "v"):
                put(b + f"attn_{n}.bias", g(p + f"self_attn.{n}_proj.bias"), False)
        if a in ("qwen3", "gemma3"):
            put(b + "attn_q_norm.weight", norm(p + "self_attn.q_norm.weight"), False)
            put(b + "attn_k_norm.weight", norm(p + "self_attn.k_norm.weight"), False)
        put(b + "attn_output.weight", g(p + "self_attn.o_proj.weight"), True)
        if a == "gemma3":  # post_attention_layernorm is the attention branch's post-norm there
            put(b + "post_attention_norm.weight", norm(p + "post_attention_layernorm.weight"), False)
            put(b + "ffn_norm.weight", norm(p + "pre_feedforward_layernorm.weight"), False)
            put(b + "post_ffw_norm.weight", norm(p + "post_feedforward_layernorm.weight"), False)
        else:
            put(b + "ffn_norm.weight", g(p + "post_attention_layernorm.weight"), False)
        put(b + "ffn_gate.weight", g(p + "mlp.gate_proj.weight"), True)
        put(b + "ffn_up.weight", g(p + "mlp.up_proj.weight"), True)
        put(b + "ffn_down.weight", g(p + "mlp.down_proj.weight"), True)
    put("output_norm.weight", norm("model.norm.weight"), False)
    if not c["tied"]:
        put("output.weight", g("lm_head.weight"), True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return Path(path)


def from_pretrained(directory: str | os.PathLike[str], *, dtype: str = "q8_0", save_gguf=None, **model_kw):
    """A Model from a Hugging Face checkpoint directory (see the module docstring). `save_gguf`: a
    path to keep the converted file at (llama.cpp loads it too); otherwise a temporary file,
    removed once mapped."""
    from .runtime import Model

    ctx = model_kw.get("context")
    if isinstance(ctx, int) and not isinstance(ctx, bool):
        c = read_config(Path(directory))
        if c["rope_dynamic"] and ctx > c["context"]:
            raise CheckpointError(f"config.json: dynamic RoPE scaling is exact only up to max_position_embeddings "
                                  f"({c['context']}); context={ctx} is past it")
    if save_gguf is not None:
        return Model.from_gguf(write_gguf(directory, save_gguf, dtype=dtype), **model_kw)
    fd, tmp = tempfile.mkstemp(suffix=".gguf", prefix="slmk-hf-")
    os.close(fd)
    try:
        write_gguf(directory, tmp, dtype=dtype)
        return Model.from_gguf(tmp, **model_kw)  # mapped: the file can go
    finally:
        os.unlink(tmp)
