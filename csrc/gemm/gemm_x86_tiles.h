// ---- 512-bit GEMM micro-kernels shared by gemm_avx512.cpp and gemm_avx512_vnni.cpp ----
// Included by those two files (and gemm_avx512_amx.cpp, for its helpers), each compiled with its
// own -m flags, so everything here has internal linkage (anonymous namespace): no inline
// function may be merged across them.
// The two files differ only in the Dot policy: how 64 u8 weights x 64 s8 activations become
// 16 int32 row sums (vpdpbusd, or vpmaddubsw + vpmaddwd), see DotVnni / DotMadd below.
//
// Layout recap (gemm.h): a 64-byte run = [16 rows][4 bytes], so lane r of every 512-bit vector
// belongs to weight row r. One activation quad broadcast to all lanes gives, per lane, row r's
// partial dot product. Every kernel reproduces gemm_ref.cpp's integer sums exactly and its float
// epilogue operation for operation (no FMA in the quantized epilogues).
#pragma once
#include <immintrin.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "../core/fp16.h"
#include "gemm.h"

namespace slmk {
namespace {

// ---- dot-product policies ----
// dot<N, CH>(acc, w, x): acc + sum_{j<N} (per 32-bit lane) sum of 4 products w[j].u8 * x[j].s8.
// CH = how many vpmaddubsw results the caller guarantees fit an int16 sum without saturation
// (only DotMadd uses it: 2 * wmax * 127 * CH <= 32767).
// madd16(acc, a, b): acc + per lane a.lo16*b.lo16 + a.hi16*b.hi16 (signed 16-bit pairs).
struct DotVnni {
    static constexpr bool kVnni = true;
    template <int N, int CH>
    static inline __m512i dot(__m512i acc, const __m512i* w, const __m512i* x) {
        // two independent chains (vpdpbusd has 5 cycles of latency); integer sums, so exact
        __m512i acc1 = _mm512_setzero_si512();
        for (int j = 0; j + 1 < N; j += 2) {
            acc = _mm512_dpbusd_epi32(acc, w[j], x[j]);
            acc1 = _mm512_dpbusd_epi32(acc1, w[j + 1], x[j + 1]);
        }
        if (N % 2) acc = _mm512_dpbusd_epi32(acc, w[N - 1], x[N - 1]);
        return _mm512_add_epi32(acc, acc1);
    }
    static inline __m512i madd16(__m512i acc, __m512i a, __m512i b) { return _mm512_dpwssd_epi32(acc, a, b); }
};

struct DotMadd {
    static constexpr bool kVnni = false;
    template <int N, int CH>
    static inline __m512i dot(__m512i acc, const __m512i* w, const __m512i* x) {
        const __m512i ones = _mm512_set1_epi16(1);
        for (int j0 = 0; j0 < N; j0 += CH) {
            __m512i p = _mm512_maddubs_epi16(w[j0], x[j0]);
            for (int j = j0 + 1; j < j0 + CH && j < N; ++j) p = _mm512_add_epi16(p, _mm512_maddubs_epi16(w[j], x[j]));
            acc = _mm512_add_epi32(acc, _mm512_madd_epi16(p, ones));
        }
        return acc;
    }
    static inline __m512i madd16(__m512i acc, __m512i a, __m512i b) {
        return _mm512_add_epi32(acc, _mm512_madd_epi16(a, b));
    }
};

// ---- small helpers ----
static inline __m512i bcast4(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}
static inline __m512i load64(const uint8_t* p) { return _mm512_loadu_si512(reinterpret_cast<const void*>(p)); }
static inline __m512 load_f16x16(const uint8_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
static inline __m512i lo_nib(__m512i v) { return _mm512_and_si512(v, _mm512_set1_epi8(0x0F)); }
static inline __m512i hi_nib(__m512i v) { return _mm512_and_si512(_mm512_srli_epi16(v, 4), _mm512_set1_epi8(0x0F)); }
static inline __m512i u8x16_to_i32(const uint8_t* p) {
    return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
static inline __m512i i8x16_to_i32(const uint8_t* p) {
    return _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
// hb: 16 bytes, one per row. Returns each row's byte replicated into the 4 bytes of its lane.
static inline __m512i spread_hb(const uint8_t* hb) {
    const __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(hb)));
    const __m512i idx = _mm512_set_epi32(0x0f0f0f0f, 0x0e0e0e0e, 0x0d0d0d0d, 0x0c0c0c0c, 0x0b0b0b0b, 0x0a0a0a0a,
                                         0x09090909, 0x08080808, 0x07070707, 0x06060606, 0x05050505, 0x04040404,
                                         0x03030303, 0x02020202, 0x01010101, 0x00000000);
    return _mm512_shuffle_epi8(v, idx);
}
// q | 0x10 in byte i of each lane where bit (sh + i) of the lane's spread hb byte is set.
static inline __m512i add_bit4(__m512i q, __m512i hbs, int sh) {
    const __m512i bits = _mm512_set1_epi32(static_cast<int32_t>(0x08040201u << sh));
    const __mmask64 k = _mm512_test_epi8_mask(hbs, bits);
    return _mm512_mask_add_epi8(q, k, q, _mm512_set1_epi8(0x10));  // bit 4 of q is clear: add = or
}
// NaN payloads: when both operands are NaN, x86 returns src1's. C++ does not fix which operand
// that is (compilers commute + and *), so the bits of a NaN output depend on code generation.
// The scalar twin, as GCC compiles it, keeps the accumulator as src1 of its add/sub and the
// weight scale as src1 of scale * dx; these pin the same order here (so "first NaN wins").
static inline __m512 add_ord(__m512 a, __m512 b) {
    __m512 r;
    __asm__("vaddps %2, %1, %0" : "=v"(r) : "v"(a), "v"(b));
    return r;
}
static inline __m512 sub_ord(__m512 a, __m512 b) {
    __m512 r;
    __asm__("vsubps %2, %1, %0" : "=v"(r) : "v"(a), "v"(b));
    return r;
}
static inline __m512 mul_ord(__m512 a, __m512 b) {
    __m512 r;
    __asm__("vmulps %2, %1, %0" : "=v"(r) : "v"(a), "v"(b));
    return r;
}
// GEMV (MR <= 2: the weights stream from memory; 2 is a decode step in the q8x2 modes, whose second
// activation plane rides as a second row) prefetch of the K-quant tiles: the tile 4 ahead,
// into L2. Into L1 (T0) the prefetches queue behind the few L1 miss buffers and a one-tile lead
// is shorter than the memory latency: Q6_K 4096 x 4096 from DRAM, 1 thread, 8.7 GB/s with the
// next tile into L1; 16-22 GB/s into L2 two to four tiles ahead (a profile of the T0 version had
// 27% of its samples on the prefetch loop and on the tile's first load). Without it at MR = 2 the
// 1B file's Q6_K head (default mode q8x2-head) ran at about half speed: decode 13-15 tok/s against
// 22-23 with it, 1 thread.
static inline void gemv_prefetch(const uint8_t* t, int64_t tb) {
    for (int64_t off = 0; off < tb; off += 64) _mm_prefetch(reinterpret_cast<const char*>(t + 4 * tb + off), _MM_HINT_T1);
}
static inline __mmask16 row_mask(int nvalid) { return static_cast<__mmask16>((1u << nvalid) - 1u); }

// ---- activation quantization (quantize_act_block in gemm_ref.cpp) ----
// nv vectors of 16 floats -> int8 q, returns d. Non-finite block: d = NaN, q = 0.
template <int NV>
static inline float act_block(const float* x, int8_t* q, __m512i* qi) {
    __m512 amax = _mm512_setzero_ps();
    __mmask16 bad = 0;
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    for (int v = 0; v < NV; ++v) {
        const __m512 xv = _mm512_loadu_ps(x + 16 * v);
        bad |= _mm512_fpclass_ps_mask(xv, 0x99);  // QNaN | SNaN | +Inf | -Inf
        amax = _mm512_max_ps(amax, _mm512_and_ps(xv, absmask));
    }
    if (bad) {
        std::memset(q, 0, 16 * NV);
        for (int v = 0; v < NV; ++v) qi[v] = _mm512_setzero_si512();
        return NAN;
    }
    const float am = _mm512_reduce_max_ps(amax);
    const float d = am / 127.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    if (!std::isfinite(id)) id = 0.0f;  // non-finite id -> 0
    const __m512 idv = _mm512_set1_ps(id);
    for (int v = 0; v < NV; ++v) {
        qi[v] = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + 16 * v), idv));  // MXCSR: nearest-even
        _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16 * v), _mm512_cvtepi32_epi8(qi[v]));
    }
    return d;
}

