// ---- CPU feature detection ----
// x86: CPUID leaves 1 and 7 name the instructions, XGETBV(0) says whether the OS saves
// the YMM (bits 1,2) and ZMM/opmask (bits 5,6,7) state; a feature counts only with both
// (Intel SDM vol. 1, 13.3 and 15.2). aarch64 Linux: the kernel's HWCAP bits.
#include "cpu_features.h"

#include "common.h"

#if defined(SLMK_X86)
#include <cpuid.h>
#endif
#if defined(SLMK_X86) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(SLMK_ARM64) && defined(__linux__)
#include <sys/auxv.h>
#endif

namespace slmk {

namespace {

#if defined(SLMK_X86)
unsigned long long read_xcr0() {
    unsigned int eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (static_cast<unsigned long long>(edx) << 32) | eax;
}

// Linux hands out the (8 KB) tile-data state only to a process that asks for it; without the
// permission the first tile instruction faults. Other OSes: assume XCR0 is the whole story.
bool request_amx_permission() {
#if defined(__linux__)
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
    return true;
#endif
}

CpuFeatures detect() {
    CpuFeatures f;
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    f.sse42 = (c >> 20) & 1;
    const bool osxsave = (c >> 27) & 1;
    const bool cpu_avx = (c >> 28) & 1, cpu_fma = (c >> 12) & 1, cpu_f16c = (c >> 29) & 1;
    unsigned long long xcr0 = osxsave ? read_xcr0() : 0;
    const bool os_ymm = (xcr0 & 0x6) == 0x6;
    const bool os_zmm = os_ymm && (xcr0 & 0xe0) == 0xe0;
    f.avx = cpu_avx && os_ymm;
    f.fma = f.avx && cpu_fma;
    f.f16c = f.avx && cpu_f16c;
    unsigned int max_leaf = __get_cpuid_max(0, nullptr);
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        f.avx2 = f.avx && ((b >> 5) & 1);
        f.bmi2 = (b >> 8) & 1;
        f.avx512f = os_zmm && ((b >> 16) & 1);
        f.avx512dq = f.avx512f && ((b >> 17) & 1);
        f.avx512bw = f.avx512f && ((b >> 30) & 1);
        f.avx512vl = f.avx512f && ((b >> 31) & 1);
        f.avx512vnni = f.avx512f && ((c >> 11) & 1);
        // CPUID.7.0:EDX bit 24 = AMX-TILE, bit 25 = AMX-INT8 (bit 22 = AMX-BF16)
        const bool cpu_amx = ((d >> 24) & 1) && ((d >> 25) & 1);
        __cpuid_count(7, 1, a, b, c, d);
        f.avxvnni = f.avx2 && ((a >> 4) & 1);
        const bool os_tiles = (xcr0 & (3ull << 17)) == (3ull << 17);  // XTILECFG | XTILEDATA
        f.amx_int8 = f.avx512f && cpu_amx && os_tiles && request_amx_permission();
    }
    return f;
}
#elif defined(SLMK_ARM64)
CpuFeatures detect() {
    CpuFeatures f;
    f.neon = true;  // Advanced SIMD is mandatory in AArch64
#if defined(__linux__)
    // Bit positions from linux/arch/arm64/include/uapi/asm/hwcap.h
    const unsigned long hw = getauxval(AT_HWCAP);
    const unsigned long hw2 = getauxval(AT_HWCAP2);
    f.fp16 = (hw >> 9) & 1 && (hw >> 10) & 1;  // HWCAP_FPHP | HWCAP_ASIMDHP
    f.dotprod = (hw >> 20) & 1;                // HWCAP_ASIMDDP
    f.i8mm = (hw2 >> 13) & 1;                  // HWCAP2_I8MM
#elif defined(__APPLE__)
    f.fp16 = f.dotprod = true;  // every Apple arm64 core has them
#endif
    return f;
}
#else
CpuFeatures detect() { return CpuFeatures{}; }
#endif

}  // namespace

const CpuFeatures& cpu_features() {
    static const CpuFeatures f = detect();
    return f;
}

std::string arch_name() {
#if defined(SLMK_X86)
    return "x86_64";
#elif defined(SLMK_ARM64)
    return "aarch64";
#else
    return "unknown";
#endif
}

std::vector<std::string> feature_names() {
    const CpuFeatures& f = cpu_features();
    std::vector<std::string> out;
    const std::pair<bool, const char*> all[] = {
        {f.sse42, "sse4.2"},     {f.avx, "avx"},          {f.avx2, "avx2"},
        {f.fma, "fma"},          {f.f16c, "f16c"},        {f.bmi2, "bmi2"},
        {f.avx512f, "avx512f"},  {f.avx512bw, "avx512bw"}, {f.avx512vl, "avx512vl"},
        {f.avx512dq, "avx512dq"}, {f.avx512vnni, "avx512vnni"}, {f.avxvnni, "avxvnni"},
        {f.amx_int8, "amx_int8"},
        {f.neon, "neon"},        {f.dotprod, "dotprod"},  {f.i8mm, "i8mm"},
        {f.fp16, "fp16"},
    };
    for (const auto& [on, name] : all)
        if (on) out.emplace_back(name);
    return out;
}

}  // namespace slmk
