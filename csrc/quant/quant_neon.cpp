// ---- quantize / dequantize, NEON (armv8-a baseline: Advanced SIMD, no fp16 arithmetic) ----
// Twins of quant_ref.cpp, bit for bit. What that takes, beyond the obvious:
//  - fp16 scales are widened with the scalar fp16_to_fp32 (exact, NaN payloads kept); the F16
//    row converter uses FCVTL but patches NaN lanes, which the hardware would quiet.
//  - float math keeps the scalar operand order (ARM propagates the first NaN operand) and never
//    fuses (no vfmaq/vmlaq; the build also uses -ffp-contract=off).
//  - float -> int conversions saturate on NEON and give 0 for NaN, where the scalar spec
//    (trunc_to_i32) gives INT32_MIN: lanes outside (-2^31 - 256, 2^31) or non-finite are masked
//    to 0, which has the same low byte as INT32_MIN.
//  - min/max searches ignore NaN like std::min/std::max(acc, x) and take the FIRST index on
//    ties, because -0.0 and +0.0 compare equal but store differently.
#include <arm_neon.h>

#include <cmath>
#include <cstring>

#include "../core/fp16.h"
#include "quant_common.h"
#include "quant_rows.h"

namespace slmk {

namespace {

// ---- lane helpers ----

// int8x16 -> 4 x float32x4 (lanes 0-3, 4-7, 8-11, 12-15), exact.
inline void s8_to_f32(int8x16_t q, float32x4_t out[4]) {
    const int16x8_t lo = vmovl_s8(vget_low_s8(q)), hi = vmovl_s8(vget_high_s8(q));
    out[0] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo)));
    out[1] = vcvtq_f32_s32(vmovl_s16(vget_high_s16(lo)));
    out[2] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi)));
    out[3] = vcvtq_f32_s32(vmovl_s16(vget_high_s16(hi)));
}
inline void u8_to_f32(uint8x16_t q, float32x4_t out[4]) {
    const uint16x8_t lo = vmovl_u8(vget_low_u8(q)), hi = vmovl_u8(vget_high_u8(q));
    out[0] = vcvtq_f32_u32(vmovl_u16(vget_low_u16(lo)));
    out[1] = vcvtq_f32_u32(vmovl_u16(vget_high_u16(lo)));
    out[2] = vcvtq_f32_u32(vmovl_u16(vget_low_u16(hi)));
    out[3] = vcvtq_f32_u32(vmovl_u16(vget_high_u16(hi)));
}

// y[0..16) = d * q
inline void store_d_mul_q(float* y, float32x4_t vd, int8x16_t q) {
    float32x4_t f[4];
    s8_to_f32(q, f);
    for (int i = 0; i < 4; ++i) vst1q_f32(y + 4 * i, vmulq_f32(vd, f[i]));
}
// y[0..16) = d * q + m
inline void store_d_mul_q_add_m(float* y, float32x4_t vd, float32x4_t vm, uint8x16_t q) {
    float32x4_t f[4];
    u8_to_f32(q, f);
    for (int i = 0; i < 4; ++i) vst1q_f32(y + 4 * i, vaddq_f32(vmulq_f32(vd, f[i]), vm));
}
// y[0..16) = dl * q - ml
inline void store_dl_mul_q_sub_ml(float* y, float32x4_t vdl, float32x4_t vml, uint8x16_t q) {
    float32x4_t f[4];
    u8_to_f32(q, f);
    for (int i = 0; i < 4; ++i) vst1q_f32(y + 4 * i, vsubq_f32(vmulq_f32(vdl, f[i]), vml));
}

// Exact fp16 -> fp32 of 4 lanes: FCVTL, except NaN lanes rebuilt from the bits (FCVTL would
// set the quiet bit of a signalling NaN; the scalar twin keeps the payload as is).
inline float32x4_t f16_to_f32(uint16x4_t h) {
    const float32x4_t f = vcvt_f32_f16(vreinterpret_f16_u16(h));
    const uint32x4_t w = vmovl_u16(h);
    const uint32x4_t aw = vandq_u32(w, vdupq_n_u32(0x7fff));
    const uint32x4_t nan = vcgtq_u32(aw, vdupq_n_u32(0x7c00));
    const uint32x4_t bits = vorrq_u32(vshlq_n_u32(vandq_u32(w, vdupq_n_u32(0x8000)), 16),
                                      vaddq_u32(vshlq_n_u32(aw, 13), vdupq_n_u32(0x70000000u)));
    return vbslq_f32(nan, vreinterpretq_f32_u32(bits), f);
}

