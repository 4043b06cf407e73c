// ---- peak probe, AVX-512 VNNI (vpdpbusd zmm: 64 int8 multiply-adds per instruction) ----
#include <immintrin.h>

#include <cstdint>

#include "probe.h"

namespace slmk {

namespace {

double int8_avx512_vnni(int64_t iters) {
    __m512i acc[12];
    for (int j = 0; j < 12; ++j) acc[j] = _mm512_set1_epi32(j);
    const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
    for (int64_t i = 0; i < iters; ++i)
        for (int j = 0; j < 12; ++j) acc[j] = _mm512_dpbusd_epi32(acc[j], a, b);
    __m512i s = acc[0];
    for (int j = 1; j < 12; ++j) s = _mm512_add_epi32(s, acc[j]);
    // Keep the result alive by one lane: the accumulators wrap (vpdpbusd adds modulo 2^32), and a
    // C-level reduction of them would be a signed overflow.
    volatile int sink = _mm512_cvtsi512_si32(s);
    (void)sink;
    return static_cast<double>(iters) * 12 * 64;
}

constexpr std::array<KernelEntry, 1> kEntries = {
    entry<Op::probe_int8, int8_avx512_vnni>(),
};

}  // namespace

extern constexpr KernelList kernels_probe_avx512_vnni{Isa::avx512_vnni, kEntries.data(), kEntries.size()};

}  // namespace slmk
