// ---- GEMM micro-kernels, NEON ----
#include "gemm.h"

namespace slmk {

void fill_gemm_neon(Kernels& k) { (void)k; }

}  // namespace slmk
