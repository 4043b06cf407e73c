// ---- peak probe, AVX-VNNI (256-bit vpdpbusd: 32 int8 multiply-adds per instruction) ----
#include <immintrin.h>

#include <cstdint>

#include "probe.h"

namespace slmk {

namespace {

double int8_avx_vnni(int64_t iters) {
    __m256i acc[12];
    for (int j = 0; j < 12; ++j) acc[j] = _mm256_set1_epi32(j);
    const __m256i a = _mm256_set1_epi8(3), b = _mm256_set1_epi8(-2);
    for (int64_t i = 0; i < iters; ++i)
        for (int j = 0; j < 12; ++j) acc[j] = _mm256_dpbusd_avx_epi32(acc[j], a, b);
    __m256i s = acc[0];
    for (int j = 1; j < 12; ++j) s = _mm256_add_epi32(s, acc[j]);
    volatile int sink = _mm256_extract_epi32(s, 0);
    (void)sink;
    return static_cast<double>(iters) * 12 * 32;
}

constexpr std::array<KernelEntry, 1> kEntries = {
    entry<Op::probe_int8, int8_avx_vnni>(),
};

}  // namespace

extern constexpr KernelList kernels_probe_avx_vnni{Isa::avx_vnni, kEntries.data(), kEntries.size()};

}  // namespace slmk
