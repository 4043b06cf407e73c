// ---- Mamba-2 kernels, NEON (4 floats per vector) ----
// The kernel bodies are ssm_simd.h; this file supplies the vector operations.
#include <arm_neon.h>

#include "ssm/ssm_simd.h"

namespace slmk {

namespace {

struct Neon {
    static constexpr int width = 4;
    static constexpr int chunk_rows = 4;  // x 4 vectors: 16 accumulators of 32 registers
    using vec = float32x4_t;
    static vec zero() { return vdupq_n_f32(0.0f); }
    static vec load(const float* p) { return vld1q_f32(p); }
    static void store(float* p, vec x) { vst1q_f32(p, x); }
    static vec set1(float f) { return vdupq_n_f32(f); }
    static vec add(vec a, vec b) { return vaddq_f32(a, b); }
    static vec mul(vec a, vec b) { return vmulq_f32(a, b); }
    static vec div(vec a, vec b) { return vdivq_f32(a, b); }
    static vec below(vec x, vec thr, vec a, vec b) { return vbslq_f32(vcltq_f32(x, thr), a, b); }
    static float hsum(vec x) { return vaddvq_f32(x); }
    // Cephes expf as in ssm_avx2.cpp; 2^n built in the exponent bits in two halves (n reaches 128).
    static vec exp(vec x) {
        x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(-87.3f)), vdupq_n_f32(88.7f));
        const vec n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(1.44269504088896341f)));
        vec r = vsubq_f32(x, vmulq_f32(n, vdupq_n_f32(0.693359375f)));
        r = vsubq_f32(r, vmulq_f32(n, vdupq_n_f32(-2.12194440e-4f)));
        vec p = vdupq_n_f32(1.9875691500e-4f);
        p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
        p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
        p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
        p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
        p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
        p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), p, vmulq_f32(r, r));
        const int32x4_t ni = vcvtq_s32_f32(n);
        const int32x4_t h = vshrq_n_s32(ni, 1);
        const vec s1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(h, vdupq_n_s32(127)), 23));
        const vec s2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vsubq_s32(ni, h), vdupq_n_s32(127)), 23));
        return vmulq_f32(vmulq_f32(p, s1), s2);
    }
};

}  // namespace

extern constexpr KernelList kernels_ssm_neon{Isa::neon, ssm_simd::entries<Neon>.data(), ssm_simd::entries<Neon>.size()};

}  // namespace slmk
