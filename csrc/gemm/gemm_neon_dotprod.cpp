// ---- GEMM micro-kernels, NEON + dotprod (armv8.2-a+dotprod) ----
// The quantized tiles of gemm_neon_tiles.h with the 4-byte dot done by sdot (vdotq_s32):
// one instruction per 16-byte quarter of a 64-byte row-quads run. Bit-exact with gemm_ref.cpp.
#include "gemm_neon_tiles.h"

namespace slmk {

namespace {

struct DotSdot {
    static inline int32x4_t dot(int32x4_t acc, int8x16_t w, int8x16_t x) { return vdotq_s32(acc, w, x); }
};

}  // namespace

void fill_gemm_neon_dotprod(Kernels& k) {
    GemmKernels& g = k.gemm;
    auto set = [&](Format f, gemm_tile_fn fn, const char* name) {
        g.tile[static_cast<int>(f)] = fn;
        g.tile_name[static_cast<int>(f)] = name;
    };
    set(Format::Q8_0, nt_tile<DotSdot, Format::Q8_0>, "gemm_q8_0_16x4_neon_dotprod");
    set(Format::Q4_0, nt_tile<DotSdot, Format::Q4_0>, "gemm_q4_0_16x4_neon_dotprod");
    set(Format::Q4_1, nt_tile<DotSdot, Format::Q4_1>, "gemm_q4_1_16x4_neon_dotprod");
    set(Format::Q5_0, nt_tile<DotSdot, Format::Q5_0>, "gemm_q5_0_16x4_neon_dotprod");
    set(Format::Q5_1, nt_tile<DotSdot, Format::Q5_1>, "gemm_q5_1_16x4_neon_dotprod");
    set(Format::Q4_K, nt_tile<DotSdot, Format::Q4_K>, "gemm_q4_k_16x4_neon_dotprod");
    set(Format::Q5_K, nt_tile<DotSdot, Format::Q5_K>, "gemm_q5_k_16x4_neon_dotprod");
    set(Format::Q6_K, nt_tile<DotSdot, Format::Q6_K>, "gemm_q6_k_16x4_neon_dotprod");
}

}  // namespace slmk
