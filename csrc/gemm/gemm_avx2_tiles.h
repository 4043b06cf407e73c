// ---- 256-bit GEMM micro-kernels shared by gemm_avx2.cpp and gemm_avx_vnni.cpp ----
// Templates over a dot functor (Dot::dot / Dot::dot2: u8 weights x s8 activations, 4 bytes per
// 32-bit lane, added to an int32 accumulator). This header is compiled under different -m flags
// by each includer, so everything here has internal linkage (anonymous namespace + static
// inline): an external-linkage inline function could be merged by the linker into the wrong ISA.
//
// Layout (gemm.h): a 64-byte run of a tile = [16 rows][4 B]; as two 32-byte halves h = 0, 1
// (rows 8h..8h+7), lane r of half h belongs to row 8h+r. Activations (4 bytes) are broadcast
// to every lane, so after a block lane r holds row 8h+r's exact integer block dot product, and
// the float epilogue runs across 8 rows at once with exactly the scalar twin's op sequence
// (gemm_ref.cpp): same float32 multiplies and adds, same operand order, no FMA (the float
// formats' spec is fused, and there we use vfmadd like std::fma).
//
// Register budget (16 ymm): with one activation row (GEMV) both halves run together; with 2..4
// activation rows one half at a time (the halves hold disjoint weight bytes, so nothing is
// unpacked twice), which keeps the int accumulators, the float accumulators and the unpacked
// weights in registers.
#pragma once
#include <immintrin.h>

#include <array>
#include <cstdint>

#include "gemm.h"

namespace slmk {
namespace {

// ---- small helpers ----
static inline __m256i g2_ld(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
static inline __m256i g2_bc4(const int8_t* p) { return _mm256_set1_epi32(static_cast<int>(load_u32(p))); }
static inline __m256 g2_f16x8(const uint8_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
static inline __m256i g2_u8x8(const uint8_t* p) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
static inline __m256i g2_i8x8(const uint8_t* p) {
    return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
static inline __m256i g2_m4() { return _mm256_set1_epi8(0x0F); }

// The float epilogue's multiplies and adds, with the operand order pinned. When both operands
// are NaN, x86 returns the first source's NaN (quieted), so the payload that reaches the output
// depends on the order; the scalar twin computes a * b and acc + t in source order (SSE:
// destination first), but GCC treats _mm256_mul_ps / _mm256_add_ps as commutative and may swap
// them. Inline asm fixes src1 = a, src2 = b (AT&T: op src2, src1, dst).
static inline __m256 g2_mul(__m256 a, __m256 b) {
    __m256 r;
    __asm__("vmulps %2, %1, %0" : "=x"(r) : "x"(a), "xm"(b));
    return r;
}
static inline __m256 g2_add(__m256 a, __m256 b) {
    __m256 r;
    __asm__("vaddps %2, %1, %0" : "=x"(r) : "x"(a), "xm"(b));
    return r;
}
static inline __m256 g2_sub(__m256 a, __m256 b) {
    __m256 r;
    __asm__("vsubps %2, %1, %0" : "=x"(r) : "x"(a), "xm"(b));
    return r;
}

// Stores lanes [0, nv) of v (nv may be <= 0: nothing, >= 8: all).
static inline void g2_store8(float* out, __m256 v, int nv) {
    if (nv >= 8) {
        _mm256_storeu_ps(out, v);
    } else if (nv > 0) {
        const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(nv), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        _mm256_maskstore_ps(out, mask, v);
    }
}

// Q5 high bits. hb16 = one byte per row (16 rows). Returns, for half h, lane r = that row's
// byte repeated in all 4 bytes.
static inline __m256i g2_hb_spread(const uint8_t* hb16, int h) {
    const __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(hb16)));
    const __m256i idx0 = _mm256_setr_epi8(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3,  //
                                          4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7);
    const __m256i idx = h ? _mm256_add_epi8(idx0, _mm256_set1_epi8(8)) : idx0;
    return _mm256_shuffle_epi8(b, idx);
}
// From a spread hb: byte i of each lane gets 0x10 iff bit i (HI = false) or bit 4+i (HI = true)
// of the row's hb byte is set.
template <bool HI>
static inline __m256i g2_hb_bit4(__m256i spread) {
    const __m256i m = _mm256_set1_epi32(HI ? static_cast<int>(0x80402010u) : 0x08040201);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, m), m), _mm256_set1_epi8(0x10));
}

