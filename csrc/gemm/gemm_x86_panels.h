// ---- AVX512-VNNI GEMM panels: one 16-row weight group x up to kPanelRowsVnni activation rows ----
// Included by gemm_avx512_vnni.cpp only (compiled with -mavx512vnni); internal linkage.
//
// A tile (gemm_x86_tiles.h) unpacks a block's nibbles for at most 4 activation rows, so at
// prefill sizes the unpacking costs as much as the multiply-adds. A panel unpacks a chunk of K
// once into an L1-resident buffer of unsigned bytes, then sweeps every activation row of the
// call over it, MR rows at a time: each weight vector of a block is loaded once for the MR rows,
// whose dot products run as independent vpdpbusd chains, each activation quad a 4-byte
// broadcast straight from memory. Per block and row that leaves 8 vpdpbusd (32-blocks) and the
// spec's float epilogue; K is visited chunk by chunk (K-blocking), so the unpacked weights and
// the rows' activation slices stay in L1/L2 whatever K is.
//
// Exactness: the spec of gemm_ref.cpp bit for bit. Every weight byte is stored unsigned with a
// per-format offset (Q4_0 / Q4_1: the nibble, Q5: the 5-bit value, Q8_0: q + 128), so a block's
// vpdpbusd sum is dot_u8 = sum (q + off') x, and dot_u8 - kOff * xsum is the spec's exact
// integer (Q4_0: dot - 8 xsum, Q5_0: dot - 16 xsum, Q8_0: (q + 128) . x - 128 xsum = q . x).
// The float epilogue is the tiles' (same operations, same operand order), so results equal the
// tiles' and the scalar twin's for any M, chunking, row tiling or thread count.
#pragma once
#include "gemm_x86_tiles.h"

