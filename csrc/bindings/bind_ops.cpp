// ---- rmsnorm, swiglu, geglu, reglu, embedding ----
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "bindings.h"
#include "core/thread_pool.h"
#include "ops/ops.h"

namespace slmk {

namespace {

// A float32 matrix (rows, n) whose rows are contiguous but may be `ld` floats apart (e.g. one
// half of a fused gate/up projection). 1-D arrays are one row. A float16/bfloat16 argument is
// widened into a float32 copy (an output: written there, narrowed back by commit()).
struct RowsView {
    float* ptr;
    int64_t rows, n, ld;
    bool vec;
    py::array arr = null_array();   // what ptr points into
    ArrayKind kind;                 // how the caller's array came in
    py::array half = null_array();  // an output's half-precision memory (rows `half_ld` elements apart)
    int64_t half_ld = 0;
    py::object caller;              // the caller's object
    void commit() const {           // narrows a half-precision output's float32 rows into the caller's
        if (kind.elem == ElemType::F32) return;
        const quantize_row_fn q = QuantKernels(kernels()).quantize(kind.elem == ElemType::F16 ? Format::F16 : Format::BF16);
        uint8_t* d = static_cast<uint8_t*>(const_cast<py::array&>(half).mutable_data());
        for (int64_t r = 0; r < rows; ++r) q(ptr + r * ld, d + r * half_ld * 2, n);
    }
};

RowsView rows_view(py::handle a, const char* name, bool writable) {
    ArrayKind kind;
    py::array arr = as_array(a, name, &kind.elem, &kind.torch);
    if (kind.elem == ElemType::Other)
        throw py::type_error(std::string(name) + " must have dtype float32 (or float16, bfloat16), got " + std::string(py::str(arr.dtype())));
    if (arr.ndim() != 1 && arr.ndim() != 2) throw py::value_error(std::string(name) + " must be 1-D or 2-D");
    const bool vec = arr.ndim() == 1;
    const int64_t rows = vec ? 1 : arr.shape(0), n = vec ? arr.shape(0) : arr.shape(1);
    if (n == 0 || rows == 0) throw py::value_error(std::string(name) + " must not be empty");
    const int64_t item = arr.itemsize();
    const int64_t inner = vec ? arr.strides(0) : arr.strides(1);
    const int64_t outer = vec ? n * item : arr.strides(0);
    if (inner != item || outer % item != 0 || outer < n * item)
        throw py::value_error(std::string(name) + " must have contiguous rows (inner stride " + std::to_string(item) +
                              " bytes, rows not overlapping)");
    if (writable && !arr.writeable()) throw py::value_error(std::string(name) + " must be writeable");
    if (writable && !py::isinstance<py::array>(a) && !kind.torch)
        throw py::type_error(std::string(name) + " must be a numpy.ndarray or a torch tensor, got " +
                             std::string(py::str(py::type::of(a).attr("__name__"))));
    std::vector<py::ssize_t> shape = vec ? std::vector<py::ssize_t>{n} : std::vector<py::ssize_t>{rows, n};
    if (kind.elem != ElemType::F32) {
        RowsView v;
        if (writable) {
            py::array_t<float> f(shape);
            v = {f.mutable_data(), rows, n, n, vec, f, kind, arr, outer / item, py::reinterpret_borrow<py::object>(a)};
        } else {
            py::array_t<float> f = widen_rows(arr, kind.elem, rows, n, outer, shape);
            v = {f.mutable_data(), rows, n, n, vec, f, kind, null_array(), 0, py::reinterpret_borrow<py::object>(a)};
        }
        return v;
    }
    if (!f32_aligned(arr)) {
        // A view at an odd byte offset: a misaligned float* is undefined behaviour, so an input
        // is read from an aligned copy of its rows; an output must be aligned.
        if (writable)
            throw py::value_error(std::string(name) + " must be aligned to 4 bytes (it is a float32 view at an odd byte offset)");
        py::array_t<float> copy(shape);
        const char* src = static_cast<const char*>(arr.data());
        for (int64_t r = 0; r < rows; ++r)
            std::memcpy(copy.mutable_data() + r * n, src + r * outer, static_cast<size_t>(n) * 4);
        return {copy.mutable_data(), rows, n, n, vec, copy, kind, null_array(), 0, py::reinterpret_borrow<py::object>(a)};
    }
    return {static_cast<float*>(arr.mutable_data()), rows, n, outer / 4, vec, arr, kind, null_array(), 0,
            py::reinterpret_borrow<py::object>(a)};
}

bool overlap(const RowsView& a, const RowsView& b) {
    const float* a1 = a.ptr + (a.rows - 1) * a.ld + a.n;
    const float* b1 = b.ptr + (b.rows - 1) * b.ld + b.n;
    return a.ptr < b1 && b.ptr < a1;
}

// The output of a row op: a new array shaped like `like` (returned as the caller's kind), or
// the caller's `out` (checked: shape, no overlap with an input except `out is input 0`).
void make_out(py::handle out, const RowsView& like, const char* name, std::vector<const RowsView*> inputs,
              RowsView* ov, bool allow_alias_first) {
    if (out.is_none()) {
        py::array_t<float> o = like.vec ? py::array_t<float>({like.n}) : py::array_t<float>({like.rows, like.n});
        *ov = rows_view(o, name, true);
        return;
    }
    *ov = rows_view(out, name, true);
    if (ov->rows != like.rows || ov->n != like.n || ov->vec != like.vec)
        throw py::value_error(std::string(name) + " must have the shape of the input");
    for (size_t i = 0; i < inputs.size(); ++i) {
        const bool same = inputs[i]->ptr == ov->ptr && inputs[i]->ld == ov->ld;
        if (overlap(*inputs[i], *ov) && !(allow_alias_first && i == 0 && same))
            throw py::value_error(std::string(name) + " overlaps an input");
    }
}

// What a row op returns: the caller's out (narrowed into, if half precision), or the new result
// as the kind of the first input.
py::object finish_out(py::handle out, const RowsView& ov, const RowsView& first) {
    if (!out.is_none()) {
        ov.commit();
        return ov.caller;
    }
    return as_result(py::reinterpret_borrow<py::array_t<float, py::array::c_style>>(ov.arr), first.kind);
}

}  // namespace

void bind_ops(py::module_& m) {
    m.def(
        "rmsnorm",
        [](py::handle x, py::handle w, double eps, py::handle out) {
            RowsView xv = rows_view(x, "x", false);
            RowsView wv = rows_view(w, "w", false);
            if (!wv.vec || wv.n != xv.n) throw py::value_error("w must be 1-D with x's row length (" + std::to_string(xv.n) + ")");
            if (!(eps >= 0) || !std::isfinite(eps)) throw py::value_error("eps must be a finite number >= 0");
            RowsView ov;
            make_out(out, xv, "out", {&xv, &wv}, &ov, true);
            {
                py::gil_scoped_release rel;
                rmsnorm(kernels(), xv.ptr, xv.ld, wv.ptr, ov.ptr, ov.ld, xv.rows, xv.n, static_cast<float>(eps));
            }
            return finish_out(out, ov, xv);
        },
        py::arg("x"), py::arg("w"), py::arg("eps"), py::arg("out") = py::none(),
        "RMSNorm of each row of x (float32, rows contiguous), times w; out may be x itself.");
    // silu(gate) * up and gelu_tanh(gate) * up: the same checks, the same row driver shape
    auto gated = [](void (*driver)(const OpsKernels&, const float*, int64_t, const float*, int64_t, float*, int64_t,
                                   int64_t, int64_t)) {
        return [driver](py::handle g, py::handle u, py::handle out) {
            RowsView gv = rows_view(g, "gate", false);
            RowsView uv = rows_view(u, "up", false);
            if (gv.rows != uv.rows || gv.n != uv.n || gv.vec != uv.vec)
                throw py::value_error("gate and up must have the same shape");
            RowsView ov;
            make_out(out, gv, "out", {&gv, &uv}, &ov, true);
            {
                py::gil_scoped_release rel;
                driver(kernels(), gv.ptr, gv.ld, uv.ptr, uv.ld, ov.ptr, ov.ld, gv.rows, gv.n);
            }
            return finish_out(out, ov, gv);
        };
    };
    m.def("swiglu", gated(swiglu), py::arg("gate"), py::arg("up"), py::arg("out") = py::none(),
          "silu(gate) * up, row by row (rows may be strided views, e.g. halves of a fused projection).");
    m.def("geglu", gated(geglu), py::arg("gate"), py::arg("up"), py::arg("out") = py::none(),
          "gelu_tanh(gate) * up (Gemma's GeGLU), row by row (rows may be strided views, e.g. halves of a fused "
          "projection).");
    m.def("reglu", gated(reglu), py::arg("gate"), py::arg("up"), py::arg("out") = py::none(),
          "relu(gate) * up (ReGLU, PhoneLM's FFN), row by row (rows may be strided views, e.g. halves of a fused "
          "projection).");
    m.def(
        "embedding",
        [](const QuantizedTensor& table, py::handle ids, py::handle out) {
            if (!py::isinstance<py::array>(ids)) throw py::type_error("ids must be an integer ndarray");
            py::array ia = py::reinterpret_borrow<py::array>(ids);
            if (ia.dtype().kind() != 'i' && ia.dtype().kind() != 'u') throw py::type_error("ids must have an integer dtype");
            if (ia.ndim() != 1) throw py::value_error("ids must be 1-D");
            auto idv = py::array_t<int64_t, py::array::c_style | py::array::forcecast | kNpyAligned>::ensure(ia);
            const int64_t n = idv.shape(0);
            for (int64_t i = 0; i < n; ++i)
                if (idv.at(i) < 0 || idv.at(i) >= table.rows)
                    throw py::value_error("ids[" + std::to_string(i) + "] = " + std::to_string(idv.at(i)) +
                                          " is out of range for a table of " + std::to_string(table.rows) + " rows");
            py::array_t<float> o = null_array<py::array_t<float>>();
            OutArg out_arg;
            if (out.is_none()) {
                o = py::array_t<float>({n, table.cols});
            } else {
                OutArg oo = take_out(out, "out");
                auto& oa = oo.f32;
                if (oa.ndim() != 2 || oa.shape(0) != n || oa.shape(1) != table.cols)
                    throw py::value_error("out must have shape (" + std::to_string(n) + ", " + std::to_string(table.cols) + ")");
                if (!oa.writeable()) throw py::value_error("out must be writeable");
                const py::array& caller_mem = oo.elem == ElemType::F32 ? static_cast<const py::array&>(oa) : oo.half;
                const uint8_t* o0 = static_cast<const uint8_t*>(caller_mem.data());
                const uint8_t* o1 = o0 + caller_mem.nbytes();
                if (o0 < table.data + table.nbytes && table.data < o1) throw py::value_error("out must not overlap table");
                const uint8_t* i0 = reinterpret_cast<const uint8_t*>(idv.data());
                if (o0 < i0 + idv.nbytes() && i0 < o1) throw py::value_error("out must not overlap ids");
                o = oa;
                out_arg = std::move(oo);
            }
            float* dst = o.mutable_data();
            const int64_t* idp = idv.data();
            const QuantizedTensor* t = &table;
            {
                py::gil_scoped_release rel;
                const dequantize_row_fn dq = QuantKernels(kernels()).dequantize(t->format);
                const int64_t rb = row_bytes(t->format, t->cols);
                parallel_for(n, 1, [&](int64_t a, int64_t b) {
                    for (int64_t i = a; i < b; ++i) dq(t->data + idp[i] * rb, dst + i * t->cols, t->cols);
                });
            }
            if (out.is_none()) return py::object(std::move(o));
            out_arg.commit();
            return out_arg.caller;
        },
        py::arg("table"), py::arg("ids"), py::arg("out") = py::none(),
        "Rows `ids` of a (vocab, dim) QuantizedTensor, dequantized to float32 (n, dim).");
}

}  // namespace slmk
