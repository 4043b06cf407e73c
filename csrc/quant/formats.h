// ---- GGUF block formats: layouts, and the contract of the quantize / dequantize kernels ----
// Byte layouts are those of ggml (ggml/src/ggml-common.h) so tensors read from a .gguf file
// are used in place. Every struct below is packed to 2-byte alignment by its members; the
// kernels read the fp16 scales with memcpy (see load_u16) so any buffer address works.
// The format ids, names and block sizes are core's (core/dtype.h).
#pragma once
#include <cstdint>
#include <cstring>

#include "../core/dtype.h"
#include "../core/registry.h"

namespace slmk {

struct block_q8_0 { uint16_t d; int8_t qs[QK]; };                       // 34 B
struct block_q4_0 { uint16_t d; uint8_t qs[QK / 2]; };                  // 18 B: x[j] in low nibble of qs[j], x[j+16] in high
struct block_q4_1 { uint16_t d, m; uint8_t qs[QK / 2]; };               // 20 B: x = d*q + m
struct block_q5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[QK / 2]; };   // 22 B: bit 4 of q[j] is bit j of qh (LE u32)
struct block_q5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[QK / 2]; };// 24 B
struct block_q4_K {                                                       // 144 B
    uint16_t d, dmin;      // super-block scales of the 6-bit sub-block scales / mins
    uint8_t scales[12];    // 8 x (6-bit scale, 6-bit min), packed (see get_scale_min_k4)
    uint8_t qs[QK_K / 2];  // 4 groups of 64: 32 bytes, low nibbles = sub-block 2g, high = 2g+1
};
struct block_q5_K {                                                       // 176 B
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qh[QK_K / 8];  // bit (2g) of qh[l] is bit 4 of sub-block 2g element l, bit 2g+1 likewise
    uint8_t qs[QK_K / 2];
};
struct block_q6_K {                                                       // 210 B
    uint8_t ql[QK_K / 2];  // low 4 bits
    uint8_t qh[QK_K / 4];  // high 2 bits
    int8_t scales[QK_K / 16];  // 16 sub-blocks of 16, 8-bit scales
    uint16_t d;
};
struct block_q8_K {        // 292 B: float scale, used only for activations
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];  // sums of each group of 16 quants
};
static_assert(sizeof(block_q8_0) == 34 && sizeof(block_q4_0) == 18 && sizeof(block_q4_1) == 20, "layout");
static_assert(sizeof(block_q5_0) == 22 && sizeof(block_q5_1) == 24, "layout");
static_assert(sizeof(block_q4_K) == 144 && sizeof(block_q5_K) == 176 && sizeof(block_q6_K) == 210, "layout");
static_assert(sizeof(block_q8_K) == 292, "layout");

static inline uint16_t load_u16(const void* p) { uint16_t v; std::memcpy(&v, p, 2); return v; }
static inline uint32_t load_u32(const void* p) { uint32_t v; std::memcpy(&v, p, 4); return v; }
static inline void store_u16(void* p, uint16_t v) { std::memcpy(p, &v, 2); }

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block; layout from
// ggml-quants.c get_scale_min_k4: j<4 in the low 6 bits of bytes j and j+4, j>=4 split
// between the nibbles of byte j+4 and the top 2 bits of bytes j-4 and j.
static inline void get_scale_min_k4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

// ---- the kernels: one contiguous row of n elements (n a multiple of the block size) ----
using quantize_row_fn = void (*)(const float* x, uint8_t* y, int64_t n);
using dequantize_row_fn = void (*)(const uint8_t* x, float* y, int64_t n);
template <> struct OpFn<Op::quantize> { using type = quantize_row_fn; };
template <> struct OpFn<Op::dequantize> { using type = dequantize_row_fn; };

// The quant slice of a kernel table (what the KV cache and the bindings call).
struct QuantKernels : TableSlice {
    using TableSlice::TableSlice;
    quantize_row_fn quantize(Format f) const { return t->get<Op::quantize>(f); }
    dequantize_row_fn dequantize(Format f) const { return t->get<Op::dequantize>(f); }
};

}  // namespace slmk
