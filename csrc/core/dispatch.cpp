// ---- the one dispatch site: one kernel table per ISA, built from the registry ----
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <tuple>

#include "registry.h"

namespace slmk {

namespace {

const char* const kOpNames[kNumOps] = {
    "quantize", "dequantize", "act_quant", "gemm",      "gemm_panel",     "attn_chunk", "rmsnorm",    "swiglu",
    "geglu",    "reglu",      "ssm_conv",   "ssm_scan",  "ssm_gram",  "ssm_chunk", "ssm_gated_norm", "probe_read", "probe_int8",
    "probe_fp32"};

std::string generated_name(const KernelEntry& e, Isa isa) {
    std::string n = op_name(e.op);
    if (e.format != kNoFormat) n += std::string("_") + format_info(e.format).name;
    if (e.tile.rows) n += "_" + std::to_string(e.tile.rows) + "x" + std::to_string(e.tile.cols);
    return n + "_" + isa_name(isa);
}

struct Registry {
    std::vector<Kernel> kernels;
    KernelTable tables[kNumIsas];
    std::atomic<int> current{0};

    Registry() {
        for (const KernelList* l : linked_kernel_lists())
            for (const KernelEntry* e = l->entries; e != l->entries + l->count; ++e)
                kernels.push_back({*e, l->isa, generated_name(*e, l->isa)});
        // listed by op, then format, then rung (the ladder's order), so a listing reads each op's
        // scalar twin first and its fastest variant last
        auto key = [](const Kernel& k) {
            return std::make_tuple(static_cast<int>(k.e.op), static_cast<int>(k.e.format), static_cast<int>(k.isa));
        };
        std::sort(kernels.begin(), kernels.end(), [&](const Kernel& a, const Kernel& b) { return key(a) < key(b); });
        for (size_t i = 1; i < kernels.size(); ++i)
            if (key(kernels[i - 1]) == key(kernels[i]))
                throw std::logic_error("kernel registry: two entries named " + kernels[i].name);
        for (int i = 0; i < kNumIsas; ++i) {
            const Isa isa = static_cast<Isa>(i);
            if (!isa_supported(isa)) continue;
            KernelTable& t = tables[i];
            t.isa = isa;
            for (Isa rung : isa_ladder(isa))  // scalar first: each rung replaces what it inherits
                for (const Kernel& k : kernels)
                    if (k.isa == rung) t.at[static_cast<int>(k.e.op)][static_cast<int>(k.e.format)] = &k;
        }
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

Registry& registry() {
    static Registry r;
    return r;
}

void require_supported(Isa isa) {
    if (!isa_supported(isa))
        throw std::invalid_argument(std::string("ISA '") + isa_name(isa) + "' is not supported by this CPU");
}

}  // namespace

const char* op_name(Op op) { return kOpNames[static_cast<int>(op)]; }

bool op_from_name(const std::string& name, Op* out) {
    for (int i = 0; i < kNumOps; ++i)
        if (name == kOpNames[i]) {
            *out = static_cast<Op>(i);
            return true;
        }
    return false;
}

const std::vector<Kernel>& all_kernels() { return registry().kernels; }

Isa current_isa() { return static_cast<Isa>(registry().current.load(std::memory_order_relaxed)); }

void set_isa(Isa isa) {
    require_supported(isa);
    registry().current.store(static_cast<int>(isa));
}

const KernelTable& kernels() {
    Registry& r = registry();
    return r.tables[r.current.load(std::memory_order_relaxed)];
}

const KernelTable& kernels_for(Isa isa) {
    require_supported(isa);
    return registry().tables[static_cast<int>(isa)];
}

}  // namespace slmk