[[maybe_unused]] static void act_quant_32_x512(const float* x, int64_t k, int8_t* q, float* d, int32_t* sum) {
    for (int64_t b = 0; b < k / 32; ++b) {
        __m512i qi[2];
        d[b] = act_block<2>(x + 32 * b, q + 32 * b, qi);
        sum[b] = _mm512_reduce_add_epi32(_mm512_add_epi32(qi[0], qi[1]));
    }
}

[[maybe_unused]] static void act_quant_256_x512(const float* x, int64_t k, int8_t* q, float* d, int32_t* sum) {
    for (int64_t b = 0; b < k / 256; ++b) {
        __m512i qi[16];
        d[b] = act_block<16>(x + 256 * b, q + 256 * b, qi);
        for (int v = 0; v < 16; ++v) sum[16 * b + v] = _mm512_reduce_add_epi32(qi[v]);
    }
}

// ---- the 32-block formats ----
// Weight vectors w[j], j = 0..7, pair with activation quad x[4j..4j+3]:
//   Q8_0: run j (signed; VNNI: biased by +128 via XOR, DotMadd: |w| with the sign moved to x)
//   Q4/Q5: j < 4: low nibbles of run j (elements 4j..), j >= 4: high nibbles of run j-4 (16+4(j-4)..)
template <Format F, int MR, class Dot>
static void tile_32_x512(const uint8_t* group, int64_t nblocks, const ActRows& a, int64_t m0, int mr, float* out,
                         int64_t ldo, int nvalid) {
    constexpr bool kQ8 = F == Format::Q8_0;
    constexpr bool kHasM = F == Format::Q4_1 || F == Format::Q5_1;
    constexpr bool kQ5 = F == Format::Q5_0 || F == Format::Q5_1;
    constexpr int kOffset = kQ8 ? 0 : kQ5 ? 16 : 8;  // the spec's offset (Q4_1/Q5_1 use m instead)
    constexpr TileLayout L = tile_layout(F);
    constexpr int kCH = kQ5 ? 4 : 8;  // DotMadd: 2*31*127*4 and 2*15*127*8 fit int16
    constexpr int64_t tb = L.bytes;
    const int8_t* xq[MR];
    const float* xd[MR];
    const int32_t* xs[MR];
    __m512 acc[MR];
    for (int i = 0; i < MR; ++i) {
        xq[i] = a.q + (m0 + i) * a.q_stride;
        xd[i] = a.d + (m0 + i) * a.d_stride;
        xs[i] = a.sum + (m0 + i) * a.sum_stride;
        acc[i] = _mm512_setzero_ps();
    }
    for (int64_t b = 0; b < nblocks; ++b) {
        const uint8_t* t = group + b * tb;
        for (int64_t off = 0; off < tb; off += 64) _mm_prefetch(reinterpret_cast<const char*>(t + 8 * tb + off), _MM_HINT_T0);
        const __m512 dw = load_f16x16(t + L.d);
        __m512 mw;
        if constexpr (kHasM) mw = load_f16x16(t + L.m);
        __m512i w[8];
        __mmask64 neg[8];
        if constexpr (kQ8) {
            for (int j = 0; j < 8; ++j) {
                const __m512i v = load64(t + L.q + 64 * j);
                if constexpr (Dot::kVnni) {
                    w[j] = _mm512_xor_si512(v, _mm512_set1_epi8(static_cast<char>(0x80)));
                } else {
                    w[j] = _mm512_abs_epi8(v);
                    neg[j] = _mm512_movepi8_mask(v);
                }
            }
        } else {
            for (int c = 0; c < 4; ++c) {
                const __m512i v = load64(t + L.q + 64 * c);
                w[c] = lo_nib(v);
                w[c + 4] = hi_nib(v);
                if constexpr (kQ5) {
                    const __m512i hbs = spread_hb(t + L.hb + 16 * c);
                    w[c] = add_bit4(w[c], hbs, 0);
                    w[c + 4] = add_bit4(w[c + 4], hbs, 4);
                }
            }
        }
        for (int i = 0; i < MR; ++i) {
            const int8_t* x = xq[i] + 32 * b;
            __m512i xv[8];
            for (int j = 0; j < 8; ++j) xv[j] = bcast4(x + 4 * j);
            __m512i dot;
            if constexpr (kQ8 && Dot::kVnni) {
                // sum (w+128)*x - 128*sum x = sum w*x
                dot = Dot::template dot<8, 1>(_mm512_set1_epi32(-128 * xs[i][b]), w, xv);
            } else if constexpr (kQ8) {
                for (int j = 0; j < 8; ++j) xv[j] = _mm512_mask_sub_epi8(xv[j], neg[j], _mm512_setzero_si512(), xv[j]);
                dot = Dot::template dot<8, 1>(_mm512_setzero_si512(), w, xv);  // 2*128*127 fits int16
            } else if constexpr (kOffset != 0 && !kHasM) {
                dot = Dot::template dot<8, kCH>(_mm512_set1_epi32(-kOffset * xs[i][b]), w, xv);
            } else {
                dot = Dot::template dot<8, kCH>(_mm512_setzero_si512(), w, xv);
            }
            const __m512 dx = _mm512_set1_ps(xd[i][b]);
            acc[i] = add_ord(acc[i], _mm512_mul_ps(mul_ord(dw, dx), _mm512_cvtepi32_ps(dot)));
            if constexpr (kHasM)
                acc[i] = add_ord(acc[i], _mm512_mul_ps(mul_ord(mw, dx),
                                                              _mm512_set1_ps(static_cast<float>(xs[i][b]))));
        }
    }
    const __mmask16 km = row_mask(nvalid);
    for (int i = 0; i < MR; ++i) _mm512_mask_storeu_ps(out + i * ldo, km, acc[i]);
}

