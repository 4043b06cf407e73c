// ---- the SIMD attention chunk kernel, generic over a vector-traits type V ----
// Included only by the per-ISA files (attention_<isa>.cpp), each of which defines V with its
// intrinsics and compiles this with its own flags: this header itself holds no intrinsics.
//
// Same spec as the scalar twin (attention_ref.cpp); what differs is the order of float sums
// and the exp (a polynomial, within 2 ulp). Scores take W keys at a time: per-lane fused
// multiply-adds over the head dimension, then one transpose-and-add tree (reduce_lanes)
// instead of W horizontal sums. Values accumulate per row as acc = acc * alpha, then
// acc = fma(p_j, v_j, acc) key by key.
//
// Where the key and value vectors come from (RowSrc): with many query rows (a prefill tile)
// the chunk's rows are dequantized once into float buffers and every row block reads those;
// with few rows (decode: one GQA group) they are converted from the cache straight into
// registers, with no store and reload. Dequantizing is exact (f16 -> f32, d * q), so both give
// the same vectors and the same bits. Rows go through in blocks that share each key/value
// vector load; a row's arithmetic depends only on that row's inputs, never on how many rows
// share the call, so results are the same for any query tiling, batch, or thread count.
//
// V must provide: width; pv_rows, pv_vecs (register blocking of the value accumulation);
// score_rows (rows per score block); vec; zero(), load(p), store(p, x), set1(f), add, sub,
// mul, fma(a, b, c) = a*b+c, max, hsum(x) (fixed reduction order), hmax(x), exp(x) (0 for
// x < -87.3, so -inf gives 0); reduce_lanes(x[width]) (lane i = the sum of x[i]'s lanes, a
// fixed tree); prefetch(p); k_row<F>(row, dst, dp) (dp floats of one cached row);
// k_vec<F>(row, d, sc) (the width floats at d of one cached row, d + width <= dp, given the
// scale sc of the block holding d for quantized formats) and f16_column(p, stride, n, dst)
// (n f16 values stride bytes apart, as floats: a chunk's block scales).
#pragma once
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>

#include "attention/attention.h"
#include "core/fp16.h"
#include "quant/formats.h"

