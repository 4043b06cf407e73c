// ---- GEMM micro-kernels, NEON + i8mm (armv8.6-a+i8mm): smmla tiles for 2..4 activation rows ----
// The quantized formats' tiles with the integer products done by smmla (vmmlaq_s32). The float
// epilogues are those of the sdot kernels (nt_epi* in gemm_neon_tiles.h), fed the same exact
// integers, so the results are bit-exact with gemm_ref.cpp and with the other NEON rungs, and
// row i's bits do not depend on which rows share its tile (batch invariance).
//
// smmla (Arm A64 ISA, "SMMLA (vector)"): Vd.4S += Vn.16B x Vm.16B^T, with Vn a 2x8 int8 matrix
// (row 0 = bytes 0..7, row 1 = bytes 8..15), Vm an 8x2 matrix stored as its two columns (bytes
// 0..7, 8..15), Vd the 2x2 int32 result row-major: lanes (0,0) (0,1) (1,0) (1,1). 32 exact
// multiply-adds per instruction, twice sdot's 16.
//
// Operands here: Vn = two activation rows (a, b), 8 consecutive k each; Vm = two weight rows,
// the same 8 k; so lanes = (a,r) (a,r') (b,r) (b,r'). The packed tiles (gemm.h) hold 4 k of a
// row per 32-bit lane ("lanes over rows"), so a weight operand is the 32-bit zip of two
// consecutive row-quads runs c, c+1 (quarter qq: rows 4qq..4qq+3):
//   zip1 -> rows 4qq, 4qq+1 with quads c, c+1 (k 4c..4c+7);  zip2 -> rows 4qq+2, 4qq+3.
// c is even in every format below, so those 8 k are the activation bytes 8j..8j+7 of chunk
// j = (4c)/8 (plus the format's element offset), and the activation operand of chunk j is the
// 64-bit zip of the two rows' 16-byte loads. After a block (K-quants: after the integer scale
// sums), two 2x2 results of a quarter go back to lanes over rows with one 64-bit zip per row:
//   row a = zip1_64(rows {4qq,4qq+1}, rows {4qq+2,4qq+3}),  row b = zip2_64(...)
// so the epilogue is exactly the sdot kernels'.
//
// Rows: mr = 1 runs the sdot kernel (nothing to pair); mr = 3 computes its last row twice
// (pair (2,2)) and stores it once; mr = 2 and 4 are one and two pairs.
//
// Expected gain over the sdot rung. No i8mm hardware was available, so this is instruction
// counts, not time (qemu timings mean nothing). Per output and 32 k the sdot kernels issue 2 sdot
// and 2 activation broadcasts (ldr + dup); these issue 1 smmla, 1/2 (Q8_0, Q6_K) or 1/4
// (nibble formats) weight zip, 1/8 of an activation operand and 1/4 of an un-zip per block.
// Unpacking (nibbles, high bits, offsets) costs the same on both; the float epilogue is
// identical. Executed instructions per block of a 16 x 4 tile (K = 1024, aarch64-linux-gnu-g++
// 12 -O3, counted under qemu -singlestep; "vector" includes sdot/smmla and zips):
//              sdot rung          smmla (this file)
//              total  vector      total  vector
//   Q8_0        551    313         304    211
//   Q4_0        568    317         331    256
//   Q4_1        577    342         407    290
//   Q5_0        749    454         543    382
//   Q5_1        842    480         588    409
//   Q4_K       5083   3156        2618   1740
//   Q5_K       6651   4195        4438   2765
//   Q6_K       7811   4057        4999   3237
// so 30-50% fewer instructions, 15-45% fewer vector ones; at mr = 2 the gain shrinks (Q8_0:
// 191 -> 166 total, 126 -> 122 vector), since each weight zip then feeds one pair only. If a
// core issues smmla at its sdot rate (not checked here: see its software optimization guide),
// the vector-op ratio is the likely bound; run `slmkernels bench gemm --isa
// neon_dotprod,neon_i8mm` on i8mm hardware before claiming a speedup. Not measured at all: the
// M = 1 path (mr = 1 runs the sdot body, same instruction count). What is left here: the
// per-block float epilogue the spec fixes,
// and the zips the packed layout needs (a panel with 8 activation rows per weight operand would
// halve their share again).
#include "gemm_neon_tiles.h"