// ---- the 32-block formats: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 ----
// Processes rows of halves [h0, h0 + NH) for MR activation rows.
template <class Dot, Format F, int MR, int NH>
static inline void g2_tile32_part(const uint8_t* group, int64_t nblocks, const ActRows& a, int64_t m0, float* out,
                                  int64_t ldo, int nvalid, int h0) {
    constexpr bool kQ8 = F == Format::Q8_0;
    constexpr bool kHasM = F == Format::Q4_1 || F == Format::Q5_1;
    constexpr bool kQ5 = F == Format::Q5_0 || F == Format::Q5_1;
    constexpr TileLayout L = tile_layout(F);
    constexpr int64_t kTB = L.bytes;
    constexpr int kOffset = F == Format::Q4_0 ? 8 : F == Format::Q5_0 ? 16 : 0;

    const int8_t* xq[MR];
    const float* xd[MR];
    const int32_t* xs[MR];
    for (int i = 0; i < MR; ++i) {
        xq[i] = a.q + (m0 + i) * a.q_stride;
        xd[i] = a.d + (m0 + i) * a.d_stride;
        xs[i] = a.sum + (m0 + i) * a.sum_stride;
    }
    __m256 acc[NH][MR];
    for (int hh = 0; hh < NH; ++hh)
        for (int i = 0; i < MR; ++i) acc[hh][i] = _mm256_setzero_ps();
    const __m256i m4 = g2_m4();

    for (int64_t b = 0; b < nblocks; ++b) {
        const uint8_t* t = group + b * kTB;
        const uint8_t* q = t + L.q;
        __m256i dot[NH][MR];
        for (int hh = 0; hh < NH; ++hh)
            for (int i = 0; i < MR; ++i) dot[hh][i] = _mm256_setzero_si256();
        if constexpr (kQ8) {
            // signed weights: |w| as u8 (-128 -> 128) times x with w's sign; pair sums <= 32512
            for (int c = 0; c < 8; ++c) {
                __m256i xb[MR];
                for (int i = 0; i < MR; ++i) xb[i] = g2_bc4(xq[i] + 32 * b + 4 * c);
                for (int hh = 0; hh < NH; ++hh) {
                    const __m256i w = g2_ld(q + 64 * c + 32 * (h0 + hh));
                    const __m256i aw = _mm256_abs_epi8(w);
                    for (int i = 0; i < MR; ++i) dot[hh][i] = Dot::dot(dot[hh][i], aw, _mm256_sign_epi8(xb[i], w));
                }
            }
        } else {
            for (int c = 0; c < 4; ++c) {
                __m256i xl[MR], xh[MR];
                for (int i = 0; i < MR; ++i) {
                    xl[i] = g2_bc4(xq[i] + 32 * b + 4 * c);
                    xh[i] = g2_bc4(xq[i] + 32 * b + 16 + 4 * c);
                }
                for (int hh = 0; hh < NH; ++hh) {
                    const int h = h0 + hh;
                    const __m256i w = g2_ld(q + 64 * c + 32 * h);
                    __m256i lo = _mm256_and_si256(w, m4);
                    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(w, 4), m4);
                    if constexpr (kQ5) {
                        const __m256i sp = g2_hb_spread(t + L.hb + 16 * c, h);
                        lo = _mm256_or_si256(lo, g2_hb_bit4<false>(sp));
                        hi = _mm256_or_si256(hi, g2_hb_bit4<true>(sp));
                    }
                    for (int i = 0; i < MR; ++i) dot[hh][i] = Dot::dot2(dot[hh][i], lo, xl[i], hi, xh[i]);
                }
            }
        }
        // float epilogue, exactly gemm_ref.cpp's tile_32_scalar
        for (int hh = 0; hh < NH; ++hh) {
            const int h = h0 + hh;
            const __m256 dw = g2_f16x8(t + L.d + 16 * h);
            for (int i = 0; i < MR; ++i) {
                const __m256 dx = _mm256_set1_ps(xd[i][b]);
                if constexpr (kHasM) {
                    const __m256 mw = g2_f16x8(t + L.m + 16 * h);
                    acc[hh][i] = g2_add(acc[hh][i], g2_mul(g2_mul(dw, dx), _mm256_cvtepi32_ps(dot[hh][i])));
                    acc[hh][i] = g2_add(acc[hh][i], g2_mul(g2_mul(mw, dx),
                                                                          _mm256_set1_ps(static_cast<float>(xs[i][b]))));
                } else {
                    __m256i v = dot[hh][i];
                    if constexpr (kOffset != 0) v = _mm256_sub_epi32(v, _mm256_set1_epi32(kOffset * xs[i][b]));
                    acc[hh][i] = g2_add(acc[hh][i], g2_mul(g2_mul(dw, dx), _mm256_cvtepi32_ps(v)));
                }
            }
        }
    }
    for (int hh = 0; hh < NH; ++hh)
        for (int i = 0; i < MR; ++i) g2_store8(out + i * ldo + 8 * (h0 + hh), acc[hh][i], nvalid - 8 * (h0 + hh));
}

