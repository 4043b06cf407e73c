// ---- peak probes, NEON (sdot: 16 int8 multiply-adds; fmla: 4 fp32 FMAs) ----
#include <arm_neon.h>

#include <cstdint>

namespace slmk {

double probe_fp32_neon(int64_t iters) {
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

}  // namespace slmk
