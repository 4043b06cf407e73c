// ---- GEMM micro-kernels, baseline NEON (armv8-a) ----
// act_quant_32 / act_quant_256 (quantize_act_block of gemm_ref.cpp, vectorized), the float
// tiles (F32 / F16 / BF16: the spec is fused there), and the quantized tiles of
// gemm_neon_tiles.h with a widening 4-byte dot (no sdot on plain armv8-a). Bit-exact with
// gemm_ref.cpp.
#include <cfloat>
#include <cmath>

#include "gemm_neon_tiles.h"

namespace slmk {

namespace {

// ---- activation quantization ----
// d = amax/127 (real division), id = 1/d (non-finite -> 0), q = RNE(x * id) (vcvtnq is RNE),
// a block with NaN/Inf -> d = NaN, q = 0. n is 32 or 256.
inline void act_block(const float* x, int n, int8_t* q, float* d_out) {
    float32x4_t amax = vdupq_n_f32(0.0f);
    uint32x4_t finite = vdupq_n_u32(~0u);
    const float32x4_t big = vdupq_n_f32(FLT_MAX);
    for (int j = 0; j < n; j += 4) {
        const float32x4_t a = vabsq_f32(vld1q_f32(x + j));
        finite = vandq_u32(finite, vcleq_f32(a, big));  // false for NaN and Inf
        amax = vmaxq_f32(amax, a);
    }
    if (vminvq_u32(finite) == 0) {
        std::memset(q, 0, n);
        *d_out = NAN;
        return;
    }
    const float d = vmaxvq_f32(amax) / 127.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    if (!std::isfinite(id)) id = 0.0f;
    const float32x4_t vid = vdupq_n_f32(id);
    for (int j = 0; j < n; j += 16) {
        int32x4_t v[4];
        for (int u = 0; u < 4; ++u) v[u] = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(x + j + 4 * u), vid));
        const int16x8_t lo = vcombine_s16(vmovn_s32(v[0]), vmovn_s32(v[1]));
        const int16x8_t hi = vcombine_s16(vmovn_s32(v[2]), vmovn_s32(v[3]));
        vst1q_s8(q + j, vcombine_s8(vmovn_s16(lo), vmovn_s16(hi)));
    }
    *d_out = d;
}

void act_quant_32_neon(const float* x, int64_t k, int8_t* q, float* d, int32_t* sum) {
    for (int64_t b = 0; b < k / 32; ++b) {
        int8_t* qb = q + 32 * b;
        act_block(x + 32 * b, 32, qb, d + b);
        sum[b] = static_cast<int32_t>(vaddlvq_s8(vld1q_s8(qb))) + static_cast<int32_t>(vaddlvq_s8(vld1q_s8(qb + 16)));
    }
}

void act_quant_256_neon(const float* x, int64_t k, int8_t* q, float* d, int32_t* sum) {
    for (int64_t b = 0; b < k / 256; ++b) act_block(x + 256 * b, 256, q + 256 * b, d + b);
    for (int64_t g = 0; g < k / 16; ++g) sum[g] = vaddlvq_s8(vld1q_s8(q + 16 * g));
}

// ---- float weights: per output four partial sums over k = p (mod 4) with fused multiply-add,
//      then (s0 + s1) + (s2 + s3), exactly as tile_float_scalar. One row quarter at a time:
//      4 accumulators per (quarter, activation row). ----
template <Format F>
inline float32x4_t ft_load(const uint8_t* p) {  // 4 weights of one k, rows 4qq..4qq+3 (p already offset)
    if constexpr (F == Format::F32) return vreinterpretq_f32_u8(vld1q_u8(p));
    else if constexpr (F == Format::F16) return vcvt_f32_f16(vreinterpret_f16_u8(vld1_u8(p)));
    else return vreinterpretq_f32_u32(vshll_n_u16(vreinterpret_u16_u8(vld1_u8(p)), 16));
}

