// ---- GEMM micro-kernels, NEON_DOTPROD ----
#include "gemm.h"

namespace slmk {

void fill_gemm_neon_dotprod(Kernels& k) { (void)k; }

}  // namespace slmk
