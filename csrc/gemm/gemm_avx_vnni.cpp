// ---- GEMM micro-kernels, AVX_VNNI ----
#include "gemm.h"

namespace slmk {

void fill_gemm_avx_vnni(Kernels& k) { (void)k; }

}  // namespace slmk
