// ---- NEON GEMM micro-kernel bodies, shared by gemm_neon.cpp, gemm_neon_dotprod.cpp and gemm_neon_i8mm.cpp ----
// Included by files compiled under different -march flags, so everything here lives in an
// anonymous namespace (one private copy per translation unit, no ODR sharing across ISAs).
//
// The integer "4-byte dot per 32-bit lane" is a template parameter `Dot`:
//   Dot::dot(acc, w, x): acc[r] += sum_{j<4} w[4r+j] * x[4r+j]   (int8 x int8, exact)
// gemm_neon_dotprod.cpp passes sdot (vdotq_s32); gemm_neon.cpp a widening vmull_s8/vpadalq_s16.
//
// Loop order (all formats): per block, per row quarter qq (rows 4qq..4qq+3 = one 16-byte vector
// of every 64-byte row-quads run), the weights of that quarter are unpacked once and used by
// all MR activation rows. Lane r of a quarter's int32x4 ends a block with row 4qq+r's exact
// integer dot; the float epilogue then repeats the scalar's float32 op sequence and operand
// order (gemm_ref.cpp) lane-wise: separate vmulq/vaddq, never a fused multiply-add.
// Offsets (Q4_0: 8, Q5_0: 16, Q6_K: 32) are subtracted from the weights before the dot:
// sum (q - o) * x == sum q*x - o * sum x exactly, and the activation sums are exact, so the
// integer equals the scalar's `dot - offset * xsum`.
//
// NaN payloads: float add/mul are commutative except for *which* NaN comes out when both
// operands are NaN (AArch64 returns the first quiet one), and GCC commutes the scalar twin's
// operands freely. Random weight bytes give NaN scales, so two NaNs do meet (acc + term), and
// the test compares bits. The epilogues below therefore use the operand order of gemm_ref.cpp
// *as compiled* (aarch64-linux-gnu-g++ -O3): Q4_1/Q5_1 `(dx*dw)*dot + acc`,
// `float(xs)*(dx*mw) + acc`; Q4_K/Q5_K `(dx*d)*isum + acc`, `acc - (dx*dmin)*msum`;
// Q4_0/Q5_0 `acc + dot*(dw*dx)`; Q8_0/Q6_K in source order. Pinned with inline asm (nt_mul,
// nt_add) since GCC commutes the intrinsics too. Non-NaN results do not depend on any of this.
// Not reproduced: the scalar keeps a signalling-NaN fp16 scale signalling (fp16_to_fp32 is
// bit ops) while fcvtl quiets it; that only matters when it meets a NaN activation scale.
#pragma once
#include <arm_neon.h>

#include <array>
#include <cstring>

#include "gemm.h"

namespace slmk {
namespace {

// ---- small loads ----
inline int8x16_t nt_bcast4(const int8_t* p) {  // 4 activation bytes to every 32-bit lane
    int32_t v;
    std::memcpy(&v, p, 4);
    return vreinterpretq_s8_s32(vdupq_n_s32(v));
}
inline float32x4_t nt_f16x4(const uint8_t* p) {  // 4 fp16 scales, exact widening
    return vcvt_f32_f16(vreinterpret_f16_u8(vld1_u8(p)));
}
inline int32x4_t nt_u8x4(const uint8_t* p) {  // 4 u8 -> int32x4
    uint32_t v;
    std::memcpy(&v, p, 4);
    return vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(vmovl_u8(vreinterpret_u8_u32(vdup_n_u32(v))))));
}
inline int32x4_t nt_s8x4(const uint8_t* p) {  // 4 i8 -> int32x4
    uint32_t v;
    std::memcpy(&v, p, 4);
    return vmovl_s16(vget_low_s16(vmovl_s8(vreinterpret_s8_u32(vdup_n_u32(v)))));
}
// The 4 hb bytes of a quarter's rows, each repeated over its 4 byte lanes; then bit 4 of the
// low-nibble element i (hb bit i) and of the high-nibble element i (hb bit 4+i), as 0 / 0x10.
struct HbBits {
    uint8x16_t lo, hi;
};
inline HbBits nt_hb_bits(const uint8_t* hb4) {
    static const uint8_t kIdx[16] = {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3};
    static const uint8_t kMlo[16] = {1, 2, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8};
    static const uint8_t kMhi[16] = {16, 32, 64, 128, 16, 32, 64, 128, 16, 32, 64, 128, 16, 32, 64, 128};
    uint32_t v;
    std::memcpy(&v, hb4, 4);
    const uint8x16_t h = vqtbl1q_u8(vreinterpretq_u8_u32(vdupq_n_u32(v)), vld1q_u8(kIdx));
    const uint8x16_t b4 = vdupq_n_u8(0x10);
    return {vandq_u8(vtstq_u8(h, vld1q_u8(kMlo)), b4), vandq_u8(vtstq_u8(h, vld1q_u8(kMhi)), b4)};
}

