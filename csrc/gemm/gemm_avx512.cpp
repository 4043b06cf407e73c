// ---- GEMM micro-kernels, AVX512 ----
#include "gemm.h"

namespace slmk {

void fill_gemm_avx512(Kernels& k) { (void)k; }

}  // namespace slmk
