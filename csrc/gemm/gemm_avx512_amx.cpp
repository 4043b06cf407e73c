// ---- GEMM panels, AMX-INT8 (TDPBSSD / TDPBSUD) + AVX-512 epilogue: Q4_0 and Q4_K prefill ----
// A *panel* kernel computes one 16-row weight group against up to kPanelRows activation rows
// (gemm_driver.cpp hands it an M chunk once M >= kPanelMinM, with the activations also copied
// into 16-row x 64-k slabs, ActRows::q_panel); the 16x4 AVX512-VNNI tiles of the same table still
// serve small M and every other format.
//
// Exactness (the spec of gemm_ref.cpp, bit for bit): the tile unit only ever produces exact
// int32 sums, and every float operation happens afterwards in AVX-512, in the scalar's order.
//   Q4_0: one TDPBSSD per 32-block (A: 16 activation rows x 32 s8, B: 8 rows x [16 weight rows]
//         [4 B] of q - 8) leaves in C[i][r] the block's dot - 8 * xsum; C is spilled and each
//         block gets the spec's acc = acc + (dw * dx) * float(dot - 8 xsum).
//   Q4_K: the 6-bit sub-block scales go into B (split in two 3-bit halves so bytes stay <= 105),
//         so a super-block's isum = sum_j sc_j * dot_j comes out of 2 x 4 TDPBSUD (K = 64) as
//         C_lo + 8 * C_hi; msum and the float epilogue are as in gemm_x86_tiles.h.
// The packed 16-row tiles are already "B-tile shaped" (a 64-byte run = 4 consecutive k of 16
// rows), so B is the nibbles split into bytes (and scaled, Q4_K), done per K chunk into a 16 KB
// buffer that stays in L1 while the chunk meets every activation tile.
//
// Cost model (why it is shaped like this): per 16 x 16 x 32 step Q4_0 needs one 1 KB tile spill
// and 16 x 4 vector float ops; those, not the TMUL, bound it. Steps are software-pipelined
// (run_steps) so the TMUL works on step s + 2 while the vector units finish step s.
// Linux: the process asked for the AMX state once (cpu_features.cpp, ARCH_REQ_XCOMP_PERM);
// each call loads its own tile config and releases the tiles when done.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "gemm_x86_tiles.h"