namespace slmk {
namespace {

// Every micro runs 8 activation rows per register block: 8 independent vpdpbusd chains cover its
// latency (5 cycles on Zen 4; 4 chains left a fifth of the pipe idle), and the rows' quads are
// broadcast from the quantized rows in place (ActRows::q).
constexpr int kPanelMR = 8;
// Activation rows per call (the entries' tile.cols): each call unpacks its group's tiles once, so
// 256 rows unpack half as often as 128. 512 was slower at K = 14336 (a call then walks 7 MB of
// activations per weight group, more than the L3 share it gets here; 256: 3.7 MB).
constexpr int kPanelRowsVnni = 256;
// K chunks: 1024 k either way, so one chunk's activations are a 1 KB run per row.
constexpr int kPanelChunk32 = 32;    // 32-blocks per K chunk: unpacked B = 32 x 512 B = 16 KB
constexpr int kPanelChunkK = 4;      // super-blocks per K chunk (K-quants): B = 4 x 4 KB

static inline void store64(uint8_t* p, __m512i v) { _mm512_store_si512(reinterpret_cast<void*>(p), v); }

// Embedded-broadcast forms ({1to16}: the 4-byte operand is broadcast by the load itself). As
// intrinsics GCC 12 emits a separate vpbroadcastd, which on AMD Zen 4 takes a vector-pipe slot
// of its own: one per vpdpbusd, the panels ran at ~40% of the vpdpbusd peak.
// acc + per lane sum of 4 products w.u8 * (the 4 s8 at p)
static inline __m512i dpbusd_b(__m512i acc, __m512i w, const int8_t* p) {
    __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(w), "m"(*reinterpret_cast<const int32_t*>(p)));
    return acc;
}
// acc + per lane int16 pairs of a times the pair at p
static inline __m512i dpwssd_b(__m512i acc, __m512i a, const int32_t* p) {
    __asm__("vpdpwssd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(a), "m"(*p));
    return acc;
}
static inline __m512i sub_b(__m512i a, const int32_t* p) {
    __m512i r;
    __asm__("vpsubd %2%{1to16%}, %1, %0" : "=v"(r) : "v"(a), "m"(*p));
    return r;
}
// a * (*p) with a as the first source (the NaN-payload order of mul_ord)
static inline __m512 mul_ord_b(__m512 a, const float* p) {
    __m512 r;
    __asm__("vmulps %2%{1to16%}, %1, %0" : "=v"(r) : "v"(a), "m"(*p));
    return r;
}
static inline __m512 mul_b(__m512 a, const float* p) { return mul_ord_b(a, p); }

// ---- shared by every panel: activation prefetch, row blocking, the chunk loop ----

// Prefetch (L1) the MR rows' next Span bytes of activations: step s + 1 of the ns steps of Span
// bytes that make up this chunk (it starts `start` bytes into each row); after the last step,
// the next row block's first. Each row's slice of a chunk is its own 1 KB run, too short for the
// hardware prefetcher to pick up, so at large K (activations from L3 or memory) the loads stalled
// without it.
template <int MR, int Span>
static inline void prefetch_rows(const ActRows& a, int64_t row0, int rows_left, int s, int ns, int64_t start) {
    const bool last = s + 1 == ns;
    if (last && rows_left <= MR) return;
    const int8_t* p = a.q + (last ? row0 + MR : row0) * a.q_stride + start + (last ? 0 : Span * (s + 1));
    for (int r = 0; r < MR; ++r)
        for (int l = 0; l < Span; l += 64) _mm_prefetch(reinterpret_cast<const char*>(p + r * a.q_stride + l), _MM_HINT_T0);
}

// Where a micro's accumulators live between chunks: the call's own contiguous buffer (part, 16
// floats a row), then, after the last chunk, the caller's out. Reloading them from out instead
// (rows N floats apart: at N = 4096 all 256 rows of a call in one L1 set and 8 L2 sets) missed
// every cache level once per chunk and row.
struct PanelOut {
    float* out;
    int64_t ldo;
    float* part;
    __mmask16 km;  // the group's valid rows
    bool first, last;  // chunk of the call
    PanelOut at(int i0) const { return {out + i0 * ldo, ldo, part + kGroupRows * i0, km, first, last}; }
    __m512 load(int r) const { return first ? _mm512_setzero_ps() : _mm512_load_ps(part + kGroupRows * r); }
    void store(int r, __m512 v) const {
        if (last)
            _mm512_mask_storeu_ps(out + r * ldo, km, v);
        else
            _mm512_store_ps(part + kGroupRows * r, v);
    }
};

// Rows [0, mr) in register blocks of 8, then 4, 2, 1 (every row runs the same operation sequence
// whatever its block).
template <template <Format, int> class Micro, Format F, class... Args>
static inline void micro_rows(int mr, const ActRows& a, int64_t m0, const PanelOut& o, Args&&... args) {
    int i0 = 0;
    for (; i0 + kPanelMR <= mr; i0 += kPanelMR) Micro<F, kPanelMR>::run(a, m0 + i0, mr - i0, o.at(i0), args...);
    if (i0 + 4 <= mr) Micro<F, 4>::run(a, m0 + i0, mr - i0, o.at(i0), args...), i0 += 4;
    if (i0 + 2 <= mr) Micro<F, 2>::run(a, m0 + i0, mr - i0, o.at(i0), args...), i0 += 2;
    if (i0 < mr) Micro<F, 1>::run(a, m0 + i0, mr - i0, o.at(i0), args...);
}

// One driver for every panel: unpack a chunk of Chunk::kBlocks blocks (Unpack), sweep the rows
// over it (Micro, register blocks of micro_rows).
template <Format F, class Chunk, void (*Unpack)(const uint8_t*, Chunk&, int), template <Format, int> class Micro>
static void panel_vnni(const uint8_t* group, int64_t nblocks, const ActRows& a, int64_t m0, int mr, float* out,
                       int64_t ldo, int nvalid) {
    constexpr int64_t kTile = packed_tile_bytes(F);
    Chunk c;
    alignas(64) float part[kPanelRowsVnni][kGroupRows];
    for (int64_t k0 = 0; k0 < nblocks; k0 += Chunk::kBlocks) {
        const int nb = static_cast<int>(std::min<int64_t>(Chunk::kBlocks, nblocks - k0));
        for (int b = 0; b < nb; ++b) Unpack(group + (k0 + b) * kTile, c, b);
        // the next chunk's tiles into L2 while the rows sweep this one (they come from memory: a
        // group's tiles are read once per call, and the unpack stalled on them)
        const int64_t next = std::min<int64_t>(Chunk::kBlocks, nblocks - k0 - nb) * kTile;
        const uint8_t* np = group + (k0 + nb) * kTile;
        for (int64_t o = 0; o < next; o += 64) _mm_prefetch(reinterpret_cast<const char*>(np + o), _MM_HINT_T1);
        const PanelOut o{out, ldo, part[0], row_mask(nvalid), k0 == 0, k0 + nb == nblocks};
        micro_rows<Micro, F>(mr, a, m0, o, static_cast<const Chunk&>(c), nb, k0);
    }
}

// ---- 32-block formats ----
template <Format F>
struct P32 {
    static constexpr bool kQ8 = F == Format::Q8_0;
    static constexpr bool kHasM = F == Format::Q4_1 || F == Format::Q5_1;
    static constexpr bool kQ5 = F == Format::Q5_0 || F == Format::Q5_1;
    // spec integer = dot_u8 - kOff * xsum (Q4_1 / Q5_1: the minimum goes through m instead)
    static constexpr int kOff = kQ8 ? 128 : kHasM ? 0 : kQ5 ? 16 : 8;
    static constexpr TileLayout L = tile_layout(F);
    static constexpr int64_t kTile = L.bytes;

    // one packed tile -> 8 runs x 64 B of unsigned weights (run j pairs with activation quad j)
    static inline void unpack(const uint8_t* t, uint8_t* dst) {
        if constexpr (kQ8) {
            for (int j = 0; j < 8; ++j)
                store64(dst + 64 * j, _mm512_xor_si512(load64(t + L.q + 64 * j), _mm512_set1_epi8(static_cast<char>(0x80))));
        } else {
            for (int c = 0; c < 4; ++c) {
                const __m512i v = load64(t + L.q + 64 * c);
                __m512i lo = lo_nib(v), hi = hi_nib(v);
                if constexpr (kQ5) {
                    const __m512i hbs = spread_hb(t + L.hb + 16 * c);
                    lo = add_bit4(lo, hbs, 0);
                    hi = add_bit4(hi, hbs, 4);
                }
                store64(dst + 64 * c, lo);
                store64(dst + 64 * (c + 4), hi);
            }
        }
    }
};

// B per block: [8 runs j][16 rows][4 B] unsigned weights (run j pairs with activation quad j);
// d (and m) per block as float [16].
template <Format F>
struct Chunk32 {
    static constexpr int kBlocks = kPanelChunk32;
    alignas(64) uint8_t b[kPanelChunk32][8][64];
    alignas(64) float d[kPanelChunk32][16];
    alignas(64) float m[P32<F>::kHasM ? kPanelChunk32 : 1][16];
};

template <Format F>
static inline void unpack_32(const uint8_t* t, Chunk32<F>& c, int b) {
    using P = P32<F>;
    P::unpack(t, c.b[b][0]);
    _mm512_store_ps(c.d[b], load_f16x16(t + P::L.d));
    if constexpr (P::kHasM) _mm512_store_ps(c.m[b], load_f16x16(t + P::L.m));
}

// MR rows (rows_left from row0 to the call's last) x one group over the nb blocks of a chunk
// starting at block b0.
template <Format F, int MR>
static inline void micro_32(const ActRows& a, int64_t row0, int rows_left, const PanelOut& o, const Chunk32<F>& c, int nb,
                            int64_t b0) {
    using P = P32<F>;
    __m512 acc[MR];
    // per row and block, 16 blocks a vector: the scale dx, kOff * xsum (the spec's integer
    // offset), float(xsum) (Q4_1 / Q5_1), copied to the stack so that the epilogue's broadcasts
    // address them off one register (8 rows' pointers into ActRows were spilled)
    alignas(64) float xdl[MR][kPanelChunk32];
    alignas(64) int32_t offx[MR][kPanelChunk32];
    alignas(64) float fxs[MR][kPanelChunk32];
    for (int r = 0; r < MR; ++r) {
        const float* xd = a.d + (row0 + r) * a.d_stride + b0;
        const int32_t* xs = a.sum + (row0 + r) * a.sum_stride + b0;
        for (int b = 0; b < nb; b += 16) {
            const __mmask16 kb = row_mask(std::min(16, nb - b));
            _mm512_store_ps(&xdl[r][b], _mm512_maskz_loadu_ps(kb, xd + b));
            const __m512i v = _mm512_maskz_loadu_epi32(kb, xs + b);
            if constexpr (P::kOff != 0) _mm512_store_si512(&offx[r][b], _mm512_mullo_epi32(v, _mm512_set1_epi32(P::kOff)));
            if constexpr (P::kHasM) _mm512_store_ps(&fxs[r][b], _mm512_cvtepi32_ps(v));
        }
        acc[r] = o.load(r);
    }
    const int64_t qs = a.q_stride;
    for (int b = 0; b < nb; ++b) {
        const int8_t* xb = a.q + row0 * qs + 32 * (b0 + b);  // row r at + r qs
        // one 64 B line holds two blocks of a row (rows and chunks start 64 B aligned)
        if ((b & 1) == 0) prefetch_rows<MR, 64>(a, row0, rows_left, b / 2, (nb + 1) / 2, 32 * b0);
        __m512i dots[MR];
        for (int r = 0; r < MR; ++r) dots[r] = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j) {
            const __m512i w = _mm512_load_si512(reinterpret_cast<const void*>(c.b[b][j]));
#pragma GCC unroll 8
            for (int r = 0; r < MR; ++r) dots[r] = dpbusd_b(dots[r], w, xb + r * qs + 4 * j);
        }
        const __m512 dw = _mm512_load_ps(c.d[b]);
        // row r's operands at a constant offset from the block's column (one register, not 8)
        const float* xdb = &xdl[0][b];
        const int32_t* ofb = &offx[0][b];
        const float* fxb = &fxs[0][b];
        for (int r = 0; r < MR; ++r) {
            __m512i dot = dots[r];
            if constexpr (P::kOff != 0) dot = sub_b(dot, ofb + r * kPanelChunk32);
            acc[r] = add_ord(acc[r], _mm512_mul_ps(mul_ord_b(dw, xdb + r * kPanelChunk32), _mm512_cvtepi32_ps(dot)));
            if constexpr (P::kHasM)
                acc[r] = add_ord(acc[r], mul_b(mul_ord_b(_mm512_load_ps(c.m[b]), xdb + r * kPanelChunk32), fxb + r * kPanelChunk32));
        }
    }
    for (int r = 0; r < MR; ++r) o.store(r, acc[r]);
}

template <Format F, int MR>
struct Micro32 {
    template <class... Args>
    static void run(Args&&... args) { micro_32<F, MR>(args...); }
};

// ---- Q4_K / Q5_K ----
// B per super-block: [8 sub-blocks j][8 runs c][16 rows][4 B] unsigned values (Q5_K: 5 bits);
// sc as int32 lanes [8 j][16]; mp[p] = m_2p | m_2p+1 << 16 (int16 pairs, as the tiles).
struct KChunk45 {
    static constexpr int kBlocks = kPanelChunkK;
    alignas(64) uint8_t b[kPanelChunkK][8][8][64];
    alignas(64) int32_t sc[kPanelChunkK][8][16];
    alignas(64) int32_t mp[kPanelChunkK][4][16];
    alignas(64) float d[kPanelChunkK][16], dmin[kPanelChunkK][16];
};

template <Format F>
static inline void unpack_q45k(const uint8_t* t, KChunk45& c, int sb) {
    constexpr TileLayout L = tile_layout(F);
    for (int j = 0; j < 8; ++j) {
        for (int cc = 0; cc < 8; ++cc) store64(c.b[sb][j][cc], q45k_run<F == Format::Q5_K>(t, j, cc));
        _mm512_store_si512(reinterpret_cast<void*>(c.sc[sb][j]), u8x16_to_i32(t + L.sc + 16 * j));
    }
    for (int p = 0; p < 4; ++p) {
        const __m128i m0v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t + L.mn + 32 * p));
        const __m128i m1v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t + L.mn + 32 * p + 16));
        _mm512_store_si512(reinterpret_cast<void*>(c.mp[sb][p]),
                           _mm512_cvtepu8_epi16(_mm256_set_m128i(_mm_unpackhi_epi8(m0v, m1v), _mm_unpacklo_epi8(m0v, m1v))));
    }
    _mm512_store_ps(c.d[sb], load_f16x16(t + L.d));
    _mm512_store_ps(c.dmin[sb], load_f16x16(t + L.m));
}

