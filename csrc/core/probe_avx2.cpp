// ---- peak probes, AVX2 (maddubs + madd: 32 int8 multiply-adds per instruction pair) ----
#include <immintrin.h>

#include <cstdint>

namespace slmk {

double probe_int8_avx2(int64_t iters) {
    __m256i acc[12];
    for (int j = 0; j < 12; ++j) acc[j] = _mm256_set1_epi32(j);
    const __m256i a = _mm256_set1_epi8(3), b = _mm256_set1_epi8(-2), ones = _mm256_set1_epi16(1);
    for (int64_t i = 0; i < iters; ++i)
        for (int j = 0; j < 12; ++j)
            acc[j] = _mm256_add_epi32(acc[j], _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), ones));
    __m256i s = acc[0];
    for (int j = 1; j < 12; ++j) s = _mm256_add_epi32(s, acc[j]);
    volatile int sink = _mm256_extract_epi32(s, 0);
    (void)sink;
    return static_cast<double>(iters) * 12 * 32;
}

double probe_fp32_avx2(int64_t iters) {
    __m256 acc[12];
    for (int j = 0; j < 12; ++j) acc[j] = _mm256_set1_ps(static_cast<float>(j));
    const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(0.001f);
    for (int64_t i = 0; i < iters; ++i)
        for (int j = 0; j < 12; ++j) acc[j] = _mm256_fmadd_ps(acc[j], a, b);
    __m256 s = acc[0];
    for (int j = 1; j < 12; ++j) s = _mm256_add_ps(s, acc[j]);
    volatile float sink = _mm256_cvtss_f32(s);
    (void)sink;
    return static_cast<double>(iters) * 12 * 8;
}

}  // namespace slmk
