// ---- GEMM micro-kernels, AVX-VNNI (256-bit, VEX-encoded vpdpbusd) ----
// The tile kernels of gemm_avx2_tiles.h with vpdpbusd (u8 x s8, 4 products per int32 lane,
// added without saturation) as the integer dot. The float formats and the activation
// quantizers gain nothing from VNNI: this rung inherits them from its parent, AVX2.
#include "gemm_avx2_tiles.h"

namespace slmk {

namespace {

struct DotVnni {
    static inline __m256i dot(__m256i acc, __m256i w, __m256i x) { return _mm256_dpbusd_avx_epi32(acc, w, x); }
    static inline __m256i dot2(__m256i acc, __m256i w0, __m256i x0, __m256i w1, __m256i x1) {
        return _mm256_dpbusd_avx_epi32(_mm256_dpbusd_avx_epi32(acc, w0, x0), w1, x1);
    }
};

}  // namespace

extern constexpr KernelList kernels_gemm_avx_vnni{Isa::avx_vnni, g2_int_tile_entries<DotVnni>.data(),
                                                 g2_int_tile_entries<DotVnni>.size()};

}  // namespace slmk
