// ---- quantize / dequantize, AVX2 (+F16C): bit-identical twins of quant_ref.cpp ----
// Every float operation below is the scalar twin's operation in the same order and with the
// same operand order (d * q, (d * q) + m, (dl * q) - ml): x86 returns the first source
// operand's NaN when both are NaN, so order is visible in the bits. No FMA anywhere (the
// twin rounds the product and the sum separately), and real divisions for d and 1/d.
// Layouts: formats.h (ggml's ggml-common.h block structs).
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "../core/fp16.h"
#include "quant_common.h"
#include "quant_rows.h"

namespace slmk {

namespace {

// ---- helpers ----

// An fp16 scale through F16C. vcvtph2ps quiets a signalling NaN where fp16_to_fp32 keeps it
// signalling; every use below first multiplies the scale, which quiets it in the twin too.
inline float half_scale(const uint8_t* p) {
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(load_u16(p))));
}

inline __m256 i8x8_to_ps(__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)); }
inline __m256 u8x8_to_ps(__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)); }

// y[0..31] = d * q[0..31], q signed bytes.
inline void store_scaled_i8x32(__m256i q, __m256 d, float* y) {
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    _mm256_storeu_ps(y + 0, _mm256_mul_ps(d, i8x8_to_ps(lo)));
    _mm256_storeu_ps(y + 8, _mm256_mul_ps(d, i8x8_to_ps(_mm_srli_si128(lo, 8))));
    _mm256_storeu_ps(y + 16, _mm256_mul_ps(d, i8x8_to_ps(hi)));
    _mm256_storeu_ps(y + 24, _mm256_mul_ps(d, i8x8_to_ps(_mm_srli_si128(hi, 8))));
}
// y[0..31] = (d * q[0..31]) + m, q unsigned bytes.
inline void store_affine_u8x32(__m256i q, __m256 d, __m256 m, float* y) {
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    _mm256_storeu_ps(y + 0, _mm256_add_ps(_mm256_mul_ps(d, u8x8_to_ps(lo)), m));
    _mm256_storeu_ps(y + 8, _mm256_add_ps(_mm256_mul_ps(d, u8x8_to_ps(_mm_srli_si128(lo, 8))), m));
    _mm256_storeu_ps(y + 16, _mm256_add_ps(_mm256_mul_ps(d, u8x8_to_ps(hi)), m));
    _mm256_storeu_ps(y + 24, _mm256_add_ps(_mm256_mul_ps(d, u8x8_to_ps(_mm_srli_si128(hi, 8))), m));
}
// y[0..31] = (dl * q[0..31]) - ml, q unsigned bytes (the K-quant sub-block formula).
inline void store_kquant_u8x32(__m256i q, __m256 dl, __m256 ml, float* y) {
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    _mm256_storeu_ps(y + 0, _mm256_sub_ps(_mm256_mul_ps(dl, u8x8_to_ps(lo)), ml));
    _mm256_storeu_ps(y + 8, _mm256_sub_ps(_mm256_mul_ps(dl, u8x8_to_ps(_mm_srli_si128(lo, 8))), ml));
    _mm256_storeu_ps(y + 16, _mm256_sub_ps(_mm256_mul_ps(dl, u8x8_to_ps(hi)), ml));
    _mm256_storeu_ps(y + 24, _mm256_sub_ps(_mm256_mul_ps(dl, u8x8_to_ps(_mm_srli_si128(hi, 8))), ml));
}

// The 16 packed bytes of a 32-block as 32 nibbles in element order: low nibbles, then high.
inline __m256i unpack_nibbles_x32(const uint8_t* qs) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    const __m128i m4 = _mm_set1_epi8(0x0F);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m4), _mm_and_si128(v, m4));
}

// Byte j = 0x10 where bit j of h is set (the fifth bit of Q5_0 / Q5_1 quants).
inline __m256i bits_to_0x10(uint32_t h) {
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,  //
                                          2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ULL));
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(h)), shuf);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

inline __m256 abs_ps(__m256 v) { return _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff))); }

// Horizontal max / min of 8 lanes. Callers guarantee no lane is NaN, or that all are.
inline float hmax_ps(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}
inline float hmin_ps(__m256 v) {
    __m128 m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_min_ps(m, _mm_movehl_ps(m, m));
    m = _mm_min_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

// trunc_to_i32(round_half_away(v)) of quant_common.h: t = trunc(v), frac = v - t (exact for
// finite v), step one away from zero where |frac| >= 0.5. Non-finite v leaves t non-finite
// (inf - inf = NaN fails the compare), and cvttps gives INT32_MIN for it and for |v| >= 2^31,
// as trunc_to_i32 does.
inline __m256i round_away_i32(__m256 v) {
    const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(0x80000000u)));
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = abs_ps(_mm256_sub_ps(v, t));
    const __m256 ge = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    const __m256 step = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0f));  // copysign(1, v)
    return _mm256_cvttps_epi32(_mm256_add_ps(t, _mm256_and_ps(ge, step)));
}

