// ---- matmul and pack ----
#include <pybind11/stl.h>

#include <algorithm>

#include "bindings.h"
#include "gemm/gemm_driver.h"

#if defined(__GLIBC__)
#include <malloc.h>  // malloc_trim
#endif

namespace slmk {

namespace {

// What a weight argument resolves to: a packed matrix, or raw GGUF-layout rows.
struct WeightView {
    Format format;
    int64_t n, k;
    const PackedMatrix* packed = nullptr;
    const uint8_t* raw = nullptr;
    int64_t row_stride = 0;
    const void* lo = nullptr;  // byte range, for the overlap check with `out`
    const void* hi = nullptr;
    const QuantizedTensor* qt = nullptr;  // a tensor whose packed form is cached on it
};

// The packed form of t, built on first use (GIL released; one builder at a time per tensor) and
// kept on the tensor. The GGUF bytes are not read by matmul after that, so pages of a file they
// came from (an mmap of a .gguf) are released: a cached tensor costs its packed size, once.
const PackedMatrix* cached_pack(const QuantizedTensor& t) {
    PackCache& c = *t.pack_cache;
    py::gil_scoped_release rel;
    std::lock_guard<std::mutex> lk(c.mu);
    if (!c.m) {
        c.m = pack_matrix(t.format, t.data, t.rows, t.cols, row_bytes(t.format, t.cols));
        release_file_pages(t.data, t.nbytes);
    }
    return c.m.get();
}

WeightView resolve_weight(const py::handle& w) {
    WeightView v;
    if (py::isinstance<PackedWeights>(w)) {
        const PackedWeights& p = w.cast<const PackedWeights&>();
        v.format = p.m->format;
        v.n = p.m->n;
        v.k = p.m->k;
        v.packed = p.m.get();
        v.lo = p.m->data.ptr;
        v.hi = p.m->data.ptr + p.m->n_groups() * p.m->group_bytes;
        return v;
    }
    if (py::isinstance<QuantizedTensor>(w)) {
        const QuantizedTensor& t = w.cast<const QuantizedTensor&>();
        v.format = t.format;
        v.n = t.rows;
        v.k = t.cols;
        v.raw = t.data;
        v.row_stride = row_bytes(t.format, t.cols);
        v.lo = t.data;
        v.hi = t.data + t.nbytes;
        v.qt = &t;
        return v;
    }
    if (py::isinstance<py::array>(w)) {
        py::array a = py::reinterpret_borrow<py::array>(w);
        if (a.dtype().is(py::dtype::of<float>())) v.format = Format::F32;
        else if (a.dtype().is(py::dtype("float16"))) v.format = Format::F16;
        else throw py::type_error("w as an ndarray must be float32 or float16, got " + std::string(py::str(a.dtype())));
        if (a.ndim() != 2) throw py::value_error("w must be 2-D (N, K), got " + std::to_string(a.ndim()) + "-D");
        if (!(a.flags() & py::array::c_style)) throw py::value_error("w must be C-contiguous");
        v.n = a.shape(0);
        v.k = a.shape(1);
        if (v.n == 0 || v.k == 0) throw py::value_error("w must not be empty");
        v.raw = static_cast<const uint8_t*>(a.data());
        v.row_stride = v.k * a.itemsize();
        v.lo = v.raw;
        v.hi = v.raw + v.n * v.row_stride;
        return v;
    }
    throw py::type_error("w must be a QuantizedTensor, PackedWeights, or a float32/float16 ndarray (N, K), got " +
                         std::string(py::str(py::type::of(w).attr("__name__"))));
}

bool overlaps(const void* a0, const void* a1, const void* b0, const void* b1) {
    return a0 < b1 && b0 < a1;
}

}  // namespace

void bind_gemm(py::module_& m) {
    py::class_<PackedWeights>(m, "PackedWeights",
                              "Weights repacked once into the interleaved 16-row layout the GEMM kernels read; "
                              "matmul gives the same bits as with the unpacked tensor.")
        .def_property_readonly("format", [](const PackedWeights& p) { return std::string(format_info(p.m->format).name); })
        .def_property_readonly("shape", [](const PackedWeights& p) { return py::make_tuple(p.m->n, p.m->k); })
        .def_property_readonly("nbytes", [](const PackedWeights& p) { return p.m->n_groups() * p.m->group_bytes; })
        .def("__repr__", [](const PackedWeights& p) {
            return "PackedWeights(format='" + std::string(format_info(p.m->format).name) + "', shape=(" +
                   std::to_string(p.m->n) + ", " + std::to_string(p.m->k) + "))";
        });

    m.def(
        "pack",
        [](py::handle w, bool release) {
            if (py::isinstance<PackedWeights>(w)) throw py::type_error("w is already packed");
            PackedWeights p;
            if (py::isinstance<py::list>(w) || py::isinstance<py::tuple>(w)) {  // rows stacked
                const py::sequence seq = py::reinterpret_borrow<py::sequence>(w);
                if (seq.size() == 0) throw py::value_error("w: an empty list has no rows to stack");
                std::vector<WeightView> vs;
                std::vector<PackPart> parts;
                for (size_t i = 0; i < seq.size(); ++i) {
                    const py::handle wi = seq[i];
                    if (py::isinstance<PackedWeights>(wi)) throw py::type_error("w[" + std::to_string(i) + "] is already packed");
                    vs.push_back(resolve_weight(wi));
                    const WeightView& v = vs.back();
                    if (v.format != vs[0].format || v.k != vs[0].k)
                        throw py::value_error("w[" + std::to_string(i) + "] is " + format_info(v.format).name + " (" +
                                              std::to_string(v.n) + ", " + std::to_string(v.k) + "), w[0] is " +
                                              format_info(vs[0].format).name + " with K=" + std::to_string(vs[0].k) +
                                              ": stacked rows need one format and K");
                    if (i + 1 < seq.size() && v.n % kGroupRows != 0)
                        throw py::value_error("w[" + std::to_string(i) + "] has " + std::to_string(v.n) +
                                              " rows: every matrix but the last needs a multiple of " +
                                              std::to_string(kGroupRows));
                    parts.push_back({v.raw, v.n, v.row_stride});
                }
                py::gil_scoped_release rel;
                std::function<void(size_t, int64_t, int64_t)> give_back;
                if (release)
                    give_back = [&vs](size_t i, int64_t r0, int64_t r1) {
                        release_file_pages(vs[i].raw + r0 * vs[i].row_stride, (r1 - r0) * vs[i].row_stride);
                    };
                p.m = pack_matrix_stacked(vs[0].format, parts, vs[0].k, give_back);
                return p;
            }
            WeightView v = resolve_weight(w);
            if (v.qt) {
                std::lock_guard<std::mutex> lk(v.qt->pack_cache->mu);  // a builder never needs the GIL
                if (v.qt->pack_cache->m) {
                    p.m = v.qt->pack_cache->m;  // matmul packed it already: share that copy
                    if (release) release_file_pages(v.raw, v.n * v.row_stride);
                    return p;
                }
            }
            {
                py::gil_scoped_release rel;
                // release: each slice's file pages go as soon as it is packed (peak = packed + a slice)
                std::function<void(int64_t, int64_t)> give_back;
                if (release)
                    give_back = [&v](int64_t r0, int64_t r1) {
                        release_file_pages(v.raw + r0 * v.row_stride, (r1 - r0) * v.row_stride);
                    };
                p.m = pack_matrix(v.format, v.raw, v.n, v.k, v.row_stride, give_back);
            }
            return p;
        },
        py::arg("w"), py::kw_only(), py::arg("release_pages") = false,
        "Repack a QuantizedTensor (or float32/float16 (N, K) array) for matmul. A tensor that matmul has\n"
        "packed already gives that cached copy. A list of them (one format and K; each but the last a\n"
        "multiple of 16 rows) gives their rows stacked in one matrix (a fused Q/K/V or gate/up), packed\n"
        "from where they are, without a stacked copy of the source. release_pages=True: the pages of w that a file backs\n"
        "(see release_pages) are given back slice by slice as they are packed, so a large matrix from\n"
        "an mmap and its packed copy are never resident whole at the same time.");

    m.def(
        "release_pages",
        [](py::handle obj) {
            const uint8_t* p;
            int64_t n;
            std::shared_ptr<py::buffer_info> keep;
            if (py::isinstance<QuantizedTensor>(obj)) {
                const QuantizedTensor& t = obj.cast<const QuantizedTensor&>();
                p = t.data;
                n = t.nbytes;
            } else if (PyObject_CheckBuffer(obj.ptr())) {
                keep = std::make_shared<py::buffer_info>(py::reinterpret_borrow<py::buffer>(obj).request());
                p = static_cast<const uint8_t*>(keep->ptr);
                n = keep->size * keep->itemsize;
            } else {
                throw py::type_error("release_pages takes a QuantizedTensor or a buffer (mmap, numpy array, ...), got " +
                                     std::string(py::str(py::type::of(obj).attr("__name__"))));
            }
            py::gil_scoped_release rel;
            return release_file_pages(p, n);
        },
        py::arg("obj"),
        "Drop the resident pages of obj's memory that a file backs read-only or shared (an mmap of a\n"
        "GGUF file after its weights were packed): the OS re-reads them if touched again. Anonymous\n"
        "and private-writable memory is never touched. Returns the bytes released (0 off Linux).");

    m.def(
        "release_free_heap",
        [] {
#if defined(__GLIBC__)
            py::gil_scoped_release rel;
            return malloc_trim(0) != 0;
#else
            return false;
#endif
        },
        "Give the free pages inside the C heap back to the OS (glibc's malloc_trim; False elsewhere or\n"
        "when there were none). Temporaries freed while a model loads (the reader's, numpy's, a stacked\n"
        "copy of rows that pack() cannot stack in place) leave holes between long-lived packed weights;\n"
        "they stay resident until trimmed.");

    m.def(
        "matmul",
        [](py::handle x, py::handle w, py::handle out) {
            ArrayKind xk;
            auto xa = require_f32(x, "x", &xk);
            if (xa.ndim() != 1 && xa.ndim() != 2)
                throw py::value_error("x must be 1-D (K,) or 2-D (M, K), got " + std::to_string(xa.ndim()) + "-D");
            const bool vec = xa.ndim() == 1;
            const int64_t M = vec ? 1 : xa.shape(0);
            const int64_t K = vec ? xa.shape(0) : xa.shape(1);
            WeightView v = resolve_weight(w);
            if (K != v.k)
                throw py::value_error("K mismatch: x has K=" + std::to_string(K) + ", w has shape (" +
                                      std::to_string(v.n) + ", " + std::to_string(v.k) + ")");
            if (M == 0) throw py::value_error("x must have at least one row");
            OutArg o;
            if (out.is_none()) {
                o.f32 = vec ? py::array_t<float, py::array::c_style>({v.n}) : py::array_t<float, py::array::c_style>({M, v.n});
            } else {
                o = take_out(out, "out");
                auto& oa = o.f32;
                const bool shape_ok = vec ? (oa.ndim() == 1 && oa.shape(0) == v.n)
                                          : (oa.ndim() == 2 && oa.shape(0) == M && oa.shape(1) == v.n);
                if (!shape_ok)
                    throw py::value_error("out must have shape " +
                                          (vec ? "(" + std::to_string(v.n) + ",)"
                                               : "(" + std::to_string(M) + ", " + std::to_string(v.n) + ")"));
                if (!oa.writeable()) throw py::value_error("out must be writeable");
                const float* o0 = oa.data();
                const float* o1 = o0 + M * v.n;
                if (overlaps(o0, o1, xa.data(), xa.data() + M * K))
                    throw py::value_error("out must not overlap x");
                if (overlaps(o0, o1, v.lo, v.hi)) throw py::value_error("out must not overlap w");
            }
            // every check passed: from here on the call succeeds
            if (v.qt) v.packed = cached_pack(*v.qt);
            float* op = o.f32.mutable_data();
            const float* xp = xa.data();
            {
                py::gil_scoped_release rel;
                gemm(kernels(), v.format, v.packed, v.raw, v.row_stride, v.n, K, xp, M, K, op, v.n);
            }
            if (out.is_none()) return as_result(o.f32, xk);
            o.commit();
            return o.caller;
        },
        py::arg("x"), py::arg("w"), py::arg("out") = py::none(),
        "x (M, K) float32 @ w.T -> (M, N) float32; w a QuantizedTensor, PackedWeights or float32/float16 (N, K).");
}

}  // namespace slmk
