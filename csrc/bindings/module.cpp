// ---- slmkernels._core: the one extension module ----
#include "bindings.h"
#include "core/registry.h"

PYBIND11_MODULE(_core, m) {
    m.doc() = "slmkernels C++ core: quantized GGUF formats and CPU kernels, dispatched at run time";
    // Detect the CPU and apply SLMK_ISA now, so a bad override fails the import with a clear
    // message instead of surfacing at the first kernel call.
    slmk::current_isa();
    slmk::bind_core(m);
    slmk::bind_quant(m);
    slmk::bind_gemm(m);
    slmk::bind_bench(m);
    slmk::bind_attention(m);
    slmk::bind_kvcache(m);
    slmk::bind_ops(m);
    slmk::bind_model(m);
    slmk::bind_sample(m);
    slmk::bind_ssm(m);
    slmk::bind_act(m);
}
