// ---- GEMM micro-kernels, AVX2 ----
#include "gemm.h"

namespace slmk {

void fill_gemm_avx2(Kernels& k) { (void)k; }

}  // namespace slmk
