// ---- rope ----
#include <pybind11/stl.h>

#include <cmath>

#include "attention/rope.h"
#include "bindings.h"

namespace slmk {

namespace {

double get_num(const py::dict& d, const char* key, double dflt, bool required) {
    if (!d.contains(key)) {
        if (required) throw py::value_error(std::string("scaling needs '") + key + "'");
        return dflt;
    }
    py::handle v = d[key];
    if (!(py::isinstance<py::float_>(v) || py::isinstance<py::int_>(v)) || py::isinstance<py::bool_>(v))
        throw py::type_error(std::string("scaling['") + key + "'] must be a number");
    const double x = v.cast<double>();
    if (!std::isfinite(x)) throw py::value_error(std::string("scaling['") + key + "'] must be finite");
    return x;
}

}  // namespace

void bind_attention(py::module_& m) {
    m.def(
        "rope",
        [](py::handle x, py::handle positions, double theta, const std::string& mode, py::object rotary_dim,
           py::object scaling, py::object freq_factors, py::object out) {
            ArrayKind xk;
            auto xa = require_f32(x, "x", &xk);
            if (xa.ndim() != 3) throw py::value_error("x must be 3-D (tokens, heads, head_dim)");
            const int64_t T = xa.shape(0), H = xa.shape(1), D = xa.shape(2);
            if (H == 0 || D == 0) throw py::value_error("x must not be empty: (tokens, heads >= 1, head_dim >= 2)");
            if (!py::isinstance<py::array>(positions) && !py::hasattr(positions, "__dlpack__"))
                throw py::type_error("positions must be an integer ndarray (or torch tensor)");
            ElemType pe;
            bool ptorch;
            py::array pa = as_array(positions, "positions", &pe, &ptorch);
            if (pa.dtype().kind() != 'i' && pa.dtype().kind() != 'u')
                throw py::type_error("positions must have an integer dtype, got " + std::string(py::str(pa.dtype())));
            if (pa.ndim() != 1 || pa.shape(0) != T)
                throw py::value_error("positions must be 1-D with one position per token (" + std::to_string(T) + ")");
            auto pos = py::array_t<int64_t, py::array::c_style | py::array::forcecast | kNpyAligned>::ensure(pa);
            RopeSpec spec;
            if (!(theta > 0) || !std::isfinite(theta)) throw py::value_error("theta must be a positive number");
            spec.base = theta;
            if (mode == "normal") spec.mode = RopeMode::Normal;
            else if (mode == "neox") spec.mode = RopeMode::Neox;
            else throw py::value_error("mode must be 'normal' or 'neox', got '" + mode + "'");
            const int64_t rd = rotary_dim.is_none() ? D : int_arg(rotary_dim, "rotary_dim");
            if (rd <= 0 || rd > D || rd % 2)
                throw py::value_error("rotary_dim must be even and in 2..head_dim (" + std::to_string(D) + ")");
            spec.rotary_dim = static_cast<int>(rd);
            if (!scaling.is_none()) {
                if (!py::isinstance<py::dict>(scaling)) throw py::type_error("scaling must be a dict with a 'type'");
                py::dict sd = scaling.cast<py::dict>();
                if (!sd.contains("type")) throw py::value_error("scaling needs a 'type': 'linear', 'yarn' or 'llama3'");
                const std::string type = py::str(sd["type"]);
                spec.factor = get_num(sd, "factor", 1.0, true);
                if (!(spec.factor > 0)) throw py::value_error("scaling['factor'] must be > 0");
                if (type == "linear") {
                    spec.scaling = RopeScaling::Linear;
                } else if (type == "yarn") {
                    spec.scaling = RopeScaling::Yarn;
                    spec.ext_factor = get_num(sd, "ext_factor", 1.0, false);
                    spec.attn_factor = get_num(sd, "attn_factor", 1.0, false);
                    spec.beta_fast = get_num(sd, "beta_fast", 32.0, false);
                    spec.beta_slow = get_num(sd, "beta_slow", 1.0, false);
                    spec.original_context = get_num(sd, "original_context", 0, true);
                    if (!(spec.original_context > 0)) throw py::value_error("scaling['original_context'] must be > 0");
                    if (!(spec.attn_factor > 0)) throw py::value_error("scaling['attn_factor'] must be > 0");
                } else if (type == "llama3") {
                    spec.scaling = RopeScaling::Llama3;
                    spec.low_freq_factor = get_num(sd, "low_freq_factor", 1.0, true);
                    spec.high_freq_factor = get_num(sd, "high_freq_factor", 4.0, true);
                    spec.original_context = get_num(sd, "original_context", 8192, true);
                    if (!(spec.high_freq_factor > spec.low_freq_factor) || !(spec.low_freq_factor > 0) ||
                        !(spec.original_context > 0))
                        throw py::value_error("llama3 scaling needs high_freq_factor > low_freq_factor > 0 and original_context > 0");
                } else {
                    throw py::value_error("unknown scaling type '" + type + "'; use 'linear', 'yarn' or 'llama3'");
                }
            }
            if (!freq_factors.is_none()) {
                auto fa = py::array_t<double, py::array::c_style | py::array::forcecast | kNpyAligned>::ensure(freq_factors);
                if (!fa || fa.ndim() != 1 || fa.shape(0) != spec.rotary_dim / 2)
                    throw py::value_error("freq_factors must be 1-D with rotary_dim/2 (" + std::to_string(spec.rotary_dim / 2) +
                                          ") values");
                for (int i = 0; i < spec.rotary_dim / 2; ++i) {
                    const double f = fa.at(i);
                    if (!(f > 0) || !std::isfinite(f)) throw py::value_error("freq_factors must be positive and finite");
                    spec.freq_factors.push_back(f);
                }
            }
            const RopeConfig cfg = rope_config(spec, 0);
            OutArg o;
            if (out.is_none()) {
                o.f32 = py::array_t<float, py::array::c_style>({T, H, D});
            } else {
                o = take_out(out, "out");
                auto& oa = o.f32;
                if (oa.ndim() != 3 || oa.shape(0) != T || oa.shape(1) != H || oa.shape(2) != D)
                    throw py::value_error("out must have the shape of x");
                if (!oa.writeable()) throw py::value_error("out must be writeable");
                const float* o0 = oa.data();
                const float* x0 = xa.data();
                if (o0 != x0 && o0 < x0 + T * H * D && x0 < o0 + T * H * D)
                    throw py::value_error("out must be x itself or not overlap it");
            }
            auto table = rope_table(cfg);
            const float* xp = xa.data();
            float* op = o.f32.mutable_data();
            const int64_t* pp = pos.data();
            {
                py::gil_scoped_release rel;
                rope_apply(*table, xp, op, T, H, D, pp);
            }
            if (out.is_none()) return as_result(o.f32, xk);
            o.commit();
            return o.caller;
        },
        py::arg("x"), py::arg("positions"), py::kw_only(), py::arg("theta"), py::arg("mode"),
        py::arg("rotary_dim") = py::none(), py::arg("scaling") = py::none(), py::arg("freq_factors") = py::none(),
        py::arg("out") = py::none(),
        "Rotary position embedding of x (tokens, heads, head_dim) float32 at `positions`.\n"
        "mode 'normal' rotates pairs (2i, 2i+1) (GGUF llama), 'neox' pairs (i, i+rot/2) (HF).\n"
        "scaling: {'type': 'linear', 'factor'} | {'type': 'yarn', 'factor', 'original_context', 'ext_factor'=1,\n"
        "'attn_factor'=1, 'beta_fast'=32, 'beta_slow'=1} | {'type': 'llama3', 'factor', 'low_freq_factor',\n"
        "'high_freq_factor', 'original_context'}; freq_factors: per-pair divisors (rotary_dim/2,).");
}

}  // namespace slmk
