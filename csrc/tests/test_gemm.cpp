// ---- every GEMM entry of the registry (tiles, panels, activation quantizers) against its scalar twin ----
// Integer paths with a float epilogue fixed by the spec (gemm.h): results must be identical bits.
// Each entry runs alone inside the driver (scalar_with: the scalar table with that entry in).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "check.h"
#include "gemm/gemm_driver.h"
#include "quant/formats.h"

using namespace slmk;
using namespace slmk_test;

// Same bits, except that any NaN equals any NaN: which NaN payload survives when two NaNs meet
// in an add depends on operand order the compiler may swap (both x86 and ARM return the first
// operand's NaN), so payloads are not part of the spec; NaN-ness is.
static bool same_results(const std::vector<float>& a, const std::vector<float>& b) {
    for (size_t i = 0; i < a.size(); ++i) {
        if (std::isnan(a[i]) && std::isnan(b[i])) continue;
        if (std::memcmp(&a[i], &b[i], 4) != 0) return false;
    }
    return true;
}

// ---- extreme inputs, straight into the tile kernels ----
// Raw GGUF rows whose quant bytes are all one pattern (max nibbles and every high bit set,
// int8 -128 / +127, zeros, alternating nibbles, random), with finite fp16 scales so the
// integer sums reach the output unmasked by NaN. Activation rows are built by hand. The ActRows
// contract is |q| <= 127 (gemm.h: the quantizer never makes -128, and the int16 pair sums of
// the plain-NEON and AVX2 kernels rely on it), so -128 is fed only to the rungs whose products
// go straight into int32 lanes (sdot, smmla), which get all of int8 right anyway.
constexpr int kNumWeightPatterns = 6;
static std::vector<uint8_t> extreme_weights(Format f, int64_t n, int64_t k, int pattern) {
    const FormatInfo& fi = format_info(f);
    std::vector<uint8_t> w(n * row_bytes(f, k));
    for (size_t i = 0; i < w.size(); ++i) {
        static const uint8_t fixed[5] = {0xFF, 0x80, 0x7F, 0x00, 0x0F};
        w[i] = pattern < 4 ? fixed[pattern] : pattern == 4 ? (i % 2 ? 0xF0 : 0x0F) : static_cast<uint8_t>(i * 2654435761u >> 13);
    }
    const uint16_t one = 0x3C00, minus_half = 0xB800, tenth = 0x2E66;  // fp16 1.0, -0.5, ~0.1
    for (size_t blk = 0; blk * fi.type_size < w.size(); ++blk) {
        uint8_t* b = w.data() + blk * fi.type_size;
        const uint16_t d = blk % 3 == 0 ? one : blk % 3 == 1 ? minus_half : tenth;
        if (f == Format::Q6_K) {
            store_u16(b + 208, d);
        } else {
            store_u16(b, d);
            if (f == Format::Q4_1 || f == Format::Q5_1 || f == Format::Q4_K || f == Format::Q5_K)
                store_u16(b + 2, blk % 2 ? one : minus_half);  // m / dmin
        }
    }
    return w;
}

// Activation rows q [m][k] (row stride k + 64, as the driver), d per block, exact sums.
struct HandActs {
    std::vector<int8_t> q;
    std::vector<float> d;
    std::vector<int32_t> sum;
    ActRows rows;
};
constexpr int kNumActPatterns = 4;
static HandActs hand_acts(Format f, int64_t m, int64_t k, int pattern, int qmin) {
    const bool kq = act_kind(f) == ActKind::Q8_256;
    const int64_t qs = k + 64, nd = kq ? k / 256 : k / 32, ns = kq ? k / 16 : k / 32, sb = kq ? 16 : 32;
    HandActs h;
    h.q.assign(m * qs, 0);
    h.d.resize(m * nd);
    h.sum.resize(m * ns);
    std::mt19937 rng(99 + pattern);
    for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < k; ++j) {
            int v;
            switch (pattern) {
                case 0: v = qmin; break;
                case 1: v = 127; break;
                case 2: v = (i + j) % 2 ? 127 : qmin; break;
                default: v = std::max(qmin, static_cast<int>(rng() % 256) - 128); break;
            }
            h.q[i * qs + j] = static_cast<int8_t>(v);
        }
        for (int64_t b = 0; b < nd; ++b) h.d[i * nd + b] = b % 2 ? 0.0078125f : 1.0f + 0.25f * static_cast<float>(i);
        for (int64_t g = 0; g < ns; ++g) {
            int32_t s = 0;
            for (int64_t j = 0; j < sb; ++j) s += h.q[i * qs + g * sb + j];
            h.sum[i * ns + g] = s;
        }
    }
    h.rows.q = h.q.data();
    h.rows.d = h.d.data();
    h.rows.sum = h.sum.data();
    h.rows.q_stride = qs;
    h.rows.d_stride = nd;
    h.rows.sum_stride = ns;
    return h;
}