// The low bytes of four vectors of 8 int32 (elements 0..31 in order): numpy's float -> int8 /
// uint8 cast keeps the low byte, so no saturation here.
inline __m256i low_bytes_x32(__m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i ff = _mm256_set1_epi32(0xff);
    const __m256i ab = _mm256_packus_epi32(_mm256_and_si256(a, ff), _mm256_and_si256(b, ff));
    const __m256i cd = _mm256_packus_epi32(_mm256_and_si256(c, ff), _mm256_and_si256(d, ff));
    // lanes now hold [a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7 d4-7]
    return _mm256_permutevar8x32_epi32(_mm256_packus_epi16(ab, cd), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// The first index j in 0..31 with v[j] == target (ordered compare), 0 when there is none
// (target NaN: the scalar scans then keep x[0]).
inline int first_equal_x32(const __m256 v[4], __m256 target) {
    uint32_t mask = 0;
    for (int k = 0; k < 4; ++k)
        mask |= static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(v[k], target, _CMP_EQ_OQ))) << (8 * k);
    return mask ? static_cast<int>(_tzcnt_u32(mask)) : 0;
}

// ---- float formats ----
void dequantize_f16(const uint8_t* x, float* y, int64_t n) {
    const __m256i mag = _mm256_set1_epi32(0x7fff);
    const __m256i inf = _mm256_set1_epi32(0x7c00), qnan = _mm256_set1_epi32(0x7e00);
    const __m256i quiet_bit = _mm256_set1_epi32(0x00400000);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + 2 * i));
        __m256i f = _mm256_castps_si256(_mm256_cvtph_ps(h));
        // vcvtph2ps quiets signalling NaNs (0x7c01..0x7dff); fp16_to_fp32 keeps the payload as is.
        const __m256i a = _mm256_and_si256(_mm256_cvtepu16_epi32(h), mag);
        const __m256i snan = _mm256_and_si256(_mm256_cmpgt_epi32(a, inf), _mm256_cmpgt_epi32(qnan, a));
        f = _mm256_andnot_si256(_mm256_and_si256(snan, quiet_bit), f);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), f);
    }
    for (; i < n; ++i) y[i] = fp16_to_fp32(load_u16(x + 2 * i));
}
void quantize_f16(const float* x, uint8_t* y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)  // imm 0: round to nearest even, as fp32_to_fp16
        _mm_storeu_si128(reinterpret_cast<__m128i*>(y + 2 * i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), 0));
    for (; i < n; ++i) store_u16(y + 2 * i, fp32_to_fp16(x[i]));
}
void dequantize_bf16(const uint8_t* x, float* y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + 2 * i));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    for (; i < n; ++i) y[i] = bf16_to_fp32(load_u16(x + 2 * i));
}
void quantize_bf16(const float* x, uint8_t* y, int64_t n) {
    const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff), quiet = _mm256_set1_epi32(64);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i r[2];
        for (int h = 0; h < 2; ++h) {
            const __m256i u = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i + 8 * h));
            const __m256i hi = _mm256_srli_epi32(u, 16);
            const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(bias, _mm256_and_si256(hi, one))), 16);
            const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs_mask), inf);
            r[h] = _mm256_blendv_epi8(rounded, _mm256_or_si256(hi, quiet), nan);
        }
        const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r[0], r[1]), 0xD8);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + 2 * i), packed);
    }
    for (; i < n; ++i) store_u16(y + 2 * i, fp32_to_bf16(x[i]));
}

// ---- Q8_0 ----
void dequantize_q8_0(const uint8_t* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += sizeof(block_q8_0), y += QK) {
        const __m256 d = _mm256_set1_ps(half_scale(x));
        for (int j = 0; j < QK; j += 8) {  // the twin's order: q * d
            const __m256 q = i8x8_to_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(x + 2 + j)));
            _mm256_storeu_ps(y + j, _mm256_mul_ps(q, d));
        }
    }
}

// amax over n floats as the twin's std::max(amax, fabs(x)) scan: NaNs never win.
inline float absmax(const float* x, int n) {
    __m256 acc = _mm256_setzero_ps();
    for (int j = 0; j < n; j += 8) acc = _mm256_max_ps(abs_ps(_mm256_loadu_ps(x + j)), acc);
    return hmax_ps(acc);
}

