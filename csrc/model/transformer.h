// ---- one forward step of a decoder described per layer (spec.h), sequenced in C++ ----
// The whole step runs here, without a Python round trip per kernel: a decode step of a
// 30-layer model is ~400 kernel calls, and at ~1-2 us of interpreter work each that would be
// ~10% of the step.
#pragma once
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "../attention/attention.h"
#include "../attention/rope.h"
#include "../gemm/gemm_driver.h"
#include "../kvcache/kvcache.h"
#include "mamba2.h"
#include "spec.h"

namespace slmk {

// The weights of one layer. Matrices are packed for the GEMM kernels; every vector is float32
// and empty when the layer has none (norms other than attn_norm / ffn_norm, and biases). A
// Mamba-2 layer has `mamba2` instead of the attention part (qkv ... post_attention_norm empty).
struct LayerWeights {
    std::vector<float> attn_norm;                         // (hidden): the norm before the mixer (either kind)
    std::vector<float> q_norm, k_norm;                    // (head_dim), per-head RMSNorm of q and k
    std::vector<std::shared_ptr<const PackedMatrix>> qkv; // one fused [q; k; v] matrix, or q, k, v
    std::vector<float> qkv_bias;                          // ((H + 2 KV) D)
    std::shared_ptr<const PackedMatrix> wo;               // (hidden, H D)
    std::vector<float> wo_bias;                           // (hidden)
    std::vector<float> post_attention_norm;               // (hidden)
    Mamba2Weights mamba2;                                 // Mamba-2 layers
    std::vector<float> ffn_norm;                          // (hidden)
    std::vector<std::shared_ptr<const PackedMatrix>> gate_up;  // one fused [gate; up] matrix, or gate, up
    std::vector<float> gate_up_bias;                      // (2 ffn): gate's, then up's
    std::shared_ptr<const PackedMatrix> down;             // (hidden, ffn)
    std::vector<float> down_bias;                         // (hidden)
    std::vector<float> post_ffn_norm;                     // (hidden)
};

class Transformer {
  public:
    // Checks every weight against the description (throws std::invalid_argument naming the
    // layer and the weight) and builds each layer's RoPE table for sequences of n_ctx tokens.
    Transformer(ModelSpec spec, std::vector<LayerWeights> layers, std::vector<float> out_norm,
                std::shared_ptr<const PackedMatrix> head, std::vector<float> head_bias, Format embd_format,
                const uint8_t* embd, int64_t n_ctx);

    const ModelSpec& spec() const { return spec_; }

    // Throws std::invalid_argument unless the cache has one KV layer per attention layer (their
    // KV heads, head size and, at least, each one's sliding window) and one recurrent layer of
    // state_floats() per Mamba-2 layer.
    void check_cache(const KVCache& cache) const;
    int n_attention_layers() const { return n_kv_; }
    int n_recurrent_layers() const { return n_rec_; }
    int64_t state_floats() const { return state_floats_; }  // of one recurrent layer (0: none)

    // Appends ids[0..T) to `seq` (the cache must have room: extend is done here, all or
    // nothing) and writes logits of the last token (vocab) or of every token (T, vocab).
    // Recurrent state: a call of T > 1 tokens (a prompt) leaves snapshots of the state before its
    // last token and after it (prefix reuse always runs a prompt's last token again); a decode
    // step leaves one when the new length is a multiple of the cache's snapshot_interval.
    void forward(KVCache& cache, int64_t seq, const int64_t* ids, int64_t T, bool all_logits, float* logits);

    // One new token for each of n distinct sequences, decoded together: every GEMM runs on n
    // rows, attention on each sequence's own cache (attention_batch). Logits (n, vocab); each
    // row is the same bits as forward() of that sequence alone (batch invariance). All
    // sequences are extended or none is.
    void forward_batch(KVCache& cache, const int64_t* seqs, const int64_t* ids, int64_t n, float* logits);

    // Address ranges [first, second) of the embedding table whose pages a file backs read-only
    // (the caller finds them: an mmap of the GGUF). After each step's lookups their pages are
    // dropped again: re-faulting a row is a minor fault, while keeping the pages
    // (and the neighbours fault-around maps with them) would leave a tied table resident beside
    // its packed copy as the head, up to the table's size (the 1B file: 205 MiB).
    void set_embedding_release(std::vector<std::pair<uintptr_t, uintptr_t>> ranges) { embd_release_ = std::move(ranges); }

  private:
    ModelSpec spec_;
    std::vector<LayerWeights> layers_;
    std::vector<std::shared_ptr<const RopeTable>> rope_;  // per layer; null: NoPE
    std::vector<AttnOptions> attn_opt_;                   // per layer
    std::vector<int> cache_layer_;  // per layer: its KV layer (attention) or recurrent layer (Mamba-2) in the cache
    int n_kv_ = 0, n_rec_ = 0;
    int64_t state_floats_ = 0;
    std::vector<float> out_norm_, head_bias_;
    std::shared_ptr<const PackedMatrix> head_;
    Format embd_format_ = Format::F32;
    const uint8_t* embd_ = nullptr;  // (vocab, hidden) rows in embd_format_, owned by the caller
    std::vector<std::pair<uintptr_t, uintptr_t>> embd_release_;  // file-backed page ranges of embd_
    void release_embedding_pages() const;

    // scratch, grown to the largest layer. x_, h_: the residual stream and a layer's input/output
    // (T, hidden). work_ holds one phase of a layer at a time: attention's q_, k_, v_ and the
    // fused projection's rows qkv_, whose storage att_ then reuses (qkv_ is copied out first); then
    // the FFN chunk's gate/up rows gu_ and activations f_ over the same floats (attention's are
    // dead by then). 12 instead of 40 MiB on a 512-token step of the 1B (ffn_chunk_rows).
    std::vector<float> x_, h_, work_;
    float *qkv_ = nullptr, *q_ = nullptr, *k_ = nullptr, *v_ = nullptr, *att_ = nullptr;
    std::vector<int64_t> pos_;
    Mamba2Scratch mamba_;
    std::vector<float> snap_;  // (recurrent layers, state_floats): a prompt's state before its last token
    void project(const std::vector<std::shared_ptr<const PackedMatrix>>& w, const float* x, int64_t T, float* out,
                 int64_t ldo);
    // The layer stack over T rows at positions pos_; `attend(layer, r0)` writes K/V (k_, v_) of
    // all T rows to the cache and leaves attention of q_'s rows [r0, T) in att_; `mix(layer)` runs a Mamba-2 layer on h_ (in
    // place) with the sequences' states. Then the final norm and head for rows [first, T) into
    // logits.
    template <typename Attend, typename Mix>
    void run(const int64_t* ids, int64_t T, int64_t first, float* logits, Attend attend, Mix mix);
};

}  // namespace slmk
