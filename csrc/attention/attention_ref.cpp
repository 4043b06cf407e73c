// ---- attention chunk kernels: the scalar twin (the spec every SIMD path is tested against) ----
// One call: n cached keys/values of one KV head, R query rows, online softmax (attention.h).
// Plain loops in float32; only the order of the sums differs in the SIMD versions.
#include <cmath>
#include <limits>

#include "attention/attention.h"
#include "core/fp16.h"
#include "quant/formats.h"

namespace slmk {

namespace {

// dot(q, k row) over the padded head dim `dp` (q is zero beyond head_dim).
float dot_f32(const float* q, const uint8_t* row, int64_t dp) {
    const float* k = reinterpret_cast<const float*>(row);
    float s = 0.0f;
    for (int64_t d = 0; d < dp; ++d) s += q[d] * k[d];
    return s;
}

float dot_f16(const float* q, const uint8_t* row, int64_t dp) {
    float s = 0.0f;
    for (int64_t d = 0; d < dp; ++d) s += q[d] * fp16_to_fp32(load_u16(row + 2 * d));
    return s;
}

// Q8_0: per block of 32, sum q*int8 in float, then scale by the block's d.
float dot_q8_0(const float* q, const uint8_t* row, int64_t dp) {
    float s = 0.0f;
    for (int64_t b = 0; b < dp / QK; ++b) {
        const uint8_t* blk = row + b * sizeof(block_q8_0);
        const int8_t* qs = reinterpret_cast<const int8_t*>(blk + 2);
        float bs = 0.0f;
        for (int i = 0; i < QK; ++i) bs += q[b * QK + i] * static_cast<float>(qs[i]);
        s += fp16_to_fp32(load_u16(blk)) * bs;
    }
    return s;
}

// Q4_0: element i of a block is (low nibble of qs[i] - 8) for i < 16, (high nibble of qs[i-16] - 8) after.
float dot_q4_0(const float* q, const uint8_t* row, int64_t dp) {
    float s = 0.0f;
    for (int64_t b = 0; b < dp / QK; ++b) {
        const uint8_t* blk = row + b * sizeof(block_q4_0);
        const uint8_t* qs = blk + 2;
        float bs = 0.0f;
        for (int i = 0; i < QK / 2; ++i) {
            bs += q[b * QK + i] * static_cast<float>((qs[i] & 0xF) - 8);
            bs += q[b * QK + i + 16] * static_cast<float>((qs[i] >> 4) - 8);
        }
        s += fp16_to_fp32(load_u16(blk)) * bs;
    }
    return s;
}

// acc[0..D) += p * v row (dequantized element by element: d * q is exact in float32).
void axpy_row(Format f, float p, const uint8_t* row, float* acc, int64_t D) {
    for (int64_t d = 0; d < D; ++d) {
        float v;
        switch (f) {
            case Format::F32: v = reinterpret_cast<const float*>(row)[d]; break;
            case Format::F16: v = fp16_to_fp32(load_u16(row + 2 * d)); break;
            case Format::Q8_0: {
                const uint8_t* blk = row + (d / QK) * sizeof(block_q8_0);
                v = fp16_to_fp32(load_u16(blk)) * static_cast<float>(reinterpret_cast<const int8_t*>(blk + 2)[d % QK]);
                break;
            }
            default: {  // Q4_0
                const uint8_t* blk = row + (d / QK) * sizeof(block_q4_0);
                const int i = static_cast<int>(d % QK);
                const int nib = i < 16 ? (blk[2 + i] & 0xF) : (blk[2 + i - 16] >> 4);
                v = fp16_to_fp32(load_u16(blk)) * static_cast<float>(nib - 8);
                break;
            }
        }
        acc[d] += p * v;
    }
}

template <Format F>
void chunk_scalar(const AttnChunkArgs& a) {
    const int64_t dp = a.ldq;  // padded head dim
    float* s = a.scratch;      // [n] scores of one row
    for (int r = 0; r < a.R; ++r) {
        const float* q = a.q + r * a.ldq;
        const int64_t qp = a.qpos[r];
        float cmax = -std::numeric_limits<float>::infinity();
        bool poison = false;  // a visible NaN or +inf score: softmax is NaN for the row, as in numpy
        for (int64_t j = 0; j < a.n; ++j) {
            const int64_t kp = a.kpos0 + j;
            if (kp > qp || qp - kp >= a.window) {
                s[j] = -std::numeric_limits<float>::infinity();
                continue;
            }
            const uint8_t* krow = a.k + j * a.row_bytes;
            float x = F == Format::F32 ? dot_f32(q, krow, dp)
                    : F == Format::F16 ? dot_f16(q, krow, dp)
                    : F == Format::Q8_0 ? dot_q8_0(q, krow, dp)
                                        : dot_q4_0(q, krow, dp);
            if (a.softcap > 0.0f) x = a.softcap * std::tanh(x / a.softcap);
            s[j] = x;
            if (x > cmax) cmax = x;
            if (x != x || x == std::numeric_limits<float>::infinity()) poison = true;
        }
        if (poison) {  // l and acc NaN, m finite: later chunks, merges and finalize keep the NaN
            a.l[r] = std::numeric_limits<float>::quiet_NaN();
            for (int64_t d = 0; d < a.head_dim; ++d) a.acc[r * a.ldacc + d] = a.l[r];
            if (!(a.m[r] > -std::numeric_limits<float>::infinity())) a.m[r] = 0.0f;
            continue;
        }
        if (!(cmax > -std::numeric_limits<float>::infinity())) continue;  // nothing visible: state unchanged
        const float mnew = a.m[r] > cmax ? a.m[r] : cmax;
        const float alpha = std::exp(a.m[r] - mnew);  // m = -inf gives 0
        float* acc = a.acc + r * a.ldacc;
        float l = a.l[r] * alpha;
        for (int64_t d = 0; d < a.head_dim; ++d) acc[d] *= alpha;
        for (int64_t j = 0; j < a.n; ++j) {
            if (!(s[j] > -std::numeric_limits<float>::infinity())) continue;
            const float p = std::exp(s[j] - mnew);
            l += p;
            axpy_row(F, p, a.v + j * a.row_bytes, acc, a.head_dim);
        }
        a.l[r] = l;
        a.m[r] = mnew;
    }
}

constexpr std::array<KernelEntry, 4> kEntries = {
    entry<Op::attn_chunk, chunk_scalar<Format::F32>>(Format::F32),
    entry<Op::attn_chunk, chunk_scalar<Format::F16>>(Format::F16),
    entry<Op::attn_chunk, chunk_scalar<Format::Q8_0>>(Format::Q8_0),
    entry<Op::attn_chunk, chunk_scalar<Format::Q4_0>>(Format::Q4_0),
};

}  // namespace

extern constexpr KernelList kernels_attention_scalar{Isa::scalar, kEntries.data(), kEntries.size()};

}  // namespace slmk
