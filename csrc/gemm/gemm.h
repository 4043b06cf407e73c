// ---- quantized GEMM / GEMV: packed weight layout, activation rows, micro-kernel contract ----
//
// out[m][n] = sum_k x[m][k] * w[n][k]   (x: M x K float32, w: N x K in a GGUF format)
//
// Weights are repacked (once, at load time, or on the fly for an unpacked call) into groups of
// kGroupRows = 16 rows. Inside a group, each block of the format becomes one *tile* whose bytes
// are laid out "lanes over rows": a run of 64 bytes holds 4 consecutive quants of each of the
// 16 rows, so one 512-bit vpdpbusd (or two 256-bit maddubs/madd, or four NEON sdot) leaves in
// 32-bit lane r the dot product of row r with 4 activation bytes broadcast to every lane. After
// a block, lane r holds row r's exact integer block sum: no horizontal reduction anywhere, and
// the float work (scales) is vectorized across the 16 rows.
//
// The numerics (the spec the scalar twin implements and every SIMD path must reproduce bit for
// bit, see gemm_ref.cpp): per output, blocks are visited in order; each block's integer dot
// product is exact; the float accumulation per block is a fixed sequence of float32 multiplies
// and adds (no fused multiply-add), so the result does not depend on the ISA, on M (batch
// invariance), on the tiling, or on the thread count (threads split output rows only).
// One exception: when two NaNs meet (NaN scales in a hostile file plus a NaN activation block)
// which NaN payload survives follows operand order, which compilers may swap; NaN-ness is
// specified, the payload is not.
//
// Activations are quantized per row with the same rule on every ISA: d = amax/127 (float32),
// q = round-to-nearest-even(x * (1/d)), so |q| <= 127 (which keeps AVX2's int16 pair sums in
// maddubs from saturating).
#pragma once
#include <cstddef>
#include <cstdint>

#include "../core/registry.h"
#include "../quant/formats.h"

