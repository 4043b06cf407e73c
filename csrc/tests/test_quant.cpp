// ---- every quantize / dequantize entry of the registry against its scalar twin, bit for bit ----
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "check.h"
#include "core/fp16.h"
#include "quant/formats.h"

using namespace slmk;
using namespace slmk_test;

static bool same_bits(const float* a, const float* b, size_t n) {
    return std::memcmp(a, b, n * sizeof(float)) == 0;
}

// ---- hand-made edge blocks: every quantizer and dequantizer on data the random kinds miss ----
// (+-0 ties, NaN/Inf anywhere incl. signalling NaNs, raw random float bits, one-block rows,
// and NaN/Inf fp16 scale combinations where the first NaN operand decides the result bits).
static float f32_from_bits(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

// The row cases below, built once: 256 floats each.
static std::vector<std::vector<float>> edge_cases() {
    const float qnan = f32_from_bits(0x7fc12345u), snan = f32_from_bits(0xff812345u);
    const float inf = INFINITY, tiny = 1e-40f;
    std::mt19937 rng(7);
    // 256 floats = 8 blocks of 32 or one super-block; each 32-run is one pattern.
    std::vector<std::vector<float>> cases;
    auto block = [](float fill) { return std::vector<float>(32, fill); };
    std::vector<std::vector<float>> blocks;
    blocks.push_back(block(-0.0f));                                                 // all -0.0
    { auto b = block(0.0f); b[0] = 0.0f; b[1] = -0.0f; blocks.push_back(b); }       // +0 then -0
    { auto b = block(-0.0f); b[5] = 0.0f; blocks.push_back(b); }                    // -0 then +0
    { auto b = block(1.0f); b[3] = -4.0f; b[9] = 4.0f; blocks.push_back(b); }       // |max| tie, - first
    { auto b = block(1.0f); b[3] = 4.0f; b[9] = -4.0f; b[17] = -0.0f; blocks.push_back(b); }
    { auto b = block(0.5f); b[0] = qnan; blocks.push_back(b); }                     // NaN first
    { auto b = block(0.5f); b[0] = snan; b[4] = -2.0f; blocks.push_back(b); }
    { auto b = block(0.5f); b[7] = qnan; b[8] = snan; b[30] = -3.0f; blocks.push_back(b); }
    { auto b = block(0.5f); b[2] = inf; blocks.push_back(b); }                      // Inf: d = inf
    { auto b = block(-0.5f); b[2] = -inf; b[3] = inf; blocks.push_back(b); }
    { auto b = block(0.0f); b[11] = tiny; b[12] = -tiny; blocks.push_back(b); }     // 1/d overflows
    { auto b = block(0.0f); b[0] = 0.0f; b[1] = 1.0f; b[2] = -0.0f; blocks.push_back(b); }
    { auto b = block(-1.0f); b[31] = -0.0f; b[30] = 0.0f; blocks.push_back(b); }    // zero max late
    { std::vector<float> b(32); for (auto& v : b) v = f32_from_bits(rng()); blocks.push_back(b); }
    { std::vector<float> b(32); for (auto& v : b) v = f32_from_bits(rng()); blocks.push_back(b); }
    { std::vector<float> b(32); for (auto& v : b) v = f32_from_bits(rng() & 0x807fffffu); blocks.push_back(b); }
    // fp16 / bf16 rounding edges: halfway points, overflow threshold, subnormal halves
    { std::vector<float> b(32); for (int j = 0; j < 32; ++j) b[j] = f32_from_bits(0x38000000u + (j << 12) * 3 + (j & 1 ? 0x1000 : 0)); blocks.push_back(b); }
    { std::vector<float> b(32); for (int j = 0; j < 32; ++j) b[j] = f32_from_bits(0x33000000u + j * 0x00100000u + ((j % 3) << 12)); blocks.push_back(b); }
    { auto b = block(65520.0f); b[1] = 65519.996f; b[2] = -65520.0f; b[3] = f32_from_bits(0x7f800001u); blocks.push_back(b); }
    // exact rounding ties of the 32-block quantizers (as tests/quant_data.py): anchors pin the
    // scale to 1, every other value is k + 1/2 for k in [k0, k1]
    auto ties = [&](int k0, int k1, float anchor0, float anchor1) {
        std::vector<float> b(32);
        for (int j = 0; j < 32; ++j) b[j] = static_cast<float>(k0 + static_cast<int>(rng() % (k1 - k0 + 1))) + 0.5f;
        b[0] = anchor0;
        b[17] = anchor1;
        blocks.push_back(b);
    };
    ties(-127, 125, 127.0f, 3.5f);  // Q8_0: amax 127
    ties(-7, 6, -8.0f, 2.5f);       // Q4_0: max -8
    ties(-15, 14, -16.0f, -5.5f);   // Q5_0: max -16
    ties(0, 14, 0.0f, 15.0f);       // Q4_1: min 0, max 15
    ties(0, 30, 0.0f, 31.0f);       // Q5_1: min 0, max 31
    // rows of 8 consecutive patterns (256 elements)
    for (size_t s = 0; s < blocks.size(); s += 8) {
        std::vector<float> x;
        for (size_t i = 0; i < 8; ++i) {
            const auto& b = blocks[(s + i) % blocks.size()];
            x.insert(x.end(), b.begin(), b.end());
        }
        cases.push_back(x);
    }
    // every pattern alone at the start of its own row too (n = 32 rows for the 32-blocks)
    for (const auto& b : blocks) {
        std::vector<float> x(256, 0.25f);
        std::copy(b.begin(), b.end(), x.begin());
        cases.push_back(x);
        for (size_t i = 0; i < 256; ++i) x[i] = b[i % 32];  // repeated: K-quants/Q8_K see it whole
        cases.push_back(x);
    }
    return cases;
}

// A quantize entry on the edge cases: the same bytes as its scalar twin.
static void edge_quantize(const Kernel& k, const KernelTable& ref) {
    const quantize_row_fn quant = kernel_fn<Op::quantize>(k), twin = ref.get<Op::quantize>(k.e.format);
    const FormatInfo& fi = format_info(k.e.format);
    const std::vector<std::vector<float>> cases = edge_cases();
    for (size_t c = 0; c < cases.size(); ++c)
        for (int n : {32, 256}) {
            if (n % fi.block_size) continue;
            const size_t nb = static_cast<size_t>(n) / fi.block_size * fi.type_size;
            std::vector<uint8_t> qa(nb), qb(nb);
            twin(cases[c].data(), qa.data(), n);
            quant(cases[c].data(), qb.data(), n);
            check(qa == qb, k.name + " edge case " + std::to_string(c) + " n=" + std::to_string(n));
        }
}

// A dequantize entry on the scalar quantizer's bytes of the edge cases, on blocks whose fp16
// scales (d, and m / dmin where present) are specials, all pairs, and (F16 / BF16) on every half.
static void edge_dequantize(const Kernel& k, const KernelTable& ref) {
    const dequantize_row_fn deq = kernel_fn<Op::dequantize>(k), twin = ref.get<Op::dequantize>(k.e.format);
    const Format f = k.e.format;
    const FormatInfo& fi = format_info(f);
    const std::vector<std::vector<float>> cases = edge_cases();
    for (size_t c = 0; c < cases.size(); ++c)
        for (int n : {32, 256}) {
            if (n % fi.block_size) continue;
            std::vector<uint8_t> q(static_cast<size_t>(n) / fi.block_size * fi.type_size);
            ref.get<Op::quantize>(f)(cases[c].data(), q.data(), n);
            std::vector<float> da(n), db(n);
            twin(q.data(), da.data(), n);
            deq(q.data(), db.data(), n);
            check(same_bits(da.data(), db.data(), n), k.name + " edge case " + std::to_string(c));
        }
    const uint16_t specials[] = {0x7e01, 0x7c01, 0xfd55, 0xfe00, 0x7c00, 0xfc00, 0x0000, 0x8000, 0x0001, 0x3c00, 0xbc00};
    int scale_off = -1, min_off = -1;
    switch (f) {
        case Format::Q8_0: case Format::Q4_0: case Format::Q5_0: scale_off = 0; break;
        case Format::Q4_1: case Format::Q5_1: case Format::Q4_K: case Format::Q5_K: scale_off = 0; min_off = 2; break;
        case Format::Q6_K: scale_off = 208; break;
        default: break;
    }
    std::mt19937 rng(7);
    if (scale_off >= 0) {
        const int n = fi.block_size;
        std::vector<uint8_t> q(fi.type_size);
        for (uint16_t d : specials)
            for (uint16_t m : specials) {
                for (auto& b : q) b = static_cast<uint8_t>(rng());
                store_u16(q.data() + scale_off, d);
                if (min_off >= 0) store_u16(q.data() + min_off, m);
                std::vector<float> da(n), db(n);
                twin(q.data(), da.data(), n);
                deq(q.data(), db.data(), n);
                check(same_bits(da.data(), db.data(), n),
                      k.name + " special scales d=" + std::to_string(d) + " m=" + std::to_string(m));
                if (min_off < 0) break;
            }
    }
    if (f == Format::F16 || f == Format::BF16) {  // exact widening, NaN payloads untouched
        std::vector<uint8_t> all(2 * 65536);
        for (uint32_t h = 0; h < 65536; ++h) store_u16(all.data() + 2 * h, static_cast<uint16_t>(h));
        std::vector<float> da(65536), db(65536);
        twin(all.data(), da.data(), 65536);
        deq(all.data(), db.data(), 65536);
        check(same_bits(da.data(), db.data(), 65536), k.name + " all halves");
    }
}

// Blocks aimed at the branches of the quantizers: NaN / inf anywhere (and at x[0], which the
// twin's scans never move past), all -0.0, +0 / -0 mixes (first-of-equal rules), ties at the
// largest magnitude with either sign first, values whose scale reciprocal overflows, and
// values far outside the int range after scaling.
constexpr int kNumEdgeKinds = 8;
static std::vector<float> edge_data(size_t n, uint32_t seed, int kind) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> g(0.0f, 1.0f);
    std::vector<float> x(n);
    for (size_t i = 0; i < n; ++i) {
        const size_t j = i % 32;
        const uint32_t r = rng();
        switch (kind) {
            case 0: {  // NaN / inf sprinkled, NaN at the head of some blocks
                static const uint32_t sp[] = {0x7fc00000u, 0xffc00001u, 0x7f800001u, 0x7f800000u, 0xff800000u};
                x[i] = (r % 5 == 0 || (j == 0 && (i / 32) % 3 == 0)) ? bits_f32(sp[r % 5 == 0 ? (r / 5) % 5 : (i / 32) % 5])
                                                                     : g(rng);
                break;
            }
            case 1: x[i] = -0.0f; break;
            case 2: x[i] = (r % 3 == 0) ? -0.0f : (r % 3 == 1 ? 0.0f : std::fabs(g(rng))); break;  // min is a zero
            case 3: x[i] = (r % 3 == 0) ? -0.0f : (r % 3 == 1 ? 0.0f : -std::fabs(g(rng))); break; // max is a zero
            case 4: {  // ties at the max magnitude, sign of the first one random per block
                const float c = 3.0f + static_cast<float>((i / 32) % 5);
                x[i] = (r % 4 == 0) ? ((r & 16) ? c : -c) : g(rng);
                break;
            }
            case 5: x[i] = g(rng) * 1e-44f; break;                            // deep subnormals: 1/d overflows
            case 6: x[i] = (j % 2) ? 3.0e38f : -3.0e38f * (r % 2 ? 1.0f : 0.5f); break;  // max - min overflows
            default: x[i] = (j == 5) ? 1.0f : g(rng) * 1e-30f; break;        // one outlier, rest round to 0
        }
    }
    return x;
}