// 32 bytes trunc_to_i32(round_half_away(x[j] * id)), low bytes.
inline __m256i round_scaled_x32(const float* x, __m256 id) {
    __m256i r[4];
    for (int k = 0; k < 4; ++k) r[k] = round_away_i32(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), id));
    return low_bytes_x32(r[0], r[1], r[2], r[3]);
}

void quantize_q8_0(const float* x, uint8_t* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += QK, y += sizeof(block_q8_0)) {
        const float d = absmax(x, QK) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_u16(y, fp32_to_fp16(d));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + 2), round_scaled_x32(x, _mm256_set1_ps(id)));
    }
}

// ---- Q8_K ----
void quantize_q8_k(const float* x, uint8_t* y, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; ++b, x += QK_K, y += sizeof(block_q8_K)) {
        const float d = absmax(x, QK_K) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const __m256 idv = _mm256_set1_ps(id);
        int16_t bsums[QK_K / 16];
        for (int j = 0; j < QK_K; j += 32) {
            const __m256i q = round_scaled_x32(x + j, idv);
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + 4 + j), q);
            // group sums: sum(int8 q) = sum(uint8(q ^ 0x80)) - 16 * 128 per group of 16
            const __m256i s = _mm256_sad_epu8(_mm256_xor_si256(q, _mm256_set1_epi8(static_cast<char>(0x80))),
                                              _mm256_setzero_si256());
            bsums[j / 16] = static_cast<int16_t>(_mm256_extract_epi64(s, 0) + _mm256_extract_epi64(s, 1) - 2048);
            bsums[j / 16 + 1] = static_cast<int16_t>(_mm256_extract_epi64(s, 2) + _mm256_extract_epi64(s, 3) - 2048);
        }
        std::memcpy(y, &d, 4);
        std::memcpy(y + 4 + QK_K, bsums, sizeof(bsums));
    }
}
void dequantize_q8_k(const uint8_t* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; ++b, x += sizeof(block_q8_K), y += QK_K) {
        float d;
        std::memcpy(&d, x, 4);
        const __m256 dv = _mm256_set1_ps(d);
        for (int j = 0; j < QK_K; j += 8) {  // the twin's order: q * d
            const __m256 q = i8x8_to_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(x + 4 + j)));
            _mm256_storeu_ps(y + j, _mm256_mul_ps(q, dv));
        }
    }
}

// ---- 32-block quantizers ----

// signed_absmax of the twin: the value of largest magnitude, the first one on ties, x[0] when
// x[0] is NaN (its scan then never updates). Lanes start at |x[0]| so a NaN there stays.
inline float signed_absmax_x32(const float* x, const __m256 v[4]) {
    __m256 acc = _mm256_set1_ps(std::fabs(x[0]));
    __m256 a[4];
    for (int k = 0; k < 4; ++k) {
        a[k] = abs_ps(v[k]);
        acc = _mm256_max_ps(a[k], acc);  // a > acc ? a : acc, as the twin's strict >
    }
    return x[first_equal_x32(a, _mm256_set1_ps(hmax_ps(acc)))];
}

// The low bytes of trunc_to_i32(v), each clamped to at most hi (clamp_u8_max).
inline __m256i clamp_low_bytes(const __m256 v[4], int hi) {
    const __m256i ff = _mm256_set1_epi32(0xff), h = _mm256_set1_epi32(hi);
    __m256i r[4];
    for (int k = 0; k < 4; ++k) r[k] = _mm256_min_epi32(_mm256_and_si256(_mm256_cvttps_epi32(v[k]), ff), h);
    return low_bytes_x32(r[0], r[1], r[2], r[3]);
}

// q[j] & 0x0F | q[j+16] << 4 for j < 16.
inline void store_nibbles(__m256i q, uint8_t* qs) {
    const __m128i m4 = _mm_set1_epi8(0x0F);
    const __m128i lo = _mm_and_si128(_mm256_castsi256_si128(q), m4);
    const __m128i hi = _mm_and_si128(_mm256_extracti128_si256(q, 1), m4);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(qs), _mm_or_si128(lo, _mm_slli_epi16(hi, 4)));
}
// Bit j = bit 4 of q[j].
inline uint32_t high_bits(__m256i q) {
    return static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_slli_epi16(q, 3)));
}

