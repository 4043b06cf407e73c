// ---- one Mamba-2 mixer layer (Dao & Gu 2024, Section 7.1), on a sequence's recurrent state ----
// in_proj -> [z | x B C | dt]; causal conv1d + SiLU over x B C (the conv state rolls); the
// selective scan (token by token, or chunked for prefill); y + D x; RMSNorm of y * silu(z) over
// n_groups groups; out_proj. The input is the layer's normed hidden state; the caller adds the
// residual. The state of one layer (KVCache recurrent state, state_floats() floats) is
//   [conv: (d_conv - 1) x conv_dim][ssm: n_heads x d_state x head_dim]   (ssm/ssm.h layouts)
// GGUF names (llama.cpp granitehybrid/mamba2): ssm_in, ssm_conv1d (+ bias), ssm_dt.bias, ssm_a
// (= -exp(A_log)), ssm_d, ssm_norm, ssm_out.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "../gemm/gemm_driver.h"

namespace slmk {

struct KernelTable;

struct Mamba2Dims {
    int hidden = 0, n_heads = 0, head_dim = 0, d_state = 0, n_groups = 0, d_conv = 0;
    float eps = 1e-5f;
    int64_t d_inner() const { return int64_t(n_heads) * head_dim; }
    int64_t conv_dim() const { return d_inner() + 2 * int64_t(n_groups) * d_state; }
    int64_t d_in_proj() const { return 2 * d_inner() + 2 * int64_t(n_groups) * d_state + n_heads; }
    int64_t conv_floats() const { return int64_t(d_conv - 1) * conv_dim(); }
    int64_t state_floats() const { return conv_floats() + int64_t(n_heads) * d_state * head_dim; }
};

struct Mamba2Weights {
    std::shared_ptr<const PackedMatrix> in_proj;   // (d_in_proj, hidden)
    std::vector<float> conv_w;                     // [d_conv][conv_dim], tap-major
    std::vector<float> conv_b;                     // [conv_dim] or empty
    std::vector<float> dt_bias, A, D;              // [n_heads]
    std::vector<float> norm;                       // [d_inner]
    std::shared_ptr<const PackedMatrix> out_proj;  // (hidden, d_inner)
};

// One run of consecutive input rows that belong to one sequence, with that sequence's state.
struct Mamba2Segment {
    int64_t row0 = 0, rows = 0;
    float* state = nullptr;  // state_floats() floats, updated in place
    float* snapshot_after = nullptr;  // or: gets a copy of the state after this segment
};

class Mamba2Mixer {
  public:
    Mamba2Mixer(Mamba2Dims dims, Mamba2Weights w);  // throws std::invalid_argument on a shape mismatch
    const Mamba2Dims& dims() const { return d_; }

    // out[r] (hidden) for each input row r of h [rows][hidden] (normed). Segments cover the rows
    // in order; `chunked`: segments of more than one token use the chunked scan.
    void forward(const KernelTable& k, const float* h, int64_t rows, const std::vector<Mamba2Segment>& segs, bool chunked,
                 float* out);

  private:
    Mamba2Dims d_;
    Mamba2Weights w_;
    std::vector<float> proj_, xbc_, y_, g_;  // scratch
};

}  // namespace slmk
