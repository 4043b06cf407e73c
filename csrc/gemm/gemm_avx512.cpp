// ---- GEMM micro-kernels, AVX512 (F/BW/VL/DQ, no VNNI): vpmaddubsw + vpmaddwd over the packed tiles ----
// The kernels live in gemm_x86_tiles.h (shared with gemm_avx512_vnni.cpp); here with DotMadd,
// which sums as many vpmaddubsw results in int16 as each format's weight range allows.
#include "gemm_x86_tiles.h"

namespace slmk {

namespace {

constexpr auto kEntries = join(std::array<KernelEntry, 2>{entry<Op::act_quant, act_quant_32_x512>(Format::Q8_0),
                                                          entry<Op::act_quant, act_quant_256_x512>(Format::Q8_K)},
                               x512_tile_entries<DotMadd>);

}  // namespace

extern constexpr KernelList kernels_gemm_avx512{Isa::avx512, kEntries.data(), kEntries.size()};

}  // namespace slmk
