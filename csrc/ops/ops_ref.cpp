// ---- row ops: scalar twins and the row driver ----
#include <algorithm>
#include <array>
#include <cmath>

#include "../core/thread_pool.h"
#include "ops.h"

namespace slmk {

namespace {

// RMSNorm (Zhang & Sennrich 2019): y = x / sqrt(mean(x^2) + eps) * w
void rmsnorm_row_scalar(const float* x, const float* w, float* y, int64_t n, float eps) {
    float ss = 0.0f;
    for (int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
    const float scale = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] * scale) * w[i];
}

// SwiGLU (Shazeer 2020): silu(g) * u, silu(g) = g / (1 + exp(-g))
void swiglu_row_scalar(const float* g, const float* u, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

// GeGLU: gelu_tanh(g) * u, gelu_tanh(g) = g / (1 + exp(-t)), t = g (kGeluT1 + kGeluT3 g^2) (ops.h)
void geglu_row_scalar(const float* g, const float* u, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        const float x = g[i];
        const float t = x * (kGeluT1 + kGeluT3 * (x * x));
        y[i] = x / (1.0f + std::exp(-t)) * u[i];
    }
}

// ReGLU (Shazeer 2020): relu(g) * u with relu(g) = g < 0 ? +0 : g (ops.h: NaN and -0 pass through)
void reglu_row_scalar(const float* g, const float* u, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = (g[i] < 0.0f ? 0.0f : g[i]) * u[i];
}

constexpr std::array<KernelEntry, 4> kEntries = {
    entry<Op::rmsnorm, rmsnorm_row_scalar>(Format::F32),
    entry<Op::swiglu, swiglu_row_scalar>(Format::F32),
    entry<Op::geglu, geglu_row_scalar>(Format::F32),
    entry<Op::reglu, reglu_row_scalar>(Format::F32),
};

}  // namespace

extern constexpr KernelList kernels_ops_scalar{Isa::scalar, kEntries.data(), kEntries.size()};

void rmsnorm(const OpsKernels& k, const float* x, int64_t ldx, const float* w, float* y, int64_t ldy, int64_t rows,
             int64_t n, float eps) {
    const rmsnorm_row_fn fn = k.rmsnorm();
    parallel_for(rows, std::max<int64_t>(1, 32768 / n), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) fn(x + r * ldx, w, y + r * ldy, n, eps);
    });
}

namespace {

template <typename RowFn>
void gated_rows(RowFn fn, const float* g, int64_t ldg, const float* u, int64_t ldu, float* y, int64_t ldy, int64_t rows,
                int64_t n) {
    parallel_for(rows, std::max<int64_t>(1, 16384 / n), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) fn(g + r * ldg, u + r * ldu, y + r * ldy, n);
    });
}

}  // namespace

void swiglu(const OpsKernels& k, const float* g, int64_t ldg, const float* u, int64_t ldu, float* y, int64_t ldy,
            int64_t rows, int64_t n) {
    gated_rows(k.swiglu(), g, ldg, u, ldu, y, ldy, rows, n);
}

void geglu(const OpsKernels& k, const float* g, int64_t ldg, const float* u, int64_t ldu, float* y, int64_t ldy,
           int64_t rows, int64_t n) {
    gated_rows(k.geglu(), g, ldg, u, ldu, y, ldy, rows, n);
}

void reglu(const OpsKernels& k, const float* g, int64_t ldg, const float* u, int64_t ldu, float* y, int64_t ldy,
           int64_t rows, int64_t n) {
    gated_rows(k.reglu(), g, ldg, u, ldu, y, ldy, rows, n);
}

}  // namespace slmk
