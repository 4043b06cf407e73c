// ---- the model step, described per layer ----
// A decoder is an embedding, a stack of layers and a head. Each layer is described once, by a
// LayerSpec: its kind (what mixes tokens: attention, or a Mamba-2 state-space mixer) and that
// layer's own hyperparameters (heads, RoPE on/off with its own base and scaling, sliding window,
// SSM sizes, FFN activation).
// slmkernels/model/config.py (ModelConfig) builds the whole description from a GGUF file's
// metadata (the one translation from llama.cpp's keys), the binding hands it over as typed
// pybind11 classes (_core.ModelSpec, _core.LayerSpec, ...), and Transformer runs it with the
// layer's weights (LayerWeights in transformer.h: optional norms and biases are present or not).
//
// Per layer, in order (x: (T, hidden) residual stream; every norm is RMSNorm with spec.eps):
//   h = norm(x, attn_norm)
// an attention layer:
//   q, k, v = h W_qkv (+ bias)                      q (T, H, D), k and v (T, KV, D)
//   q, k = norm(q, q_norm), norm(k, k_norm)          per head, over D, when the layer has them
//   q, k = rope(q), rope(k)                          unless the layer is NoPE
//   a = attention(q, K, V) W_o (+ bias)              scale, window and soft-cap of the layer
//   a = norm(a, post_attention_norm)                 when present (Gemma 3)
// a Mamba-2 layer (Dao & Gu 2024; model/mamba2.h), on the sequence's recurrent state:
//   z, xBC, dt = h W_in                              z (T, d_inner), xBC (T, conv_dim), dt (T, n_heads)
//   xBC = silu(conv1d(xBC) + conv_bias)              causal, d_conv taps, the conv state rolls
//   y = scan(x, dt, B, C) + D x                      the selective scan, token by token
//   a = norm(y * silu(z), ssm_norm) W_out            RMSNorm per group of d_inner / n_groups
// both:
//   x = x + residual_scale * a
//   h = norm(x, ffn_norm)
//   g, u = h W_gate (+ bias), h W_up (+ bias)        one fused [gate; up] matrix or two
//   f = act(g) * u                                   act = SiLU (SwiGLU), tanh-GELU (GeGLU) or ReLU (ReGLU)
//   f = f W_down (+ bias), then norm(f, post_ffn_norm) when present
//   x = x + residual_scale * f
// Head: logits = (norm(x, output_norm) W_out (+ bias)) / logit_scale, then
// final_logit_softcap * tanh(logits / final_logit_softcap) when the cap is set.
//
// To add a layer kind: a value of LayerKind, its hyperparameters beside AttentionSpec in
// LayerSpec, its weights beside LayerWeights' attention part, and a branch in
// Transformer::run (transformer.cpp); then build it in ModelConfig and bind it in
// csrc/bindings/bind_model.cpp.
#pragma once
#include <cstdint>
#include <vector>

#include "../attention/rope.h"

namespace slmk {

enum class LayerKind {
    Attention,  // KV cache layer
    Mamba2,     // recurrent layer: conv + SSM state per sequence (KVCache recurrent state)
};

enum class FfnActivation {
    SiLU,      // SwiGLU (Shazeer 2020): silu(g) * u
    GeluTanh,  // GeGLU with GELU's tanh approximation (Hendrycks & Gimpel 2016), as Gemma
    ReLU,      // ReGLU (Shazeer 2020): relu(g) * u, as PhoneLM
};

struct AttentionSpec {
    int n_heads = 0, n_kv_heads = 0, head_dim = 0;  // GQA: n_heads a multiple of n_kv_heads
    bool rope = true;        // false: a NoPE layer (positions reach it only through the causal mask)
    RopeSpec rope_spec;      // the layer's own base, rotary dims and scaling (when rope)
    int64_t window = 0;      // sliding window: a query at p sees keys p-window+1..p (0: all before it)
    float scale = 0.0f;      // q.k scale (0: 1/sqrt(head_dim))
    float softcap = 0.0f;    // attention logit soft-cap: s = softcap * tanh(s / softcap) (0: none)
};

// A Mamba-2 mixer (Granite 4.0 H as llama.cpp's granitehybrid: ssm.* metadata keys).
struct Mamba2Spec {
    int n_heads = 0;   // SSM heads (ssm.time_step_rank); d_inner = n_heads * head_dim
    int head_dim = 0;  // values per head (ssm.inner_size / n_heads)
    int d_state = 0;   // state size N (ssm.state_size)
    int n_groups = 0;  // B/C groups, heads split evenly over them (ssm.group_count)
    int d_conv = 0;    // conv taps (ssm.conv_kernel)
    int64_t d_inner() const { return int64_t(n_heads) * head_dim; }
    int64_t conv_dim() const { return d_inner() + 2 * int64_t(n_groups) * d_state; }  // x, B, C
    int64_t d_in_proj() const { return d_inner() + conv_dim() + n_heads; }            // z, xBC, dt
    // one sequence's state of the layer: [conv: (d_conv - 1) x conv_dim][ssm: n_heads x d_state x head_dim]
    int64_t conv_floats() const { return int64_t(d_conv - 1) * conv_dim(); }
    int64_t state_floats() const { return conv_floats() + d_inner() * d_state; }
};

struct LayerSpec {
    LayerKind kind = LayerKind::Attention;
    AttentionSpec attention;  // attention layers
    Mamba2Spec mamba2;        // Mamba-2 layers
    int ffn = 0;             // gated FFN inner size
    FfnActivation activation = FfnActivation::SiLU;
};

struct ModelSpec {
    int hidden = 0, vocab = 0;
    float eps = 1e-5f;                  // RMSNorm epsilon of every norm
    float embedding_scale = 1.0f;       // x = embedding(ids) * embedding_scale (Gemma: sqrt(hidden))
    float residual_scale = 1.0f;        // x = x + residual_scale * branch (Granite)
    float logit_scale = 1.0f;           // logits = head(x) / logit_scale (Granite)
    float final_logit_softcap = 0.0f;   // logits = cap * tanh(logits / cap) (0: none)
    // Mamba-2 layers: a prompt of several tokens runs the chunked (SSD) scan instead of the
    // token-by-token recurrence. Off by default: on a 2-core x86 host it was no faster for
    // Granite 4.0 H-1B's mixer shape (README, "state-space"), and only the recurrence gives a
    // token the same bits whether it was prefilled or decoded.
    bool ssm_chunked_prefill = false;
    std::vector<LayerSpec> layers;
};

}  // namespace slmk
