// ---- Mamba-2 state-space kernels: short causal conv, selective scan, gated RMSNorm ----
//
// The spec (Dao & Gu 2024, "Transformers are SSMs", ICML; arXiv:2405.21060, Sections 3, 6, 7.1;
// tests/ssm_reference.py is the float64 transcription). Per head h (head_dim values), token t:
//   dt_t = softplus(dt_raw_t + dt_bias_h)          softplus(u) = u > 20 ? u : log(1 + exp(u))
//   a_t  = exp(dt_t * A_h)                         (A_h < 0: a decay in (0, 1]; 0 below 2^-60)
//   H_t  = a_t * H_{t-1} + (dt_t * x_t) B_t^T      H: the head's state, d_state x head_dim here
//   y_t  = C_t . H_t + D_h * x_t
// B_t, C_t (d_state each) belong to the head's group: head h reads group h / (n_heads / n_groups).
//
// Layouts. A sequence's state for one layer is
//   conv: [K-1][conv_dim]  the K-1 inputs before the next token, oldest first
//   ssm:  [n_heads][d_state][head_dim]
// (head_dim innermost, so vector lanes run over head_dim and every lane does exactly the scalar
// twin's sequence of float operations: no lane ever sums across lanes).
//
// Numerics. The scans (sequential and chunked) use only per-lane multiplies and adds, no fused
// multiply-add and no reordering, and softplus / exp are scalar libm calls once per head and
// token: every ISA gives the scalar twin's bits. The conv is bit-exact before its SiLU; SiLU and
// the gated norm use a polynomial exp and lane-order sums (within the ops tolerance,
// tests/test_ssm.py). Work is split over channels, heads or rows, never inside a sum, so the
// bits do not depend on the thread count either.
//
// The chunked scan (prefill) computes the same map in the SSD form: per chunk of kSsmChunk
// tokens, G[t][s] = C_t . B_s (shared by a group's heads), decay L[t][s] = prod_{s<k<=t} a_k
// built by running products, y_t = (Lcum_t C_t) . H_0 + sum_{s<=t} G[t][s] L[t][s] dt_s x_s +
// D x_t, and H_end = Lcum_end H_0 + sum_s (L[end][s] dt_s B_s) x_s^T. It reassociates the
// recurrence's sums, so it equals the token-by-token scan within SSM_CHUNK_RTOL (tests), not
// bit for bit; the state is read and written once per chunk instead of once per token.
#pragma once
#include <cstdint>

#include "core/registry.h"

