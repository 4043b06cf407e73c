// ---- GEMM micro-kernels, NEON_I8MM ----
// Not written yet: the dispatch ladder applies fill_gemm_neon_dotprod first, so the i8mm rung
// runs the sdot kernels (gemm_*_16x4_neon_dotprod). Plan for smmla (vmmlaq_s32): zip the
// 32-bit lanes of two consecutive row-quads runs (vzip1q/vzip2q_s32 -> rows {0,1} / {2,3} of a
// quarter with 8 consecutive k each), pair activation rows (8 bytes each), and after a block
// un-interleave the 2x2 results (vzip1q/vzip2q_s64) to lanes-over-rows for the shared epilogue.
#include "gemm.h"

namespace slmk {

void fill_gemm_neon_i8mm(Kernels& k) { (void)k; }

}  // namespace slmk
