// ---- QuantizedTensor, quantize, dequantize ----
#include <pybind11/stl.h>

#include <algorithm>
#include <cctype>
#include <cmath>

#include "bindings.h"
#include "core/thread_pool.h"
#include "gemm/gemm_driver.h"

namespace slmk {

namespace {

constexpr Format kTensorFormats[] = {Format::F32,  Format::F16,  Format::BF16, Format::Q8_0,
                                     Format::Q4_0, Format::Q4_1, Format::Q5_0, Format::Q5_1,
                                     Format::Q4_K, Format::Q5_K, Format::Q6_K};

std::string format_names() {
    std::string s;
    for (Format f : kTensorFormats) s += std::string(s.empty() ? "" : ", ") + format_info(f).name;
    return s;
}

int64_t checked_dim(py::handle v, const char* what) {
    if (!py::isinstance<py::int_>(v) || py::isinstance<py::bool_>(v))
        throw py::type_error(std::string("shape ") + what + " must be an int");
    const int64_t x = int_arg(v, (std::string("shape ") + what).c_str());
    if (x <= 0 || x > (1LL << 40)) throw py::value_error(std::string("shape ") + what + " must be in 1..2^40, got " + std::to_string(x));
    return x;
}

void check_cols(Format f, int64_t cols, const char* what) {
    const int bs = format_info(f).block_size;
    if (cols % bs != 0)
        throw py::value_error(std::string(what) + ": row length " + std::to_string(cols) + " is not a multiple of the " +
                              format_info(f).name + " block size " + std::to_string(bs));
}

// Runs fn(first_block, n_blocks) over all blocks of the tensor on the thread pool.
template <typename Fn>
void for_blocks(int64_t n_blocks, int64_t grain, Fn fn) {
    parallel_for(n_blocks, grain, [&](int64_t b0, int64_t b1) { fn(b0, b1 - b0); });
}

QuantizedTensor make_view(py::object data, Format f, int64_t rows, int64_t cols, int64_t offset) {
    check_cols(f, cols, "shape");
    if (offset < 0) throw py::value_error("offset must be >= 0");
    auto info = std::make_shared<py::buffer_info>(py::reinterpret_borrow<py::buffer>(data).request());
    // Contiguous bytes only: a strided view would need a copy, which this type never makes.
    int64_t expect_stride = info->itemsize;
    for (int d = static_cast<int>(info->ndim) - 1; d >= 0; --d) {
        if (info->shape[d] > 1 && info->strides[d] != expect_stride)
            throw py::value_error("data must be a C-contiguous buffer");
        expect_stride *= info->shape[d];
    }
    const int64_t have = info->size * info->itemsize;
    if (rows > (int64_t(1) << 40) / std::max<int64_t>(1, row_bytes(f, cols)))
        throw py::value_error("tensor shape is too large");
    const int64_t need = rows * row_bytes(f, cols);  // <= 2^40: checked above
    if (offset > have || have - offset < need)
        throw py::value_error(std::string(format_info(f).name) + " tensor of shape (" + std::to_string(rows) + ", " +
                              std::to_string(cols) + ") needs " + std::to_string(need) + " bytes at offset " +
                              std::to_string(offset) + ", the buffer has " + std::to_string(have));
    if (offset == 0 && have != need)
        throw py::value_error(std::string(format_info(f).name) + " tensor of shape (" + std::to_string(rows) + ", " +
                              std::to_string(cols) + ") is " + std::to_string(need) + " bytes, the buffer has " +
                              std::to_string(have) + " (pass offset= to view part of a larger buffer)");
    QuantizedTensor t;
    t.format = f;
    t.rows = rows;
    t.cols = cols;
    t.data = static_cast<const uint8_t*>(info->ptr) + offset;
    t.nbytes = need;
    t.readonly = info->readonly;
    t.view = std::move(info);
    t.owner = std::move(data);
    t.pack_cache = std::make_shared<PackCache>();
    return t;
}

std::pair<int64_t, int64_t> parse_shape(py::handle shape) {
    if (py::isinstance<py::int_>(shape)) return {1, checked_dim(shape, "length")};
    if (!py::isinstance<py::sequence>(shape) || py::isinstance<py::str>(shape))
        throw py::type_error("shape must be (rows, cols)");
    py::sequence s = py::reinterpret_borrow<py::sequence>(shape);
    if (s.size() != 2) throw py::value_error("shape must be (rows, cols), got " + std::to_string(s.size()) + " dims");
    return {checked_dim(s[0], "rows"), checked_dim(s[1], "cols")};
}

}  // namespace

Format parse_format(const py::handle& fmt, const char* arg_name) {
    if (py::isinstance<py::str>(fmt)) {
        std::string s = fmt.cast<std::string>();
        std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
        for (Format f : kTensorFormats)
            if (s == format_info(f).name) return f;
        throw py::value_error(std::string("unknown ") + arg_name + " '" + fmt.cast<std::string>() +
                              "'; supported: " + format_names());
    }
    if (py::isinstance<py::int_>(fmt) && !py::isinstance<py::bool_>(fmt)) {
        const int64_t id = int_arg(fmt, arg_name);
        for (Format f : kTensorFormats)
            if (id == format_info(f).ggml_type) return f;
        throw py::value_error(std::string(arg_name) + ": GGML type id " + std::to_string(id) +
                              " is not a supported format; supported: " + format_names());
    }
    throw py::type_error(std::string(arg_name) + " must be a format name (str) or a GGML type id (int)");
}

void bind_quant(py::module_& m) {
    py::class_<QuantizedTensor>(m, "QuantizedTensor", py::buffer_protocol(),
                                "A (rows, cols) tensor in a GGUF block format, viewing its bytes without a copy.")
        .def(py::init([](py::object data, py::handle fmt, py::handle shape, long long offset) {
                 const Format f = parse_format(fmt);
                 if (!PyObject_CheckBuffer(data.ptr()))
                     throw py::type_error("data must support the buffer protocol (numpy array, bytes, mmap, ...)");
                 auto [rows, cols] = parse_shape(shape);
                 return make_view(std::move(data), f, rows, cols, offset);
             }),
             py::arg("data"), py::arg("format"), py::arg("shape"), py::arg("offset") = 0,
             "View `data` (any C-contiguous buffer, e.g. an mmap of a GGUF file) as a tensor; no copy.")
        .def_property_readonly("format", [](const QuantizedTensor& t) { return std::string(format_info(t.format).name); })
        .def_property_readonly("shape", [](const QuantizedTensor& t) { return py::make_tuple(t.rows, t.cols); })
        .def_property_readonly("nbytes", [](const QuantizedTensor& t) { return t.nbytes; })
        .def_property_readonly("block_size", [](const QuantizedTensor& t) { return format_info(t.format).block_size; })
        .def_property_readonly("type_size", [](const QuantizedTensor& t) { return format_info(t.format).type_size; })
        .def_property_readonly("ggml_type", [](const QuantizedTensor& t) { return format_info(t.format).ggml_type; })
        .def_property_readonly(
            "data",
            [](py::object self) {
                const QuantizedTensor& t = self.cast<const QuantizedTensor&>();
                py::array a(py::dtype("uint8"), {t.nbytes}, {1}, t.data, self);
                if (t.readonly) py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
                return a;
            },
            "The raw bytes as a 1-D numpy uint8 array (a view, not a copy).")
        .def_buffer([](QuantizedTensor& t) {
            return py::buffer_info(const_cast<uint8_t*>(t.data), 1, py::format_descriptor<uint8_t>::format(), 1,
                                   {t.nbytes}, {1}, t.readonly);
        })
        .def_property_readonly(
            "packed_nbytes",
            [](const QuantizedTensor& t) -> int64_t {
                std::lock_guard<std::mutex> lk(t.pack_cache->mu);
                return t.pack_cache->m ? t.pack_cache->m->n_groups() * t.pack_cache->m->group_bytes : 0;
            },
            "Bytes of the packed copy that the first matmul built and keeps on this tensor (0: none yet).")
        .def("drop_packed", [](QuantizedTensor& t) {
            std::lock_guard<std::mutex> lk(t.pack_cache->mu);
            t.pack_cache->m.reset();
        }, "Free the cached packed copy (PackedWeights from pack() that share it stay valid).")
        .def("__repr__", [](const QuantizedTensor& t) {
            return "QuantizedTensor(format='" + std::string(format_info(t.format).name) + "', shape=(" +
                   std::to_string(t.rows) + ", " + std::to_string(t.cols) + "), nbytes=" + std::to_string(t.nbytes) + ")";
        });

    m.def(
        "quantize",
        [](py::handle x, py::handle fmt) {
            const Format f = parse_format(fmt);
            auto a = require_f32(x, "x");
            if (a.ndim() != 1 && a.ndim() != 2)
                throw py::value_error("x must be 1-D or 2-D, got " + std::to_string(a.ndim()) + "-D");
            const int64_t rows = a.ndim() == 2 ? a.shape(0) : 1;
            const int64_t cols = a.ndim() == 2 ? a.shape(1) : a.shape(0);
            if (rows == 0 || cols == 0) throw py::value_error("x must not be empty");
            check_cols(f, cols, "x");
            const float* src = a.data();
            const int64_t n = rows * cols;
            if (format_info(f).block_size > 1) {
                // Block scales of non-finite data are meaningless (and gguf-py's numpy
                // quantizers give platform-dependent bytes for them): refuse instead.
                int64_t bad = -1;
                {
                    py::gil_scoped_release rel;
                    for (int64_t i = 0; i < n && bad < 0; ++i)
                        if (!std::isfinite(src[i])) bad = i;
                }
                if (bad >= 0)
                    throw py::value_error("x holds a non-finite value (NaN or Inf) at flat index " +
                                          std::to_string(bad) + "; block formats need finite input");
            }
            py::array_t<uint8_t> out(rows * row_bytes(f, cols));
            uint8_t* dst = out.mutable_data();
            {
                py::gil_scoped_release rel;
                const quantize_row_fn quant = QuantKernels(kernels()).quantize(f);
                const int bs = format_info(f).block_size, ts = format_info(f).type_size;
                const int64_t elems_per_unit = bs == 1 ? 4096 : bs;  // float formats: chunks of 4096
                const int64_t units = (n + elems_per_unit - 1) / elems_per_unit;
                for_blocks(units, bs >= 256 ? 4 : 64, [&](int64_t u0, int64_t nu) {
                    const int64_t e0 = u0 * elems_per_unit, e1 = std::min(n, (u0 + nu) * elems_per_unit);
                    quant(src + e0, dst + e0 / bs * ts, e1 - e0);
                });
            }
            return make_view(std::move(out), f, rows, cols, 0);
        },
        py::arg("x"), py::arg("fmt"),
        "Quantize a float32 array (rows, cols) or (n,) to a GGUF block format; returns a QuantizedTensor.");

    m.def(
        "dequantize",
        [](const QuantizedTensor& t) {
            py::array_t<float> out({t.rows, t.cols});
            float* dst = out.mutable_data();
            {
                py::gil_scoped_release rel;
                const dequantize_row_fn dequant = QuantKernels(kernels()).dequantize(t.format);
                const int bs = format_info(t.format).block_size, ts = format_info(t.format).type_size;
                const int64_t n = t.rows * t.cols;
                const int64_t elems_per_unit = bs == 1 ? 4096 : bs;
                const int64_t units = (n + elems_per_unit - 1) / elems_per_unit;
                for_blocks(units, bs >= 256 ? 16 : 128, [&](int64_t u0, int64_t nu) {
                    const int64_t e0 = u0 * elems_per_unit, e1 = std::min(n, (u0 + nu) * elems_per_unit);
                    dequant(t.data + e0 / bs * ts, dst + e0, e1 - e0);
                });
            }
            return out;
        },
        py::arg("qt"), "Dequantize a QuantizedTensor to float32 (rows, cols).");

    m.def(
        "formats",
        [] {
            py::dict d;
            for (Format f : kTensorFormats) {
                const FormatInfo& fi = format_info(f);
                py::dict e;
                e["ggml_type"] = fi.ggml_type;
                e["block_size"] = fi.block_size;
                e["type_size"] = fi.type_size;
                d[fi.name] = e;
            }
            return d;
        },
        "The supported formats: name -> {ggml_type, block_size, type_size}.");
}

}  // namespace slmk
