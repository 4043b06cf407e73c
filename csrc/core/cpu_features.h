// ---- CPU feature detection (run once, cached) ----
#pragma once
#include <string>
#include <vector>

namespace slmk {

struct CpuFeatures {
    // x86-64; the wide-register bits are only set when the OS saves those registers (XGETBV).
    bool sse42 = false, avx = false, avx2 = false, fma = false, f16c = false, bmi2 = false;
    bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
    bool avx512vnni = false, avxvnni = false;
    // AMX-INT8 tiles: CPUID + XCR0 (XTILECFG/XTILEDATA) + on Linux the kernel's permission for
    // the tile state (arch_prctl ARCH_REQ_XCOMP_PERM, asked once at detection, process-wide).
    bool amx_int8 = false;
    // aarch64
    bool neon = false, dotprod = false, i8mm = false, fp16 = false;
};

// Detected once, on first use; never changes afterwards.
const CpuFeatures& cpu_features();
std::string arch_name();                  // "x86_64", "aarch64" or "unknown"
std::vector<std::string> feature_names(); // the detected features, by name

}  // namespace slmk
