// ---- GEMM micro-kernels, AVX512_VNNI: 512-bit vpdpbusd over the packed 16-row tiles ----
// The kernels live in gemm_x86_tiles.h (shared with gemm_avx512.cpp); here with DotVnni. The
// prefill panels (gemm_x86_panels.h) take over from M >= kPanelMinM on packed weights.
#include "gemm_x86_panels.h"

namespace slmk {
namespace {

// Panels for packed weights from M = kPanelMinM, up to kPanelRowsVnni rows a call (the AMX rung keeps
// its own Q4_0 / Q4_K ones and inherits the rest).
constexpr std::array<KernelEntry, 8> kPanels = {
    entry<Op::gemm_panel, panel_vnni<Format::Q8_0, Chunk32<Format::Q8_0>, unpack_32<Format::Q8_0>, Micro32>>(
        Format::Q8_0, {kGroupRows, kPanelRowsVnni, kPanelMinM, 32 * kPanelChunk32}),
    entry<Op::gemm_panel, panel_vnni<Format::Q4_0, Chunk32<Format::Q4_0>, unpack_32<Format::Q4_0>, Micro32>>(
        Format::Q4_0, {kGroupRows, kPanelRowsVnni, kPanelMinM, 32 * kPanelChunk32}),
    entry<Op::gemm_panel, panel_vnni<Format::Q4_1, Chunk32<Format::Q4_1>, unpack_32<Format::Q4_1>, Micro32>>(
        Format::Q4_1, {kGroupRows, kPanelRowsVnni, kPanelMinM, 32 * kPanelChunk32}),
    entry<Op::gemm_panel, panel_vnni<Format::Q5_0, Chunk32<Format::Q5_0>, unpack_32<Format::Q5_0>, Micro32>>(
        Format::Q5_0, {kGroupRows, kPanelRowsVnni, kPanelMinM, 32 * kPanelChunk32}),
    entry<Op::gemm_panel, panel_vnni<Format::Q5_1, Chunk32<Format::Q5_1>, unpack_32<Format::Q5_1>, Micro32>>(
        Format::Q5_1, {kGroupRows, kPanelRowsVnni, kPanelMinM, 32 * kPanelChunk32}),
    entry<Op::gemm_panel, panel_vnni<Format::Q4_K, KChunk45, unpack_q45k<Format::Q4_K>, MicroQ45K>>(
        Format::Q4_K, {kGroupRows, kPanelRowsVnni, kPanelMinM, 256 * kPanelChunkK}),
    entry<Op::gemm_panel, panel_vnni<Format::Q5_K, KChunk45, unpack_q45k<Format::Q5_K>, MicroQ45K>>(
        Format::Q5_K, {kGroupRows, kPanelRowsVnni, kPanelMinM, 256 * kPanelChunkK}),
    entry<Op::gemm_panel, panel_vnni<Format::Q6_K, KChunk6, unpack_q6k<Format::Q6_K>, MicroQ6K>>(
        Format::Q6_K, {kGroupRows, kPanelRowsVnni, kPanelMinM, 256 * kPanelChunkK}),
};
// The activation quantizers are the AVX-512 rung's (inherited): VNNI does not change them.
constexpr auto kEntries = join(x512_tile_entries<DotVnni>, kPanels);

}  // namespace

extern constexpr KernelList kernels_gemm_avx512_vnni{Isa::avx512_vnni, kEntries.data(), kEntries.size()};

}  // namespace slmk
