// ---- quantize / dequantize, AVX-512 (F, BW, VL, DQ): bit-identical twins of quant_ref.cpp ----
// Same rules as quant_avx2.cpp: the twin's float operations in the twin's operand order
// (x86 keeps the first source's NaN when both are NaN), no FMA, real divisions. 16 lanes
// cover half a 32-block or one Q6_K scale group; masks replace movemask/blend tricks.
// Layouts: formats.h (ggml's ggml-common.h block structs).
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12.1/12.2 warn inside their own AVX-512 headers (the self-initialised `__Y = __Y` of
// _mm512_undefined_*): GCC bug 105593, fixed in 12.3 / 13. Not a bug in this file.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "../core/fp16.h"
#include "quant_common.h"
#include "quant_rows.h"

namespace slmk {

namespace {

// ---- helpers ----

// An fp16 scale through F16C (quiets a signalling NaN; every use multiplies it first, which
// quiets it in the twin too).
inline float half_scale(const uint8_t* p) {
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(load_u16(p))));
}

inline __m128i load16(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
inline __m512 i8x16_to_ps(__m128i v) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(v)); }
inline __m512 u8x16_to_ps(__m128i v) { return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v)); }

// trunc_to_i32(round_half_away(v)): see quant_avx2.cpp round_away_i32 for why this is exact.
inline __m512i round_away_i32(__m512 v) {
    const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __mmask16 ge = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(v, t)), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    const __m512 step = _mm512_castsi512_ps(_mm512_or_epi32(
        _mm512_and_epi32(_mm512_castps_si512(v), _mm512_set1_epi32(static_cast<int>(0x80000000u))),
        _mm512_castps_si512(_mm512_set1_ps(1.0f))));  // copysign(1, v)
    return _mm512_cvttps_epi32(_mm512_mask_add_ps(t, ge, t, step));
}

// The first index j in 0..31 where bit j of mask is set, 0 when none (the scalar scans keep x[0]).
inline int first_set(uint32_t mask) { return mask ? static_cast<int>(_tzcnt_u32(mask)) : 0; }
inline uint32_t eq_mask_x32(__m512 v0, __m512 v1, float target) {
    const __m512 t = _mm512_set1_ps(target);
    return static_cast<uint32_t>(_mm512_cmp_ps_mask(v0, t, _CMP_EQ_OQ)) |
           static_cast<uint32_t>(_mm512_cmp_ps_mask(v1, t, _CMP_EQ_OQ)) << 16;
}

// ---- float formats ----
void dequantize_f16(const uint8_t* x, float* y, int64_t n) {
    const __m256i mag = _mm256_set1_epi16(0x7fff);
    const __m256i inf = _mm256_set1_epi16(0x7c00), qnan = _mm256_set1_epi16(0x7e00);
    const __m512i quiet_bit = _mm512_set1_epi32(0x00400000);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << (n - i)) - 1);
        const __m256i h = _mm256_maskz_loadu_epi16(k, x + 2 * i);
        __m512i f = _mm512_castps_si512(_mm512_cvtph_ps(h));
        // vcvtph2ps quiets signalling NaNs (0x7c01..0x7dff); fp16_to_fp32 keeps the payload as is.
        const __m256i a = _mm256_and_si256(h, mag);
        const __mmask16 snan = _mm256_cmpgt_epu16_mask(a, inf) & _mm256_cmplt_epu16_mask(a, qnan);
        f = _mm512_mask_andnot_epi32(f, snan, quiet_bit, f);
        _mm512_mask_storeu_epi32(y + i, k, f);
    }
}
void quantize_f16(const float* x, uint8_t* y, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << (n - i)) - 1);
        const __m512 v = _mm512_maskz_loadu_ps(k, x + i);
        _mm256_mask_storeu_epi16(y + 2 * i, k, _mm512_cvtps_ph(v, 0));  // imm 0: nearest even
    }
}
void dequantize_bf16(const uint8_t* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << (n - i)) - 1);
        const __m256i h = _mm256_maskz_loadu_epi16(k, x + 2 * i);
        _mm512_mask_storeu_epi32(y + i, k, _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
}
void quantize_bf16(const float* x, uint8_t* y, int64_t n) {
    const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
    const __m512i one = _mm512_set1_epi32(1), bias = _mm512_set1_epi32(0x7fff), quiet = _mm512_set1_epi32(64);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << (n - i)) - 1);
        const __m512i u = _mm512_maskz_loadu_epi32(k, x + i);
        const __m512i hi = _mm512_srli_epi32(u, 16);
        __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(bias, _mm512_and_epi32(hi, one))), 16);
        const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_epi32(u, abs_mask), inf);
        r = _mm512_mask_or_epi32(r, nan, hi, quiet);
        _mm256_mask_storeu_epi16(y + 2 * i, k, _mm512_cvtepi32_epi16(r));
    }
}

