// ---- the SIMD attention chunk kernel, generic over a vector-traits type V ----
// Included only by the per-ISA files (attention_<isa>.cpp), each of which defines V with its
// intrinsics and compiles this with its own flags: this header itself holds no intrinsics.
//
// Same spec as the scalar twin (attention_ref.cpp); what differs is the order of float sums
// and the exp (a polynomial, within 2 ulp): each key row is dequantized once per chunk into
// a float buffer (d * q, exact) and dotted with every query row that sees it, so a K/V row is
// read once for the whole GQA group. A row's arithmetic depends only on that row's inputs,
// never on how many rows share the call, so results are the same for any query tiling.
//
// V must provide: width; vec; zero(), load(p), store(p, x), set1(f), add, sub, mul, fma(a, b, c) = a*b+c,
// max, hsum(x) (fixed reduction order), hmax(x), exp(x) (0 for x < -87.3, so -inf gives 0);
// and the row converters k_row<F>(row, dst, dp): dp floats of one cached row.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>

#include "core/kernels.h"

namespace slmk {
namespace attn_simd {

template <class V>
static inline float dot(const float* a, const float* b, int64_t n) {
    typename V::vec acc = V::zero();
    int64_t i = 0;
    for (; i + V::width <= n; i += V::width) acc = V::fma(V::load(a + i), V::load(b + i), acc);
    float s = V::hsum(acc);
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

template <class V>
static inline void scale_row(float* x, float alpha, int64_t n) {
    const typename V::vec va = V::set1(alpha);
    int64_t i = 0;
    for (; i + V::width <= n; i += V::width) V::store(x + i, V::mul(V::load(x + i), va));
    for (; i < n; ++i) x[i] *= alpha;
}

template <class V>
static inline void axpy(float* acc, float p, const float* v, int64_t n) {
    const typename V::vec vp = V::set1(p);
    int64_t i = 0;
    for (; i + V::width <= n; i += V::width) V::store(acc + i, V::fma(vp, V::load(v + i), V::load(acc + i)));
    for (; i < n; ++i) acc[i] += p * v[i];
}

template <class V, Format F>
static void chunk(const AttnChunkArgs& a) {
    constexpr float kNegInf = -std::numeric_limits<float>::infinity();
    const int64_t n = a.n, dp = a.ldq, D = a.head_dim;
    const int R = a.R;
    float* S = a.scratch;                                          // [R][n] scores, then probabilities
    int32_t* jlo = reinterpret_cast<int32_t*>(a.scratch + (R * n + 15) / 16 * 16);  // [R] visible keys [jlo, jhi)
    int32_t* jhi = jlo + R;
    float* row = a.scratch + (R * n + 15) / 16 * 16 + ((2 * R + 15) / 16) * 16;     // [dp] one dequantized row
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
    // scores: each key row dequantized once, dotted with every row that sees it
    for (int64_t j = jmin; j < jmax; ++j) {
        const uint8_t* kr = a.k + j * a.row_bytes;
        const float* kf;
        if (F == Format::F32) {
            kf = reinterpret_cast<const float*>(kr);
        } else {
            V::template k_row<F>(kr, row, dp);
            kf = row;
        }
        for (int r = 0; r < R; ++r)
            if (j >= jlo[r] && j < jhi[r]) S[r * n + j] = dot<V>(a.q + r * a.ldq, kf, dp);
    }
    // online softmax per row: probabilities into S, rescale of the running state
    for (int r = 0; r < R; ++r) {
        const int64_t lo = jlo[r], hi = jhi[r];
        if (lo >= hi) continue;
        float* s = S + r * n;
        if (a.softcap > 0.0f)
            for (int64_t j = lo; j < hi; ++j) s[j] = a.softcap * std::tanh(s[j] / a.softcap);
        float cmax = kNegInf;
        {
            typename V::vec vm = V::set1(kNegInf);
            int64_t j = lo;
            for (; j + V::width <= hi; j += V::width) vm = V::max(vm, V::load(s + j));
            cmax = V::hmax(vm);
            for (; j < hi; ++j) cmax = s[j] > cmax ? s[j] : cmax;
        }
        if (!(cmax > kNegInf)) {  // every visible score is -inf: nothing to add
            jhi[r] = jlo[r];
            continue;
        }
        const float mnew = a.m[r] > cmax ? a.m[r] : cmax;
        const float alpha = std::exp(a.m[r] - mnew);
        typename V::vec vl = V::zero();
        const typename V::vec vmn = V::set1(mnew);
        int64_t j = lo;
        for (; j + V::width <= hi; j += V::width) {
            const typename V::vec p = V::exp(V::sub(V::load(s + j), vmn));
            V::store(s + j, p);
            vl = V::add(vl, p);
        }
        if (j < hi) {  // tail through a padded buffer so every lane goes through the same exp
            alignas(64) float t[64];
            for (int i = 0; i < V::width; ++i) t[i] = j + i < hi ? s[j + i] : kNegInf;
            const typename V::vec p = V::exp(V::sub(V::load(t), vmn));
            V::store(t, p);
            vl = V::add(vl, p);
            for (int64_t i = 0; j + i < hi; ++i) s[j + i] = t[i];
        }
        a.l[r] = a.l[r] * alpha + V::hsum(vl);
        a.m[r] = mnew;
        scale_row<V>(a.acc + r * a.ldacc, alpha, D);
    }
    // values: each row dequantized once, accumulated into every row that sees it
    for (int64_t j = jmin; j < jmax; ++j) {
        const uint8_t* vr = a.v + j * a.row_bytes;
        const float* vf;
        if (F == Format::F32) {
            vf = reinterpret_cast<const float*>(vr);
        } else {
            V::template k_row<F>(vr, row, dp);
            vf = row;
        }
        for (int r = 0; r < R; ++r)
            if (j >= jlo[r] && j < jhi[r]) axpy<V>(a.acc + r * a.ldacc, S[r * n + j], vf, D);
    }
}

}  // namespace attn_simd
}  // namespace slmk
