// ---- Mamba-2 kernels: ssm_conv1d, ssm_scan, ssm_gated_rmsnorm ----
// Every argument is checked before anything is written; the recurrent state is updated in
// place only by a call that returns normally.
#include <pybind11/stl.h>

#include <cmath>
#include <cstring>
#include <vector>

#include <mutex>
#include <shared_mutex>

#include "bindings.h"
#include "core/registry.h"
#include "gemm/gemm_driver.h"
#include "kvcache/kvcache.h"
#include "ssm/ssm.h"

namespace slmk {

namespace {

using Arr = py::array_t<float, py::array::c_style>;

std::string shape_str(const Arr& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

void want_shape(const Arr& a, const char* name, std::vector<int64_t> shape, const std::string& spelled) {
    bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
    for (size_t i = 0; ok && i < shape.size(); ++i) ok = a.shape(i) == shape[i];
    if (!ok) throw py::value_error(std::string(name) + " must have shape " + spelled + ", got " + shape_str(a));
}

bool overlap(const Arr& a, const Arr& b) {
    const char* a0 = reinterpret_cast<const char*>(a.data());
    const char* b0 = reinterpret_cast<const char*>(b.data());
    return a.nbytes() > 0 && b.nbytes() > 0 && a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes();
}

Arr writable(const py::handle& h, const char* name) {
    Arr a = require_f32_out(h, name);
    if (!a.writeable()) throw py::value_error(std::string(name) + " must be writeable");
    return a;
}

// out: a new array, or the caller's (checked: shape, writeable, no overlap with any input)
Arr output(const py::handle& out, std::vector<int64_t> shape, const std::string& spelled,
           std::initializer_list<const Arr*> inputs) {
    Arr o = out.is_none() ? Arr(std::vector<py::ssize_t>(shape.begin(), shape.end())) : writable(out, "out");
    if (!out.is_none()) want_shape(o, "out", shape, spelled);
    for (const Arr* in : inputs)
        if (overlap(o, *in)) throw py::value_error("out overlaps an input");
    return o;
}

std::string dims(std::initializer_list<int64_t> v) {
    std::string s = "(";
    size_t i = 0;
    for (int64_t x : v) s += (i++ ? ", " : "") + std::to_string(x);
    return s + ")";
}

}  // namespace

void bind_ssm(py::module_& m) {
    m.def(
        "ssm_conv1d",
        [](py::handle x, py::handle state, py::handle w, py::handle b, bool silu, py::handle out) {
            Arr xa = require_f32(x, "x");
            if (xa.ndim() != 2 || xa.shape(0) < 1 || xa.shape(1) < 1)
                throw py::value_error("x must be 2-D (n_tokens >= 1, channels >= 1), got " + shape_str(xa));
            const int64_t T = xa.shape(0), C = xa.shape(1);
            Arr wa = require_f32(w, "w");
            if (wa.ndim() != 2 || wa.shape(0) != C || wa.shape(1) < 2 || wa.shape(1) > 64)
                throw py::value_error("w must have shape (channels=" + std::to_string(C) +
                                      ", K) with 2 <= K <= 64, got " + shape_str(wa));
            const int K = static_cast<int>(wa.shape(1));
            Arr sa = writable(state, "state");
            want_shape(sa, "state", {K - 1, C}, dims({K - 1, C}) + " (the K-1 previous inputs, oldest first)");
            Arr ba;
            if (!b.is_none()) {
                ba = require_f32(b, "b");
                want_shape(ba, "b", {C}, dims({C}));
            }
            if (overlap(sa, xa) || overlap(sa, wa) || (!b.is_none() && overlap(sa, ba)))
                throw py::value_error("state overlaps an input");
            Arr o = output(out, {T, C}, dims({T, C}), {&xa, &wa, &sa});
            if (!b.is_none() && overlap(o, ba)) throw py::value_error("out overlaps an input");
            // the kernel reads taps tap-major: w (C, K) -> (K, C)
            std::vector<float> wt(static_cast<size_t>(K * C));
            for (int64_t c = 0; c < C; ++c)
                for (int j = 0; j < K; ++j) wt[j * C + c] = wa.data()[c * K + j];
            SsmConvArgs a;
            a.x = xa.data();
            a.ldx = C;
            a.state = sa.mutable_data();
            a.w = wt.data();
            a.b = b.is_none() ? nullptr : ba.data();
            a.y = o.mutable_data();
            a.ldy = C;
            a.T = T;
            a.C = C;
            a.K = K;
            a.silu = silu;
            {
                py::gil_scoped_release rel;
                ssm_conv(kernels(), a);
            }
            return o;
        },
        py::arg("x"), py::arg("state"), py::arg("w"), py::arg("b") = py::none(), py::kw_only(),
        py::arg("silu") = true, py::arg("out") = py::none(),
        "Causal depthwise conv1d (Mamba's short convolution) of x (n_tokens, channels) with taps w "
        "(channels, K), after the K-1 inputs in state (K-1, channels), which is then advanced in place.");

    m.def(
        "ssm_scan",
        [](py::handle x, py::handle dt, py::handle A, py::handle B, py::handle C, py::handle D, py::handle dt_bias,
           py::handle state, bool chunked, py::handle out) {
            Arr xa = require_f32(x, "x");
            if (xa.ndim() != 3 || xa.shape(0) < 1 || xa.shape(1) < 1 || xa.shape(2) < 1)
                throw py::value_error("x must be 3-D (n_tokens >= 1, n_heads, head_dim), got " + shape_str(xa));
            const int64_t T = xa.shape(0), nh = xa.shape(1), hd = xa.shape(2);
            if (nh > 4096 || hd > 4096) throw py::value_error("x: n_heads and head_dim must be <= 4096");
            Arr ba = require_f32(B, "B");
            if (ba.ndim() != 3 || ba.shape(0) != T || ba.shape(1) < 1 || ba.shape(2) < 1 || ba.shape(2) > 4096)
                throw py::value_error("B must have shape (n_tokens=" + std::to_string(T) +
                                      ", n_groups, d_state) with 1 <= d_state <= 4096, got " + shape_str(ba));
            const int64_t ng = ba.shape(1), ds = ba.shape(2);
            if (nh % ng != 0)
                throw py::value_error("n_heads (" + std::to_string(nh) + ") must be a multiple of n_groups (" +
                                      std::to_string(ng) + ")");
            Arr ca = require_f32(C, "C");
            want_shape(ca, "C", {T, ng, ds}, dims({T, ng, ds}));
            Arr dta = require_f32(dt, "dt");
            want_shape(dta, "dt", {T, nh}, dims({T, nh}));
            Arr aa = require_f32(A, "A"), da = require_f32(D, "D"), bias = require_f32(dt_bias, "dt_bias");
            want_shape(aa, "A", {nh}, dims({nh}));
            want_shape(da, "D", {nh}, dims({nh}));
            want_shape(bias, "dt_bias", {nh}, dims({nh}));
            Arr sa = writable(state, "state");
            want_shape(sa, "state", {nh, ds, hd}, dims({nh, ds, hd}) + " (n_heads, d_state, head_dim)");
            for (const Arr* in : {&xa, &ba, &ca, &dta, &aa, &da, &bias})
                if (overlap(sa, *in)) throw py::value_error("state overlaps an input");
            Arr o = output(out, {T, nh, hd}, dims({T, nh, hd}), {&xa, &ba, &ca, &dta, &aa, &da, &bias, &sa});
            SsmScanArgs a;
            a.x = xa.data();
            a.ldx = nh * hd;
            a.dt = dta.data();
            a.lddt = nh;
            a.B = ba.data();
            a.ldb = ng * ds;
            a.C = ca.data();
            a.ldc = ng * ds;
            a.dt_bias = bias.data();
            a.A = aa.data();
            a.D = da.data();
            a.state = sa.mutable_data();
            a.y = o.mutable_data();
            a.ldy = nh * hd;
            a.T = T;
            a.n_heads = static_cast<int>(nh);
            a.head_dim = static_cast<int>(hd);
            a.d_state = static_cast<int>(ds);
            a.n_groups = static_cast<int>(ng);
            {
                py::gil_scoped_release rel;
                if (chunked) ssm_scan_chunked(kernels(), a);
                else ssm_scan(kernels(), a);
            }
            return o;
        },
        py::arg("x"), py::arg("dt"), py::arg("A"), py::arg("B"), py::arg("C"), py::arg("D"), py::arg("dt_bias"),
        py::arg("state"), py::kw_only(), py::arg("chunked") = false, py::arg("out") = py::none(),
        "Mamba-2 selective scan over x (n_tokens, n_heads, head_dim) from the state (n_heads, d_state, "
        "head_dim), advanced in place: token by token, or chunked (the SSD form, for prefill).");

    m.def(
        "ssm_gated_rmsnorm",
        [](py::handle y, py::handle z, py::handle w, py::handle n_groups, double eps, py::handle out) {
            Arr ya = require_f32(y, "y");
            if (ya.ndim() != 2 || ya.shape(0) < 1 || ya.shape(1) < 1)
                throw py::value_error("y must be 2-D (rows >= 1, channels >= 1), got " + shape_str(ya));
            const int64_t rows = ya.shape(0), n = ya.shape(1);
            Arr za = require_f32(z, "z");
            want_shape(za, "z", {rows, n}, dims({rows, n}));
            Arr wa = require_f32(w, "w");
            want_shape(wa, "w", {n}, dims({n}));
            const int64_t ng = int_arg(n_groups, "n_groups");
            if (ng < 1 || n % ng != 0)
                throw py::value_error("n_groups must be >= 1 and divide the channels (" + std::to_string(n) + "), got " +
                                      std::to_string(ng));
            if (!(eps >= 0) || !std::isfinite(eps)) throw py::value_error("eps must be a finite number >= 0");
            Arr o = output(out, {rows, n}, dims({rows, n}), {&ya, &za, &wa});
            {
                py::gil_scoped_release rel;
                ssm_gated_norm(kernels(), ya.data(), n, za.data(), n, wa.data(), o.mutable_data(), n, rows, n, n / ng,
                               static_cast<float>(eps));
            }
            return o;
        },
        py::arg("y"), py::arg("z"), py::arg("w"), py::arg("n_groups"), py::arg("eps"), py::kw_only(),
        py::arg("out") = py::none(),
        "Mamba-2's output norm: RMSNorm of y * silu(z) over each of n_groups channel groups, times w.");
}

}  // namespace slmk