// ---- a tile entry on hand-made extremes: its function called directly, then through the driver ----
static void test_extreme_tiles(const Kernel& k, const KernelTable& ref) {
    const Format f = k.e.format;
    if (f == Format::F32 || f == Format::F16 || f == Format::BF16) return;
    const int64_t kk = 512, nblocks = kk / format_info(f).block_size;
    const gemm_tile_fn tile = kernel_fn<Op::gemm>(k), twin = GemmKernels(ref).tile(f);
    // sdot / smmla take all of int8; the others rely on |q| <= 127 (see above)
    const int qmin = k.isa == Isa::neon_dotprod || k.isa == Isa::neon_i8mm ? -128 : -127;
    for (int wp = 0; wp < kNumWeightPatterns; ++wp) {
        for (int nvalid : {16, 15, 1}) {
            const std::vector<uint8_t> w = extreme_weights(f, nvalid, kk, wp);
            std::vector<uint8_t> grp(nblocks * packed_tile_bytes(f));
            pack_group(f, w.data(), row_bytes(f, kk), nvalid, nblocks, grp.data());
            for (int ap = 0; ap < kNumActPatterns; ++ap) {
                const HandActs h = hand_acts(f, 4, kk, ap, qmin);
                for (int mr = 1; mr <= 4; ++mr) {
                    std::vector<float> oa(4 * 16, -1.0f), ob(4 * 16, -1.0f);
                    twin(grp.data(), nblocks, h.rows, 0, mr, oa.data(), 16, nvalid);
                    tile(grp.data(), nblocks, h.rows, 0, mr, ob.data(), 16, nvalid);
                    check(std::memcmp(oa.data(), ob.data(), oa.size() * 4) == 0,
                          k.name + " extreme tile w" + std::to_string(wp) + " x" + std::to_string(ap) +
                              " mr=" + std::to_string(mr) + " nvalid=" + std::to_string(nvalid));
                }
            }
        }
    }
    // the same weights through the driver, activations at the quantizer's extremes (+-127)
    const KernelTable t = scalar_with(k);
    for (int wp : {0, 1, 4}) {
        const int64_t n = 17;
        const std::vector<uint8_t> w = extreme_weights(f, n, kk, wp);
        auto pm = pack_matrix(f, w.data(), n, kk, row_bytes(f, kk));
        for (int64_t m : {1, 2, 3, 4, 7, 8, 16, 33}) {
            std::vector<float> x(m * kk);
            for (size_t i = 0; i < x.size(); ++i) x[i] = (wp == 0 || i % 3) ? -1.0f : 1.0f;
            std::vector<float> oa(m * n, -1.0f), ob(m * n, -2.0f);
            gemm(ref, f, nullptr, w.data(), row_bytes(f, kk), n, kk, x.data(), m, kk, oa.data(), n);
            gemm(t, f, pm.get(), nullptr, 0, n, kk, x.data(), m, kk, ob.data(), n);
            check(std::memcmp(oa.data(), ob.data(), oa.size() * 4) == 0,
                  k.name + " extreme gemm w" + std::to_string(wp) + " m=" + std::to_string(m));
        }
    }
}

// Weights (n, k) in format f: quantized random data, or (quantized formats, when `raw`) random
// bytes, NaN and Inf scales included.
static std::vector<uint8_t> test_weights(const KernelTable& ref, Format f, int64_t n, int64_t k, int kind, bool raw) {
    std::vector<uint8_t> w(n * row_bytes(f, k));
    if (f == Format::F32 || f == Format::F16 || f == Format::BF16 || !raw) {
        const std::vector<float> wf = test_data(n * k, 7 + n, kind == 3 ? 0 : kind);
        QuantKernels(ref).quantize(f)(wf.data(), w.data(), n * k);
    } else {
        for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<uint8_t>(i * 2654435761u >> 13);
    }
    return w;
}

// One GEMM through the driver: the table under test with packed weights (or unpacked: packed on
// the fly) against the scalar table with unpacked weights. Same bits (NaN payloads aside).
static void check_gemm(const std::string& what, const KernelTable& t, const KernelTable& ref, Format f, int64_t m,
                       int64_t n, int64_t k, int kind, bool raw, bool packed) {
    const std::vector<uint8_t> w = test_weights(ref, f, n, k, kind, raw);
    const std::vector<float> x = test_data(m * k, 11 + m, kind);
    std::vector<float> oa(m * n, -1.0f), ob(m * n, -2.0f);
    gemm(ref, f, nullptr, w.data(), row_bytes(f, k), n, k, x.data(), m, k, oa.data(), n);
    if (packed) {
        auto pm = pack_matrix(f, w.data(), n, k, row_bytes(f, k));
        gemm(t, f, pm.get(), nullptr, 0, n, k, x.data(), m, k, ob.data(), n);
    } else {
        gemm(t, f, nullptr, w.data(), row_bytes(f, k), n, k, x.data(), m, k, ob.data(), n);
    }
    check(same_results(oa, ob), what + " k=" + std::to_string(k) + " n=" + std::to_string(n) + " m=" +
                                    std::to_string(m) + (packed ? " packed" : " unpacked") + (raw ? " raw bytes" : ""));
}

