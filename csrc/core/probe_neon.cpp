// ---- peak probe, NEON (fmla: 4 fp32 FMAs per instruction) ----
#include <arm_neon.h>

#include <cstdint>

#include "probe.h"

namespace slmk {

namespace {

double fp32_neon(int64_t iters) {
    float32x4_t acc[12];
    for (int j = 0; j < 12; ++j) acc[j] = vdupq_n_f32(static_cast<float>(j));
    const float32x4_t a = vdupq_n_f32(0.999f), b = vdupq_n_f32(0.001f);
    for (int64_t i = 0; i < iters; ++i)
        for (int j = 0; j < 12; ++j) acc[j] = vfmaq_f32(b, acc[j], a);
    float32x4_t s = acc[0];
    for (int j = 1; j < 12; ++j) s = vaddq_f32(s, acc[j]);
    volatile float sink = vgetq_lane_f32(s, 0);
    (void)sink;
    return static_cast<double>(iters) * 12 * 4;
}

constexpr std::array<KernelEntry, 1> kEntries = {
    entry<Op::probe_fp32, fp32_neon>(),
};

}  // namespace

extern constexpr KernelList kernels_probe_neon{Isa::neon, kEntries.data(), kEntries.size()};

}  // namespace slmk