template <int kBits>
inline __m256i quantize_sym_x32(const float* x, float* d_out) {
    constexpr int kHalf = 1 << (kBits - 1);
    __m256 v[4];
    for (int k = 0; k < 4; ++k) v[k] = _mm256_loadu_ps(x + 8 * k);
    const float d = signed_absmax_x32(x, v) / static_cast<float>(-kHalf);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const __m256 idv = _mm256_set1_ps(id), off = _mm256_set1_ps(kHalf + 0.5f);
    for (int k = 0; k < 4; ++k) v[k] = _mm256_add_ps(_mm256_mul_ps(v[k], idv), off);  // trunc is in cvtt
    *d_out = d;
    return clamp_low_bytes(v, 2 * kHalf - 1);
}

// Min and max as the twin's std::min / std::max scans: NaNs after x[0] are skipped, a NaN
// x[0] sticks, and among equal values (+0 / -0) the first one wins. The lane scans give the
// value; the first element comparing equal to it gives the bits.
template <int kBits>
inline __m256i quantize_asym_x32(const float* x, float* d_out, float* m_out) {
    constexpr int kMaxQ = (1 << kBits) - 1;
    __m256 v[4];
    __m256 mn = _mm256_set1_ps(x[0]), mx = mn;
    for (int k = 0; k < 4; ++k) {
        v[k] = _mm256_loadu_ps(x + 8 * k);
        mn = _mm256_min_ps(v[k], mn);  // v < mn ? v : mn
        mx = _mm256_max_ps(v[k], mx);  // v > mx ? v : mx
    }
    const float fmn = x[first_equal_x32(v, _mm256_set1_ps(hmin_ps(mn)))];
    const float fmx = x[first_equal_x32(v, _mm256_set1_ps(hmax_ps(mx)))];
    const float d = (fmx - fmn) / static_cast<float>(kMaxQ);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const __m256 idv = _mm256_set1_ps(id), mnv = _mm256_set1_ps(fmn), half = _mm256_set1_ps(0.5f);
    for (int k = 0; k < 4; ++k) v[k] = _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(v[k], mnv), idv), half);
    *d_out = d;
    *m_out = fmn;
    return clamp_low_bytes(v, kMaxQ);
}

void quantize_q4_0(const float* x, uint8_t* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += QK, y += sizeof(block_q4_0)) {
        float d;
        const __m256i q = quantize_sym_x32<4>(x, &d);
        store_u16(y, fp32_to_fp16(d));
        store_nibbles(q, y + 2);
    }
}
void quantize_q4_1(const float* x, uint8_t* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += QK, y += sizeof(block_q4_1)) {
        float d, m;
        const __m256i q = quantize_asym_x32<4>(x, &d, &m);
        store_u16(y, fp32_to_fp16(d));
        store_u16(y + 2, fp32_to_fp16(m));
        store_nibbles(q, y + 4);
    }
}
void quantize_q5_0(const float* x, uint8_t* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += QK, y += sizeof(block_q5_0)) {
        float d;
        const __m256i q = quantize_sym_x32<5>(x, &d);
        store_u16(y, fp32_to_fp16(d));
        const uint32_t h = high_bits(q);
        std::memcpy(y + 2, &h, 4);
        store_nibbles(q, y + 6);
    }
}
void quantize_q5_1(const float* x, uint8_t* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += QK, y += sizeof(block_q5_1)) {
        float d, m;
        const __m256i q = quantize_asym_x32<5>(x, &d, &m);
        store_u16(y, fp32_to_fp16(d));
        store_u16(y + 2, fp32_to_fp16(m));
        const uint32_t h = high_bits(q);
        std::memcpy(y + 4, &h, 4);
        store_nibbles(q, y + 8);
    }
}

// ---- 32-block dequantizers ----
void dequantize_q4_0(const uint8_t* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += sizeof(block_q4_0), y += QK) {
        const __m256i q = _mm256_sub_epi8(unpack_nibbles_x32(x + 2), _mm256_set1_epi8(8));
        store_scaled_i8x32(q, _mm256_set1_ps(half_scale(x)), y);
    }
}
void dequantize_q4_1(const uint8_t* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += sizeof(block_q4_1), y += QK)
        store_affine_u8x32(unpack_nibbles_x32(x + 4), _mm256_set1_ps(half_scale(x)),
                           _mm256_set1_ps(half_scale(x + 2)), y);
}
void dequantize_q5_0(const uint8_t* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += sizeof(block_q5_0), y += QK) {
        __m256i q = _mm256_or_si256(unpack_nibbles_x32(x + 6), bits_to_0x10(load_u32(x + 2)));
        q = _mm256_sub_epi8(q, _mm256_set1_epi8(16));
        store_scaled_i8x32(q, _mm256_set1_ps(half_scale(x)), y);
    }
}
void dequantize_q5_1(const uint8_t* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += sizeof(block_q5_1), y += QK) {
        const __m256i q = _mm256_or_si256(unpack_nibbles_x32(x + 8), bits_to_0x10(load_u32(x + 4)));
        store_affine_u8x32(q, _mm256_set1_ps(half_scale(x)), _mm256_set1_ps(half_scale(x + 2)), y);
    }
}