// fp32 -> fp16 of 4 lanes, round to nearest even (FCVTN with the default FPCR); NaN lanes
// rebuilt as the scalar twin does: sign | 0x7e00 | top 10 payload bits.
inline uint16x4_t f32_to_f16(float32x4_t x) {
    const uint16x4_t h = vreinterpret_u16_f16(vcvt_f16_f32(x));
    const uint32x4_t u = vreinterpretq_u32_f32(x);
    const uint32x4_t ax = vandq_u32(u, vdupq_n_u32(0x7fffffffu));
    const uint32x4_t nan = vcgtq_u32(ax, vdupq_n_u32(0x7f800000u));
    const uint32x4_t bits = vorrq_u32(vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(0x8000)),
                                      vorrq_u32(vdupq_n_u32(0x7e00), vandq_u32(vshrq_n_u32(ax, 13), vdupq_n_u32(0x3ff))));
    return vbsl_u16(vmovn_u32(nan), vmovn_u32(bits), h);
}

// Lanes for which trunc_to_i32 does not return INT32_MIN (v is integral whenever |v| >= 2^23,
// so testing v instead of round(v) or trunc(v) gives the same answer).
inline uint32x4_t in_i32_range(float32x4_t v) {
    return vandq_u32(vcgtq_f32(v, vdupq_n_f32(-2147483904.0f)), vcltq_f32(v, vdupq_n_f32(2147483648.0f)));
}
// trunc_to_i32(round_half_away(v)) with the out-of-range lanes 0 (same low byte as INT32_MIN).
inline int32x4_t round_away_i32(float32x4_t v) {
    return vandq_s32(vcvtaq_s32_f32(v), vreinterpretq_s32_u32(in_i32_range(v)));
}
// trunc_to_i32(trunc(v)), likewise.
inline int32x4_t trunc_i32(float32x4_t v) {
    return vandq_s32(vcvtq_s32_f32(v), vreinterpretq_s32_u32(in_i32_range(v)));
}
// Low bytes of 16 int32 lanes (static_cast<uint8_t>).
inline uint8x16_t low_bytes(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d) {
    const int16x8_t ab = vcombine_s16(vmovn_s32(a), vmovn_s32(b));
    const int16x8_t cd = vcombine_s16(vmovn_s32(c), vmovn_s32(d));
    return vreinterpretq_u8_s8(vcombine_s8(vmovn_s16(ab), vmovn_s16(cd)));
}

// max(0, |x[j]|) over n floats, NaN ignored (std::max(amax, fabs(x)) never takes a NaN).
inline float absmax_nonan(const float* x, int n) {
    float32x4_t acc = vdupq_n_f32(0.0f);
    for (int j = 0; j < n; j += 4) {
        const float32x4_t a = vabsq_f32(vld1q_f32(x + j));
        acc = vbslq_f32(vcltq_f32(acc, a), a, acc);
    }
    return vmaxvq_f32(acc);  // no NaN left, all lanes >= +0
}

// Index of the first of 32 lanes whose 32-bit mask is set (32 if none).
inline int first_set32(const uint32x4_t m[8]) {
    static const uint8_t kIota[32] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                                      16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
    uint8x16_t best = vdupq_n_u8(32);
    for (int h = 0; h < 2; ++h) {
        const uint16x8_t m01 = vcombine_u16(vmovn_u32(m[4 * h + 0]), vmovn_u32(m[4 * h + 1]));
        const uint16x8_t m23 = vcombine_u16(vmovn_u32(m[4 * h + 2]), vmovn_u32(m[4 * h + 3]));
        const uint8x16_t mb = vcombine_u8(vmovn_u16(m01), vmovn_u16(m23));
        best = vminq_u8(best, vbslq_u8(mb, vld1q_u8(kIota + 16 * h), vdupq_n_u8(32)));
    }
    return vminvq_u8(best);
}

