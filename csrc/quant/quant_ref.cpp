// ---- scalar reference quantizers and dequantizers: the spec every SIMD path must equal ----
// Formats and formulas: ggml's ggml-quants.c and gguf-py's quants.py (the oracle in the
// tests). The 32-block quantizers reproduce gguf-py's numpy code operation for operation in
// float32 (no fused multiply-add: the build uses -ffp-contract=off), so their bytes match.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "../core/fp16.h"
#include "quant_common.h"
#include "quant_kquant.h"
#include "quant_rows.h"

namespace slmk {

namespace {

// ---- float formats ----
void quantize_f32(const float* x, uint8_t* y, int64_t n) { std::memcpy(y, x, n * 4); }
void dequantize_f32(const uint8_t* x, float* y, int64_t n) { std::memcpy(y, x, n * 4); }
void quantize_f16(const float* x, uint8_t* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) store_u16(y + 2 * i, fp32_to_fp16(x[i]));
}
void dequantize_f16(const uint8_t* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = fp16_to_fp32(load_u16(x + 2 * i));
}
void quantize_bf16(const float* x, uint8_t* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) store_u16(y + 2 * i, fp32_to_bf16(x[i]));
}
void dequantize_bf16(const uint8_t* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_fp32(load_u16(x + 2 * i));
}

// ---- Q8_0: d = amax/127, q = round(x/d) ----
void quantize_q8_0(const float* x, uint8_t* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += QK, y += sizeof(block_q8_0)) {
        float amax = 0.0f;
        for (int j = 0; j < QK; ++j) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_u16(y, fp32_to_fp16(d));
        for (int j = 0; j < QK; ++j)
            y[2 + j] = static_cast<uint8_t>(trunc_to_i32(round_half_away(x[j] * id)));
    }
}
void dequantize_q8_0(const uint8_t* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += sizeof(block_q8_0), y += QK) {
        const float d = fp16_to_fp32(load_u16(x));
        for (int j = 0; j < QK; ++j) y[j] = static_cast<float>(static_cast<int8_t>(x[2 + j])) * d;
    }
}

// The value of largest magnitude, the first one on ties (numpy argmax of abs).
float signed_absmax(const float* x, int n) {
    float amax = std::fabs(x[0]), max = x[0];  // x[0] when all are zero: -0.0 stays -0.0
    for (int j = 1; j < n; ++j)
        if (std::fabs(x[j]) > amax) {
            amax = std::fabs(x[j]);
            max = x[j];
        }
    return max;
}

// Symmetric 2^bits-level blocks (Q4_0, Q5_0): d = max / -2^(bits-1), q = trunc(x/d + 2^(bits-1) + 0.5).
template <int kBits>
void quantize_sym_block(const float* x, uint8_t q[QK], float* d_out) {
    constexpr int kHalf = 1 << (kBits - 1);
    const float d = signed_absmax(x, QK) / static_cast<float>(-kHalf);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < QK; ++j)
        q[j] = clamp_u8_max(trunc_to_i32(std::trunc(x[j] * id + (kHalf + 0.5f))), 2 * kHalf - 1);
    *d_out = d;
}

// Asymmetric blocks (Q4_1, Q5_1): d = (max - min) / (2^bits - 1), q = trunc((x - min)/d + 0.5).
template <int kBits>
void quantize_asym_block(const float* x, uint8_t q[QK], float* d_out, float* m_out) {
    constexpr int kMaxQ = (1 << kBits) - 1;
    float mn = x[0], mx = x[0];
    for (int j = 1; j < QK; ++j) {
        mn = std::min(mn, x[j]);
        mx = std::max(mx, x[j]);
    }
    const float d = (mx - mn) / static_cast<float>(kMaxQ);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < QK; ++j) q[j] = clamp_u8_max(trunc_to_i32(std::trunc((x[j] - mn) * id + 0.5f)), kMaxQ);
    *d_out = d;
    *m_out = mn;
}

// Nibble packing shared by the 32-blocks: element j in the low nibble of byte j, j+16 in the high.
void pack_nibbles(const uint8_t q[QK], uint8_t* qs) {
    for (int j = 0; j < QK / 2; ++j) qs[j] = (q[j] & 0x0F) | static_cast<uint8_t>(q[j + QK / 2] << 4);
}
void pack_high_bits(const uint8_t q[QK], uint8_t* qh) {
    uint32_t h = 0;
    for (int j = 0; j < QK; ++j) h |= static_cast<uint32_t>((q[j] >> 4) & 1) << j;
    std::memcpy(qh, &h, 4);
}

