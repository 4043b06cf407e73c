// ---- the C API (slmkernels.h) over the C++ kernels ----
// Each entry point validates its arguments, runs the same kernels as the Python module, and turns
// every C++ exception into a status code plus a thread-local message: nothing throws across the
// C boundary.
#include "slmkernels.h"

#include <cmath>
#include <mutex>
#include <new>
#include <shared_mutex>
#include <stdexcept>
#include <string>

#include "attention/attention.h"
#include "attention/rope.h"
#include "core/isa.h"
#include "core/registry.h"
#include "quant/formats.h"
#include "core/thread_pool.h"
#include "gemm/gemm_driver.h"
#include "kvcache/kvcache.h"

struct slmk_weights {
    std::unique_ptr<slmk::PackedMatrix> m;
};
struct slmk_kvcache {
    slmk::KVCache c;
};

namespace {

thread_local std::string g_error;

struct Failure {
    slmk_status status;
    std::string message;
};

[[noreturn]] void fail(slmk_status s, const std::string& msg) { throw Failure{s, msg}; }

void need(bool ok, const char* msg) {
    if (!ok) fail(SLMK_ERR_ARGUMENT, msg);
}

// Runs fn, mapping what it throws to a status; records the message for slmk_last_error().
template <typename Fn>
slmk_status guarded(Fn fn) {
    try {
        fn();
        g_error.clear();
        return SLMK_OK;
    } catch (const Failure& f) {
        g_error = f.message;
        return f.status;
    } catch (const slmk::KVCapacityError& e) {
        g_error = e.what();
        return SLMK_ERR_CAPACITY;
    } catch (const slmk::KVUnknownSequence& e) {
        g_error = e.what();
        return SLMK_ERR_STATE;
    } catch (const std::bad_alloc&) {
        g_error = "out of memory";
        return SLMK_ERR_MEMORY;
    } catch (const std::invalid_argument& e) {
        g_error = e.what();
        return SLMK_ERR_ARGUMENT;
    } catch (const std::out_of_range& e) {
        g_error = e.what();
        return SLMK_ERR_STATE;
    } catch (const std::exception& e) {
        g_error = e.what();
        return SLMK_ERR_INTERNAL;
    } catch (...) {
        g_error = "unknown error";
        return SLMK_ERR_INTERNAL;
    }
}

slmk::Format format_of(slmk_format f) {
    for (int i = 0; i < slmk::kNumFormats; ++i) {
        const slmk::Format fmt = static_cast<slmk::Format>(i);
        if (slmk::format_info(fmt).ggml_type == static_cast<int>(f)) return fmt;
    }
    fail(SLMK_ERR_FORMAT, "unknown format (GGML type id " + std::to_string(static_cast<int>(f)) + ")");
}

void check_cols(slmk::Format f, int64_t cols) {
    const int bs = slmk::format_info(f).block_size;
    if (cols <= 0 || cols % bs != 0)
        fail(SLMK_ERR_FORMAT, "row length " + std::to_string(cols) + " is not a positive multiple of the " +
                                  slmk::format_info(f).name + " block size " + std::to_string(bs));
}

}  // namespace

