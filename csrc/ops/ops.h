// ---- elementwise and row ops of a transformer layer: RMSNorm, SwiGLU, GeGLU, embedding rows ----
// Float kernels: each ISA's result is within a few ulp of the scalar twin (tests/test_ops.py
// names the tolerance); any one ISA gives the same bits for any thread count, since rows
// are never split.
#pragma once
#include <cstdint>

#include "../core/registry.h"

namespace slmk {

// ---- the row kernels (registered as Format::F32) ----
using rmsnorm_row_fn = void (*)(const float* x, const float* w, float* y, int64_t n, float eps);
using swiglu_row_fn = void (*)(const float* g, const float* u, float* y, int64_t n);
using geglu_row_fn = void (*)(const float* g, const float* u, float* y, int64_t n);
using reglu_row_fn = void (*)(const float* g, const float* u, float* y, int64_t n);
template <> struct OpFn<Op::rmsnorm> { using type = rmsnorm_row_fn; };
template <> struct OpFn<Op::swiglu> { using type = swiglu_row_fn; };
template <> struct OpFn<Op::geglu> { using type = geglu_row_fn; };
template <> struct OpFn<Op::reglu> { using type = reglu_row_fn; };

// GELU's tanh approximation (Hendrycks & Gimpel 2016), 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3))),
// computed as x / (1 + exp(-t)) with t = x (kGeluT1 + kGeluT3 x^2), since 0.5 (1 + tanh(z)) =
// 1 / (1 + exp(-2z)): the same exp as SiLU. (llama.cpp rounds GELU through a float16 table.)
constexpr float kGeluT1 = 1.5957691216057308f;   // 2 sqrt(2/pi)
constexpr float kGeluT3 = 0.07135481627260025f;  // 2 sqrt(2/pi) 0.044715

// The row-ops slice of a kernel table (what the row drivers below call).
struct OpsKernels : TableSlice {
    using TableSlice::TableSlice;
    rmsnorm_row_fn rmsnorm() const { return t->get<Op::rmsnorm>(Format::F32); }
    swiglu_row_fn swiglu() const { return t->get<Op::swiglu>(Format::F32); }
    geglu_row_fn geglu() const { return t->get<Op::geglu>(Format::F32); }
    reglu_row_fn reglu() const { return t->get<Op::reglu>(Format::F32); }
};

// y[T][n] = x * (1/sqrt(mean(x^2) + eps)) * w, row by row (rows `ldx`/`ldy` floats apart).
void rmsnorm(const OpsKernels& k, const float* x, int64_t ldx, const float* w, float* y, int64_t ldy, int64_t rows,
             int64_t n, float eps);
// y = silu(g) * u = g / (1 + exp(-g)) * u, row by row.
void swiglu(const OpsKernels& k, const float* g, int64_t ldg, const float* u, int64_t ldu, float* y, int64_t ldy,
            int64_t rows, int64_t n);
// y = gelu_tanh(g) * u, row by row (Gemma's GeGLU).
void geglu(const OpsKernels& k, const float* g, int64_t ldg, const float* u, int64_t ldu, float* y, int64_t ldy,
           int64_t rows, int64_t n);
// y = relu(g) * u, row by row (ReGLU, Shazeer 2020; PhoneLM's FFN), relu(g) = (g < 0 ? +0 : g):
// NaN stays NaN, -0 stays -0 (max(0, g) as x86's maxps(0, g) computes it). One rounding per
// element, so every ISA gives the scalar twin's bits.
void reglu(const OpsKernels& k, const float* g, int64_t ldg, const float* u, int64_t ldu, float* y, int64_t ldy,
           int64_t rows, int64_t n);

}  // namespace slmk