namespace slmk {

namespace {

struct DotSdot {  // mr = 1: one activation row has nothing to pair, so it runs the sdot body
    static inline int32x4_t dot(int32x4_t acc, int8x16_t w, int8x16_t x) { return vdotq_s32(acc, w, x); }
};

// ---- operands ----
// Runs c, c+1 of one quarter -> the weight operands of its two row pairs.
struct RowPairs {
    int8x16_t r01, r23;  // rows {4qq, 4qq+1}, {4qq+2, 4qq+3}: 8 bytes (quads c, c+1) each
};
inline RowPairs im_zip_runs(uint8x16_t c0, uint8x16_t c1) {
    const uint32x4_t a = vreinterpretq_u32_u8(c0), b = vreinterpretq_u32_u8(c1);
    return {vreinterpretq_s8_u32(vzip1q_u32(a, b)), vreinterpretq_s8_u32(vzip2q_u32(a, b))};
}

// 16 k of activation rows xa, xb -> the activation operands of chunks 2j, 2j+1 (8 k each).
inline void im_act_pairs(const int8_t* xa, const int8_t* xb, int8x16_t* out2) {
    const int64x2_t a = vreinterpretq_s64_s8(vld1q_s8(xa)), b = vreinterpretq_s64_s8(vld1q_s8(xb));
    out2[0] = vreinterpretq_s8_s64(vzip1q_s64(a, b));
    out2[1] = vreinterpretq_s8_s64(vzip2q_s64(a, b));
}

// Two 2x2 results of a quarter (row pairs {0,1}, {2,3}; activation rows a, b) -> lanes over the
// quarter's 4 rows for row a and for row b.
inline void im_unpair(int32x4_t d01, int32x4_t d23, int32x4_t* ra, int32x4_t* rb) {
    const int64x2_t x = vreinterpretq_s64_s32(d01), y = vreinterpretq_s64_s32(d23);
    *ra = vreinterpretq_s32_s64(vzip1q_s64(x, y));
    *rb = vreinterpretq_s32_s64(vzip2q_s64(x, y));
}

// Per-row int32 scales of a quarter's 4 rows {s0, s1, s2, s3} -> the scale of each lane of its two
// row pairs' 2x2 results: {s0, s1, s0, s1} and {s2, s3, s2, s3}.
struct PairScales {
    int32x4_t r01, r23;
};
inline PairScales im_pair_scales(int32x4_t s) {
    const int64x2_t v = vreinterpretq_s64_s32(s);
    return {vreinterpretq_s32_s64(vdupq_laneq_s64(v, 0)), vreinterpretq_s32_s64(vdupq_laneq_s64(v, 1))};
}

// Bit 4 of the elements of a zipped run pair, as 0 / 0x10 per byte, for the Q5 hb runs (gemm.h:
// hb bit i = bit 4 of low-nibble element i of the run's quad, bit 4+i = high-nibble element i).
// hb points at run c's 16 row bytes; run c+1's follow. Byte p of the zipped row pair h holds
// row 2h + p/8 of the quarter, run c + (p/4)%2, element i = p%4: the table picks that hb byte
// out of {run c rows 4qq..4qq+3, run c+1 rows 4qq..4qq+3}, the masks its bit.
struct HbPairBits {
    uint8x16_t lo01, hi01, lo23, hi23;
};
inline HbPairBits im_hb_pair_bits(const uint8_t* hb, int qq) {
    static const uint8_t kIdx01[16] = {0, 0, 0, 0, 4, 4, 4, 4, 1, 1, 1, 1, 5, 5, 5, 5};
    static const uint8_t kIdx23[16] = {2, 2, 2, 2, 6, 6, 6, 6, 3, 3, 3, 3, 7, 7, 7, 7};
    static const uint8_t kMlo[16] = {1, 2, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8};
    static const uint8_t kMhi[16] = {16, 32, 64, 128, 16, 32, 64, 128, 16, 32, 64, 128, 16, 32, 64, 128};
    uint32_t u0, u1;
    std::memcpy(&u0, hb + 4 * qq, 4);
    std::memcpy(&u1, hb + kGroupRows + 4 * qq, 4);
    const uint8x16_t h = vreinterpretq_u8_u64(vdupq_n_u64(u0 | static_cast<uint64_t>(u1) << 32));
    const uint8x16_t h01 = vqtbl1q_u8(h, vld1q_u8(kIdx01)), h23 = vqtbl1q_u8(h, vld1q_u8(kIdx23));
    const uint8x16_t mlo = vld1q_u8(kMlo), mhi = vld1q_u8(kMhi), b4 = vdupq_n_u8(0x10);
    return {vandq_u8(vtstq_u8(h01, mlo), b4), vandq_u8(vtstq_u8(h01, mhi), b4), vandq_u8(vtstq_u8(h23, mlo), b4),
            vandq_u8(vtstq_u8(h23, mhi), b4)};
}

// Activation rows of a tile: NP pairs, an odd MR repeating its last row (computed, not stored).
template <int MR>
struct ImRows {
    static constexpr int NP = (MR + 1) / 2;
    const int8_t* q[2 * NP];
    const float* d[MR];
    const int32_t* s[MR];
    ImRows(const ActRows& a, int64_t m0) {
        for (int i = 0; i < 2 * NP; ++i) q[i] = a.q + (m0 + (i < MR ? i : MR - 1)) * a.q_stride;
        for (int i = 0; i < MR; ++i) {
            d[i] = a.d + (m0 + i) * a.d_stride;
            s[i] = a.sum + (m0 + i) * a.sum_stride;
        }
    }
};

// ---- the 32-block formats: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 ----
// Per block: 4 activation operands per pair (chunks j = 0..3, k 8j..8j+7). Per quarter:
// Q8_0 zips runs (2cp, 2cp+1) -> chunk cp; the nibble formats zip the raw bytes of runs
// (2cp, 2cp+1) once, then low nibbles -> chunk cp, high nibbles -> chunk 2 + cp (elements 16+).
template <Format F, int MR>
void im_tile32(const uint8_t* group, int64_t nblocks, const ActRows& a, int64_t m0, float* out, int64_t ldo,
               int nvalid) {
    constexpr int64_t tb = packed_tile_bytes(F);
    constexpr bool has_m = F == Format::Q4_1 || F == Format::Q5_1;
    constexpr bool q5 = F == Format::Q5_0 || F == Format::Q5_1;
    constexpr TileLayout L = tile_layout(F);
    constexpr int offset = F == Format::Q4_0 ? 8 : F == Format::Q5_0 ? 16 : 0;
    using Rows = ImRows<MR>;
    constexpr int NP = Rows::NP;
    const Rows x(a, m0);
    float32x4_t acc[MR][4];
    for (int i = 0; i < MR; ++i)
        for (int q = 0; q < 4; ++q) acc[i][q] = vdupq_n_f32(0.0f);
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    const int8x16_t off = vdupq_n_s8(offset);
    for (int64_t b = 0; b < nblocks; ++b) {
        const uint8_t* t = group + b * tb;
        int8x16_t xv[NP][4];
        for (int p = 0; p < NP; ++p) {
            im_act_pairs(x.q[2 * p] + 32 * b, x.q[2 * p + 1] + 32 * b, xv[p]);
            im_act_pairs(x.q[2 * p] + 32 * b + 16, x.q[2 * p + 1] + 32 * b + 16, xv[p] + 2);
        }
#pragma GCC unroll 4
        for (int qq = 0; qq < 4; ++qq) {
            int32x4_t d[NP][2];
            for (int p = 0; p < NP; ++p) d[p][0] = d[p][1] = vdupq_n_s32(0);
            if constexpr (F == Format::Q8_0) {
#pragma GCC unroll 4
                for (int cp = 0; cp < 4; ++cp) {
                    const RowPairs w = im_zip_runs(vld1q_u8(t + L.q + 2 * cp * 64 + 16 * qq),
                                                   vld1q_u8(t + L.q + (2 * cp + 1) * 64 + 16 * qq));
                    for (int p = 0; p < NP; ++p) {
                        d[p][0] = vmmlaq_s32(d[p][0], xv[p][cp], w.r01);
                        d[p][1] = vmmlaq_s32(d[p][1], xv[p][cp], w.r23);
                    }
                }
            } else {
#pragma GCC unroll 2
                for (int cp = 0; cp < 2; ++cp) {
                    const RowPairs z = im_zip_runs(vld1q_u8(t + L.q + 2 * cp * 64 + 16 * qq),
                                                   vld1q_u8(t + L.q + (2 * cp + 1) * 64 + 16 * qq));
                    const uint8x16_t z01 = vreinterpretq_u8_s8(z.r01), z23 = vreinterpretq_u8_s8(z.r23);
                    uint8x16_t lo01 = vandq_u8(z01, m4), hi01 = vshrq_n_u8(z01, 4);
                    uint8x16_t lo23 = vandq_u8(z23, m4), hi23 = vshrq_n_u8(z23, 4);
                    if constexpr (q5) {
                        const HbPairBits h = im_hb_pair_bits(t + L.hb + 2 * cp * kGroupRows, qq);
                        lo01 = vorrq_u8(lo01, h.lo01);
                        hi01 = vorrq_u8(hi01, h.hi01);
                        lo23 = vorrq_u8(lo23, h.lo23);
                        hi23 = vorrq_u8(hi23, h.hi23);
                    }
                    int8x16_t wl01 = vreinterpretq_s8_u8(lo01), wh01 = vreinterpretq_s8_u8(hi01);
                    int8x16_t wl23 = vreinterpretq_s8_u8(lo23), wh23 = vreinterpretq_s8_u8(hi23);
                    if constexpr (offset != 0) {  // sum (q - o) x = sum q x - o sum x, exactly
                        wl01 = vsubq_s8(wl01, off);
                        wh01 = vsubq_s8(wh01, off);
                        wl23 = vsubq_s8(wl23, off);
                        wh23 = vsubq_s8(wh23, off);
                    }
                    for (int p = 0; p < NP; ++p) {
                        d[p][0] = vmmlaq_s32(d[p][0], xv[p][cp], wl01);
                        d[p][1] = vmmlaq_s32(d[p][1], xv[p][cp], wl23);
                        d[p][0] = vmmlaq_s32(d[p][0], xv[p][2 + cp], wh01);
                        d[p][1] = vmmlaq_s32(d[p][1], xv[p][2 + cp], wh23);
                    }
                }
            }
            const float32x4_t dw = nt_f16x4(t + L.d + 8 * qq);
            const float32x4_t mw = has_m ? nt_f16x4(t + L.m + 8 * qq) : dw;
            for (int p = 0; p < NP; ++p) {
                int32x4_t da, db;
                im_unpair(d[p][0], d[p][1], &da, &db);
                const int i = 2 * p;
                acc[i][qq] = nt_epi32<F>(acc[i][qq], da, dw, mw, x.d[i][b], x.s[i][b]);
                if (i + 1 < MR) acc[i + 1][qq] = nt_epi32<F>(acc[i + 1][qq], db, dw, mw, x.d[i + 1][b], x.s[i + 1][b]);
            }
        }
    }
    for (int i = 0; i < MR; ++i) nt_store16(out + i * ldo, acc[i], nvalid);
}

// ---- the K-quants: the block's activations, pair-interleaved once per block ----
// xi[p][j] = operand of chunk j (k 8j..8j+7) for pair p; each is read by 2 smmla in each of
// the 4 quarters, so building it once (a load, a zip and a store per operand) beats building
// it per use (two loads and an insert).
template <int NP>
inline void im_interleave256(const int8_t* const* xq, int64_t b, int8x16_t (*xi)[32]) {
    for (int p = 0; p < NP; ++p)
        for (int j = 0; j < 16; ++j) im_act_pairs(xq[2 * p] + 256 * b + 16 * j, xq[2 * p + 1] + 256 * b + 16 * j, xi[p] + 2 * j);
}

// ---- Q4_K / Q5_K ----
// The min term, all 4 quarters at once, first thing in a block: it needs no weight quants, and
// the sub-block's 16 mins widen in one go (6 ops, not 3 per quarter) and meet each activation
// row's bsum pair by lane (mla by element, no broadcast per use).
// ms[i][qq] = sum_j m_j (rows 4qq..4qq+3) * (bsum_2j + bsum_2j+1 of row i)
template <int MR, int J>
inline void im_q45k_msum_step(const uint8_t* mn, const int32x4_t (*bp)[2], int32x4_t (*ms)[4]) {
    const uint8x16_t m = vld1q_u8(mn + J * kGroupRows);
    const uint16x8_t lo = vmovl_u8(vget_low_u8(m)), hi = vmovl_high_u8(m);
    const int32x4_t mq[4] = {vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(lo))),
                             vreinterpretq_s32_u32(vmovl_high_u16(lo)),
                             vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(hi))),
                             vreinterpretq_s32_u32(vmovl_high_u16(hi))};
    for (int i = 0; i < MR; ++i)
        for (int qq = 0; qq < 4; ++qq) ms[i][qq] = vmlaq_laneq_s32(ms[i][qq], mq[qq], bp[i][J / 4], J % 4);
}
template <int MR>
inline void im_q45k_msum(const uint8_t* mn, const int32_t* const* xs, int64_t b, int32x4_t (*ms)[4]) {
    int32x4_t bp[MR][2];  // bsum pairs 0..3, 4..7 of each row
    for (int i = 0; i < MR; ++i) {
        const int32_t* bs = xs[i] + 16 * b;
        bp[i][0] = vpaddq_s32(vld1q_s32(bs), vld1q_s32(bs + 4));
        bp[i][1] = vpaddq_s32(vld1q_s32(bs + 8), vld1q_s32(bs + 12));
        for (int qq = 0; qq < 4; ++qq) ms[i][qq] = vdupq_n_s32(0);
    }
    im_q45k_msum_step<MR, 0>(mn, bp, ms);
    im_q45k_msum_step<MR, 1>(mn, bp, ms);
    im_q45k_msum_step<MR, 2>(mn, bp, ms);
    im_q45k_msum_step<MR, 3>(mn, bp, ms);
    im_q45k_msum_step<MR, 4>(mn, bp, ms);
    im_q45k_msum_step<MR, 5>(mn, bp, ms);
    im_q45k_msum_step<MR, 6>(mn, bp, ms);
    im_q45k_msum_step<MR, 7>(mn, bp, ms);
}

