// ---- attention driver: the fixed partition plan, split-K decode, tiled prefill, LSE merge ----
// Numeric spec and evaluation order: attention.h. Work is split over (KV head, partition) for
// decode and over (KV head, query tile) for prefill; each item reads every K/V chunk of its KV
// head once for all the query heads of the group.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "attention/attention.h"
#include "core/thread_pool.h"
#include "kvcache/kvcache.h"

namespace slmk {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct Chunk {
    int32_t block, slot;  // first slot
    int64_t n, kpos0;
};

// The cached tokens cut into partitions of kAttnPartition stored tokens, each cut at entries.
struct Plan {
    std::vector<Chunk> chunks;
    std::vector<int64_t> part;  // chunks of partition p: [part[p], part[p+1])
    int64_t n_parts() const { return static_cast<int64_t>(part.size()) - 1; }
    int64_t first_pos(int64_t p) const { return chunks[part[p]].kpos0; }
    int64_t last_pos(int64_t p) const { const Chunk& c = chunks[part[p + 1] - 1]; return c.kpos0 + c.n - 1; }
};

// Appends `remaining` stored tokens (from (block, slot), positions from pos) to the plan; t counts
// the tokens planned so far, so partitions are cut every kAttnPartition tokens across runs.
void plan_run(Plan& pl, int64_t& t, int32_t block, int64_t slot, int64_t pos, int64_t remaining) {
    while (remaining > 0) {
        if (t % kAttnPartition == 0) pl.part.push_back(static_cast<int64_t>(pl.chunks.size()));
        const int64_t take = std::min(remaining, kAttnPartition - t % kAttnPartition);
        pl.chunks.push_back({block, static_cast<int32_t>(slot), take, pos});
        slot += take;
        pos += take;
        t += take;
        remaining -= take;
    }
}

Plan make_plan(const KVSeqLayer& Ly) {
    Plan pl;
    int64_t t = 0;
    for (const KVEntry& e : Ly.entries) plan_run(pl, t, e.block, e.lo, e.pos0, std::min(e.end(), Ly.written) - e.pos0);
    pl.part.push_back(static_cast<int64_t>(pl.chunks.size()));
    return pl;
}

// Dense K/V: one run of `tokens` rows at positions 0.. (slot = position). Cut like a cache whose
// blocks hold kAttnPartition tokens (or more), so the same rows give the same chunks and bits.
Plan make_dense_plan(int64_t tokens) {
    Plan pl;
    int64_t t = 0;
    plan_run(pl, t, 0, 0, 0, tokens);
    pl.part.push_back(static_cast<int64_t>(pl.chunks.size()));
    return pl;
}

// Folds state b into state a (log-sum-exp merge). An empty b is an exact no-op; an empty a
// becomes an exact copy of b, so skipping empty partitions never changes a bit.
void merge_state(float& ma, float& la, float* acca, float mb, float lb, const float* accb, int64_t D) {
    if (!(mb > kNegInf)) return;
    if (!(ma > kNegInf)) {
        ma = mb;
        la = lb;
        std::copy(accb, accb + D, acca);
        return;
    }
    const float m = ma > mb ? ma : mb;
    const float sa = std::exp(ma - m), sb = std::exp(mb - m);
    la = la * sa + lb * sb;
    for (int64_t d = 0; d < D; ++d) acca[d] = acca[d] * sa + accb[d] * sb;
    ma = m;
}

// out = acc / (l + exp(sink - m)), computed relative to max(m, sink) so nothing overflows.
void finalize(float m, float l, const float* acc, const float* sink, float* out, int64_t D) {
    if (!(m > kNegInf)) {
        std::fill(out, out + D, 0.0f);
        return;
    }
    float num_scale = 1.0f, den = l;
    if (sink) {
        const float M = m > *sink ? m : *sink;
        num_scale = std::exp(m - M);
        den = l * num_scale + std::exp(*sink - M);
    }
    const float inv = num_scale / den;
    for (int64_t d = 0; d < D; ++d) out[d] = acc[d] * inv;
}

// The chunk kernels' scratch, one per thread, kept between calls: a fresh vector per call was
// a 100+ KB allocation (an mmap, page faults and zeroing) on every decode step. Its contents
// are never read before the kernel writes them.
float* thread_scratch(int64_t floats) {
    thread_local std::vector<float> buf;
    if (static_cast<int64_t>(buf.size()) < floats) {
        buf.clear();
        buf.shrink_to_fit();
        buf.resize(floats);
    }
    return buf.data();
}

// Where a KV head's rows are: a cache's blocks, or a caller's dense K/V (block 0, slot = token).
struct Ctx {
    const KVCache* cache;          // paged rows, or null for dense ones:
    const uint8_t* dk = nullptr;   // token t of KV head g at dk + t * row_bytes + g * head_bytes
    const uint8_t* dv = nullptr;
    int64_t head_bytes = 0;
    int64_t row_bytes;             // between a head's consecutive rows
    attn_chunk_fn chunk;
    int64_t D, Dp, G, Hkv;
    int64_t window;  // effective (INT64_MAX: none)
    float softcap;
    const uint8_t* k_row(int32_t block, int g, int64_t slot) const {
        return cache ? cache->k_row(block, g, static_cast<int>(slot)) : dk + slot * row_bytes + g * head_bytes;
    }
    const uint8_t* v_row(int32_t block, int g, int64_t slot) const {
        return cache ? cache->v_row(block, g, static_cast<int>(slot)) : dv + slot * row_bytes + g * head_bytes;
    }
};

// Runs partition p's chunks for R rows (q [R][Dp], positions qpos), starting from an empty state.
void run_partition(const Ctx& c, const Plan& pl, int64_t p, int g, const float* q, const int64_t* qpos, int R,
                   float* m, float* l, float* acc, float* scratch) {
    std::fill(m, m + R, kNegInf);
    std::fill(l, l + R, 0.0f);
    std::fill(acc, acc + R * c.D, 0.0f);
    const int64_t qmin = *std::min_element(qpos, qpos + R), qmax = *std::max_element(qpos, qpos + R);
    AttnChunkArgs a;
    a.q = q;
    a.ldq = c.Dp;
    a.qpos = qpos;
    a.R = R;
    a.window = c.window;
    a.softcap = c.softcap;
    a.row_bytes = c.row_bytes;
    a.head_dim = c.D;
    a.m = m;
    a.l = l;
    a.acc = acc;
    a.ldacc = c.D;
    a.scratch = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scratch) + 63) & ~uintptr_t(63));
    for (int64_t i = pl.part[p]; i < pl.part[p + 1]; ++i) {
        const Chunk& ch = pl.chunks[i];
        if (ch.kpos0 > qmax) break;                                   // causal: all later keys masked
        if (qmin - (ch.kpos0 + ch.n - 1) >= c.window) continue;       // wholly before every row's window
        a.k = c.k_row(ch.block, g, ch.slot);
        a.v = c.v_row(ch.block, g, ch.slot);
        a.n = ch.n;
        a.kpos0 = ch.kpos0;
        // prefetch hint: the plan's chunk after next (into the next partition near its end:
        // decode items of one KV head run their partitions in order on one thread). Two
        // chunks ahead measured faster than one when the cache streams from DRAM.
        a.k_next = a.v_next = nullptr;
        a.n_next = 0;
        if (i + 2 < static_cast<int64_t>(pl.chunks.size())) {
            const Chunk& nx = pl.chunks[i + 2];
            a.k_next = c.k_row(nx.block, g, nx.slot);
            a.v_next = c.v_row(nx.block, g, nx.slot);
            a.n_next = nx.n;
        }
        c.chunk(a);
    }
}