// ---- Q4_K / Q5_K ----
// Sub-block j (32 elements): runs (j/2, c) c = 0..7, low nibbles for even j, high for odd j.
// The unsigned values (Q4_K: 0..15, Q5_K: 0..31) of sub-block j, run c: 16 rows x 4 elements.
template <bool kQ5>
static inline __m512i q45k_run(const uint8_t* t, int j, int c) {
    constexpr TileLayout L = tile_layout(kQ5 ? Format::Q5_K : Format::Q4_K);
    const __m512i v = load64(t + L.q + (j / 2) * L.q_step + 64 * c);
    __m512i w = (j & 1) ? hi_nib(v) : lo_nib(v);
    if constexpr (kQ5) w = add_bit4(w, spread_hb(t + L.hb + (j / 2) * L.hb_step + 16 * c), 4 * (j & 1));
    return w;
}

template <Format F, int MR, class Dot>
static void tile_q45k_x512(const uint8_t* group, int64_t nblocks, const ActRows& a, int64_t m0, int mr, float* out,
                           int64_t ldo, int nvalid) {
    constexpr bool kQ5 = F == Format::Q5_K;
    constexpr int kCH = kQ5 ? 4 : 8;
    constexpr TileLayout L = tile_layout(F);
    const int64_t tb = L.bytes;
    const int8_t* xq[MR];
    const float* xd[MR];
    const int32_t* xs[MR];
    __m512 acc[MR];
    for (int i = 0; i < MR; ++i) {
        xq[i] = a.q + (m0 + i) * a.q_stride;
        xd[i] = a.d + (m0 + i) * a.d_stride;
        xs[i] = a.sum + (m0 + i) * a.sum_stride;
        acc[i] = _mm512_setzero_ps();
    }
    for (int64_t b = 0; b < nblocks; ++b) {
        const uint8_t* t = group + b * tb;
        if (MR <= 2) gemv_prefetch(t, tb);
        __m512i isum[MR], msum[MR];
        // msum = sum_j m_j * (bs_2j + bs_2j+1): pairs of sub-blocks as int16 pairs (m <= 63, |B| <= 4064)
        for (int p = 0; p < 4; ++p) {
            const __m128i m0v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t + L.mn + 32 * p));
            const __m128i m1v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t + L.mn + 32 * p + 16));
            const __m256i il = _mm256_set_m128i(_mm_unpackhi_epi8(m0v, m1v), _mm_unpacklo_epi8(m0v, m1v));
            const __m512i mp = _mm512_cvtepu8_epi16(il);  // lane r: m_2p[r] | m_2p+1[r] << 16
            for (int i = 0; i < MR; ++i) {
                const int32_t* bs = xs[i] + 16 * b + 4 * p;
                const uint32_t lo = static_cast<uint16_t>(bs[0] + bs[1]), hi = static_cast<uint16_t>(bs[2] + bs[3]);
                const __m512i bp = _mm512_set1_epi32(static_cast<int32_t>(lo | (hi << 16)));
                msum[i] = p == 0 ? Dot::madd16(_mm512_setzero_si512(), mp, bp) : Dot::madd16(msum[i], mp, bp);
            }
        }
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j) {  // unrolled: low / high nibble selection is compile-time
            __m512i w[8];
            for (int c = 0; c < 8; ++c) w[c] = q45k_run<kQ5>(t, j, c);
            const __m512i sc = u8x16_to_i32(t + L.sc + 16 * j);
            for (int i = 0; i < MR; ++i) {
                const int8_t* x = xq[i] + 256 * b + 32 * j;
                __m512i xv[8];
                for (int c = 0; c < 8; ++c) xv[c] = bcast4(x + 4 * c);
                const __m512i dot = Dot::template dot<8, kCH>(_mm512_setzero_si512(), w, xv);
                const __m512i prod = _mm512_mullo_epi32(sc, dot);
                isum[i] = j == 0 ? prod : _mm512_add_epi32(isum[i], prod);
            }
        }
        const __m512 d = load_f16x16(t + L.d), dmin = load_f16x16(t + L.m);
        for (int i = 0; i < MR; ++i) {
            const __m512 dx = _mm512_set1_ps(xd[i][b]);
            acc[i] = add_ord(acc[i], _mm512_mul_ps(mul_ord(d, dx), _mm512_cvtepi32_ps(isum[i])));
            acc[i] = sub_ord(acc[i], _mm512_mul_ps(mul_ord(dmin, dx), _mm512_cvtepi32_ps(msum[i])));
        }
    }
    const __mmask16 km = row_mask(nvalid);
    for (int i = 0; i < MR; ++i) _mm512_mask_storeu_ps(out + i * ldo, km, acc[i]);
}