extern "C" {

const char* slmk_version(void) { return SLMK_VERSION_STRING; }
const char* slmk_last_error(void) { return g_error.c_str(); }
const char* slmk_isa(void) { return slmk::isa_name(slmk::current_isa()); }

slmk_status slmk_set_num_threads(int n) {
    return guarded([&] {
        need(n >= 1 && n <= 1024, "num_threads must be in 1..1024");
        slmk::set_num_threads(n);
    });
}

int64_t slmk_row_bytes(slmk_format fmt, int64_t cols) {
    int64_t r = 0;
    const slmk_status s = guarded([&] {
        const slmk::Format f = format_of(fmt);
        check_cols(f, cols);
        r = slmk::row_bytes(f, cols);
    });
    return s == SLMK_OK ? r : 0;
}

slmk_status slmk_quantize(slmk_format fmt, const float* x, int64_t rows, int64_t cols, int64_t ldx, void* dst,
                          size_t dst_bytes) {
    return guarded([&] {
        const slmk::Format f = format_of(fmt);
        check_cols(f, cols);
        need(x && dst, "x and dst must not be null");
        need(rows > 0 && ldx >= cols, "need rows > 0 and ldx >= cols");
        const int64_t rb = slmk::row_bytes(f, cols);
        need(dst_bytes >= static_cast<size_t>(rows * rb), "dst is smaller than rows * slmk_row_bytes(fmt, cols)");
        if (slmk::format_info(f).block_size > 1)
            for (int64_t r = 0; r < rows; ++r)
                for (int64_t i = 0; i < cols; ++i)
                    if (!std::isfinite(x[r * ldx + i]))
                        fail(SLMK_ERR_ARGUMENT, "x holds a non-finite value at row " + std::to_string(r) + ", column " +
                                                    std::to_string(i) + "; block formats need finite input");
        const slmk::quantize_row_fn q = slmk::QuantKernels(slmk::kernels()).quantize(f);
        uint8_t* d = static_cast<uint8_t*>(dst);
        slmk::parallel_for(rows, 1, [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r) q(x + r * ldx, d + r * rb, cols);
        });
    });
}

slmk_status slmk_dequantize(slmk_format fmt, const void* src, int64_t rows, int64_t cols, float* out, int64_t ldo) {
    return guarded([&] {
        const slmk::Format f = format_of(fmt);
        check_cols(f, cols);
        need(src && out, "src and out must not be null");
        need(rows > 0 && ldo >= cols, "need rows > 0 and ldo >= cols");
        const int64_t rb = slmk::row_bytes(f, cols);
        const slmk::dequantize_row_fn dq = slmk::QuantKernels(slmk::kernels()).dequantize(f);
        const uint8_t* s = static_cast<const uint8_t*>(src);
        slmk::parallel_for(rows, 1, [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r) dq(s + r * rb, out + r * ldo, cols);
        });
    });
}

slmk_status slmk_weights_create(slmk_format fmt, const void* w, int64_t n, int64_t k, int64_t row_stride_bytes,
                                slmk_weights** out) {
    return guarded([&] {
        need(out != nullptr, "out must not be null");
        *out = nullptr;
        const slmk::Format f = format_of(fmt);
        check_cols(f, k);
        need(w != nullptr && n > 0, "need w != NULL and n > 0");
        need(row_stride_bytes >= slmk::row_bytes(f, k), "row_stride_bytes is smaller than one row");
        auto h = std::make_unique<slmk_weights>();
        h->m = slmk::pack_matrix(f, static_cast<const uint8_t*>(w), n, k, row_stride_bytes);
        *out = h.release();
    });
}

void slmk_weights_destroy(slmk_weights* w) { delete w; }

slmk_status slmk_matmul(const slmk_weights* w, const float* x, int64_t m, int64_t k, int64_t ldx, float* out,
                        int64_t ldo) {
    return guarded([&] {
        need(w && x && out, "w, x and out must not be null");
        need(k == w->m->k, "k does not match the weights");
        need(m > 0 && ldx >= k && ldo >= w->m->n, "need m > 0, ldx >= k, ldo >= n");
        slmk::gemm(slmk::kernels(), w->m->format, w->m.get(), nullptr, 0, w->m->n, k, x, m, ldx, out, ldo);
    });
}