bool partition_visible(const Ctx& c, const Plan& pl, int64_t p, int64_t qmin, int64_t qmax) {
    return pl.first_pos(p) <= qmax && qmin - pl.last_pos(p) < c.window;
}

Ctx make_ctx(const AttentionKernels& kern, const KVCache& cache, int layer, int64_t n_heads, const AttnOptions& opt) {
    Ctx c;
    c.cache = &cache;
    c.row_bytes = cache.row_bytes;
    c.chunk = kern.chunk(cache.dtype);
    c.D = cache.head_dim;
    c.Dp = cache.head_dim_padded;
    c.Hkv = cache.n_kv_heads;
    c.G = n_heads / cache.n_kv_heads;
    int64_t w = opt.window > 0 ? opt.window : cache.windows[layer];
    c.window = w > 0 ? w : std::numeric_limits<int64_t>::max();
    c.softcap = opt.softcap;
    return c;
}

// q (T, H, D) -> [Hkv][T][G][Dp] scaled and zero-padded, so a KV head's rows are contiguous.
std::vector<float> pack_queries(const float* q, int64_t T, int64_t H, int64_t G, int64_t D, int64_t Dp, float scale) {
    const int64_t Hkv = H / G;
    std::vector<float> out(Hkv * T * G * Dp, 0.0f);
    for (int64_t t = 0; t < T; ++t)
        for (int64_t h = 0; h < H; ++h) {
            const float* src = q + (t * H + h) * D;
            float* dst = out.data() + (((h / G) * T + t) * G + h % G) * Dp;
            for (int64_t d = 0; d < D; ++d) dst[d] = src[d] * scale;
        }
    return out;
}

