// ---- peak probes, AVX2 (maddubs + madd: 32 int8 multiply-adds per instruction pair) ----
#include <immintrin.h>

#include <cstdint>

#include "probe.h"

namespace slmk {

namespace {

double int8_avx2(int64_t iters) {
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

// Streaming read of [p, p + bytes) (bytes a multiple of 512): 256-bit loads into 8 independent
// 64-bit-lane sums; returns a checksum.
uint64_t read_avx2(const uint8_t* p, int64_t bytes) {
    __m256i acc[8];
    for (int j = 0; j < 8; ++j) acc[j] = _mm256_setzero_si256();
    for (int64_t i = 0; i < bytes; i += 512)
        for (int j = 0; j < 8; ++j) {
            const __m256i* q = reinterpret_cast<const __m256i*>(p + i + 64 * j);
            acc[j] = _mm256_add_epi64(acc[j], _mm256_add_epi64(_mm256_load_si256(q), _mm256_load_si256(q + 1)));
        }
    for (int j = 1; j < 8; ++j) acc[0] = _mm256_add_epi64(acc[0], acc[j]);
    // Summed as unsigned: the lanes wrap, and a signed sum of them would overflow.
    alignas(32) uint64_t lanes[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), acc[0]);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

double fp32_avx2(int64_t iters) {
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

constexpr std::array<KernelEntry, 3> kEntries = {
    entry<Op::probe_read, read_avx2>(),
    entry<Op::probe_int8, int8_avx2>(),
    entry<Op::probe_fp32, fp32_avx2>(),
};

}  // namespace

extern constexpr KernelList kernels_probe_avx2{Isa::avx2, kEntries.data(), kEntries.size()};

}  // namespace slmk
