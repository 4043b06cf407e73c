"""A float64 numpy forward pass of every supported architecture as GGUF stores it: the
reference the runtime is checked against on tiny random-weight files (tests/tiny_models.py)
and on the real SmolLM2 file.

Written from the published formulas, reading the file with the ``gguf`` package (not our
reader) and dequantizing with ``gguf.quants.dequantize``; the metadata conventions are
llama.cpp's (src/models/<arch>.cpp, src/llama-model.cpp, gguf-py constants):
- RMSNorm (Zhang & Sennrich 2019): x / sqrt(mean(x^2) + eps) * w; Gemma 3's (1 + w) is already
  folded into the stored weights by the converter.
- RoPE (Su et al. 2021): pair i of the first rotary_dim dims turns by p * base^(-2i/rot) / f_i,
  pairs (2i, 2i+1) ("normal": llama, mistral, granite, smollm3) or (i, i + rot/2) ("neox":
  qwen2, qwen3, phi3, gemma3); f_i = rope_freqs (Llama 3) or LongRoPE's short/long factors
  (Ding et al. 2024: long when the context exceeds the original one; cos and sin times
  rope.scaling.attn_factor); linear scaling divides positions by the factor; YaRN (Peng et al.
  2023) ramps between interpolation and extrapolation and scales cos/sin by 1 + 0.1 ln(factor).
  smollm3: no RoPE on layers il with (il + 1) % 4 == 0; granite: none when
  rope.scaling.finetuned is false.
- Attention: softmax(q k^T * scale) v over keys at positions p' <= p (and p - p' < window on
  sliding-window layers), GQA head h reads KV head h / (H / KV); scale = 1/sqrt(head_dim) unless
  granite's attention.scale (gemma3 27B: 1/sqrt(hidden / heads)); optional per-head q/k RMSNorm
  before RoPE (qwen3, gemma3).
- Gemma 3: embeddings times sqrt(hidden); post-attention and post-FFN norms before each residual
  add; local layers (attention.sliding_window_pattern: a period n, layer il local unless
  il % n == n - 1, or one bool per layer) use base rope.freq_base_swa (default 10000) unscaled;
  FFN gelu_tanh(g) * u with gelu_tanh(x) = 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3)));
  logits soft-capped by final_logit_softcapping.
- Granite: embeddings times embedding_scale, each residual branch times residual_scale, logits
  divided by logit_scale.
- granitehybrid (Granite 4.0 H): granite's rules; a layer whose attention.head_count_kv entry is
  0 mixes tokens with Mamba-2 (Dao & Gu 2024; tests/ssm_reference.py mamba2_mixer, sized by the
  ssm.* keys) instead of attention, from a zero conv and SSM state.
- FFN: down(silu(gate(h)) * up(h)) (SwiGLU, Shazeer 2020); phi3 stores [gate; up] in ffn_up;
  phonelm (BUPT's PhoneLM, as Model.from_pretrained writes it): down(relu(gate(h)) * up(h))
  (ReGLU, Shazeer 2020; PhoneLMMLP of modeling_phonelm.py), NeoX pairing.
"""

from __future__ import annotations

import math

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

import ssm_reference

NEOX = {"qwen2", "qwen3", "phi3", "gemma3", "phonelm"}
WINDOW_ALL = {"llama", "mistral"}
GRANITE = {"granite", "granitehybrid"}
ROPE_FREQS = {"llama", "mistral"} | GRANITE