float effective_scale(int64_t head_dim, const AttnOptions& opt) {
    return opt.scale != 0.0f ? opt.scale : 1.0f / std::sqrt(static_cast<float>(head_dim));
}

// Decode over several (sequence, plan) pairs with one query token each: work items are
// (sequence, KV head, partition); partials are folded in partition order afterwards.
void decode(const Ctx& c, const std::vector<const Plan*>& plans, const std::vector<int64_t>& qposv,
            const std::vector<float>& qpacked /*[S][Hkv][G][Dp]*/, const float* sinks, float* out /*[S][H][D]*/) {
    const int64_t S = static_cast<int64_t>(plans.size()), Hkv = c.Hkv, G = c.G, D = c.D, Dp = c.Dp;
    std::vector<int64_t> item0(S + 1, 0);  // first item of each sequence
    for (int64_t s = 0; s < S; ++s) item0[s + 1] = item0[s] + Hkv * plans[s]->n_parts();
    const int64_t n_items = item0[S];
    std::vector<float> pm(n_items * G), pl_(n_items * G), pacc(n_items * G * D);
    // Short contexts run on the caller's thread: below ~512 cached rows in all (e.g. 3 KV heads
    // x 128 tokens) waking and joining a worker cost more than it saved (measured on 2 cores).
    int64_t rows = 0;
    for (int64_t s = 0; s < S; ++s)
        for (const Chunk& ch : plans[s]->chunks) rows += Hkv * ch.n;
    const int64_t grain = rows < 512 ? std::max<int64_t>(n_items, 1) : 1;
    parallel_for(n_items, grain, [&](int64_t i0, int64_t i1) {
        float* scratch = thread_scratch(kAttnScratch(G, kAttnPartition, Dp) + 16);
        std::vector<int64_t> qpos(G);
        for (int64_t it = i0; it < i1; ++it) {
            const int64_t s = std::upper_bound(item0.begin(), item0.end(), it) - item0.begin() - 1;
            const Plan& pl = *plans[s];
            const int64_t local = it - item0[s];
            const int g = static_cast<int>(local / pl.n_parts());
            const int64_t p = local % pl.n_parts();
            std::fill(qpos.begin(), qpos.end(), qposv[s]);
            float* m = pm.data() + it * G;
            float* l = pl_.data() + it * G;
            float* acc = pacc.data() + it * G * D;
            if (!partition_visible(c, pl, p, qposv[s], qposv[s])) {
                std::fill(m, m + G, kNegInf);
                continue;
            }
            const float* q = qpacked.data() + (s * Hkv + g) * G * Dp;
            run_partition(c, pl, p, g, q, qpos.data(), static_cast<int>(G), m, l, acc, scratch);
        }
    });
    // fold in partition order, per (sequence, query head)
    parallel_for(S * Hkv, 4, [&](int64_t j0, int64_t j1) {
        std::vector<float> acc(D);
        for (int64_t j = j0; j < j1; ++j) {
            const int64_t s = j / Hkv, g = j % Hkv;
            const int64_t np = plans[s]->n_parts();
            for (int64_t i = 0; i < G; ++i) {
                float m = kNegInf, l = 0.0f;
                std::fill(acc.begin(), acc.end(), 0.0f);
                for (int64_t p = 0; p < np; ++p) {
                    const int64_t it = item0[s] + g * np + p;
                    merge_state(m, l, acc.data(), pm[it * G + i], pl_[it * G + i], pacc.data() + (it * G + i) * D, D);
                }
                const int64_t h = g * G + i;
                finalize(m, l, acc.data(), sinks ? sinks + h : nullptr, out + (s * Hkv * G + h) * D, D);
            }
        }
    });
}

}  // namespace

