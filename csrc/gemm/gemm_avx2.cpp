// ---- GEMM micro-kernels and activation quantizers, AVX2 (+FMA, F16C) ----
// The tile kernels live in gemm_avx2_tiles.h (shared with the AVX-VNNI file); here the integer
// dot is maddubs (u8 x s8 -> saturating int16 pair sums) + madd with ones (-> int32 lanes).
// No saturation: activations are in [-127, 127]; nibble weights are <= 63 (dot2's two int16
// sums stay <= 4 * 63 * 127 = 32004); Q8_0 uses |w| <= 128 with a single pair sum <= 32512.
#include <cmath>
#include <cstring>

#include "gemm_avx2_tiles.h"

namespace slmk {

namespace {

struct DotMaddubs {
    static inline __m256i dot(__m256i acc, __m256i w, __m256i x) {
        return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1)));
    }
    // w0, w1 <= 63 only (the int16 sum of the two products must not wrap)
    static inline __m256i dot2(__m256i acc, __m256i w0, __m256i x0, __m256i w1, __m256i x1) {
        const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(w0, x0), _mm256_maddubs_epi16(w1, x1));
        return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
    }
};

// ---- activation quantization (quantize_act_block in gemm_ref.cpp) ----
static inline int32_t hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}
static inline float hmax_ps(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

// n = 32 or 256 values; writes q[n], *d and the n/16 sums of each 16 q.
static inline void quant_block(const float* x, int n, int8_t* q, float* d_out, int32_t* sum16) {
    const __m256i absmask = _mm256_set1_epi32(0x7fffffff);
    __m256 vmax = _mm256_setzero_ps();
    __m256i bad = _mm256_setzero_si256();
    for (int j = 0; j < n; j += 8) {
        const __m256i av = _mm256_and_si256(_mm256_castps_si256(_mm256_loadu_ps(x + j)), absmask);
        bad = _mm256_or_si256(bad, _mm256_cmpgt_epi32(av, _mm256_set1_epi32(0x7f7fffff)));  // inf or NaN
        vmax = _mm256_max_ps(vmax, _mm256_castsi256_ps(av));
    }
    if (!_mm256_testz_si256(bad, bad)) {
        std::memset(q, 0, n);
        std::memset(sum16, 0, (n / 16) * sizeof(int32_t));
        *d_out = NAN;
        return;
    }
    const float d = hmax_ps(vmax) / 127.0f;  // max of finite |x| is exact: same amax as the scalar
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    if (!std::isfinite(id)) id = 0.0f;
    const __m256 vid = _mm256_set1_ps(id);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int j = 0; j < n; j += 32) {
        // cvtps rounds to nearest even under the default MXCSR, like nearbyint
        const __m256i q0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + j), vid));
        const __m256i q1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + j + 8), vid));
        const __m256i q2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + j + 16), vid));
        const __m256i q3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + j + 24), vid));
        const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q0, q1), _mm256_packs_epi32(q2, q3));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + j), _mm256_permutevar8x32_epi32(p, perm));
        sum16[j / 16] = hsum_epi32(_mm256_add_epi32(q0, q1));
        sum16[j / 16 + 1] = hsum_epi32(_mm256_add_epi32(q2, q3));
    }
    *d_out = d;
}

void act_quant_32_avx2(const float* x, int64_t k, int8_t* q, float* d, int32_t* sum) {
    for (int64_t b = 0; b < k / 32; ++b) {
        int32_t s[2];
        quant_block(x + 32 * b, 32, q + 32 * b, d + b, s);
        sum[b] = s[0] + s[1];
    }
}

void act_quant_256_avx2(const float* x, int64_t k, int8_t* q, float* d, int32_t* sum) {
    for (int64_t b = 0; b < k / 256; ++b) quant_block(x + 256 * b, 256, q + 256 * b, d + b, sum + 16 * b);
}

constexpr auto kEntries = join(
    std::array<KernelEntry, 5>{
        entry<Op::act_quant, act_quant_32_avx2>(Format::Q8_0),
        entry<Op::act_quant, act_quant_256_avx2>(Format::Q8_K),
        entry<Op::gemm, g2_tilef<Format::F32>>(Format::F32, {kGroupRows, kMaxMR}),
        entry<Op::gemm, g2_tilef<Format::F16>>(Format::F16, {kGroupRows, kMaxMR}),
        entry<Op::gemm, g2_tilef<Format::BF16>>(Format::BF16, {kGroupRows, kMaxMR}),
    },
    g2_int_tile_entries<DotMaddubs>);

}  // namespace

extern constexpr KernelList kernels_gemm_avx2{Isa::avx2, kEntries.data(), kEntries.size()};

}  // namespace slmk