// signed_absmax of a 32-block: the value of largest magnitude, the first one on ties; a NaN
// x[0] wins (nothing compares greater), later NaNs are skipped.
inline float signed_absmax32(const float* x) {
    if (x[0] != x[0]) return x[0];
    float32x4_t v[8], acc = vdupq_n_f32(std::fabs(x[0]));  // x[0] is not NaN here
    for (int i = 0; i < 8; ++i) {
        v[i] = vld1q_f32(x + 4 * i);
        const float32x4_t a = vabsq_f32(v[i]);
        acc = vbslq_f32(vcltq_f32(acc, a), a, acc);
    }
    const float32x4_t vm = vdupq_n_f32(vmaxvq_f32(acc));
    uint32x4_t eq[8];
    for (int i = 0; i < 8; ++i) eq[i] = vceqq_f32(vabsq_f32(v[i]), vm);
    return x[first_set32(eq)];
}

// std::min / std::max folds of a 32-block from x[0]: NaNs after x[0] skipped, the first value
// kept on ties (only +-0.0 tie with different bits, so a zero result is looked up by index).
inline void min_max32(const float* x, float* mn_out, float* mx_out) {
    if (x[0] != x[0]) {
        *mn_out = *mx_out = x[0];
        return;
    }
    float32x4_t v[8];
    float32x4_t mn = vdupq_n_f32(x[0]), mx = mn;
    for (int i = 0; i < 8; ++i) {
        v[i] = vld1q_f32(x + 4 * i);
        mn = vbslq_f32(vcltq_f32(v[i], mn), v[i], mn);
        mx = vbslq_f32(vcltq_f32(mx, v[i]), v[i], mx);
    }
    const float mnv = vminvq_f32(mn), mxv = vmaxvq_f32(mx);  // no NaN lanes
    const float r[2] = {mnv, mxv};
    float* out[2] = {mn_out, mx_out};
    for (int k = 0; k < 2; ++k) {
        if (r[k] != 0.0f) {
            *out[k] = r[k];
            continue;
        }
        uint32x4_t eq[8];
        for (int i = 0; i < 8; ++i) eq[i] = vceqq_f32(v[i], vdupq_n_f32(0.0f));
        *out[k] = x[first_set32(eq)];
    }
}

// Nibble packing of a 32-block: q[j] low, q[j+16] high (high nibble shifted out of a byte).
inline uint8x16_t pack_nibbles(uint8x16_t q0, uint8x16_t q1) {
    return vorrq_u8(vandq_u8(q0, vdupq_n_u8(0x0F)), vshlq_n_u8(q1, 4));
}
// Bit 4 of q[j] -> bit j of a little-endian u32.
inline uint32_t pack_high_bits(uint8x16_t q0, uint8x16_t q1) {
    static const uint8_t kBit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t w = vld1q_u8(kBit);
    const uint8x16_t a = vandq_u8(vtstq_u8(q0, vdupq_n_u8(0x10)), w);
    const uint8x16_t b = vandq_u8(vtstq_u8(q1, vdupq_n_u8(0x10)), w);
    uint8x16_t r = vpaddq_u8(a, b);  // pairs
    r = vpaddq_u8(r, r);             // quads
    r = vpaddq_u8(r, r);             // bytes 0..3 = bits 0-7, 8-15, 16-23, 24-31
    return vgetq_lane_u32(vreinterpretq_u32_u8(r), 0);
}
// Bits b (0..15) of the LE u16 at p spread to 16 bytes: 0x10 where set, 0 where clear.
inline uint8x16_t high_bits16(const uint8_t* p) {
    static const uint8_t kBit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t b = vcombine_u8(vdup_n_u8(p[0]), vdup_n_u8(p[1]));
    return vandq_u8(vtstq_u8(b, vld1q_u8(kBit)), vdupq_n_u8(0x10));
}

