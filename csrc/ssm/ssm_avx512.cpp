// ---- Mamba-2 kernels, AVX-512F (16 floats per vector) ----
// The kernel bodies are ssm_simd.h; this file supplies the vector operations.
#include <immintrin.h>

#include "ssm/ssm_simd.h"

namespace slmk {

namespace {

struct Avx512 {
    static constexpr int width = 16;
    static constexpr int chunk_rows = 4;  // x 4 vectors: 16 accumulators of 32 registers
    using vec = __m512;
    static vec zero() { return _mm512_setzero_ps(); }
    static vec load(const float* p) { return _mm512_loadu_ps(p); }
    static void store(float* p, vec x) { _mm512_storeu_ps(p, x); }
    static vec set1(float f) { return _mm512_set1_ps(f); }
    static vec add(vec a, vec b) { return _mm512_add_ps(a, b); }
    static vec mul(vec a, vec b) { return _mm512_mul_ps(a, b); }
    static vec div(vec a, vec b) { return _mm512_div_ps(a, b); }
    static vec below(vec x, vec thr, vec a, vec b) {
        return _mm512_mask_mov_ps(b, _mm512_cmp_ps_mask(x, thr, _CMP_LT_OQ), a);
    }
    static float hsum(vec x) {
        __m256 h = _mm256_add_ps(_mm512_castps512_ps256(x), _mm512_extractf32x8_ps(x, 1));
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        return _mm_cvtss_f32(s);
    }
    // Cephes expf as in ssm_avx2.cpp; 2^n applied by scalef.
    static vec exp(vec x) {
        x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.7f));
        const vec n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        vec r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
        r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
        vec p = _mm512_set1_ps(1.9875691500e-4f);
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
        p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
        return _mm512_scalef_ps(p, n);
    }
};

}  // namespace

extern constexpr KernelList kernels_ssm_avx512{Isa::avx512, ssm_simd::entries<Avx512>.data(), ssm_simd::entries<Avx512>.size()};

}  // namespace slmk
