// ---- peak probe, NEON dotprod (sdot: 16 int8 multiply-adds per instruction) ----
#include <arm_neon.h>

#include <cstdint>

#include "probe.h"

namespace slmk {

namespace {

double int8_neon_dotprod(int64_t iters) {
    int32x4_t acc[12];
    for (int j = 0; j < 12; ++j) acc[j] = vdupq_n_s32(j);
    const int8x16_t a = vdupq_n_s8(3), b = vdupq_n_s8(-2);
    for (int64_t i = 0; i < iters; ++i)
        for (int j = 0; j < 12; ++j) acc[j] = vdotq_s32(acc[j], a, b);
    int32x4_t s = acc[0];
    for (int j = 1; j < 12; ++j) s = vaddq_s32(s, acc[j]);
    volatile int sink = vgetq_lane_s32(s, 0);
    (void)sink;
    return static_cast<double>(iters) * 12 * 16;
}

constexpr std::array<KernelEntry, 1> kEntries = {
    entry<Op::probe_int8, int8_neon_dotprod>(),
};

}  // namespace

extern constexpr KernelList kernels_probe_neon_dotprod{Isa::neon_dotprod, kEntries.data(), kEntries.size()};

}  // namespace slmk
