// ---- the decoder step in C++: runs the per-layer description of spec.h ----
#include "transformer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <stdexcept>
#include <string>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "../core/thread_pool.h"
#include "../ops/ops.h"

namespace slmk {

namespace {

[[noreturn]] void bad(int layer, const std::string& what) {
    throw std::invalid_argument((layer >= 0 ? "layer " + std::to_string(layer) + ": " : std::string()) + what);
}

void check_vec(const std::vector<float>& v, size_t n, bool required, int layer, const char* name) {
    if (v.empty() && !required) return;
    if (v.size() != n)
        bad(layer, std::string(name) + " has " + std::to_string(v.size()) + " values, the description implies " +
                       std::to_string(n));
}

// The matrices of `w` stacked by rows must be (rows, k).
void check_stack(const std::vector<std::shared_ptr<const PackedMatrix>>& w, const std::vector<int64_t>& parts,
                 int64_t k, int layer, const char* name) {
    if (w.empty()) bad(layer, std::string(name) + " is missing");
    int64_t rows = 0, want = 0;
    for (int64_t p : parts) want += p;
    for (const auto& m : w) {
        if (!m) bad(layer, std::string(name) + " holds a null matrix");
        if (m->k != k)
            bad(layer, std::string(name) + " has " + std::to_string(m->k) + " columns, the description implies " +
                           std::to_string(k));
        rows += m->n;
    }
    // one fused matrix, or one matrix per part with that part's rows
    bool ok = rows == want && (w.size() == 1 || w.size() == parts.size());
    if (ok && w.size() == parts.size())
        for (size_t i = 0; i < parts.size(); ++i) ok = ok && w[i]->n == parts[i];
    if (!ok)
        bad(layer, std::string(name) + " has " + std::to_string(rows) + " rows in " + std::to_string(w.size()) +
                       " matrices, the description implies " + std::to_string(want));
}

}  // namespace

Transformer::Transformer(ModelSpec spec, std::vector<LayerWeights> layers, std::vector<float> out_norm,
                         std::shared_ptr<const PackedMatrix> head, std::vector<float> head_bias, Format embd_format,
                         const uint8_t* embd, int64_t n_ctx)
    : spec_(std::move(spec)),
      layers_(std::move(layers)),
      out_norm_(std::move(out_norm)),
      head_bias_(std::move(head_bias)),
      head_(std::move(head)),
      embd_format_(embd_format),
      embd_(embd) {
    const ModelSpec& s = spec_;
    if (s.hidden <= 0 || s.vocab <= 0) bad(-1, "hidden and vocab must be positive");
    if (!(s.eps > 0) || !std::isfinite(s.eps)) bad(-1, "eps must be a positive number");
    for (float v : {s.embedding_scale, s.residual_scale, s.logit_scale, s.final_logit_softcap})
        if (!std::isfinite(v)) bad(-1, "the model's scales must be finite");
    if (s.logit_scale == 0.0f) bad(-1, "logit_scale must not be 0");
    if (s.final_logit_softcap < 0.0f) bad(-1, "final_logit_softcap must be >= 0");
    if (s.layers.empty() || s.layers.size() != layers_.size())
        bad(-1, "the description has " + std::to_string(s.layers.size()) + " layers, the weights " +
                    std::to_string(layers_.size()));
    if (!embd_) bad(-1, "the embedding table is missing");
    check_vec(out_norm_, s.hidden, true, -1, "output_norm");
    check_vec(head_bias_, s.vocab, false, -1, "output bias");
    if (!head_ || head_->n != s.vocab || head_->k != s.hidden)
        bad(-1, "the output head must be (vocab, hidden) = (" + std::to_string(s.vocab) + ", " +
                    std::to_string(s.hidden) + ")");
    for (size_t li = 0; li < layers_.size(); ++li) {
        const int l = static_cast<int>(li);
        const LayerSpec& S = s.layers[li];
        const LayerWeights& W = layers_[li];
        const int64_t hid = s.hidden, F = S.ffn;
        if (S.ffn <= 0) bad(l, "ffn must be positive");
        if (S.activation != FfnActivation::SiLU && S.activation != FfnActivation::GeluTanh &&
            S.activation != FfnActivation::ReLU)
            bad(l, "unknown FFN activation");
        check_vec(W.attn_norm, hid, true, l, "attn_norm");
        check_vec(W.ffn_norm, hid, true, l, "ffn_norm");
        check_stack(W.gate_up, {F, F}, hid, l, "gate_up");
        check_vec(W.gate_up_bias, 2 * F, false, l, "gate_up_bias");
        check_stack({W.down}, {hid}, F, l, "down");
        check_vec(W.down_bias, hid, false, l, "down_bias");
        check_vec(W.post_ffn_norm, hid, false, l, "post_ffn_norm");
        switch (S.kind) {
            case LayerKind::Attention: {
                cache_layer_.push_back(n_kv_++);
                const AttentionSpec& A = S.attention;
                if (A.n_heads <= 0 || A.n_kv_heads <= 0 || A.head_dim <= 0 || A.n_heads % A.n_kv_heads)
                    bad(l, "n_heads must be a positive multiple of n_kv_heads, head_dim positive");
                if (A.window < 0 || !(A.scale >= 0) || !std::isfinite(A.scale) || !(A.softcap >= 0) ||
                    !std::isfinite(A.softcap))
                    bad(l, "window, scale and softcap must be >= 0");
                const int64_t H = A.n_heads, KV = A.n_kv_heads, D = A.head_dim;
                check_vec(W.q_norm, D, false, l, "q_norm");
                check_vec(W.k_norm, D, false, l, "k_norm");
                check_stack(W.qkv, {H * D, KV * D, KV * D}, hid, l, "qkv");
                check_vec(W.qkv_bias, (H + 2 * KV) * D, false, l, "qkv_bias");
                check_stack({W.wo}, {hid}, H * D, l, "wo");
                check_vec(W.wo_bias, hid, false, l, "wo_bias");
                check_vec(W.post_attention_norm, hid, false, l, "post_attention_norm");
                if (A.rope) {
                    if (A.rope_spec.rotary_dim > A.head_dim)
                        bad(l, "rotary_dim " + std::to_string(A.rope_spec.rotary_dim) + " exceeds head_dim " +
                                   std::to_string(A.head_dim));
                    try {
                        rope_.push_back(rope_table(rope_config(A.rope_spec, n_ctx)));
                    } catch (const std::invalid_argument& e) {
                        bad(l, e.what());
                    }
                } else {
                    rope_.push_back(nullptr);
                }
                AttnOptions opt;
                opt.scale = A.scale;
                opt.window = A.window;
                opt.softcap = A.softcap;
                attn_opt_.push_back(opt);
                break;
            }
            case LayerKind::Mamba2: {
                cache_layer_.push_back(n_rec_++);
                if (!W.qkv.empty() || W.wo || !W.q_norm.empty() || !W.k_norm.empty() || !W.qkv_bias.empty() ||
                    !W.wo_bias.empty() || !W.post_attention_norm.empty())
                    bad(l, "a Mamba-2 layer has no attention weights");
                mamba2_check(S.mamba2, s.hidden, W.mamba2, "layer " + std::to_string(l) + ": ");
                // the cache keeps one state size for every recurrent layer
                if (state_floats_ && state_floats_ != S.mamba2.state_floats())
                    bad(l, "its Mamba-2 state (" + std::to_string(S.mamba2.state_floats()) +
                               " floats) differs from an earlier layer's (" + std::to_string(state_floats_) +
                               "): unsupported");
                state_floats_ = S.mamba2.state_floats();
                rope_.push_back(nullptr);
                attn_opt_.emplace_back();
                break;
            }
            default:
                bad(l, "unknown layer kind");
        }
    }
    if (n_kv_ == 0) bad(-1, "a model needs at least one attention layer (the KV cache holds its positions)");
}

void Transformer::check_cache(const KVCache& cache) const {
    if (cache.n_layers != n_kv_)
        throw std::invalid_argument("the KV cache has " + std::to_string(cache.n_layers) + " layers, the model " +
                                    std::to_string(n_kv_) + " attention layers");
    if (cache.recurrent.n_layers != n_rec_ || (n_rec_ && cache.recurrent.state_floats != state_floats_))
        throw std::invalid_argument("the KV cache has " + std::to_string(cache.recurrent.n_layers) +
                                    " recurrent layers of " + std::to_string(cache.recurrent.state_floats) +
                                    " floats, the model " + std::to_string(n_rec_) + " Mamba-2 layers of " +
                                    std::to_string(state_floats_));
    for (size_t li = 0; li < spec_.layers.size(); ++li) {
        if (spec_.layers[li].kind != LayerKind::Attention) continue;
        const AttentionSpec& A = spec_.layers[li].attention;
        if (cache.n_kv_heads != A.n_kv_heads || cache.head_dim != A.head_dim)
            throw std::invalid_argument("layer " + std::to_string(li) + " needs a KV cache of " +
                                        std::to_string(A.n_kv_heads) + " heads of " + std::to_string(A.head_dim) +
                                        " values");
        const int64_t cw = cache.windows[cache_layer_[li]];
        if (cw != 0 && (A.window == 0 || A.window > cw))
            throw std::invalid_argument("layer " + std::to_string(li) + "'s KV cache window " + std::to_string(cw) +
                                        " is smaller than the layer's attention window");
    }
}

void Transformer::project(const std::vector<std::shared_ptr<const PackedMatrix>>& w, const float* x, int64_t T,
                          float* out, int64_t ldo) {
    const KernelTable& k = kernels();
    if (w.size() == 1) {
        gemm(k, w[0]->format, w[0].get(), nullptr, 0, w[0]->n, w[0]->k, x, T, w[0]->k, out, ldo);
        return;
    }
    int64_t col = 0;
    for (const auto& m : w) {  // separate matrices side by side in `out` (the GEMM writes ldo apart)
        gemm(k, m->format, m.get(), nullptr, 0, m->n, m->k, x, T, m->k, out + col, ldo);
        col += m->n;
    }
}

namespace {

// rows (T, n) of `y` (ld floats apart) += bias (n)
void add_bias(float* y, int64_t ld, int64_t T, const std::vector<float>& bias) {
    if (bias.empty()) return;
    const int64_t n = static_cast<int64_t>(bias.size());
    for (int64_t t = 0; t < T; ++t)
        for (int64_t j = 0; j < n; ++j) y[t * ld + j] += bias[j];
}

// Rows per FFN chunk (run()): 128, or a narrower panel call (tile.cols) of the layer's FFN
// matrices. 128 rows of the 1B's F = 8192 take 12 MiB of gate/up and activations, as much as its
// attention phase takes at 512 rows, so the FFN does not widen the step's scratch; the 256-row
// chunks before (a full AVX-512 VNNI panel call) took 24 MiB for the same pp512 rate (1B and
// SmolLM2, 1 and 2 threads, interleaved: within the run's noise). Without panels (the 4-row
// tiles re-read a group's weights per call) also 128.
int64_t ffn_chunk_rows(const GemmKernels& gk, const LayerWeights& L) {
    int64_t rows = 128;
    for (const auto& m : L.gate_up)
        if (gk.panel(m->format)) rows = std::min<int64_t>(rows, gk.panel_tile(m->format).cols);
    if (gk.panel(L.down->format)) rows = std::min<int64_t>(rows, gk.panel_tile(L.down->format).cols);
    return rows;
}

// v holds at least n floats (contents not kept). A larger buffer replaces the old one after that
// is freed: growing in place would copy it and, for buffers the heap serves, leave the old
// one's pages as a resident hole beside the new.
void reserve_scratch(std::vector<float>& v, int64_t n) {
    if (static_cast<int64_t>(v.size()) >= n) return;
    std::vector<float>().swap(v);
    v.resize(n);
}

}  // namespace

void Transformer::release_embedding_pages() const {
#if defined(__linux__)
    // one call per step over the file-backed ranges: only the pages this step's lookups (and their
    // fault-around) mapped are resident, and zapping the unmapped rest is a page-table walk
    for (const auto& r : embd_release_)
        madvise(reinterpret_cast<void*>(r.first), r.second - r.first, MADV_DONTNEED);  // advice: errors ignored
#endif
}

template <typename Attend, typename Mix>
void Transformer::run(const int64_t* ids, int64_t T, int64_t first, float* logits, Attend attend, Mix mix) {
    const KernelTable& kern = kernels();
    const ModelSpec& s = spec_;
    const int64_t hid = s.hidden;
    reserve_scratch(x_, T * hid);
    reserve_scratch(h_, T * hid);
    // work_ for the widest phase of any layer (one allocation: see reserve_scratch)
    int64_t work = 0;
    for (size_t li = 0; li < layers_.size(); ++li) {
        const LayerSpec& S = s.layers[li];
        if (S.kind != LayerKind::Mamba2) {
            const AttentionSpec& A = S.attention;
            work = std::max<int64_t>(work, 2 * T * (A.n_heads + 2 * A.n_kv_heads) * A.head_dim);
        }
        work = std::max<int64_t>(work, 3 * std::min(T, ffn_chunk_rows(kern, layers_[li])) * S.ffn);
    }
    reserve_scratch(work_, work);

    // embedding rows
    const dequantize_row_fn dq = QuantKernels(kern).dequantize(embd_format_);
    const int64_t rb = row_bytes(embd_format_, hid);
    // Pages dropped every 32 rows: each looked-up row maps up to fault-around's 64 KiB of the
    // file with it, so a 512-token prompt's lookups alone would keep up to 32 MiB of the table
    // resident until the step's end (on a table of 29 MiB, as SmolLM2's, all of it).
    for (int64_t t = 0; t < T; ++t) {
        dq(embd_ + ids[t] * rb, x_.data() + t * hid, hid);
        if (t % 32 == 31 || t + 1 == T) release_embedding_pages();
    }
    if (s.embedding_scale != 1.0f)
        for (float& v : x_) v *= s.embedding_scale;

    const float res = s.residual_scale;
    // rows [r0, T) of x_ += h_ (scaled); on the pool, so at 2 threads the other one does not wait
    auto residual_add = [&](int64_t r0) {
        parallel_for(T - r0, std::max<int64_t>(1, 16384 / hid), [&](int64_t t0, int64_t t1) {
            float* __restrict x = x_.data() + (r0 + t0) * hid;
            const float* __restrict h = h_.data() + (r0 + t0) * hid;
            const int64_t n = (t1 - t0) * hid;
            if (res != 1.0f) {
                for (int64_t i = 0; i < n; ++i) x[i] += h[i] * res;
            } else {
                for (int64_t i = 0; i < n; ++i) x[i] += h[i];
            }
        });
    };
    for (size_t li = 0; li < layers_.size(); ++li) {
        const LayerWeights& L = layers_[li];
        const LayerSpec& S = s.layers[li];
        const int64_t F = S.ffn;
        // After the last layer's mixer only the rows whose logits are asked for are read (the
        // head takes rows [first, T)): its attention queries, output projection and FFN run on
        // those rows only, as llama.cpp does (rows are independent there, so the same bits).
        const int64_t r0 = li + 1 == layers_.size() ? first : 0, Tr = T - r0;
        rmsnorm(kern, x_.data(), hid, L.attn_norm.data(), h_.data(), hid, T, hid, s.eps);

        if (S.kind == LayerKind::Mamba2) {
            // ---- Mamba-2 mixer (h_ in place) ----
            mix(static_cast<int>(li));
        } else {
            // ---- attention ----
            const int64_t H = S.attention.n_heads, KV = S.attention.n_kv_heads, D = S.attention.head_dim;
            const int64_t qkv_w = (H + 2 * KV) * D;
            // work_: q_ (T, H D) | k_ (T, KV D) | v_ (T, KV D) | qkv_ (T, qkv_w), then att_ (T, H D) over qkv_
            q_ = work_.data();
            k_ = q_ + T * H * D;
            v_ = k_ + T * KV * D;
            qkv_ = v_ + T * KV * D;
            att_ = qkv_;
            project(L.qkv, h_.data(), T, qkv_, qkv_w);
            add_bias(qkv_, qkv_w, T, L.qkv_bias);
            parallel_for(T, std::max<int64_t>(1, 16384 / qkv_w), [&](int64_t t0, int64_t t1) {
                for (int64_t t = t0; t < t1; ++t) {
                    const float* row = qkv_ + t * qkv_w;
                    std::memcpy(q_ + t * H * D, row, H * D * sizeof(float));
                    std::memcpy(k_ + t * KV * D, row + H * D, KV * D * sizeof(float));
                    std::memcpy(v_ + t * KV * D, row + (H + KV) * D, KV * D * sizeof(float));
                }
            });
            if (!L.q_norm.empty()) rmsnorm(kern, q_, D, L.q_norm.data(), q_, D, T * H, D, s.eps);
            if (!L.k_norm.empty()) rmsnorm(kern, k_, D, L.k_norm.data(), k_, D, T * KV, D, s.eps);
            if (const RopeTable* rt = rope_[li].get()) {
                rope_apply(*rt, q_, q_, T, H, D, pos_.data());
                rope_apply(*rt, k_, k_, T, KV, D, pos_.data());
            }
            attend(static_cast<int>(li), r0);  // queries [r0, T), every row's K/V written
            float* h = h_.data() + r0 * hid;
            project({L.wo}, att_ + r0 * H * D, Tr, h, hid);
            add_bias(h, hid, Tr, L.wo_bias);
            if (!L.post_attention_norm.empty())
                rmsnorm(kern, h, hid, L.post_attention_norm.data(), h, hid, Tr, hid, s.eps);
        }
        residual_add(r0);

        // ---- gated FFN (rows [r0, T)), in chunks of ffn_chunk_rows() ----
        // A chunk's rows go through gate/up -> activation -> down before the next chunk's: the
        // intermediates (2 F + F floats a row, 48 MiB for 512 rows of the 1B's F = 8192) are
        // held for one chunk only (12 MiB). Rows are independent and the GEMMs batch-invariant, so the
        // chunks give the same bits as one call over all rows.
        float* xr = x_.data() + r0 * hid;
        float* h = h_.data() + r0 * hid;
        rmsnorm(kern, xr, hid, L.ffn_norm.data(), h, hid, Tr, hid, s.eps);
        const int64_t C = std::min(Tr, ffn_chunk_rows(kern, L));
        // work_: gu_ (C, 2 F) | f_ (C, F)
        float* const gu = work_.data();
        float* const f = gu + C * 2 * F;
        for (int64_t c0 = 0; c0 < Tr; c0 += C) {
            const int64_t n = std::min(C, Tr - c0);
            float* hc = h + c0 * hid;
            project(L.gate_up, hc, n, gu, 2 * F);
            add_bias(gu, 2 * F, n, L.gate_up_bias);
            switch (S.activation) {
                case FfnActivation::SiLU: swiglu(kern, gu, 2 * F, gu + F, 2 * F, f, F, n, F); break;
                case FfnActivation::GeluTanh: geglu(kern, gu, 2 * F, gu + F, 2 * F, f, F, n, F); break;
                case FfnActivation::ReLU: reglu(kern, gu, 2 * F, gu + F, 2 * F, f, F, n, F); break;
            }
            project({L.down}, f, n, hc, hid);  // the chunk's rows of h are read (gate/up) before they are written
        }
        add_bias(h, hid, Tr, L.down_bias);
        if (!L.post_ffn_norm.empty())
            rmsnorm(kern, h, hid, L.post_ffn_norm.data(), h, hid, Tr, hid, s.eps);
        residual_add(r0);
    }

    // ---- head ----
    const int64_t rows = T - first;
    rmsnorm(kern, x_.data() + first * hid, hid, out_norm_.data(), h_.data(), hid, rows, hid, s.eps);
    gemm(kern, head_->format, head_.get(), nullptr, 0, head_->n, head_->k, h_.data(), rows, hid, logits, s.vocab,
         GemmRole::head);
    add_bias(logits, s.vocab, rows, head_bias_);
    const int64_t nl = rows * s.vocab;
    if (s.logit_scale != 1.0f)
        for (int64_t i = 0; i < nl; ++i) logits[i] /= s.logit_scale;
    if (s.final_logit_softcap > 0.0f) {
        const float cap = s.final_logit_softcap;
        for (int64_t i = 0; i < nl; ++i) logits[i] = cap * std::tanh(logits[i] / cap);
    }
}

void Transformer::forward(KVCache& cache, int64_t seq, const int64_t* ids, int64_t T, bool all_logits,
                          float* logits) {
    int64_t pos0;
    {
        std::unique_lock<std::shared_mutex> lk(cache.mu);
        pos0 = cache.sequence(seq).length;
        cache.extend(seq, T);  // the one step that can fail; it changes nothing if it does
    }
    pos_.resize(T);
    for (int64_t t = 0; t < T; ++t) pos_[t] = pos0 + t;
    // a prompt: the recurrent state before its last token is kept as a snapshot (below)
    const bool prompt_snapshot = n_rec_ > 0 && T > 1;
    if (prompt_snapshot) snap_.resize(static_cast<size_t>(n_rec_) * state_floats_);
    const KernelTable& kern = kernels();
    run(
        ids, T, all_logits ? 0 : T - 1, logits,
        [&](int layer, int64_t r0) {
            const int kv = cache_layer_[layer];
            {
                std::unique_lock<std::shared_mutex> lk(cache.mu);
                cache.write(kern, kv, seq, k_, v_, T);
            }
            std::shared_lock<std::shared_mutex> lk(cache.mu);
            const AttentionSpec& A = spec_.layers[layer].attention;
            const int64_t qw = static_cast<int64_t>(A.n_heads) * A.head_dim;
            // queries [r0, T) are the newest T - r0 positions of the sequence
            attention(kern, cache, kv, seq, q_ + r0 * qw, T - r0, A.n_heads, attn_opt_[layer], att_ + r0 * qw);
        },
        [&](int layer) {
            const int r = cache_layer_[layer];
            // exclusive: the step writes the sequence's state in place (fork/save read it)
            std::unique_lock<std::shared_mutex> lk(cache.mu);
            float* st = cache.state(seq, r);
            std::vector<Mamba2Segment> segs;
            if (prompt_snapshot) {
                segs.push_back({0, T - 1, st, snap_.data() + r * state_floats_});
                segs.push_back({T - 1, 1, st, nullptr});
            } else {
                segs.push_back({0, T, st, nullptr});
            }
            mamba2_forward(kern, spec_.layers[layer].mamba2, spec_.hidden, spec_.eps, layers_[layer].mamba2, h_.data(),
                           T, segs, spec_.ssm_chunked_prefill, h_.data(), mamba_);
        });
    if (n_rec_ > 0) {
        std::unique_lock<std::shared_mutex> lk(cache.mu);
        const int64_t n = pos0 + T;
        if (prompt_snapshot) {
            cache.add_snapshot(seq, n - 1, snap_.data());
            cache.snapshot(seq);
        } else if (cache.recurrent.snapshot_interval && n % cache.recurrent.snapshot_interval == 0) {
            cache.snapshot(seq);
        }
    }
}

void Transformer::forward_batch(KVCache& cache, const int64_t* seqs, const int64_t* ids, int64_t n, float* logits) {
    pos_.resize(n);
    {
        // All or nothing: every extend is planned (and so validated) before the first one runs.
        // (Rolling back by truncation would not undo a copied-on-write tail or a window's freed
        // tokens.) seqs are distinct (the binding checks).
        std::unique_lock<std::shared_mutex> lk(cache.mu);
        std::map<int32_t, int32_t> released;
        int64_t need = 0;
        for (int64_t i = 0; i < n; ++i) need += cache.plan_extend(seqs[i], 1, &released);
        if (need > cache.free_blocks())
            throw KVCapacityError("KV cache is full: one token for each of " + std::to_string(n) + " sequences needs " +
                                  std::to_string(need) + " blocks, " + std::to_string(cache.free_blocks()) +
                                  " are free (nothing was changed)");
        for (int64_t i = 0; i < n; ++i) {
            pos_[i] = cache.sequence(seqs[i]).length;
            cache.extend(seqs[i], 1);
        }
    }
    const KernelTable& kern = kernels();
    run(
        ids, n, 0, logits,
        [&](int layer, int64_t) {  // every row is a logits row here (first = 0)
            const int kv = cache_layer_[layer];
            const AttentionSpec& A = spec_.layers[layer].attention;
            const int64_t kvw = static_cast<int64_t>(A.n_kv_heads) * A.head_dim;
            {
                std::unique_lock<std::shared_mutex> lk(cache.mu);
                for (int64_t i = 0; i < n; ++i)
                    cache.write(kern, kv, seqs[i], k_ + i * kvw, v_ + i * kvw, 1);
            }
            std::shared_lock<std::shared_mutex> lk(cache.mu);
            attention_batch(kern, cache, kv, seqs, n, q_, A.n_heads, attn_opt_[layer], att_);
        },
        [&](int layer) {
            const int r = cache_layer_[layer];
            std::unique_lock<std::shared_mutex> lk(cache.mu);
            std::vector<Mamba2Segment> segs;  // one row per sequence, with its own state
            for (int64_t i = 0; i < n; ++i) segs.push_back({i, 1, cache.state(seqs[i], r), nullptr});
            mamba2_forward(kern, spec_.layers[layer].mamba2, spec_.hidden, spec_.eps, layers_[layer].mamba2, h_.data(),
                           n, segs, false, h_.data(), mamba_);
        });
    if (n_rec_ > 0 && cache.recurrent.snapshot_interval) {
        std::unique_lock<std::shared_mutex> lk(cache.mu);
        for (int64_t i = 0; i < n; ++i)
            if (cache.sequence(seqs[i]).length % cache.recurrent.snapshot_interval == 0) cache.snapshot(seqs[i]);
    }
}

}  // namespace slmk