void attention_check(const KVCache& cache, int layer, int64_t seq, int64_t q_tokens, int64_t n_heads,
                     const AttnOptions& opt) {
    if (layer < 0 || layer >= cache.n_layers)
        throw std::out_of_range("layer " + std::to_string(layer) + " is out of range (n_layers = " +
                                std::to_string(cache.n_layers) + ")");
    const KVSequence& S = cache.sequence(seq);
    const KVSeqLayer& Ly = S.layers[layer];
    if (n_heads % cache.n_kv_heads != 0)
        throw std::invalid_argument("q has " + std::to_string(n_heads) + " heads, not a multiple of the cache's n_kv_heads (" +
                                    std::to_string(cache.n_kv_heads) + ")");
    if (Ly.written != S.length)
        throw std::invalid_argument("layer " + std::to_string(layer) + " of sequence " + std::to_string(seq) + " has " +
                                    std::to_string(S.length - Ly.written) + " reserved positions not yet written");
    if (q_tokens < 1 || q_tokens > S.length)
        throw std::invalid_argument("q has " + std::to_string(q_tokens) + " tokens but sequence " + std::to_string(seq) +
                                    " holds " + std::to_string(S.length) + " positions (q is for the newest positions)");
    const int64_t lw = cache.windows[layer];
    if (opt.window < 0) throw std::invalid_argument("window must be >= 1 (or None)");
    if (lw > 0 && opt.window > lw)
        throw std::invalid_argument("window " + std::to_string(opt.window) + " is larger than layer " + std::to_string(layer) +
                                    "'s sliding window (" + std::to_string(lw) + "), whose older tokens were freed");
    const int64_t w = opt.window > 0 ? opt.window : lw;
    if (w > 0 && std::max<int64_t>(0, S.length - q_tokens - w + 1) < Ly.floor)
        throw std::invalid_argument("q_tokens " + std::to_string(q_tokens) + " reaches back past the tokens layer " +
                                    std::to_string(layer) + " kept for its window (positions < " + std::to_string(Ly.floor) +
                                    " were freed)");
}

namespace {

// q (T, n_heads, D) for the newest T of L positions, over the rows of c planned in pl.
void run_attention(const Ctx& c, const Plan& pl, int64_t L, const float* q, int64_t T, int64_t n_heads,
                   const AttnOptions& opt, float* out) {
    const int64_t Hkv = c.Hkv, G = c.G, D = c.D, Dp = c.Dp;
    const std::vector<float> qp = pack_queries(q, T, n_heads, G, D, Dp, effective_scale(D, opt));
    if (pl.n_parts() == 0) {  // nothing stored (all evicted): every row sees nothing
        for (int64_t t = 0; t < T; ++t)
            for (int64_t h = 0; h < n_heads; ++h)
                finalize(kNegInf, 0.0f, nullptr, opt.sinks ? opt.sinks + h : nullptr, out + (t * n_heads + h) * D, D);
        return;
    }
    if (T == 1) {
        decode(c, {&pl}, {L - 1}, qp, opt.sinks, out);
        return;
    }
    // prefill: items (KV head, tile of query tokens); each row folds its partitions in order
    const int64_t Tt = std::max<int64_t>(1, 64 / G);
    const int64_t n_tiles = (T + Tt - 1) / Tt;
    parallel_for(Hkv * n_tiles, 1, [&](int64_t i0, int64_t i1) {
        const int64_t Rmax = Tt * G;
        float* scratch = thread_scratch(kAttnScratch(Rmax, kAttnPartition, Dp) + 16);
        std::vector<float> m(Rmax), l(Rmax), acc(Rmax * D);
        std::vector<float> rm(Rmax), rl(Rmax), racc(Rmax * D);
        std::vector<int64_t> qpos(Rmax);
        for (int64_t it = i0; it < i1; ++it) {
            // latest tiles first (they see the most keys), KV heads inner: the pool hands out
            // contiguous runs of items, so the runs left for the end are the cheapest ones
            const int g = static_cast<int>(it % Hkv);
            const int64_t t0 = (n_tiles - 1 - it / Hkv) * Tt, t1 = std::min(T, t0 + Tt);
            const int R = static_cast<int>((t1 - t0) * G);
            for (int64_t t = t0; t < t1; ++t)
                for (int64_t i = 0; i < G; ++i) qpos[(t - t0) * G + i] = L - T + t;
            std::fill(rm.begin(), rm.end(), kNegInf);
            std::fill(rl.begin(), rl.end(), 0.0f);
            std::fill(racc.begin(), racc.end(), 0.0f);
            const float* q = qp.data() + ((g * T) + t0) * G * Dp;
            const int64_t qmin = L - T + t0, qmax = L - T + t1 - 1;
            for (int64_t p = 0; p < pl.n_parts(); ++p) {
                if (pl.first_pos(p) > qmax) break;
                if (!partition_visible(c, pl, p, qmin, qmax)) continue;
                run_partition(c, pl, p, g, q, qpos.data(), R, m.data(), l.data(), acc.data(), scratch);
                for (int r = 0; r < R; ++r) merge_state(rm[r], rl[r], racc.data() + r * D, m[r], l[r], acc.data() + r * D, D);
            }
            for (int64_t t = t0; t < t1; ++t)
                for (int64_t i = 0; i < G; ++i) {
                    const int r = static_cast<int>((t - t0) * G + i);
                    const int64_t h = g * G + i;
                    finalize(rm[r], rl[r], racc.data() + r * D, opt.sinks ? opt.sinks + h : nullptr,
                             out + (t * n_heads + h) * D, D);
                }
        }
    });
}

}  // namespace