// ---- Q8_0 / Q8_K ----
void dequantize_q8_0(const uint8_t* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += sizeof(block_q8_0), y += QK) {
        const __m512 d = _mm512_set1_ps(half_scale(x));
        _mm512_storeu_ps(y, _mm512_mul_ps(i8x16_to_ps(load16(x + 2)), d));  // the twin's order: q * d
        _mm512_storeu_ps(y + 16, _mm512_mul_ps(i8x16_to_ps(load16(x + 18)), d));
    }
}
void dequantize_q8_k(const uint8_t* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; ++b, x += sizeof(block_q8_K), y += QK_K) {
        float d;
        std::memcpy(&d, x, 4);
        const __m512 dv = _mm512_set1_ps(d);
        for (int j = 0; j < QK_K; j += 16) _mm512_storeu_ps(y + j, _mm512_mul_ps(i8x16_to_ps(load16(x + 4 + j)), dv));
    }
}

// amax over n floats as the twin's std::max(amax, fabs(x)) scan: NaNs never win, so no lane
// holds a NaN and the reduction order does not matter.
inline float absmax(const float* x, int n) {
    __m512 acc = _mm512_setzero_ps();
    for (int j = 0; j < n; j += 16) acc = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + j)), acc);
    return _mm512_reduce_max_ps(acc);
}
// 16 bytes: low byte of trunc_to_i32(round_half_away(x[j] * id)).
inline __m128i round_scaled_x16(const float* x, __m512 id) {
    return _mm512_cvtepi32_epi8(round_away_i32(_mm512_mul_ps(_mm512_loadu_ps(x), id)));
}

void quantize_q8_0(const float* x, uint8_t* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += QK, y += sizeof(block_q8_0)) {
        const float d = absmax(x, QK) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const __m512 idv = _mm512_set1_ps(id);
        store_u16(y, fp32_to_fp16(d));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(y + 2), round_scaled_x16(x, idv));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(y + 18), round_scaled_x16(x + 16, idv));
    }
}
void quantize_q8_k(const float* x, uint8_t* y, int64_t n) {
    const __m128i bias = _mm_set1_epi8(static_cast<char>(0x80));
    for (int64_t b = 0; b < n / QK_K; ++b, x += QK_K, y += sizeof(block_q8_K)) {
        const float d = absmax(x, QK_K) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const __m512 idv = _mm512_set1_ps(id);
        int16_t bsums[QK_K / 16];
        for (int g = 0; g < QK_K / 16; ++g) {
            const __m128i q = round_scaled_x16(x + 16 * g, idv);
            _mm_storeu_si128(reinterpret_cast<__m128i*>(y + 4 + 16 * g), q);
            // sum(int8 q) = sum(uint8(q ^ 0x80)) - 16 * 128
            const __m128i s = _mm_sad_epu8(_mm_xor_si128(q, bias), _mm_setzero_si128());
            bsums[g] = static_cast<int16_t>(_mm_cvtsi128_si32(s) + _mm_extract_epi16(s, 4) - 2048);
        }
        std::memcpy(y, &d, 4);
        std::memcpy(y + 4 + QK_K, bsums, sizeof(bsums));
    }
}

// ---- 32-block quantizers ----

// 32 quants (each at most 31) as bytes 0..15 and 16..31: the low byte of trunc_to_i32(v)
// clamped to at most hi (clamp_u8_max); cvttps truncates, so trunc(v) is implied.
inline __m128i clamp_low_bytes_x16(__m512 v, int hi) {
    const __m512i b = _mm512_and_epi32(_mm512_cvttps_epi32(v), _mm512_set1_epi32(0xff));
    return _mm512_cvtepi32_epi8(_mm512_min_epi32(b, _mm512_set1_epi32(hi)));
}
inline void store_nibbles(__m128i lo, __m128i hi, uint8_t* qs) {
    const __m128i m4 = _mm_set1_epi8(0x0F);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(qs),
                     _mm_or_si128(_mm_and_si128(lo, m4), _mm_slli_epi16(_mm_and_si128(hi, m4), 4)));
}
inline uint32_t high_bits(__m128i lo, __m128i hi) {  // bit j = bit 4 of q[j]
    const __m128i b4 = _mm_set1_epi8(0x10);
    return static_cast<uint32_t>(_mm_test_epi8_mask(lo, b4)) | static_cast<uint32_t>(_mm_test_epi8_mask(hi, b4)) << 16;
}

