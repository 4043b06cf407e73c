// ---- Mamba-2 kernels, AVX2 (8 floats per vector) ----
// The kernel bodies are ssm_simd.h; this file supplies the vector operations.
#include <immintrin.h>

#include "core/math_avx2.h"
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
    static vec exp(vec x) { return avx2::exp(x); }  // core/math_avx2.h
};

}  // namespace

extern constexpr KernelList kernels_ssm_avx2{Isa::avx2, ssm_simd::entries<Avx2>.data(), ssm_simd::entries<Avx2>.size()};

}  // namespace slmk
