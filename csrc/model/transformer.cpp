// ---- the decoder step in C++ (mirrors slmkernels/model/runtime.py Model.forward) ----
#include "transformer.h"

#include <cstring>
#include <map>
#include <mutex>
#include <shared_mutex>

#include "../core/thread_pool.h"
#include "../ops/ops.h"

namespace slmk {

void Transformer::project(const std::vector<const PackedMatrix*>& w, const float* x, int64_t T, float* out,
                          int64_t ldo) {
    const Kernels& k = kernels();
    if (w.size() == 1) {
        gemm(k, w[0]->format, w[0], nullptr, 0, w[0]->n, w[0]->k, x, T, w[0]->k, out, ldo);
        return;
    }
    int64_t col = 0;
    for (const PackedMatrix* m : w) {  // separate matrices side by side in `out`
        tmp_.resize(T * m->n);
        gemm(k, m->format, m, nullptr, 0, m->n, m->k, x, T, m->k, tmp_.data(), m->n);
        for (int64_t t = 0; t < T; ++t) std::memcpy(out + t * ldo + col, tmp_.data() + t * m->n, m->n * sizeof(float));
        col += m->n;
    }
}

template <typename Attend>
void Transformer::run(const int64_t* ids, int64_t T, int64_t first, float* logits, Attend attend) {
    const Kernels& kern = kernels();
    const int H = cfg.n_heads, KV = cfg.n_kv_heads, D = cfg.head_dim, hid = cfg.hidden, F = cfg.ffn;
    const int64_t qkv_w = static_cast<int64_t>(H + 2 * KV) * D;
    x_.resize(T * hid);
    h_.resize(T * hid);
    qkv_.resize(T * qkv_w);
    q_.resize(T * H * D);
    k_.resize(T * KV * D);
    v_.resize(T * KV * D);
    att_.resize(T * H * D);
    gu_.resize(T * 2 * F);
    f_.resize(T * F);

    // embedding rows
    const dequantize_row_fn dq = kern.quant[static_cast<int>(embd_format)].dequantize;
    const int64_t rb = row_bytes(embd_format, hid);
    for (int64_t t = 0; t < T; ++t) dq(embd + ids[t] * rb, x_.data() + t * hid, hid);
    if (cfg.embedding_scale != 1.0f)
        for (float& v : x_) v *= cfg.embedding_scale;

    for (size_t li = 0; li < layers.size(); ++li) {
        const TransformerLayer& L = layers[li];
        rmsnorm(kern, x_.data(), hid, L.attn_norm.data(), h_.data(), hid, T, hid, cfg.eps);
        project(L.qkv, h_.data(), T, qkv_.data(), qkv_w);
        for (int64_t t = 0; t < T; ++t) {
            float* row = qkv_.data() + t * qkv_w;
            if (!L.qkv_bias.empty())
                for (int64_t j = 0; j < qkv_w; ++j) row[j] += L.qkv_bias[j];
            std::memcpy(q_.data() + t * H * D, row, H * D * sizeof(float));
            std::memcpy(k_.data() + t * KV * D, row + H * D, KV * D * sizeof(float));
            std::memcpy(v_.data() + t * KV * D, row + (H + KV) * D, KV * D * sizeof(float));
        }
        rope_apply(*rope, q_.data(), q_.data(), T, H, D, pos_.data());
        rope_apply(*rope, k_.data(), k_.data(), T, KV, D, pos_.data());
        attend(static_cast<int>(li));
        project({L.wo}, att_.data(), T, h_.data(), hid);
        for (int64_t i = 0; i < T * hid; ++i) x_[i] += cfg.residual_scale != 1.0f ? h_[i] * cfg.residual_scale : h_[i];
        rmsnorm(kern, x_.data(), hid, L.ffn_norm.data(), h_.data(), hid, T, hid, cfg.eps);
        project(L.gate_up, h_.data(), T, gu_.data(), 2 * F);
        swiglu(kern, gu_.data(), 2 * F, gu_.data() + F, 2 * F, f_.data(), F, T, F);
        project({L.down}, f_.data(), T, h_.data(), hid);
        for (int64_t i = 0; i < T * hid; ++i) x_[i] += cfg.residual_scale != 1.0f ? h_[i] * cfg.residual_scale : h_[i];
    }
    const int64_t rows = T - first;
    rmsnorm(kern, x_.data() + first * hid, hid, out_norm.data(), h_.data(), hid, rows, hid, cfg.eps);
    gemm(kern, head->format, head, nullptr, 0, head->n, head->k, h_.data(), rows, hid, logits, cfg.vocab);
    if (cfg.logit_scale != 1.0f)
        for (int64_t i = 0; i < rows * cfg.vocab; ++i) logits[i] /= cfg.logit_scale;
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
    AttnOptions opt;
    opt.scale = cfg.attention_scale;
    opt.window = cfg.window;
    const Kernels& kern = kernels();
    run(ids, T, all_logits ? 0 : T - 1, logits, [&](int layer) {
        {
            std::unique_lock<std::shared_mutex> lk(cache.mu);
            cache.write(layer, seq, k_.data(), v_.data(), T);
        }
        std::shared_lock<std::shared_mutex> lk(cache.mu);
        attention(kern, cache, layer, seq, q_.data(), T, cfg.n_heads, opt, att_.data());
    });
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
    AttnOptions opt;
    opt.scale = cfg.attention_scale;
    opt.window = cfg.window;
    const Kernels& kern = kernels();
    const int64_t kvw = static_cast<int64_t>(cfg.n_kv_heads) * cfg.head_dim;
    run(ids, n, 0, logits, [&](int layer) {
        {
            std::unique_lock<std::shared_mutex> lk(cache.mu);
            for (int64_t i = 0; i < n; ++i) cache.write(layer, seqs[i], k_.data() + i * kvw, v_.data() + i * kvw, 1);
        }
        std::shared_lock<std::shared_mutex> lk(cache.mu);
        attention_batch(kern, cache, layer, seqs, n, q_.data(), cfg.n_heads, opt, att_.data());
    });
}

}  // namespace slmk