// Sub-block pair g, runs (8g + 2cp, 8g + 2cp + 1): low nibbles = sub-block 2g elements
// 8cp..8cp+7 (chunk 8g + cp), high = sub-block 2g+1 (chunk 8g + 4 + cp). The sub-block scale
// product stays in the 2x2 layout (scales {r, r', r, r'}) until the block's end.
// isum = sum_j sc_j * dot_j ; msum = sum_j m_j * (bsum_2j + bsum_2j+1)
template <Format F, int MR>
void im_tile_q45k(const uint8_t* group, int64_t nblocks, const ActRows& a, int64_t m0, float* out, int64_t ldo,
                  int nvalid) {
    constexpr bool q5 = F == Format::Q5_K;
    constexpr TileLayout L = tile_layout(F);
    constexpr int64_t tb = L.bytes;
    using Rows = ImRows<MR>;
    constexpr int NP = Rows::NP;
    const Rows x(a, m0);
    float32x4_t acc[MR][4];
    for (int i = 0; i < MR; ++i)
        for (int q = 0; q < 4; ++q) acc[i][q] = vdupq_n_f32(0.0f);
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    int8x16_t xi[NP][32];
    for (int64_t b = 0; b < nblocks; ++b) {
        const uint8_t* t = group + b * tb;
        const uint8_t* sc = t + L.sc;
        int32x4_t ms[MR][4];
        im_q45k_msum<MR>(t + L.mn, x.s, b, ms);
        im_interleave256<NP>(x.q, b, xi);
        for (int qq = 0; qq < 4; ++qq) {
            int32x4_t is[NP][2];
            for (int p = 0; p < NP; ++p) is[p][0] = is[p][1] = vdupq_n_s32(0);
            for (int g = 0; g < 4; ++g) {
                int32x4_t dl[NP][2], dh[NP][2];
                for (int p = 0; p < NP; ++p) dl[p][0] = dl[p][1] = dh[p][0] = dh[p][1] = vdupq_n_s32(0);
#pragma GCC unroll 4
                for (int cp = 0; cp < 4; ++cp) {
                    const int c = 8 * g + 2 * cp;  // run index within the tile's q
                    const RowPairs z =
                        im_zip_runs(vld1q_u8(t + L.q + c * 64 + 16 * qq), vld1q_u8(t + L.q + (c + 1) * 64 + 16 * qq));
                    const uint8x16_t z01 = vreinterpretq_u8_s8(z.r01), z23 = vreinterpretq_u8_s8(z.r23);
                    uint8x16_t lo01 = vandq_u8(z01, m4), hi01 = vshrq_n_u8(z01, 4);
                    uint8x16_t lo23 = vandq_u8(z23, m4), hi23 = vshrq_n_u8(z23, 4);
                    if constexpr (q5) {
                        const HbPairBits h = im_hb_pair_bits(t + L.hb + c * kGroupRows, qq);
                        lo01 = vorrq_u8(lo01, h.lo01);
                        hi01 = vorrq_u8(hi01, h.hi01);
                        lo23 = vorrq_u8(lo23, h.lo23);
                        hi23 = vorrq_u8(hi23, h.hi23);
                    }
                    for (int p = 0; p < NP; ++p) {
                        dl[p][0] = vmmlaq_s32(dl[p][0], xi[p][8 * g + cp], vreinterpretq_s8_u8(lo01));
                        dl[p][1] = vmmlaq_s32(dl[p][1], xi[p][8 * g + cp], vreinterpretq_s8_u8(lo23));
                        dh[p][0] = vmmlaq_s32(dh[p][0], xi[p][8 * g + 4 + cp], vreinterpretq_s8_u8(hi01));
                        dh[p][1] = vmmlaq_s32(dh[p][1], xi[p][8 * g + 4 + cp], vreinterpretq_s8_u8(hi23));
                    }
                }
                const PairScales sl = im_pair_scales(nt_u8x4(sc + (2 * g) * kGroupRows + 4 * qq));
                const PairScales sh = im_pair_scales(nt_u8x4(sc + (2 * g + 1) * kGroupRows + 4 * qq));
                for (int p = 0; p < NP; ++p) {
                    is[p][0] = vmlaq_s32(is[p][0], sl.r01, dl[p][0]);
                    is[p][1] = vmlaq_s32(is[p][1], sl.r23, dl[p][1]);
                    is[p][0] = vmlaq_s32(is[p][0], sh.r01, dh[p][0]);
                    is[p][1] = vmlaq_s32(is[p][1], sh.r23, dh[p][1]);
                }
            }
            const float32x4_t d = nt_f16x4(t + L.d + 8 * qq);
            const float32x4_t dmin = nt_f16x4(t + L.m + 8 * qq);
            for (int p = 0; p < NP; ++p) {
                int32x4_t ia, ib;
                im_unpair(is[p][0], is[p][1], &ia, &ib);
                const int i = 2 * p;
                acc[i][qq] = nt_epi_q45k(acc[i][qq], ia, ms[i][qq], d, dmin, x.d[i][b]);
                if (i + 1 < MR) acc[i + 1][qq] = nt_epi_q45k(acc[i + 1][qq], ib, ms[i + 1][qq], d, dmin, x.d[i + 1][b]);
            }
        }
    }
    for (int i = 0; i < MR; ++i) nt_store16(out + i * ldo, acc[i], nvalid);
}