// fmul / fadd / fsub with the operand order pinned (GCC would commute vmulq_f32/vaddq_f32,
// which changes which NaN wins when both operands are NaN; see "NaN payloads" above).
inline float32x4_t nt_mul(float32x4_t a, float32x4_t b) {
    float32x4_t r;
    __asm__("fmul %0.4s, %1.4s, %2.4s" : "=w"(r) : "w"(a), "w"(b));
    return r;
}
inline float32x4_t nt_add(float32x4_t a, float32x4_t b) {
    float32x4_t r;
    __asm__("fadd %0.4s, %1.4s, %2.4s" : "=w"(r) : "w"(a), "w"(b));
    return r;
}

// ---- per-block float epilogues: the float32 op sequences of gemm_ref.cpp, lane-wise over 4
// rows of one activation row (operand order: see "NaN payloads" above). Every NEON rung calls
// these, so the sdot and smmla kernels cannot drift apart. ----
// Q8_0 / Q4_0 / Q5_0: acc + (dw*dx) * float(dot);  Q4_1 / Q5_1: also + (mw*dx) * float(xs)
template <Format F>
inline float32x4_t nt_epi32(float32x4_t acc, int32x4_t dot, float32x4_t dw, float32x4_t mw, float xd, int32_t xs) {
    const float32x4_t dx = vdupq_n_f32(xd);
    if constexpr (F == Format::Q4_1 || F == Format::Q5_1) {
        acc = nt_add(nt_mul(nt_mul(dx, dw), vcvtq_f32_s32(dot)), acc);
        return nt_add(nt_mul(vdupq_n_f32(static_cast<float>(xs)), nt_mul(dx, mw)), acc);
    } else {
        const float32x4_t dd = nt_mul(dw, dx), fd = vcvtq_f32_s32(dot);
        // Q8_0: (dw*dx)*dot; Q4_0/Q5_0: dot*(dw*dx)
        return nt_add(acc, F == Format::Q8_0 ? nt_mul(dd, fd) : nt_mul(fd, dd));
    }
}
// Q4_K / Q5_K: acc + (d*dx) * float(isum) - (dmin*dx) * float(msum)
inline float32x4_t nt_epi_q45k(float32x4_t acc, int32x4_t isum, int32x4_t msum, float32x4_t d, float32x4_t dmin,
                               float xd) {
    const float32x4_t dx = vdupq_n_f32(xd);
    acc = nt_add(nt_mul(nt_mul(dx, d), vcvtq_f32_s32(isum)), acc);
    return vsubq_f32(acc, nt_mul(nt_mul(dx, dmin), vcvtq_f32_s32(msum)));
}
// Q6_K: acc + (d*dx) * float(isum)
inline float32x4_t nt_epi_q6k(float32x4_t acc, int32x4_t isum, float32x4_t d, float xd) {
    return nt_add(acc, nt_mul(nt_mul(d, vdupq_n_f32(xd)), vcvtq_f32_s32(isum)));
}

inline void nt_store16(float* o, const float32x4_t* acc, int nvalid) {
    if (nvalid == kGroupRows) {
        for (int q = 0; q < 4; ++q) vst1q_f32(o + 4 * q, acc[q]);
    } else {
        float tmp[kGroupRows];
        for (int q = 0; q < 4; ++q) vst1q_f32(tmp + 4 * q, acc[q]);
        std::memcpy(o, tmp, sizeof(float) * nvalid);
    }
}