slmk_status slmk_rope(const float* x, float* out, int64_t tokens, int64_t heads, int64_t head_dim,
                      const int64_t* positions, double theta, slmk_rope_mode mode, int rotary_dim) {
    return guarded([&] {
        need(x && out && positions, "x, out and positions must not be null");
        need(tokens > 0 && heads > 0 && head_dim > 0, "tokens, heads and head_dim must be > 0");
        need(theta > 0 && std::isfinite(theta), "theta must be a positive number");
        need(mode == SLMK_ROPE_NORMAL || mode == SLMK_ROPE_NEOX, "unknown rope mode");
        const int rd = rotary_dim == 0 ? static_cast<int>(head_dim) : rotary_dim;
        need(rd > 0 && rd <= head_dim && rd % 2 == 0, "rotary_dim must be even and in 2..head_dim");
        const int64_t n = tokens * heads * head_dim;
        need(out == x || out + n <= x || x + n <= out, "out must be x itself or not overlap it");
        slmk::RopeConfig cfg;
        cfg.theta_base = theta;
        cfg.mode = mode == SLMK_ROPE_NEOX ? slmk::RopeMode::Neox : slmk::RopeMode::Normal;
        cfg.rotary_dim = rd;
        slmk::rope_apply(*slmk::rope_table(cfg), x, out, tokens, heads, head_dim, positions);
    });
}

slmk_status slmk_kvcache_create(int n_layers, int n_kv_heads, int head_dim, int64_t capacity_tokens, int block_tokens,
                                slmk_format dtype, slmk_kvcache** out) {
    return guarded([&] {
        need(out != nullptr, "out must not be null");
        *out = nullptr;
        const slmk::Format f = format_of(dtype);
        need(f == slmk::Format::F32 || f == slmk::Format::F16 || f == slmk::Format::Q8_0 || f == slmk::Format::Q4_0,
             "the KV cache dtype must be F32, F16, Q8_0 or Q4_0");
        *out = new slmk_kvcache{slmk::KVCache(n_layers, n_kv_heads, head_dim, capacity_tokens, block_tokens, f, {})};
    });
}

void slmk_kvcache_destroy(slmk_kvcache* c) { delete c; }

slmk_status slmk_kvcache_new_sequence(slmk_kvcache* c, int64_t* seq) {
    return guarded([&] {
        need(c && seq, "cache and seq must not be null");
        std::unique_lock<std::shared_mutex> lk(c->c.mu);
        *seq = c->c.new_sequence();
    });
}

slmk_status slmk_kvcache_extend(slmk_kvcache* c, int64_t seq, int64_t n) {
    return guarded([&] {
        need(c != nullptr, "cache must not be null");
        std::unique_lock<std::shared_mutex> lk(c->c.mu);
        c->c.extend(seq, n);
    });
}

slmk_status slmk_kvcache_write(slmk_kvcache* c, int layer, int64_t seq, const float* k, const float* v, int64_t n) {
    return guarded([&] {
        need(c && k && v, "cache, k and v must not be null");
        need(n > 0, "n must be > 0");
        std::unique_lock<std::shared_mutex> lk(c->c.mu);
        c->c.write(slmk::QuantKernels(slmk::kernels()), layer, seq, k, v, n);
    });
}

slmk_status slmk_attention(const slmk_kvcache* c, int layer, int64_t seq, const float* q, int64_t q_tokens,
                           int64_t n_heads, float scale, float* out) {
    return guarded([&] {
        need(c && q && out, "cache, q and out must not be null");
        need(q_tokens > 0 && n_heads > 0 && n_heads % c->c.n_kv_heads == 0,
             "need q_tokens > 0 and n_heads a positive multiple of n_kv_heads");
        need(scale >= 0 && std::isfinite(scale), "scale must be >= 0 (0: 1/sqrt(head_dim))");
        const int64_t n = q_tokens * n_heads * c->c.head_dim;
        need(out + n <= q || q + n <= out, "out must not overlap q");
        slmk::AttnOptions opt;
        opt.scale = scale;
        std::shared_lock<std::shared_mutex> lk(c->c.mu);
        slmk::attention_check(c->c, layer, seq, q_tokens, n_heads, opt);
        slmk::attention(slmk::kernels(), c->c, layer, seq, q, q_tokens, n_heads, opt, out);
    });
}

}  // extern "C"