// GCC 12 false positive: _mm512_undefined_* inside cvtph2ps / pmovzx intrinsics, once inlined into
// these large unrolled loops, is reported as "may be used uninitialized".
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace slmk {
namespace {

constexpr int kChunkK = 1024;  // elements of K unpacked at a time: B chunk = 16 KB, stays in L1

struct alignas(64) TileConfig {
    uint8_t palette = 1, start_row = 0;
    uint8_t reserved[14] = {};
    uint16_t colsb[16] = {};
    uint8_t rows[16] = {};
};

// ---- tile instructions ----
// Our own asm, not GCC 12's tile intrinsics: those declare no memory operands (tileloadd /
// tilestored) or only 8 bytes of the 64-byte config (ldtilecfg), so the compiler may drop or
// move the stores that fill B and the config, or keep stale C values in registers (seen: a
// reconfig whose rows/colsb stores were deleted -> #UD). Each asm names exactly the memory it
// touches (no blanket "memory" clobber, which would force the accumulators out to the stack):
// B tiles (512 B, filled by the unpack just before) as inputs, the C spill (1 KB) as output.
// A tiles read the activations, written before the kernel was called.
#define AMX_CONFIG(cfg) __asm__ volatile("ldtilecfg %0" ::"m"(*(cfg)))
#define AMX_RELEASE() __asm__ volatile("tilerelease" ::)
#define AMX_ZERO(t) __asm__ volatile("tilezero %%tmm" #t ::)
#define AMX_LOAD_A(t, p, st) __asm__ volatile("tileloadd (%0,%1,1), %%tmm" #t ::"r"(p), "r"(static_cast<int64_t>(st)))
#define AMX_LOAD_B(t, p) \
    __asm__ volatile("tileloadd (%1,%2,1), %%tmm" #t ::"m"(*reinterpret_cast<const uint8_t(*)[512]>(p)), "r"(p), "r"(int64_t{64}))
#define AMX_STORE_C(t, p) \
    __asm__ volatile("tilestored %%tmm" #t ", (%1,%2,1)" : "=m"(*reinterpret_cast<int32_t(*)[256]>(p)) : "r"(p), "r"(int64_t{64}))
#define AMX_DPBSUD(c, a, b) __asm__ volatile("tdpbsud %%tmm" #b ", %%tmm" #a ", %%tmm" #c ::)  // C += A(s8) . B(u8)
#define AMX_DPBSSD(c, a, b) __asm__ volatile("tdpbssd %%tmm" #b ", %%tmm" #a ", %%tmm" #c ::)  // C += A(s8) . B(s8)

// Q4_0 tiles: tmm0/1 = C (mt x 16 int32), tmm2/3 = A (mt x 32 s8), tmm4/5 = B (8 x 64 B);
// mt = activation rows of the tile (16, fewer for the last one)
static void load_config(int mt) {
    TileConfig c;
    for (int t = 0; t < 2; ++t) {
        c.rows[t] = static_cast<uint8_t>(mt);  // C
        c.colsb[t] = 64;
        c.rows[2 + t] = static_cast<uint8_t>(mt);  // A
        c.colsb[2 + t] = 32;
        c.rows[4 + t] = 8;  // B: K/4 = 8 rows of [16 weight rows][4 B]
        c.colsb[4 + t] = 64;
    }
    AMX_CONFIG(&c);
}

// On the stack, not thread_local: a TLS access in position-independent code may call
// __tls_get_addr, and glibc's lazy-binding trampoline (XSAVEC/XRSTOR) can reset the tile config
// (seen with Debian 12's glibc: #UD on the next tile instruction). No calls while tiles are live.
struct alignas(64) Scratch {
    uint8_t b[kChunkK / 32 * 512];  // B tiles of one K chunk: [step][8 runs][16 rows][4 B]
    int32_t c[2][16][16];           // C tiles spilled for the epilogue (double-buffered)
};

static inline __m512i nib_lo(__m512i v) { return _mm512_and_si512(v, _mm512_set1_epi8(0x0F)); }
static inline __m512i nib_hi(__m512i v) { return _mm512_and_si512(_mm512_srli_epi16(v, 4), _mm512_set1_epi8(0x0F)); }
static inline void store64(uint8_t* p, __m512i v) { _mm512_store_si512(reinterpret_cast<void*>(p), v); }

// ---- the step pipeline ----
// A "step" is one K = 32 slice: C(s) = A(s) . B(s), A(s) = 16 activation rows x 32 s8: half of
// the 1 KB slab s / 2 of the panel copy (ActRows::q_panel, row stride 64), B(s) = the 512-byte
// tile at bb + 512 s (s8 if kSigned, else u8). Step s uses
// tile set s % 2. At step s the loop spills C(s + 1), issues C(s + 2) and finishes C(s), so the
// TMUL latency and the tile-store -> vector-load round trip both hide behind one epilogue.
template <int P, bool kSigned>
static inline void issue(const int8_t* a, int64_t st, const uint8_t* b) {
    if constexpr (P == 0) {
        AMX_ZERO(0);
        AMX_LOAD_A(2, a, st);
        AMX_LOAD_B(4, b);
        if constexpr (kSigned) AMX_DPBSSD(0, 2, 4);
        else AMX_DPBSUD(0, 2, 4);
    } else {
        AMX_ZERO(1);
        AMX_LOAD_A(3, a, st);
        AMX_LOAD_B(5, b);
        if constexpr (kSigned) AMX_DPBSSD(1, 3, 5);
        else AMX_DPBSUD(1, 3, 5);
    }
}

template <bool kSigned, class Epi>
static inline void run_steps(const int8_t* xa, const uint8_t* bb, int S, int32_t (*cb)[16][16], Epi&& epi) {
    constexpr int64_t st = 64;
    auto A = [xa](int s) { return xa + 1024 * (s / 2) + 32 * (s % 2); };
    issue<0, kSigned>(A(0), st, bb);
    if (S > 1) issue<1, kSigned>(A(1), st, bb + 512);
    AMX_STORE_C(0, cb[0]);
    int s = 0;
    for (; s + 2 <= S; s += 2) {
        // the spill goes first: tile instructions complete in order, so a store queued behind
        // the next TDPBxxD would wait for it
        AMX_STORE_C(1, cb[1]);
        if (s + 2 < S) issue<0, kSigned>(A(s + 2), st, bb + 512 * (s + 2));
        epi(s, cb[0]);
        if (s + 2 < S) AMX_STORE_C(0, cb[0]);
        if (s + 3 < S) issue<1, kSigned>(A(s + 3), st, bb + 512 * (s + 3));
        epi(s + 1, cb[1]);
    }
    if (s < S) epi(s, cb[0]);
}

// ---- Q4_0: acc = acc + (dw * dx) * float(dot - 8 * xsum), per 32-block, blocks in order ----
// B holds q - 8 as s8 (TDPBSSD), so C is already the spec's dot - 8 * xsum (same exact integer).
// Unpack: block b -> B tile b: runs 0..3 = low nibbles of q run c (elements 4c..), 4..7 = high.
static void unpack_q4_0(const uint8_t* group, int64_t b0, int64_t nb, uint8_t* dst) {
    constexpr TileLayout L = tile_layout(Format::Q4_0);
    const __m512i eight = _mm512_set1_epi8(8);
    for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* q = group + (b0 + b) * L.bytes + L.q;
        for (int c = 0; c < 4; ++c) {
            const __m512i v = load64(q + 64 * c);
            store64(dst + b * 512 + 64 * c, _mm512_sub_epi8(nib_lo(v), eight));
            store64(dst + b * 512 + 64 * (c + 4), _mm512_sub_epi8(nib_hi(v), eight));
        }
    }
}

static void panel_q4_0(const uint8_t* group, int64_t nblocks, const ActRows& a, int64_t m0, int mr, float* out,
                       int64_t ldo, int nvalid) {
    const __mmask16 km = row_mask(nvalid);
    Scratch tls;  // 18 KB
    int cfg = 16;
    load_config(16);
    for (int64_t k0 = 0; k0 < nblocks; k0 += kChunkK / 32) {
        const int nb = static_cast<int>(std::min<int64_t>(kChunkK / 32, nblocks - k0));
        unpack_q4_0(group, k0, nb, tls.b);
        for (int i0 = 0; i0 < mr; i0 += 16) {
            const int mt = std::min(16, mr - i0);
            if (mt != cfg) load_config(cfg = mt);
            alignas(64) float dxt[kChunkK / 32][16];  // dx by (block, row): one base address for all rows
            for (int i = 0; i < 16; ++i) {  // rows past mt: repeat the last real row, never stored
                const float* xd = a.d + (m0 + i0 + std::min(i, mt - 1)) * a.d_stride + k0;
                for (int s = 0; s < nb; ++s) dxt[s][i] = xd[s];
            }
            // 16 named accumulators, not an array: GCC keeps a 1 KB array of vectors on the stack
            // (a load and a store per row and block), named scalars stay in zmm registers.
#define SLMK_REP16(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
#define SLMK_ACC_INIT(i) \
    __m512 acc##i = k0 == 0 ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(km, out + (i0 + std::min(i, mt - 1)) * ldo);
            SLMK_REP16(SLMK_ACC_INIT)
            constexpr TileLayout L = tile_layout(Format::Q4_0);
            const uint8_t* t0 = group + k0 * L.bytes + L.d;
            // k0 is a multiple of the chunk (32 blocks = 16 slabs of 64)
            const int64_t slabs = (nblocks + 1) / 2;
            run_steps<true>(a.q_panel + ((m0 + i0) / 16 * slabs + k0 / 2) * 1024, tls.b, nb, tls.c,
                            [&](int s, const int32_t(*c)[16]) {
                                const __m512 dw = load_f16x16(t0 + L.bytes * s);
#define SLMK_ACC_STEP(i)                                                   \
    acc##i = add_ord(acc##i, _mm512_mul_ps(mul_ord(dw, _mm512_set1_ps(dxt[s][i])), \
                                           _mm512_cvtepi32_ps(_mm512_load_si512(c[i]))));
                                SLMK_REP16(SLMK_ACC_STEP)
                            });
            const __m512 acc[16] = {acc0, acc1, acc2,  acc3,  acc4,  acc5,  acc6,  acc7,
                                    acc8, acc9, acc10, acc11, acc12, acc13, acc14, acc15};
#undef SLMK_ACC_STEP
#undef SLMK_ACC_INIT
            for (int i = 0; i < mt; ++i) _mm512_mask_storeu_ps(out + (i0 + i) * ldo, km, acc[i]);
        }
    }
    AMX_RELEASE();
}

// ---- Q4_K: isum = sum_j sc_j * dot_j ; msum = sum_j m_j * (bs_2j + bs_2j+1) (int32, exact)
//      acc = acc + (d * dx) * float(isum);  acc = acc - (dmin * dx) * float(msum) ----
// Only the float epilogue is per super-block here, so the 6-bit scales go into B and the whole
// super-block is one integer sum: sc = 8 * (sc >> 3) + (sc & 7), both halves <= 7, so
// B_lo = (sc & 7) * q and B_hi = (sc >> 3) * q are bytes <= 105, and over the 256 elements
// C_lo + 8 * C_hi = sum_j sc_j * dot_j = isum exactly (integers; |isum| < 2^25, no overflow).
// Per super-block and 16 activation rows: 8 TDPBSUD with K = 64 and two 1 KB spills, instead of
// one spill and 16 vpmulld per sub-block.
// B for super-block b, K slice g (sub-blocks 2g, 2g+1; tile rows 0..7 = quads of 2g, 8..15 of
// 2g+1): [b][g][lo, hi][16 tile rows][16 weight rows][4 B].
constexpr int kChunkKQ4K = 512;  // B chunk = 2 super-blocks x 8 KB
static_assert(kChunkKQ4K / 256 * 8192 <= static_cast<int>(sizeof(Scratch::b)), "B chunk fits the scratch");

static void load_config_k64(int mt) {
    TileConfig c;
    for (int t = 0; t < 4; ++t) {  // tmm0..3: C (two sets of lo, hi)
        c.rows[t] = static_cast<uint8_t>(mt);
        c.colsb[t] = 64;
    }
    for (int t = 4; t < 6; ++t) {  // tmm4, 5: A, 16 rows x 64 s8
        c.rows[t] = static_cast<uint8_t>(mt);
        c.colsb[t] = 64;
    }
    for (int t = 6; t < 8; ++t) {  // tmm6, 7: B_lo, B_hi, K/4 = 16 rows
        c.rows[t] = 16;
        c.colsb[t] = 64;
    }
    AMX_CONFIG(&c);
}

// bytes q (<= 15) times the per-lane scale s (<= 7, held in the low byte of each 16-bit word)
static inline __m512i mul_small_u8(__m512i q, __m512i sw) {
    const __m512i even = _mm512_mullo_epi16(q, sw);  // low byte: q_even * s
    const __m512i odd = _mm512_mullo_epi16(_mm512_and_si512(q, _mm512_set1_epi16(static_cast<short>(0xFF00))), sw);
    return _mm512_ternarylogic_epi32(even, _mm512_set1_epi16(0x00FF), odd, 0xEA);  // (even & 0xFF) | odd
}

static void unpack_q4_k(const uint8_t* group, int64_t b0, int64_t nb, uint8_t* dst) {
    constexpr TileLayout L = tile_layout(Format::Q4_K);
    const __m512i m7 = _mm512_set1_epi16(0x0007);
    for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* t = group + (b0 + b) * L.bytes;
        for (int g = 0; g < 4; ++g) {
            __m512i slo[2], shi[2];
            for (int h = 0; h < 2; ++h) {  // sub-block 2g + h: its scale in each lane's low byte
                __m512i sp = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t + L.sc + 16 * (2 * g + h))));
                sp = _mm512_or_si512(sp, _mm512_slli_epi32(sp, 16));  // both 16-bit words of the lane
                slo[h] = _mm512_and_si512(sp, m7);
                shi[h] = _mm512_srli_epi16(sp, 3);
            }
            uint8_t* lo = dst + (b * 4 + g) * 2048;
            uint8_t* hi = lo + 1024;
            for (int c = 0; c < 8; ++c) {
                const __m512i v = load64(t + L.q + L.q_step * g + 64 * c);
                const __m512i ql = nib_lo(v), qh = nib_hi(v);
                store64(lo + 64 * c, mul_small_u8(ql, slo[0]));
                store64(lo + 64 * (8 + c), mul_small_u8(qh, slo[1]));
                store64(hi + 64 * c, mul_small_u8(ql, shi[0]));
                store64(hi + 64 * (8 + c), mul_small_u8(qh, shi[1]));
            }
        }
    }
}

