// ---- RoPE: tables and the scalar rotation ----
#include "rope.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>

#include "../core/thread_pool.h"

namespace slmk {

namespace {

void require(bool ok, const std::string& what) {
    if (!ok) throw std::invalid_argument("rope: " + what);
}

void check_factors(const std::vector<double>& f, int half, const char* name) {
    require(static_cast<int>(f.size()) == half,
            std::string(name) + " must hold rotary_dim/2 (" + std::to_string(half) + ") values, got " +
                std::to_string(f.size()));
    for (double x : f) require(x > 0 && std::isfinite(x), std::string(name) + " must be positive and finite");
}

// Llama 3.1 frequency smoothing (Meta's reference apply_scaling in llama-models): pairs whose
// wavelength is shorter than original/high keep their frequency, longer than original/low are
// divided by `factor`, and the band between is interpolated. Returns each pair's divisor.
std::vector<double> llama3_divisors(const RopeSpec& s) {
    std::vector<double> ff(s.rotary_dim / 2);
    const double orig = s.original_context, low = s.low_freq_factor, high = s.high_freq_factor;
    const double low_wavelen = orig / low, high_wavelen = orig / high;
    for (size_t i = 0; i < ff.size(); ++i) {
        const double freq = std::pow(s.base, -2.0 * i / s.rotary_dim);
        const double wavelen = 2.0 * M_PI / freq;
        double scaled;
        if (wavelen < high_wavelen) scaled = freq;
        else if (wavelen > low_wavelen) scaled = freq / s.factor;
        else {
            const double smooth = (orig / wavelen - low) / (high - low);
            scaled = (1.0 - smooth) * freq / s.factor + smooth * freq;
        }
        ff[i] = freq / scaled;
    }
    return ff;
}

}  // namespace

RopeConfig rope_config(const RopeSpec& s, int64_t n_ctx) {
    require(s.base > 0 && std::isfinite(s.base), "base must be a positive number");
    require(s.rotary_dim >= 2 && s.rotary_dim % 2 == 0, "rotary_dim must be even and >= 2");
    require(s.factor > 0 && std::isfinite(s.factor), "scaling factor must be > 0");
    require(s.attn_factor > 0 && std::isfinite(s.attn_factor), "attn_factor must be > 0");
    const int half = s.rotary_dim / 2;
    RopeConfig c;
    c.theta_base = s.base;
    c.rotary_dim = s.rotary_dim;
    c.mode = s.mode;
    c.attn_factor = s.attn_factor;
    std::vector<double> ff(half, 1.0);
    bool have_ff = false;
    if (!s.freq_factors.empty()) {
        check_factors(s.freq_factors, half, "freq_factors");
        ff = s.freq_factors;
        have_ff = true;
    }
    switch (s.scaling) {
        case RopeScaling::None: break;
        case RopeScaling::Linear: c.freq_scale = 1.0 / s.factor; break;
        case RopeScaling::Yarn:
            // YaRN (Peng et al. 2023): ggml's rope_yarn with the ramp between beta_fast and
            // beta_slow rotations of the original context; its magnitude correction is applied
            // by RopeTable (1 + 0.1 ln factor, times attn_factor).
            require(s.original_context > 0, "yarn needs original_context > 0");
            require(std::isfinite(s.ext_factor) && std::isfinite(s.beta_fast) && std::isfinite(s.beta_slow),
                    "yarn ext_factor / beta_fast / beta_slow must be finite");
            c.freq_scale = 1.0 / s.factor;
            c.ext_factor = s.ext_factor;
            c.beta_fast = s.beta_fast;
            c.beta_slow = s.beta_slow;
            c.n_ctx_orig = s.original_context;
            break;
        case RopeScaling::Llama3: {
            require(s.high_freq_factor > s.low_freq_factor && s.low_freq_factor > 0 && s.original_context > 0,
                    "llama3 scaling needs high_freq_factor > low_freq_factor > 0 and original_context > 0");
            const std::vector<double> d = llama3_divisors(s);
            for (int i = 0; i < half; ++i) ff[i] *= d[i];
            have_ff = true;
            break;
        }
        case RopeScaling::LongRope:
            // LongRoPE: freq_factors are the short factors; past the original context the long
            // ones replace them (llama.cpp: n_ctx_seq > n_ctx_orig_yarn). attn_factor scales
            // cos/sin for both, as llama.cpp applies rope.scaling.attn_factor.
            require(s.original_context > 0, "longrope needs original_context > 0");
            check_factors(s.freq_factors, half, "longrope short factors");
            check_factors(s.long_factors, half, "longrope long factors");
            if (static_cast<double>(n_ctx) > s.original_context) ff = s.long_factors;
            have_ff = true;
            break;
    }
    if (have_ff) c.freq_factors = ff;
    return c;
}

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