// MR rows (rows_left from row0 to the call's last) x one group over the nb super-blocks of a
// chunk starting at super-block b0. Integer part per super-block, exact in int32 (the spec's isum
// and msum, gemm_ref.cpp): |sc * dot| <= 63 * 32 * 31 * 127 = 7.9e6 per sub-block (Q5_K; Q4_K: 15 for 31), 8 of them
// 6.4e7; msum <= 8 * 63 * 32 * 127 = 2.0e6; far from 2^31, so any order of the adds is the same.
template <Format F, int MR>
static inline void micro_q45k(const ActRows& a, int64_t row0, int rows_left, const PanelOut& o, const KChunk45& c, int nb,
                            int64_t b0) {
    const float* xd[MR];
    __m512 acc[MR];
    // per row, super-block and pair p: (bs_4p + bs_4p+1) | (bs_4p+2 + bs_4p+3) << 16 (int16 pairs;
    // |bs_4p + bs_4p+1| <= 32 * 127 fits)
    alignas(64) int32_t bp[MR][kPanelChunkK][4];
    for (int r = 0; r < MR; ++r) {
        xd[r] = a.d + (row0 + r) * a.d_stride + b0;
        const int32_t* xs = a.sum + (row0 + r) * a.sum_stride + 16 * b0;
        for (int b = 0; b < nb; ++b) {
            const __m512i v = _mm512_loadu_si512(reinterpret_cast<const void*>(xs + 16 * b));
            // even lanes: bs_2i + bs_2i+1; vpmovqw keeps each 64-bit lane's low 16 bits
            const __m512i s2 = _mm512_add_epi32(v, _mm512_srli_epi64(v, 32));
            _mm_store_si128(reinterpret_cast<__m128i*>(bp[r][b]), _mm512_cvtepi64_epi16(s2));
        }
        acc[r] = o.load(r);
    }
    const int64_t qs = a.q_stride;
    for (int b = 0; b < nb; ++b) {
        const int8_t* xb = a.q + row0 * qs + 256 * (b0 + b);  // row r at + r qs
        prefetch_rows<MR, 256>(a, row0, rows_left, b, nb, 256 * b0);
        __m512i isum[MR];
        for (int r = 0; r < MR; ++r) isum[r] = _mm512_setzero_si512();
        for (int j = 0; j < 8; ++j) {
            const int8_t* xj = xb + 32 * j;
            __m512i dots[MR];
            for (int r = 0; r < MR; ++r) dots[r] = _mm512_setzero_si512();
#pragma GCC unroll 8
            for (int cc = 0; cc < 8; ++cc) {
                const __m512i w = _mm512_load_si512(reinterpret_cast<const void*>(c.b[b][j][cc]));
#pragma GCC unroll 8
                for (int r = 0; r < MR; ++r) dots[r] = dpbusd_b(dots[r], w, xj + r * qs + 4 * cc);
            }
            const __m512i sc = _mm512_load_si512(reinterpret_cast<const void*>(c.sc[b][j]));
#pragma GCC unroll 8
            for (int r = 0; r < MR; ++r) isum[r] = _mm512_add_epi32(isum[r], _mm512_mullo_epi32(sc, dots[r]));
        }
        const __m512 d = _mm512_load_ps(c.d[b]), dmin = _mm512_load_ps(c.dmin[b]);
        for (int r = 0; r < MR; ++r) {
            __m512i msum = _mm512_setzero_si512();
            for (int p = 0; p < 4; ++p)
                msum = dpwssd_b(msum, _mm512_load_si512(reinterpret_cast<const void*>(c.mp[b][p])), &bp[r][b][p]);
            acc[r] = add_ord(acc[r], _mm512_mul_ps(mul_ord_b(d, xd[r] + b), _mm512_cvtepi32_ps(isum[r])));
            acc[r] = sub_ord(acc[r], _mm512_mul_ps(mul_ord_b(dmin, xd[r] + b), _mm512_cvtepi32_ps(msum)));
        }
    }
    for (int r = 0; r < MR; ++r) o.store(r, acc[r]);
}