// ---- float formats (block size 1: any n, 8 lanes at a time, the tail scalar) ----
void dequantize_f16(const uint8_t* x, float* y, int64_t n) {
    for (int64_t i = 0; i + 8 <= n; i += 8) {
        const uint16x8_t h = vreinterpretq_u16_u8(vld1q_u8(x + 2 * i));
        vst1q_f32(y + i, f16_to_f32(vget_low_u16(h)));
        vst1q_f32(y + i + 4, f16_to_f32(vget_high_u16(h)));
    }
    for (int64_t i = n & ~int64_t{7}; i < n; ++i) y[i] = fp16_to_fp32(load_u16(x + 2 * i));
}
void quantize_f16(const float* x, uint8_t* y, int64_t n) {
    for (int64_t i = 0; i + 8 <= n; i += 8) {
        const uint16x8_t h = vcombine_u16(f32_to_f16(vld1q_f32(x + i)), f32_to_f16(vld1q_f32(x + i + 4)));
        vst1q_u8(y + 2 * i, vreinterpretq_u8_u16(h));
    }
    for (int64_t i = n & ~int64_t{7}; i < n; ++i) store_u16(y + 2 * i, fp32_to_fp16(x[i]));
}
void dequantize_bf16(const uint8_t* x, float* y, int64_t n) {
    for (int64_t i = 0; i + 8 <= n; i += 8) {
        const uint16x8_t h = vreinterpretq_u16_u8(vld1q_u8(x + 2 * i));
        vst1q_f32(y + i, vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16)));
        vst1q_f32(y + i + 4, vreinterpretq_f32_u32(vshll_n_u16(vget_high_u16(h), 16)));
    }
    for (int64_t i = n & ~int64_t{7}; i < n; ++i) y[i] = bf16_to_fp32(load_u16(x + 2 * i));
}
// As fp32_to_bf16: NaN -> (u >> 16) | 64, else (u + 0x7fff + ((u >> 16) & 1)) >> 16.
inline uint16x4_t f32_to_bf16(float32x4_t x) {
    const uint32x4_t u = vreinterpretq_u32_f32(x);
    const uint32x4_t nan = vcgtq_u32(vandq_u32(u, vdupq_n_u32(0x7fffffffu)), vdupq_n_u32(0x7f800000u));
    const uint32x4_t odd = vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1));
    const uint32x4_t rounded = vaddq_u32(u, vaddq_u32(vdupq_n_u32(0x7fff), odd));
    const uint32x4_t quiet = vorrq_u32(u, vdupq_n_u32(64u << 16));
    return vshrn_n_u32(vbslq_u32(nan, quiet, rounded), 16);
}
void quantize_bf16(const float* x, uint8_t* y, int64_t n) {
    for (int64_t i = 0; i + 8 <= n; i += 8) {
        const uint16x8_t h = vcombine_u16(f32_to_bf16(vld1q_f32(x + i)), f32_to_bf16(vld1q_f32(x + i + 4)));
        vst1q_u8(y + 2 * i, vreinterpretq_u8_u16(h));
    }
    for (int64_t i = n & ~int64_t{7}; i < n; ++i) store_u16(y + 2 * i, fp32_to_bf16(x[i]));
}

// ---- Q8_0 / Q8_K: d = amax/127, q = round(x/d) ----
// 16 quants: low bytes of trunc_to_i32(round_half_away(x * id)).
inline uint8x16_t quantize_round16(const float* x, float32x4_t vid) {
    return low_bytes(round_away_i32(vmulq_f32(vld1q_f32(x), vid)), round_away_i32(vmulq_f32(vld1q_f32(x + 4), vid)),
                     round_away_i32(vmulq_f32(vld1q_f32(x + 8), vid)), round_away_i32(vmulq_f32(vld1q_f32(x + 12), vid)));
}
void quantize_q8_0(const float* x, uint8_t* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += QK, y += sizeof(block_q8_0)) {
        const float d = absmax_nonan(x, QK) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_u16(y, fp32_to_fp16(d));
        const float32x4_t vid = vdupq_n_f32(id);
        vst1q_u8(y + 2, quantize_round16(x, vid));
        vst1q_u8(y + 18, quantize_round16(x + 16, vid));
    }
}
void dequantize_q8_0(const uint8_t* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += sizeof(block_q8_0), y += QK) {
        const float32x4_t vd = vdupq_n_f32(fp16_to_fp32(load_u16(x)));
        for (int h = 0; h < 2; ++h) {
            float32x4_t f[4];
            s8_to_f32(vreinterpretq_s8_u8(vld1q_u8(x + 2 + 16 * h)), f);
            for (int i = 0; i < 4; ++i) vst1q_f32(y + 16 * h + 4 * i, vmulq_f32(f[i], vd));  // q * d
        }
    }
}
void quantize_q8_k(const float* x, uint8_t* y, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; ++b, x += QK_K, y += sizeof(block_q8_K)) {
        const float d = absmax_nonan(x, QK_K) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        std::memcpy(y, &d, 4);
        const float32x4_t vid = vdupq_n_f32(id);
        int16_t bsums[QK_K / 16];
        for (int g = 0; g < QK_K / 16; ++g) {
            const int8x16_t q = vreinterpretq_s8_u8(quantize_round16(x + 16 * g, vid));
            vst1q_s8(reinterpret_cast<int8_t*>(y + 4 + 16 * g), q);
            bsums[g] = vaddlvq_s8(q);
        }
        std::memcpy(y + 4 + QK_K, bsums, sizeof(bsums));
    }
}
void dequantize_q8_k(const uint8_t* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; ++b, x += sizeof(block_q8_K), y += QK_K) {
        float d;
        std::memcpy(&d, x, 4);
        const float32x4_t vd = vdupq_n_f32(d);
        for (int g = 0; g < QK_K / 16; ++g) {
            float32x4_t f[4];
            s8_to_f32(vreinterpretq_s8_u8(vld1q_u8(x + 4 + 16 * g)), f);
            for (int i = 0; i < 4; ++i) vst1q_f32(y + 16 * g + 4 * i, vmulq_f32(f[i], vd));  // q * d
        }
    }
}

