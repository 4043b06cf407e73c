// ---- token sampling: one next-token choice from a row of logits ----
// Plain C++ (no intrinsics: a few linear passes over the vocabulary, in float64 like numpy).
// The spec is the numpy sampler in tests/sampling_reference.py; tests/test_sampling.py checks
// that both choose the same token for the same logits, parameters and uniform draw.
//
// The order of the chain (each step sees the previous one's output):
//   logit bias -> repetition penalty -> presence/frequency penalties   (on the logits)
//   greedy (temperature 0: argmax, first of equals) ends here, else
//   temperature -> top-k -> typical-p -> top-p -> min-p                (on the distribution)
//   -> inverse-CDF draw with the caller's uniform number u in [0, 1)
// The draw walks the kept probabilities in token-id order, exactly as numpy's
// Generator.choice(p=p) does with the one float64 it draws, so a seed gives the same tokens as
// the numpy sampler this replaces.
#pragma once
#include <cstdint>
#include <vector>

namespace slmk {

struct SampleParams {
    double temperature = 0.0;         // 0 = greedy
    int64_t top_k = 0;                // 0 = off
    double top_p = 1.0;               // 1 = off
    double min_p = 0.0;               // 0 = off
    double typical_p = 1.0;           // 1 = off
    double repetition_penalty = 1.0;  // CTRL (Keskar et al. 2019): positive logits divided, negative multiplied
    double presence_penalty = 0.0;    // OpenAI: minus this once for a token that occurred
    double frequency_penalty = 0.0;   // OpenAI: minus this times the token's count
};

// The tokens the penalties look at: repetition over `rep_ids` (distinct ids), presence and
// frequency over `count_ids` with their counts (distinct ids). Bias: logits[bias_ids[i]] +=
// bias_values[i]. Every id must be in 0..vocab-1 (the binding checks).
struct SampleContext {
    const int32_t* rep_ids = nullptr;  // (n_rep,)
    int64_t n_rep = 0;
    const int32_t* count_ids = nullptr;  // (n_count,)
    const int32_t* counts = nullptr;     // (n_count,)
    int64_t n_count = 0;
    const int32_t* bias_ids = nullptr;  // (n_bias,)
    const float* bias_values = nullptr;
    int64_t n_bias = 0;
};

// Scratch reused across calls (one per generating sequence): never allocates after the first
// call of a given vocabulary size.
struct SampleScratch {
    std::vector<double> z;    // (vocab,) working logits, then probabilities
    std::vector<int32_t> idx; // candidate ids
    std::vector<double> tmp;  // per-candidate keys
};

// Returns the chosen token id. logits: (vocab,). u: the uniform draw (ignored when greedy).
int64_t sample_token(const float* logits, int64_t vocab, const SampleParams& p, const SampleContext& ctx,
                     double u, SampleScratch& s);

// log-softmax of logits at `token`, and the k most likely tokens (ids and log-probabilities,
// most likely first, ties by lower id). out_ids / out_lp: (k,). Returns the token's logprob.
double token_logprobs(const float* logits, int64_t vocab, int64_t token, int64_t k, int32_t* out_ids,
                      double* out_lp);

}  // namespace slmk
