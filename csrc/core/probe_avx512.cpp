// ---- probes, AVX-512: streaming read; fp32 peak (vfmadd zmm: 16 fp32 FMAs) ----
#include <immintrin.h>

#include <cstdint>

#include "probe.h"

namespace slmk {

namespace {

// Streaming read of [p, p + bytes) (bytes a multiple of 512): 512-bit loads into 8 independent
// 64-bit-lane sums, the most loads in flight the core allows; returns a checksum.
uint64_t read_avx512(const uint8_t* p, int64_t bytes) {
    __m512i acc[8];
    for (int j = 0; j < 8; ++j) acc[j] = _mm512_setzero_si512();
    for (int64_t i = 0; i < bytes; i += 512)
        for (int j = 0; j < 8; ++j)
            acc[j] = _mm512_add_epi64(acc[j], _mm512_load_si512(reinterpret_cast<const void*>(p + i + 64 * j)));
    for (int j = 1; j < 8; ++j) acc[0] = _mm512_add_epi64(acc[0], acc[j]);
    // Summed as unsigned: the lanes wrap, and a signed sum of them would overflow.
    alignas(64) uint64_t lanes[8];
    _mm512_store_si512(lanes, acc[0]);
    uint64_t sum = 0;
    for (uint64_t lane : lanes) sum += lane;
    return sum;
}

double fp32_avx512(int64_t iters) {
    __m512 acc[12];
    for (int j = 0; j < 12; ++j) acc[j] = _mm512_set1_ps(static_cast<float>(j));
    const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(0.001f);
    for (int64_t i = 0; i < iters; ++i)
        for (int j = 0; j < 12; ++j) acc[j] = _mm512_fmadd_ps(acc[j], a, b);
    __m512 s = acc[0];
    for (int j = 1; j < 12; ++j) s = _mm512_add_ps(s, acc[j]);
    volatile float sink = _mm512_reduce_add_ps(s);
    (void)sink;
    return static_cast<double>(iters) * 12 * 16;
}

constexpr std::array<KernelEntry, 2> kEntries = {
    entry<Op::probe_read, read_avx512>(),
    entry<Op::probe_fp32, fp32_avx512>(),
};

}  // namespace

extern constexpr KernelList kernels_probe_avx512{Isa::avx512, kEntries.data(), kEntries.size()};

}  // namespace slmk
