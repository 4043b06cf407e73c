// ---- the row kernels every quant file implements (quant_ref.cpp and each quant_<isa>.cpp) ----
// Each file includes this, defines these functions in its own anonymous namespace (compiled with
// its own flags) and registers kQuantRowEntries for its ISA; a file that misses one does not
// link. Only the scalar file has F32 and the K-quant quantizers (least squares, run offline).
#pragma once
#include <array>

#include "formats.h"

namespace slmk {
namespace {

void quantize_f16(const float* x, uint8_t* y, int64_t n);
void quantize_bf16(const float* x, uint8_t* y, int64_t n);
void quantize_q8_0(const float* x, uint8_t* y, int64_t n);
void quantize_q4_0(const float* x, uint8_t* y, int64_t n);
void quantize_q4_1(const float* x, uint8_t* y, int64_t n);
void quantize_q5_0(const float* x, uint8_t* y, int64_t n);
void quantize_q5_1(const float* x, uint8_t* y, int64_t n);
void quantize_q8_k(const float* x, uint8_t* y, int64_t n);
void dequantize_f16(const uint8_t* x, float* y, int64_t n);
void dequantize_bf16(const uint8_t* x, float* y, int64_t n);
void dequantize_q8_0(const uint8_t* x, float* y, int64_t n);
void dequantize_q4_0(const uint8_t* x, float* y, int64_t n);
void dequantize_q4_1(const uint8_t* x, float* y, int64_t n);
void dequantize_q5_0(const uint8_t* x, float* y, int64_t n);
void dequantize_q5_1(const uint8_t* x, float* y, int64_t n);
void dequantize_q4_k(const uint8_t* x, float* y, int64_t n);
void dequantize_q5_k(const uint8_t* x, float* y, int64_t n);
void dequantize_q6_k(const uint8_t* x, float* y, int64_t n);
void dequantize_q8_k(const uint8_t* x, float* y, int64_t n);

constexpr std::array<KernelEntry, 19> kQuantRowEntries = {
    entry<Op::quantize, quantize_f16>(Format::F16),       entry<Op::quantize, quantize_bf16>(Format::BF16),
    entry<Op::quantize, quantize_q8_0>(Format::Q8_0),     entry<Op::quantize, quantize_q4_0>(Format::Q4_0),
    entry<Op::quantize, quantize_q4_1>(Format::Q4_1),     entry<Op::quantize, quantize_q5_0>(Format::Q5_0),
    entry<Op::quantize, quantize_q5_1>(Format::Q5_1),     entry<Op::quantize, quantize_q8_k>(Format::Q8_K),
    entry<Op::dequantize, dequantize_f16>(Format::F16),   entry<Op::dequantize, dequantize_bf16>(Format::BF16),
    entry<Op::dequantize, dequantize_q8_0>(Format::Q8_0), entry<Op::dequantize, dequantize_q4_0>(Format::Q4_0),
    entry<Op::dequantize, dequantize_q4_1>(Format::Q4_1), entry<Op::dequantize, dequantize_q5_0>(Format::Q5_0),
    entry<Op::dequantize, dequantize_q5_1>(Format::Q5_1), entry<Op::dequantize, dequantize_q4_k>(Format::Q4_K),
    entry<Op::dequantize, dequantize_q5_k>(Format::Q5_K), entry<Op::dequantize, dequantize_q6_k>(Format::Q6_K),
    entry<Op::dequantize, dequantize_q8_k>(Format::Q8_K),
};

}  // namespace
}  // namespace slmk
