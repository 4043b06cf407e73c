// ---- the kernel table: every dispatched kernel, one function pointer each ----
// Each ISA file fills in the entries it implements (fill_<area>_<isa>); the dispatch site
// (dispatch.cpp) builds one table per ISA by applying the fills in ladder order, so an entry
// a faster ISA does not implement falls back to the next lower one, ending at the scalar twin.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "../quant/formats.h"
#include "../ssm/ssm.h"

namespace slmk {

enum class Isa : int {
    scalar = 0,
    avx2, avx_vnni, avx512, avx512_vnni,  // x86-64
    avx512_amx,                           // x86-64: avx512_vnni + AMX-INT8 GEMM panels
    neon, neon_dotprod, neon_i8mm,        // aarch64
    COUNT
};
constexpr int kNumIsas = static_cast<int>(Isa::COUNT);

// Quantize / dequantize one contiguous run of n elements (n a multiple of the block size).
using quantize_row_fn = void (*)(const float* x, uint8_t* y, int64_t n);
using dequantize_row_fn = void (*)(const uint8_t* x, float* y, int64_t n);

struct QuantKernels {
    quantize_row_fn quantize = nullptr;
    dequantize_row_fn dequantize = nullptr;
    const char* quantize_name = "";
    const char* dequantize_name = "";
};

// ---- GEMM (see gemm/gemm.h for the packed layout and the numeric spec) ----
struct ActRows {
    // 32-block formats (Q8_0-style): q int8 [M][K], d float [M][K/32], sum int32 [M][K/32] = sum of q
    // K-quants (Q8_K-style):          q int8 [M][K], d float [M][K/256], sum int32 [M][K/16] (bsums)
    // float formats: xf float [M][K] (the caller's x, not copied)
    const int8_t* q = nullptr;
    const float* d = nullptr;
    const int32_t* sum = nullptr;
    const float* xf = nullptr;
    int64_t q_stride = 0, d_stride = 0, sum_stride = 0, xf_stride = 0;  // elements per row
    // Panel path only (GemmKernels::panel): q again as int8 [ceil(M/16)][ceil(K/64)][16 rows][64],
    // zero past M and K, so a 16-row AMX tile of 32 or 64 k is one contiguous 1 KB slab.
    const int8_t* q_panel = nullptr;
};

// Quantizes one activation row of k values (k a multiple of the block: 32 or 256):
//   32-blocks: d[b] = amax/127, q = round-to-nearest-even(x * (1/d)), sum[b] = sum of q
//   256-blocks: d per 256 likewise, sum[g] = sum of each 16 q (bsums)
using act_quant_fn = void (*)(const float* x, int64_t k, int8_t* q, float* d, int32_t* sum);

// Computes out[i][r] for i < mr (activation rows m0..m0+mr-1, mr <= 4) and r < nvalid (rows of
// the 16-row group) over all `nblocks` tiles of one packed group. out points at (m0, n0).
using gemm_tile_fn = void (*)(const uint8_t* group, int64_t nblocks, const ActRows& a, int64_t m0, int mr,
                              float* out, int64_t ldo, int nvalid);

struct GemmKernels {
    act_quant_fn act_quant_32 = nullptr, act_quant_256 = nullptr;
    const char* act_quant_32_name = "";
    const char* act_quant_256_name = "";
    gemm_tile_fn tile[kNumFormats] = {};
    const char* tile_name[kNumFormats] = {};
    // Optional panel fast path (prefill): same signature as a tile, but mr is any row count
    // (the driver passes up to kPanelRows rows once M >= kPanelMinM, gemm_driver.cpp); same
    // bits as the tiles (the spec of gemm.h). Null: the driver uses the tiles.
    gemm_tile_fn panel[kNumFormats] = {};
    const char* panel_name[kNumFormats] = {};
};

// ---- row ops (ops/ops.h) ----
using rmsnorm_row_fn = void (*)(const float* x, const float* w, float* y, int64_t n, float eps);
using swiglu_row_fn = void (*)(const float* g, const float* u, float* y, int64_t n);
struct OpsKernels {
    rmsnorm_row_fn rmsnorm = nullptr;
    swiglu_row_fn swiglu = nullptr;
    const char* rmsnorm_name = "";
    const char* swiglu_name = "";
};

// ---- attention over the KV cache (see attention/attention.h for the numeric spec) ----
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

struct AttentionKernels {
    attn_chunk_fn chunk[kNumFormats] = {};  // F32, F16, Q8_0, Q4_0 caches
    const char* chunk_name[kNumFormats] = {};
};

struct Kernels {
    Isa isa = Isa::scalar;
    QuantKernels quant[kNumFormats];
    GemmKernels gemm;
    AttentionKernels attention;
    OpsKernels ops;
    SsmKernels ssm;  // Mamba-2 (ssm/ssm.h)
};

// Per-ISA fills. Only the ones for the target architecture are compiled and called.
void fill_quant_scalar(Kernels& k);
void fill_gemm_scalar(Kernels& k);
void fill_attention_scalar(Kernels& k);
void fill_ops_scalar(Kernels& k);
void fill_ssm_scalar(Kernels& k);
#if defined(__x86_64__)
void fill_ops_avx2(Kernels& k);
void fill_ops_avx512(Kernels& k);
void fill_ssm_avx2(Kernels& k);
void fill_ssm_avx512(Kernels& k);
void fill_attention_avx2(Kernels& k);
void fill_attention_avx512(Kernels& k);
void fill_quant_avx2(Kernels& k);
void fill_quant_avx512(Kernels& k);
void fill_gemm_avx2(Kernels& k);
void fill_gemm_avx_vnni(Kernels& k);
void fill_gemm_avx512(Kernels& k);
void fill_gemm_avx512_vnni(Kernels& k);
void fill_gemm_avx512_amx(Kernels& k);
#endif
#if defined(__aarch64__)
void fill_quant_neon(Kernels& k);
void fill_ops_neon(Kernels& k);
void fill_ssm_neon(Kernels& k);
void fill_attention_neon(Kernels& k);
void fill_gemm_neon(Kernels& k);
void fill_gemm_neon_dotprod(Kernels& k);
void fill_gemm_neon_i8mm(Kernels& k);
#endif

// ---- the dispatch site (dispatch.cpp) ----
const char* isa_name(Isa isa);
bool isa_from_name(const std::string& name, Isa* out);
bool isa_supported(Isa isa);               // this CPU (and OS) can run it
std::vector<Isa> supported_isas();         // best first
Isa best_isa();
Isa current_isa();
void set_isa(Isa isa);                     // throws std::invalid_argument if unsupported
const Kernels& kernels();                  // the table of the ISA in use
const Kernels& kernels_for(Isa isa);       // any supported ISA's table (tests, bench)

}  // namespace slmk
