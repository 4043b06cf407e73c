// ---- GEMM micro-kernels, AVX512_VNNI: 512-bit vpdpbusd over the packed 16-row tiles ----
// The kernels live in gemm_x86_tiles.h (shared with gemm_avx512.cpp); here with DotVnni.
#include "gemm_x86_tiles.h"

namespace slmk {

void fill_gemm_avx512_vnni(Kernels& k) {
    static const char* const names[11] = {
        "gemm_q8_0_16x4_avx512_vnni", "gemm_q4_0_16x4_avx512_vnni", "gemm_q4_1_16x4_avx512_vnni",
        "gemm_q5_0_16x4_avx512_vnni", "gemm_q5_1_16x4_avx512_vnni", "gemm_q4_k_16x4_avx512_vnni",
        "gemm_q5_k_16x4_avx512_vnni", "gemm_q6_k_16x4_avx512_vnni", "gemm_f32_16x4_avx512_vnni",
        "gemm_f16_16x4_avx512_vnni",  "gemm_bf16_16x4_avx512_vnni"};
    fill_tiles_x512<DotVnni>(k, "act_quant_q8_32_avx512", "act_quant_q8_256_avx512", names);
}

}  // namespace slmk
