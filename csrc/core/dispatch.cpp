// ---- the one dispatch site ----
// Best-first ladder per architecture; SLMK_ISA (read once, at first use) or set_isa() force
// a lower rung. Asking for a rung the CPU lacks is an error, never a silent fallback.
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <stdexcept>

#include "cpu_features.h"
#include "kernels.h"

namespace slmk {

namespace {

const char* const kIsaNames[kNumIsas] = {"scalar",      "avx2",       "avx_vnni", "avx512",
                                         "avx512_vnni", "avx512_amx", "neon",     "neon_dotprod",
                                         "neon_i8mm"};

Kernels build_table(Isa isa) {
    Kernels k;
    k.isa = isa;
    fill_quant_scalar(k);
    fill_gemm_scalar(k);
    fill_attention_scalar(k);
    fill_ops_scalar(k);
    fill_ssm_scalar(k);
#if defined(__x86_64__)
    // avx_vnni is AVX2 plus 256-bit VNNI; the AVX-512 rungs include everything AVX2 has.
    if (isa == Isa::avx2 || isa == Isa::avx_vnni || isa == Isa::avx512 || isa == Isa::avx512_vnni ||
        isa == Isa::avx512_amx) {
        fill_quant_avx2(k);
        fill_gemm_avx2(k);
        fill_ops_avx2(k);
        fill_attention_avx2(k);
        fill_ssm_avx2(k);
    }
    if (isa == Isa::avx_vnni) fill_gemm_avx_vnni(k);
    if (isa == Isa::avx512 || isa == Isa::avx512_vnni || isa == Isa::avx512_amx) {
        fill_quant_avx512(k);
        fill_gemm_avx512(k);
        fill_ops_avx512(k);
        fill_attention_avx512(k);
        fill_ssm_avx512(k);
    }
    if (isa == Isa::avx512_vnni || isa == Isa::avx512_amx) fill_gemm_avx512_vnni(k);
    if (isa == Isa::avx512_amx) fill_gemm_avx512_amx(k);  // AMX panels for Q4_0 / Q4_K prefill
#endif
#if defined(__aarch64__)
    if (isa == Isa::neon || isa == Isa::neon_dotprod || isa == Isa::neon_i8mm) {
        fill_quant_neon(k);
        fill_gemm_neon(k);
        fill_ops_neon(k);
        fill_attention_neon(k);
        fill_ssm_neon(k);
    }
    if (isa == Isa::neon_dotprod || isa == Isa::neon_i8mm) fill_gemm_neon_dotprod(k);
    if (isa == Isa::neon_i8mm) fill_gemm_neon_i8mm(k);
#endif
    return k;
}

struct State {
    Kernels tables[kNumIsas];
    std::atomic<int> current{0};
    State() {
        for (int i = 0; i < kNumIsas; ++i)
            if (isa_supported(static_cast<Isa>(i))) tables[i] = build_table(static_cast<Isa>(i));
        Isa chosen = best_isa();
        if (const char* env = std::getenv("SLMK_ISA"); env && *env) {
            Isa forced;
            std::string valid;  // the names this CPU can run, best first: the one-line error lists them
            for (Isa i : supported_isas()) valid += (valid.empty() ? "" : ", ") + std::string(isa_name(i));
            if (!isa_from_name(env, &forced))
                throw std::invalid_argument(std::string("SLMK_ISA=") + env + " is not a known ISA name (this CPU runs: " +
                                            valid + ")");
            if (!isa_supported(forced))
                throw std::invalid_argument(std::string("SLMK_ISA=") + env +
                                            " asks for an ISA this CPU cannot run (this CPU runs: " + valid + ")");
            chosen = forced;
        }
        current.store(static_cast<int>(chosen));
    }
};

State& state() {
    static State s;
    return s;
}

}  // namespace

const char* isa_name(Isa isa) { return kIsaNames[static_cast<int>(isa)]; }

bool isa_from_name(const std::string& name, Isa* out) {
    for (int i = 0; i < kNumIsas; ++i)
        if (name == kIsaNames[i]) {
            *out = static_cast<Isa>(i);
            return true;
        }
    return false;
}

bool isa_supported(Isa isa) {
    const CpuFeatures& f = cpu_features();
    const bool avx2 = f.avx2 && f.fma && f.f16c && f.bmi2;
    const bool avx512 = avx2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq;
    switch (isa) {
        case Isa::scalar: return true;
#if defined(__x86_64__)
        case Isa::avx2: return avx2;
        case Isa::avx_vnni: return avx2 && f.avxvnni;
        case Isa::avx512: return avx512;
        case Isa::avx512_vnni: return avx512 && f.avx512vnni;
        case Isa::avx512_amx: return avx512 && f.avx512vnni && f.amx_int8;
#endif
#if defined(__aarch64__)
        case Isa::neon: return f.neon;
        case Isa::neon_dotprod: return f.neon && f.dotprod;
        case Isa::neon_i8mm: return f.neon && f.dotprod && f.i8mm;
#endif
        default: return false;
    }
}

std::vector<Isa> supported_isas() {
    static const Isa ladder[] = {Isa::avx512_amx, Isa::avx512_vnni, Isa::avx512,       Isa::avx_vnni, Isa::avx2,
                                 Isa::neon_i8mm,   Isa::neon_dotprod, Isa::neon,     Isa::scalar};
    std::vector<Isa> out;
    for (Isa i : ladder)
        if (isa_supported(i)) out.push_back(i);
    return out;
}

Isa best_isa() { return supported_isas().front(); }

Isa current_isa() { return static_cast<Isa>(state().current.load(std::memory_order_relaxed)); }

void set_isa(Isa isa) {
    if (!isa_supported(isa))
        throw std::invalid_argument(std::string("ISA '") + isa_name(isa) +
                                    "' is not supported by this CPU");
    state().current.store(static_cast<int>(isa));
}

const Kernels& kernels() {
    State& s = state();
    return s.tables[s.current.load(std::memory_order_relaxed)];
}

const Kernels& kernels_for(Isa isa) {
    if (!isa_supported(isa))
        throw std::invalid_argument(std::string("ISA '") + isa_name(isa) +
                                    "' is not supported by this CPU");
    return state().tables[static_cast<int>(isa)];
}

}  // namespace slmk