template <Format F, int MR>
struct MicroQ45K {
    template <class... Args>
    static void run(Args&&... args) { micro_q45k<F, MR>(args...); }
};

// ---- Q6_K ----
// B per super-block: [16 sub-blocks s][4 runs][16 rows][4 B] 6-bit values (0..63); sc int32 [16 s][16].
// Per sub-block the spec's integer sc * (dot - 32 * bsum_s) (exact, so computed as the tiles do).
struct KChunk6 {
    static constexpr int kBlocks = kPanelChunkK;
    alignas(64) uint8_t b[kPanelChunkK][16][4][64];
    alignas(64) int32_t sc[kPanelChunkK][16][16];
    alignas(64) float d[kPanelChunkK][16];
};

template <Format F>
static inline void unpack_q6k(const uint8_t* t, KChunk6& c, int sb) {
    constexpr TileLayout L = tile_layout(Format::Q6_K);
    for (int s = 0; s < 16; ++s) {
        for (int cc = 0; cc < 4; ++cc) store64(c.b[sb][s][cc], q6k_run(t, s, cc));
        _mm512_store_si512(reinterpret_cast<void*>(c.sc[sb][s]), i8x16_to_i32(t + L.sc + 16 * s));
    }
    _mm512_store_ps(c.d[sb], load_f16x16(t + L.d));
}