void quantize_q4_0(const float* x, uint8_t* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += QK, y += sizeof(block_q4_0)) {
        uint8_t q[QK];
        float d;
        quantize_sym_block<4>(x, q, &d);
        store_u16(y, fp32_to_fp16(d));
        pack_nibbles(q, y + 2);
    }
}
void quantize_q4_1(const float* x, uint8_t* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += QK, y += sizeof(block_q4_1)) {
        uint8_t q[QK];
        float d, m;
        quantize_asym_block<4>(x, q, &d, &m);
        store_u16(y, fp32_to_fp16(d));
        store_u16(y + 2, fp32_to_fp16(m));
        pack_nibbles(q, y + 4);
    }
}
void quantize_q5_0(const float* x, uint8_t* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += QK, y += sizeof(block_q5_0)) {
        uint8_t q[QK];
        float d;
        quantize_sym_block<5>(x, q, &d);
        store_u16(y, fp32_to_fp16(d));
        pack_high_bits(q, y + 2);
        pack_nibbles(q, y + 6);
    }
}
void quantize_q5_1(const float* x, uint8_t* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += QK, y += sizeof(block_q5_1)) {
        uint8_t q[QK];
        float d, m;
        quantize_asym_block<5>(x, q, &d, &m);
        store_u16(y, fp32_to_fp16(d));
        store_u16(y + 2, fp32_to_fp16(m));
        pack_high_bits(q, y + 4);
        pack_nibbles(q, y + 8);
    }
}

// ---- 32-block dequantizers: x = d * (q - offset)  or  x = d * q + m ----

// (d * q) + m with the NaN the SIMD twins' add(mul(d, q), m) gives when both are NaN: the
// first operand's on x86; on ARM a signalling m (quieted) before the product's quiet NaN.
// Written out because IEEE leaves that choice open and a plain `d * q + m` lets the compiler
// swap the add's operands (GCC does under -fsanitize), which changes the payload.
static inline float mul_add_nan_first(float d, float q, float m) {
    const float p = d * q;  // a product's NaN is always quiet
    if (p != p && m != m) {
#if defined(__aarch64__) || defined(__arm__)
        const uint32_t mb = f32_bits(m);
        if (!(mb & 0x00400000u)) return bits_f32(mb | 0x00400000u);
#endif
        return p;
    }
    return p + m;
}

void dequantize_q4_0(const uint8_t* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += sizeof(block_q4_0), y += QK) {
        const float d = fp16_to_fp32(load_u16(x));
        const uint8_t* qs = x + 2;
        for (int j = 0; j < QK / 2; ++j) {
            y[j] = d * static_cast<float>((qs[j] & 0x0F) - 8);
            y[j + QK / 2] = d * static_cast<float>((qs[j] >> 4) - 8);
        }
    }
}
void dequantize_q4_1(const uint8_t* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += sizeof(block_q4_1), y += QK) {
        const float d = fp16_to_fp32(load_u16(x)), m = fp16_to_fp32(load_u16(x + 2));
        const uint8_t* qs = x + 4;
        for (int j = 0; j < QK / 2; ++j) {
            y[j] = mul_add_nan_first(d, static_cast<float>(qs[j] & 0x0F), m);
            y[j + QK / 2] = mul_add_nan_first(d, static_cast<float>(qs[j] >> 4), m);
        }
    }
}
void dequantize_q5_0(const uint8_t* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += sizeof(block_q5_0), y += QK) {
        const float d = fp16_to_fp32(load_u16(x));
        const uint32_t qh = load_u32(x + 2);
        const uint8_t* qs = x + 6;
        for (int j = 0; j < QK / 2; ++j) {
            const int lo = (qs[j] & 0x0F) | (((qh >> j) & 1) << 4);
            const int hi = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
            y[j] = d * static_cast<float>(lo - 16);
            y[j + QK / 2] = d * static_cast<float>(hi - 16);
        }
    }
}
void dequantize_q5_1(const uint8_t* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / QK; ++b, x += sizeof(block_q5_1), y += QK) {
        const float d = fp16_to_fp32(load_u16(x)), m = fp16_to_fp32(load_u16(x + 2));
        const uint32_t qh = load_u32(x + 4);
        const uint8_t* qs = x + 8;
        for (int j = 0; j < QK / 2; ++j) {
            const int lo = (qs[j] & 0x0F) | (((qh >> j) & 1) << 4);
            const int hi = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
            y[j] = mul_add_nan_first(d, static_cast<float>(lo), m);
            y[j + QK / 2] = mul_add_nan_first(d, static_cast<float>(hi), m);
        }
    }
}