// ---- Q6_K ----
// Field T of half ah, sub-block s = 8ah + 2T + h: runs cq = 4h + 2cp, +1 give elements
// 128ah + 32T + 4cq .. +7 (chunk 16ah + 4T + 2h + cp). Each run's 6-bit weights (minus 32) are
// built lanes-over-rows exactly as the sdot kernel does, then zipped (2 zips per run pair:
// cheaper than zipping ql and qh separately).
// isum = sum_s sc_s * (dot_s - 32 * bsum_s)   (the -32 is in the weights)
template <int NP, int T>
inline void im_q6_field(const uint8_t* t, int qq, int ah, int8x16_t (*xi)[32], int32x4_t (*is)[2]) {
    constexpr TileLayout L = tile_layout(Format::Q6_K);
    const uint8_t* ql = t + L.q + ah * L.q_step;
    const uint8_t* qh = t + L.qh + ah * L.qh_step;
    const uint8_t* sc = t + L.sc;
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    const int8x16_t o32 = vdupq_n_s8(32);
    auto weights = [&](int cq) {  // run cq of field T, quarter qq: 4 rows x 4 elements, minus 32
        const uint8x16_t lv = vld1q_u8(ql + (8 * (T & 1) + cq) * 64 + 16 * qq);
        const uint8x16_t hv = vld1q_u8(qh + cq * 64 + 16 * qq);
        const uint8x16_t lo = T < 2 ? vandq_u8(lv, m4) : vshrq_n_u8(lv, 4);
        return vsubq_u8(vorrq_u8(lo, nt_q6_hi<T>(hv)), vreinterpretq_u8_s8(o32));
    };
    for (int h = 0; h < 2; ++h) {
        int32x4_t dot[NP][2];
        for (int p = 0; p < NP; ++p) dot[p][0] = dot[p][1] = vdupq_n_s32(0);
#pragma GCC unroll 2
        for (int cp = 0; cp < 2; ++cp) {
            const int cq = 4 * h + 2 * cp;
            const RowPairs w = im_zip_runs(weights(cq), weights(cq + 1));
            const int j = 16 * ah + 4 * T + 2 * h + cp;
            for (int p = 0; p < NP; ++p) {
                dot[p][0] = vmmlaq_s32(dot[p][0], xi[p][j], w.r01);
                dot[p][1] = vmmlaq_s32(dot[p][1], xi[p][j], w.r23);
            }
        }
        const PairScales s = im_pair_scales(nt_s8x4(sc + (8 * ah + 2 * T + h) * kGroupRows + 4 * qq));
        for (int p = 0; p < NP; ++p) {
            is[p][0] = vmlaq_s32(is[p][0], s.r01, dot[p][0]);
            is[p][1] = vmlaq_s32(is[p][1], s.r23, dot[p][1]);
        }
    }
}

