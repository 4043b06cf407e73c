// ---- row ops, NEON ----
#include <arm_neon.h>

#include <cmath>

#include "core/math_neon.h"
#include "ops.h"

namespace slmk {

namespace {

void rmsnorm_row_neon(const float* x, const float* w, float* y, int64_t n, float eps) {
    float32x4_t a0 = vdupq_n_f32(0), a1 = vdupq_n_f32(0);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float32x4_t u = vld1q_f32(x + i), v = vld1q_f32(x + i + 4);
        a0 = vfmaq_f32(a0, u, u);
        a1 = vfmaq_f32(a1, v, v);
    }
    float ss = vaddvq_f32(vaddq_f32(a0, a1));
    for (; i < n; ++i) ss += x[i] * x[i];
    const float sc = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
    for (i = 0; i + 4 <= n; i += 4)
        vst1q_f32(y + i, vmulq_f32(vmulq_n_f32(vld1q_f32(x + i), sc), vld1q_f32(w + i)));
    for (; i < n; ++i) y[i] = (x[i] * sc) * w[i];
}

// expf(-t) overflows float for t below this (-ln(FLT_MAX))
constexpr float kSiluZeroBelow = -88.72283f;

// g / (1 + exp(-t)) * u with t = g (SwiGLU) or t = g (kGeluT1 + kGeluT3 g^2) (GeGLU, ops.h)
template <bool Gelu>
void gated_row_neon(const float* g, const float* u, float* y, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t gv = vld1q_f32(g + i);
        float32x4_t t = gv;
        if (Gelu)
            t = vmulq_f32(gv, vaddq_f32(vdupq_n_f32(kGeluT1), vmulq_f32(vdupq_n_f32(kGeluT3), vmulq_f32(gv, gv))));
        const float32x4_t e = neon::exp(vnegq_f32(t));
        float32x4_t s = vdivq_f32(gv, vaddq_f32(vdupq_n_f32(1.0f), e));
        // where expf(-t) overflows, the scalar twin divides by inf: -0, or NaN for g = -inf
        // (neon::exp saturates instead, which gave -inf for g = -inf)
        const uint32x4_t big = vcltq_f32(t, vdupq_n_f32(kSiluZeroBelow));
        s = vbslq_f32(big, vmulq_f32(gv, vdupq_n_f32(0.0f)), s);
        vst1q_f32(y + i, vmulq_f32(s, vld1q_f32(u + i)));
    }
    for (; i < n; ++i) {
        const float x = g[i];
        const float t = Gelu ? x * (kGeluT1 + kGeluT3 * (x * x)) : x;
        y[i] = x / (1.0f + std::exp(-t)) * u[i];
    }
}

void swiglu_row_neon(const float* g, const float* u, float* y, int64_t n) { gated_row_neon<false>(g, u, y, n); }
void geglu_row_neon(const float* g, const float* u, float* y, int64_t n) { gated_row_neon<true>(g, u, y, n); }

// relu(g) * u: a select on g < 0 (vmaxq_f32 would turn -0 into +0, unlike the twin)
void reglu_row_neon(const float* g, const float* u, float* y, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t gv = vld1q_f32(g + i);
        const float32x4_t r = vbslq_f32(vcltq_f32(gv, vdupq_n_f32(0.0f)), vdupq_n_f32(0.0f), gv);
        vst1q_f32(y + i, vmulq_f32(r, vld1q_f32(u + i)));
    }
    for (; i < n; ++i) y[i] = (g[i] < 0.0f ? 0.0f : g[i]) * u[i];
}

constexpr std::array<KernelEntry, 4> kEntries = {
    entry<Op::rmsnorm, rmsnorm_row_neon>(Format::F32),
    entry<Op::swiglu, swiglu_row_neon>(Format::F32),
    entry<Op::geglu, geglu_row_neon>(Format::F32),
    entry<Op::reglu, reglu_row_neon>(Format::F32),
};

}  // namespace

extern constexpr KernelList kernels_ops_neon{Isa::neon, kEntries.data(), kEntries.size()};

}  // namespace slmk