// Q4_0 / Q5_0: d = signed_absmax / -2^(bits-1). The twin's absmax scan keeps the first value
// of largest magnitude and never updates past a NaN x[0]; lanes start at |x[0]| so that NaN
// survives into the reduction and matches nothing (first_set then gives 0).
template <int kBits>
inline void quantize_sym_x32(const float* x, __m128i* lo, __m128i* hi, float* d_out) {
    constexpr int kHalf = 1 << (kBits - 1);
    __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    const __m512 a0 = _mm512_abs_ps(v0), a1 = _mm512_abs_ps(v1);
    __m512 acc = _mm512_set1_ps(std::fabs(x[0]));
    acc = _mm512_max_ps(a0, acc);  // a > acc ? a : acc, as the twin's strict >
    acc = _mm512_max_ps(a1, acc);
    const float max = x[first_set(eq_mask_x32(a0, a1, _mm512_reduce_max_ps(acc)))];
    const float d = max / static_cast<float>(-kHalf);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const __m512 idv = _mm512_set1_ps(id), off = _mm512_set1_ps(kHalf + 0.5f);
    *lo = clamp_low_bytes_x16(_mm512_add_ps(_mm512_mul_ps(v0, idv), off), 2 * kHalf - 1);
    *hi = clamp_low_bytes_x16(_mm512_add_ps(_mm512_mul_ps(v1, idv), off), 2 * kHalf - 1);
    *d_out = d;
}

// Q4_1 / Q5_1: min and max as the twin's std::min / std::max scans (NaNs after x[0] skipped,
// a NaN x[0] sticks, the first of equal values (+0 / -0) wins): the lanes give the value, the
// first element comparing equal gives the bits.
template <int kBits>
inline void quantize_asym_x32(const float* x, __m128i* lo, __m128i* hi, float* d_out, float* m_out) {
    constexpr int kMaxQ = (1 << kBits) - 1;
    const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    const __m512 x0 = _mm512_set1_ps(x[0]);
    const __m512 mn = _mm512_min_ps(v1, _mm512_min_ps(v0, x0));  // v < acc ? v : acc
    const __m512 mx = _mm512_max_ps(v1, _mm512_max_ps(v0, x0));  // v > acc ? v : acc
    const float fmn = x[first_set(eq_mask_x32(v0, v1, _mm512_reduce_min_ps(mn)))];
    const float fmx = x[first_set(eq_mask_x32(v0, v1, _mm512_reduce_max_ps(mx)))];
    const float d = (fmx - fmn) / static_cast<float>(kMaxQ);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const __m512 idv = _mm512_set1_ps(id), mnv = _mm512_set1_ps(fmn), half = _mm512_set1_ps(0.5f);
    *lo = clamp_low_bytes_x16(_mm512_add_ps(_mm512_mul_ps(_mm512_sub_ps(v0, mnv), idv), half), kMaxQ);
    *hi = clamp_low_bytes_x16(_mm512_add_ps(_mm512_mul_ps(_mm512_sub_ps(v1, mnv), idv), half), kMaxQ);
    *d_out = d;
    *m_out = fmn;
}

void quantize_q4_0(const float* x, uint8_t* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += QK, y += sizeof(block_q4_0)) {
        __m128i lo, hi;
        float d;
        quantize_sym_x32<4>(x, &lo, &hi, &d);
        store_u16(y, fp32_to_fp16(d));
        store_nibbles(lo, hi, y + 2);
    }
}
void quantize_q4_1(const float* x, uint8_t* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += QK, y += sizeof(block_q4_1)) {
        __m128i lo, hi;
        float d, m;
        quantize_asym_x32<4>(x, &lo, &hi, &d, &m);
        store_u16(y, fp32_to_fp16(d));
        store_u16(y + 2, fp32_to_fp16(m));
        store_nibbles(lo, hi, y + 4);
    }
}
void quantize_q5_0(const float* x, uint8_t* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += QK, y += sizeof(block_q5_0)) {
        __m128i lo, hi;
        float d;
        quantize_sym_x32<5>(x, &lo, &hi, &d);
        store_u16(y, fp32_to_fp16(d));
        const uint32_t h = high_bits(lo, hi);
        std::memcpy(y + 2, &h, 4);
        store_nibbles(lo, hi, y + 6);
    }
}
void quantize_q5_1(const float* x, uint8_t* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += QK, y += sizeof(block_q5_1)) {
        __m128i lo, hi;
        float d, m;
        quantize_asym_x32<5>(x, &lo, &hi, &d, &m);
        store_u16(y, fp32_to_fp16(d));
        store_u16(y + 2, fp32_to_fp16(m));
        const uint32_t h = high_bits(lo, hi);
        std::memcpy(y + 4, &h, 4);
        store_nibbles(lo, hi, y + 8);
    }
}

