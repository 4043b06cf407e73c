// ---- GeGLU: the tanh-GELU gated FFN activation (Gemma) ----
// Scalar only for now: it is not yet a dispatched kernel of the ops table (a row op beside
// swiglu once the kernel registry carries it).
#pragma once
#include <cstdint>

namespace slmk {

// y = gelu_tanh(g) * u, row by row (rows `ldg`/`ldu`/`ldy` floats apart), with
// gelu_tanh(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (Hendrycks & Gimpel 2016).
void geglu(const float* g, int64_t ldg, const float* u, int64_t ldu, float* y, int64_t ldy, int64_t rows, int64_t n);

}  // namespace slmk