// Sizes: one block, odd block counts, many blocks; odd element counts for the 1-element
// "blocks" of F16 / BF16 (SIMD tails). Each size is used where it is a whole number of blocks.
constexpr int kSizes[] = {1, 7, 13, 32, 96, 256, 512, 4096 + 256};

// A row of n values of data kind `kind` (test_data's kinds, then edge_data's).
static std::vector<float> kind_data(int n, int kind) {
    return kind < kNumDataKinds ? test_data(n, 1234 + n + kind, kind) : edge_data(n, 77 + n + kind, kind - kNumDataKinds);
}

// A quantize entry: the same bytes as its scalar twin on every size and data kind, also from
// unaligned buffers; F16 / BF16 also over a stride of all float bit patterns and every rounding
// midpoint +-1 ulp (the ties of vcvtps2ph and of the bf16 rounding).
static void test_quantize(const Kernel& k, const KernelTable& ref) {
    const quantize_row_fn quant = kernel_fn<Op::quantize>(k), twin = ref.get<Op::quantize>(k.e.format);
    const FormatInfo& fi = format_info(k.e.format);
    for (int n : kSizes) {
        if (n % fi.block_size != 0) continue;
        const size_t nb = static_cast<size_t>(n) / fi.block_size * fi.type_size;
        for (int kind = 0; kind < kNumDataKinds + kNumEdgeKinds; ++kind) {
            const std::vector<float> x = kind_data(n, kind);
            const std::string what = " n=" + std::to_string(n) + " kind=" + std::to_string(kind);
            std::vector<uint8_t> qa(nb), qb(nb);
            twin(x.data(), qa.data(), n);
            quant(x.data(), qb.data(), n);
            check(qa == qb, k.name + " bytes" + what);
            std::vector<float> xu(n + 1);  // floats off the vector alignment, bytes at an odd address
            std::memcpy(xu.data() + 1, x.data(), n * sizeof(float));
            std::vector<uint8_t> qu(nb + 1);
            quant(xu.data() + 1, qu.data() + 1, n);
            check(std::memcmp(qu.data() + 1, qa.data(), nb) == 0, k.name + " unaligned" + what);
        }
    }
    if (k.e.format != Format::F16 && k.e.format != Format::BF16) return;
    std::vector<float> x;
    for (uint64_t u = 0; u < (1ull << 32); u += 4099) x.push_back(bits_f32(static_cast<uint32_t>(u)));
    for (uint32_t i = 0; i < 65536; ++i) {
        const uint32_t mid_f16 = f32_bits(fp16_to_fp32(static_cast<uint16_t>(i))) + (1u << 12);  // normal halves
        const uint32_t mid_bf16 = (i << 16) + 0x8000u;
        for (uint32_t m : {mid_f16, mid_bf16})
            for (int dlt = -1; dlt <= 1; ++dlt) x.push_back(bits_f32(m + dlt));
    }
    for (uint32_t e = 0x33000000u - 4; e < 0x33000000u + 4; ++e) x.push_back(bits_f32(e));  // 2^-25
    for (uint32_t h = 0; h < 0x400; ++h) {  // subnormal halves: midpoint (h + 0.5) * 2^-24
        const uint32_t m = f32_bits((static_cast<float>(h) + 0.5f) * 5.9604645e-08f);
        for (int dlt = -1; dlt <= 1; ++dlt) x.push_back(bits_f32(m + dlt));
    }
    const size_t n = x.size();
    std::vector<uint8_t> qa(2 * n), qb(2 * n);
    twin(x.data(), qa.data(), n);
    quant(x.data(), qb.data(), n);
    check(qa == qb, k.name + " float bit patterns");
}