// ---- the 32-block formats: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 ----
template <Format F>
constexpr int nt_tile_bytes() {
    return static_cast<int>(packed_tile_bytes(F));
}

template <class Dot, Format F, int MR>
void nt_tile32(const uint8_t* group, int64_t nblocks, const ActRows& a, int64_t m0, float* out, int64_t ldo,
               int nvalid) {
    constexpr int64_t tb = nt_tile_bytes<F>();
    constexpr bool has_m = F == Format::Q4_1 || F == Format::Q5_1;
    constexpr bool q5 = F == Format::Q5_0 || F == Format::Q5_1;
    constexpr TileLayout L = tile_layout(F);
    constexpr int offset = F == Format::Q4_0 ? 8 : F == Format::Q5_0 ? 16 : 0;
    const int8_t* xq[MR];
    const float* xd[MR];
    const int32_t* xs[MR];
    for (int i = 0; i < MR; ++i) {
        xq[i] = a.q + (m0 + i) * a.q_stride;
        xd[i] = a.d + (m0 + i) * a.d_stride;
        xs[i] = a.sum + (m0 + i) * a.sum_stride;
    }
    float32x4_t acc[MR][4];
    for (int i = 0; i < MR; ++i)
        for (int q = 0; q < 4; ++q) acc[i][q] = vdupq_n_f32(0.0f);
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    const int8x16_t off = vdupq_n_s8(offset);
    for (int64_t b = 0; b < nblocks; ++b) {
        const uint8_t* t = group + b * tb;
#pragma GCC unroll 4
        for (int qq = 0; qq < 4; ++qq) {
            int32x4_t dot[MR];
            for (int i = 0; i < MR; ++i) dot[i] = vdupq_n_s32(0);
            if constexpr (F == Format::Q8_0) {
#pragma GCC unroll 8
                for (int c = 0; c < 8; ++c) {
                    const int8x16_t w = vld1q_s8(reinterpret_cast<const int8_t*>(t + L.q + c * 64 + 16 * qq));
                    for (int i = 0; i < MR; ++i) dot[i] = Dot::dot(dot[i], w, nt_bcast4(xq[i] + 32 * b + 4 * c));
                }
            } else {
#pragma GCC unroll 4
                for (int c = 0; c < 4; ++c) {
                    const uint8x16_t v = vld1q_u8(t + L.q + c * 64 + 16 * qq);
                    uint8x16_t lo = vandq_u8(v, m4), hi = vshrq_n_u8(v, 4);
                    if constexpr (q5) {
                        const HbBits h = nt_hb_bits(t + L.hb + c * kGroupRows + 4 * qq);
                        lo = vorrq_u8(lo, h.lo);
                        hi = vorrq_u8(hi, h.hi);
                    }
                    int8x16_t wl = vreinterpretq_s8_u8(lo), wh = vreinterpretq_s8_u8(hi);
                    if constexpr (offset != 0) {
                        wl = vsubq_s8(wl, off);
                        wh = vsubq_s8(wh, off);
                    }
                    for (int i = 0; i < MR; ++i) {
                        dot[i] = Dot::dot(dot[i], wl, nt_bcast4(xq[i] + 32 * b + 4 * c));
                        dot[i] = Dot::dot(dot[i], wh, nt_bcast4(xq[i] + 32 * b + 16 + 4 * c));
                    }
                }
            }
            const float32x4_t dw = nt_f16x4(t + L.d + 8 * qq);
            const float32x4_t mw = has_m ? nt_f16x4(t + L.m + 8 * qq) : dw;
            for (int i = 0; i < MR; ++i) acc[i][qq] = nt_epi32<F>(acc[i][qq], dot[i], dw, mw, xd[i][b], xs[i][b]);
        }
    }
    for (int i = 0; i < MR; ++i) nt_store16(out + i * ldo, acc[i], nvalid);
}