// ---- a tile entry (Op::gemm) inside the driver: every row count a 4-row tile can be handed ----
static void test_tile_entry(const Kernel& k, const KernelTable& ref) {
    const KernelTable t = scalar_with(k);
    const Format f = k.e.format;
    const int bs = format_info(f).block_size;
    for (int64_t kk : {256, 512, 2816}) {
        if (kk % bs) continue;
        for (int64_t n : {1, 15, 17, 33}) {
            // 1..9: one to two tiles of 4 rows and every tail; 33: many tiles + 1; 130 only at one K
            for (int64_t m : {1, 2, 3, 4, 5, 7, 8, 9, 33, 130}) {
                if (m == 130 && kk != 256) continue;
                if ((m == 2 || m == 7 || m == 8) && kk == 2816) continue;  // qemu time
                const int kind = static_cast<int>((kk + n + m) % kNumDataKinds);
                check_gemm(k.name, t, ref, f, m, n, kk, kind, (n + m) % 3 == 0, (m + n) % 2 == 0);
            }
        }
    }
    test_extreme_tiles(k, ref);
    // batch invariance: row i of a 512-row GEMM has the bits of the same row computed alone
    const int64_t kk = 256, n = 17, m = 512;
    if (kk % bs) return;
    const std::vector<uint8_t> w = test_weights(ref, f, n, kk, 0, false);
    auto pm = pack_matrix(f, w.data(), n, kk, row_bytes(f, kk));
    const std::vector<float> x = test_data(m * kk, 4, 0);
    std::vector<float> all(m * n);
    gemm(t, f, pm.get(), nullptr, 0, n, kk, x.data(), m, kk, all.data(), n);
    bool same = true;
    for (int64_t i : {0, 1, 2, 3, 4, 5, 6, 7, 254, 255, 509, 510, 511}) {
        std::vector<float> one(n);
        gemm(t, f, pm.get(), nullptr, 0, n, kk, x.data() + i * kk, 1, kk, one.data(), n);
        same &= std::memcmp(one.data(), all.data() + i * n, n * 4) == 0;
    }
    check(same, k.name + " batch invariance M=1 vs M=512");
}

// ---- a panel entry (Op::gemm_panel): M below, at and above its min_m and past one call's rows;
//      K of one block, several k_chunks, and several chunks plus a partial one ----
static void test_panel_entry(const Kernel& k, const KernelTable& ref) {
    const KernelTable t = scalar_with(k);
    const Format f = k.e.format;
    const Tile& tl = k.e.tile;
    const int64_t bs = format_info(f).block_size, kc = tl.k_chunk > 0 ? tl.k_chunk : 4 * bs;
    const int64_t ms[] = {tl.min_m - 1, tl.min_m, tl.min_m + 1, tl.cols, tl.cols + 1, 2 * tl.cols + tl.min_m + 3};
    for (int64_t kk : {bs, 2 * kc, 2 * kc + bs}) {
        for (int64_t n : {17, 33}) {
            for (int64_t m : ms) {
                const int kind = static_cast<int>((kk + n + m) % kNumDataKinds);
                check_gemm(k.name, t, ref, f, m, n, kk, kind, (n + m) % 3 == 0, true);
            }
        }
    }
    check_gemm(k.name, t, ref, f, tl.min_m, 17, 2 * kc + bs, 0, false, false);  // unpacked: the tiles
}

// ---- an activation quantizer (Op::act_quant) against the scalar one, bit for bit ----
static void test_act_quant(const Kernel& k, const KernelTable& ref) {
    const act_quant_fn aq = kernel_fn<Op::act_quant>(k), twin = ref.get<Op::act_quant>(k.e.format);
    const int64_t kk = 1024;
    const int64_t nd = k.e.format == Format::Q8_K ? kk / 256 : kk / 32, ns = k.e.format == Format::Q8_K ? kk / 16 : kk / 32;
    for (int kind = 0; kind < kNumDataKinds; ++kind) {
        std::vector<float> x = test_data(kk, 5 + kind, kind);
        if (kind == 2) x[17] = NAN;
        std::vector<int8_t> qa(kk), qb(kk);
        std::vector<float> da(nd), db(nd);
        std::vector<int32_t> sa(ns), sb(ns);
        twin(x.data(), kk, qa.data(), da.data(), sa.data());
        aq(x.data(), kk, qb.data(), db.data(), sb.data());
        check(qa == qb && std::memcmp(da.data(), db.data(), nd * 4) == 0 && sa == sb,
              k.name + " kind " + std::to_string(kind));
    }
}

int main() {
    const KernelTable& ref = kernels_for(Isa::scalar);
    for (const Kernel* k : entries_under_test(Op::act_quant)) test_act_quant(*k, ref);
    for (const Kernel* k : entries_under_test(Op::gemm)) test_tile_entry(*k, ref);
    for (const Kernel* k : entries_under_test(Op::gemm_panel)) test_panel_entry(*k, ref);
    return finish("test_gemm");
}