// A dequantize entry: the same bits as its scalar twin on the scalar quantizer's bytes of every
// size and data kind (also unaligned), on random bytes (any bit pattern is a valid block, NaN
// scales included: compare as bits, NaN payloads and all), and on random bytes whose every scale
// field is a NaN / inf / subnormal (with two NaN scales, d and m / dmin, the first operand's
// payload must win, as in the twin).
static void test_dequantize(const Kernel& k, const KernelTable& ref) {
    const dequantize_row_fn deq = kernel_fn<Op::dequantize>(k), twin = ref.get<Op::dequantize>(k.e.format);
    const Format f = k.e.format;
    const FormatInfo& fi = format_info(f);
    for (int n : kSizes) {
        if (n % fi.block_size != 0) continue;
        const size_t nb = static_cast<size_t>(n) / fi.block_size * fi.type_size;
        for (int kind = 0; kind < kNumDataKinds + kNumEdgeKinds; ++kind) {
            const std::vector<float> x = kind_data(n, kind);
            const std::string what = " n=" + std::to_string(n) + " kind=" + std::to_string(kind);
            std::vector<uint8_t> q(nb + 1);
            ref.get<Op::quantize>(f)(x.data(), q.data(), n);
            std::vector<float> da(n), db(n);
            twin(q.data(), da.data(), n);
            deq(q.data(), db.data(), n);
            check(same_bits(da.data(), db.data(), n), k.name + " bits" + what);
            std::memmove(q.data() + 1, q.data(), nb);
            std::vector<float> du(n + 1);
            deq(q.data() + 1, du.data() + 1, n);
            check(same_bits(du.data() + 1, da.data(), n), k.name + " unaligned" + what);
        }
    }
    std::mt19937 rng(99 + static_cast<int>(f));
    const int n = 1024;
    const size_t nb = static_cast<size_t>(n) / fi.block_size * fi.type_size;
    std::vector<uint8_t> q(nb);
    for (auto& b : q) b = static_cast<uint8_t>(rng());
    std::vector<float> da(n), db(n);
    twin(q.data(), da.data(), n);
    deq(q.data(), db.data(), n);
    check(same_bits(da.data(), db.data(), n), k.name + " random bytes");
    if (fi.block_size == 1) return;
    static const uint16_t special[] = {0x7c01, 0x7d55, 0x7e00, 0x7fff, 0xfc01, 0xfe37,
                                       0x7c00, 0xfc00, 0x0001, 0x83ff, 0x0000, 0x8000};
    const int ns = sizeof(special) / sizeof(special[0]);
    for (int blk = 0; blk < n / fi.block_size; ++blk) {
        uint8_t* p = q.data() + static_cast<size_t>(blk) * fi.type_size;
        if (f == Format::Q8_K) {
            const uint32_t fs[] = {0x7f800001u, 0x7fc00000u, 0xffa5a5a5u, 0x7f800000u, 0x00000001u};
            std::memcpy(p, &fs[rng() % 5], 4);
        } else if (f == Format::Q6_K) {
            store_u16(p + 208, special[rng() % ns]);
        } else {
            store_u16(p, special[rng() % ns]);
            if (f == Format::Q4_1 || f == Format::Q5_1 || f == Format::Q4_K || f == Format::Q5_K)
                store_u16(p + 2, special[rng() % ns]);
        }
    }
    twin(q.data(), da.data(), n);
    deq(q.data(), db.data(), n);
    check(same_bits(da.data(), db.data(), n), k.name + " special scales in random bytes");
}

int main() {
    std::printf("supported ISAs:");
    for (Isa isa : supported_isas()) std::printf(" %s", isa_name(isa));
    std::printf("\n");
    // fp16 <-> fp32: every half value widens exactly and narrows back to itself.
    for (uint32_t h = 0; h < 65536; ++h) {
        const float f = fp16_to_fp32(static_cast<uint16_t>(h));
        if (std::isnan(f)) continue;
        if (fp32_to_fp16(f) != h) check(false, "fp16 round trip of " + std::to_string(h));
    }
    check(fp32_to_fp16(65519.996f) == 0x7bff && fp32_to_fp16(65520.0f) == 0x7c00, "fp16 overflow threshold");
    check(fp32_to_fp16(5.9604645e-08f) == 0x0001 && fp32_to_fp16(2.9802322e-08f) == 0x0000, "fp16 subnormal ties");

    const KernelTable& ref = kernels_for(Isa::scalar);
    for (const Kernel* k : entries_under_test(Op::quantize)) {
        edge_quantize(*k, ref);
        test_quantize(*k, ref);
    }
    for (const Kernel* k : entries_under_test(Op::dequantize)) {
        edge_dequantize(*k, ref);
        test_dequantize(*k, ref);
    }
    return finish("test_quant");
}