// ---- Q4_K / Q5_K ----
// isum = sum_j sc_j * dot_j ; msum = sum_j m_j * (bsum_2j + bsum_2j+1)
// acc = acc + (d * dx) * float(isum);  acc = acc - (dmin * dx) * float(msum)
template <class Dot, Format F, int MR>
void nt_tile_q45k(const uint8_t* group, int64_t nblocks, const ActRows& a, int64_t m0, float* out, int64_t ldo,
                  int nvalid) {
    constexpr bool q5 = F == Format::Q5_K;
    constexpr TileLayout L = tile_layout(F);
    constexpr int64_t tb = L.bytes;
    const int8_t* xq[MR];
    const float* xd[MR];
    const int32_t* xs[MR];
    for (int i = 0; i < MR; ++i) {
        xq[i] = a.q + (m0 + i) * a.q_stride;
        xd[i] = a.d + (m0 + i) * a.d_stride;
        xs[i] = a.sum + (m0 + i) * a.sum_stride;
    }
    float32x4_t acc[MR][4];
    for (int i = 0; i < MR; ++i)
        for (int q = 0; q < 4; ++q) acc[i][q] = vdupq_n_f32(0.0f);
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    for (int64_t b = 0; b < nblocks; ++b) {
        const uint8_t* t = group + b * tb;
        const uint8_t* sc = t + L.sc;
        const uint8_t* mn = t + L.mn;
        for (int qq = 0; qq < 4; ++qq) {
            int32x4_t isum[MR], msum[MR];
            for (int i = 0; i < MR; ++i) isum[i] = msum[i] = vdupq_n_s32(0);
            for (int g = 0; g < 4; ++g) {
                int32x4_t dl[MR], dh[MR];
                for (int i = 0; i < MR; ++i) dl[i] = dh[i] = vdupq_n_s32(0);
#pragma GCC unroll 8
                for (int c = 0; c < 8; ++c) {
                    const uint8x16_t v = vld1q_u8(t + L.q + g * L.q_step + c * 64 + 16 * qq);
                    uint8x16_t lo = vandq_u8(v, m4), hi = vshrq_n_u8(v, 4);
                    if constexpr (q5) {
                        const HbBits h = nt_hb_bits(t + L.hb + g * L.hb_step + c * kGroupRows + 4 * qq);
                        lo = vorrq_u8(lo, h.lo);
                        hi = vorrq_u8(hi, h.hi);
                    }
                    const int8x16_t wl = vreinterpretq_s8_u8(lo), wh = vreinterpretq_s8_u8(hi);
                    for (int i = 0; i < MR; ++i) {
                        const int8_t* x = xq[i] + 256 * b + 64 * g + 4 * c;
                        dl[i] = Dot::dot(dl[i], wl, nt_bcast4(x));
                        dh[i] = Dot::dot(dh[i], wh, nt_bcast4(x + 32));
                    }
                }
                const int32x4_t sl = nt_u8x4(sc + (2 * g) * kGroupRows + 4 * qq);
                const int32x4_t sh = nt_u8x4(sc + (2 * g + 1) * kGroupRows + 4 * qq);
                const int32x4_t ml = nt_u8x4(mn + (2 * g) * kGroupRows + 4 * qq);
                const int32x4_t mh = nt_u8x4(mn + (2 * g + 1) * kGroupRows + 4 * qq);
                for (int i = 0; i < MR; ++i) {
                    const int32_t* bs = xs[i] + 16 * b + 4 * g;
                    isum[i] = vmlaq_s32(isum[i], sl, dl[i]);
                    isum[i] = vmlaq_s32(isum[i], sh, dh[i]);
                    msum[i] = vmlaq_s32(msum[i], ml, vdupq_n_s32(bs[0] + bs[1]));
                    msum[i] = vmlaq_s32(msum[i], mh, vdupq_n_s32(bs[2] + bs[3]));
                }
            }
            const float32x4_t d = nt_f16x4(t + L.d + 8 * qq);
            const float32x4_t dmin = nt_f16x4(t + L.m + 8 * qq);
            for (int i = 0; i < MR; ++i) acc[i][qq] = nt_epi_q45k(acc[i][qq], isum[i], msum[i], d, dmin, xd[i][b]);
        }
    }
    for (int i = 0; i < MR; ++i) nt_store16(out + i * ldo, acc[i], nvalid);
}

