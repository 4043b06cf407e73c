// ---- GEMM micro-kernels, NEON_I8MM ----
#include "gemm.h"

namespace slmk {

void fill_gemm_neon_i8mm(Kernels& k) { (void)k; }

}  // namespace slmk
