// ---- elementwise and row ops of a transformer layer: RMSNorm, SwiGLU, embedding rows ----
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
template <> struct OpFn<Op::rmsnorm> { using type = rmsnorm_row_fn; };
template <> struct OpFn<Op::swiglu> { using type = swiglu_row_fn; };

// The row-ops slice of a kernel table (what the row drivers below call).
struct OpsKernels : TableSlice {
    using TableSlice::TableSlice;
    rmsnorm_row_fn rmsnorm() const { return t->get<Op::rmsnorm>(Format::F32); }
    swiglu_row_fn swiglu() const { return t->get<Op::swiglu>(Format::F32); }
};

// y[T][n] = x * (1/sqrt(mean(x^2) + eps)) * w, row by row (rows `ldx`/`ldy` floats apart).
void rmsnorm(const OpsKernels& k, const float* x, int64_t ldx, const float* w, float* y, int64_t ldy, int64_t rows,
             int64_t n, float eps);
// y = silu(g) * u = g / (1 + exp(-g)) * u, row by row.
void swiglu(const OpsKernels& k, const float* g, int64_t ldg, const float* u, int64_t ldu, float* y, int64_t ldy,
            int64_t rows, int64_t n);

}  // namespace slmk
