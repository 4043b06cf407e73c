// ---- every ISA's GEMM micro-kernels and activation quantizers against the scalar twin ----
// Integer paths with a float epilogue fixed by the spec (gemm.h): results must be identical bits.
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

static void test_extreme_tiles(Isa isa, const KernelTable& ref, const KernelTable& kern, const Format* quant_formats, int nq) {
    for (int fi_ = 0; fi_ < nq; ++fi_) {
        const Format f = quant_formats[fi_];
        const int64_t k = 512, nblocks = k / format_info(f).block_size;
        const std::string tag = std::string(isa_name(isa)) + "/" + format_info(f).name;
        const int qmin = isa == Isa::neon_dotprod || isa == Isa::neon_i8mm ? -128 : -127;
        for (int wp = 0; wp < kNumWeightPatterns; ++wp) {
            for (int nvalid : {16, 15, 1}) {
                const std::vector<uint8_t> w = extreme_weights(f, nvalid, k, wp);
                std::vector<uint8_t> grp(nblocks * packed_tile_bytes(f));
                pack_group(f, w.data(), row_bytes(f, k), nvalid, nblocks, grp.data());
                for (int ap = 0; ap < kNumActPatterns; ++ap) {
                    const HandActs h = hand_acts(f, 4, k, ap, qmin);
                    for (int mr = 1; mr <= 4; ++mr) {
                        std::vector<float> oa(4 * 16, -1.0f), ob(4 * 16, -1.0f);
                        GemmKernels(ref).tile(f)(grp.data(), nblocks, h.rows, 0, mr, oa.data(), 16, nvalid);
                        GemmKernels(kern).tile(f)(grp.data(), nblocks, h.rows, 0, mr, ob.data(), 16, nvalid);
                        check(std::memcmp(oa.data(), ob.data(), oa.size() * 4) == 0,
                              tag + " extreme tile w" + std::to_string(wp) + " x" + std::to_string(ap) +
                                  " mr=" + std::to_string(mr) + " nvalid=" + std::to_string(nvalid));
                    }
                }
            }
        }
        // the same weights through the driver, activations at the quantizer's extremes (+-127)
        for (int wp : {0, 1, 4}) {
            const int64_t n = 17;
            const std::vector<uint8_t> w = extreme_weights(f, n, k, wp);
            auto pm = pack_matrix(f, w.data(), n, k, row_bytes(f, k));
            for (int64_t m : {1, 2, 3, 4, 7, 8, 16, 33}) {
                std::vector<float> x(m * k);
                for (size_t i = 0; i < x.size(); ++i) x[i] = (wp == 0 || i % 3) ? -1.0f : 1.0f;
                std::vector<float> oa(m * n, -1.0f), ob(m * n, -2.0f);
                gemm(ref, f, nullptr, w.data(), row_bytes(f, k), n, k, x.data(), m, k, oa.data(), n);
                gemm(kern, f, pm.get(), nullptr, 0, n, k, x.data(), m, k, ob.data(), n);
                check(std::memcmp(oa.data(), ob.data(), oa.size() * 4) == 0,
                      tag + " extreme gemm w" + std::to_string(wp) + " m=" + std::to_string(m));
            }
        }
    }
}

// ---- batch invariance: row i of a 512-row GEMM has the bits of the same row computed alone ----
static void test_batch_invariance(Isa isa, const KernelTable& kern, const Format* quant_formats, int nq) {
    for (int fi_ = 0; fi_ < nq; ++fi_) {
        const Format f = quant_formats[fi_];
        const int64_t k = 256, n = 17, m = 512;
        std::vector<float> wf = test_data(n * k, 3, 0);
        std::vector<uint8_t> w(n * row_bytes(f, k));
        QuantKernels(kernels_for(Isa::scalar)).quantize(f)(wf.data(), w.data(), n * k);
        auto pm = pack_matrix(f, w.data(), n, k, row_bytes(f, k));
        std::vector<float> x = test_data(m * k, 4, 0);
        std::vector<float> all(m * n);
        gemm(kern, f, pm.get(), nullptr, 0, n, k, x.data(), m, k, all.data(), n);
        bool same = true;
        for (int64_t i : {0, 1, 2, 3, 4, 5, 6, 7, 254, 255, 509, 510, 511}) {
            std::vector<float> one(n);
            gemm(kern, f, pm.get(), nullptr, 0, n, k, x.data() + i * k, 1, k, one.data(), n);
            same &= std::memcmp(one.data(), all.data() + i * n, n * 4) == 0;
        }
        check(same, std::string(isa_name(isa)) + "/" + format_info(f).name + " batch invariance M=1 vs M=512");
    }
}

