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

extern constexpr KernelList kernels_gemm_neon_dotprod{Isa::neon_dotprod, nt_int_tile_entries<DotSdot>.data(),
                                                     nt_int_tile_entries<DotSdot>.size()};

}  // namespace slmk