// ---- K-quant dequantizers (layouts in formats.h) ----
// Q4_K / Q5_K: x = (d * sc_j) * q - (dmin * m_j) for sub-block j of 32, in that float32 order.
void dequantize_q4_k(const uint8_t* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; ++b, x += sizeof(block_q4_K), y += QK_K) {
        const float d = fp16_to_fp32(load_u16(x)), dmin = fp16_to_fp32(load_u16(x + 2));
        const uint8_t* scales = x + 4;
        const uint8_t* qs = x + 16;
        for (int j = 0; j < QK_K / 32; ++j) {
            uint8_t sc, m;
            get_scale_min_k4(j, scales, &sc, &m);
            const float dl = d * sc, ml = dmin * m;
            const uint8_t* q = qs + 32 * (j / 2);
            const int shift = 4 * (j % 2);
            for (int l = 0; l < 32; ++l) y[32 * j + l] = dl * static_cast<float>((q[l] >> shift) & 0x0F) - ml;
        }
    }
}
void dequantize_q5_k(const uint8_t* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; ++b, x += sizeof(block_q5_K), y += QK_K) {
        const float d = fp16_to_fp32(load_u16(x)), dmin = fp16_to_fp32(load_u16(x + 2));
        const uint8_t* scales = x + 4;
        const uint8_t* qh = x + 16;
        const uint8_t* qs = x + 48;
        for (int j = 0; j < QK_K / 32; ++j) {
            uint8_t sc, m;
            get_scale_min_k4(j, scales, &sc, &m);
            const float dl = d * sc, ml = dmin * m;
            const uint8_t* q = qs + 32 * (j / 2);
            const int shift = 4 * (j % 2);
            for (int l = 0; l < 32; ++l) {
                const int v = ((q[l] >> shift) & 0x0F) | (((qh[l] >> j) & 1) << 4);
                y[32 * j + l] = dl * static_cast<float>(v) - ml;
            }
        }
    }
}
// Q6_K: x = (d * scale_s) * (q - 32) for sub-block s of 16; element e = 128a + 32t + l takes
// its low 4 bits from ql[64a + l + 32*(t%2)] (nibble t/2) and its top 2 from qh[32a + l] bits 2t.
void dequantize_q6_k(const uint8_t* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; ++b, x += sizeof(block_q6_K), y += QK_K) {
        const uint8_t* ql = x;
        const uint8_t* qh = x + 128;
        const int8_t* sc = reinterpret_cast<const int8_t*>(x + 192);
        const float d = fp16_to_fp32(load_u16(x + 208));
        for (int e = 0; e < QK_K; ++e) {
            const int a = e / 128, t = (e % 128) / 32, l = e % 32;
            const int lo = (ql[64 * a + l + 32 * (t % 2)] >> (4 * (t / 2))) & 0x0F;
            const int hi = (qh[32 * a + l] >> (2 * t)) & 3;
            y[e] = (d * static_cast<float>(sc[e / 16])) * static_cast<float>((lo | (hi << 4)) - 32);
        }
    }
}

// ---- Q8_K (activations of the K-quant GEMMs): d = amax/127 as float32, q = round(x/d) ----
void quantize_q8_k(const float* x, uint8_t* y, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; ++b, x += QK_K, y += sizeof(block_q8_K)) {
        float amax = 0.0f;
        for (int j = 0; j < QK_K; ++j) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        int8_t q[QK_K];
        for (int j = 0; j < QK_K; ++j) q[j] = static_cast<int8_t>(trunc_to_i32(round_half_away(x[j] * id)));
        int16_t bsums[QK_K / 16];
        for (int g = 0; g < QK_K / 16; ++g) {
            int s = 0;
            for (int l = 0; l < 16; ++l) s += q[16 * g + l];
            bsums[g] = static_cast<int16_t>(s);
        }
        std::memcpy(y, &d, 4);
        std::memcpy(y + 4, q, QK_K);
        std::memcpy(y + 4 + QK_K, bsums, sizeof(bsums));
    }
}
void dequantize_q8_k(const uint8_t* x, float* y, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; ++b, x += sizeof(block_q8_K), y += QK_K) {
        float d;
        std::memcpy(&d, x, 4);
        for (int j = 0; j < QK_K; ++j) y[j] = static_cast<float>(static_cast<int8_t>(x[4 + j])) * d;
    }
}

constexpr auto kEntries = join(std::array<KernelEntry, 5>{entry<Op::quantize, quantize_f32>(Format::F32),
                                                          entry<Op::dequantize, dequantize_f32>(Format::F32),
                                                          entry<Op::quantize, quantize_q4_k_ref>(Format::Q4_K),
                                                          entry<Op::quantize, quantize_q5_k_ref>(Format::Q5_K),
                                                          entry<Op::quantize, quantize_q6_k_ref>(Format::Q6_K)},
                               kQuantRowEntries);

}  // namespace

extern constexpr KernelList kernels_quant_scalar{Isa::scalar, kEntries.data(), kEntries.size()};

}  // namespace slmk
