// ---- CPU features, the ISA ladder and the kernel registry, ISA selection, threads ----
#include <pybind11/stl.h>

#include <cstring>
#include <vector>

#include "bindings.h"
#include "core/cpu_features.h"
#include "core/isa.h"
#include "core/registry.h"
#include "core/thread_pool.h"

namespace slmk {

namespace {

py::list isa_list() {
    py::list out;
    for (Isa i : supported_isas()) out.append(isa_name(i));
    return out;
}

py::list isa_table() {
    py::list out;
    for (int i = 0; i < kNumIsas; ++i) {
        const Isa isa = static_cast<Isa>(i);
        const IsaInfo& info = isa_info(isa);
        py::dict d;
        d["name"] = info.name;
        d["parent"] = isa == Isa::scalar ? py::object(py::none()) : py::object(py::str(isa_name(info.parent)));
        d["needs"] = py::str(info.needs).attr("split")();
        d["supported"] = isa_supported(isa);
        out.append(d);
    }
    return out;
}

py::list kernel_list() {
    const KernelTable& now = kernels();
    py::list out;
    for (const Kernel& k : all_kernels()) {
        py::dict d;
        d["op"] = op_name(k.e.op);
        d["format"] = k.e.format == kNoFormat ? py::object(py::none()) : py::object(py::str(format_info(k.e.format).name));
        d["isa"] = isa_name(k.isa);
        d["tile"] = k.e.tile.rows ? py::object(py::make_tuple(k.e.tile.rows, k.e.tile.cols)) : py::object(py::none());
        d["min_m"] = k.e.tile.min_m;
        d["k_chunk"] = k.e.tile.k_chunk;
        d["name"] = k.name;
        d["active"] = now.find(k.e.op, k.e.format) == &k;
        out.append(d);
    }
    return out;
}

}  // namespace

int64_t int_arg(const py::handle& v, const char* name) {
    if (!py::isinstance<py::int_>(v) || py::isinstance<py::bool_>(v))
        throw py::type_error(std::string(name) + " must be an int, got " +
                             std::string(py::str(py::type::of(v).attr("__name__"))));
    int overflow = 0;
    const long long x = PyLong_AsLongLongAndOverflow(v.ptr(), &overflow);
    if (overflow != 0) throw py::value_error(std::string(name) + " = " + std::string(py::str(v)) + " does not fit in 64 bits");
    if (x == -1 && PyErr_Occurred()) throw py::error_already_set();
    return x;
}

double float_arg(const py::handle& v, const char* name) {
    if (!(py::isinstance<py::float_>(v) || py::isinstance<py::int_>(v)) || py::isinstance<py::bool_>(v))
        throw py::type_error(std::string(name) + " must be a number, got " +
                             std::string(py::str(py::type::of(v).attr("__name__"))));
    const double x = PyFloat_AsDouble(v.ptr());  // an int too large for a double raises OverflowError
    if (x == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        throw py::value_error(std::string(name) + " is too large for a float");
    }
    return x;
}

void bind_core(py::module_& m) {
    m.def(
        "cpu_info",
        [] {
            py::dict d;
            d["arch"] = arch_name();
            d["features"] = feature_names();
            d["isa"] = isa_name(current_isa());
            d["best_isa"] = isa_name(best_isa());
            d["supported_isas"] = isa_list();
            d["num_threads"] = get_num_threads();
            d["physical_cores"] = physical_cores();
            return d;
        },
        "Architecture, detected CPU features, the ISA in use, and every ISA this machine can run (best first).");
    m.def("isas", &isa_table,
          "The ISA ladder, as the dispatcher reads it: one dict per ISA (name, parent rung, the CPU features it "
          "needs beyond its parent's, supported by this CPU), lowest rung first.");
    m.def("kernels", &kernel_list,
          "Every kernel of this build, one dict each: op, format (None for probes), isa, tile (weight rows, "
          "activation rows) or None, min_m and k_chunk (panels; else 0), name, and active: whether it is the one "
          "that runs for its op and format under the ISA in use.");
    m.def("get_isa", [] { return std::string(isa_name(current_isa())); }, "Name of the ISA whose kernels run now.");
    m.def(
        "set_isa",
        [](const std::string& name) {
            Isa isa;
            if (!isa_from_name(name, &isa)) throw py::value_error("unknown ISA name '" + name + "'");
            if (!isa_supported(isa)) {
                std::string avail;
                for (Isa i : supported_isas()) avail += std::string(avail.empty() ? "" : ", ") + isa_name(i);
                throw py::value_error("ISA '" + name + "' is not supported by this CPU (supported: " + avail + ")");
            }
            set_isa(isa);
        },
        py::arg("isa"),
        "Force the kernels of one ISA (a name from cpu_info()['supported_isas']); same as SLMK_ISA at import.");
    m.def("get_num_threads", &get_num_threads, "Threads the kernels use.");
    m.def(
        "set_num_threads",
        [](py::handle n) {
            const int64_t v = int_arg(n, "num_threads");
            if (v < 1 || v > 1024) throw py::value_error("num_threads must be in 1..1024, got " + std::to_string(v));
            py::gil_scoped_release rel;
            set_num_threads(static_cast<int>(v));
        },
        py::arg("n"), "Set the number of threads (>= 1) the kernels use; results do not depend on it.");
}

}  // namespace slmk
