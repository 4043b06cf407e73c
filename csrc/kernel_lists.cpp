// ---- every kernel list linked into this build: one name per per-ISA source file ----
// A source file's list (its entries, at the end of the file) reaches the registry only by being
// named here; CMakeLists.txt compiles the same files with their ISA's flags.
#include "core/registry.h"

#define SLMK_SCALAR_LISTS(X) \
    X(probe_scalar) X(quant_scalar) X(gemm_scalar) X(attention_scalar) X(ops_scalar) X(ssm_scalar)
#if defined(__x86_64__)
#define SLMK_ARCH_LISTS(X)                                                                                        \
    X(probe_avx2) X(probe_avx_vnni) X(probe_avx512) X(probe_avx512_vnni) X(probe_avx512_amx)                     \
    X(quant_avx2) X(quant_avx512)                                                                                 \
    X(gemm_avx2) X(gemm_avx_vnni) X(gemm_avx512) X(gemm_avx512_vnni) X(gemm_avx512_amx)                          \
    X(attention_avx2) X(attention_avx512)                                                                         \
    X(ops_avx2) X(ops_avx512)                                                                                     \
    X(ssm_avx2) X(ssm_avx512)
#elif defined(__aarch64__)
#define SLMK_ARCH_LISTS(X)                                                                                        \
    X(probe_neon) X(probe_neon_dotprod)                                                                           \
    X(quant_neon)                                                                                                 \
    X(gemm_neon) X(gemm_neon_dotprod) X(gemm_neon_i8mm)                                                           \
    X(attention_neon)                                                                                             \
    X(ops_neon)                                                                                                   \
    X(ssm_neon)
#else
#define SLMK_ARCH_LISTS(X)
#endif

namespace slmk {

#define SLMK_DECLARE(name) extern const KernelList kernels_##name;
SLMK_SCALAR_LISTS(SLMK_DECLARE)
SLMK_ARCH_LISTS(SLMK_DECLARE)
#undef SLMK_DECLARE

std::vector<const KernelList*> linked_kernel_lists() {
#define SLMK_ADDRESS(name) &kernels_##name,
    return {SLMK_SCALAR_LISTS(SLMK_ADDRESS) SLMK_ARCH_LISTS(SLMK_ADDRESS)};
#undef SLMK_ADDRESS
}

}  // namespace slmk
