// ---- vector maths for the NEON files (ops_neon, attention_neon, ssm_neon): one exp for all ----
// Included only by sources compiled for aarch64 NEON. Everything here sits in an anonymous
// namespace: each including file gets its own copy, built with its own flags, so the linker
// never merges it with a copy compiled for another rung.
#pragma once
#include <arm_neon.h>

namespace slmk {
namespace {
namespace neon {

// exp(x) in float32 within ~2 ulp: Cephes' expf (S. Moshier), as core/math_avx2.h: x clamped
// to [-87.3, 88.7], 2^n built in the exponent bits in two factors (n reaches 128).
inline float32x4_t exp(float32x4_t x) {
    x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(-87.3f)), vdupq_n_f32(88.7f));
    const float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(1.44269504088896341f)));
    float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
    r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
    float32x4_t p = vdupq_n_f32(1.9875691500e-4f);
    p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
    p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
    p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), p, vmulq_f32(r, r));
    const int32x4_t ni = vcvtq_s32_f32(n);
    const int32x4_t h = vshrq_n_s32(ni, 1);
    const float32x4_t s1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(h, vdupq_n_s32(127)), 23));
    const float32x4_t s2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vsubq_s32(ni, h), vdupq_n_s32(127)), 23));
    return vmulq_f32(vmulq_f32(p, s1), s2);
}

// exp(x), and exactly 0 where x < -87.3 or x is NaN: softmax weights (a -inf score weighs 0).
inline float32x4_t exp_or_zero(float32x4_t x) {
    const uint32x4_t keep = vcgeq_f32(x, vdupq_n_f32(-87.3f));
    return vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(exp(x)), keep));
}

}  // namespace neon
}  // namespace
}  // namespace slmk
