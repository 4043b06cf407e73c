// ---- the kernel table: every dispatched kernel, one function pointer each ----
// Each ISA file fills in the entries it implements (fill_<area>_<isa>); the dispatch site
// (dispatch.cpp) builds one table per ISA by applying the fills in ladder order, so an entry
// a faster ISA does not implement falls back to the next lower one, ending at the scalar twin.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "../quant/formats.h"

namespace slmk {

enum class Isa : int {
    scalar = 0,
    avx2, avx_vnni, avx512, avx512_vnni,  // x86-64
    neon, neon_dotprod, neon_i8mm,        // aarch64
    COUNT
};
constexpr int kNumIsas = static_cast<int>(Isa::COUNT);

// Quantize / dequantize one contiguous run of n elements (n a multiple of the block size).
using quantize_row_fn = void (*)(const float* x, uint8_t* y, int64_t n);
using dequantize_row_fn = void (*)(const uint8_t* x, float* y, int64_t n);

struct QuantKernels {
    quantize_row_fn quantize = nullptr;
    dequantize_row_fn dequantize = nullptr;
    const char* quantize_name = "";
    const char* dequantize_name = "";
};

struct Kernels {
    Isa isa = Isa::scalar;
    QuantKernels quant[kNumFormats];
};

// Per-ISA fills. Only the ones for the target architecture are compiled and called.
void fill_quant_scalar(Kernels& k);
#if defined(__x86_64__)
void fill_quant_avx2(Kernels& k);
void fill_quant_avx512(Kernels& k);
#endif
#if defined(__aarch64__)
void fill_quant_neon(Kernels& k);
#endif

// ---- the dispatch site (dispatch.cpp) ----
const char* isa_name(Isa isa);
bool isa_from_name(const std::string& name, Isa* out);
bool isa_supported(Isa isa);               // this CPU (and OS) can run it
std::vector<Isa> supported_isas();         // best first
Isa best_isa();
Isa current_isa();
void set_isa(Isa isa);                     // throws std::invalid_argument if unsupported
const Kernels& kernels();                  // the table of the ISA in use
const Kernels& kernels_for(Isa isa);       // any supported ISA's table (tests, bench)

}  // namespace slmk
