// ---- quantize / dequantize, AVX2 ----
#include "../core/kernels.h"

namespace slmk {

void fill_quant_avx2(Kernels& k) { (void)k; }

}  // namespace slmk
