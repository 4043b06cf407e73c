// ---- Mamba-2 kernels: scalar twins (the spec, see ssm.h) and the drivers ----
#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "../core/thread_pool.h"
#include "ssm.h"

namespace slmk {

namespace {

inline float silu(float v) { return v / (1.0f + std::exp(-v)); }

// ---- causal conv1d ----
void conv_scalar(const SsmConvArgs& a) {
    const int K = a.K;
    const int64_t C = a.C;
    for (int64_t c = a.c0; c < a.c1; ++c) {
        for (int64_t t = 0; t < a.T; ++t) {
            float acc = 0.0f;
            for (int j = 0; j < K; ++j) {
                const int64_t r = t + j;  // row of win = [state (K-1 rows); x (T rows)]
                const float v = r < K - 1 ? a.state[r * C + c] : a.x[(r - (K - 1)) * a.ldx + c];
                acc = acc + v * a.w[j * C + c];
            }
            if (a.b) acc = acc + a.b[c];
            a.y[t * a.ldy + c] = a.silu ? silu(acc) : acc;
        }
        // the new state: the last K-1 rows of win (ascending r reads rows not yet overwritten)
        for (int r = 0; r < K - 1; ++r) {
            const int64_t src = a.T + r;
            a.state[r * C + c] = src < K - 1 ? a.state[src * C + c] : a.x[(src - (K - 1)) * a.ldx + c];
        }
    }
}

// ---- the recurrence ----
inline float softplus(float u) { return u > 20.0f ? u : std::log1p(std::exp(u)); }

void scan_scalar(const SsmScanArgs& a) {
    const int hd = a.head_dim, ds = a.d_state, per_group = a.n_heads / a.n_groups;
    for (int h = a.h0; h < a.h1; ++h) {
        const int g = h / per_group;
        float* S = a.state + static_cast<int64_t>(h) * ds * hd;  // [ds][hd]
        for (int64_t t = 0; t < a.T; ++t) {
            const float dt = softplus(a.dt[t * a.lddt + h] + a.dt_bias[h]);
            const float dA = ssm_floor_decay(std::exp(dt * a.A[h]));
            const float* x = a.x + t * a.ldx + static_cast<int64_t>(h) * hd;
            const float* B = a.B + t * a.ldb + static_cast<int64_t>(g) * ds;
            const float* C = a.C + t * a.ldc + static_cast<int64_t>(g) * ds;
            float* y = a.y + t * a.ldy + static_cast<int64_t>(h) * hd;
            for (int p = 0; p < hd; ++p) {
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

// ---- the chunked scan (SSD form) ----
void gram_scalar(const SsmScanArgs& a, int g, int64_t chunk, float* G, float* /*bt*/) {
    const int ds = a.d_state;
    const int64_t t0 = chunk * kSsmChunk;
    const int q = static_cast<int>(std::min<int64_t>(kSsmChunk, a.T - t0));
    for (int t = 0; t < q; ++t) {
        const float* C = a.C + (t0 + t) * a.ldc + static_cast<int64_t>(g) * ds;
        for (int s = 0; s <= t; ++s) {
            const float* B = a.B + (t0 + s) * a.ldb + static_cast<int64_t>(g) * ds;
            float acc = 0.0f;
            for (int n = 0; n < ds; ++n) acc = acc + C[n] * B[n];
            G[t * kSsmChunk + s] = acc;
        }
    }
}

void chunk_scalar(const SsmScanArgs& a) {
    const int hd = a.head_dim, ds = a.d_state, per_group = a.n_heads / a.n_groups;
    const int64_t n_chunks = (a.T + kSsmChunk - 1) / kSsmChunk;
    SsmChunkScratch sc(a.scratch, ds);
    for (int h = a.h0; h < a.h1; ++h) {
        const int g = h / per_group;
        float* S = a.state + static_cast<int64_t>(h) * ds * hd;  // [ds][hd]
        for (int64_t c = 0; c < n_chunks; ++c) {
            const int64_t t0 = c * kSsmChunk;
            const int q = static_cast<int>(std::min<int64_t>(kSsmChunk, a.T - t0));
            const float* G = a.gram + (static_cast<int64_t>(g) * n_chunks + c) * kSsmChunk * kSsmChunk;
            // per token: dt, decay, cumulative decay; the decay rows L[t][.] and M
            for (int t = 0; t < q; ++t) {
                sc.dt[t] = softplus(a.dt[(t0 + t) * a.lddt + h] + a.dt_bias[h]);
                sc.a[t] = ssm_floor_decay(std::exp(sc.dt[t] * a.A[h]));
                sc.lcum[t] = t == 0 ? sc.a[0] : ssm_floor_decay(sc.lcum[t - 1] * sc.a[t]);
                for (int s = 0; s < t; ++s) sc.lrow[s] = ssm_floor_decay(sc.lrow[s] * sc.a[t]);
                sc.lrow[t] = 1.0f;
                for (int s = 0; s <= t; ++s) sc.M[t * kSsmChunk + s] = G[t * kSsmChunk + s] * sc.lrow[s] * sc.dt[s];
                const float* C = a.C + (t0 + t) * a.ldc + static_cast<int64_t>(g) * ds;
                for (int n = 0; n < ds; ++n) sc.cs[t * ds + n] = C[n] * sc.lcum[t];
            }
            for (int s = 0; s < q; ++s) {  // lrow now holds L[q-1][s]
                const float* B = a.B + (t0 + s) * a.ldb + static_cast<int64_t>(g) * ds;
                const float f = sc.lrow[s] * sc.dt[s];
                for (int n = 0; n < ds; ++n) sc.W[s * ds + n] = f * B[n];
            }
            // outputs from the state carried in, then the state carried out
            for (int t = 0; t < q; ++t) {
                const float* x = a.x + (t0 + t) * a.ldx + static_cast<int64_t>(h) * hd;
                float* y = a.y + (t0 + t) * a.ldy + static_cast<int64_t>(h) * hd;
                for (int p = 0; p < hd; ++p) {
                    float acc = 0.0f;
                    for (int n = 0; n < ds; ++n) acc = acc + sc.cs[t * ds + n] * S[n * hd + p];
                    for (int s = 0; s <= t; ++s)
                        acc = acc + sc.M[t * kSsmChunk + s] * a.x[(t0 + s) * a.ldx + static_cast<int64_t>(h) * hd + p];
                    y[p] = acc + a.D[h] * x[p];
                }
            }
            const float lend = sc.lcum[q - 1];
            for (int n = 0; n < ds; ++n)
                for (int p = 0; p < hd; ++p) {
                    float acc = lend * S[n * hd + p];
                    for (int s = 0; s < q; ++s)
                        acc = acc + sc.W[s * ds + n] * a.x[(t0 + s) * a.ldx + static_cast<int64_t>(h) * hd + p];
                    S[n * hd + p] = acc;
                }
        }
    }
}

// ---- gated RMSNorm ----
void gated_norm_scalar(const float* y, const float* z, const float* w, float* out, int64_t n, int64_t group,
                       float eps) {
    for (int64_t g0 = 0; g0 < n; g0 += group) {
        float ss = 0.0f;
        for (int64_t i = g0; i < g0 + group; ++i) {
            const float v = silu(z[i]) * y[i];
            out[i] = v;
            ss += v * v;
        }
        const float scale = 1.0f / std::sqrt(ss / static_cast<float>(group) + eps);
        for (int64_t i = g0; i < g0 + group; ++i) out[i] = (out[i] * scale) * w[i];
    }
}

constexpr std::array<KernelEntry, 5> kEntries = {
    entry<Op::ssm_conv, conv_scalar>(Format::F32),   entry<Op::ssm_scan, scan_scalar>(Format::F32),
    entry<Op::ssm_gram, gram_scalar>(Format::F32),   entry<Op::ssm_chunk, chunk_scalar>(Format::F32),
    entry<Op::ssm_gated_norm, gated_norm_scalar>(Format::F32),
};

}  // namespace

extern constexpr KernelList kernels_ssm_scalar{Isa::scalar, kEntries.data(), kEntries.size()};

// ---- drivers ----

void ssm_conv(const SsmKernels& k, const SsmConvArgs& a) {
    const ssm_conv_fn fn = k.conv();
    // a thread's share: at least 256 channels x tokens x taps of work (one token of a 4-tap conv
    // over 3k channels is ~12k multiply-adds: not worth waking a worker)
    const int64_t grain = std::max<int64_t>(64, 65536 / std::max<int64_t>(1, a.T * a.K));
    parallel_for(a.C, grain, [&](int64_t c0, int64_t c1) {
        SsmConvArgs b = a;
        b.c0 = c0;
        b.c1 = c1;
        fn(b);
    });
}

void ssm_scan(const SsmKernels& k, SsmScanArgs a) {
    const ssm_scan_fn fn = k.scan();
    const int64_t per_head = a.T * a.head_dim * a.d_state;
    parallel_for(a.n_heads, std::max<int64_t>(1, 32768 / std::max<int64_t>(1, per_head)), [&](int64_t h0, int64_t h1) {
        SsmScanArgs b = a;
        b.h0 = static_cast<int>(h0);
        b.h1 = static_cast<int>(h1);
        fn(b);
    });
}

void ssm_scan_chunked(const SsmKernels& k, SsmScanArgs a) {
    const int64_t n_chunks = (a.T + kSsmChunk - 1) / kSsmChunk;
    const int64_t gsize = static_cast<int64_t>(kSsmChunk) * kSsmChunk;
    std::vector<float> gram(static_cast<size_t>(a.n_groups * n_chunks * gsize));
    const ssm_gram_fn gfn = k.gram();
    parallel_for(a.n_groups * n_chunks, 1, [&](int64_t i0, int64_t i1) {
        std::vector<float> bt(static_cast<size_t>(kSsmChunk) * a.d_state + 16);
        for (int64_t i = i0; i < i1; ++i)
            gfn(a, static_cast<int>(i / n_chunks), i % n_chunks, gram.data() + i * gsize, bt.data());
    });
    a.gram = gram.data();
    const ssm_chunk_fn cfn = k.chunk();
    parallel_for(a.n_heads, 1, [&](int64_t h0, int64_t h1) {
        // 64-byte aligned scratch
        std::vector<float> buf(static_cast<size_t>(ssm_chunk_scratch(a.head_dim, a.d_state) + 16));
        float* p = buf.data();
        while (reinterpret_cast<uintptr_t>(p) % 64) ++p;
        SsmScanArgs b = a;
        b.scratch = p;
        b.h0 = static_cast<int>(h0);
        b.h1 = static_cast<int>(h1);
        cfn(b);
    });
}

void ssm_gated_norm(const SsmKernels& k, const float* y, int64_t ldy, const float* z, int64_t ldz, const float* w,
                    float* out, int64_t ldo, int64_t rows, int64_t n, int64_t group, float eps) {
    const ssm_gated_norm_fn fn = k.gated_norm();
    parallel_for(rows, std::max<int64_t>(1, 16384 / n), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) fn(y + r * ldy, z + r * ldz, w, out + r * ldo, n, group, eps);
    });
}

}  // namespace slmk