// ---- Q6_K ----
// Sub-block s (16 elements) = half a = s/8, field t = (s%8)/2, quarter h = s%2: qh runs c = 4h..4h+3
// of half a (field t), ql runs (t%2)*8 + c of half a (low nibbles for t < 2, high for t >= 2).
// The 6-bit values (0..63) of sub-block s, run cc (0..3): 16 rows x 4 elements (the AMX panel's view).
static inline __m512i q6k_run(const uint8_t* t, int s, int cc) {
    constexpr TileLayout L = tile_layout(Format::Q6_K);
    const int ah = s / 8, tf = (s % 8) / 2, c = 4 * (s % 2) + cc;
    const __m512i l = load64(t + L.q + ah * L.q_step + (tf % 2) * 8 * 64 + 64 * c);
    const __m512i hv = load64(t + L.qh + ah * L.qh_step + 64 * c);
    const __m512i lo = tf < 2 ? lo_nib(l) : hi_nib(l);
    __m512i hs;
    if (tf == 0) hs = _mm512_slli_epi32(hv, 4);
    else if (tf == 1) hs = _mm512_slli_epi32(hv, 2);
    else if (tf == 2) hs = hv;
    else hs = _mm512_srli_epi32(hv, 2);
    return _mm512_ternarylogic_epi32(lo, hs, _mm512_set1_epi8(0x30), 0xF8);  // lo | (hs & 0x30)
}
// The tiles walk (a, h) instead: each qh run and each ql run is loaded once and gives its 4 fields
// (sub-blocks 8a + 2t + h, t = 0..3, run c - 4h).
static inline void q6k_fields(const uint8_t* t, int ah, int c, __m512i* w0, __m512i* w1, __m512i* w2, __m512i* w3) {
    constexpr TileLayout L = tile_layout(Format::Q6_K);
    const __m512i l0 = load64(t + L.q + ah * L.q_step + 64 * c);           // fields 0 (low) and 2 (high)
    const __m512i l1 = load64(t + L.q + ah * L.q_step + 8 * 64 + 64 * c);  // fields 1 (low) and 3 (high)
    const __m512i hv = load64(t + L.qh + ah * L.qh_step + 64 * c);
    const __m512i m30 = _mm512_set1_epi8(0x30);
    *w0 = _mm512_ternarylogic_epi32(lo_nib(l0), _mm512_slli_epi32(hv, 4), m30, 0xF8);  // lo | (hs & 0x30)
    *w1 = _mm512_ternarylogic_epi32(lo_nib(l1), _mm512_slli_epi32(hv, 2), m30, 0xF8);
    *w2 = _mm512_ternarylogic_epi32(hi_nib(l0), hv, m30, 0xF8);
    *w3 = _mm512_ternarylogic_epi32(hi_nib(l1), _mm512_srli_epi32(hv, 2), m30, 0xF8);
}

