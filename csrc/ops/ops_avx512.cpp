// ---- row ops, AVX-512 ----
#include <immintrin.h>

#include <cmath>

#include "core/math_avx512.h"
#include "ops.h"

namespace slmk {

namespace {

void rmsnorm_row_avx512(const float* x, const float* w, float* y, int64_t n, float eps) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512 a = _mm512_loadu_ps(x + i), b = _mm512_loadu_ps(x + i + 16);
        acc0 = _mm512_fmadd_ps(a, a, acc0);
        acc1 = _mm512_fmadd_ps(b, b, acc1);
    }
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? 0xffff : static_cast<__mmask16>((1u << (n - i)) - 1);
        const __m512 a = _mm512_maskz_loadu_ps(m, x + i);
        acc0 = _mm512_fmadd_ps(a, a, acc0);
    }
    const float ss = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    const __m512 scale = _mm512_set1_ps(1.0f / std::sqrt(ss / static_cast<float>(n) + eps));
    for (i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? 0xffff : static_cast<__mmask16>((1u << (n - i)) - 1);
        const __m512 v = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), scale), _mm512_maskz_loadu_ps(m, w + i));
        _mm512_mask_storeu_ps(y + i, m, v);
    }
}

// expf(-t) overflows float for t below this (-ln(FLT_MAX))
constexpr float kSiluZeroBelow = -88.72283f;

// g / (1 + exp(-t)) * u with t = g (SwiGLU) or t = g (kGeluT1 + kGeluT3 g^2) (GeGLU, ops.h)
template <bool Gelu>
void gated_row_avx512(const float* g, const float* u, float* y, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? 0xffff : static_cast<__mmask16>((1u << (n - i)) - 1);
        const __m512 gv = _mm512_maskz_loadu_ps(m, g + i);
        __m512 t = gv;
        if (Gelu)
            t = _mm512_mul_ps(gv, _mm512_add_ps(_mm512_set1_ps(kGeluT1),
                                                _mm512_mul_ps(_mm512_set1_ps(kGeluT3), _mm512_mul_ps(gv, gv))));
        const __m512 e = avx512::exp(_mm512_sub_ps(_mm512_setzero_ps(), t));
        __m512 s = _mm512_div_ps(gv, _mm512_add_ps(one, e));
        // where expf(-t) overflows, the scalar twin divides by inf: -0, or NaN for g = -inf
        // (avx512::exp saturates instead, which gave -inf for g = -inf)
        const __mmask16 big = _mm512_cmp_ps_mask(t, _mm512_set1_ps(kSiluZeroBelow), _CMP_LT_OQ);
        s = _mm512_mask_mul_ps(s, big, gv, _mm512_setzero_ps());
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, u + i)));
    }
}

void swiglu_row_avx512(const float* g, const float* u, float* y, int64_t n) { gated_row_avx512<false>(g, u, y, n); }
void geglu_row_avx512(const float* g, const float* u, float* y, int64_t n) { gated_row_avx512<true>(g, u, y, n); }

// relu(g) * u: maxps(0, g) returns g when g is NaN and when both are zeros, as the twin's g < 0 test
void reglu_row_avx512(const float* g, const float* u, float* y, int64_t n) {
    const __m512 zero = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? 0xffff : static_cast<__mmask16>((1u << (n - i)) - 1);
        const __m512 r = _mm512_max_ps(zero, _mm512_maskz_loadu_ps(m, g + i));
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(r, _mm512_maskz_loadu_ps(m, u + i)));
    }
}

constexpr std::array<KernelEntry, 4> kEntries = {
    entry<Op::rmsnorm, rmsnorm_row_avx512>(Format::F32),
    entry<Op::swiglu, swiglu_row_avx512>(Format::F32),
    entry<Op::geglu, geglu_row_avx512>(Format::F32),
    entry<Op::reglu, reglu_row_avx512>(Format::F32),
};

}  // namespace

extern constexpr KernelList kernels_ops_avx512{Isa::avx512, kEntries.data(), kEntries.size()};

}  // namespace slmk
