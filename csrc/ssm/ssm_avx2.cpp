// ---- Mamba-2 kernels, AVX2 (8 floats per vector) ----
// The kernel bodies are ssm_simd.h; this file supplies the vector operations.
#include <immintrin.h>

#include "ssm/ssm_simd.h"

namespace slmk {

namespace {

struct Avx2 {
    static constexpr int width = 8;
    static constexpr int chunk_rows = 2;  // x 4 vectors: 8 accumulators of 16 registers
    using vec = __m256;
    static vec zero() { return _mm256_setzero_ps(); }
    static vec load(const float* p) { return _mm256_loadu_ps(p); }
    static void store(float* p, vec x) { _mm256_storeu_ps(p, x); }
    static vec set1(float f) { return _mm256_set1_ps(f); }
    static vec add(vec a, vec b) { return _mm256_add_ps(a, b); }
    static vec mul(vec a, vec b) { return _mm256_mul_ps(a, b); }
    static vec div(vec a, vec b) { return _mm256_div_ps(a, b); }
    static vec below(vec x, vec thr, vec a, vec b) { return _mm256_blendv_ps(b, a, _mm256_cmp_ps(x, thr, _CMP_LT_OQ)); }
    static float hsum(vec x) {
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        return _mm_cvtss_f32(s);
    }
    // Cephes expf (S. Moshier): 2^n * p(r), n = round(x log2 e), r = x - n ln 2 in two parts,
    // degree-6 polynomial, ~2 ulp; input clamped to [-87.3, 88.7].
    static vec exp(vec x) {
        x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.7f));
        const vec n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        vec r = _mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(0.693359375f)));
        r = _mm256_sub_ps(r, _mm256_mul_ps(n, _mm256_set1_ps(-2.12194440e-4f)));
        vec y = _mm256_set1_ps(1.9875691500e-4f);
        y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
        y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
        y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
        y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
        y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
        y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
        const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
        return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
    }
};

}  // namespace

extern constexpr KernelList kernels_ssm_avx2{Isa::avx2, ssm_simd::entries<Avx2>.data(), ssm_simd::entries<Avx2>.size()};

}  // namespace slmk