// ---- 32-block quantizers (Q4_0, Q4_1, Q5_0, Q5_1) ----
// 16 quants of a symmetric block: clamp(low byte of trunc(x*id + (half + 0.5)), 2*half - 1).
inline uint8x16_t quantize_sym16(const float* x, float32x4_t vid, float32x4_t vbias, uint8x16_t vmax) {
    int32x4_t r[4];
    for (int i = 0; i < 4; ++i) r[i] = trunc_i32(vaddq_f32(vmulq_f32(vld1q_f32(x + 4 * i), vid), vbias));
    return vminq_u8(low_bytes(r[0], r[1], r[2], r[3]), vmax);
}
// 16 quants of an asymmetric block: clamp(low byte of trunc((x - mn)*id + 0.5), maxq).
inline uint8x16_t quantize_asym16(const float* x, float32x4_t vmn, float32x4_t vid, uint8x16_t vmax) {
    int32x4_t r[4];
    for (int i = 0; i < 4; ++i)
        r[i] = trunc_i32(vaddq_f32(vmulq_f32(vsubq_f32(vld1q_f32(x + 4 * i), vmn), vid), vdupq_n_f32(0.5f)));
    return vminq_u8(low_bytes(r[0], r[1], r[2], r[3]), vmax);
}

template <int kBits>
void quantize_sym_block(const float* x, uint8x16_t* q0, uint8x16_t* q1, float* d_out) {
    constexpr int kHalf = 1 << (kBits - 1);
    const float d = signed_absmax32(x) / static_cast<float>(-kHalf);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const float32x4_t vid = vdupq_n_f32(id), vbias = vdupq_n_f32(kHalf + 0.5f);
    const uint8x16_t vmax = vdupq_n_u8(2 * kHalf - 1);
    *q0 = quantize_sym16(x, vid, vbias, vmax);
    *q1 = quantize_sym16(x + 16, vid, vbias, vmax);
    *d_out = d;
}
template <int kBits>
void quantize_asym_block(const float* x, uint8x16_t* q0, uint8x16_t* q1, float* d_out, float* m_out) {
    constexpr int kMaxQ = (1 << kBits) - 1;
    float mn, mx;
    min_max32(x, &mn, &mx);
    const float d = (mx - mn) / static_cast<float>(kMaxQ);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const float32x4_t vmn = vdupq_n_f32(mn), vid = vdupq_n_f32(id);
    const uint8x16_t vmax = vdupq_n_u8(kMaxQ);
    *q0 = quantize_asym16(x, vmn, vid, vmax);
    *q1 = quantize_asym16(x + 16, vmn, vid, vmax);
    *d_out = d;
    *m_out = mn;
}