namespace slmk {
namespace attn_simd {

// Rows with at most this many query rows per chunk read K/V straight from the cache.
constexpr int kDirectRows = 8;

// Dequantizes rows [j0, j1) of a chunk into dst [n][dp] floats (row j at dst + j * dp).
template <class V, Format F>
static inline void rows_as_float(const uint8_t* base, int64_t row_bytes, int64_t j0, int64_t j1, int64_t dp,
                                 float* dst) {
    for (int64_t j = j0; j < j1; ++j) {
        if (F == Format::F32) {
            const float* src = reinterpret_cast<const float*>(base + j * row_bytes);
            for (int64_t i = 0; i < dp; ++i) dst[j * dp + i] = src[i];
        } else {
            V::template k_row<F>(base + j * row_bytes, dst + j * dp, dp);
        }
    }
}

// One chunk's K (or V) rows as float vectors: from a dequantized buffer, or (Direct) from the
// cache rows themselves. elem() serves the scalar tails (a dp or head_dim that is not a
// multiple of the width); it gives the same float as the vector paths (d * q is exact).
template <class V, Format F, bool Direct>
struct RowSrc {
    const uint8_t* base;
    int64_t row_bytes;
    const float* buf;  // [n][dp], when !Direct
    int64_t dp;
    const float* sc = nullptr;  // Direct, quantized formats: block b's scale of row j at sc[b * n + j]
    int64_t n = 0;
    static constexpr bool quantized = F == Format::Q8_0 || F == Format::Q4_0;
    typename V::vec load(int64_t j, int64_t d) const {
        if (Direct) return V::template k_vec<F>(base + j * row_bytes, d, quantized ? sc[(d / QK) * n + j] : 0.0f);
        return V::load(buf + j * dp + d);
    }
    float elem(int64_t j, int64_t e) const {
        if (!Direct) return buf[j * dp + e];
        const uint8_t* row = base + j * row_bytes;
        if (F == Format::F32) return reinterpret_cast<const float*>(row)[e];
        if (F == Format::F16) return fp16_to_fp32(load_u16(row + 2 * e));
        if (F == Format::Q8_0) {
            const uint8_t* blk = row + (e / QK) * sizeof(block_q8_0);
            return fp16_to_fp32(load_u16(blk)) * static_cast<float>(static_cast<int8_t>(blk[2 + e % QK]));
        }
        const uint8_t* blk = row + (e / QK) * sizeof(block_q4_0);  // Q4_0
        const int i = static_cast<int>(e % QK);
        const int nib = i < 16 ? (blk[2 + i] & 0xF) : (blk[2 + i - 16] >> 4);
        return fp16_to_fp32(load_u16(blk)) * static_cast<float>(nib - 8);
    }
};

// Spreads prefetches of the caller's next chunk (its key and value rows, `lines` cache lines
// each) over the keys of this one: a chunk is one pool block's run of slots, a page or less,
// where the hardware prefetchers stop, so without this every chunk would start on demand misses.
struct Prefetcher {
    const uint8_t *k = nullptr, *v = nullptr;
    int64_t lines = 0, step = 0, line = 0;
    template <class V>
    void next() {
        for (const int64_t upto = line + step < lines ? line + step : lines; line < upto; ++line) {
            V::prefetch(k + line * 64);
            V::prefetch(v + line * 64);
        }
    }
};

// Scores of rows [r0, r0 + RB) against keys [j0, j0 + nk), nk <= W: lane l of a key's
// accumulator sums q[d] * k[d] over d = l mod W (fused multiply-adds in d order, from zero),
// then reduce_lanes folds the W accumulators. Only the visible keys of each row are stored.
// ND > 0: dp is exactly ND vectors (the common head dims), so the d loop unrolls whole.
template <class V, int RB, int ND, class Src>
static inline void score_rows(const AttnChunkArgs& a, int r0, const Src& K, int64_t j0, int nk, const int32_t* jlo,
                              const int32_t* jhi, float* S, Prefetcher* pf) {
    constexpr int W = V::width;
    using vec = typename V::vec;
    const int64_t dp = a.ldq, n = a.n;
    const float* q[RB];
    for (int i = 0; i < RB; ++i) q[i] = a.q + (r0 + i) * a.ldq;
    vec acc[RB][W];
    for (int k = 0; k < nk; ++k) {
        if (pf) pf->next<V>();
        vec s[RB];
        for (int i = 0; i < RB; ++i) s[i] = V::zero();
        int64_t d = 0;
        if (ND > 0) {
            for (int dd = 0; dd < ND; ++dd) {
                const vec kv = K.load(j0 + k, dd * W);
                for (int i = 0; i < RB; ++i) s[i] = V::fma(V::load(q[i] + dd * W), kv, s[i]);
            }
            d = ND * W;
        } else {
            for (; d + W <= dp; d += W) {
                const vec kv = K.load(j0 + k, d);
                for (int i = 0; i < RB; ++i) s[i] = V::fma(V::load(q[i] + d), kv, s[i]);
            }
        }
        if (ND == 0 && d < dp) {  // dp not a multiple of W (f32/f16 caches): the tail through zeroed
                       // buffers, never a load past the row (the next row, or past the end)
            alignas(64) float kt[W] = {};
            for (int64_t e = d; e < dp; ++e) kt[e - d] = K.elem(j0 + k, e);
            const vec kv = V::load(kt);
            for (int i = 0; i < RB; ++i) {
                alignas(64) float qt[W] = {};
                for (int64_t e = d; e < dp; ++e) qt[e - d] = q[i][e];
                s[i] = V::fma(V::load(qt), kv, s[i]);
            }
        }
        for (int i = 0; i < RB; ++i) acc[i][k] = s[i];
    }
    for (int i = 0; i < RB; ++i) {
        for (int k = nk; k < W; ++k) acc[i][k] = V::zero();
        alignas(64) float t[W];
        V::store(t, V::reduce_lanes(acc[i]));
        const int r = r0 + i;
        const int64_t lo = jlo[r] > j0 ? jlo[r] : j0, hi = jhi[r] < j0 + nk ? jhi[r] : j0 + nk;
        for (int64_t j = lo; j < hi; ++j) S[r * n + j] = t[j - j0];
    }
}

template <class V, int ND, class Src>
static inline void score_block(int rb, const AttnChunkArgs& a, int r, const Src& K, int64_t j0, int nk,
                               const int32_t* jlo, const int32_t* jhi, float* S, Prefetcher* p) {
    switch (rb) {
        case 1: score_rows<V, 1, ND>(a, r, K, j0, nk, jlo, jhi, S, p); break;
        case 2: score_rows<V, 2, ND>(a, r, K, j0, nk, jlo, jhi, S, p); break;
        case 3: score_rows<V, 3, ND>(a, r, K, j0, nk, jlo, jhi, S, p); break;
        default: score_rows<V, 4, ND>(a, r, K, j0, nk, jlo, jhi, S, p); break;
    }
}

// acc rows [r0, r0 + RB) = acc * alpha + sum over keys [lo, hi) of p_j * v_j (p in S), keys in
// order: per element c = acc * alpha, then c = fma(p_j, v_j, c). RB x NV accumulator vectors
// stay in registers across the chunk; each value vector is loaded once for the RB rows.
template <class V, int RB, class Src>
static inline void pv_rows(const AttnChunkArgs& a, int r0, const float* S, const float* alpha, const Src& Vs,
                           int64_t lo, int64_t hi, Prefetcher* pf) {
    constexpr int W = V::width, NV = V::pv_vecs;
    using vec = typename V::vec;
    const int64_t D = a.head_dim, n = a.n;
    float* acc[RB];
    const float* s[RB];
    for (int i = 0; i < RB; ++i) {
        acc[i] = a.acc + (r0 + i) * a.ldacc;
        s[i] = S + (r0 + i) * n;
    }
    int64_t d0 = 0;
    for (; d0 + NV * W <= D; d0 += NV * W) {
        vec c[RB][NV];
        for (int i = 0; i < RB; ++i) {
            const vec va = V::set1(alpha[r0 + i]);
            for (int k = 0; k < NV; ++k) c[i][k] = V::mul(V::load(acc[i] + d0 + k * W), va);
        }
        for (int64_t j = lo; j < hi; ++j) {
            if (pf && d0 == 0) pf->next<V>();
            vec v[NV];
            for (int k = 0; k < NV; ++k) v[k] = Vs.load(j, d0 + k * W);
            for (int i = 0; i < RB; ++i) {
                const vec p = V::set1(s[i][j]);
                for (int k = 0; k < NV; ++k) c[i][k] = V::fma(p, v[k], c[i][k]);
            }
        }
        for (int i = 0; i < RB; ++i)
            for (int k = 0; k < NV; ++k) V::store(acc[i] + d0 + k * W, c[i][k]);
    }
    for (; d0 + W <= D; d0 += W) {
        vec c[RB];
        for (int i = 0; i < RB; ++i) c[i] = V::mul(V::load(acc[i] + d0), V::set1(alpha[r0 + i]));
        for (int64_t j = lo; j < hi; ++j) {
            const vec v = Vs.load(j, d0);
            for (int i = 0; i < RB; ++i) c[i] = V::fma(V::set1(s[i][j]), v, c[i]);
        }
        for (int i = 0; i < RB; ++i) V::store(acc[i] + d0, c[i]);
    }
    for (; d0 < D; ++d0) {  // D not a multiple of the width: a scalar tail, same order
        for (int i = 0; i < RB; ++i) {
            float c = acc[i][d0] * alpha[r0 + i];
            for (int64_t j = lo; j < hi; ++j) c = std::fma(s[i][j], Vs.elem(j, d0), c);
            acc[i][d0] = c;
        }
    }
}

template <class V, Format F, bool Direct>
static void chunk_impl(const AttnChunkArgs& a) {
    constexpr float kNegInf = -std::numeric_limits<float>::infinity();
    constexpr int W = V::width;
    using vec = typename V::vec;
    const int64_t n = a.n, dp = a.ldq, D = a.head_dim;
    const int R = a.R;
    float* S = a.scratch;                                          // [R][n] scores, then probabilities
    int32_t* jlo = reinterpret_cast<int32_t*>(a.scratch + (R * n + 15) / 16 * 16);  // [R] visible keys [jlo, jhi)
    int32_t* jhi = jlo + R;
    float* alpha = reinterpret_cast<float*>(jhi + R);                // [R] rescale of each row's state
    float* kbuf = a.scratch + (R * n + 15) / 16 * 16 + ((3 * R + 15) / 16) * 16;   // [n][dp] dequantized keys
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
    const bool f32_rows = F == Format::F32 && a.row_bytes == dp * static_cast<int64_t>(sizeof(float));
    RowSrc<V, F, Direct> K{a.k, a.row_bytes, nullptr, dp}, Vs{a.v, a.row_bytes, nullptr, dp};
    if (Direct && RowSrc<V, F, Direct>::quantized) {
        // the block scales of the visible rows, converted once per chunk rather than once per
        // use (f16 -> f32 is exact: the same floats); into the unused dequantization buffers
        const int64_t nb = dp / QK, bb = F == Format::Q8_0 ? sizeof(block_q8_0) : sizeof(block_q4_0);
        float* ksc = kbuf;
        float* vsc = kbuf + nb * n;
        for (int64_t b = 0; b < nb; ++b) {
            V::f16_column(a.k + jmin * a.row_bytes + b * bb, a.row_bytes, jmax - jmin, ksc + b * n + jmin);
            V::f16_column(a.v + jmin * a.row_bytes + b * bb, a.row_bytes, jmax - jmin, vsc + b * n + jmin);
        }
        K.sc = ksc;
        Vs.sc = vsc;
        K.n = Vs.n = n;
    }
    if (!Direct) {
        if (f32_rows) {  // already float rows, dp apart
            K.buf = reinterpret_cast<const float*>(a.k);
            Vs.buf = reinterpret_cast<const float*>(a.v);
        } else {
            rows_as_float<V, F>(a.k, a.row_bytes, jmin, jmax, dp, kbuf);
            rows_as_float<V, F>(a.v, a.row_bytes, jmin, jmax, dp, vbuf);
            K.buf = kbuf;
            Vs.buf = vbuf;
        }
    }
    // the next chunk's rows, prefetched across the keys of the first score row block
    Prefetcher pf;
    if (a.k_next && a.v_next) {
        pf = Prefetcher{a.k_next, a.v_next, (a.n_next * a.row_bytes + 63) / 64, 0, 0};
        pf.step = (pf.lines + 2 * (jmax - jmin) - 1) / (2 * (jmax - jmin));  // half over scores, half over values
    }
    // scores, W keys at a time, rows in blocks of V::score_rows
    for (int64_t j0 = jmin; j0 < jmax; j0 += W) {
        const int nk = static_cast<int>(jmax - j0 < W ? jmax - j0 : W);
        for (int r = 0; r < R;) {
            const int rb = R - r < V::score_rows ? R - r : V::score_rows;
            bool any = false;
            for (int i = 0; i < rb; ++i) any |= jlo[r + i] < j0 + nk && jhi[r + i] > j0 && jlo[r + i] < jhi[r + i];
            Prefetcher* p = r == 0 ? &pf : nullptr;
            if (any) {
                if (dp == 4 * W) {
                    score_block<V, 4>(rb, a, r, K, j0, nk, jlo, jhi, S, p);
                } else if (dp == 8 * W) {
                    score_block<V, 8>(rb, a, r, K, j0, nk, jlo, jhi, S, p);
                } else {
                    score_block<V, 0>(rb, a, r, K, j0, nk, jlo, jhi, S, p);
                }
            } else if (p) {
                for (int k = 0; k < nk; ++k) pf.next<V>();
            }
            r += rb;
        }
    }
    // online softmax per row: probabilities into S; alpha rescales the running state
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
        if (!(cmax > kNegInf)) {  // every visible score is -inf: nothing to add
            jhi[r] = jlo[r];
            continue;
        }
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
        alpha[r] = al;
    }
    // values: rows that share their key range (a decode group; a prefill tile away from the
    // diagonal) go through together, up to V::pv_rows at a time; the first row block carries
    // the other half of the prefetches
    Prefetcher* pv_pf = &pf;
    for (int r = 0; r < R;) {
        if (jlo[r] >= jhi[r]) {
            ++r;
            continue;
        }
        int rb = 1;
        while (rb < V::pv_rows && r + rb < R && jlo[r + rb] == jlo[r] && jhi[r + rb] == jhi[r]) ++rb;
        switch (rb) {
            case 1: pv_rows<V, 1>(a, r, S, alpha, Vs, jlo[r], jhi[r], pv_pf); break;
            case 2: pv_rows<V, 2>(a, r, S, alpha, Vs, jlo[r], jhi[r], pv_pf); break;
            case 3: pv_rows<V, 3>(a, r, S, alpha, Vs, jlo[r], jhi[r], pv_pf); break;
            default: pv_rows<V, 4>(a, r, S, alpha, Vs, jlo[r], jhi[r], pv_pf); break;
        }
        pv_pf = nullptr;
        r += rb;
    }
    while (pf.line < pf.lines) pf.next<V>();  // whatever the value pass did not cover
}

template <class V, Format F>
static void chunk(const AttnChunkArgs& a) {
    if (a.R <= kDirectRows)
        chunk_impl<V, F, true>(a);
    else
        chunk_impl<V, F, false>(a);
}

// The chunk kernels of one ISA's vector traits V, one per cache format, as registry entries.
template <class V>
static constexpr std::array<KernelEntry, 4> chunk_entries = {
    entry<Op::attn_chunk, chunk<V, Format::F32>>(Format::F32),
    entry<Op::attn_chunk, chunk<V, Format::F16>>(Format::F16),
    entry<Op::attn_chunk, chunk<V, Format::Q8_0>>(Format::Q8_0),
    entry<Op::attn_chunk, chunk<V, Format::Q4_0>>(Format::Q4_0),
};

}  // namespace attn_simd
}  // namespace slmk
