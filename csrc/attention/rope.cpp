// ---- RoPE: tables and the scalar rotation ----
#include "rope.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>

#include "../core/thread_pool.h"

namespace slmk {

RopeTable::RopeTable(const RopeConfig& cfg) : cfg_(cfg) {
    const int half = cfg.rotary_dim / 2;
    freq_.resize(half);
    ramp_mix_.assign(half, 0.0);
    for (int i = 0; i < half; ++i) {
        freq_[i] = std::pow(cfg.theta_base, -2.0 * i / cfg.rotary_dim);
        if (!cfg.freq_factors.empty()) freq_[i] /= cfg.freq_factors[i];
    }
    mscale_ = cfg.attn_factor;
    if (cfg.ext_factor != 0.0) {
        // YaRN: pairs whose wavelength fits beta_fast..beta_slow rotations in the original
        // context ramp from extrapolation (fast pairs) to interpolation (slow pairs).
        auto corr_dim = [&](double n_rot) {
            return cfg.rotary_dim * std::log(cfg.n_ctx_orig / (n_rot * 2.0 * M_PI)) / (2.0 * std::log(cfg.theta_base));
        };
        const double low = std::max(0.0, std::floor(corr_dim(cfg.beta_fast)));
        const double high = std::min(cfg.rotary_dim - 1.0, std::ceil(corr_dim(cfg.beta_slow)));
        for (int i = 0; i < half; ++i) {
            const double y = (i - low) / std::max(0.001, high - low);
            ramp_mix_[i] = (1.0 - std::min(1.0, std::max(0.0, y))) * cfg.ext_factor;
        }
        mscale_ *= 1.0 + 0.1 * std::log(1.0 / cfg.freq_scale);
    }
}

RopeTable::~RopeTable() {
    for (auto& ch : chunks_) delete[] ch.load();
}

void RopeTable::cos_sin(int64_t p, float* c, float* s) const {
    const int half = cfg_.rotary_dim / 2;
    if (p < 0 || p >= int64_t(kChunks) * kChunkPositions) return compute(p, c, s);
    const int64_t ci = p / kChunkPositions;
    float* chunk = chunks_[ci].load(std::memory_order_acquire);
    if (!chunk) {
        std::lock_guard<std::mutex> lk(fill_mu_);
        chunk = chunks_[ci].load(std::memory_order_acquire);
        if (!chunk) {
            chunk = new float[int64_t(kChunkPositions) * 2 * half];
            for (int64_t j = 0; j < kChunkPositions; ++j)
                compute(ci * kChunkPositions + j, chunk + j * 2 * half, chunk + j * 2 * half + half);
            chunks_[ci].store(chunk, std::memory_order_release);
        }
    }
    const float* row = chunk + (p % kChunkPositions) * 2 * half;
    std::memcpy(c, row, half * sizeof(float));
    std::memcpy(s, row + half, half * sizeof(float));
}

void RopeTable::compute(int64_t p, float* c, float* s) const {
    const int half = cfg_.rotary_dim / 2;
    for (int i = 0; i < half; ++i) {
        const double extrap = static_cast<double>(p) * freq_[i];
        const double interp = cfg_.freq_scale * extrap;
        const double theta = interp * (1.0 - ramp_mix_[i]) + extrap * ramp_mix_[i];
        c[i] = static_cast<float>(std::cos(theta) * mscale_);
        s[i] = static_cast<float>(std::sin(theta) * mscale_);
    }
}

std::shared_ptr<const RopeTable> rope_table(const RopeConfig& cfg) {
    using Key = std::tuple<double, int, int, double, double, double, double, double, double, std::vector<double>>;
    static std::mutex mu;
    static std::map<Key, std::shared_ptr<const RopeTable>> cache;
    const Key key{cfg.theta_base, cfg.rotary_dim, static_cast<int>(cfg.mode), cfg.freq_scale, cfg.ext_factor,
                  cfg.attn_factor, cfg.beta_fast, cfg.beta_slow, cfg.n_ctx_orig, cfg.freq_factors};
    std::lock_guard<std::mutex> lk(mu);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
    if (cache.size() > 64) cache.clear();  // bounded: real programs use a handful of configs
    auto t = std::make_shared<const RopeTable>(cfg);
    cache.emplace(key, t);
    return t;
}

void rope_apply(const RopeTable& t, const float* x, float* out, int64_t tokens, int64_t heads, int64_t head_dim,
                const int64_t* positions) {
    const RopeConfig& cfg = t.config();
    const int half = cfg.rotary_dim / 2;
    parallel_for(tokens, std::max<int64_t>(1, 256 / std::max<int64_t>(1, heads)), [&](int64_t t0, int64_t t1) {
        std::vector<float> c(half), s(half);
        for (int64_t tok = t0; tok < t1; ++tok) {
            t.cos_sin(positions[tok], c.data(), s.data());  // once per token, shared by all heads
            for (int64_t h = 0; h < heads; ++h) {
                const float* xi = x + (tok * heads + h) * head_dim;
                float* yo = out + (tok * heads + h) * head_dim;
                for (int i = 0; i < half; ++i) {
                    const int a = cfg.mode == RopeMode::Normal ? 2 * i : i;
                    const int b = cfg.mode == RopeMode::Normal ? 2 * i + 1 : i + half;
                    const float x0 = xi[a], x1 = xi[b];
                    yo[a] = x0 * c[i] - x1 * s[i];
                    yo[b] = x0 * s[i] + x1 * c[i];
                }
                if (yo != xi)
                    std::memcpy(yo + cfg.rotary_dim, xi + cfg.rotary_dim, (head_dim - cfg.rotary_dim) * sizeof(float));
            }
        }
    });
}

}  // namespace slmk
