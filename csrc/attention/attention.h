// ---- attention over the paged KV cache: the numeric spec and the driver ----
//
// For a query row r (one query head h at position qpos) over the cached keys of its KV head
// g = h / (n_heads / n_kv_heads) (GQA; MQA when n_kv_heads = 1):
//   s_j = dot(q_r * scale, k_j)                  q pre-scaled once, in float32
//   s_j = softcap * tanh(s_j / softcap)          if softcap > 0 (Gemma 2 logit soft-capping)
//   key j is visible iff kpos_j <= qpos and qpos - kpos_j < window   (causal, sliding window)
//   out = sum_j exp(s_j - m) v_j / (sum_j exp(s_j - m) + exp(sink_h - m))
// where the sink term exists only when per-head sink logits are given (gpt-oss style learned
// "attention sinks": an extra logit in the softmax denominator with a zero value vector).
// A row that sees no key (and has no sink mass left over) gives zeros, never NaN.
//
// Evaluation order (fixed, so results do not depend on thread count or query tiling):
//  - the sequence's cached tokens, in position order, are cut into partitions of
//    kAttnPartition stored tokens; each partition is cut further at block-table entries
//    into chunks, and a chunk is one call of the ISA's chunk kernel (online softmax,
//    Milakov & Gimelshein 2018; FlashAttention, Dao et al. 2022), starting from an empty
//    state (m = -inf, l = 0, acc = 0) at each partition;
//  - partition states are folded in order with the log-sum-exp merge (merge_state below;
//    FlashDecoding's split-K reduction). Decode computes partitions in parallel and folds
//    afterwards; prefill folds as it goes: the same operations in the same order, so a row's
//    result is the same bits whether it is computed alone, in a prefill tile, or in a batch.
// A chunk whose keys are all masked for a row leaves that row's state untouched, so chunks and
// partitions outside a row's window may be skipped without changing any bit.
#pragma once
#include <cstdint>
#include <vector>

#include "core/registry.h"
#include "quant/formats.h"

namespace slmk {

class KVCache;

// ---- the chunk kernels' contract (Op::attn_chunk, one per cache format) ----
// One call processes one chunk of n cached keys of one KV head (rows of the cache's format,
// `row_bytes` apart, positions kpos0..kpos0+n-1) for R query rows (the group's query heads x
// query tokens), updating each row's online-softmax state (m, l, acc) in place.
struct AttnChunkArgs {
    const float* q = nullptr;     // [R][ldq] pre-scaled queries, zero-padded to the cache's padded head_dim
    int64_t ldq = 0;
    const int64_t* qpos = nullptr;  // [R] position of each query row
    int R = 0;
    int64_t window = 0;           // key kp is visible to row r iff kp <= qpos[r] and qpos[r] - kp < window
    float softcap = 0.0f;         // > 0: s = softcap * tanh(s / softcap)
    const uint8_t* k = nullptr;   // n rows, row_bytes apart
    const uint8_t* v = nullptr;
    const uint8_t* k_next = nullptr;  // a chunk the caller runs soon (or null): a hint only,
    const uint8_t* v_next = nullptr;  // the kernel may prefetch its n_next rows while it works
    int64_t n_next = 0;
    int64_t row_bytes = 0;
    int64_t n = 0, kpos0 = 0;
    int64_t head_dim = 0;         // D (accumulated width); rows hold head_dim_padded elements
    float* m = nullptr;           // [R] running max (-inf: nothing seen)
    float* l = nullptr;           // [R] running denominator
    float* acc = nullptr;         // [R][ldacc] running numerator
    int64_t ldacc = 0;
    float* scratch = nullptr;     // >= kAttnScratch(R, n, padded head_dim) floats, 64-byte aligned
};
using attn_chunk_fn = void (*)(const AttnChunkArgs& a);
// Scratch a chunk kernel may use: R x n scores, 2 x R row bounds and R rescale factors, the
// chunk's keys and values dequantized (2 x n x dp), SIMD slack.
static inline int64_t kAttnScratch(int64_t R, int64_t n, int64_t dp) {
    return (R * n + 15) / 16 * 16 + (3 * R + 15) / 16 * 16 + 2 * n * dp + 64;
}
template <> struct OpFn<Op::attn_chunk> { using type = attn_chunk_fn; };

// The attention slice of a kernel table (what the driver calls).
struct AttentionKernels : TableSlice {
    using TableSlice::TableSlice;
    attn_chunk_fn chunk(Format cache_format) const { return t->get<Op::attn_chunk>(cache_format); }
};

constexpr int64_t kAttnPartition = 256;  // stored tokens per decode split (fixed: see above)

struct AttnOptions {
    float scale = 0.0f;          // 0: 1/sqrt(head_dim)
    int64_t window = 0;          // 0: none
    float softcap = 0.0f;        // 0: none
    const float* sinks = nullptr;  // [n_heads] sink logits, or null
};

// Throws (std::invalid_argument / std::out_of_range / KVUnknownSequence) for anything attention
// cannot run on: layer out of range, unwritten positions, q_tokens > length, a window larger
// than the layer's sliding window, or queries reaching back into freed window tokens.
void attention_check(const KVCache& cache, int layer, int64_t seq, int64_t q_tokens, int64_t n_heads,
                     const AttnOptions& opt);

// q (q_tokens, n_heads, head_dim) float32 for the newest q_tokens positions of `seq` in `layer`;
// out likewise. The caller has validated shapes and holds the cache's read lock.
void attention(const AttentionKernels& kern, const KVCache& cache, int layer, int64_t seq, const float* q, int64_t q_tokens,
               int64_t n_heads, const AttnOptions& opt, float* out);

// Caller-owned dense K/V, read in place (no cache, no copy): k and v (tokens, n_kv_heads,
// head_dim) in F32 or F16, token t of KV head g at k + t * token_stride + g * head_stride bytes
// (e.g. a (tokens, n_kv_heads, head_dim) array, or a (n_kv_heads, tokens, head_dim) one
// transposed); positions 0..tokens-1, q the newest q_tokens of them. The same chunks, the same
// bits as attention() over a cache holding these rows (its blocks cut at kAttnPartition).
struct DenseKV {
    Format format = Format::F32;
    const uint8_t* k = nullptr;
    const uint8_t* v = nullptr;
    int64_t tokens = 0, n_kv_heads = 0, head_dim = 0;
    int64_t token_stride = 0, head_stride = 0;  // bytes, the same for k and v
};
void attention_dense(const AttentionKernels& kern, const DenseKV& kv, const float* q, int64_t q_tokens, int64_t n_heads,
                     const AttnOptions& opt, float* out);

// One query token for each of `seqs` (q: (n_seqs, n_heads, head_dim)), same numerics as decode.
void attention_batch(const AttentionKernels& kern, const KVCache& cache, int layer, const int64_t* seqs, int64_t n_seqs,
                     const float* q, int64_t n_heads, const AttnOptions& opt, float* out);

}  // namespace slmk
