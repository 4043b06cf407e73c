// ---- every ISA's quantize/dequantize against the scalar twin, bit for bit ----
#include <cmath>
#include <cstring>

#include "check.h"
#include "core/fp16.h"
#include "core/kernels.h"

using namespace slmk;
using namespace slmk_test;

static bool same_bits(const float* a, const float* b, size_t n) {
    return std::memcmp(a, b, n * sizeof(float)) == 0;
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

    const Kernels& ref = kernels_for(Isa::scalar);
    const int sizes[] = {256, 512, 4096 + 256};
    for (Isa isa : supported_isas()) {
        if (isa == Isa::scalar) continue;
        const Kernels& k = kernels_for(isa);
        for (int f = 0; f < kNumFormats; ++f) {
            const FormatInfo& fi = format_info(static_cast<Format>(f));
            const std::string tag = std::string(isa_name(isa)) + "/" + fi.name;
            for (int n : sizes)
                for (int kind = 0; kind < kNumDataKinds; ++kind) {
                    const std::vector<float> x = test_data(n, 1234 + n + kind, kind);
                    const size_t nb = static_cast<size_t>(n) / fi.block_size * fi.type_size;
                    std::vector<uint8_t> qa(nb), qb(nb);
                    ref.quant[f].quantize(x.data(), qa.data(), n);
                    k.quant[f].quantize(x.data(), qb.data(), n);
                    check(qa == qb, tag + " quantize bytes, n=" + std::to_string(n) + " kind=" + std::to_string(kind));
                    std::vector<float> da(n), db(n);
                    ref.quant[f].dequantize(qa.data(), da.data(), n);
                    k.quant[f].dequantize(qa.data(), db.data(), n);
                    check(same_bits(da.data(), db.data(), n),
                          tag + " dequantize bits, n=" + std::to_string(n) + " kind=" + std::to_string(kind));
                }
            // Random bytes decode identically too (any bit pattern is a valid block, NaN
            // scales included: compare as bits, NaN payloads and all).
            std::mt19937 rng(99 + f);
            const int n = 1024;
            const size_t nb = static_cast<size_t>(n) / fi.block_size * fi.type_size;
            std::vector<uint8_t> q(nb);
            for (auto& b : q) b = static_cast<uint8_t>(rng());
            std::vector<float> da(n), db(n);
            ref.quant[f].dequantize(q.data(), da.data(), n);
            k.quant[f].dequantize(q.data(), db.data(), n);
            check(same_bits(da.data(), db.data(), n), tag + " dequantize random bytes");
        }
    }
    return finish("test_quant");
}
