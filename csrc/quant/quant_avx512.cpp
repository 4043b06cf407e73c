// ---- quantize / dequantize, AVX512 ----
#include "../core/kernels.h"

namespace slmk {

void fill_quant_avx512(Kernels& k) { (void)k; }

}  // namespace slmk