// ---- K-quant dequantizers ----
// Q4_K / Q5_K: sub-block j of 32 is (d * sc_j) * q - (dmin * m_j); the two products are
// scalar, as in the twin. Sub-blocks 2g and 2g+1 share the 32 bytes qs[32g..]: low / high nibbles.
template <bool kQ5>
void dequantize_q45_k(const uint8_t* x, float* y, int64_t n) {
    constexpr size_t kBlock = kQ5 ? sizeof(block_q5_K) : sizeof(block_q4_K);
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int64_t b = 0; b < n / QK_K; ++b, x += kBlock, y += QK_K) {
        const float d = half_scale(x), dmin = half_scale(x + 2);
        const uint8_t* scales = x + 4;
        const uint8_t* qs = x + (kQ5 ? 48 : 16);
        const __m256i qh = kQ5 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 16)) : _mm256_setzero_si256();
        for (int g = 0; g < 4; ++g) {
            const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * g));
            for (int h = 0; h < 2; ++h) {
                const int j = 2 * g + h;
                uint8_t sc, m;
                get_scale_min_k4(j, scales, &sc, &m);
                const float dl = d * sc, ml = dmin * m;
                __m256i q = _mm256_and_si256(h ? _mm256_srli_epi16(v, 4) : v, m4);
                if (kQ5) {
                    const __m256i bit = _mm256_set1_epi8(static_cast<char>(1 << j));
                    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(qh, bit), bit);
                    q = _mm256_or_si256(q, _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
                }
                store_kquant_u8x32(q, _mm256_set1_ps(dl), _mm256_set1_ps(ml), y + 32 * j);
            }
        }
    }
}
void dequantize_q4_k(const uint8_t* x, float* y, int64_t n) { dequantize_q45_k<false>(x, y, n); }
void dequantize_q5_k(const uint8_t* x, float* y, int64_t n) { dequantize_q45_k<true>(x, y, n); }

// Q6_K: elements 128a + 32t + l (l < 32) take the nibble t/2 of ql[64a + 32(t%2) + l] and bits
// 2t..2t+1 of qh[32a + l]; each 16 of them share one scale: (d * sc) * (q - 32).
void dequantize_q6_k(const uint8_t* x, float* y, int64_t n) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x03);
    for (int64_t b = 0; b < n / QK_K; ++b, x += sizeof(block_q6_K), y += QK_K) {
        const uint8_t* ql = x;
        const uint8_t* qhp = x + 128;
        const int8_t* sc = reinterpret_cast<const int8_t*>(x + 192);
        const float d = half_scale(x + 208);
        for (int a = 0; a < 2; ++a) {
            const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 64 * a));
            const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 64 * a + 32));
            const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qhp + 32 * a));
            for (int t = 0; t < 4; ++t) {
                const __m256i l = t % 2 ? l1 : l0;
                const __m256i lo = _mm256_and_si256(t / 2 ? _mm256_srli_epi16(l, 4) : l, m4);
                const __m256i hi = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * t)), m2);
                const __m256i q = _mm256_sub_epi8(_mm256_or_si256(lo, _mm256_slli_epi16(hi, 4)), _mm256_set1_epi8(32));
                const int s = 8 * a + 2 * t;
                const __m256 d0 = _mm256_set1_ps(d * static_cast<float>(sc[s]));
                const __m256 d1 = _mm256_set1_ps(d * static_cast<float>(sc[s + 1]));
                float* yo = y + 128 * a + 32 * t;
                const __m128i q0 = _mm256_castsi256_si128(q), q1 = _mm256_extracti128_si256(q, 1);
                _mm256_storeu_ps(yo + 0, _mm256_mul_ps(d0, i8x8_to_ps(q0)));
                _mm256_storeu_ps(yo + 8, _mm256_mul_ps(d0, i8x8_to_ps(_mm_srli_si128(q0, 8))));
                _mm256_storeu_ps(yo + 16, _mm256_mul_ps(d1, i8x8_to_ps(q1)));
                _mm256_storeu_ps(yo + 24, _mm256_mul_ps(d1, i8x8_to_ps(_mm_srli_si128(q1, 8))));
            }
        }
    }
}

}  // namespace

extern constexpr KernelList kernels_quant_avx2{Isa::avx2, kQuantRowEntries.data(), kQuantRowEntries.size()};

}  // namespace slmk