template <int MR, class Dot>
static void tile_q6k_x512(const uint8_t* group, int64_t nblocks, const ActRows& a, int64_t m0, int mr, float* out,
                          int64_t ldo, int nvalid) {
    constexpr TileLayout L = tile_layout(Format::Q6_K);
    const int64_t tb = L.bytes;
    const int8_t* xq[MR];
    const float* xd[MR];
    const int32_t* xs[MR];
    __m512 acc[MR];
    for (int i = 0; i < MR; ++i) {
        xq[i] = a.q + (m0 + i) * a.q_stride;
        xd[i] = a.d + (m0 + i) * a.d_stride;
        xs[i] = a.sum + (m0 + i) * a.sum_stride;
        acc[i] = _mm512_setzero_ps();
    }
    for (int64_t b = 0; b < nblocks; ++b) {
        const uint8_t* t = group + b * tb;
        if (MR <= 2) gemv_prefetch(t, tb);
        __m512i isum[MR];
        for (int i = 0; i < MR; ++i) isum[i] = _mm512_setzero_si512();
        // isum = sum_s sc_s * (dot_s - 32 bsum_s): exact int32, so the order of s is free
#pragma GCC unroll 4
        for (int ah_h = 0; ah_h < 4; ++ah_h) {  // unrolled: the field selection is compile-time
            const int ah = ah_h / 2, h = ah_h % 2;
            __m512i w[4][4];  // [field t][run cc]
            for (int cc = 0; cc < 4; ++cc) q6k_fields(t, ah, 4 * h + cc, &w[0][cc], &w[1][cc], &w[2][cc], &w[3][cc]);
            for (int tf = 0; tf < 4; ++tf) {
                const int s = 8 * ah + 2 * tf + h;
                const __m512i sc = i8x16_to_i32(t + L.sc + 16 * s);
                for (int i = 0; i < MR; ++i) {
                    const int8_t* x = xq[i] + 256 * b + 16 * s;
                    __m512i xv[4];
                    for (int cc = 0; cc < 4; ++cc) xv[cc] = bcast4(x + 4 * cc);
                    const __m512i dot =
                        Dot::template dot<4, 2>(_mm512_set1_epi32(-32 * xs[i][16 * b + s]), w[tf], xv);  // 2*63*127*2 fits
                    isum[i] = _mm512_add_epi32(isum[i], _mm512_mullo_epi32(sc, dot));
                }
            }
        }
        const __m512 d = load_f16x16(t + L.d);
        for (int i = 0; i < MR; ++i) {
            const __m512 dx = _mm512_set1_ps(xd[i][b]);
            acc[i] = add_ord(acc[i], _mm512_mul_ps(mul_ord(d, dx), _mm512_cvtepi32_ps(isum[i])));
        }
    }
    const __mmask16 km = row_mask(nvalid);
    for (int i = 0; i < MR; ++i) _mm512_mask_storeu_ps(out + i * ldo, km, acc[i]);
}