// ---- Q6_K ----
// Sub-block s = 8a + 2t + h (half a, qh field t, h = which 4 of the 8 qh runs) covers elements
// 128a + 32t + 4cq + i for cq in 4h..4h+3: low 4 bits from ql run 8*(t&1)+cq (low nibble for
// t < 2, high for t >= 2), bits 4..5 from field t of qh run cq.
// isum = sum_s sc_s * (dot_s - 32 * bsum_s);  acc = acc + (d * dx) * float(isum)
template <int T>
inline uint8x16_t nt_q6_hi(uint8x16_t hv) {  // field T of each byte, moved to bits 4..5
    const uint8x16_t m = vdupq_n_u8(0x30);
    if constexpr (T == 0) return vandq_u8(vshlq_n_u8(hv, 4), m);
    else if constexpr (T == 1) return vandq_u8(vshlq_n_u8(hv, 2), m);
    else if constexpr (T == 2) return vandq_u8(hv, m);
    else return vandq_u8(vshrq_n_u8(hv, 2), m);
}

template <class Dot, int MR, int T>
inline void nt_q6_field(const uint8_t* t, int64_t b, int qq, int ah, const int8_t* const* xq, int32x4_t* isum) {
    constexpr TileLayout L = tile_layout(Format::Q6_K);
    const uint8_t* ql = t + L.q + ah * L.q_step;
    const uint8_t* qh = t + L.qh + ah * L.qh_step;
    const int8_t* sc = reinterpret_cast<const int8_t*>(t + L.sc);
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    const int8x16_t o32 = vdupq_n_s8(32);
    for (int h = 0; h < 2; ++h) {
        int32x4_t dot[MR];
        for (int i = 0; i < MR; ++i) dot[i] = vdupq_n_s32(0);
#pragma GCC unroll 4
        for (int cq = 4 * h; cq < 4 * h + 4; ++cq) {
            const uint8x16_t lv = vld1q_u8(ql + (8 * (T & 1) + cq) * 64 + 16 * qq);
            const uint8x16_t hv = vld1q_u8(qh + cq * 64 + 16 * qq);
            const uint8x16_t lo = T < 2 ? vandq_u8(lv, m4) : vshrq_n_u8(lv, 4);
            const int8x16_t w = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lo, nt_q6_hi<T>(hv))), o32);
            for (int i = 0; i < MR; ++i)
                dot[i] = Dot::dot(dot[i], w, nt_bcast4(xq[i] + 256 * b + 128 * ah + 32 * T + 4 * cq));
        }
        const int s = 8 * ah + 2 * T + h;
        const int32x4_t scv = nt_s8x4(reinterpret_cast<const uint8_t*>(sc + s * kGroupRows + 4 * qq));
        for (int i = 0; i < MR; ++i) isum[i] = vmlaq_s32(isum[i], scv, dot[i]);
    }
}

