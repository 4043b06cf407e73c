// ---- quantize / dequantize, NEON ----
#include "../core/kernels.h"

namespace slmk {

void fill_quant_neon(Kernels& k) { (void)k; }

}  // namespace slmk