template <int MR>
void im_tile_q6k(const uint8_t* group, int64_t nblocks, const ActRows& a, int64_t m0, float* out, int64_t ldo,
                 int nvalid) {
    constexpr TileLayout L = tile_layout(Format::Q6_K);
    constexpr int64_t tb = L.bytes;
    using Rows = ImRows<MR>;
    constexpr int NP = Rows::NP;
    const Rows x(a, m0);
    float32x4_t acc[MR][4];
    for (int i = 0; i < MR; ++i)
        for (int q = 0; q < 4; ++q) acc[i][q] = vdupq_n_f32(0.0f);
    int8x16_t xi[NP][32];
    for (int64_t b = 0; b < nblocks; ++b) {
        const uint8_t* t = group + b * tb;
        im_interleave256<NP>(x.q, b, xi);
        for (int qq = 0; qq < 4; ++qq) {
            int32x4_t is[NP][2];
            for (int p = 0; p < NP; ++p) is[p][0] = is[p][1] = vdupq_n_s32(0);
            for (int ah = 0; ah < 2; ++ah) {
                im_q6_field<NP, 0>(t, qq, ah, xi, is);
                im_q6_field<NP, 1>(t, qq, ah, xi, is);
                im_q6_field<NP, 2>(t, qq, ah, xi, is);
                im_q6_field<NP, 3>(t, qq, ah, xi, is);
            }
            const float32x4_t d = nt_f16x4(t + L.d + 8 * qq);
            for (int p = 0; p < NP; ++p) {
                int32x4_t ia, ib;
                im_unpair(is[p][0], is[p][1], &ia, &ib);
                const int i = 2 * p;
                acc[i][qq] = nt_epi_q6k(acc[i][qq], ia, d, x.d[i][b]);
                if (i + 1 < MR) acc[i + 1][qq] = nt_epi_q6k(acc[i + 1][qq], ib, d, x.d[i + 1][b]);
            }
        }
    }
    for (int i = 0; i < MR; ++i) nt_store16(out + i * ldo, acc[i], nvalid);
}

