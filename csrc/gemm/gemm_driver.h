// ---- GEMM driver: activation quantization, tiling over (weight groups x activation rows), threads ----
#pragma once
#include <cstdint>
#include <memory>

#include "../core/aligned_bytes.h"
#include "gemm.h"

namespace slmk {

// Weights repacked into 16-row groups (gemm.h); any format, any N, K a multiple of the block.
struct PackedMatrix {
    Format format;
    int64_t n = 0, k = 0;       // logical shape (N, K)
    int64_t nblocks = 0;        // tiles per group (K / block size)
    int64_t group_bytes = 0;    // bytes of one 16-row group
    AlignedBytes data;          // ceil(N/16) groups
    int64_t n_groups() const { return (n + kGroupRows - 1) / kGroupRows; }
};

// Packs a GGUF-layout (N, K) matrix (rows `row_stride` bytes apart). Runs on the thread pool.
std::unique_ptr<PackedMatrix> pack_matrix(Format f, const uint8_t* src, int64_t n, int64_t k, int64_t row_stride);

// out (M, N) = x (M, K) @ w^T. `packed` may be null: then `raw` (GGUF layout, rows `row_stride`
// apart) is packed group by group on the fly with the same kernels, so results are identical.
void gemm(const GemmKernels& kern, Format f, const PackedMatrix* packed, const uint8_t* raw, int64_t row_stride,
          int64_t n, int64_t k, const float* x, int64_t m, int64_t ldx, float* out, int64_t ldo);

}  // namespace slmk
