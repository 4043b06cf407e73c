// ---- GEMM micro-kernels, AVX512_VNNI ----
#include "gemm.h"

namespace slmk {

void fill_gemm_avx512_vnni(Kernels& k) { (void)k; }

}  // namespace slmk
