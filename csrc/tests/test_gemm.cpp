// ---- every ISA's GEMM micro-kernels and activation quantizers against the scalar twin ----
// Integer paths with a float epilogue fixed by the spec (gemm.h): results must be identical bits.
#include <cmath>
#include <cstring>

#include "check.h"
#include "gemm/gemm_driver.h"

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

int main() {
    const Kernels& ref = kernels_for(Isa::scalar);
    const Format formats[] = {Format::Q8_0, Format::Q4_0, Format::Q4_1, Format::Q5_0, Format::Q5_1, Format::Q4_K,
                              Format::Q5_K, Format::Q6_K, Format::F32, Format::F16, Format::BF16};
    for (Isa isa : supported_isas()) {
        if (isa == Isa::scalar) continue;
        const Kernels& kern = kernels_for(isa);
        for (Format f : formats) {
            const FormatInfo& fi = format_info(f);
            const std::string tag = std::string(isa_name(isa)) + "/" + fi.name;
            for (int64_t k : {256, 512, 2816}) {
                if (k % fi.block_size) continue;
                for (int64_t n : {1, 15, 17, 33}) {
                    // m >= 16: panel kernels (AMX) where the ISA has them; 130 = a full 128-row
                    // panel chunk + a 2-row tail, 33 = two full 16-row tiles + a 1-row tail
                    for (int64_t m : {1, 3, 4, 5, 9, 16, 33, 130}) {
                        if (m == 130 && k != 256) continue;
                        const int kind = static_cast<int>((k + n + m) % kNumDataKinds);
                        // weights: quantize random data with the scalar quantizer; also random bytes
                        std::vector<float> wf = test_data(n * k, 7 + n, kind == 3 ? 0 : kind);
                        std::vector<uint8_t> w(n * row_bytes(f, k));
                        if (f == Format::F32 || f == Format::F16 || f == Format::BF16 || (n + m) % 3 != 0)
                            ref.quant[static_cast<int>(f)].quantize(wf.data(), w.data(), n * k);
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
        // activation quantizers
        for (int kind = 0; kind < kNumDataKinds; ++kind) {
            const int64_t k = 1024;
            std::vector<float> x = test_data(k, 5 + kind, kind);
            if (kind == 2) x[17] = NAN;
            std::vector<int8_t> qa(k), qb(k);
            std::vector<float> da(k / 32), db(k / 32);
            std::vector<int32_t> sa(k / 16), sb(k / 16);
            ref.gemm.act_quant_32(x.data(), k, qa.data(), da.data(), sa.data());
            kern.gemm.act_quant_32(x.data(), k, qb.data(), db.data(), sb.data());
            check(qa == qb && std::memcmp(da.data(), db.data(), da.size() * 4) == 0 &&
                      std::memcmp(sa.data(), sb.data(), (k / 32) * 4) == 0,
                  std::string(isa_name(isa)) + " act_quant_32 kind " + std::to_string(kind));
            ref.gemm.act_quant_256(x.data(), k, qa.data(), da.data(), sa.data());
            kern.gemm.act_quant_256(x.data(), k, qb.data(), db.data(), sb.data());
            check(qa == qb && std::memcmp(da.data(), db.data(), (k / 256) * 4) == 0 && sa == sb,
                  std::string(isa_name(isa)) + " act_quant_256 kind " + std::to_string(kind));
        }
    }
    return finish("test_gemm");
}