template <Format F, int MR>
void ft_tile_mr(const uint8_t* group, int64_t k, const ActRows& a, int64_t m0, float* out, int64_t ldo, int nvalid) {
    constexpr int64_t tb = packed_tile_bytes(F);
    constexpr int qb = F == Format::F32 ? 16 : 8;  // bytes of one row quarter
    const float* x[MR];
    for (int i = 0; i < MR; ++i) x[i] = a.xf + (m0 + i) * a.xf_stride;
    float32x4_t res[MR][4];
    for (int qq = 0; qq < 4; ++qq) {
        float32x4_t s[MR][4];
        for (int i = 0; i < MR; ++i)
            for (int j = 0; j < 4; ++j) s[i][j] = vdupq_n_f32(0.0f);
        const uint8_t* t = group + qq * qb;
        int64_t kk = 0;
        for (; kk + 4 <= k; kk += 4, t += 4 * tb) {
            float32x4_t xv[MR];
            for (int i = 0; i < MR; ++i) xv[i] = vld1q_f32(x[i] + kk);
            const float32x4_t w0 = ft_load<F>(t), w1 = ft_load<F>(t + tb), w2 = ft_load<F>(t + 2 * tb),
                              w3 = ft_load<F>(t + 3 * tb);
            for (int i = 0; i < MR; ++i) {
                s[i][0] = vfmaq_laneq_f32(s[i][0], w0, xv[i], 0);
                s[i][1] = vfmaq_laneq_f32(s[i][1], w1, xv[i], 1);
                s[i][2] = vfmaq_laneq_f32(s[i][2], w2, xv[i], 2);
                s[i][3] = vfmaq_laneq_f32(s[i][3], w3, xv[i], 3);
            }
        }
        for (int j = 0; kk < k; ++kk, ++j, t += tb) {  // tail: kk % 4 == j
            const float32x4_t w = ft_load<F>(t);
            for (int i = 0; i < MR; ++i) s[i][j] = vfmaq_f32(s[i][j], w, vdupq_n_f32(x[i][kk]));
        }
        for (int i = 0; i < MR; ++i) res[i][qq] = vaddq_f32(vaddq_f32(s[i][0], s[i][1]), vaddq_f32(s[i][2], s[i][3]));
    }
    for (int i = 0; i < MR; ++i) nt_store16(out + i * ldo, res[i], nvalid);
}

template <Format F>
void ft_tile(const uint8_t* group, int64_t k, const ActRows& a, int64_t m0, int mr, float* out, int64_t ldo,
             int nvalid) {
    for (int i0 = 0; i0 < mr; i0 += 4) {
        const int n = mr - i0 < 4 ? mr - i0 : 4;
        float* o = out + i0 * ldo;
        switch (n) {
            case 1: ft_tile_mr<F, 1>(group, k, a, m0 + i0, o, ldo, nvalid); break;
            case 2: ft_tile_mr<F, 2>(group, k, a, m0 + i0, o, ldo, nvalid); break;
            case 3: ft_tile_mr<F, 3>(group, k, a, m0 + i0, o, ldo, nvalid); break;
            default: ft_tile_mr<F, 4>(group, k, a, m0 + i0, o, ldo, nvalid); break;
        }
    }
}

// ---- the 4-byte dot without sdot: widen to int16 products, pairwise add, accumulate pairs.
// |w|, |x| <= 128, 127 so a pair of products is at most 32512: no int16 overflow. ----
struct DotMull {
    static inline int32x4_t dot(int32x4_t acc, int8x16_t w, int8x16_t x) {
        const int16x8_t p0 = vmull_s8(vget_low_s8(w), vget_low_s8(x));
        const int16x8_t p1 = vmull_high_s8(w, x);
        return vpadalq_s16(acc, vpaddq_s16(p0, p1));  // lane r: 4 products of row r
    }
};

constexpr auto kEntries = join(
    std::array<KernelEntry, 5>{
        entry<Op::act_quant, act_quant_32_neon>(Format::Q8_0),
        entry<Op::act_quant, act_quant_256_neon>(Format::Q8_K),
        entry<Op::gemm, ft_tile<Format::F32>>(Format::F32, {kGroupRows, kMaxMR}),
        entry<Op::gemm, ft_tile<Format::F16>>(Format::F16, {kGroupRows, kMaxMR}),
        entry<Op::gemm, ft_tile<Format::BF16>>(Format::BF16, {kGroupRows, kMaxMR}),
    },
    nt_int_tile_entries<DotMull>);

}  // namespace

extern constexpr KernelList kernels_gemm_neon{Isa::neon, kEntries.data(), kEntries.size()};

}  // namespace slmk
