// ---- vector maths for the AVX-512 files (ops_avx512, attention_avx512, ssm_avx512): one exp for all ----
// Included only by sources compiled with the AVX-512 flags. Everything here sits in an
// anonymous namespace: each including file gets its own copy, built with its own flags, so the
// linker never merges it with a copy compiled for another rung.
#pragma once
#include <immintrin.h>

namespace slmk {
namespace {
namespace avx512 {

// exp(x) in float32 within ~2 ulp: Cephes' expf (S. Moshier), as core/math_avx2.h; 2^n applied
// by scalef (no overflow at n = 128).
inline __m512 exp(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.7f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

// exp(x), and exactly 0 where x < -87.3 or x is NaN: softmax weights (a -inf score weighs 0).
inline __m512 exp_or_zero(__m512 x) {
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3f), _CMP_GE_OQ), exp(x));
}

}  // namespace avx512
}  // namespace
}  // namespace slmk
