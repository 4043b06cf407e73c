// ---- GEMM micro-kernels, AVX512_VNNI: 512-bit vpdpbusd over the packed 16-row tiles ----
// The kernels live in gemm_x86_tiles.h (shared with gemm_avx512.cpp); here with DotVnni.
#include "gemm_x86_tiles.h"

namespace slmk {

// The activation quantizers are the AVX-512 rung's (inherited): VNNI does not change them.
extern constexpr KernelList kernels_gemm_avx512_vnni{Isa::avx512_vnni, x512_tile_entries<DotVnni>.data(),
                                                    x512_tile_entries<DotVnni>.size()};

}  // namespace slmk