class ReferenceModel:
    def __init__(self, path, *, context: int | None = None, attn_softcap: float = 0.0):
        r = GGUFReader(str(path))
        self.kv = {f.name: f.contents() for f in r.fields.values()}
        kv = self.kv
        self.arch = a = kv["general.architecture"]
        self.n_layers = L = int(kv[f"{a}.block_count"])
        self.hidden = int(kv[f"{a}.embedding_length"])

        def per_layer(key, default=None):
            v = kv.get(key, default)
            return [int(x) for x in v] if isinstance(v, list) else [int(v)] * L

        self.n_heads = per_layer(f"{a}.attention.head_count")
        self.n_kv = per_layer(f"{a}.attention.head_count_kv", kv[f"{a}.attention.head_count"])
        # granitehybrid: a head_count_kv entry of 0 marks a Mamba-2 layer
        self.mamba = [a == "granitehybrid" and n == 0 for n in self.n_kv]
        first = self.mamba.index(False)
        self.head_dim = int(kv.get(f"{a}.attention.key_length", self.hidden // self.n_heads[first]))
        if any(self.mamba):
            heads = int(kv[f"{a}.ssm.time_step_rank"])
            self.ssm = dict(n_heads=heads, head_dim=int(kv[f"{a}.ssm.inner_size"]) // heads,
                            d_state=int(kv[f"{a}.ssm.state_size"]), n_groups=int(kv[f"{a}.ssm.group_count"]))
            self.d_conv = int(kv[f"{a}.ssm.conv_kernel"])
        self.eps = float(kv[f"{a}.attention.layer_norm_rms_epsilon"])
        self.ctx_train = int(kv[f"{a}.context_length"])
        self.context = context or min(self.ctx_train, 4096)
        self.neox = a in NEOX
        self.t = {}
        for t in r.tensors:
            shape = tuple(int(d) for d in reversed(t.shape))  # numpy order (rows..., cols)
            self.t[t.name] = dequantize(np.asarray(t.data), t.tensor_type).astype(np.float64).reshape(shape)

        # per-layer RoPE: None (NoPE) or (base, rotary dims, divisors per pair, position scale, yarn, mscale)
        base = float(kv.get(f"{a}.rope.freq_base", 10000.0))
        rot = int(kv.get(f"{a}.rope.dimension_count", self.head_dim))
        scaling = kv.get(f"{a}.rope.scaling.type", "none")
        factor = float(kv.get(f"{a}.rope.scaling.factor", 1.0))
        orig = int(kv.get(f"{a}.rope.scaling.original_context_length", 0)) or self.ctx_train
        mscale = float(kv.get(f"{a}.rope.scaling.attn_factor", 1.0))
        div = np.ones(rot // 2)
        if a in ROPE_FREQS and "rope_freqs.weight" in self.t:
            div = self.t["rope_freqs.weight"]
        if "rope_factors_long.weight" in self.t and (a == "phi3" or scaling == "longrope"):
            div = self.t["rope_factors_long.weight" if self.context > orig else "rope_factors_short.weight"]
        pos_scale = 1.0 / factor if scaling in ("linear", "yarn") else 1.0
        yarn = (factor, orig) if scaling == "yarn" else None
        global_rope = (base, rot, div, pos_scale, yarn, mscale)
        self.rope = [global_rope] * L
        if a == "smollm3":
            self.rope = [None if (i + 1) % 4 == 0 else global_rope for i in range(L)]
        if a in GRANITE and not kv.get(f"{a}.rope.scaling.finetuned", True):
            self.rope = [None] * L

        # sliding windows
        window = int(kv.get(f"{a}.attention.sliding_window", 0)) if a in WINDOW_ALL | {"gemma3"} else 0
        self.window = [window] * L
        if a == "gemma3":
            pat = kv.get(f"{a}.attention.sliding_window_pattern", 6)
            local = [bool(x) for x in pat] if isinstance(pat, list) else [pat == 0 or i % pat < pat - 1 for i in range(L)]
            if not window:
                local = [False] * L
            self.window = [window if local[i] else 0 for i in range(L)]
            swa_base = float(kv.get(f"{a}.rope.freq_base_swa", 10000.0))
            self.rope = [(swa_base, rot, np.ones(rot // 2), 1.0, None, mscale) if local[i] else global_rope
                         for i in range(L)]

        # model-wide scales
        g = a in GRANITE
        self.emb_scale = (float(kv.get(f"{a}.embedding_scale", 0.0)) or 1.0) if g else 1.0
        self.res_scale = (float(kv.get(f"{a}.residual_scale", 0.0)) or 1.0) if g else 1.0
        self.logit_scale = float(kv.get(f"{a}.logit_scale", 1.0)) if g else 1.0
        self.attn_scale = (float(kv.get(f"{a}.attention.scale", 0.0)) if g else 0.0) or 1.0 / math.sqrt(self.head_dim)
        self.final_softcap = 0.0
        if a == "gemma3":
            self.emb_scale = math.sqrt(self.hidden)
            d = self.hidden / self.n_heads[first] if L == 62 else self.head_dim
            self.attn_scale = 1.0 / math.sqrt(d)
            self.final_softcap = float(kv.get(f"{a}.final_logit_softcapping", 0.0))
        self.attn_softcap = attn_softcap

    # ---- pieces ----
    def apply_rope(self, x, pos, rope):
        """x (T, H, D) float64 rotated at positions pos (T,)."""
        base, rot, div, pos_scale, yarn, mscale = rope
        half = rot // 2
        i = np.arange(half)
        freq = base ** (-2.0 * i / rot) / div
        extrap = pos[:, None].astype(np.float64) * freq[None, :]
        theta = extrap * pos_scale
        if yarn is not None:
            factor, orig = yarn

            def corr(n_rot):
                return rot * math.log(orig / (n_rot * 2 * math.pi)) / (2 * math.log(base))

            low, high = max(0.0, math.floor(corr(32.0))), min(rot - 1.0, math.ceil(corr(1.0)))
            mix = 1.0 - np.clip((i - low) / max(0.001, high - low), 0.0, 1.0)
            theta = theta * (1 - mix) + extrap * mix
            mscale = mscale * (1.0 + 0.1 * math.log(factor))
        c, s = (np.cos(theta) * mscale)[:, None, :], (np.sin(theta) * mscale)[:, None, :]
        y = x.copy()
        if self.neox:
            p, q = x[..., :half], x[..., half:rot]
            y[..., :half], y[..., half:rot] = p * c - q * s, p * s + q * c
        else:
            p, q = x[..., 0:rot:2], x[..., 1:rot:2]
            y[..., 0:rot:2], y[..., 1:rot:2] = p * c - q * s, p * s + q * c
        return y

    def rmsnorm(self, x, w):
        return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + self.eps) * w

    def linear(self, x, name, bias=None):
        y = x @ self.t[name].T
        if bias is not None and bias in self.t:
            y = y + self.t[bias]
        return y

    def mamba2(self, h, p):
        """A Mamba-2 layer over the whole sequence, from a zero state."""
        s = self.ssm
        conv_dim = s["n_heads"] * s["head_dim"] + 2 * s["n_groups"] * s["d_state"]
        t = self.t
        prm = dict(in_proj=t[p + "ssm_in.weight"], conv_w=t[p + "ssm_conv1d.weight"],
                   conv_b=t.get(p + "ssm_conv1d.bias"), dt_bias=t[p + "ssm_dt.bias"], A=t[p + "ssm_a"].reshape(-1),
                   D=t[p + "ssm_d"].reshape(-1), norm=t[p + "ssm_norm.weight"].reshape(-1),
                   out_proj=t[p + "ssm_out.weight"])
        out, _, _ = ssm_reference.mamba2_mixer(
            h, prm, np.zeros((self.d_conv - 1, conv_dim)), np.zeros((s["n_heads"], s["head_dim"], s["d_state"])),
            eps=self.eps, **s)
        return out

    @staticmethod
    def gelu_tanh(x):
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))

    def ffn(self, x, p):
        """x + the layer's gated FFN branch (with its norms and residual scale)."""
        h = self.rmsnorm(x, self.t[p + "ffn_norm.weight"])
        if p + "ffn_gate.weight" in self.t:
            gate = self.linear(h, p + "ffn_gate.weight", p + "ffn_gate.bias")
            up = self.linear(h, p + "ffn_up.weight", p + "ffn_up.bias")
        else:  # phi3: ffn_up holds [gate; up]
            gu = self.linear(h, p + "ffn_up.weight")
            gate, up = np.split(gu, 2, axis=1)
        if self.arch == "gemma3":
            act = self.gelu_tanh(gate)
        elif self.arch == "phonelm":
            act = np.maximum(gate, 0.0)  # ReGLU
        else:
            act = gate / (1 + np.exp(-gate))
        f = self.linear(act * up, p + "ffn_down.weight", p + "ffn_down.bias")
        if p + "post_ffw_norm.weight" in self.t:
            f = self.rmsnorm(f, self.t[p + "post_ffw_norm.weight"])
        return x + f * self.res_scale

    # ---- the pass ----
    def forward(self, ids):
        """Logits (T, vocab) for every position of `ids`, from an empty cache."""
        ids = np.asarray(ids)
        T = len(ids)
        pos = np.arange(T)
        x = self.t["token_embd.weight"][ids] * self.emb_scale
        D = self.head_dim
        for i in range(self.n_layers):
            p = f"blk.{i}."
            H, KV = self.n_heads[i], self.n_kv[i]
            h = self.rmsnorm(x, self.t[p + "attn_norm.weight"])
            if self.mamba[i]:
                x = x + self.mamba2(h, p) * self.res_scale
                x = self.ffn(x, p)
                continue
            if p + "attn_qkv.weight" in self.t:
                qkv = self.linear(h, p + "attn_qkv.weight", p + "attn_qkv.bias")
                q, k, v = qkv[:, : H * D], qkv[:, H * D : (H + KV) * D], qkv[:, (H + KV) * D :]
            else:
                q = self.linear(h, p + "attn_q.weight", p + "attn_q.bias")
                k = self.linear(h, p + "attn_k.weight", p + "attn_k.bias")
                v = self.linear(h, p + "attn_v.weight", p + "attn_v.bias")
            q, k, v = q.reshape(T, H, D), k.reshape(T, KV, D), v.reshape(T, KV, D)
            if p + "attn_q_norm.weight" in self.t:
                q = self.rmsnorm(q, self.t[p + "attn_q_norm.weight"])
                k = self.rmsnorm(k, self.t[p + "attn_k_norm.weight"])
            if self.rope[i] is not None:
                q, k = self.apply_rope(q, pos, self.rope[i]), self.apply_rope(k, pos, self.rope[i])
            g = H // KV
            out = np.zeros((T, H, D))
            mask = pos[None, :] > pos[:, None]
            if self.window[i]:
                mask |= (pos[:, None] - pos[None, :]) >= self.window[i]
            for hq in range(H):
                s = (q[:, hq, :] @ k[:, hq // g, :].T) * self.attn_scale  # (T, T)
                if self.attn_softcap:
                    s = self.attn_softcap * np.tanh(s / self.attn_softcap)
                s = np.where(mask, -np.inf, s)
                s = np.exp(s - s.max(axis=1, keepdims=True))
                out[:, hq, :] = (s / s.sum(axis=1, keepdims=True)) @ v[:, hq // g, :]
            o = self.linear(out.reshape(T, H * D), p + "attn_output.weight", p + "attn_output.bias")
            if p + "post_attention_norm.weight" in self.t:
                o = self.rmsnorm(o, self.t[p + "post_attention_norm.weight"])
            x = x + o * self.res_scale
            x = self.ffn(x, p)
        x = self.rmsnorm(x, self.t["output_norm.weight"])
        w_out = self.t.get("output.weight", self.t["token_embd.weight"])
        logits = x @ w_out.T
        if "output.bias" in self.t:
            logits = logits + self.t["output.bias"]
        logits = logits / self.logit_scale
        if self.final_softcap:
            logits = self.final_softcap * np.tanh(logits / self.final_softcap)
        return logits


# ---- PhoneLM from its Hugging Face checkpoint (no GGUF in between) ----
def phonelm_hf_logits(directory, ids, *, int8_rope: bool = False) -> np.ndarray:
    """float64 logits (T, vocab) of a PhoneLMForCausalLM checkpoint (config.json + float32
    model.safetensors), written from the published modeling_phonelm.py (mllmTeam/PhoneLM-*):
    RMSNorm w * x / sqrt(mean(x^2) + eps); rotate-half RoPE, inv_freq = base^(-2i/D), cos/sin of
    cat(freqs, freqs); causal GQA attention scaled by 1/sqrt(D); MLP down(relu(gate(h)) * up(h));
    tied or separate head. ``int8_rope``: cos and sin rounded as that file's
    apply_rotary_pos_emb_i8 does (round(c / max|c| * 127) / 127 * max|c| over the call's positions)."""
    import json
    from pathlib import Path

    from safetensors.numpy import load_file

    d = Path(directory)
    cfg = json.loads((d / "config.json").read_text())
    t = {k: v.astype(np.float64) for k, v in load_file(str(d / "model.safetensors")).items()}
    ids = np.asarray(ids)
    T, H, KV = len(ids), cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = cfg["hidden_size"] // H
    eps = cfg["rms_norm_eps"]

    def norm(x, w):
        return w * (x / np.sqrt((x * x).mean(-1, keepdims=True) + eps))

    inv_freq = 1.0 / cfg.get("rope_theta", 10000.0) ** (np.arange(0, D, 2) / D)
    freqs = np.arange(T)[:, None] * inv_freq[None, :]
    emb = np.concatenate([freqs, freqs], axis=-1)
    cos, sin = np.cos(emb), np.sin(emb)
    if int8_rope:
        cos = np.round(cos / np.abs(cos).max() * 127) / 127 * np.abs(cos).max()
        sin = np.round(sin / np.abs(sin).max() * 127) / 127 * np.abs(sin).max()

    def rope(x):  # (T, heads, D)
        rot = np.concatenate([-x[..., D // 2 :], x[..., : D // 2]], axis=-1)
        return x * cos[:, None, :] + rot * sin[:, None, :]

    x = t["model.embed_tokens.weight"][ids]
    mask = np.triu(np.ones((T, T), bool), 1)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = norm(x, t[p + "input_layernorm.weight"])
        q = rope((h @ t[p + "self_attn.q_proj.weight"].T).reshape(T, H, D))
        k = rope((h @ t[p + "self_attn.k_proj.weight"].T).reshape(T, KV, D))
        v = (h @ t[p + "self_attn.v_proj.weight"].T).reshape(T, KV, D)
        out = np.empty((T, H, D))
        for hq in range(H):
            kv = hq // (H // KV)  # repeat_kv
            s = np.where(mask, -np.inf, q[:, hq] @ k[:, kv].T / math.sqrt(D))
            s = np.exp(s - s.max(1, keepdims=True))
            out[:, hq] = (s / s.sum(1, keepdims=True)) @ v[:, kv]
        x = x + out.reshape(T, H * D) @ t[p + "self_attn.o_proj.weight"].T
        h = norm(x, t[p + "post_attention_layernorm.weight"])
        gate, up = h @ t[p + "mlp.gate_proj.weight"].T, h @ t[p + "mlp.up_proj.weight"].T
        x = x + (np.maximum(gate, 0.0) * up) @ t[p + "mlp.down_proj.weight"].T
    x = norm(x, t["model.norm.weight"])
    return x @ t.get("lm_head.weight", t["model.embed_tokens.weight"]).T