// ---- Q4_K / Q5_K ----
// One sub-block j = 2g + SH of a super-block: 32 quants = nibble SH of the 8 runs of pair g.
// Integer dot into a fresh accumulator, then isum += sc_j * dot.
template <class Dot, bool kQ5, int MR, int NH, int SH>
static inline void g2_sub_q45k(const uint8_t* qg, const uint8_t* hbg, const int8_t* const* xj, const uint8_t* sc16,
                               __m256i (&isum)[NH][MR], int h0) {
    const __m256i m4 = g2_m4();
    __m256i dot[NH][MR];
    for (int hh = 0; hh < NH; ++hh)
        for (int i = 0; i < MR; ++i) dot[hh][i] = _mm256_setzero_si256();
    for (int c = 0; c < 8; c += 2) {
        __m256i xa[MR], xb[MR];
        for (int i = 0; i < MR; ++i) {
            xa[i] = g2_bc4(xj[i] + 4 * c);
            xb[i] = g2_bc4(xj[i] + 4 * c + 4);
        }
        for (int hh = 0; hh < NH; ++hh) {
            const int h = h0 + hh;
            __m256i va = g2_ld(qg + 64 * c + 32 * h), vb = g2_ld(qg + 64 * (c + 1) + 32 * h);
            if constexpr (SH) {
                va = _mm256_srli_epi16(va, 4);
                vb = _mm256_srli_epi16(vb, 4);
            }
            va = _mm256_and_si256(va, m4);
            vb = _mm256_and_si256(vb, m4);
            if constexpr (kQ5) {
                va = _mm256_or_si256(va, g2_hb_bit4<SH != 0>(g2_hb_spread(hbg + 16 * c, h)));
                vb = _mm256_or_si256(vb, g2_hb_bit4<SH != 0>(g2_hb_spread(hbg + 16 * (c + 1), h)));
            }
            for (int i = 0; i < MR; ++i) dot[hh][i] = Dot::dot2(dot[hh][i], va, xa[i], vb, xb[i]);
        }
    }
    for (int hh = 0; hh < NH; ++hh) {
        const __m256i sc = g2_u8x8(sc16 + 8 * (h0 + hh));
        for (int i = 0; i < MR; ++i) isum[hh][i] = _mm256_add_epi32(isum[hh][i], _mm256_mullo_epi32(sc, dot[hh][i]));
    }
}

