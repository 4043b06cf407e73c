// ---- the SIMD Mamba-2 kernels, generic over a vector-traits type V ----
// Included only by the per-ISA files (ssm_<isa>.cpp), each of which defines V with its
// intrinsics and compiles this with its own flags: this header holds no intrinsics.
//
// Same spec and, for the scans and the conv before its SiLU, the same bits as the scalar twins
// (ssm_ref.cpp): lanes run over head_dim (scans) or channels (conv), and each lane performs the
// scalar loop's multiplies and adds in the scalar loop's order, never a fused multiply-add.
// Tails narrower than a vector run the scalar expression; tails of SiLU go through a padded
// buffer so every value sees the same polynomial exp wherever it sits in a row.
//
// V must provide: width; chunk_rows (rows of the chunked scan's register blocks); vec; zero(), load(p), store(p, x), set1(f), add, mul, div, exp(x)
// (polynomial, clamped to [-87.3, 88.7]), hsum(x) (fixed order), and
// below(x, thr, a, b): per lane x < thr ? a : b.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>

#include "ssm/ssm.h"

namespace slmk {
namespace ssm_simd {

// silu(v) = v / (1 + exp(-v)); below -88.72 (where the scalar expf(-v) overflows to inf) the
// scalar twin gives v / inf: -0 for finite v, NaN for -inf; v * 0 gives the same.
template <class V>
static inline typename V::vec silu(typename V::vec v) {
    const auto s = V::div(v, V::add(V::set1(1.0f), V::exp(V::mul(v, V::set1(-1.0f)))));
    return V::below(v, V::set1(-88.72283f), V::mul(v, V::zero()), s);
}

template <class V>
static inline float scalar_silu(float v) {
    alignas(64) float buf[V::width] = {};
    buf[0] = v;
    V::store(buf, silu<V>(V::load(buf)));
    return buf[0];
}

// ---- causal conv1d: lanes over channels ----
template <class V>
static void conv(const SsmConvArgs& a) {
    constexpr int W = V::width;
    const int K = a.K;
    const int64_t C = a.C;
    auto win = [&](int64_t r, int64_t c) -> const float* {  // row r of [state; x], channel c
        return r < K - 1 ? a.state + r * C + c : a.x + (r - (K - 1)) * a.ldx + c;
    };
    for (int64_t t = 0; t < a.T; ++t) {
        float* y = a.y + t * a.ldy;
        int64_t c = a.c0;
        for (; c + W <= a.c1; c += W) {
            auto acc = V::zero();
            for (int j = 0; j < K; ++j) acc = V::add(acc, V::mul(V::load(win(t + j, c)), V::load(a.w + j * C + c)));
            if (a.b) acc = V::add(acc, V::load(a.b + c));
            V::store(y + c, a.silu ? silu<V>(acc) : acc);
        }
        for (; c < a.c1; ++c) {
            float acc = 0.0f;
            for (int j = 0; j < K; ++j) acc = acc + *win(t + j, c) * a.w[j * C + c];
            if (a.b) acc = acc + a.b[c];
            y[c] = a.silu ? scalar_silu<V>(acc) : acc;
        }
    }
    for (int r = 0; r < K - 1; ++r) {
        const int64_t src = a.T + r;
        for (int64_t c = a.c0; c < a.c1; ++c) a.state[r * C + c] = *win(src, c);
    }
}

// ---- the recurrence: lanes over head_dim ----
inline float softplus(float u) { return u > 20.0f ? u : std::log1p(std::exp(u)); }

template <class V>
static void scan(const SsmScanArgs& a) {
    constexpr int W = V::width;
    constexpr int NV = 4;  // vectors of head_dim per register block
    const int hd = a.head_dim, ds = a.d_state, per_group = a.n_heads / a.n_groups;
    for (int h = a.h0; h < a.h1; ++h) {
        const int g = h / per_group;
        float* S = a.state + static_cast<int64_t>(h) * ds * hd;
        for (int64_t t = 0; t < a.T; ++t) {
            const float dt = softplus(a.dt[t * a.lddt + h] + a.dt_bias[h]);
            const float dA = ssm_floor_decay(std::exp(dt * a.A[h]));
            const float* x = a.x + t * a.ldx + static_cast<int64_t>(h) * hd;
            const float* B = a.B + t * a.ldb + static_cast<int64_t>(g) * ds;
            const float* C = a.C + t * a.ldc + static_cast<int64_t>(g) * ds;
            float* y = a.y + t * a.ldy + static_cast<int64_t>(h) * hd;
            const auto vdA = V::set1(dA), vdt = V::set1(dt), vD = V::set1(a.D[h]);
            int p = 0;
            for (; p + NV * W <= hd; p += NV * W) {
                typename V::vec xdt[NV], acc[NV];
                for (int i = 0; i < NV; ++i) {
                    xdt[i] = V::mul(V::load(x + p + i * W), vdt);
                    acc[i] = V::zero();
                }
                for (int n = 0; n < ds; ++n) {
                    const auto b = V::set1(B[n]), c = V::set1(C[n]);
                    float* Sn = S + static_cast<int64_t>(n) * hd + p;
                    for (int i = 0; i < NV; ++i) {
                        const auto s = V::add(V::mul(V::load(Sn + i * W), vdA), V::mul(b, xdt[i]));
                        V::store(Sn + i * W, s);
                        acc[i] = V::add(acc[i], V::mul(s, c));
                    }
                }
                for (int i = 0; i < NV; ++i) V::store(y + p + i * W, V::add(acc[i], V::mul(vD, V::load(x + p + i * W))));
            }
            for (; p + W <= hd; p += W) {
                const auto xdt = V::mul(V::load(x + p), vdt);
                auto acc = V::zero();
                for (int n = 0; n < ds; ++n) {
                    float* Sn = S + static_cast<int64_t>(n) * hd + p;
                    const auto s = V::add(V::mul(V::load(Sn), vdA), V::mul(V::set1(B[n]), xdt));
                    V::store(Sn, s);
                    acc = V::add(acc, V::mul(s, V::set1(C[n])));
                }
                V::store(y + p, V::add(acc, V::mul(vD, V::load(x + p))));
            }
            for (; p < hd; ++p) {
                const float xdt = x[p] * dt;
                float acc = 0.0f;
                for (int n = 0; n < ds; ++n) {
                    const float s = S[n * hd + p] * dA + B[n] * xdt;
                    S[n * hd + p] = s;
                    acc = acc + s * C[n];
                }
                y[p] = acc + a.D[h] * x[p];
            }
        }
    }
}

// ---- the chunked scan ----
// G rows with lanes over s: B of the chunk transposed to bt [n][s] (s < q), so G[t][s..s+W) is
// a vertical sum over n, in the scalar order.
template <class V>
static void gram(const SsmScanArgs& a, int g, int64_t chunk, float* G, float* bt) {
    constexpr int W = V::width;
    const int ds = a.d_state;
    const int64_t t0 = chunk * kSsmChunk;
    const int q = static_cast<int>(std::min<int64_t>(kSsmChunk, a.T - t0));
    for (int s = 0; s < q; ++s) {
        const float* B = a.B + (t0 + s) * a.ldb + static_cast<int64_t>(g) * ds;
        for (int n = 0; n < ds; ++n) bt[n * kSsmChunk + s] = B[n];
    }
    for (int t = 0; t < q; ++t) {
        const float* C = a.C + (t0 + t) * a.ldc + static_cast<int64_t>(g) * ds;
        int s = 0;
        for (; s + W <= t + 1; s += W) {
            auto acc = V::zero();
            for (int n = 0; n < ds; ++n) acc = V::add(acc, V::mul(V::set1(C[n]), V::load(bt + n * kSsmChunk + s)));
            V::store(G + t * kSsmChunk + s, acc);
        }
        for (; s <= t; ++s) {
            float acc = 0.0f;
            for (int n = 0; n < ds; ++n) acc = acc + C[n] * bt[n * kSsmChunk + s];
            G[t * kSsmChunk + s] = acc;
        }
    }
}

// acc[i] += m * v[i] for NV vectors, the scalar order per lane
template <class V, int NV>
static inline void axpy_block(typename V::vec* acc, float m, const typename V::vec* v) {
    const auto vm = V::set1(m);
    for (int i = 0; i < NV; ++i) acc[i] = V::add(acc[i], V::mul(vm, v[i]));
}

template <class V, int NV>
static inline void load_block(typename V::vec* v, const float* p) {
    for (int i = 0; i < NV; ++i) v[i] = V::load(p + i * V::width);
}

// One head's outputs and new state for one chunk, head_dim columns [p0, p0 + NV*W): R rows of
// outputs (or of the state) at a time share each load of the state (or of x). Per lane, each
// output still sums n = 0.. then s = 0..t, and each state element s = 0..q-1, as the twin.
template <class V, int NV, int R>
static inline void chunk_cols(const SsmScanArgs& a, const SsmChunkScratch& sc, int h, int64_t t0, int q, int p0,
                              float* S) {
    using vec = typename V::vec;
    constexpr int W = V::width;
    const int hd = a.head_dim, ds = a.d_state;
    const int64_t xoff = static_cast<int64_t>(h) * hd + p0;
    const float* xs = sc.xs + p0;  // row s at xs + s * hd
    const vec vD = V::set1(a.D[h]);
    vec v[NV];
    int t = 0;
    for (; t + R <= q; t += R) {
        vec acc[R][NV];
        for (int r = 0; r < R; ++r)
            for (int i = 0; i < NV; ++i) acc[r][i] = V::zero();
        for (int n = 0; n < ds; ++n) {
            load_block<V, NV>(v, S + static_cast<int64_t>(n) * hd + p0);
            for (int r = 0; r < R; ++r) axpy_block<V, NV>(acc[r], sc.cs[(t + r) * ds + n], v);
        }
        for (int s = 0; s <= t; ++s) {  // every row of the block sees s
            load_block<V, NV>(v, xs + static_cast<int64_t>(s) * hd);
            for (int r = 0; r < R; ++r) axpy_block<V, NV>(acc[r], sc.M[(t + r) * kSsmChunk + s], v);
        }
        for (int s = t + 1; s < t + R; ++s) {  // the triangle: rows t+r with r >= s - t
            load_block<V, NV>(v, xs + static_cast<int64_t>(s) * hd);
            for (int r = s - t; r < R; ++r) axpy_block<V, NV>(acc[r], sc.M[(t + r) * kSsmChunk + s], v);
        }
        for (int r = 0; r < R; ++r) {
            const float* x = xs + static_cast<int64_t>(t + r) * hd;
            float* y = a.y + (t0 + t + r) * a.ldy + xoff;
            for (int i = 0; i < NV; ++i) V::store(y + i * W, V::add(acc[r][i], V::mul(vD, V::load(x + i * W))));
        }
    }
    for (; t < q; ++t) {
        vec acc[NV];
        for (int i = 0; i < NV; ++i) acc[i] = V::zero();
        for (int n = 0; n < ds; ++n) {
            load_block<V, NV>(v, S + static_cast<int64_t>(n) * hd + p0);
            axpy_block<V, NV>(acc, sc.cs[t * ds + n], v);
        }
        for (int s = 0; s <= t; ++s) {
            load_block<V, NV>(v, xs + static_cast<int64_t>(s) * hd);
            axpy_block<V, NV>(acc, sc.M[t * kSsmChunk + s], v);
        }
        const float* x = xs + static_cast<int64_t>(t) * hd;
        float* y = a.y + (t0 + t) * a.ldy + xoff;
        for (int i = 0; i < NV; ++i) V::store(y + i * W, V::add(acc[i], V::mul(vD, V::load(x + i * W))));
    }
    // the state carried out: R state rows n at a time share each x row
    const vec lend = V::set1(sc.lcum[q - 1]);
    int n = 0;
    for (; n + R <= ds; n += R) {
        vec acc[R][NV];
        for (int r = 0; r < R; ++r)
            for (int i = 0; i < NV; ++i) acc[r][i] = V::mul(lend, V::load(S + static_cast<int64_t>(n + r) * hd + p0 + i * W));
        for (int s = 0; s < q; ++s) {
            load_block<V, NV>(v, xs + static_cast<int64_t>(s) * hd);
            for (int r = 0; r < R; ++r) axpy_block<V, NV>(acc[r], sc.W[s * ds + n + r], v);
        }
        for (int r = 0; r < R; ++r)
            for (int i = 0; i < NV; ++i) V::store(S + static_cast<int64_t>(n + r) * hd + p0 + i * W, acc[r][i]);
    }
    for (; n < ds; ++n) {
        float* Sn = S + static_cast<int64_t>(n) * hd + p0;
        vec acc[NV];
        for (int i = 0; i < NV; ++i) acc[i] = V::mul(lend, V::load(Sn + i * W));
        for (int s = 0; s < q; ++s) {
            load_block<V, NV>(v, xs + static_cast<int64_t>(s) * hd);
            axpy_block<V, NV>(acc, sc.W[s * ds + n], v);
        }
        for (int i = 0; i < NV; ++i) V::store(Sn + i * W, acc[i]);
    }
}

template <class V>
static void chunk(const SsmScanArgs& a) {
    constexpr int W = V::width;
    const int hd = a.head_dim, ds = a.d_state, per_group = a.n_heads / a.n_groups;
    const int64_t n_chunks = (a.T + kSsmChunk - 1) / kSsmChunk;
    SsmChunkScratch sc(a.scratch, ds);
    for (int h = a.h0; h < a.h1; ++h) {
        const int g = h / per_group;
        float* S = a.state + static_cast<int64_t>(h) * ds * hd;
        for (int64_t c = 0; c < n_chunks; ++c) {
            const int64_t t0 = c * kSsmChunk;
            const int q = static_cast<int>(std::min<int64_t>(kSsmChunk, a.T - t0));
            const float* G = a.gram + (static_cast<int64_t>(g) * n_chunks + c) * kSsmChunk * kSsmChunk;
            for (int t = 0; t < q; ++t) {  // scalar per token, as the twin
                sc.dt[t] = softplus(a.dt[(t0 + t) * a.lddt + h] + a.dt_bias[h]);
                sc.a[t] = ssm_floor_decay(std::exp(sc.dt[t] * a.A[h]));
                sc.lcum[t] = t == 0 ? sc.a[0] : ssm_floor_decay(sc.lcum[t - 1] * sc.a[t]);
                const auto va = V::set1(sc.a[t]), vfloor = V::set1(kSsmDecayFloor), vzero = V::zero();
                int s = 0;
                for (; s + W <= t; s += W) {
                    const auto l = V::mul(V::load(sc.lrow + s), va);
                    V::store(sc.lrow + s, V::below(l, vfloor, vzero, l));
                }
                for (; s < t; ++s) sc.lrow[s] = ssm_floor_decay(sc.lrow[s] * sc.a[t]);
                sc.lrow[t] = 1.0f;
                float* M = sc.M + t * kSsmChunk;
                const float* Gt = G + t * kSsmChunk;
                s = 0;
                for (; s + W <= t + 1; s += W)
                    V::store(M + s, V::mul(V::mul(V::load(Gt + s), V::load(sc.lrow + s)), V::load(sc.dt + s)));
                for (; s <= t; ++s) M[s] = Gt[s] * sc.lrow[s] * sc.dt[s];
                const float* C = a.C + (t0 + t) * a.ldc + static_cast<int64_t>(g) * ds;
                const auto vl = V::set1(sc.lcum[t]);
                int n = 0;
                for (; n + W <= ds; n += W) V::store(sc.cs + t * ds + n, V::mul(V::load(C + n), vl));
                for (; n < ds; ++n) sc.cs[t * ds + n] = C[n] * sc.lcum[t];
            }
            for (int s = 0; s < q; ++s) {
                const float* B = a.B + (t0 + s) * a.ldb + static_cast<int64_t>(g) * ds;
                const float f = sc.lrow[s] * sc.dt[s];
                const auto vf = V::set1(f);
                int n = 0;
                for (; n + W <= ds; n += W) V::store(sc.W + s * ds + n, V::mul(vf, V::load(B + n)));
                for (; n < ds; ++n) sc.W[s * ds + n] = f * B[n];
            }
            for (int s = 0; s < q; ++s) {
                const float* x = a.x + (t0 + s) * a.ldx + static_cast<int64_t>(h) * hd;
                for (int p = 0; p < hd; ++p) sc.xs[s * hd + p] = x[p];
            }
            int p = 0;
            for (; p + 4 * W <= hd; p += 4 * W) chunk_cols<V, 4, V::chunk_rows>(a, sc, h, t0, q, p, S);
            for (; p + W <= hd; p += W) chunk_cols<V, 1, V::chunk_rows>(a, sc, h, t0, q, p, S);
            for (; p < hd; ++p) {  // scalar tail columns, the twin's expression
                const int64_t xo = static_cast<int64_t>(h) * hd + p;
                for (int t = 0; t < q; ++t) {
                    float acc = 0.0f;
                    for (int n = 0; n < ds; ++n) acc = acc + sc.cs[t * ds + n] * S[n * hd + p];
                    for (int s = 0; s <= t; ++s) acc = acc + sc.M[t * kSsmChunk + s] * a.x[(t0 + s) * a.ldx + xo];
                    a.y[(t0 + t) * a.ldy + xo] = acc + a.D[h] * a.x[(t0 + t) * a.ldx + xo];
                }
                for (int n = 0; n < ds; ++n) {
                    float acc = sc.lcum[q - 1] * S[n * hd + p];
                    for (int s = 0; s < q; ++s) acc = acc + sc.W[s * ds + n] * a.x[(t0 + s) * a.ldx + xo];
                    S[n * hd + p] = acc;
                }
            }
        }
    }
}

// ---- gated RMSNorm of one row ----
template <class V>
static void gated_norm(const float* y, const float* z, const float* w, float* out, int64_t n, int64_t group,
                       float eps) {
    constexpr int W = V::width;
    for (int64_t g0 = 0; g0 < n; g0 += group) {
        const int64_t g1 = g0 + group;
        auto ss = V::zero();
        int64_t i = g0;
        for (; i + W <= g1; i += W) {
            const auto v = V::mul(silu<V>(V::load(z + i)), V::load(y + i));
            V::store(out + i, v);
            ss = V::add(ss, V::mul(v, v));
        }
        float tail = 0.0f;
        for (; i < g1; ++i) {
            const float v = scalar_silu<V>(z[i]) * y[i];
            out[i] = v;
            tail += v * v;
        }
        const float scale = 1.0f / std::sqrt((V::hsum(ss) + tail) / static_cast<float>(group) + eps);
        const auto vs = V::set1(scale);
        i = g0;
        for (; i + W <= g1; i += W) V::store(out + i, V::mul(V::mul(V::load(out + i), vs), V::load(w + i)));
        for (; i < g1; ++i) out[i] = (out[i] * scale) * w[i];
    }
}

// The kernels of one ISA's vector traits V, as registry entries.
template <class V>
static constexpr std::array<KernelEntry, 5> entries = {
    entry<Op::ssm_conv, conv<V>>(Format::F32),   entry<Op::ssm_scan, scan<V>>(Format::F32),
    entry<Op::ssm_gram, gram<V>>(Format::F32),   entry<Op::ssm_chunk, chunk<V>>(Format::F32),
    entry<Op::ssm_gated_norm, gated_norm<V>>(Format::F32),
};

}  // namespace ssm_simd
}  // namespace slmk