namespace slmk {

constexpr int kSsmChunk = 64;  // tokens per chunk of the chunked scan (chunks start at the call's first token)

// Decays (a_t and the chunked scan's running products of them) below 2^-60 are taken as 0. A
// value decayed that far is below any float32 rounding of what it is added to; without the
// floor, products of many decays reach subnormal floats, which x86 cores compute ~100x slower
// (the chunked scan took 2.7x the token-by-token time on Granite-like inputs).
constexpr float kSsmDecayFloor = 8.673617379884035e-19f;  // 2^-60
inline float ssm_floor_decay(float a) { return a < kSsmDecayFloor ? 0.0f : a; }

// ---- kernel contracts (the ops Op::ssm_*, registered as Format::F32) ----

// Causal depthwise conv1d over channels [c0, c1) of T tokens:
//   y[t][c] = silu?(b[c] + sum_{j<K} w[j][c] * win[t + j][c]),  win = state rows then x rows
// (the sum from j = 0 up, then the bias, then SiLU: the order of ggml's ssm_conv + add + silu);
// the state's channels [c0, c1) then hold the last K-1 rows of win. y must not overlap x.
struct SsmConvArgs {
    const float* x = nullptr;  // [T][ldx]
    int64_t ldx = 0;
    float* state = nullptr;    // [K-1][C]
    const float* w = nullptr;  // [K][C] taps, tap-major (w[K-1] multiplies the newest input)
    const float* b = nullptr;  // [C] or null
    float* y = nullptr;        // [T][ldy]
    int64_t ldy = 0;
    int64_t T = 0, C = 0, c0 = 0, c1 = 0;
    int K = 0;
    bool silu = true;
};
using ssm_conv_fn = void (*)(const SsmConvArgs& a);

// One scan call: T tokens of one sequence, heads [h0, h1).
struct SsmScanArgs {
    const float* x = nullptr;   // [T][ldx]: head h at x + t*ldx + h*head_dim
    const float* dt = nullptr;  // [T][lddt]: raw time step of head h at dt + t*lddt + h
    const float* B = nullptr;   // [T][ldb]: group g at B + t*ldb + g*d_state
    const float* C = nullptr;   // [T][ldc]
    int64_t ldx = 0, lddt = 0, ldb = 0, ldc = 0;
    const float* dt_bias = nullptr;  // [n_heads]
    const float* A = nullptr;        // [n_heads], negative (-exp(A_log))
    const float* D = nullptr;        // [n_heads]
    float* state = nullptr;          // [n_heads][d_state][head_dim], updated in place
    float* y = nullptr;              // [T][ldy]: head h at y + t*ldy + h*head_dim
    int64_t ldy = 0;
    int64_t T = 0;
    int n_heads = 0, head_dim = 0, d_state = 0, n_groups = 0;
    int h0 = 0, h1 = 0;
    // chunked scan only: G [n_groups][n_chunks][kSsmChunk][kSsmChunk] from the gram kernel, and
    // per-call scratch of ssm_chunk_scratch(head_dim, d_state) floats, 64-byte aligned
    const float* gram = nullptr;
    float* scratch = nullptr;
};
// The token-by-token recurrence (decode; any T).
using ssm_scan_fn = void (*)(const SsmScanArgs& a);
// One chunk's G[t][s] = sum_n C_{t0+t}[n] * B_{t0+s}[n] for s <= t < q (q = the chunk's tokens;
// entries with s > t are left unwritten) of group g, chunk c (t0 = c * kSsmChunk), into
// G [kSsmChunk][kSsmChunk]. `bt`: scratch of kSsmChunk * d_state floats.
using ssm_gram_fn = void (*)(const SsmScanArgs& a, int g, int64_t chunk, float* G, float* bt);
// The chunked scan over all of a's tokens for heads [h0, h1), reading a.gram.
using ssm_chunk_fn = void (*)(const SsmScanArgs& a);

// out[i] = (y*silu(z))[i] / sqrt(mean over i's group of (y*silu(z))^2 + eps) * w[i] for one row
// of n channels in groups of `group` (n a multiple of group).
using ssm_gated_norm_fn = void (*)(const float* y, const float* z, const float* w, float* out, int64_t n,
                                   int64_t group, float eps);

template <> struct OpFn<Op::ssm_conv> { using type = ssm_conv_fn; };
template <> struct OpFn<Op::ssm_scan> { using type = ssm_scan_fn; };
template <> struct OpFn<Op::ssm_gram> { using type = ssm_gram_fn; };
template <> struct OpFn<Op::ssm_chunk> { using type = ssm_chunk_fn; };
template <> struct OpFn<Op::ssm_gated_norm> { using type = ssm_gated_norm_fn; };

// The SSM slice of a kernel table (what the drivers below call).
struct SsmKernels : TableSlice {
    using TableSlice::TableSlice;
    ssm_conv_fn conv() const { return t->get<Op::ssm_conv>(Format::F32); }
    ssm_scan_fn scan() const { return t->get<Op::ssm_scan>(Format::F32); }
    ssm_gram_fn gram() const { return t->get<Op::ssm_gram>(Format::F32); }
    ssm_chunk_fn chunk() const { return t->get<Op::ssm_chunk>(Format::F32); }
    ssm_gated_norm_fn gated_norm() const { return t->get<Op::ssm_gated_norm>(Format::F32); }
};

// Per chunk: dt, a, Lcum and a decay row (4q), the weights M (q*q), Lcum_t*C_t and the end
// weights W (2*q*d_state), the head's x rows of the chunk gathered contiguous (q*head_dim;
// rows head_dim*n_heads floats apart would share L1 sets and evict each other); 16 floats of
// padding after each part.
inline int64_t ssm_chunk_scratch(int head_dim, int d_state) {
    const int64_t q = kSsmChunk;
    return 4 * (q + 16) + q * q + 16 + 2 * (q * d_state + 16) + q * head_dim + 16;
}

// The chunk kernels' carve-up of that scratch (q = kSsmChunk):
struct SsmChunkScratch {
    float *dt, *a, *lcum, *lrow;  // [q] each: dt_t, a_t, prod_{k<=t} a_k, one row of L
    float* M;                     // [q][q]: G[t][s] * L[t][s] * dt_s, s <= t
    float* cs;                    // [q][d_state]: Lcum_t * C_t
    float* W;                     // [q][d_state]: L[q-1][s] * dt_s * B_s
    float* xs;                    // [q][head_dim]: the head's x of the chunk
    SsmChunkScratch(float* p, int d_state) {
        const int64_t q = kSsmChunk, ds = d_state;
        dt = p;
        a = dt + q + 16;
        lcum = a + q + 16;
        lrow = lcum + q + 16;
        M = lrow + q + 16;
        cs = M + q * q + 16;
        W = cs + q * ds + 16;
        xs = W + q * ds + 16;
    }
};

// ---- drivers: split the work over the thread pool, never inside a sum ----

void ssm_conv(const SsmKernels& k, const SsmConvArgs& a);  // all channels (a.c0, a.c1 ignored)
// The recurrence for any T (a.h0, a.h1 ignored).
void ssm_scan(const SsmKernels& k, SsmScanArgs a);
// The chunked scan (a.gram, a.scratch, a.h0, a.h1 ignored: the driver provides them).
void ssm_scan_chunked(const SsmKernels& k, SsmScanArgs a);
// rows x n, rows ldy/ldz/ldo floats apart
void ssm_gated_norm(const SsmKernels& k, const float* y, int64_t ldy, const float* z, int64_t ldz, const float* w,
                    float* out, int64_t ldo, int64_t rows, int64_t n, int64_t group, float eps);

}  // namespace slmk