template <class Dot, Format F, int MR, int NH>
static inline void g2_tile_q45k_part(const uint8_t* group, int64_t nblocks, const ActRows& a, int64_t m0, float* out,
                                     int64_t ldo, int nvalid, int h0) {
    constexpr bool kQ5 = F == Format::Q5_K;
    constexpr TileLayout L = tile_layout(F);
    constexpr int64_t kTB = L.bytes;
    const int8_t* xq[MR];
    const float* xd[MR];
    const int32_t* xs[MR];
    for (int i = 0; i < MR; ++i) {
        xq[i] = a.q + (m0 + i) * a.q_stride;
        xd[i] = a.d + (m0 + i) * a.d_stride;
        xs[i] = a.sum + (m0 + i) * a.sum_stride;
    }
    __m256 acc[NH][MR];
    for (int hh = 0; hh < NH; ++hh)
        for (int i = 0; i < MR; ++i) acc[hh][i] = _mm256_setzero_ps();

    for (int64_t b = 0; b < nblocks; ++b) {
        const uint8_t* t = group + b * kTB;
        __m256i isum[NH][MR];
        for (int hh = 0; hh < NH; ++hh)
            for (int i = 0; i < MR; ++i) isum[hh][i] = _mm256_setzero_si256();
        for (int g = 0; g < 4; ++g) {
            const uint8_t* qg = t + L.q + L.q_step * g;
            const uint8_t* hbg = kQ5 ? t + L.hb + L.hb_step * g : nullptr;
            const int8_t* xj[MR];
            for (int i = 0; i < MR; ++i) xj[i] = xq[i] + 256 * b + 64 * g;
            g2_sub_q45k<Dot, kQ5, MR, NH, 0>(qg, hbg, xj, t + L.sc + 16 * (2 * g), isum, h0);
            for (int i = 0; i < MR; ++i) xj[i] += 32;
            g2_sub_q45k<Dot, kQ5, MR, NH, 1>(qg, hbg, xj, t + L.sc + 16 * (2 * g + 1), isum, h0);
        }
        for (int hh = 0; hh < NH; ++hh) {
            const int h = h0 + hh;
            // msum = sum_j m_j * (bsum_2j + bsum_2j+1): lane r = int16 pair (m_2u, m_2u+1) of row
            // 8h+r times the pair of activation sums (|sum of 32 q| <= 4064 fits int16), madd.
            __m256i wm[4];
            for (int u = 0; u < 4; ++u) {
                const __m128i lo = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(t + L.mn + 16 * (2 * u) + 8 * h));
                const __m128i hi = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(t + L.mn + 16 * (2 * u + 1) + 8 * h));
                wm[u] = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(lo, hi));
            }
            const __m256 d = g2_f16x8(t + L.d + 16 * h), dmin = g2_f16x8(t + L.m + 16 * h);
            for (int i = 0; i < MR; ++i) {
                const int32_t* bs = xs[i] + 16 * b;
                __m256i msum = _mm256_setzero_si256();
                for (int u = 0; u < 4; ++u) {
                    const uint32_t p0 = static_cast<uint16_t>(bs[4 * u] + bs[4 * u + 1]);
                    const uint32_t p1 = static_cast<uint16_t>(bs[4 * u + 2] + bs[4 * u + 3]);
                    msum = _mm256_add_epi32(msum, _mm256_madd_epi16(wm[u], _mm256_set1_epi32(static_cast<int>(p0 | (p1 << 16)))));
                }
                const __m256 dx = _mm256_set1_ps(xd[i][b]);
                acc[hh][i] = g2_add(acc[hh][i], g2_mul(g2_mul(d, dx), _mm256_cvtepi32_ps(isum[hh][i])));
                acc[hh][i] = g2_sub(acc[hh][i], g2_mul(g2_mul(dmin, dx), _mm256_cvtepi32_ps(msum)));
            }
        }
    }
    for (int hh = 0; hh < NH; ++hh)
        for (int i = 0; i < MR; ++i) g2_store8(out + i * ldo + 8 * (h0 + hh), acc[hh][i], nvalid - 8 * (h0 + hh));
}

