// ---- element formats: the ids kernels are registered for, their names and block geometry ----
// The ids and the traits below are all that core/ knows of a format; the block layouts, the
// quantizers and their contract live in quant/formats.h. Byte sizes are those of ggml
// (ggml/src/ggml-common.h), so tensors read from a .gguf file are used in place.
#pragma once
#include <cstdint>

namespace slmk {

enum class Format : int {
    F32 = 0, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K,
    Q8_K,  // activation-only format of the K-quant GEMMs (not a tensor format)
    COUNT
};
constexpr int kNumFormats = static_cast<int>(Format::COUNT);
constexpr int QK = 32;    // elements per block of the 32-block formats
constexpr int QK_K = 256; // elements per super-block of the K-quants

struct FormatInfo {
    const char* name;   // lower-case, as accepted from Python ("q4_0")
    int ggml_type;      // GGML type id in GGUF files
    int block_size;     // elements per block
    int type_size;      // bytes per block
};

static inline const FormatInfo& format_info(Format f) {
    static const FormatInfo table[kNumFormats] = {
        {"f32", 0, 1, 4},        {"f16", 1, 1, 2},        {"bf16", 30, 1, 2},
        {"q8_0", 8, QK, 34},     {"q4_0", 2, QK, 18},     {"q4_1", 3, QK, 20},
        {"q5_0", 6, QK, 22},     {"q5_1", 7, QK, 24},     {"q4_k", 12, QK_K, 144},
        {"q5_k", 13, QK_K, 176}, {"q6_k", 14, QK_K, 210}, {"q8_k", 15, QK_K, 292},
    };
    return table[static_cast<int>(f)];
}

// Bytes of one row of `n` elements (n must be a multiple of the block size).
static inline int64_t row_bytes(Format f, int64_t n) {
    const FormatInfo& fi = format_info(f);
    return n / fi.block_size * fi.type_size;
}

}  // namespace slmk