void quantize_q4_0(const float* x, uint8_t* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += QK, y += sizeof(block_q4_0)) {
        uint8x16_t q0, q1;
        float d;
        quantize_sym_block<4>(x, &q0, &q1, &d);
        store_u16(y, fp32_to_fp16(d));
        vst1q_u8(y + 2, pack_nibbles(q0, q1));
    }
}
void quantize_q4_1(const float* x, uint8_t* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += QK, y += sizeof(block_q4_1)) {
        uint8x16_t q0, q1;
        float d, m;
        quantize_asym_block<4>(x, &q0, &q1, &d, &m);
        store_u16(y, fp32_to_fp16(d));
        store_u16(y + 2, fp32_to_fp16(m));
        vst1q_u8(y + 4, pack_nibbles(q0, q1));
    }
}
void quantize_q5_0(const float* x, uint8_t* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += QK, y += sizeof(block_q5_0)) {
        uint8x16_t q0, q1;
        float d;
        quantize_sym_block<5>(x, &q0, &q1, &d);
        store_u16(y, fp32_to_fp16(d));
        const uint32_t qh = pack_high_bits(q0, q1);
        std::memcpy(y + 2, &qh, 4);
        vst1q_u8(y + 6, pack_nibbles(q0, q1));
    }
}
void quantize_q5_1(const float* x, uint8_t* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += QK, y += sizeof(block_q5_1)) {
        uint8x16_t q0, q1;
        float d, m;
        quantize_asym_block<5>(x, &q0, &q1, &d, &m);
        store_u16(y, fp32_to_fp16(d));
        store_u16(y + 2, fp32_to_fp16(m));
        const uint32_t qh = pack_high_bits(q0, q1);
        std::memcpy(y + 4, &qh, 4);
        vst1q_u8(y + 8, pack_nibbles(q0, q1));
    }
}

// ---- 32-block dequantizers: x = d * (q - offset)  or  x = d * q + m ----
void dequantize_q4_0(const uint8_t* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += sizeof(block_q4_0), y += QK) {
        const float32x4_t vd = vdupq_n_f32(fp16_to_fp32(load_u16(x)));
        const uint8x16_t qs = vld1q_u8(x + 2);
        const int8x16_t eight = vdupq_n_s8(8);
        store_d_mul_q(y, vd, vsubq_s8(vreinterpretq_s8_u8(vandq_u8(qs, vdupq_n_u8(0x0F))), eight));
        store_d_mul_q(y + 16, vd, vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(qs, 4)), eight));
    }
}
void dequantize_q4_1(const uint8_t* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += sizeof(block_q4_1), y += QK) {
        const float32x4_t vd = vdupq_n_f32(fp16_to_fp32(load_u16(x)));
        const float32x4_t vm = vdupq_n_f32(fp16_to_fp32(load_u16(x + 2)));
        const uint8x16_t qs = vld1q_u8(x + 4);
        store_d_mul_q_add_m(y, vd, vm, vandq_u8(qs, vdupq_n_u8(0x0F)));
        store_d_mul_q_add_m(y + 16, vd, vm, vshrq_n_u8(qs, 4));
    }
}
void dequantize_q5_0(const uint8_t* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += sizeof(block_q5_0), y += QK) {
        const float32x4_t vd = vdupq_n_f32(fp16_to_fp32(load_u16(x)));
        const uint8x16_t qs = vld1q_u8(x + 6);
        const uint8x16_t lo = vorrq_u8(vandq_u8(qs, vdupq_n_u8(0x0F)), high_bits16(x + 2));
        const uint8x16_t hi = vorrq_u8(vshrq_n_u8(qs, 4), high_bits16(x + 4));
        const int8x16_t sixteen = vdupq_n_s8(16);
        store_d_mul_q(y, vd, vsubq_s8(vreinterpretq_s8_u8(lo), sixteen));
        store_d_mul_q(y + 16, vd, vsubq_s8(vreinterpretq_s8_u8(hi), sixteen));
    }
}
void dequantize_q5_1(const uint8_t* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += sizeof(block_q5_1), y += QK) {
        const float32x4_t vd = vdupq_n_f32(fp16_to_fp32(load_u16(x)));
        const float32x4_t vm = vdupq_n_f32(fp16_to_fp32(load_u16(x + 2)));
        const uint8x16_t qs = vld1q_u8(x + 8);
        const uint8x16_t lo = vorrq_u8(vandq_u8(qs, vdupq_n_u8(0x0F)), high_bits16(x + 4));
        const uint8x16_t hi = vorrq_u8(vshrq_n_u8(qs, 4), high_bits16(x + 6));
        store_d_mul_q_add_m(y, vd, vm, lo);
        store_d_mul_q_add_m(y + 16, vd, vm, hi);
    }
}