// ---- Q6_K ----
// Sub-block s = 8A + 2T + CH: elements 128A + 32T + 4c + i for c in 4CH..4CH+3; low 4 bits from
// nibble T/2 of ql run c + 8(T%2), bits 4,5 from 2-bit field T of qh run c.
template <class Dot, int MR, int NH, int T>
static inline void g2_sub_q6k(const uint8_t* t, int A, int CH, const int8_t* const* x256, const int32_t* const* bs,
                              __m256i (&isum)[NH][MR], int h0) {
    constexpr TileLayout L = tile_layout(Format::Q6_K);
    const __m256i m4 = g2_m4(), m30 = _mm256_set1_epi8(0x30);
    const uint8_t* ql = t + L.q + L.q_step * A + 64 * 8 * (T & 1);
    const uint8_t* qh = t + L.qh + L.qh_step * A;
    const int s = 8 * A + 2 * T + CH;
    __m256i dot[NH][MR];
    for (int hh = 0; hh < NH; ++hh)
        for (int i = 0; i < MR; ++i) dot[hh][i] = _mm256_setzero_si256();
    for (int c = 4 * CH; c < 4 * CH + 4; c += 2) {
        __m256i xa[MR], xb[MR];
        for (int i = 0; i < MR; ++i) {
            xa[i] = g2_bc4(x256[i] + 128 * A + 32 * T + 4 * c);
            xb[i] = g2_bc4(x256[i] + 128 * A + 32 * T + 4 * c + 4);
        }
        for (int hh = 0; hh < NH; ++hh) {
            const int h = h0 + hh;
            __m256i la = g2_ld(ql + 64 * c + 32 * h), lb = g2_ld(ql + 64 * (c + 1) + 32 * h);
            __m256i ha = g2_ld(qh + 64 * c + 32 * h), hb = g2_ld(qh + 64 * (c + 1) + 32 * h);
            if constexpr (T >= 2) {
                la = _mm256_srli_epi16(la, 4);
                lb = _mm256_srli_epi16(lb, 4);
            }
            if constexpr (T == 0) {
                ha = _mm256_slli_epi16(ha, 4);
                hb = _mm256_slli_epi16(hb, 4);
            } else if constexpr (T == 1) {
                ha = _mm256_slli_epi16(ha, 2);
                hb = _mm256_slli_epi16(hb, 2);
            } else if constexpr (T == 3) {
                ha = _mm256_srli_epi16(ha, 2);
                hb = _mm256_srli_epi16(hb, 2);
            }
            const __m256i va = _mm256_or_si256(_mm256_and_si256(la, m4), _mm256_and_si256(ha, m30));
            const __m256i vb = _mm256_or_si256(_mm256_and_si256(lb, m4), _mm256_and_si256(hb, m30));
            for (int i = 0; i < MR; ++i) dot[hh][i] = Dot::dot2(dot[hh][i], va, xa[i], vb, xb[i]);
        }
    }
    for (int hh = 0; hh < NH; ++hh) {
        const __m256i sc = g2_i8x8(t + L.sc + 16 * s + 8 * (h0 + hh));
        for (int i = 0; i < MR; ++i) {
            const __m256i v = _mm256_sub_epi32(dot[hh][i], _mm256_set1_epi32(32 * bs[i][s]));
            isum[hh][i] = _mm256_add_epi32(isum[hh][i], _mm256_mullo_epi32(sc, v));
        }
    }
}

template <class Dot, Format F, int MR, int NH>
static inline void g2_tile_q6k_part(const uint8_t* group, int64_t nblocks, const ActRows& a, int64_t m0, float* out,
                                    int64_t ldo, int nvalid, int h0) {
    constexpr TileLayout L = tile_layout(Format::Q6_K);
    constexpr int64_t kTB = L.bytes;
    const float* xd[MR];
    const int8_t* x256[MR];
    const int32_t* bs[MR];
    __m256 acc[NH][MR];
    for (int hh = 0; hh < NH; ++hh)
        for (int i = 0; i < MR; ++i) acc[hh][i] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nblocks; ++b) {
        const uint8_t* t = group + b * kTB;
        for (int i = 0; i < MR; ++i) {
            x256[i] = a.q + (m0 + i) * a.q_stride + 256 * b;
            xd[i] = a.d + (m0 + i) * a.d_stride;
            bs[i] = a.sum + (m0 + i) * a.sum_stride + 16 * b;
        }
        __m256i isum[NH][MR];
        for (int hh = 0; hh < NH; ++hh)
            for (int i = 0; i < MR; ++i) isum[hh][i] = _mm256_setzero_si256();
        for (int A = 0; A < 2; ++A)
            for (int CH = 0; CH < 2; ++CH) {
                g2_sub_q6k<Dot, MR, NH, 0>(t, A, CH, x256, bs, isum, h0);
                g2_sub_q6k<Dot, MR, NH, 1>(t, A, CH, x256, bs, isum, h0);
                g2_sub_q6k<Dot, MR, NH, 2>(t, A, CH, x256, bs, isum, h0);
                g2_sub_q6k<Dot, MR, NH, 3>(t, A, CH, x256, bs, isum, h0);
            }
        for (int hh = 0; hh < NH; ++hh) {
            const __m256 d = g2_f16x8(t + L.d + 16 * (h0 + hh));
            for (int i = 0; i < MR; ++i) {
                const __m256 dx = _mm256_set1_ps(xd[i][b]);
                acc[hh][i] = g2_add(acc[hh][i], g2_mul(g2_mul(d, dx), _mm256_cvtepi32_ps(isum[hh][i])));
            }
        }
    }
    for (int hh = 0; hh < NH; ++hh)
        for (int i = 0; i < MR; ++i) g2_store8(out + i * ldo + 8 * (h0 + hh), acc[hh][i], nvalid - 8 * (h0 + hh));
}

