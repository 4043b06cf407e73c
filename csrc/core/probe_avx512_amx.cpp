// ---- peak probe, AMX-INT8: TDPBSSD on 16 x 64 tiles (16 x 16 x 64 = 16384 int8 multiply-adds) ----
// Four independent C tiles, A and B loaded once: the TMUL's own rate. Raw asm for the tile
// instructions (see gemm_avx512_amx.cpp for why not GCC 12's intrinsics).
#include <cstdint>
#include <cstring>

#include "probe.h"

namespace slmk {

namespace {

double int8_amx(int64_t iters) {
    struct alignas(64) {
        uint8_t palette = 1, start_row = 0;
        uint8_t reserved[14] = {};
        uint16_t colsb[16] = {};
        uint8_t rows[16] = {};
    } cfg;
    for (int t = 0; t < 8; ++t) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    alignas(64) static const int8_t src[16 * 64] = {1, 2, 3};
    alignas(64) int32_t sink[16 * 16];
    __asm__ volatile("ldtilecfg %0" ::"m"(cfg));
    __asm__ volatile("tileloadd (%0,%1,1), %%tmm4\n\ttileloadd (%0,%1,1), %%tmm5\n\t"
                     "tileloadd (%0,%1,1), %%tmm6\n\ttileloadd (%0,%1,1), %%tmm7" ::"r"(src), "r"(int64_t{64}),
                     "m"(src));
    __asm__ volatile("tilezero %tmm0\n\ttilezero %tmm1\n\ttilezero %tmm2\n\ttilezero %tmm3");
    for (int64_t i = 0; i < iters; ++i)
        __asm__ volatile("tdpbssd %tmm6, %tmm4, %tmm0\n\ttdpbssd %tmm7, %tmm4, %tmm1\n\t"
                         "tdpbssd %tmm6, %tmm5, %tmm2\n\ttdpbssd %tmm7, %tmm5, %tmm3");
    __asm__ volatile("tilestored %%tmm0, (%1,%2,1)" : "=m"(sink) : "r"(sink), "r"(int64_t{64}));
    __asm__ volatile("tilerelease");
    volatile int32_t keep = sink[0];
    (void)keep;
    return static_cast<double>(iters) * 4 * 16 * 16 * 64;
}

constexpr std::array<KernelEntry, 1> kEntries = {
    entry<Op::probe_int8, int8_amx>(),
};

}  // namespace

extern constexpr KernelList kernels_probe_avx512_amx{Isa::avx512_amx, kEntries.data(), kEntries.size()};

}  // namespace slmk
