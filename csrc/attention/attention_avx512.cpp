// ---- attention chunk kernels: AVX-512F/BW/VL/DQ (16 floats per vector) ----
// The kernel body is attention_simd.h; this file supplies the vector operations.
#include <immintrin.h>

#include "attention/attention_simd.h"
#include "core/fp16.h"
#include "core/math_avx512.h"
#include "quant/formats.h"

namespace slmk {

namespace {

struct Avx512 {
    static constexpr int width = 16;
    static constexpr int pv_rows = 4, pv_vecs = 4;  // value accumulation: 4 rows x 4 vectors in registers
    static constexpr int score_rows = 3;  // 4 measured 1.6x slower (stack-spilled accumulators)
    using vec = __m512;
    static vec zero() { return _mm512_setzero_ps(); }
    static vec load(const float* p) { return _mm512_loadu_ps(p); }
    static void prefetch(const void* p) { __builtin_prefetch(p, 0, 3); }  // into L1, for reading
    static void store(float* p, vec x) { _mm512_storeu_ps(p, x); }
    static vec set1(float f) { return _mm512_set1_ps(f); }
    static vec add(vec a, vec b) { return _mm512_add_ps(a, b); }
    static vec sub(vec a, vec b) { return _mm512_sub_ps(a, b); }
    static vec mul(vec a, vec b) { return _mm512_mul_ps(a, b); }
    static vec fma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
    static vec max(vec a, vec b) { return _mm512_max_ps(a, b); }
    static float hsum(vec x) {
        __m256 h = _mm256_add_ps(_mm512_castps512_ps256(x), _mm512_extractf32x8_ps(x, 1));
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        return _mm_cvtss_f32(s);
    }
    // Lane i of the result = the sum of x[i]'s 16 lanes, for 16 vectors at once (a transpose
    // folded into an add tree: 30 shuffles and 15 adds instead of 16 horizontal sums). Fixed
    // order: within each 128-bit quarter (e0+e2)+(e1+e3), then quarters (q0+q1)+(q2+q3).
    static vec reduce_lanes(const vec* x) {
        vec s2[8], s4[4], s8[2];
        for (int i = 0; i < 8; ++i)
            s2[i] = _mm512_add_ps(_mm512_unpacklo_ps(x[2 * i], x[2 * i + 1]), _mm512_unpackhi_ps(x[2 * i], x[2 * i + 1]));
        for (int i = 0; i < 4; ++i)
            s4[i] = _mm512_add_ps(_mm512_shuffle_ps(s2[2 * i], s2[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                                  _mm512_shuffle_ps(s2[2 * i], s2[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
        for (int i = 0; i < 2; ++i)
            s8[i] = _mm512_add_ps(_mm512_shuffle_f32x4(s4[2 * i], s4[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                                  _mm512_shuffle_f32x4(s4[2 * i], s4[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
        return _mm512_add_ps(_mm512_shuffle_f32x4(s8[0], s8[1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(s8[0], s8[1], _MM_SHUFFLE(3, 1, 3, 1)));
    }
    static float hmax(vec x) {
        __m256 h = _mm256_max_ps(_mm512_castps512_ps256(x), _mm512_extractf32x8_ps(x, 1));
        __m128 s = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
        s = _mm_max_ps(s, _mm_movehl_ps(s, s));
        s = _mm_max_ss(s, _mm_movehdup_ps(s));
        return _mm_cvtss_f32(s);
    }
    static vec exp(vec x) { return avx512::exp_or_zero(x); }  // core/math_avx512.h
    // The 16 floats at d of one cached row (d + 16 <= dp), exactly as k_row writes them; sc is
    // the scale of the block holding d (quantized formats; f16_column converted it).
    template <Format F>
    static vec k_vec(const uint8_t* row, int64_t d, float sc) {
        if (F == Format::F32) return _mm512_loadu_ps(reinterpret_cast<const float*>(row) + d);
        if (F == Format::F16) return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * d)));
        if (F == Format::Q8_0) {
            const uint8_t* blk = row + (d / QK) * sizeof(block_q8_0);
            const __m128i q8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2 + d % QK));
            return _mm512_mul_ps(_mm512_set1_ps(sc), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q8)));
        }
        const uint8_t* blk = row + (d / QK) * sizeof(block_q4_0);  // Q4_0: d % 32 is 0 or 16
        __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
        if (d % QK) raw = _mm_srli_epi16(raw, 4);
        const __m128i q = _mm_sub_epi8(_mm_and_si128(raw, _mm_set1_epi8(0x0F)), _mm_set1_epi8(8));
        return _mm512_mul_ps(_mm512_set1_ps(sc), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)));
    }
    // dst[i] = the f16 at p + i * stride as a float, i < n (block scales down a chunk's rows:
    // 16 at a time by a gather of the 4 bytes at each, narrowed and converted together).
    static void f16_column(const uint8_t* p, int64_t stride, int64_t n, float* dst) {
        int64_t i = 0;
        if (stride <= (int64_t{1} << 26)) {
            const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                                   _mm512_set1_epi32(static_cast<int>(stride)));
            for (; i + 16 <= n; i += 16) {
                const __m512i w = _mm512_i32gather_epi32(idx, p + i * stride, 1);
                _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(w)));
            }
        }
        for (; i < n; ++i) dst[i] = _cvtsh_ss(load_u16(p + i * stride));
    }
    template <Format F>
    static void k_row(const uint8_t* row, float* dst, int64_t dp) {
        if (F == Format::F16) {
            int64_t i = 0;
            for (; i + 16 <= dp; i += 16)
                _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * i))));
            for (; i < dp; ++i) dst[i] = fp16_to_fp32(load_u16(row + 2 * i));
        } else if (F == Format::Q8_0) {
            for (int64_t b = 0; b < dp / QK; ++b, row += sizeof(block_q8_0), dst += QK) {
                const __m512 d = _mm512_set1_ps(_cvtsh_ss(load_u16(row)));
                for (int k = 0; k < 2; ++k) {
                    const __m128i q8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 + 16 * k));
                    _mm512_storeu_ps(dst + 16 * k, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q8))));
                }
            }
        } else {  // Q4_0
            for (int64_t b = 0; b < dp / QK; ++b, row += sizeof(block_q4_0), dst += QK) {
                const __m512 d = _mm512_set1_ps(_cvtsh_ss(load_u16(row)));
                const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2));
                const __m128i m4 = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
                const __m128i lo = _mm_sub_epi8(_mm_and_si128(raw, m4), eight);
                const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(raw, 4), m4), eight);
                _mm512_storeu_ps(dst + 0, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo))));
                _mm512_storeu_ps(dst + 16, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi))));
            }
        }
    }
};

}  // namespace

extern constexpr KernelList kernels_attention_avx512{Isa::avx512, attn_simd::chunk_entries<Avx512>.data(),
                                              attn_simd::chunk_entries<Avx512>.size()};

}  // namespace slmk
