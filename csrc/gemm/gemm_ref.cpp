// ---- scalar GEMM: the spec every SIMD micro-kernel reproduces bit for bit ----
// Reads the packed tiles of gemm.h element by element. Per output (activation row i, weight
// row r), blocks are visited in order, each block's integer dot product is exact, and the float
// accumulation is the fixed sequence written out below (float32, no fused multiply-add).
#include <cmath>
#include <cstring>

#include "../core/fp16.h"
#include "gemm.h"

namespace slmk {

namespace {

// ---- activation quantization ----
// d = amax/127, q = round-to-nearest-even(x * (1/d)) so |q| <= 127. A block holding NaN or Inf
// gets d = NaN and q = 0: the NaN reaches every output of that row, as it would in numpy.
void quantize_act_block(const float* x, int n, int8_t* q, float* d_out) {
    float amax = 0.0f;
    bool finite = true;
    for (int j = 0; j < n; ++j) {
        finite &= std::isfinite(x[j]);
        amax = std::fmax(amax, std::fabs(x[j]));
    }
    if (!finite) {
        std::memset(q, 0, n);
        *d_out = NAN;
        return;
    }
    const float d = amax / 127.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    if (!std::isfinite(id)) id = 0.0f;  // subnormal d: 1/d overflows; such a block quantizes to 0
    for (int j = 0; j < n; ++j) q[j] = static_cast<int8_t>(std::nearbyint(x[j] * id));
    *d_out = d;
}

void act_quant_32_scalar(const float* x, int64_t k, int8_t* q, float* d, int32_t* sum) {
    for (int64_t b = 0; b < k / 32; ++b) {
        quantize_act_block(x + 32 * b, 32, q + 32 * b, d + b);
        int32_t s = 0;
        for (int j = 0; j < 32; ++j) s += q[32 * b + j];
        sum[b] = s;
    }
}

void act_quant_256_scalar(const float* x, int64_t k, int8_t* q, float* d, int32_t* sum) {
    for (int64_t b = 0; b < k / 256; ++b) quantize_act_block(x + 256 * b, 256, q + 256 * b, d + b);
    for (int64_t g = 0; g < k / 16; ++g) {
        int32_t s = 0;
        for (int j = 0; j < 16; ++j) s += q[16 * g + j];
        sum[g] = s;
    }
}

// ---- reading one element of a packed tile ----
inline float tile_f16(const uint8_t* t, int off, int r) { return fp16_to_fp32(load_u16(t + off + 2 * r)); }
inline uint8_t quad_byte(const uint8_t* q, int j, int r) { return q[((j / 4) * kGroupRows + r) * 4 + j % 4]; }

// 4-bit quant of element e (0..31) of row r in a Q4_0-style nibble run.
inline int nib32(const uint8_t* q, int e, int r) {
    return e < 16 ? quad_byte(q, e, r) & 0x0F : quad_byte(q, e - 16, r) >> 4;
}
// bit 4 of element e (0..31) from a Q5 hb run
inline int hbit32(const uint8_t* hb, int e, int r) {
    const int c = (e % 16) / 4, i = e % 4;
    return (hb[c * kGroupRows + r] >> (i + (e < 16 ? 0 : 4))) & 1;
}

// ---- the 32-block formats ----
// Q4_0 / Q5_0 / Q8_0:  acc = acc + (dw * dx) * float(sum_k qw*qx - offset * sum_k qx)
// Q4_1 / Q5_1:         acc = acc + (dw * dx) * float(sum_k qw*qx);  acc = acc + (mw * dx) * float(sum_k qx)
template <Format F>
void tile_32_scalar(const uint8_t* group, int64_t nblocks, const ActRows& a, int64_t m0, int mr, float* out,
                    int64_t ldo, int nvalid) {
    constexpr TileLayout L = tile_layout(F);
    for (int i = 0; i < mr; ++i) {
        const int8_t* xq = a.q + (m0 + i) * a.q_stride;
        const float* xd = a.d + (m0 + i) * a.d_stride;
        const int32_t* xs = a.sum + (m0 + i) * a.sum_stride;
        for (int r = 0; r < nvalid; ++r) {
            float acc = 0.0f;
            for (int64_t b = 0; b < nblocks; ++b) {
                const uint8_t* t = group + b * L.bytes;
                const int8_t* x = xq + 32 * b;
                int32_t dot = 0;
                float dw = tile_f16(t, L.d, r), mw = 0.0f;
                int offset = 0;
                if constexpr (F == Format::Q8_0) {
                    for (int e = 0; e < 32; ++e) dot += static_cast<int8_t>(quad_byte(t + L.q, e, r)) * x[e];
                } else if constexpr (F == Format::Q4_0 || F == Format::Q4_1) {
                    for (int e = 0; e < 32; ++e) dot += nib32(t + L.q, e, r) * x[e];
                    offset = 8;
                } else {  // Q5_0, Q5_1
                    for (int e = 0; e < 32; ++e) dot += (nib32(t + L.q, e, r) | (hbit32(t + L.hb, e, r) << 4)) * x[e];
                    offset = 16;
                }
                if constexpr (F == Format::Q4_1 || F == Format::Q5_1) {
                    mw = tile_f16(t, L.m, r);
                    acc = acc + (dw * xd[b]) * static_cast<float>(dot);
                    acc = acc + (mw * xd[b]) * static_cast<float>(xs[b]);
                } else {
                    acc = acc + (dw * xd[b]) * static_cast<float>(dot - offset * xs[b]);
                }
            }
            out[i * ldo + r] = acc;
        }
    }
}

// ---- the K-quants (super-blocks of 256, activations with per-16 sums) ----
// Q4_K / Q5_K: isum = sum_j sc_j * (sum_l q*x) ; msum = sum_j m_j * (bsum_2j + bsum_2j+1)
//              acc = acc + (d * dx) * float(isum);  acc = acc - (dmin * dx) * float(msum)
// Q6_K:        isum = sum_s sc_s * (sum_l q*x - 32 * bsum_s);  acc = acc + (d * dx) * float(isum)
template <Format F>
void tile_k_scalar(const uint8_t* group, int64_t nblocks, const ActRows& a, int64_t m0, int mr, float* out,
                   int64_t ldo, int nvalid) {
    constexpr TileLayout L = tile_layout(F);
    for (int i = 0; i < mr; ++i) {
        const int8_t* xq = a.q + (m0 + i) * a.q_stride;
        const float* xd = a.d + (m0 + i) * a.d_stride;
        const int32_t* xs = a.sum + (m0 + i) * a.sum_stride;
        for (int r = 0; r < nvalid; ++r) {
            float acc = 0.0f;
            for (int64_t b = 0; b < nblocks; ++b) {
                const uint8_t* t = group + b * L.bytes;
                const int8_t* x = xq + 256 * b;
                const int32_t* bs = xs + 16 * b;
                const float d = tile_f16(t, L.d, r);
                if constexpr (F == Format::Q6_K) {
                    const int8_t* sc = reinterpret_cast<const int8_t*>(t + L.sc);
                    const uint8_t* ql = t + L.q;
                    const uint8_t* qh = t + L.qh;
                    int32_t isum = 0;
                    for (int s = 0; s < 16; ++s) {
                        int32_t dot = 0;
                        for (int l = 0; l < 16; ++l) {
                            const int e = 16 * s + l, ah = e / 128, e2 = e % 128;
                            const int lo = (quad_byte(ql + ah * L.q_step, e2 % 64, r) >> (4 * (e2 / 64))) & 0x0F;
                            const int hi = (quad_byte(qh + ah * L.qh_step, e2 % 32, r) >> (2 * (e2 / 32))) & 3;
                            dot += (lo | (hi << 4)) * x[e];
                        }
                        isum += sc[s * kGroupRows + r] * (dot - 32 * bs[s]);
                    }
                    acc = acc + (d * xd[b]) * static_cast<float>(isum);
                } else {
                    const float dmin = tile_f16(t, L.m, r);
                    const uint8_t* sc = t + L.sc;
                    const uint8_t* mn = t + L.mn;
                    const uint8_t* hb = F == Format::Q5_K ? t + L.hb : nullptr;
                    const uint8_t* q = t + L.q;
                    int32_t isum = 0, msum = 0;
                    for (int j = 0; j < 8; ++j) {
                        int32_t dot = 0;
                        for (int l = 0; l < 32; ++l) {
                            int v = (quad_byte(q + (j / 2) * L.q_step, l, r) >> (4 * (j % 2))) & 0x0F;
                            if constexpr (F == Format::Q5_K)
                                v |= ((hb[(j / 2) * L.hb_step + (l / 4) * kGroupRows + r] >> (4 * (j % 2) + l % 4)) & 1) << 4;
                            dot += v * x[32 * j + l];
                        }
                        isum += sc[j * kGroupRows + r] * dot;
                        msum += mn[j * kGroupRows + r] * (bs[2 * j] + bs[2 * j + 1]);
                    }
                    acc = acc + (d * xd[b]) * static_cast<float>(isum);
                    acc = acc - (dmin * xd[b]) * static_cast<float>(msum);
                }
            }
            out[i * ldo + r] = acc;
        }
    }
}

// ---- float weights: four partial sums over k = p (mod 4), fused multiply-add, then
//      (s0 + s1) + (s2 + s3). std::fma is exact-rounded on every ISA, like vfmadd/vfma. ----
template <Format F>
void tile_float_scalar(const uint8_t* group, int64_t k, const ActRows& a, int64_t m0, int mr, float* out,
                       int64_t ldo, int nvalid) {
    const int64_t tb = packed_tile_bytes(F);
    for (int i = 0; i < mr; ++i) {
        const float* x = a.xf + (m0 + i) * a.xf_stride;
        for (int r = 0; r < nvalid; ++r) {
            float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            for (int64_t kk = 0; kk < k; ++kk) {
                const uint8_t* t = group + kk * tb;
                float w;
                if constexpr (F == Format::F32) std::memcpy(&w, t + 4 * r, 4);
                else if constexpr (F == Format::F16) w = fp16_to_fp32(load_u16(t + 2 * r));
                else w = bf16_to_fp32(load_u16(t + 2 * r));
                s[kk % 4] = std::fma(w, x[kk], s[kk % 4]);
            }
            out[i * ldo + r] = (s[0] + s[1]) + (s[2] + s[3]);
        }
    }
}

// Tiles take any mr; the driver hands them up to 4 activation rows (kMaxMR), as every ISA's.
constexpr Tile k16x4{kGroupRows, kMaxMR};
constexpr std::array<KernelEntry, 13> kEntries = {
    entry<Op::act_quant, act_quant_32_scalar>(Format::Q8_0),
    entry<Op::act_quant, act_quant_256_scalar>(Format::Q8_K),
    entry<Op::gemm, tile_32_scalar<Format::Q8_0>>(Format::Q8_0, k16x4),
    entry<Op::gemm, tile_32_scalar<Format::Q4_0>>(Format::Q4_0, k16x4),
    entry<Op::gemm, tile_32_scalar<Format::Q4_1>>(Format::Q4_1, k16x4),
    entry<Op::gemm, tile_32_scalar<Format::Q5_0>>(Format::Q5_0, k16x4),
    entry<Op::gemm, tile_32_scalar<Format::Q5_1>>(Format::Q5_1, k16x4),
    entry<Op::gemm, tile_k_scalar<Format::Q4_K>>(Format::Q4_K, k16x4),
    entry<Op::gemm, tile_k_scalar<Format::Q5_K>>(Format::Q5_K, k16x4),
    entry<Op::gemm, tile_k_scalar<Format::Q6_K>>(Format::Q6_K, k16x4),
    entry<Op::gemm, tile_float_scalar<Format::F32>>(Format::F32, k16x4),
    entry<Op::gemm, tile_float_scalar<Format::F16>>(Format::F16, k16x4),
    entry<Op::gemm, tile_float_scalar<Format::BF16>>(Format::BF16, k16x4),
};

}  // namespace

extern constexpr KernelList kernels_gemm_scalar{Isa::scalar, kEntries.data(), kEntries.size()};

}  // namespace slmk