int main() {
    const KernelTable& ref = kernels_for(Isa::scalar);
    const Format formats[] = {Format::Q8_0, Format::Q4_0, Format::Q4_1, Format::Q5_0, Format::Q5_1, Format::Q4_K,
                              Format::Q5_K, Format::Q6_K, Format::F32, Format::F16, Format::BF16};
    for (Isa isa : supported_isas()) {
        if (isa == Isa::scalar) continue;
        const KernelTable& kern = kernels_for(isa);
        for (Format f : formats) {
            const FormatInfo& fi = format_info(f);
            const std::string tag = std::string(isa_name(isa)) + "/" + fi.name;
            for (int64_t k : {256, 512, 2816}) {
                if (k % fi.block_size) continue;
                for (int64_t n : {1, 15, 17, 33}) {
                    // m >= 16: panel kernels (AMX) where the ISA has them; 130 = a full 128-row
                    // panel chunk + a 2-row tail, 33 = two full 16-row tiles + a 1-row tail
                    // 2, 7, 8: a single smmla row pair, pairs plus a padded odd row, two full tiles
                    for (int64_t m : {1, 2, 3, 4, 5, 7, 8, 9, 16, 33, 130}) {
                        if (m == 130 && k != 256) continue;
                        if ((m == 2 || m == 7 || m == 8) && k == 2816) continue;  // qemu time
                        const int kind = static_cast<int>((k + n + m) % kNumDataKinds);
                        // weights: quantize random data with the scalar quantizer; also random bytes
                        std::vector<float> wf = test_data(n * k, 7 + n, kind == 3 ? 0 : kind);
                        std::vector<uint8_t> w(n * row_bytes(f, k));
                        if (f == Format::F32 || f == Format::F16 || f == Format::BF16 || (n + m) % 3 != 0)
                            QuantKernels(ref).quantize(f)(wf.data(), w.data(), n * k);
                        else
                            for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<uint8_t>(i * 2654435761u >> 13);
                        std::vector<float> x = test_data(m * k, 11 + m, kind);
                        std::vector<float> oa(m * n, -1.0f), ob(m * n, -2.0f);
                        gemm(ref, f, nullptr, w.data(), row_bytes(f, k), n, k, x.data(), m, k, oa.data(), n);
                        auto pm = pack_matrix(f, w.data(), n, k, row_bytes(f, k));
                        gemm(kern, f, pm.get(), nullptr, 0, n, k, x.data(), m, k, ob.data(), n);
                        check(same_results(oa, ob),
                              tag + " gemm bits k=" + std::to_string(k) + " n=" + std::to_string(n) + " m=" + std::to_string(m));
                    }
                }
            }
        }
        const Format quant_formats[] = {Format::Q8_0, Format::Q4_0, Format::Q4_1, Format::Q5_0,
                                        Format::Q5_1, Format::Q4_K, Format::Q5_K, Format::Q6_K};
        if (isa == Isa::neon_i8mm)  // the rung runs its own smmla tiles, not the dotprod ones it inherits
            for (Format f : quant_formats)
                check(kern.find(Op::gemm, f)->isa == Isa::neon_i8mm,
                      std::string("neon_i8mm tile for ") + format_info(f).name + " is " + kern.find(Op::gemm, f)->name);
        test_extreme_tiles(isa, ref, kern, quant_formats, 8);
        test_batch_invariance(isa, kern, quant_formats, 8);
        // activation quantizers
        for (int kind = 0; kind < kNumDataKinds; ++kind) {
            const int64_t k = 1024;
            std::vector<float> x = test_data(k, 5 + kind, kind);
            if (kind == 2) x[17] = NAN;
            std::vector<int8_t> qa(k), qb(k);
            std::vector<float> da(k / 32), db(k / 32);
            std::vector<int32_t> sa(k / 16), sb(k / 16);
            GemmKernels(ref).act_quant(ActKind::Q8_32)(x.data(), k, qa.data(), da.data(), sa.data());
            GemmKernels(kern).act_quant(ActKind::Q8_32)(x.data(), k, qb.data(), db.data(), sb.data());
            check(qa == qb && std::memcmp(da.data(), db.data(), da.size() * 4) == 0 &&
                      std::memcmp(sa.data(), sb.data(), (k / 32) * 4) == 0,
                  std::string(isa_name(isa)) + " act_quant_32 kind " + std::to_string(kind));
            GemmKernels(ref).act_quant(ActKind::Q8_256)(x.data(), k, qa.data(), da.data(), sa.data());
            GemmKernels(kern).act_quant(ActKind::Q8_256)(x.data(), k, qb.data(), db.data(), sb.data());
            check(qa == qb && std::memcmp(da.data(), db.data(), (k / 256) * 4) == 0 && sa == sb,
                  std::string(isa_name(isa)) + " act_quant_256 kind " + std::to_string(kind));
        }
    }
    return finish("test_gemm");
}
