// ---- rotary position embedding (RoPE) ----
// Formulas: RoFormer (Su et al. 2021) for the rotation; YaRN (Peng et al. 2023, and ggml's
// rope_yarn / ggml_rope_yarn_corr_dims) for ext_factor/attn_factor/beta_fast/beta_slow;
// Llama 3.1's frequency smoothing (Meta's reference apply_scaling) for the llama3 factors;
// LongRoPE (Ding et al. 2024; Phi-3's short/long per-pair factors, chosen as llama.cpp's
// llama_model::get_rope_factors does: long when the context per sequence exceeds the original).
// Angles are computed in double precision, so positions up to millions keep their accuracy.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace slmk {

enum class RopeMode { Normal, Neox };  // normal: pairs (2i, 2i+1); neox: pairs (i, i + rot/2)

struct RopeConfig {
    double theta_base = 10000.0;
    int rotary_dim = 0;          // even, <= head_dim; the rest passes through
    RopeMode mode = RopeMode::Normal;
    double freq_scale = 1.0;     // 1/factor for linear and YaRN scaling
    double ext_factor = 0.0;     // YaRN extrapolation mix (0: off)
    double attn_factor = 1.0;    // YaRN magnitude scale
    double beta_fast = 32.0, beta_slow = 1.0;
    double n_ctx_orig = 0.0;     // YaRN original context
    std::vector<double> freq_factors;  // per pair i: theta_i /= freq_factors[i] (empty: none)
};

// What a model file (or a caller of slmkernels.rope) says about a layer's RoPE; rope_config()
// turns it into the table configuration (the scaling maths lives there, next to the kernel).
enum class RopeScaling { None, Linear, Yarn, Llama3, LongRope };

struct RopeSpec {
    double base = 10000.0;       // theta base
    int rotary_dim = 0;          // even, <= head_dim (partial rotary: the rest passes through)
    RopeMode mode = RopeMode::Normal;
    RopeScaling scaling = RopeScaling::None;
    double factor = 1.0;         // linear / yarn / llama3: context extension factor
    double original_context = 0.0;  // yarn, llama3, longrope: the training context before extension
    double ext_factor = 1.0, beta_fast = 32.0, beta_slow = 1.0;  // yarn ramp
    double attn_factor = 1.0;    // cos/sin magnitude (GGUF rope.scaling.attn_factor; yarn multiplies its own in)
    double low_freq_factor = 1.0, high_freq_factor = 4.0;  // llama3 smoothing band
    std::vector<double> freq_factors;  // per pair divisors (rope_freqs.weight; LongRoPE: the short factors)
    std::vector<double> long_factors;  // LongRoPE: per pair divisors past original_context
};

// The table configuration of `spec` for sequences of up to n_ctx tokens (LongRoPE picks its
// factors by it; the other types ignore it). Throws std::invalid_argument naming the field for a
// spec that makes no sense (factor <= 0, a factor list of the wrong length, ...).
RopeConfig rope_config(const RopeSpec& spec, int64_t n_ctx);

// Per-configuration tables: the frequencies once, cos/sin rows per position cached on demand
// (up to kMaxCachedPosition; beyond, computed on the fly).
class RopeTable {
  public:
    explicit RopeTable(const RopeConfig& cfg);
    ~RopeTable();
    // cos/sin of the rotary_dim/2 pairs at position p, into c and s.
    void cos_sin(int64_t p, float* c, float* s) const;
    const RopeConfig& config() const { return cfg_; }

  private:
    RopeConfig cfg_;
    std::vector<double> freq_;      // per pair: base^(-2i/rot) / freq_factor_i
    std::vector<double> ramp_mix_;  // YaRN: extrapolation weight per pair
    double mscale_ = 1.0;
    // cos/sin rows cached for positions [0, kChunks * kChunkPositions): filled a chunk at a time
    static constexpr int kChunkPositions = 1024, kChunks = 128;
    mutable std::atomic<float*> chunks_[kChunks] = {};
    mutable std::mutex fill_mu_;
    void compute(int64_t p, float* c, float* s) const;
};

std::shared_ptr<const RopeTable> rope_table(const RopeConfig& cfg);  // cached per configuration

// x: (tokens, heads, head_dim) float32, rotated into out (may alias x), positions[tokens].
void rope_apply(const RopeTable& t, const float* x, float* out, int64_t tokens, int64_t heads, int64_t head_dim,
                const int64_t* positions);

}  // namespace slmk
