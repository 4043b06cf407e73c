// ---- one forward step of a Llama-family decoder, sequenced in C++ ----
// The same calls the Python runtime (slmkernels/model/runtime.py) makes, without a Python round
// trip per kernel: a decode step of a 30-layer model is ~400 kernel calls, and at ~1-2 us of
// interpreter work each that would be ~10% of the step.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "../attention/attention.h"
#include "../attention/rope.h"
#include "../gemm/gemm_driver.h"
#include "../kvcache/kvcache.h"

namespace slmk {

struct TransformerLayer {
    std::vector<float> attn_norm, ffn_norm, qkv_bias;  // qkv_bias empty when absent
    std::vector<const PackedMatrix*> qkv;  // one fused [q; k; v] matrix, or q, k, v
    const PackedMatrix* wo = nullptr;
    std::vector<const PackedMatrix*> gate_up;  // one fused [gate; up] matrix, or gate, up
    const PackedMatrix* down = nullptr;
};

struct TransformerConfig {
    int n_heads = 0, n_kv_heads = 0, head_dim = 0, hidden = 0, ffn = 0, vocab = 0;
    float eps = 1e-5f, embedding_scale = 1.0f, residual_scale = 1.0f, attention_scale = 0.0f, logit_scale = 1.0f;
    int64_t window = 0;
};

class Transformer {
  public:
    TransformerConfig cfg;
    std::vector<TransformerLayer> layers;
    std::vector<float> out_norm;
    const PackedMatrix* head = nullptr;
    Format embd_format = Format::F32;
    const uint8_t* embd = nullptr;  // (vocab, hidden) rows in embd_format
    std::shared_ptr<const RopeTable> rope;

    // Appends ids[0..T) to `seq` (the cache must have room: extend is done here, all or
    // nothing) and writes logits of the last token (vocab) or of every token (T, vocab).
    void forward(KVCache& cache, int64_t seq, const int64_t* ids, int64_t T, bool all_logits, float* logits);

    // One new token for each of n distinct sequences, decoded together: every GEMM runs on n
    // rows, attention on each sequence's own cache (attention_batch). Logits (n, vocab); each
    // row is the same bits as forward() of that sequence alone (batch invariance). All
    // sequences are extended or none is.
    void forward_batch(KVCache& cache, const int64_t* seqs, const int64_t* ids, int64_t n, float* logits);

  private:
    std::vector<float> x_, h_, qkv_, q_, k_, v_, att_, tmp_, gu_, f_;
    std::vector<int64_t> pos_;
    void project(const std::vector<const PackedMatrix*>& w, const float* x, int64_t T, float* out, int64_t ldo);
    // The layer stack over T rows at positions pos_; `attend(layer)` writes K/V (k_, v_) to the
    // cache and leaves attention of q_ in att_. Then the final norm and head for rows
    // [first, T) into logits.
    template <typename Attend>
    void run(const int64_t* ids, int64_t T, int64_t first, float* logits, Attend attend);
};

}  // namespace slmk
