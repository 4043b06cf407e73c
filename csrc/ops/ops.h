// ---- elementwise and row ops of a transformer layer: RMSNorm, SwiGLU, embedding rows ----
// Float kernels: each ISA's result is within a few ulp of the scalar twin (tests/test_ops.py
// names the tolerance); any one ISA gives the same bits for any thread count, since rows
// are never split.
#pragma once
#include <cstdint>

#include "../core/kernels.h"

namespace slmk {

// y[T][n] = x * (1/sqrt(mean(x^2) + eps)) * w, row by row (rows `ldx`/`ldy` floats apart).
void rmsnorm(const Kernels& k, const float* x, int64_t ldx, const float* w, float* y, int64_t ldy, int64_t rows,
             int64_t n, float eps);
// y = silu(g) * u = g / (1 + exp(-g)) * u, row by row.
void swiglu(const Kernels& k, const float* g, int64_t ldg, const float* u, int64_t ldu, float* y, int64_t ldy,
            int64_t rows, int64_t n);

}  // namespace slmk
