// ---- the ISA ladder, written once (isa.cpp) ----
// Each ISA is a rung with a parent: its kernel table starts as the parent's and its own kernels
// replace entries (dispatch.cpp). Whether a CPU runs a rung is its own feature list plus every
// ancestor's. Outside isa.cpp only CMakeLists.txt (each ISA's compiler flags) spells the ladder.
#pragma once
#include <string>
#include <vector>

namespace slmk {

enum class Isa : int {
    scalar = 0,
    avx2, avx_vnni, avx512, avx512_vnni, avx512_amx,  // x86-64
    neon, neon_dotprod, neon_i8mm,                    // aarch64
    COUNT
};
constexpr int kNumIsas = static_cast<int>(Isa::COUNT);

struct IsaInfo {
    const char* name;
    Isa parent;         // the rung whose kernels this one inherits (scalar: itself)
    const char* needs;  // CPU features beyond the parent's (feature_names() of cpu_features.h), space-separated
};

const IsaInfo& isa_info(Isa isa);
const char* isa_name(Isa isa);
bool isa_from_name(const std::string& name, Isa* out);
bool isa_supported(Isa isa);          // this CPU (and OS) runs it and every rung below it
std::vector<Isa> supported_isas();    // best first
std::vector<Isa> isa_ladder(Isa isa); // scalar, ..., isa: the rungs whose kernels make its table
Isa best_isa();

}  // namespace slmk