#define AMX_LOAD_B1K(t, p) \
    __asm__ volatile("tileloadd (%1,%2,1), %%tmm" #t ::"m"(*reinterpret_cast<const uint8_t(*)[1024]>(p)), "r"(p), "r"(int64_t{64}))

// C set P (tmm 2P = lo, 2P + 1 = hi) = the 4 K slices of one super-block
template <int P>
static inline void issue_k64(const int8_t* xa, int64_t st, const uint8_t* bb) {
    if constexpr (P == 0) {
        AMX_ZERO(0);
        AMX_ZERO(1);
    } else {
        AMX_ZERO(2);
        AMX_ZERO(3);
    }
#pragma GCC unroll 4
    for (int g = 0; g < 4; ++g) {
        if (g % 2 == 0) AMX_LOAD_A(4, xa + 1024 * g, st);
        else AMX_LOAD_A(5, xa + 1024 * g, st);
        AMX_LOAD_B1K(6, bb + 2048 * g);
        AMX_LOAD_B1K(7, bb + 2048 * g + 1024);
        if constexpr (P == 0) {
            if (g % 2 == 0) { AMX_DPBSUD(0, 4, 6); AMX_DPBSUD(1, 4, 7); }
            else { AMX_DPBSUD(0, 5, 6); AMX_DPBSUD(1, 5, 7); }
        } else {
            if (g % 2 == 0) { AMX_DPBSUD(2, 4, 6); AMX_DPBSUD(3, 4, 7); }
            else { AMX_DPBSUD(2, 5, 6); AMX_DPBSUD(3, 5, 7); }
        }
    }
}

static void panel_q4_k(const uint8_t* group, int64_t nblocks, const ActRows& a, int64_t m0, int mr, float* out,
                       int64_t ldo, int nvalid) {
    const __mmask16 km = row_mask(nvalid);
    Scratch tls;  // 18 KB
    alignas(64) int32_t cb[2][2][16][16];  // spilled C sets: [set][lo, hi][row][weight row]
    int cfg = 16;
    load_config_k64(16);
    constexpr int kNb = kChunkKQ4K / 256;
    for (int64_t k0 = 0; k0 < nblocks; k0 += kNb) {
        const int nb = static_cast<int>(std::min<int64_t>(kNb, nblocks - k0));
        unpack_q4_k(group, k0, nb, tls.b);
        for (int i0 = 0; i0 < mr; i0 += 16) {
            const int mt = std::min(16, mr - i0);
            if (mt != cfg) load_config_k64(cfg = mt);
            // per row and super-block: dx, and the 4 msum operands (bs_4p + bs_4p+1) | (bs_4p+2 + bs_4p+3) << 16
            alignas(64) float dxt[kNb][16];
            alignas(64) int32_t bpt[kNb][4][16];
            for (int i = 0; i < 16; ++i) {
                const int64_t row = m0 + i0 + std::min(i, mt - 1);
                for (int b = 0; b < nb; ++b) {
                    dxt[b][i] = a.d[row * a.d_stride + k0 + b];
                    const int32_t* bs = a.sum + row * a.sum_stride + 16 * (k0 + b);
                    for (int p = 0; p < 4; ++p) {
                        const uint32_t lo = static_cast<uint16_t>(bs[4 * p] + bs[4 * p + 1]);
                        const uint32_t hi = static_cast<uint16_t>(bs[4 * p + 2] + bs[4 * p + 3]);
                        bpt[b][p][i] = static_cast<int32_t>(lo | (hi << 16));
                    }
                }
            }
            const int8_t* xq = a.q_panel + ((m0 + i0) / 16 * (nblocks * 4) + 4 * k0) * 1024;  // 4 slabs per super-block
            constexpr int64_t st = 64;
            auto epi = [&](int b, const int32_t(*cl)[16], const int32_t(*ch)[16]) {
                constexpr TileLayout L = tile_layout(Format::Q4_K);
                const uint8_t* t = group + (k0 + b) * L.bytes;
                __m512i mp[4];  // lane r: m_2p[r] | m_2p+1[r] << 16 (int16 pairs)
                for (int p = 0; p < 4; ++p) {
                    const __m128i m0v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t + L.mn + 32 * p));
                    const __m128i m1v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t + L.mn + 32 * p + 16));
                    mp[p] = _mm512_cvtepu8_epi16(_mm256_set_m128i(_mm_unpackhi_epi8(m0v, m1v), _mm_unpacklo_epi8(m0v, m1v)));
                }
                const __m512 d = load_f16x16(t + L.d), dmin = load_f16x16(t + L.m);
                const bool first = k0 + b == 0;
#pragma GCC unroll 16
                for (int i = 0; i < 16; ++i) {
                    const __m512i isum = _mm512_add_epi32(_mm512_load_si512(cl[i]), _mm512_slli_epi32(_mm512_load_si512(ch[i]), 3));
                    __m512i msum = _mm512_setzero_si512();
                    for (int p = 0; p < 4; ++p) msum = _mm512_dpwssd_epi32(msum, mp[p], _mm512_set1_epi32(bpt[b][p][i]));
                    const __m512 dx = _mm512_set1_ps(dxt[b][i]);
                    float* o = out + (i0 + std::min(i, mt - 1)) * ldo;
                    __m512 acc = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(km, o);
                    acc = add_ord(acc, _mm512_mul_ps(mul_ord(d, dx), _mm512_cvtepi32_ps(isum)));
                    acc = sub_ord(acc, _mm512_mul_ps(mul_ord(dmin, dx), _mm512_cvtepi32_ps(msum)));
                    if (i < mt) _mm512_mask_storeu_ps(o, km, acc);
                }
            };
            // pipeline: spill the previous super-block's C set, queue this one's TDPs, then
            // finish the previous one while the TMUL works
            for (int b = 0; b < nb; ++b) {
                if (b % 2 == 0) {
                    if (b > 0) { AMX_STORE_C(2, cb[1][0]); AMX_STORE_C(3, cb[1][1]); }
                    issue_k64<0>(xq + 4096 * b, st, tls.b + 8192 * b);
                    if (b > 0) epi(b - 1, cb[1][0], cb[1][1]);
                } else {
                    AMX_STORE_C(0, cb[0][0]);
                    AMX_STORE_C(1, cb[0][1]);
                    issue_k64<1>(xq + 4096 * b, st, tls.b + 8192 * b);
                    epi(b - 1, cb[0][0], cb[0][1]);
                }
            }
            if ((nb - 1) % 2 == 0) {
                AMX_STORE_C(0, cb[0][0]);
                AMX_STORE_C(1, cb[0][1]);
                epi(nb - 1, cb[0][0], cb[0][1]);
            } else {
                AMX_STORE_C(2, cb[1][0]);
                AMX_STORE_C(3, cb[1][1]);
                epi(nb - 1, cb[1][0], cb[1][1]);
            }
        }
    }
    AMX_RELEASE();
}

// Panels for packed weights from M = kPanelMinM, up to kPanelRows rows a call; below that, and for
// every other format, the AVX512-VNNI tiles this rung inherits.
constexpr std::array<KernelEntry, 2> kEntries = {
    entry<Op::gemm_panel, panel_q4_0>(Format::Q4_0, {kGroupRows, kPanelRows, kPanelMinM, kChunkK}),
    entry<Op::gemm_panel, panel_q4_k>(Format::Q4_K, {kGroupRows, kPanelRows, kPanelMinM, kChunkKQ4K}),
};

}  // namespace

extern constexpr KernelList kernels_gemm_avx512_amx{Isa::avx512_amx, kEntries.data(), kEntries.size()};

}  // namespace slmk
