"""Tiny random-weight ``granitehybrid`` GGUF files (Mamba-2 + attention layers) written with the
gguf package's writer, in llama.cpp's names and shapes (convert_hf_to_gguf.py GraniteHybridModel
and Mamba2Model), and a float64 numpy forward pass of them for the tests."""

from __future__ import annotations

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFReader, GGUFWriter
from gguf.quants import dequantize

import slmkernels as sk
import ssm_reference as ssm_ref
from tiny_models import byte_tokens as _byte_tokens


def write_tiny_granitehybrid(path, *, kinds="MMAMMA", hidden=64, n_heads=4, n_kv=2, ffn=96, vocab=320,
                             ssm_heads=8, ssm_state=16, ssm_groups=1, d_conv=4, fmt="q8_0", tied=False, seed=0,
                             scales=(3.0, 0.5, 0.2, 4.0), conv_bias=True):
    """kinds: one letter per layer, M (Mamba-2) or A (attention). d_inner = 2 * hidden (Granite's
    expand; llama.cpp asserts it), so ssm head_dim = 2 * hidden / ssm_heads."""
    rng = np.random.default_rng(seed)
    n_layers = len(kinds)
    d_inner = 2 * hidden
    head_dim = hidden // n_heads
    w = GGUFWriter(str(path), "granitehybrid")
    w.add_block_count(n_layers)
    w.add_context_length(1 << 20)  # what the converter writes for models without RoPE
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ffn)
    w.add_head_count(n_heads)
    w.add_head_count_kv([n_kv if k == "A" else 0 for k in kinds])
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_scaling_finetuned(False)
    w.add_ssm_conv_kernel(d_conv)
    w.add_ssm_inner_size(d_inner)
    w.add_ssm_state_size(ssm_state)
    w.add_ssm_time_step_rank(ssm_heads)
    w.add_ssm_group_count(ssm_groups)
    emb, res, att, logit = scales
    w.add_embedding_scale(emb)
    w.add_residual_scale(res)
    w.add_attention_scale(att)
    w.add_logit_scale(logit)
    toks = _byte_tokens() + ["ab"] + [f"<extra_{i}>" for i in range(vocab - 256 - 3)] + ["<|bos|>", "<|eos|>"]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(toks)
    w.add_token_types([1] * (vocab - 2) + [3, 3])
    w.add_token_merges(["a b"])
    w.add_bos_token_id(vocab - 2)
    w.add_eos_token_id(vocab - 1)

    def mat(name, rows, cols, scale, qfmt=fmt):
        x = (rng.standard_normal((rows, cols)) * scale).astype(np.float32)
        if qfmt == "f32" or cols % 32:
            w.add_tensor(name, x)
        else:
            q = sk.quantize(x, qfmt)
            w.add_tensor(name, q.data.reshape(rows, -1), raw_dtype=T[qfmt.upper()])

    def f32(name, x):
        w.add_tensor(name, np.ascontiguousarray(x, dtype=np.float32))

    gs = ssm_groups * ssm_state
    mat("token_embd.weight", vocab, hidden, 1.0, fmt if fmt in ("f32", "f16") else "q8_0")
    for i, k in enumerate(kinds):
        p = f"blk.{i}."
        f32(p + "attn_norm.weight", 1 + 0.1 * rng.standard_normal(hidden))
        if k == "A":
            mat(p + "attn_q.weight", n_heads * head_dim, hidden, hidden**-0.5)
            mat(p + "attn_k.weight", n_kv * head_dim, hidden, hidden**-0.5)
            mat(p + "attn_v.weight", n_kv * head_dim, hidden, hidden**-0.5)
            mat(p + "attn_output.weight", hidden, n_heads * head_dim, (n_heads * head_dim) ** -0.5)
        else:
            mat(p + "ssm_in.weight", 2 * d_inner + 2 * gs + ssm_heads, hidden, hidden**-0.5)
            f32(p + "ssm_conv1d.weight", rng.standard_normal((d_inner + 2 * gs, d_conv)) * 0.5)
            if conv_bias:
                f32(p + "ssm_conv1d.bias", rng.standard_normal(d_inner + 2 * gs) * 0.1)
            f32(p + "ssm_dt.bias", rng.uniform(-2.0, 0.5, ssm_heads))
            f32(p + "ssm_a", -np.exp(rng.uniform(-1.0, 1.5, (ssm_heads, 1))))
            f32(p + "ssm_d", rng.standard_normal((ssm_heads, 1)))
            f32(p + "ssm_norm.weight", 1 + 0.1 * rng.standard_normal((ssm_groups, d_inner // ssm_groups)))
            mat(p + "ssm_out.weight", hidden, d_inner, d_inner**-0.5)
        f32(p + "ffn_norm.weight", 1 + 0.1 * rng.standard_normal(hidden))
        mat(p + "ffn_gate.weight", ffn, hidden, hidden**-0.5)
        mat(p + "ffn_up.weight", ffn, hidden, hidden**-0.5)
        mat(p + "ffn_down.weight", hidden, ffn, ffn**-0.5)
    f32("output_norm.weight", 1 + 0.1 * rng.standard_normal(hidden))
    if not tied:
        mat("output.weight", vocab, hidden, hidden**-0.5)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


class HybridReference:
    """float64 forward of a granitehybrid file, from the published equations (ssm_reference)
    and llama.cpp's graph (src/models/granite-hybrid.cpp): attention without RoPE."""

    def __init__(self, path):
        r = GGUFReader(str(path))
        self.kv = {f.name: f.contents() for f in r.fields.values()}
        a = "granitehybrid."
        g = lambda k, d=None: self.kv.get(a + k, d)  # noqa: E731
        self.kinds = ["A" if v else "M" for v in g("attention.head_count_kv")]
        self.n_kv = max(g("attention.head_count_kv"))
        self.hidden, self.n_heads = int(g("embedding_length")), int(g("attention.head_count"))
        self.head_dim = self.hidden // self.n_heads
        self.eps = float(g("attention.layer_norm_rms_epsilon"))
        self.emb, self.res = float(g("embedding_scale", 1.0)), float(g("residual_scale", 1.0))
        self.att = float(g("attention.scale", 0.0)) or self.head_dim**-0.5
        self.logit = float(g("logit_scale", 1.0))
        self.ssm = dict(n_heads=int(g("ssm.time_step_rank")), d_state=int(g("ssm.state_size")),
                        n_groups=int(g("ssm.group_count")))
        self.ssm["head_dim"] = int(g("ssm.inner_size")) // self.ssm["n_heads"]
        self.d_conv = int(g("ssm.conv_kernel"))
        self.t = {}
        for t in r.tensors:
            shape = tuple(int(d) for d in reversed(t.shape))
            self.t[t.name] = dequantize(np.asarray(t.data), t.tensor_type).astype(np.float64).reshape(shape)

    def rmsnorm(self, x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + self.eps) * w

    def forward(self, ids, state=None):
        """Logits (T, vocab) of ids after `state` (None: a new sequence); returns (logits, state)
        so decoding can continue: state = per layer (K, V) for attention or (conv, ssm)."""
        t = self.t
        x = t["token_embd.weight"][ids] * self.emb
        T = len(ids)
        state = state or [None] * len(self.kinds)
        new = []
        for i, kind in enumerate(self.kinds):
            p = f"blk.{i}."
            h = self.rmsnorm(x, t[p + "attn_norm.weight"])
            if kind == "A":
                H, KV, D = self.n_heads, self.n_kv, self.head_dim
                q = (h @ t[p + "attn_q.weight"].T).reshape(T, H, D)
                k = (h @ t[p + "attn_k.weight"].T).reshape(T, KV, D)
                v = (h @ t[p + "attn_v.weight"].T).reshape(T, KV, D)
                if state[i] is not None:
                    k, v = np.concatenate([state[i][0], k]), np.concatenate([state[i][1], v])
                new.append((k, v))
                L = k.shape[0]
                qpos = np.arange(L - T, L)
                rep = H // KV
                o = np.zeros((T, H, D))
                for hh in range(H):
                    s = q[:, hh] @ k[:, hh // rep].T * self.att
                    s = np.where(np.arange(L)[None, :] <= qpos[:, None], s, -np.inf)
                    pr = np.exp(s - s.max(1, keepdims=True))
                    o[:, hh] = (pr / pr.sum(1, keepdims=True)) @ v[:, hh // rep]
                a = o.reshape(T, H * D) @ t[p + "attn_output.weight"].T
            else:
                s = self.ssm
                conv_dim = s["n_heads"] * s["head_dim"] + 2 * s["n_groups"] * s["d_state"]
                cs, ss = state[i] if state[i] is not None else (
                    np.zeros((self.d_conv - 1, conv_dim)), np.zeros((s["n_heads"], s["head_dim"], s["d_state"])))
                prm = dict(in_proj=t[p + "ssm_in.weight"], conv_w=t[p + "ssm_conv1d.weight"],
                           conv_b=t.get(p + "ssm_conv1d.bias"), dt_bias=t[p + "ssm_dt.bias"],
                           A=t[p + "ssm_a"].reshape(-1), D=t[p + "ssm_d"].reshape(-1),
                           norm=t[p + "ssm_norm.weight"].reshape(-1), out_proj=t[p + "ssm_out.weight"])
                a, cs, ss = ssm_ref.mamba2_mixer(h, prm, cs, ss, eps=self.eps, **s)
                new.append((cs, ss))
            x = x + a * self.res
            h = self.rmsnorm(x, t[p + "ffn_norm.weight"])
            gt, up = h @ t[p + "ffn_gate.weight"].T, h @ t[p + "ffn_up.weight"].T
            x = x + ((gt / (1 + np.exp(-gt))) * up @ t[p + "ffn_down.weight"].T) * self.res
        x = self.rmsnorm(x, t["output_norm.weight"])
        head = t.get("output.weight", t["token_embd.weight"])
        return x @ head.T / self.logit, new
