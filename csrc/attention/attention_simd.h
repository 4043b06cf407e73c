// ---- the SIMD attention chunk kernel, generic over a vector-traits type V ----
// Included only by the per-ISA files (attention_<isa>.cpp), each of which defines V with its
// intrinsics and compiles this with its own flags: this header itself holds no intrinsics.
//
// Same spec as the scalar twin (attention_ref.cpp); what differs is the order of float sums
// and the exp (a polynomial, within 2 ulp): the chunk's keys and values are dequantized once
// into float buffers (d * q, exact), so a K/V row is read once for the whole GQA group and
// query tile. Scores take W keys at a time: per-lane fused multiply-adds over the head
// dimension, then one transpose-and-add tree (reduce_lanes) instead of W horizontal sums; the
// value accumulation keeps up to 4 vectors of a row's accumulator in registers across the
// chunk. A row's arithmetic depends only on that row's inputs, never on how many rows share
// the call, so results are the same for any query tiling, batch, or thread count.
//
// V must provide: width; vec; zero(), load(p), store(p, x), set1(f), add, sub, mul, fma(a, b, c) = a*b+c,
// max, hsum(x) (fixed reduction order), hmax(x), exp(x) (0 for x < -87.3, so -inf gives 0);
// reduce_lanes(x[width]) (lane i = the sum of x[i]'s lanes, a fixed tree);
// and the row converters k_row<F>(row, dst, dp): dp floats of one cached row.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>

#include "core/kernels.h"