template <class Dot, int MR>
void nt_tile_q6k(const uint8_t* group, int64_t nblocks, const ActRows& a, int64_t m0, float* out, int64_t ldo,
                 int nvalid) {
    constexpr TileLayout L = tile_layout(Format::Q6_K);
    constexpr int64_t tb = L.bytes;
    const int8_t* xq[MR];
    const float* xd[MR];
    for (int i = 0; i < MR; ++i) {
        xq[i] = a.q + (m0 + i) * a.q_stride;
        xd[i] = a.d + (m0 + i) * a.d_stride;
    }
    float32x4_t acc[MR][4];
    for (int i = 0; i < MR; ++i)
        for (int q = 0; q < 4; ++q) acc[i][q] = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < nblocks; ++b) {
        const uint8_t* t = group + b * tb;
        for (int qq = 0; qq < 4; ++qq) {
            int32x4_t isum[MR];
            for (int i = 0; i < MR; ++i) isum[i] = vdupq_n_s32(0);
            for (int ah = 0; ah < 2; ++ah) {
                nt_q6_field<Dot, MR, 0>(t, b, qq, ah, xq, isum);
                nt_q6_field<Dot, MR, 1>(t, b, qq, ah, xq, isum);
                nt_q6_field<Dot, MR, 2>(t, b, qq, ah, xq, isum);
                nt_q6_field<Dot, MR, 3>(t, b, qq, ah, xq, isum);
            }
            const float32x4_t d = nt_f16x4(t + L.d + 8 * qq);
            for (int i = 0; i < MR; ++i) acc[i][qq] = nt_epi_q6k(acc[i][qq], isum[i], d, xd[i][b]);
        }
    }
    for (int i = 0; i < MR; ++i) nt_store16(out + i * ldo, acc[i], nvalid);
}

// ---- runtime mr -> template MR ----
template <class Dot, Format F, int MR>
void nt_tile_mr(const uint8_t* group, int64_t nblocks, const ActRows& a, int64_t m0, float* out, int64_t ldo,
                int nvalid) {
    if constexpr (F == Format::Q4_K || F == Format::Q5_K) nt_tile_q45k<Dot, F, MR>(group, nblocks, a, m0, out, ldo, nvalid);
    else if constexpr (F == Format::Q6_K) nt_tile_q6k<Dot, MR>(group, nblocks, a, m0, out, ldo, nvalid);
    else nt_tile32<Dot, F, MR>(group, nblocks, a, m0, out, ldo, nvalid);
}

template <class Dot, Format F>
void nt_tile(const uint8_t* group, int64_t nblocks, const ActRows& a, int64_t m0, int mr, float* out, int64_t ldo,
             int nvalid) {
    switch (mr) {
        case 1: nt_tile_mr<Dot, F, 1>(group, nblocks, a, m0, out, ldo, nvalid); break;
        case 2: nt_tile_mr<Dot, F, 2>(group, nblocks, a, m0, out, ldo, nvalid); break;
        case 3: nt_tile_mr<Dot, F, 3>(group, nblocks, a, m0, out, ldo, nvalid); break;
        default:
            for (int i0 = 0; i0 < mr; i0 += 4) {
                const int n = mr - i0 < 4 ? mr - i0 : 4;
                if (n == 4) nt_tile_mr<Dot, F, 4>(group, nblocks, a, m0 + i0, out + i0 * ldo, ldo, nvalid);
                else nt_tile<Dot, F>(group, nblocks, a, m0 + i0, n, out + i0 * ldo, ldo, nvalid);
            }
            break;
    }
}

// The quantized formats' tiles with Dot as the 4-byte dot, as registry entries.
template <class Dot>
constexpr std::array<KernelEntry, 8> nt_int_tile_entries = {
    entry<Op::gemm, nt_tile<Dot, Format::Q8_0>>(Format::Q8_0, {kGroupRows, kMaxMR}),
    entry<Op::gemm, nt_tile<Dot, Format::Q4_0>>(Format::Q4_0, {kGroupRows, kMaxMR}),
    entry<Op::gemm, nt_tile<Dot, Format::Q4_1>>(Format::Q4_1, {kGroupRows, kMaxMR}),
    entry<Op::gemm, nt_tile<Dot, Format::Q5_0>>(Format::Q5_0, {kGroupRows, kMaxMR}),
    entry<Op::gemm, nt_tile<Dot, Format::Q5_1>>(Format::Q5_1, {kGroupRows, kMaxMR}),
    entry<Op::gemm, nt_tile<Dot, Format::Q4_K>>(Format::Q4_K, {kGroupRows, kMaxMR}),
    entry<Op::gemm, nt_tile<Dot, Format::Q5_K>>(Format::Q5_K, {kGroupRows, kMaxMR}),
    entry<Op::gemm, nt_tile<Dot, Format::Q6_K>>(Format::Q6_K, {kGroupRows, kMaxMR}),
};

}  // namespace
}  // namespace slmk
