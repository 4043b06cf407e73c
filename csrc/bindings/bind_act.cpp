// ---- activation precision of the quantized GEMM/GEMV (gemm_driver.h: ActMode) ----
#include "bindings.h"
#include "gemm/gemm_driver.h"

namespace slmk {

namespace {
const char* const kActNames[] = {"q8", "q8x2", "q8x2-head"};
constexpr int kNumActModes = 3;
}

void bind_act(py::module_& m) {
    m.def("act_modes", [] { return py::make_tuple(kActNames[0], kActNames[1], kActNames[2]); },
          "The activation precisions of the quantized matmul: 'q8' (one int8 plane per block, as "
          "llama.cpp), 'q8x2' (a second int8 plane for the residual: about 16-bit activations) and "
          "'q8x2-head' (the default: q8x2 for a model's output head, q8 for every other matrix).");
    m.def(
        "set_act_mode",
        [](const py::object& mode) {
            if (!py::isinstance<py::str>(mode))
                throw py::type_error("mode must be a str, got " + std::string(py::str(mode.get_type().attr("__name__"))));
            const std::string s = mode.cast<std::string>();
            for (int i = 0; i < kNumActModes; ++i)
                if (s == kActNames[i]) {
                    set_act_mode(static_cast<ActMode>(i));
                    return;
                }
            throw py::value_error("mode must be 'q8', 'q8x2' or 'q8x2-head', got '" + s + "'");
        },
        py::arg("mode"),
        "Sets the activation precision of every quantized matmul that starts after the call (process-wide).");
    m.def("get_act_mode", [] { return std::string(kActNames[static_cast<int>(act_mode())]); });
}

}  // namespace slmk