namespace slmk {
namespace attn_simd {

// Dequantizes rows [j0, j1) of a chunk into dst [n][dp] floats (row j at dst + j * dp).
template <class V, Format F>
static inline const float* rows_as_float(const uint8_t* base, int64_t row_bytes, int64_t j0, int64_t j1, int64_t dp,
                                         float* dst) {
    if (F == Format::F32 && row_bytes == dp * static_cast<int64_t>(sizeof(float)))
        return reinterpret_cast<const float*>(base);  // already float rows, dp apart
    for (int64_t j = j0; j < j1; ++j) {
        if (F == Format::F32) {
            const float* src = reinterpret_cast<const float*>(base + j * row_bytes);
            for (int64_t i = 0; i < dp; ++i) dst[j * dp + i] = src[i];
        } else {
            V::template k_row<F>(base + j * row_bytes, dst + j * dp, dp);
        }
    }
    return dst;
}

template <class V, Format F>
static void chunk(const AttnChunkArgs& a) {
    constexpr float kNegInf = -std::numeric_limits<float>::infinity();
    constexpr int W = V::width;
    using vec = typename V::vec;
    const int64_t n = a.n, dp = a.ldq, D = a.head_dim;
    const int R = a.R;
    float* S = a.scratch;                                          // [R][n] scores, then probabilities
    int32_t* jlo = reinterpret_cast<int32_t*>(a.scratch + (R * n + 15) / 16 * 16);  // [R] visible keys [jlo, jhi)
    int32_t* jhi = jlo + R;
    float* kbuf = a.scratch + (R * n + 15) / 16 * 16 + ((2 * R + 15) / 16) * 16;   // [n][dp] dequantized keys
    float* vbuf = kbuf + n * dp;                                                    // [n][dp] dequantized values
    int64_t jmin = n, jmax = 0;
    for (int r = 0; r < R; ++r) {
        const int64_t qp = a.qpos[r];
        const int64_t first = a.window > qp ? 0 : qp - a.window + 1;  // first visible position
        int64_t lo = first - a.kpos0;
        lo = lo < 0 ? 0 : lo;
        int64_t hi = qp - a.kpos0 + 1;
        hi = hi > n ? n : hi;
        if (hi < lo) hi = lo;
        jlo[r] = static_cast<int32_t>(lo);
        jhi[r] = static_cast<int32_t>(hi);
        if (lo < hi) {
            jmin = lo < jmin ? lo : jmin;
            jmax = hi > jmax ? hi : jmax;
        }
    }
    if (jmin >= jmax) return;
    // Scores, W keys at a time: lane l of key i's accumulator sums q[d] * k_i[d] over d = l mod W
    // (fused multiply-adds in d order), then reduce_lanes folds the W accumulators at once (its
    // fixed tree). A score depends only on its own query row and key, so any R gives its bits.
    const float* K = rows_as_float<V, F>(a.k, a.row_bytes, jmin, jmax, dp, kbuf);
    for (int64_t j0 = jmin; j0 < jmax; j0 += W) {
        const int nk = static_cast<int>(jmax - j0 < W ? jmax - j0 : W);
        for (int r = 0; r < R; ++r) {
            const int64_t lo = jlo[r] > j0 ? jlo[r] : j0, hi = jhi[r] < j0 + nk ? jhi[r] : j0 + nk;
            if (lo >= hi) continue;
            vec acc[W];
            for (int i = 0; i < W; ++i) acc[i] = V::zero();
            const float* qr = a.q + r * a.ldq;
            int64_t d = 0;
            for (; d + W <= dp; d += W) {
                const vec qv = V::load(qr + d);
                for (int i = 0; i < nk; ++i) acc[i] = V::fma(qv, V::load(K + (j0 + i) * dp + d), acc[i]);
            }
            if (d < dp) {  // dp not a multiple of W (f32/f16 caches): the tail through zeroed
                           // buffers, never a load past the row (the next row, or past the end)
                alignas(64) float qt[W] = {}, kt[W] = {};
                for (int64_t e = d; e < dp; ++e) qt[e - d] = qr[e];
                const vec qv = V::load(qt);
                for (int i = 0; i < nk; ++i) {
                    for (int64_t e = d; e < dp; ++e) kt[e - d] = K[(j0 + i) * dp + e];
                    acc[i] = V::fma(qv, V::load(kt), acc[i]);
                }
            }
            alignas(64) float t[W];
            V::store(t, V::reduce_lanes(acc));
            for (int64_t j = lo; j < hi; ++j) S[r * n + j] = t[j - j0];
        }
    }
    // online softmax per row: probabilities into S; al rescales the running state
    const float* Vf = rows_as_float<V, F>(a.v, a.row_bytes, jmin, jmax, dp, vbuf);
    for (int r = 0; r < R; ++r) {
        const int64_t lo = jlo[r], hi = jhi[r];
        if (lo >= hi) continue;
        float* s = S + r * n;
        if (a.softcap > 0.0f)
            for (int64_t j = lo; j < hi; ++j) s[j] = a.softcap * std::tanh(s[j] / a.softcap);
        // a visible NaN or +inf score makes the row's softmax NaN, as in numpy (and the scalar
        // twin): l and acc become NaN, m stays finite, so later chunks, merges and finalize
        // keep the NaN (V::exp clamps its input, which would otherwise turn NaN into 0)
        bool poison = false;
        {
            // vector pre-check: s * 0 is 0 for every finite s, NaN for NaN and +-inf; only a
            // row that trips it is scanned exactly (-inf alone is a legal, masked score)
            vec vb = V::zero();
            const vec zero = V::zero();
            int64_t j = lo;
            for (; j + W <= hi; j += W) vb = V::add(vb, V::mul(V::load(s + j), zero));
            float tb = V::hsum(vb);
            for (; j < hi; ++j) tb += s[j] * 0.0f;
            if (!(tb == 0.0f))
                for (j = lo; j < hi; ++j) poison |= !(s[j] == s[j]) || s[j] == -kNegInf;
        }
        if (poison) {
            a.l[r] = std::numeric_limits<float>::quiet_NaN();
            for (int64_t d = 0; d < D; ++d) a.acc[r * a.ldacc + d] = a.l[r];
            if (!(a.m[r] > kNegInf)) a.m[r] = 0.0f;
            jhi[r] = jlo[r];
            continue;
        }
        float cmax = kNegInf;
        {
            vec vm = V::set1(kNegInf);
            int64_t j = lo;
            for (; j + W <= hi; j += W) vm = V::max(vm, V::load(s + j));
            cmax = V::hmax(vm);
            for (; j < hi; ++j) cmax = s[j] > cmax ? s[j] : cmax;
        }
        if (!(cmax > kNegInf)) continue;  // every visible score is -inf: nothing to add
        const float mnew = a.m[r] > cmax ? a.m[r] : cmax;
        const float al = std::exp(a.m[r] - mnew);
        vec vl = V::zero();
        const vec vmn = V::set1(mnew);
        int64_t j = lo;
        for (; j + W <= hi; j += W) {
            const vec p = V::exp(V::sub(V::load(s + j), vmn));
            V::store(s + j, p);
            vl = V::add(vl, p);
        }
        if (j < hi) {  // tail through a padded buffer so every lane goes through the same exp
            alignas(64) float t[64];
            for (int i = 0; i < W; ++i) t[i] = j + i < hi ? s[j + i] : kNegInf;
            const vec p = V::exp(V::sub(V::load(t), vmn));
            V::store(t, p);
            vl = V::add(vl, p);
            for (int64_t i = 0; j + i < hi; ++i) s[j + i] = t[i];
        }
        a.l[r] = a.l[r] * al + V::hsum(vl);
        a.m[r] = mnew;
        // values: acc = acc * alpha, then acc += p_j * v_j in key order, up to 4 vectors of the
        // row held in registers across the whole chunk (no load/store of acc per key)
        float* acc = a.acc + r * a.ldacc;
        const vec va = V::set1(al);
        int64_t d0 = 0;
        for (; d0 + 4 * W <= D; d0 += 4 * W) {
            vec c0 = V::mul(V::load(acc + d0), va), c1 = V::mul(V::load(acc + d0 + W), va);
            vec c2 = V::mul(V::load(acc + d0 + 2 * W), va), c3 = V::mul(V::load(acc + d0 + 3 * W), va);
            for (int64_t jj = lo; jj < hi; ++jj) {
                const vec p = V::set1(s[jj]);
                const float* vr = Vf + jj * dp + d0;
                c0 = V::fma(p, V::load(vr), c0);
                c1 = V::fma(p, V::load(vr + W), c1);
                c2 = V::fma(p, V::load(vr + 2 * W), c2);
                c3 = V::fma(p, V::load(vr + 3 * W), c3);
            }
            V::store(acc + d0, c0);
            V::store(acc + d0 + W, c1);
            V::store(acc + d0 + 2 * W, c2);
            V::store(acc + d0 + 3 * W, c3);
        }
        for (; d0 + W <= D; d0 += W) {
            vec c0 = V::mul(V::load(acc + d0), va);
            for (int64_t jj = lo; jj < hi; ++jj) c0 = V::fma(V::set1(s[jj]), V::load(Vf + jj * dp + d0), c0);
            V::store(acc + d0, c0);
        }
        for (; d0 < D; ++d0) {  // D not a multiple of the width: scalar tail, same order
            float c = acc[d0] * al;
            for (int64_t jj = lo; jj < hi; ++jj) c += s[jj] * Vf[jj * dp + d0];
            acc[d0] = c;
        }
    }
}

}  // namespace attn_simd
}  // namespace slmk
