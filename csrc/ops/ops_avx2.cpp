// ---- row ops, AVX2 + FMA ----
#include <immintrin.h>

#include <cmath>

#include "core/math_avx2.h"
#include "ops.h"

namespace slmk {

namespace {

void rmsnorm_row_avx2(const float* x, const float* w, float* y, int64_t n, float eps) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
        acc0 = _mm256_fmadd_ps(a, a, acc0);
        acc1 = _mm256_fmadd_ps(b, b, acc1);
    }
    __m256 acc = _mm256_add_ps(acc0, acc1);
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
    float ss = _mm_cvtss_f32(s4);
    for (; i < n; ++i) ss += x[i] * x[i];
    const float sc = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
    const __m256 scale = _mm256_set1_ps(sc);
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), scale), _mm256_loadu_ps(w + i)));
    for (; i < n; ++i) y[i] = (x[i] * sc) * w[i];
}

// expf(-t) overflows float for t below this (-ln(FLT_MAX))
constexpr float kSiluZeroBelow = -88.72283f;

// g / (1 + exp(-t)) * u with t = g (SwiGLU) or t = g (kGeluT1 + kGeluT3 g^2) (GeGLU, ops.h)
template <bool Gelu>
void gated_row_avx2(const float* g, const float* u, float* y, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 gv = _mm256_loadu_ps(g + i);
        __m256 t = gv;
        if (Gelu)
            t = _mm256_mul_ps(gv, _mm256_add_ps(_mm256_set1_ps(kGeluT1),
                                                _mm256_mul_ps(_mm256_set1_ps(kGeluT3), _mm256_mul_ps(gv, gv))));
        const __m256 e = avx2::exp(_mm256_sub_ps(_mm256_setzero_ps(), t));
        __m256 s = _mm256_div_ps(gv, _mm256_add_ps(one, e));
        // where expf(-t) overflows, the scalar twin divides by inf: -0, or NaN for g = -inf
        // (avx2::exp saturates instead, which gave -inf for g = -inf)
        const __m256 big = _mm256_cmp_ps(t, _mm256_set1_ps(kSiluZeroBelow), _CMP_LT_OQ);
        s = _mm256_blendv_ps(s, _mm256_mul_ps(gv, _mm256_setzero_ps()), big);
        _mm256_storeu_ps(y + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
    }
    for (; i < n; ++i) {
        const float x = g[i];
        const float t = Gelu ? x * (kGeluT1 + kGeluT3 * (x * x)) : x;
        y[i] = x / (1.0f + std::exp(-t)) * u[i];
    }
}

void swiglu_row_avx2(const float* g, const float* u, float* y, int64_t n) { gated_row_avx2<false>(g, u, y, n); }
void geglu_row_avx2(const float* g, const float* u, float* y, int64_t n) { gated_row_avx2<true>(g, u, y, n); }

// relu(g) * u: maxps(0, g) returns g when g is NaN and when both are zeros, as the twin's g < 0 test
void reglu_row_avx2(const float* g, const float* u, float* y, int64_t n) {
    const __m256 zero = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_max_ps(zero, _mm256_loadu_ps(g + i)), _mm256_loadu_ps(u + i)));
    for (; i < n; ++i) y[i] = (g[i] < 0.0f ? 0.0f : g[i]) * u[i];
}

constexpr std::array<KernelEntry, 4> kEntries = {
    entry<Op::rmsnorm, rmsnorm_row_avx2>(Format::F32),
    entry<Op::swiglu, swiglu_row_avx2>(Format::F32),
    entry<Op::geglu, geglu_row_avx2>(Format::F32),
    entry<Op::reglu, reglu_row_avx2>(Format::F32),
};

}  // namespace

extern constexpr KernelList kernels_ops_avx2{Isa::avx2, kEntries.data(), kEntries.size()};

}  // namespace slmk
