// ---- attention chunk kernels: NEON (aarch64 baseline, 4 floats per vector) ----
// The kernel body is attention_simd.h; this file supplies the vector operations.
#include <arm_neon.h>
#include <cstring>

#include "attention/attention_simd.h"
#include "core/fp16.h"
#include "core/math_neon.h"
#include "quant/formats.h"

namespace slmk {

namespace {

struct Neon {
    static constexpr int width = 4;
    static constexpr int pv_rows = 4, pv_vecs = 4;  // value accumulation: 4 rows x 4 vectors in registers
    static constexpr int score_rows = 4;
    using vec = float32x4_t;
    static vec zero() { return vdupq_n_f32(0.0f); }
    static vec load(const float* p) { return vld1q_f32(p); }
    static void prefetch(const void* p) { __builtin_prefetch(p, 0, 3); }  // into L1, for reading
    static void store(float* p, vec x) { vst1q_f32(p, x); }
    static vec set1(float f) { return vdupq_n_f32(f); }
    static vec add(vec a, vec b) { return vaddq_f32(a, b); }
    static vec sub(vec a, vec b) { return vsubq_f32(a, b); }
    static vec mul(vec a, vec b) { return vmulq_f32(a, b); }
    static vec fma(vec a, vec b, vec c) { return vfmaq_f32(c, a, b); }
    static vec max(vec a, vec b) { return vmaxq_f32(a, b); }
    static float hsum(vec x) { return vaddvq_f32(x); }
    static float hmax(vec x) { return vmaxvq_f32(x); }
    // Lane i of the result = the sum of x[i]'s 4 lanes: (e0+e1)+(e2+e3) by two pairwise adds.
    static vec reduce_lanes(const vec* x) { return vpaddq_f32(vpaddq_f32(x[0], x[1]), vpaddq_f32(x[2], x[3])); }
    static vec exp(vec x) { return neon::exp_or_zero(x); }  // core/math_neon.h
    static void widen_store(int8x16_t q, float d, float* dst) {
        const float32x4_t vd = vdupq_n_f32(d);
        const int16x8_t lo = vmovl_s8(vget_low_s8(q)), hi = vmovl_s8(vget_high_s8(q));
        vst1q_f32(dst + 0, vmulq_f32(vd, vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo)))));
        vst1q_f32(dst + 4, vmulq_f32(vd, vcvtq_f32_s32(vmovl_s16(vget_high_s16(lo)))));
        vst1q_f32(dst + 8, vmulq_f32(vd, vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi)))));
        vst1q_f32(dst + 12, vmulq_f32(vd, vcvtq_f32_s32(vmovl_s16(vget_high_s16(hi)))));
    }
    // The 4 floats at d of one cached row (d + 4 <= dp), exactly as k_row writes them; sc is
    // the scale of the block holding d (quantized formats; f16_column converted it).
    template <Format F>
    static vec k_vec(const uint8_t* row, int64_t d, float sc) {
        if (F == Format::F32) return vld1q_f32(reinterpret_cast<const float*>(row) + d);
        if (F == Format::F16) return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const uint16_t*>(row + 2 * d))));
        uint32_t four;  // the 4 bytes holding elements d .. d+3 (never a read past the block)
        int32x4_t qi;
        if (F == Format::Q8_0) {
            const uint8_t* blk = row + (d / QK) * sizeof(block_q8_0);
            std::memcpy(&four, blk + 2 + d % QK, 4);
            qi = vmovl_s16(vget_low_s16(vmovl_s8(vreinterpret_s8_u32(vdup_n_u32(four)))));
        } else {  // Q4_0
            const uint8_t* blk = row + (d / QK) * sizeof(block_q4_0);
            std::memcpy(&four, blk + 2 + d % 16, 4);
            uint8x8_t raw = vreinterpret_u8_u32(vdup_n_u32(four));
            raw = d % QK >= 16 ? vshr_n_u8(raw, 4) : vand_u8(raw, vdup_n_u8(0x0F));
            const int8x8_t q = vsub_s8(vreinterpret_s8_u8(raw), vdup_n_s8(8));
            qi = vmovl_s16(vget_low_s16(vmovl_s8(q)));
        }
        return vmulq_f32(vdupq_n_f32(sc), vcvtq_f32_s32(qi));
    }
    // dst[i] = the f16 at p + i * stride as a float, i < n.
    static void f16_column(const uint8_t* p, int64_t stride, int64_t n, float* dst) {
        for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(load_u16(p + i * stride));
    }
    template <Format F>
    static void k_row(const uint8_t* row, float* dst, int64_t dp) {
        if (F == Format::F16) {
            int64_t i = 0;
            for (; i + 4 <= dp; i += 4)
                vst1q_f32(dst + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const uint16_t*>(row + 2 * i)))));
            for (; i < dp; ++i) dst[i] = fp16_to_fp32(load_u16(row + 2 * i));
        } else if (F == Format::Q8_0) {
            for (int64_t b = 0; b < dp / QK; ++b, row += sizeof(block_q8_0), dst += QK) {
                const float d = fp16_to_fp32(load_u16(row));
                widen_store(vld1q_s8(reinterpret_cast<const int8_t*>(row + 2)), d, dst);
                widen_store(vld1q_s8(reinterpret_cast<const int8_t*>(row + 18)), d, dst + 16);
            }
        } else {  // Q4_0
            for (int64_t b = 0; b < dp / QK; ++b, row += sizeof(block_q4_0), dst += QK) {
                const float d = fp16_to_fp32(load_u16(row));
                const uint8x16_t raw = vld1q_u8(row + 2);
                const int8x16_t eight = vdupq_n_s8(8);
                const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(raw, vdupq_n_u8(0x0F))), eight);
                const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(raw, 4)), eight);
                widen_store(lo, d, dst);
                widen_store(hi, d, dst + 16);
            }
        }
    }
};

}  // namespace

extern constexpr KernelList kernels_attention_neon{Isa::neon, attn_simd::chunk_entries<Neon>.data(),
                                            attn_simd::chunk_entries<Neon>.size()};

}  // namespace slmk
