// ---- GEMM micro-kernels, AVX512 (F/BW/VL/DQ, no VNNI): vpmaddubsw + vpmaddwd over the packed tiles ----
// The kernels live in gemm_x86_tiles.h (shared with gemm_avx512_vnni.cpp); here with DotMadd,
// which sums as many vpmaddubsw results in int16 as each format's weight range allows.
#include "gemm_x86_tiles.h"

namespace slmk {

void fill_gemm_avx512(Kernels& k) {
    static const char* const names[11] = {
        "gemm_q8_0_16x4_avx512", "gemm_q4_0_16x4_avx512", "gemm_q4_1_16x4_avx512", "gemm_q5_0_16x4_avx512",
        "gemm_q5_1_16x4_avx512", "gemm_q4_k_16x4_avx512", "gemm_q5_k_16x4_avx512", "gemm_q6_k_16x4_avx512",
        "gemm_f32_16x4_avx512",  "gemm_f16_16x4_avx512",  "gemm_bf16_16x4_avx512"};
    fill_tiles_x512<DotMadd>(k, "act_quant_q8_32_avx512", "act_quant_q8_256_avx512", names);
}

}  // namespace slmk
