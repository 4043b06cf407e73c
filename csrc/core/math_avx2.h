// ---- vector maths for the AVX2 files (ops_avx2, attention_avx2, ssm_avx2): one exp for all ----
// Included only by sources compiled with the AVX2 + FMA flags. Everything here sits in an
// anonymous namespace: each including file gets its own copy, built with its own flags, so the
// linker never merges it with a copy compiled for another rung.
#pragma once
#include <immintrin.h>

namespace slmk {
namespace {
namespace avx2 {

// exp(x) in float32 within ~2 ulp: Cephes' expf (S. Moshier). x is clamped to [-87.3, 88.7]
// (NaN becomes -87.3); n = round(x log2 e), r = x - n ln 2 with ln 2 in two parts, p(r) a
// degree-6 polynomial, and the result p * 2^n with 2^n in two factors (n reaches 128).
inline __m256 exp(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.7f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i h = _mm256_srai_epi32(ni, 1);
    const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(h, _mm256_set1_epi32(127)), 23));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, h), _mm256_set1_epi32(127)), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

// exp(x), and exactly 0 where x < -87.3 or x is NaN: softmax weights (a -inf score weighs 0).
inline __m256 exp_or_zero(__m256 x) {
    return _mm256_and_ps(exp(x), _mm256_cmp_ps(x, _mm256_set1_ps(-87.3f), _CMP_GE_OQ));
}

}  // namespace avx2
}  // namespace
}  // namespace slmk