// ---- 32-block dequantizers: elements 0..15 from the low nibbles, 16..31 from the high ----
void dequantize_q4_0(const uint8_t* x, float* y, int64_t n) {
    const __m128i m4 = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
    for (int64_t b = 0; b < n / QK; ++b, x += sizeof(block_q4_0), y += QK) {
        const __m512 d = _mm512_set1_ps(half_scale(x));
        const __m128i v = load16(x + 2);
        const __m128i lo = _mm_sub_epi8(_mm_and_si128(v, m4), eight);
        const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(v, 4), m4), eight);
        _mm512_storeu_ps(y, _mm512_mul_ps(d, i8x16_to_ps(lo)));
        _mm512_storeu_ps(y + 16, _mm512_mul_ps(d, i8x16_to_ps(hi)));
    }
}
void dequantize_q4_1(const uint8_t* x, float* y, int64_t n) {
    const __m128i m4 = _mm_set1_epi8(0x0F);
    for (int64_t b = 0; b < n / QK; ++b, x += sizeof(block_q4_1), y += QK) {
        const __m512 d = _mm512_set1_ps(half_scale(x)), m = _mm512_set1_ps(half_scale(x + 2));
        const __m128i v = load16(x + 4);
        const __m128i lo = _mm_and_si128(v, m4), hi = _mm_and_si128(_mm_srli_epi16(v, 4), m4);
        _mm512_storeu_ps(y, _mm512_add_ps(_mm512_mul_ps(d, u8x16_to_ps(lo)), m));
        _mm512_storeu_ps(y + 16, _mm512_add_ps(_mm512_mul_ps(d, u8x16_to_ps(hi)), m));
    }
}
void dequantize_q5_0(const uint8_t* x, float* y, int64_t n) {
    const __m128i m4 = _mm_set1_epi8(0x0F), sixteen = _mm_set1_epi8(16);
    for (int64_t b = 0; b < n / QK; ++b, x += sizeof(block_q5_0), y += QK) {
        const __m512 d = _mm512_set1_ps(half_scale(x));
        const uint32_t qh = load_u32(x + 2);
        const __m128i v = load16(x + 6);
        // bit j of qh is the fifth bit of element j: OR 0x10 into those bytes, then - 16
        __m128i lo = _mm_or_si128(_mm_and_si128(v, m4), _mm_maskz_mov_epi8(static_cast<__mmask16>(qh), sixteen));
        __m128i hi = _mm_or_si128(_mm_and_si128(_mm_srli_epi16(v, 4), m4),
                                  _mm_maskz_mov_epi8(static_cast<__mmask16>(qh >> 16), sixteen));
        lo = _mm_sub_epi8(lo, sixteen);
        hi = _mm_sub_epi8(hi, sixteen);
        _mm512_storeu_ps(y, _mm512_mul_ps(d, i8x16_to_ps(lo)));
        _mm512_storeu_ps(y + 16, _mm512_mul_ps(d, i8x16_to_ps(hi)));
    }
}
void dequantize_q5_1(const uint8_t* x, float* y, int64_t n) {
    const __m128i m4 = _mm_set1_epi8(0x0F), sixteen = _mm_set1_epi8(16);
    for (int64_t b = 0; b < n / QK; ++b, x += sizeof(block_q5_1), y += QK) {
        const __m512 d = _mm512_set1_ps(half_scale(x)), m = _mm512_set1_ps(half_scale(x + 2));
        const uint32_t qh = load_u32(x + 4);
        const __m128i v = load16(x + 8);
        const __m128i lo = _mm_or_si128(_mm_and_si128(v, m4), _mm_maskz_mov_epi8(static_cast<__mmask16>(qh), sixteen));
        const __m128i hi = _mm_or_si128(_mm_and_si128(_mm_srli_epi16(v, 4), m4),
                                        _mm_maskz_mov_epi8(static_cast<__mmask16>(qh >> 16), sixteen));
        _mm512_storeu_ps(y, _mm512_add_ps(_mm512_mul_ps(d, u8x16_to_ps(lo)), m));
        _mm512_storeu_ps(y + 16, _mm512_add_ps(_mm512_mul_ps(d, u8x16_to_ps(hi)), m));
    }
}