// ---- float weights: s[k % 4] = fma(w, x, s[k % 4]), then (s0 + s1) + (s2 + s3) ----
template <Format F>
static inline __m512 load_wf(const uint8_t* t) {
    if constexpr (F == Format::F32) return _mm512_loadu_ps(reinterpret_cast<const float*>(t));
    else if constexpr (F == Format::F16) return load_f16x16(t);
    else
        return _mm512_castsi512_ps(_mm512_slli_epi32(
            _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(t))), 16));
}

template <Format F, int MR>
static void tile_float_x512(const uint8_t* group, int64_t k, const ActRows& a, int64_t m0, int mr, float* out,
                            int64_t ldo, int nvalid) {
    constexpr int64_t tb = packed_tile_bytes(F);
    const float* x[MR];
    __m512 s[MR][4];
    for (int i = 0; i < MR; ++i) {
        x[i] = a.xf + (m0 + i) * a.xf_stride;
        for (int u = 0; u < 4; ++u) s[i][u] = _mm512_setzero_ps();
    }
    const int64_t k4 = k & ~int64_t(3);
    for (int64_t kk = 0; kk < k4; kk += 4) {
        const uint8_t* t = group + kk * tb;
        _mm_prefetch(reinterpret_cast<const char*>(t + 16 * tb), _MM_HINT_T0);
        if constexpr (tb == 64) {
            _mm_prefetch(reinterpret_cast<const char*>(t + 16 * tb + 64), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(t + 16 * tb + 128), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(t + 16 * tb + 192), _MM_HINT_T0);
        } else {
            _mm_prefetch(reinterpret_cast<const char*>(t + 16 * tb + 64), _MM_HINT_T0);
        }
        for (int u = 0; u < 4; ++u) {
            const __m512 w = load_wf<F>(t + u * tb);
            for (int i = 0; i < MR; ++i) s[i][u] = _mm512_fmadd_ps(w, _mm512_set1_ps(x[i][kk + u]), s[i][u]);
        }
    }
    for (int64_t kk = k4; kk < k; ++kk) {
        const __m512 w = load_wf<F>(group + kk * tb);
        const int u = static_cast<int>(kk % 4);
        for (int i = 0; i < MR; ++i) s[i][u] = _mm512_fmadd_ps(w, _mm512_set1_ps(x[i][kk]), s[i][u]);
    }
    const __mmask16 km = row_mask(nvalid);
    for (int i = 0; i < MR; ++i)
        _mm512_mask_storeu_ps(out + i * ldo, km,
                              _mm512_add_ps(_mm512_add_ps(s[i][0], s[i][1]), _mm512_add_ps(s[i][2], s[i][3])));
}

