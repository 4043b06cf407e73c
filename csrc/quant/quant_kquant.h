// ---- K-quant quantizers (Q4_K, Q5_K, Q6_K): our own, scalar (weights are quantized offline) ----
#pragma once
#include <cstdint>

namespace slmk {
void quantize_q4_k_ref(const float* x, uint8_t* y, int64_t n);
void quantize_q5_k_ref(const float* x, uint8_t* y, int64_t n);
void quantize_q6_k_ref(const float* x, uint8_t* y, int64_t n);
}  // namespace slmk