// ---- runtime mr -> template MR ----
template <Format F, int MR>
void im_tile_mr(const uint8_t* group, int64_t nblocks, const ActRows& a, int64_t m0, float* out, int64_t ldo,
                int nvalid) {
    if constexpr (F == Format::Q4_K || F == Format::Q5_K) im_tile_q45k<F, MR>(group, nblocks, a, m0, out, ldo, nvalid);
    else if constexpr (F == Format::Q6_K) im_tile_q6k<MR>(group, nblocks, a, m0, out, ldo, nvalid);
    else im_tile32<F, MR>(group, nblocks, a, m0, out, ldo, nvalid);
}

template <Format F>
void im_tile(const uint8_t* group, int64_t nblocks, const ActRows& a, int64_t m0, int mr, float* out, int64_t ldo,
             int nvalid) {
    switch (mr) {  // the shape of nt_tile, so the mr = 1 body compiles as it does on the dotprod rung
        case 1: nt_tile_mr<DotSdot, F, 1>(group, nblocks, a, m0, out, ldo, nvalid); break;
        case 2: im_tile_mr<F, 2>(group, nblocks, a, m0, out, ldo, nvalid); break;
        case 3: im_tile_mr<F, 3>(group, nblocks, a, m0, out, ldo, nvalid); break;
        default:
            for (int i0 = 0; i0 < mr; i0 += 4) {
                const int n = mr - i0 < 4 ? mr - i0 : 4;
                if (n == 4) im_tile_mr<F, 4>(group, nblocks, a, m0 + i0, out + i0 * ldo, ldo, nvalid);
                else im_tile<F>(group, nblocks, a, m0 + i0, n, out + i0 * ldo, ldo, nvalid);
            }
            break;
    }
}