// ---- the mr dispatch shared by the integer formats ----
// PART<Dot, F, MR, NH>: one activation row -> both halves at once (unless nvalid <= 8);
// 2..4 rows -> one half at a time, the second only if it holds valid rows.
#define SLMK_G2_TILE_ENTRY(NAME, PART)                                                                           \
    template <class Dot, Format F, int MR>                                                                       \
    static inline void NAME##_mr(const uint8_t* g, int64_t nb, const ActRows& a, int64_t m0, float* out,        \
                                 int64_t ldo, int nvalid) {                                                      \
        if (MR == 1 && nvalid > 8) {                                                                             \
            PART<Dot, F, 1, 2>(g, nb, a, m0, out, ldo, nvalid, 0);                                               \
        } else {                                                                                                 \
            PART<Dot, F, MR, 1>(g, nb, a, m0, out, ldo, nvalid, 0);                                              \
            if (nvalid > 8) PART<Dot, F, MR, 1>(g, nb, a, m0, out, ldo, nvalid, 1);                              \
        }                                                                                                        \
    }                                                                                                            \
    template <class Dot, Format F>                                                                               \
    static void NAME(const uint8_t* g, int64_t nb, const ActRows& a, int64_t m0, int mr, float* out, int64_t ldo, \
                     int nvalid) {                                                                               \
        switch (mr) {                                                                                            \
            case 1: NAME##_mr<Dot, F, 1>(g, nb, a, m0, out, ldo, nvalid); break;                                 \
            case 2: NAME##_mr<Dot, F, 2>(g, nb, a, m0, out, ldo, nvalid); break;                                 \
            case 3: NAME##_mr<Dot, F, 3>(g, nb, a, m0, out, ldo, nvalid); break;                                 \
            default: NAME##_mr<Dot, F, 4>(g, nb, a, m0, out, ldo, nvalid); break;                                \
        }                                                                                                        \
    }

SLMK_G2_TILE_ENTRY(g2_tile32, g2_tile32_part)
SLMK_G2_TILE_ENTRY(g2_tile_q45k, g2_tile_q45k_part)
SLMK_G2_TILE_ENTRY(g2_tile_q6k, g2_tile_q6k_part)
#undef SLMK_G2_TILE_ENTRY

// ---- float weights: [k][16 rows]; per output 4 partial sums over k mod 4 with FMA, then
//      (s0 + s1) + (s2 + s3), as tile_float_scalar. MC activation rows, NH halves. ----
template <Format F>
static inline __m256 g2_wload(const uint8_t* p, int h) {
    if constexpr (F == Format::F32) return _mm256_loadu_ps(reinterpret_cast<const float*>(p) + 8 * h);
    else if constexpr (F == Format::F16) return g2_f16x8(p + 16 * h);
    else
        return _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * h))), 16));
}

