// ---- one Mamba-2 mixer layer (Dao & Gu 2024, Section 7.1), on a sequence's recurrent state ----
// in_proj -> [z | x B C | dt]; causal conv1d + SiLU over x B C (the conv state rolls); the
// selective scan (token by token, or chunked for prefill); y + D x; RMSNorm of y * silu(z) over
// n_groups groups; out_proj. The input is the layer's normed hidden state; the caller (the model
// step, transformer.cpp) adds the residual. The state of one layer (KVCache recurrent state,
// Mamba2Spec::state_floats() floats) is
//   [conv: (d_conv - 1) x conv_dim][ssm: n_heads x d_state x head_dim]   (ssm/ssm.h layouts)
// GGUF names (llama.cpp granitehybrid/mamba2): ssm_in, ssm_conv1d (+ bias), ssm_dt.bias, ssm_a
// (= -exp(A_log)), ssm_d, ssm_norm, ssm_out.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../gemm/gemm_driver.h"
#include "spec.h"

namespace slmk {

struct KernelTable;

struct Mamba2Weights {
    std::shared_ptr<const PackedMatrix> in_proj;   // (d_in_proj, hidden)
    std::vector<float> conv_w;                     // (d_conv, conv_dim): tap-major, tap d_conv-1 the newest
    std::vector<float> conv_b;                     // (conv_dim) or empty
    std::vector<float> dt_bias, A, D;              // (n_heads) each; A = -exp(A_log) < 0
    std::vector<float> norm;                       // (d_inner): the gated RMSNorm's weight
    std::shared_ptr<const PackedMatrix> out_proj;  // (hidden, d_inner)
};

// Throws std::invalid_argument (the message says what does not fit) unless the sizes are sane
// and every weight has the shape the description implies.
void mamba2_check(const Mamba2Spec& s, int hidden, const Mamba2Weights& w, const std::string& where);

// One run of consecutive input rows that belong to one sequence, with that sequence's state.
struct Mamba2Segment {
    int64_t row0 = 0, rows = 0;
    float* state = nullptr;           // state_floats() floats, updated in place
    float* snapshot_after = nullptr;  // or null: gets a copy of the state after this segment
};

// Scratch of the mixer, grown to the largest call (shared by every Mamba-2 layer of a model).
struct Mamba2Scratch {
    std::vector<float> proj, xbc, y, g;
};

// out (rows, hidden) of the mixer on h (rows, hidden, normed); out may be h (h is read once, by
// in_proj, before out is written). Segments cover the rows in order; `chunked`: segments of more
// than one token use the chunked scan.
void mamba2_forward(const KernelTable& k, const Mamba2Spec& s, int hidden, float eps, const Mamba2Weights& w,
                    const float* h, int64_t rows, const std::vector<Mamba2Segment>& segs, bool chunked, float* out,
                    Mamba2Scratch& scratch);

}  // namespace slmk
