// ---- attention chunk kernels: AVX-512F/BW/VL/DQ (16 floats per vector) ----
// The kernel body is attention_simd.h; attention_avx512.h supplies the vector operations.
#include "attention/attention_avx512.h"

namespace slmk {

extern constexpr KernelList kernels_attention_avx512{Isa::avx512, attn_simd::chunk_entries<attn_avx512::Avx512>.data(),
                                              attn_simd::chunk_entries<attn_avx512::Avx512>.size()};

}  // namespace slmk
