// ---- K-quant quantizers ----
// The gguf package has no K-quant quantizer, so these are ours. The block layouts are ggml's
// (formats.h); the fitting is a plain least-squares search:
//   1. per sub-block, fit x ~ a*q + b (Q4_K/Q5_K: q in [0, nmax], b <= 0) or x ~ a*q
//      (Q6_K: q in [-32, 31]) by trying a grid of scales around (max - min)/nmax, each
//      refined once by the closed-form least-squares (a, b) for its rounding;
//   2. quantize the sub-block scales (and mins) to 6 bits (8 bits for Q6_K) against one
//      fp16 super-block scale;
//   3. requantize every value against the *stored* scales, so the blocks decode to the
//      closest grid point the stored scales allow.
// Round-trip error on Gaussian data is measured in tests/test_quant.py (bounds documented
// there, next to Q4_0's and Q8_0's error on the same data).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "../core/fp16.h"
#include "formats.h"
#include "quant_kquant.h"

namespace slmk {

namespace {

struct Fit { float a, b; };  // x ~ a*q + b

static float sq(float v) { return v * v; }

// Best (a, b) with q in [0, nmax], b <= 0, for n values.
Fit fit_affine(const float* x, int n, int nmax) {
    float mn = 0.0f, mx = x[0];
    for (int i = 0; i < n; ++i) {
        mn = std::min(mn, x[i]);
        mx = std::max(mx, x[i]);
    }
    if (!(mx > mn)) return {0.0f, mn};
    Fit best{(mx - mn) / nmax, mn};
    float best_err = INFINITY;
    for (int step = -6; step <= 12; ++step) {
        const float a0 = (mx - mn) / (nmax + 0.1f * step);
        // round with this scale, then solve least squares for (a, b) given q
        double sqq = 0, sq1 = 0, sqx = 0, sx = 0;
        int qv[QK_K];
        for (int i = 0; i < n; ++i) {
            qv[i] = std::clamp((int)std::lround((x[i] - mn) / a0), 0, nmax);
            sqq += (double)qv[i] * qv[i];
            sq1 += qv[i];
            sqx += (double)qv[i] * x[i];
            sx += x[i];
        }
        const double det = sqq * n - sq1 * sq1;
        float a, b;
        if (det > 0) {
            a = (float)((sqx * n - sq1 * sx) / det);
            b = (float)((sqq * sx - sq1 * sqx) / det);
        } else {
            a = a0;
            b = mn;
        }
        if (b > 0) {  // mins are stored as a non-negative amount subtracted
            b = 0;
            a = sqq > 0 ? (float)(sqx / sqq) : a0;
        }
        if (!(a > 0)) continue;
        float err = 0;
        for (int i = 0; i < n; ++i) err += sq(x[i] - (a * std::clamp((int)std::lround((x[i] - b) / a), 0, nmax) + b));
        if (err < best_err) {
            best_err = err;
            best = {a, b};
        }
    }
    return best;
}

// Best a with q in [-32, 31] for n values (x ~ a*q).
float fit_symmetric(const float* x, int n) {
    float amax = 0, vmax = 0;
    for (int i = 0; i < n; ++i)
        if (std::fabs(x[i]) > amax) {
            amax = std::fabs(x[i]);
            vmax = x[i];
        }
    if (amax == 0) return 0.0f;
    float best = vmax / -32.0f, best_err = INFINITY;
    for (int step = -8; step <= 8; ++step) {
        const float a0 = vmax / (-32.0f + 0.25f * step);
        double sqq = 0, sqx = 0;
        for (int i = 0; i < n; ++i) {
            const int q = std::clamp((int)std::lround(x[i] / a0), -32, 31);
            sqq += (double)q * q;
            sqx += (double)q * x[i];
        }
        const float a = sqq > 0 ? (float)(sqx / sqq) : a0;
        if (a == 0) continue;
        float err = 0;
        for (int i = 0; i < n; ++i) err += sq(x[i] - a * std::clamp((int)std::lround(x[i] / a), -32, 31));
        if (err < best_err) {
            best_err = err;
            best = a;
        }
    }
    return best;
}

// Packs 8 (scale, min) pairs of 6 bits into the 12-byte layout get_scale_min_k4 reads.
void pack_scale_min_k4(const uint8_t sc[8], const uint8_t m[8], uint8_t out[12]) {
    for (int j = 0; j < 4; ++j) {
        out[j] = (sc[j] & 63) | ((sc[j + 4] >> 4) << 6);
        out[j + 4] = (m[j] & 63) | ((m[j + 4] >> 4) << 6);
        out[j + 8] = (sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4);
    }
}

// Q4_K (kBits = 4) and Q5_K (kBits = 5) share everything but the bit packing.
template <int kBits>
void quantize_k_affine(const float* x, uint8_t* y, int64_t n) {
    constexpr int nmax = (1 << kBits) - 1;
    constexpr size_t kBlock = kBits == 4 ? sizeof(block_q4_K) : sizeof(block_q5_K);
    for (int64_t b = 0; b < n / QK_K; ++b, x += QK_K, y += kBlock) {
        float a[8], m[8];
        float amax = 0, mmax = 0;
        for (int j = 0; j < 8; ++j) {
            const Fit f = fit_affine(x + 32 * j, 32, nmax);
            a[j] = f.a;
            m[j] = -f.b;
            amax = std::max(amax, a[j]);
            mmax = std::max(mmax, m[j]);
        }
        const uint16_t dh = fp32_to_fp16(amax / 63.0f), dminh = fp32_to_fp16(mmax / 63.0f);
        const float d = fp16_to_fp32(dh), dmin = fp16_to_fp32(dminh);
        uint8_t sc[8], mq[8];
        for (int j = 0; j < 8; ++j) {
            sc[j] = d > 0 ? (uint8_t)std::clamp((int)std::lround(a[j] / d), 0, 63) : 0;
            mq[j] = dmin > 0 ? (uint8_t)std::clamp((int)std::lround(m[j] / dmin), 0, 63) : 0;
        }
        uint8_t q[QK_K];
        for (int j = 0; j < 8; ++j) {
            const float dl = d * sc[j], ml = dmin * mq[j];
            for (int l = 0; l < 32; ++l)
                q[32 * j + l] = dl > 0 ? (uint8_t)std::clamp((int)std::lround((x[32 * j + l] + ml) / dl), 0, nmax) : 0;
        }
        store_u16(y, dh);
        store_u16(y + 2, dminh);
        pack_scale_min_k4(sc, mq, y + 4);
        uint8_t* qs = y + (kBits == 4 ? 16 : 48);
        for (int g = 0; g < 4; ++g)
            for (int l = 0; l < 32; ++l)
                qs[32 * g + l] = (q[64 * g + l] & 0xF) | ((q[64 * g + 32 + l] & 0xF) << 4);
        if (kBits == 5) {
            uint8_t* qh = y + 16;
            for (int l = 0; l < 32; ++l) {
                uint8_t h = 0;
                for (int j = 0; j < 8; ++j) h |= ((q[32 * j + l] >> 4) & 1) << j;
                qh[l] = h;
            }
        }
    }
}

}  // namespace

void quantize_q4_k_ref(const float* x, uint8_t* y, int64_t n) { quantize_k_affine<4>(x, y, n); }
void quantize_q5_k_ref(const float* x, uint8_t* y, int64_t n) { quantize_k_affine<5>(x, y, n); }

void quantize_q6_k_ref(const float* x, uint8_t* y, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; ++b, x += QK_K, y += sizeof(block_q6_K)) {
        float a[16], amax = 0;
        for (int s = 0; s < 16; ++s) {
            a[s] = fit_symmetric(x + 16 * s, 16);
            amax = std::max(amax, std::fabs(a[s]));
        }
        const uint16_t dh = fp32_to_fp16(amax / 127.0f);
        const float d = fp16_to_fp32(dh);
        int8_t sc[16];
        for (int s = 0; s < 16; ++s) sc[s] = d > 0 ? (int8_t)std::clamp((int)std::lround(a[s] / d), -127, 127) : 0;
        uint8_t q[QK_K];  // biased by 32: 0..63
        for (int e = 0; e < QK_K; ++e) {
            const float dl = d * sc[e / 16];
            q[e] = (uint8_t)(dl != 0 ? std::clamp((int)std::lround(x[e] / dl), -32, 31) + 32 : 32);
        }
        uint8_t* ql = y;
        uint8_t* qh = y + 128;
        std::memset(ql, 0, 128 + 64);
        for (int e = 0; e < QK_K; ++e) {  // inverse of dequantize_q6_k's indexing
            const int a_ = e / 128, t = (e % 128) / 32, l = e % 32;
            ql[64 * a_ + l + 32 * (t % 2)] |= (q[e] & 0xF) << (4 * (t / 2));
            qh[32 * a_ + l] |= (q[e] >> 4) << (2 * t);
        }
        std::memcpy(y + 192, sc, 16);
        store_u16(y + 208, dh);
    }
}

}  // namespace slmk
