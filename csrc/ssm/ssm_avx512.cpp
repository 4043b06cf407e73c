// ---- Mamba-2 kernels, AVX-512F (16 floats per vector) ----
// The kernel bodies are ssm_simd.h; this file supplies the vector operations.
#include <immintrin.h>

#include "core/math_avx512.h"
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
    static vec exp(vec x) { return avx512::exp(x); }  // core/math_avx512.h
};

}  // namespace

extern constexpr KernelList kernels_ssm_avx512{Isa::avx512, ssm_simd::entries<Avx512>.data(), ssm_simd::entries<Avx512>.size()};

}  // namespace slmk