// ---- mr dispatch: one template instance per MR so the weight unpacking is shared by the rows ----
template <template <int> class K>
static void by_mr(const uint8_t* group, int64_t nblocks, const ActRows& a, int64_t m0, int mr, float* out,
                  int64_t ldo, int nvalid) {
    switch (mr) {
        case 1: K<1>::run(group, nblocks, a, m0, mr, out, ldo, nvalid); break;
        case 2: K<2>::run(group, nblocks, a, m0, mr, out, ldo, nvalid); break;
        case 3: K<3>::run(group, nblocks, a, m0, mr, out, ldo, nvalid); break;
        default: K<4>::run(group, nblocks, a, m0, mr, out, ldo, nvalid); break;
    }
}

template <class Dot>
struct Tiles512 {
    template <Format F>
    struct Q32 {
        template <int MR>
        struct K {
            static void run(const uint8_t* g, int64_t nb, const ActRows& a, int64_t m0, int mr, float* o, int64_t ldo,
                            int nv) {
                tile_32_x512<F, MR, Dot>(g, nb, a, m0, mr, o, ldo, nv);
            }
        };
    };
    template <Format F>
    struct Q45K {
        template <int MR>
        struct K {
            static void run(const uint8_t* g, int64_t nb, const ActRows& a, int64_t m0, int mr, float* o, int64_t ldo,
                            int nv) {
                tile_q45k_x512<F, MR, Dot>(g, nb, a, m0, mr, o, ldo, nv);
            }
        };
    };
    template <int MR>
    struct Q6K {
        static void run(const uint8_t* g, int64_t nb, const ActRows& a, int64_t m0, int mr, float* o, int64_t ldo,
                        int nv) {
            tile_q6k_x512<MR, Dot>(g, nb, a, m0, mr, o, ldo, nv);
        }
    };
    template <Format F>
    struct Flt {
        template <int MR>
        struct K {
            static void run(const uint8_t* g, int64_t nb, const ActRows& a, int64_t m0, int mr, float* o, int64_t ldo,
                            int nv) {
                tile_float_x512<F, MR>(g, nb, a, m0, mr, o, ldo, nv);
            }
        };
    };