// ---- K-quant dequantizers ----
// Q4_K / Q5_K: x = (d * sc_j) * q - (dmin * m_j); the two products are scalar float32, as in
// the twin, then broadcast.
void dequantize_q4_k(const uint8_t* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; ++b, x += sizeof(block_q4_K), y += QK_K) {
        const float d = fp16_to_fp32(load_u16(x)), dmin = fp16_to_fp32(load_u16(x + 2));
        const uint8_t* scales = x + 4;
        const uint8_t* qs = x + 16;
        for (int j = 0; j < QK_K / 32; ++j) {
            uint8_t sc, m;
            get_scale_min_k4(j, scales, &sc, &m);
            const float32x4_t vdl = vdupq_n_f32(d * sc), vml = vdupq_n_f32(dmin * m);
            const uint8_t* q = qs + 32 * (j / 2);
            for (int h = 0; h < 2; ++h) {
                const uint8x16_t v = vld1q_u8(q + 16 * h);
                const uint8x16_t nib = (j % 2) ? vshrq_n_u8(v, 4) : vandq_u8(v, vdupq_n_u8(0x0F));
                store_dl_mul_q_sub_ml(y + 32 * j + 16 * h, vdl, vml, nib);
            }
        }
    }
}
void dequantize_q5_k(const uint8_t* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; ++b, x += sizeof(block_q5_K), y += QK_K) {
        const float d = fp16_to_fp32(load_u16(x)), dmin = fp16_to_fp32(load_u16(x + 2));
        const uint8_t* scales = x + 4;
        const uint8_t* qh = x + 16;
        const uint8_t* qs = x + 48;
        const uint8x16_t qh0 = vld1q_u8(qh), qh1 = vld1q_u8(qh + 16);
        for (int j = 0; j < QK_K / 32; ++j) {
            uint8_t sc, m;
            get_scale_min_k4(j, scales, &sc, &m);
            const float32x4_t vdl = vdupq_n_f32(d * sc), vml = vdupq_n_f32(dmin * m);
            const uint8_t* q = qs + 32 * (j / 2);
            const uint8x16_t bit = vdupq_n_u8(static_cast<uint8_t>(1u << j));
            for (int h = 0; h < 2; ++h) {
                const uint8x16_t v = vld1q_u8(q + 16 * h);
                const uint8x16_t nib = (j % 2) ? vshrq_n_u8(v, 4) : vandq_u8(v, vdupq_n_u8(0x0F));
                const uint8x16_t hb = vandq_u8(vtstq_u8(h ? qh1 : qh0, bit), vdupq_n_u8(0x10));
                store_dl_mul_q_sub_ml(y + 32 * j + 16 * h, vdl, vml, vorrq_u8(nib, hb));
            }
        }
    }
}
// Q6_K: x = (d * scale_s) * (q - 32); for half a, group t, lanes l: low 4 bits from
// ql[64a + 32*(t%2) + l] (nibble t/2), top 2 from qh[32a + l] bits 2t..2t+1.
void dequantize_q6_k(const uint8_t* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; ++b, x += sizeof(block_q6_K), y += QK_K) {
        const uint8_t* ql = x;
        const uint8_t* qh = x + 128;
        const int8_t* sc = reinterpret_cast<const int8_t*>(x + 192);
        const float d = fp16_to_fp32(load_u16(x + 208));
        for (int a = 0; a < 2; ++a)
            for (int h = 0; h < 2; ++h) {  // lanes l = 16h .. 16h+15
                const uint8x16_t l0 = vld1q_u8(ql + 64 * a + 16 * h);
                const uint8x16_t l1 = vld1q_u8(ql + 64 * a + 32 + 16 * h);
                const uint8x16_t hv = vld1q_u8(qh + 32 * a + 16 * h);
                const uint8x16_t lo[4] = {vandq_u8(l0, vdupq_n_u8(0x0F)), vandq_u8(l1, vdupq_n_u8(0x0F)),
                                          vshrq_n_u8(l0, 4), vshrq_n_u8(l1, 4)};
                const uint8x16_t hi[4] = {vshlq_n_u8(hv, 4), vshlq_n_u8(hv, 2), hv, vshrq_n_u8(hv, 2)};
                for (int t = 0; t < 4; ++t) {
                    const uint8x16_t q6 = vorrq_u8(lo[t], vandq_u8(hi[t], vdupq_n_u8(0x30)));
                    const int8x16_t q = vsubq_s8(vreinterpretq_s8_u8(q6), vdupq_n_s8(32));
                    const int e = 128 * a + 32 * t + 16 * h;
                    store_d_mul_q(y + e, vdupq_n_f32(d * static_cast<float>(sc[e / 16])), q);
                }
            }
    }
}

}  // namespace

extern constexpr KernelList kernels_quant_neon{Isa::neon, kQuantRowEntries.data(), kQuantRowEntries.size()};

}  // namespace slmk