// Integer part per super-block: |sc * (dot - 32 bs)| <= 128 * (16 * 63 * 127 + 32 * 16 * 127)
// = 2.5e7 per sub-block, 16 of them 4.1e8 < 2^31: exact, in any order (gemm_ref.cpp's isum).
template <Format F, int MR>
static inline void micro_q6k(const ActRows& a, int64_t row0, int rows_left, const PanelOut& o, const KChunk6& c, int nb,
                            int64_t b0) {
    const float* xd[MR];
    __m512 acc[MR];
    alignas(64) int32_t off32[MR][kPanelChunkK * 16];  // 32 * bsum_s per row and sub-block
    for (int r = 0; r < MR; ++r) {
        xd[r] = a.d + (row0 + r) * a.d_stride + b0;
        const int32_t* xs = a.sum + (row0 + r) * a.sum_stride + 16 * b0;
        for (int s = 0; s < 16 * nb; ++s) off32[r][s] = 32 * xs[s];
        acc[r] = o.load(r);
    }
    const int64_t qs = a.q_stride;
    for (int b = 0; b < nb; ++b) {
        const int8_t* xb = a.q + row0 * qs + 256 * (b0 + b);  // row r at + r qs
        prefetch_rows<MR, 256>(a, row0, rows_left, b, nb, 256 * b0);
        __m512i isum[MR];
        for (int r = 0; r < MR; ++r) isum[r] = _mm512_setzero_si512();
        for (int s = 0; s < 16; ++s) {
            const int8_t* xsb = xb + 16 * s;
            __m512i dots[MR];
            for (int r = 0; r < MR; ++r) dots[r] = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int cc = 0; cc < 4; ++cc) {
                const __m512i w = _mm512_load_si512(reinterpret_cast<const void*>(c.b[b][s][cc]));
#pragma GCC unroll 8
                for (int r = 0; r < MR; ++r) dots[r] = dpbusd_b(dots[r], w, xsb + r * qs + 4 * cc);
            }
            const __m512i sc = _mm512_load_si512(reinterpret_cast<const void*>(c.sc[b][s]));
#pragma GCC unroll 8
            for (int r = 0; r < MR; ++r)
                isum[r] = _mm512_add_epi32(isum[r], _mm512_mullo_epi32(sc, sub_b(dots[r], &off32[r][16 * b + s])));
        }
        const __m512 d = _mm512_load_ps(c.d[b]);
        for (int r = 0; r < MR; ++r)
            acc[r] = add_ord(acc[r], _mm512_mul_ps(mul_ord_b(d, xd[r] + b), _mm512_cvtepi32_ps(isum[r])));
    }
    for (int r = 0; r < MR; ++r) o.store(r, acc[r]);
}

template <Format F, int MR>
struct MicroQ6K {
    template <class... Args>
    static void run(Args&&... args) { micro_q6k<F, MR>(args...); }
};

}  // namespace
}  // namespace slmk
