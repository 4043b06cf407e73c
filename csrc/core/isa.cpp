// ---- the ISA table ----
#include "isa.h"

#include <algorithm>
#include <sstream>

#include "cpu_features.h"

namespace slmk {

namespace {

// In the order of the enum, each rung after its parent; the best ISA a CPU runs is the last row
// it passes. Feature names are those of cpu_features.cpp.
constexpr IsaInfo kIsas[kNumIsas] = {
    {"scalar", Isa::scalar, ""},
    {"avx2", Isa::scalar, "avx2 fma f16c bmi2"},
    {"avx_vnni", Isa::avx2, "avxvnni"},  // 256-bit VEX vpdpbusd (Alder Lake), no AVX-512
    {"avx512", Isa::avx2, "avx512f avx512bw avx512vl avx512dq"},
    {"avx512_vnni", Isa::avx512, "avx512vnni"},
    {"avx512_amx", Isa::avx512_vnni, "amx_int8"},  // + AMX-INT8 GEMM panels
    {"neon", Isa::scalar, "neon"},
    {"neon_dotprod", Isa::neon, "dotprod"},
    {"neon_i8mm", Isa::neon_dotprod, "i8mm"},
};

bool own_features_present(Isa isa) {
    std::istringstream needs(kIsas[static_cast<int>(isa)].needs);
    const std::vector<std::string> have = feature_names();
    for (std::string f; needs >> f;)
        if (std::find(have.begin(), have.end(), f) == have.end()) return false;
    return true;
}

}  // namespace

const IsaInfo& isa_info(Isa isa) { return kIsas[static_cast<int>(isa)]; }
const char* isa_name(Isa isa) { return kIsas[static_cast<int>(isa)].name; }

bool isa_from_name(const std::string& name, Isa* out) {
    for (int i = 0; i < kNumIsas; ++i)
        if (name == kIsas[i].name) {
            *out = static_cast<Isa>(i);
            return true;
        }
    return false;
}

bool isa_supported(Isa isa) {
    static const std::vector<bool> ok = [] {
        std::vector<bool> v(kNumIsas);
        for (int i = 0; i < kNumIsas; ++i)  // parents come first, so v[parent] is already known
            v[i] = own_features_present(static_cast<Isa>(i)) && (i == 0 || v[static_cast<int>(kIsas[i].parent)]);
        return v;
    }();
    return ok[static_cast<int>(isa)];
}

std::vector<Isa> supported_isas() {
    std::vector<Isa> out;
    for (int i = kNumIsas - 1; i >= 0; --i)
        if (isa_supported(static_cast<Isa>(i))) out.push_back(static_cast<Isa>(i));
    return out;
}

std::vector<Isa> isa_ladder(Isa isa) {
    std::vector<Isa> chain{isa};
    while (chain.back() != Isa::scalar) chain.push_back(kIsas[static_cast<int>(chain.back())].parent);
    std::reverse(chain.begin(), chain.end());
    return chain;
}

Isa best_isa() { return supported_isas().front(); }

}  // namespace slmk
