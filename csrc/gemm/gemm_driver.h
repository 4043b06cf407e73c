// ---- GEMM driver: activation quantization, tiling over (weight groups x activation rows), threads ----
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

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
// packed_rows (optional): called on the caller's thread after each slice of rows [r0, r1) is
// packed (slices of about kPackSliceBytes of source, in order), e.g. to give back the file pages
// of those rows so that a large matrix and its packed copy are never resident whole together.
std::unique_ptr<PackedMatrix> pack_matrix(Format f, const uint8_t* src, int64_t n, int64_t k, int64_t row_stride,
                                          const std::function<void(int64_t r0, int64_t r1)>& packed_rows = {});

// The rows of several GGUF-layout matrices of one format and K stacked into one packed matrix
// (fused Q/K/V or gate/up), packed from where they are: no stacked copy of the source. Every
// part but the last must have a multiple of kGroupRows rows (a 16-row group never straddles two
// parts; std::invalid_argument otherwise). packed_rows(part, r0, r1): rows [r0, r1) of that part
// are packed (as for pack_matrix).
struct PackPart {
    const uint8_t* src;
    int64_t n, row_stride;
};
std::unique_ptr<PackedMatrix> pack_matrix_stacked(
    Format f, const std::vector<PackPart>& parts, int64_t k,
    const std::function<void(size_t part, int64_t r0, int64_t r1)>& packed_rows = {});
constexpr int64_t kPackSliceBytes = 8 << 20;

// ---- activation precision (process-wide, like the ISA: applies to calls that start after) ----
// Q8:   each activation block is one int8 plane (gemm.h): x ~ d q.
// Q8x2: two int8 planes, x ~ d1 q1 + d2 q2: q1 as Q8, then the residual r = x - d1 * q1
//       (float32, no FMA) quantized by the same rule, so |x - d1 q1 - d2 q2| <= d2 / 2 with
//       d2 = amax(r) / 127 <= d1 / 254: about 16-bit activations. Each plane runs the Q8 kernels
//       unchanged (the spec of gemm.h per plane), and out = out_1 + out_2 (one float32 add per
//       output), so batch and thread invariance carry over; the weights of a group are read from
//       memory once (the second plane rides in the same micro-kernel call as one more activation
//       row, sharing the weights' unpacking): the extra cost is compute.
// Q8x2Head (the default): Q8x2 for the output head (GemmRole::head), Q8 for every other matrix.
//       On SmolLM2-135M the head's int8 activations were the largest single share of the
//       divergence from exact activations (README, Fidelity), at a few % of decode.
// Float-weight formats (F32/F16/BF16) use float activations in every mode.
enum class ActMode : int { Q8 = 0, Q8x2 = 1, Q8x2Head = 2 };
void set_act_mode(ActMode m);
ActMode act_mode();

// What a matrix is in the model: the activation mode may treat the output head apart.
enum class GemmRole : int { layer = 0, head = 1 };

// out (M, N) = x (M, K) @ w^T. `packed` may be null: then `raw` (GGUF layout, rows `row_stride`
// apart) is packed group by group on the fly with the same kernels, so results are identical.
void gemm(const GemmKernels& kern, Format f, const PackedMatrix* packed, const uint8_t* raw, int64_t row_stride,
          int64_t n, int64_t k, const float* x, int64_t m, int64_t ldx, float* out, int64_t ldo,
          GemmRole role = GemmRole::layer);

}  // namespace slmk
