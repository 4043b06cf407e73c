// ---- Mamba-2 kernels, NEON (4 floats per vector) ----
// The kernel bodies are ssm_simd.h; this file supplies the vector operations.
#include <arm_neon.h>

#include "core/math_neon.h"
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
    static vec exp(vec x) { return neon::exp(x); }  // core/math_neon.h
};

}  // namespace

extern constexpr KernelList kernels_ssm_neon{Isa::neon, ssm_simd::entries<Neon>.data(), ssm_simd::entries<Neon>.size()};

}  // namespace slmk