void attention(const AttentionKernels& kern, const KVCache& cache, int layer, int64_t seq, const float* q, int64_t T,
               int64_t n_heads, const AttnOptions& opt, float* out) {
    attention_check(cache, layer, seq, T, n_heads, opt);
    const KVSequence& S = cache.sequence(seq);
    run_attention(make_ctx(kern, cache, layer, n_heads, opt), make_plan(S.layers[layer]), S.length, q, T, n_heads, opt, out);
}

void attention_dense(const AttentionKernels& kern, const DenseKV& kv, const float* q, int64_t T, int64_t n_heads,
                     const AttnOptions& opt, float* out) {
    if (kv.format != Format::F32 && kv.format != Format::F16)
        throw std::invalid_argument("dense K/V must be float32 or float16");
    if (kv.tokens < 1 || kv.n_kv_heads < 1 || kv.head_dim < 1 || n_heads % kv.n_kv_heads != 0 || T < 1 || T > kv.tokens ||
        opt.window < 0)
        throw std::invalid_argument("attention_dense: inconsistent shapes");
    Ctx c;
    c.cache = nullptr;
    c.dk = kv.k;
    c.dv = kv.v;
    c.row_bytes = kv.token_stride;
    c.head_bytes = kv.head_stride;
    c.chunk = kern.chunk(kv.format);
    c.D = c.Dp = kv.head_dim;  // f32/f16 rows are not padded
    c.Hkv = kv.n_kv_heads;
    c.G = n_heads / kv.n_kv_heads;
    c.window = opt.window > 0 ? opt.window : std::numeric_limits<int64_t>::max();
    c.softcap = opt.softcap;
    run_attention(c, make_dense_plan(kv.tokens), kv.tokens, q, T, n_heads, opt, out);
}

void attention_batch(const AttentionKernels& kern, const KVCache& cache, int layer, const int64_t* seqs, int64_t n_seqs,
                     const float* q, int64_t n_heads, const AttnOptions& opt, float* out) {
    std::vector<Plan> plans(n_seqs);
    std::vector<int64_t> qpos(n_seqs);
    for (int64_t s = 0; s < n_seqs; ++s) {
        attention_check(cache, layer, seqs[s], 1, n_heads, opt);
        const KVSequence& S = cache.sequence(seqs[s]);
        plans[s] = make_plan(S.layers[layer]);
        qpos[s] = S.length - 1;
    }
    const Ctx c = make_ctx(kern, cache, layer, n_heads, opt);
    const std::vector<float> qp = pack_queries(q, n_seqs, n_heads, c.G, c.D, c.Dp, effective_scale(c.D, opt));
    // pack_queries orders [Hkv][S][G][Dp]; decode wants [S][Hkv][G][Dp]
    const int64_t Hkv = cache.n_kv_heads, GD = c.G * c.Dp;
    std::vector<float> qs(qp.size());
    for (int64_t g = 0; g < Hkv; ++g)
        for (int64_t s = 0; s < n_seqs; ++s)
            std::copy(qp.begin() + (g * n_seqs + s) * GD, qp.begin() + (g * n_seqs + s + 1) * GD, qs.begin() + (s * Hkv + g) * GD);
    std::vector<const Plan*> pp;
    for (auto& p : plans) pp.push_back(&p);
    // a sequence with nothing stored has zero partitions: decode then leaves its heads to finalize(-inf)
    decode(c, pp, qpos, qs, opt.sinks, out);
}

}  // namespace slmk
