// ---- binding layer: validation, conversion, GIL release ----
// Kernels never see Python; everything here checks arguments with the GIL held and raises a
// clear exception (TypeError for a wrong type or dtype, ValueError for a wrong value or shape)
// before anything is written, then releases the GIL around the kernel call.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <string>

#include "quant/formats.h"

namespace py = pybind11;

namespace slmk {

void bind_core(py::module_& m);
void bind_quant(py::module_& m);
void bind_gemm(py::module_& m);
void bind_bench(py::module_& m);
void bind_attention(py::module_& m);
void bind_kvcache(py::module_& m);
void bind_ops(py::module_& m);
void bind_model(py::module_& m);
void bind_sample(py::module_& m);
void bind_ssm(py::module_& m);

// A format given as a name ("q4_0", case-insensitive) or a GGML type id (int, or an IntEnum
// such as gguf.GGMLQuantizationType). Raises ValueError for anything else.
Format parse_format(const py::handle& fmt, const char* arg_name = "fmt");

// A tensor in one of the block formats, viewing bytes it does not own (a numpy array, an
// mmap of a GGUF file, bytes...) without copying. Holding the buffer export keeps the owner
// alive and, for an mmap, stops it from being closed underneath us.
struct QuantizedTensor {
    Format format;
    int64_t rows, cols;
    const uint8_t* data;
    int64_t nbytes;
    bool readonly;
    std::shared_ptr<py::buffer_info> view;  // the held buffer export
    py::object owner;
};

// Weights packed for the GEMM kernels (slmkernels.PackedWeights).
struct PackedMatrix;
struct PackedWeights {
    std::shared_ptr<PackedMatrix> m;
};

// Checks that `a` is a float32 ndarray, C-contiguous; raises TypeError/ValueError naming `name`.
// An input that is not 4-byte aligned (a view at an odd byte offset) comes back as an aligned
// copy; an output (require_f32_out) must be aligned, else ValueError.
py::array_t<float, py::array::c_style> require_f32(const py::handle& a, const char* name);
py::array_t<float, py::array::c_style> require_f32_out(const py::handle& a, const char* name);
// numpy's NPY_ARRAY_ALIGNED flag: the data pointer and strides suit the dtype's alignment.
constexpr int kNpyAligned = 0x0100;
bool f32_aligned(const py::array& arr);

// A Python int (not bool) as int64: TypeError naming `name` for another type, ValueError when it
// does not fit in 64 bits (pybind11's own cast would raise RuntimeError for both).
int64_t int_arg(const py::handle& v, const char* name);
// A Python int or float (not bool) as double: TypeError naming `name` otherwise.
double float_arg(const py::handle& v, const char* name);

}  // namespace slmk
