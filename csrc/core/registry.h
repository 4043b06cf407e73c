// ---- the kernel registry: kernels declare themselves as data, the dispatcher assembles tables ----
// A kernel is one KernelEntry: what it computes (op, format), its tile shape, its function.
// Each per-ISA source file ends with a function returning its entries, all for that file's ISA
// (a KernelList); kernel_lists.cpp names those functions, once each. The dispatcher
// (dispatch.cpp) walks the ISA ladder (isa.h) from scalar up to each rung the CPU runs, each
// rung's entries replacing what it inherited, into one KernelTable per ISA: the hot paths index
// that table by (op, format). Entry names are generated from the fields, never typed.
// How to add a kernel or a new kind of op: see the registry note in the README's layout section.
#pragma once
#include <array>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "dtype.h"
#include "isa.h"

namespace slmk {

// What a kernel computes. The function type of each op is declared by its area (OpFn below), so
// core knows the names of the op kinds, nothing of their signatures.
enum class Op : int {
    quantize, dequantize,                // quant/formats.h: one row to / from a block format
    act_quant,                           // gemm/gemm.h: activation rows to int8 blocks (Q8_0: 32s, Q8_K: 256s)
    gemm, gemm_panel,                    // gemm/gemm.h: a 16-row weight group x up to 4 / many activation rows
    attn_chunk,                          // attention/attention.h: one chunk of cached keys, online softmax
    rmsnorm, swiglu, geglu, reglu,       // ops/ops.h: one row
    ssm_conv, ssm_scan, ssm_gram,        // ssm/ssm.h: Mamba-2 causal conv1d, token-by-token scan, chunk gram,
    ssm_chunk, ssm_gated_norm,           //   chunked scan, gated RMSNorm
    probe_read, probe_int8, probe_fp32,  // core/probe.h: the machine's limits, for the benchmarks
    COUNT
};
constexpr int kNumOps = static_cast<int>(Op::COUNT);
const char* op_name(Op op);
bool op_from_name(const std::string& name, Op* out);

// The function type of an op: its area specializes this beside the op's contract, e.g.
//   template <> struct OpFn<Op::gemm> { using type = gemm_tile_fn; };
template <Op O>
struct OpFn;

constexpr Format kNoFormat = Format::COUNT;  // an op that has no format (the probes)
constexpr int kFormatSlots = kNumFormats + 1;

// rows x cols: weight rows x activation rows one call computes (GEMM tiles 16 x 4, panels 16 x up
// to 128); min_m: the fewest activation rows the driver hands a panel; k_chunk: K elements a
// panel takes per pass (tests aim a partial last chunk at it). 0: not applicable.
struct Tile {
    int rows = 0, cols = 0, min_m = 0, k_chunk = 0;
};

// An entry is constant data (constexpr): building the registry reads every list, also those of
// ISAs this CPU cannot run, so it must not execute a line compiled for them. Hence the function
// is held as the address of a typed constant (FnConst), never converted by code.
template <class T, T V>
struct FnConst {
    static constexpr T value = V;
};

struct KernelEntry {
    Op op = Op::COUNT;
    Format format = kNoFormat;
    Tile tile;
    const void* fn = nullptr;  // -> a constant of type OpFn<op>::type
};

// The only way to make an entry: the function's type is the op's (OpFn), checked here.
//   entry<Op::gemm, my_tile>(Format::Q4_0, {16, 4})      entry<Op::probe_read, my_probe>()
template <Op O, typename OpFn<O>::type F>
static constexpr KernelEntry entry(Format f = kNoFormat, Tile tile = {}) {
    return {O, f, tile, &FnConst<typename OpFn<O>::type, F>::value};
}

// Concatenates entry arrays at compile time (a file's own entries + a shared header's).
template <size_t A, size_t B>
static constexpr std::array<KernelEntry, A + B> join(const std::array<KernelEntry, A>& a,
                                                     const std::array<KernelEntry, B>& b) {
    std::array<KernelEntry, A + B> out{};
    for (size_t i = 0; i < A; ++i) out[i] = a[i];
    for (size_t i = 0; i < B; ++i) out[A + i] = b[i];
    return out;
}

// One source file's entries, all for one ISA. A file defines its list as
//   extern constexpr KernelList kernels_gemm_avx2{Isa::avx2, kEntries.data(), kEntries.size()};
// and kernel_lists.cpp names it.
struct KernelList {
    Isa isa;
    const KernelEntry* entries;
    size_t count;
};
std::vector<const KernelList*> linked_kernel_lists();  // kernel_lists.cpp

// An entry as the registry keeps it.
struct Kernel {
    KernelEntry e;
    Isa isa;
    std::string name;  // op[_format][_RxC]_isa, e.g. gemm_q4_0_16x4_avx2
};
const std::vector<Kernel>& all_kernels();  // every entry of this build, by op, format, then rung

// One entry's function, by the op's type (tests run entries one by one this way).
template <Op O>
typename OpFn<O>::type kernel_fn(const Kernel& k) {
    if (k.e.op != O) throw std::logic_error(k.name + " is not an entry of the op asked for");
    return *static_cast<const typename OpFn<O>::type*>(k.e.fn);
}

// One ISA's table: for each (op, format), the entry that runs (its own, or inherited).
struct KernelTable {
    Isa isa = Isa::scalar;
    const Kernel* at[kNumOps][kFormatSlots] = {};  // null: no kernel

    const Kernel* find(Op op, Format f = kNoFormat) const { return at[static_cast<int>(op)][static_cast<int>(f)]; }
    template <Op O>
    typename OpFn<O>::type get(Format f = kNoFormat) const {
        const Kernel* k = at[static_cast<int>(O)][static_cast<int>(f)];
        return k ? *static_cast<const typename OpFn<O>::type*>(k->e.fn) : nullptr;
    }
};

// Base of each area's slice of a table (GemmKernels, QuantKernels, ...): typed accessors for
// that area's ops. Built implicitly from a table, so a driver taking its slice accepts a table.
struct TableSlice {
    const KernelTable* t;
    TableSlice(const KernelTable& table) : t(&table) {}
};

// ---- the dispatch site ----
// The ISA in use is the best this CPU runs, unless SLMK_ISA (read once, at first use) or
// set_isa() forces another; asking for one the CPU lacks is an error, never a silent fallback.
Isa current_isa();
void set_isa(Isa isa);                     // throws std::invalid_argument if unsupported
const KernelTable& kernels();              // the table of the ISA in use
const KernelTable& kernels_for(Isa isa);   // any supported ISA's table (tests, bench)

}  // namespace slmk