template <Format F, int MC, int NH>
static inline void g2_tilef_part(const uint8_t* group, int64_t k, const ActRows& a, int64_t m0, float* out, int64_t ldo,
                                 int nvalid, int h0) {
    constexpr int64_t kTB = packed_tile_bytes(F);
    const float* x[MC];
    for (int i = 0; i < MC; ++i) x[i] = a.xf + (m0 + i) * a.xf_stride;
    __m256 s[4][NH][MC];
    for (int p = 0; p < 4; ++p)
        for (int hh = 0; hh < NH; ++hh)
            for (int i = 0; i < MC; ++i) s[p][hh][i] = _mm256_setzero_ps();
    int64_t kk = 0;
    for (; kk + 4 <= k; kk += 4) {
        for (int p = 0; p < 4; ++p) {
            __m256 w[NH];
            for (int hh = 0; hh < NH; ++hh) w[hh] = g2_wload<F>(group + (kk + p) * kTB, h0 + hh);
            for (int i = 0; i < MC; ++i) {
                const __m256 xb = _mm256_set1_ps(x[i][kk + p]);
                for (int hh = 0; hh < NH; ++hh) s[p][hh][i] = _mm256_fmadd_ps(w[hh], xb, s[p][hh][i]);
            }
        }
    }
    for (int p = 0; kk + p < k; ++p) {
        for (int hh = 0; hh < NH; ++hh) {
            const __m256 w = g2_wload<F>(group + (kk + p) * kTB, h0 + hh);
            for (int i = 0; i < MC; ++i) s[p][hh][i] = _mm256_fmadd_ps(w, _mm256_set1_ps(x[i][kk + p]), s[p][hh][i]);
        }
    }
    for (int hh = 0; hh < NH; ++hh)
        for (int i = 0; i < MC; ++i) {
            const __m256 r = g2_add(g2_add(s[0][hh][i], s[1][hh][i]), g2_add(s[2][hh][i], s[3][hh][i]));
            g2_store8(out + i * ldo + 8 * (h0 + hh), r, nvalid - 8 * (h0 + hh));
        }
}

// 4 accumulators per (half, activation row): at most 8 live -> both halves for one row, one
// half for two rows (mr = 3, 4 run as 2 + 1, 2 + 2; the weight re-read hits L1/L2).
template <Format F>
static void g2_tilef(const uint8_t* g, int64_t k, const ActRows& a, int64_t m0, int mr, float* out, int64_t ldo,
                     int nvalid) {
    if (mr == 1 && nvalid > 8) {
        g2_tilef_part<F, 1, 2>(g, k, a, m0, out, ldo, nvalid, 0);
        return;
    }
    for (int h = 0; h < 2 && 8 * h < nvalid; ++h)
        for (int i = 0; i < mr; i += 2) {
            if (mr - i >= 2) g2_tilef_part<F, 2, 1>(g, k, a, m0 + i, out + i * ldo, ldo, nvalid, h);
            else g2_tilef_part<F, 1, 1>(g, k, a, m0 + i, out + i * ldo, ldo, nvalid, h);
        }
}

// The integer-format tiles with Dot as the 4-byte dot, as registry entries.
template <class Dot>
constexpr std::array<KernelEntry, 8> g2_int_tile_entries = {
    entry<Op::gemm, g2_tile32<Dot, Format::Q8_0>>(Format::Q8_0, {kGroupRows, kMaxMR}),
    entry<Op::gemm, g2_tile32<Dot, Format::Q4_0>>(Format::Q4_0, {kGroupRows, kMaxMR}),
    entry<Op::gemm, g2_tile32<Dot, Format::Q4_1>>(Format::Q4_1, {kGroupRows, kMaxMR}),
    entry<Op::gemm, g2_tile32<Dot, Format::Q5_0>>(Format::Q5_0, {kGroupRows, kMaxMR}),
    entry<Op::gemm, g2_tile32<Dot, Format::Q5_1>>(Format::Q5_1, {kGroupRows, kMaxMR}),
    entry<Op::gemm, g2_tile_q45k<Dot, Format::Q4_K>>(Format::Q4_K, {kGroupRows, kMaxMR}),
    entry<Op::gemm, g2_tile_q45k<Dot, Format::Q5_K>>(Format::Q5_K, {kGroupRows, kMaxMR}),
    entry<Op::gemm, g2_tile_q6k<Dot, Format::Q6_K>>(Format::Q6_K, {kGroupRows, kMaxMR}),
};

}  // namespace
}  // namespace slmk