    template <Format F>
    static void q32(const uint8_t* g, int64_t nb, const ActRows& a, int64_t m0, int mr, float* o, int64_t ldo, int nv) {
        by_mr<Q32<F>::template K>(g, nb, a, m0, mr, o, ldo, nv);
    }
    template <Format F>
    static void q45k(const uint8_t* g, int64_t nb, const ActRows& a, int64_t m0, int mr, float* o, int64_t ldo,
                     int nv) {
        by_mr<Q45K<F>::template K>(g, nb, a, m0, mr, o, ldo, nv);
    }
    static void q6k(const uint8_t* g, int64_t nb, const ActRows& a, int64_t m0, int mr, float* o, int64_t ldo, int nv) {
        by_mr<Q6K>(g, nb, a, m0, mr, o, ldo, nv);
    }
    template <Format F>
    static void flt(const uint8_t* g, int64_t nb, const ActRows& a, int64_t m0, int mr, float* o, int64_t ldo, int nv) {
        by_mr<Flt<F>::template K>(g, nb, a, m0, mr, o, ldo, nv);
    }
};

// The 11 tiles with Dot as the integer dot, as registry entries.
template <class Dot>
constexpr std::array<KernelEntry, 11> x512_tile_entries = {
    entry<Op::gemm, Tiles512<Dot>::template q32<Format::Q8_0>>(Format::Q8_0, {kGroupRows, kMaxMR}),
    entry<Op::gemm, Tiles512<Dot>::template q32<Format::Q4_0>>(Format::Q4_0, {kGroupRows, kMaxMR}),
    entry<Op::gemm, Tiles512<Dot>::template q32<Format::Q4_1>>(Format::Q4_1, {kGroupRows, kMaxMR}),
    entry<Op::gemm, Tiles512<Dot>::template q32<Format::Q5_0>>(Format::Q5_0, {kGroupRows, kMaxMR}),
    entry<Op::gemm, Tiles512<Dot>::template q32<Format::Q5_1>>(Format::Q5_1, {kGroupRows, kMaxMR}),
    entry<Op::gemm, Tiles512<Dot>::template q45k<Format::Q4_K>>(Format::Q4_K, {kGroupRows, kMaxMR}),
    entry<Op::gemm, Tiles512<Dot>::template q45k<Format::Q5_K>>(Format::Q5_K, {kGroupRows, kMaxMR}),
    entry<Op::gemm, Tiles512<Dot>::q6k>(Format::Q6_K, {kGroupRows, kMaxMR}),
    entry<Op::gemm, Tiles512<Dot>::template flt<Format::F32>>(Format::F32, {kGroupRows, kMaxMR}),
    entry<Op::gemm, Tiles512<Dot>::template flt<Format::F16>>(Format::F16, {kGroupRows, kMaxMR}),
    entry<Op::gemm, Tiles512<Dot>::template flt<Format::BF16>>(Format::BF16, {kGroupRows, kMaxMR}),
};

}  // namespace
}  // namespace slmk
