// ---- attention chunk kernels: AVX2 + FMA + F16C (8 floats per vector) ----
// The kernel body is attention_simd.h; this file supplies the vector operations.
#include <immintrin.h>

#include "attention/attention_simd.h"
#include "core/fp16.h"
#include "core/math_avx2.h"
#include "quant/formats.h"

namespace slmk {

namespace {

struct Avx2 {
    static constexpr int width = 8;
    static constexpr int pv_rows = 3, pv_vecs = 2;  // value accumulation: 3 rows x 2 vectors in registers
    static constexpr int score_rows = 4;
    using vec = __m256;
    static vec zero() { return _mm256_setzero_ps(); }
    static vec load(const float* p) { return _mm256_loadu_ps(p); }
    static void prefetch(const void* p) { __builtin_prefetch(p, 0, 3); }  // into L1, for reading
    static void store(float* p, vec x) { _mm256_storeu_ps(p, x); }
    static vec set1(float f) { return _mm256_set1_ps(f); }
    static vec add(vec a, vec b) { return _mm256_add_ps(a, b); }
    static vec sub(vec a, vec b) { return _mm256_sub_ps(a, b); }
    static vec mul(vec a, vec b) { return _mm256_mul_ps(a, b); }
    static vec fma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
    static vec max(vec a, vec b) { return _mm256_max_ps(a, b); }
    static float hsum(vec x) {
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        return _mm_cvtss_f32(s);
    }
    // Lane i of the result = the sum of x[i]'s 8 lanes, for 8 vectors at once (transpose folded
    // into an add tree). Fixed order: within each 128-bit half (e0+e2)+(e1+e3), then h0+h1.
    static vec reduce_lanes(const vec* x) {
        vec s2[4], s4[2];
        for (int i = 0; i < 4; ++i)
            s2[i] = _mm256_add_ps(_mm256_unpacklo_ps(x[2 * i], x[2 * i + 1]), _mm256_unpackhi_ps(x[2 * i], x[2 * i + 1]));
        for (int i = 0; i < 2; ++i)
            s4[i] = _mm256_add_ps(_mm256_shuffle_ps(s2[2 * i], s2[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                                  _mm256_shuffle_ps(s2[2 * i], s2[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
        return _mm256_add_ps(_mm256_permute2f128_ps(s4[0], s4[1], 0x20), _mm256_permute2f128_ps(s4[0], s4[1], 0x31));
    }
    static float hmax(vec x) {
        __m128 s = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
        s = _mm_max_ps(s, _mm_movehl_ps(s, s));
        s = _mm_max_ss(s, _mm_movehdup_ps(s));
        return _mm_cvtss_f32(s);
    }
    static vec exp(vec x) { return avx2::exp_or_zero(x); }  // core/math_avx2.h
    // The 8 floats at d of one cached row (d + 8 <= dp), exactly as k_row writes them; sc is
    // the scale of the block holding d (quantized formats; f16_column converted it).
    template <Format F>
    static vec k_vec(const uint8_t* row, int64_t d, float sc) {
        if (F == Format::F32) return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + d);
        if (F == Format::F16) return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * d)));
        if (F == Format::Q8_0) {
            const uint8_t* blk = row + (d / QK) * sizeof(block_q8_0);
            const __m128i q8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + 2 + d % QK));
            return _mm256_mul_ps(_mm256_set1_ps(sc), _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8)));
        }
        const uint8_t* blk = row + (d / QK) * sizeof(block_q4_0);  // Q4_0: elements d % 32 .. +8
        __m128i raw = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + 2 + d % 16));
        if (d % QK >= 16) raw = _mm_srli_epi16(raw, 4);
        const __m128i q = _mm_sub_epi8(_mm_and_si128(raw, _mm_set1_epi8(0x0F)), _mm_set1_epi8(8));
        return _mm256_mul_ps(_mm256_set1_ps(sc), _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)));
    }
    // dst[i] = the f16 at p + i * stride as a float, i < n.
    static void f16_column(const uint8_t* p, int64_t stride, int64_t n, float* dst) {
        for (int64_t i = 0; i < n; ++i) dst[i] = _cvtsh_ss(load_u16(p + i * stride));
    }
    template <Format F>
    static void k_row(const uint8_t* row, float* dst, int64_t dp) {
        if (F == Format::F16) {
            int64_t i = 0;
            for (; i + 8 <= dp; i += 8)
                _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i))));
            for (; i < dp; ++i) dst[i] = fp16_to_fp32(load_u16(row + 2 * i));
        } else if (F == Format::Q8_0) {
            for (int64_t b = 0; b < dp / QK; ++b, row += sizeof(block_q8_0), dst += QK) {
                const __m256 d = _mm256_set1_ps(_cvtsh_ss(load_u16(row)));
                for (int k = 0; k < 4; ++k) {
                    const __m128i q8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + 2 + 8 * k));
                    _mm256_storeu_ps(dst + 8 * k, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8))));
                }
            }
        } else {  // Q4_0
            for (int64_t b = 0; b < dp / QK; ++b, row += sizeof(block_q4_0), dst += QK) {
                const __m256 d = _mm256_set1_ps(_cvtsh_ss(load_u16(row)));
                const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2));
                const __m128i m4 = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
                const __m128i lo = _mm_sub_epi8(_mm_and_si128(raw, m4), eight);
                const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(raw, 4), m4), eight);
                _mm256_storeu_ps(dst + 0, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo))));
                _mm256_storeu_ps(dst + 8, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)))));
                _mm256_storeu_ps(dst + 16, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi))));
                _mm256_storeu_ps(dst + 24, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)))));
            }
        }
    }
};

}  // namespace

extern constexpr KernelList kernels_attention_avx2{Isa::avx2, attn_simd::chunk_entries<Avx2>.data(),
                                            attn_simd::chunk_entries<Avx2>.size()};

}  // namespace slmk