namespace slmk {

constexpr int kGroupRows = 16;  // weight rows interleaved in one packed group
constexpr int kMaxMR = 4;       // activation rows one micro-kernel call handles
constexpr int kPanelMinM = 16;   // M from which the AMX panels take over (their entries' tile.min_m)
constexpr int kPanelRows = 128;  // activation rows one AMX panel call handles (their tile.cols)

// ---- packed tile layouts (one tile = one block of the format for 16 rows) ----
// Notation: [a][b] = a-major array; "quad" = 4 bytes of one row; "row-quads" = [16 rows][4 B] = 64 B.
//
// Q8_0  (544 B): fp16 d[16] | q: [8 quads c][16 rows][4 B] int8  (elements 4c..4c+3)
// Q4_0  (288 B): fp16 d[16] | q: [4 c][16 rows][4 B] bytes of qs[4c..4c+3]:
//                 low nibbles = elements 4c..4c+3, high nibbles = elements 16+4c..16+4c+3
// Q4_1  (320 B): fp16 d[16] | fp16 m[16] | q as Q4_0
// Q5_0  (352 B): fp16 d[16] | hb: [4 c][16 rows] u8 | q as Q4_0;
//                 hb bit i (0..3) = bit 4 of element 4c+i, bit 4+i = bit 4 of element 16+4c+i
// Q5_1  (384 B): fp16 d[16] | fp16 m[16] | hb as Q5_0 | q as Q4_0
// Q4_K (2368 B): fp16 d[16] | fp16 dmin[16] | u8 sc[8 sub][16 rows] | u8 m[8 sub][16 rows] |
//                 q: [4 pairs g][8 c][16 rows][4 B] bytes qs[32g+4c .. +3]:
//                 low nibbles = sub-block 2g elements 4c..4c+3, high = sub-block 2g+1 elements 4c..
// Q5_K (2880 B): as Q4_K, then hb: [4 g][8 c][16 rows] u8 (bits 0..3 = bit 4 of sub-block 2g
//                 elements 4c+i, bits 4..7 = sub-block 2g+1) placed between m and q
// Q6_K (3360 B): fp16 d[16] | i8 sc[16 sub][16 rows] | ql: [2 halves a][16 c][16 rows][4 B] bytes
//                 ql[64a+4c .. +3] (low nibbles = elements 128a+4c+i, high = 128a+64+4c+i) |
//                 qh: [2 a][8 c][16 rows][4 B] bytes qh[32a+4c .. +3] (2-bit field t of byte l =
//                 bits 4,5 of element 128a+32t+l)
// F32 / F16 / BF16: one "block" per k: [16 rows] of the element type (64 / 32 / 32 B)
//
// Rows past N in the last group are zero bytes (zero scales): they compute zeros, never written.

// ---- the same layouts as data: where each field of one tile starts ----
// The packer, the scalar twin and every SIMD kernel take their offsets from here (a kernel:
// `constexpr TileLayout L = tile_layout(F);` then `t + L.q`), so a layout is written once.
constexpr int kRunBytes = 4 * kGroupRows;  // one run of "row-quads": [16 rows][4 B]
constexpr int kRowF16 = 2 * kGroupRows;    // one fp16 per row: d[16], m[16], dmin[16]

struct TileLayout {
    int d = -1;   // fp16 d[16]
    int m = -1;   // fp16 m[16] (Q4_1, Q5_1) / dmin[16] (Q4_K, Q5_K)
    int sc = -1;  // sub-block scales [sub][16 rows]: u8 (Q4_K, Q5_K, 8 sub), i8 (Q6_K, 16 sub)
    int mn = -1;  // sub-block mins u8 [8 sub][16 rows] (Q4_K, Q5_K)
    int hb = -1;  // bit-4 bytes (Q5_0, Q5_1: [4 c][16 rows]; Q5_K: [4 g][8 c][16 rows])
    int q = -1;   // the quant runs (Q6_K: ql); float formats: the [16 rows] of one k
    int qh = -1;  // Q6_K: the 2-bit high fields
    int q_step = 0;   // q bytes per pair of sub-blocks g (Q4_K, Q5_K: 8 runs) / per half a (Q6_K: 16 runs)
    int hb_step = 0;  // Q5_K: hb bytes per pair g (8 c x 16 rows)
    int qh_step = 0;  // Q6_K: qh bytes per half a (8 runs)
    int bytes = 0;    // the whole tile
};

constexpr TileLayout tile_layout(Format f) {
    TileLayout L;
    int at = 0;  // fields follow each other in the order the layouts above list them
    auto take = [&at](int n) {
        const int o = at;
        at += n;
        return o;
    };
    switch (f) {
        case Format::Q8_0: L.d = take(kRowF16), L.q = take(8 * kRunBytes); break;
        case Format::Q4_0: L.d = take(kRowF16), L.q = take(4 * kRunBytes); break;
        case Format::Q4_1: L.d = take(kRowF16), L.m = take(kRowF16), L.q = take(4 * kRunBytes); break;
        case Format::Q5_0: L.d = take(kRowF16), L.hb = take(4 * kGroupRows), L.q = take(4 * kRunBytes); break;
        case Format::Q5_1:
            L.d = take(kRowF16), L.m = take(kRowF16), L.hb = take(4 * kGroupRows), L.q = take(4 * kRunBytes);
            break;
        case Format::Q4_K:
        case Format::Q5_K:
            L.d = take(kRowF16), L.m = take(kRowF16), L.sc = take(8 * kGroupRows), L.mn = take(8 * kGroupRows);
            L.hb_step = f == Format::Q5_K ? 8 * kGroupRows : 0;
            if (f == Format::Q5_K) L.hb = take(4 * L.hb_step);
            L.q_step = 8 * kRunBytes;
            L.q = take(4 * L.q_step);
            break;
        case Format::Q6_K:
            L.d = take(kRowF16), L.sc = take(16 * kGroupRows);
            L.q_step = 16 * kRunBytes, L.q = take(2 * L.q_step);
            L.qh_step = 8 * kRunBytes, L.qh = take(2 * L.qh_step);
            break;
        case Format::F32: L.q = take(4 * kGroupRows); break;
        case Format::F16:
        case Format::BF16: L.q = take(2 * kGroupRows); break;
        default: break;
    }
    L.bytes = at;
    return L;
}

// Bytes of one packed tile; constexpr so kernels size their loops with it.
constexpr int64_t packed_tile_bytes(Format f) { return tile_layout(f).bytes; }
// The sizes the layouts above state (a changed field size shows up here first).
static_assert(packed_tile_bytes(Format::Q8_0) == 544 && packed_tile_bytes(Format::Q4_0) == 288 &&
              packed_tile_bytes(Format::Q4_1) == 320 && packed_tile_bytes(Format::Q5_0) == 352 &&
              packed_tile_bytes(Format::Q5_1) == 384 && packed_tile_bytes(Format::Q4_K) == 2368 &&
              packed_tile_bytes(Format::Q5_K) == 2880 && packed_tile_bytes(Format::Q6_K) == 3360 &&
              packed_tile_bytes(Format::F32) == 64 && packed_tile_bytes(Format::F16) == 32 &&
              packed_tile_bytes(Format::BF16) == 32);

// Packs rows [0, nrows) (nrows <= 16) of a GGUF-layout matrix, `nblocks` blocks per row, rows
// `src_stride` bytes apart, into one group of `nblocks` tiles at dst.
void pack_group(Format f, const uint8_t* src, int64_t src_stride, int nrows, int64_t nblocks, uint8_t* dst);

// The activation block format a weight format's GEMM uses.
enum class ActKind { Q8_32, Q8_256, Float };
ActKind act_kind(Format f);

// ---- the kernels' contract ----
struct ActRows {
    // 32-block formats (Q8_0-style): q int8 [M][K], d float [M][K/32], sum int32 [M][K/32] = sum of q
    // K-quants (Q8_K-style):          q int8 [M][K], d float [M][K/256], sum int32 [M][K/16] (bsums)
    // float formats: xf float [M][K] (the caller's x, not copied)
    const int8_t* q = nullptr;
    const float* d = nullptr;
    const int32_t* sum = nullptr;
    const float* xf = nullptr;
    int64_t q_stride = 0, d_stride = 0, sum_stride = 0, xf_stride = 0;  // elements per row
    // Panel path only (Op::gemm_panel): q again as int8 [ceil(M/16)][ceil(K/64)][16 rows][64],
    // zero past M and K, so a 16-row AMX tile of 32 or 64 k is one contiguous 1 KB slab.
    const int8_t* q_panel = nullptr;
};

// Op::act_quant, registered as Format::Q8_0 (32-blocks) and Format::Q8_K (256-blocks): quantizes
// one activation row of k values (k a multiple of the block):
//   32-blocks: d[b] = amax/127, q = round-to-nearest-even(x * (1/d)), sum[b] = sum of q
//   256-blocks: d per 256 likewise, sum[g] = sum of each 16 q (bsums)
using act_quant_fn = void (*)(const float* x, int64_t k, int8_t* q, float* d, int32_t* sum);

// Op::gemm (tile {16, 4}): computes out[i][r] for i < mr (activation rows m0..m0+mr-1, mr <= 4)
// and r < nvalid (rows of the 16-row group) over all `nblocks` tiles of one packed group. out
// points at (m0, n0).
// Op::gemm_panel (tile {16, rows per call, min_m, k_chunk}, optional, prefill): the same
// signature, but mr is any row count up to the tile's cols (the driver hands it chunks of M once
// M >= min_m, weights packed); same bits as the tiles (the spec above).
using gemm_tile_fn = void (*)(const uint8_t* group, int64_t nblocks, const ActRows& a, int64_t m0, int mr,
                              float* out, int64_t ldo, int nvalid);

template <> struct OpFn<Op::act_quant> { using type = act_quant_fn; };
template <> struct OpFn<Op::gemm> { using type = gemm_tile_fn; };
template <> struct OpFn<Op::gemm_panel> { using type = gemm_tile_fn; };

// The GEMM slice of a kernel table (what the driver calls).
struct GemmKernels : TableSlice {
    using TableSlice::TableSlice;
    act_quant_fn act_quant(ActKind kind) const {
        return t->get<Op::act_quant>(kind == ActKind::Q8_256 ? Format::Q8_K : Format::Q8_0);
    }
    gemm_tile_fn tile(Format f) const { return t->get<Op::gemm>(f); }
    gemm_tile_fn panel(Format f) const { return t->get<Op::gemm_panel>(f); }  // null: none
    Tile panel_tile(Format f) const {
        const Kernel* k = t->find(Op::gemm_panel, f);
        return k ? k->e.tile : Tile{};
    }
};

}  // namespace slmk