// ---- K-quant dequantizers ----
// Q4_K / Q5_K: sub-block j of 32 is (d * sc_j) * q - (dmin * m_j), the two products scalar as
// in the twin. Sub-blocks 2g and 2g+1 share the 32 bytes qs[32g..]: low / high nibbles; for
// Q5_K bit j of qh[l] is the fifth bit of element l of sub-block j.
template <bool kQ5>
void dequantize_q45_k(const uint8_t* x, float* y, int64_t n) {
    constexpr size_t kBlock = kQ5 ? sizeof(block_q5_K) : sizeof(block_q4_K);
    const __m128i m4 = _mm_set1_epi8(0x0F), sixteen = _mm_set1_epi8(16);
    for (int64_t b = 0; b < n / QK_K; ++b, x += kBlock, y += QK_K) {
        const float d = half_scale(x), dmin = half_scale(x + 2);
        const uint8_t* qs = x + (kQ5 ? 48 : 16);
        float dl[8], ml[8];
        for (int j = 0; j < QK_K / 32; ++j) {
            uint8_t sc, m;
            get_scale_min_k4(j, x + 4, &sc, &m);
            dl[j] = d * sc;
            ml[j] = dmin * m;
        }
        const __m128i qh0 = load16(x + 16), qh1 = load16(x + 32);
        for (int g = 0; g < 4; ++g)
            for (int h = 0; h < 2; ++h) {
                const __m128i v = load16(qs + 32 * g + 16 * h);
                const __m128i qh = h ? qh1 : qh0;
                __m128i lo = _mm_and_si128(v, m4), hi = _mm_and_si128(_mm_srli_epi16(v, 4), m4);
                if (kQ5) {
                    lo = _mm_or_si128(lo, _mm_maskz_mov_epi8(_mm_test_epi8_mask(qh, _mm_set1_epi8(static_cast<char>(1 << (2 * g)))), sixteen));
                    hi = _mm_or_si128(hi, _mm_maskz_mov_epi8(_mm_test_epi8_mask(qh, _mm_set1_epi8(static_cast<char>(2 << (2 * g)))), sixteen));
                }
                const int j = 2 * g;
                _mm512_storeu_ps(y + 32 * j + 16 * h,
                                 _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(dl[j]), u8x16_to_ps(lo)), _mm512_set1_ps(ml[j])));
                _mm512_storeu_ps(y + 32 * (j + 1) + 16 * h,
                                 _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(dl[j + 1]), u8x16_to_ps(hi)), _mm512_set1_ps(ml[j + 1])));
            }
    }
}
void dequantize_q4_k(const uint8_t* x, float* y, int64_t n) { dequantize_q45_k<false>(x, y, n); }
void dequantize_q5_k(const uint8_t* x, float* y, int64_t n) { dequantize_q45_k<true>(x, y, n); }

// Q6_K: element 128a + 32t + l (l < 32) takes the nibble t/2 of ql[64a + 32(t%2) + l] and
// bits 2t..2t+1 of qh[32a + l]; each group of 16 shares one scale: (d * sc) * (q - 32).
void dequantize_q6_k(const uint8_t* x, float* y, int64_t n) {
    const __m128i m4 = _mm_set1_epi8(0x0F), m2 = _mm_set1_epi8(0x03), k32 = _mm_set1_epi8(32);
    for (int64_t b = 0; b < n / QK_K; ++b, x += sizeof(block_q6_K), y += QK_K) {
        const uint8_t* ql = x;
        const uint8_t* qhp = x + 128;
        const int8_t* sc = reinterpret_cast<const int8_t*>(x + 192);
        const float d = half_scale(x + 208);
        for (int a = 0; a < 2; ++a)
            for (int t = 0; t < 4; ++t)
                for (int h = 0; h < 2; ++h) {
                    const __m128i l = load16(ql + 64 * a + 32 * (t % 2) + 16 * h);
                    const __m128i lo = _mm_and_si128(t / 2 ? _mm_srli_epi16(l, 4) : l, m4);
                    const __m128i hi = _mm_and_si128(_mm_srl_epi16(load16(qhp + 32 * a + 16 * h), _mm_cvtsi32_si128(2 * t)), m2);
                    const __m128i q = _mm_sub_epi8(_mm_or_si128(lo, _mm_slli_epi16(hi, 4)), k32);
                    const int e = 128 * a + 32 * t + 16 * h;
                    const __m512 s = _mm512_set1_ps(d * static_cast<float>(sc[e / 16]));
                    _mm512_storeu_ps(y + e, _mm512_mul_ps(s, i8x16_to_ps(q)));
                }
    }
}

}  // namespace

extern constexpr KernelList kernels_quant_avx512{Isa::avx512, kQuantRowEntries.data(), kQuantRowEntries.size()};

}  // namespace slmk