// 16 weight rows x up to 4 activation rows; a lone activation row (M = 1, or the last of
// M = 4k+1) runs the sdot body inside the same entry.
constexpr std::array<KernelEntry, 8> kEntries = {
    entry<Op::gemm, im_tile<Format::Q8_0>>(Format::Q8_0, {kGroupRows, kMaxMR}),
    entry<Op::gemm, im_tile<Format::Q4_0>>(Format::Q4_0, {kGroupRows, kMaxMR}),
    entry<Op::gemm, im_tile<Format::Q4_1>>(Format::Q4_1, {kGroupRows, kMaxMR}),
    entry<Op::gemm, im_tile<Format::Q5_0>>(Format::Q5_0, {kGroupRows, kMaxMR}),
    entry<Op::gemm, im_tile<Format::Q5_1>>(Format::Q5_1, {kGroupRows, kMaxMR}),
    entry<Op::gemm, im_tile<Format::Q4_K>>(Format::Q4_K, {kGroupRows, kMaxMR}),
    entry<Op::gemm, im_tile<Format::Q5_K>>(Format::Q5_K, {kGroupRows, kMaxMR}),
    entry<Op::gemm, im_tile<Format::Q6_K>>(Format::Q6_K, {kGroupRows, kMaxMR}),
};

}  // namespace

extern constexpr KernelList kernels_gemm_neon_i8mm{Isa::neon_i8mm, kEntries.data(), kEntries.size()};

}  // namespace slmk
