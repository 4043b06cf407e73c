// ---- binding layer: validation, conversion, GIL release ----
// Kernels never see Python; everything here checks arguments with the GIL held and raises a
// clear exception (TypeError for a wrong type or dtype, ValueError for a wrong value or shape)
// before anything is written, then releases the GIL around the kernel call.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

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
void bind_act(py::module_& m);

// A format given as a name ("q4_0", case-insensitive) or a GGML type id (int, or an IntEnum
// such as gguf.GGMLQuantizationType). Raises ValueError for anything else.
Format parse_format(const py::handle& fmt, const char* arg_name = "fmt");

// The packed form of a QuantizedTensor, built by the first matmul that needs it and kept (shared
// by copies of the tensor object).
struct PackedMatrix;
struct PackCache {
    std::mutex mu;
    std::shared_ptr<PackedMatrix> m;
};

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
    std::shared_ptr<PackCache> pack_cache;
};

// Weights packed for the GEMM kernels (slmkernels.PackedWeights).
struct PackedWeights {
    std::shared_ptr<PackedMatrix> m;
};

// ---- array intake (intake.cpp) ----
// Activations and `out=` may be numpy arrays, torch CPU tensors or any __dlpack__ producer, in
// float32, float16 or bfloat16; they are viewed in place, never copied by Python. Half types are
// widened to float32 (results narrowed back) by the F16/BF16 row kernels, in C++.
enum class ElemType : uint8_t { F32, F16, BF16, Other };

// An array handle holding nothing, for a member that only some calls fill. pybind11's default
// array constructors allocate a 0-size numpy array (~0.1 us each, several per call added up to
// ~0.4 us on a 1x576 rmsnorm); this allocates nothing.
template <typename A = py::array>
A null_array() {
    return py::reinterpret_steal<A>(py::handle());
}

// How an activation came in; decides what a result allocated for it is (as_result).
struct ArrayKind {
    bool torch = false;  // a torch.Tensor: results are torch tensors
    ElemType elem = ElemType::F32;
};

// `a` as a numpy array viewing its memory (bfloat16 as a uint16 view, *elem = BF16); TypeError
// naming `name` when it is neither a numpy array nor a __dlpack__ producer in CPU memory.
py::array as_array(const py::handle& a, const char* name, ElemType* elem, bool* torch);

// A C-contiguous float32 array of `a`'s values: `a` itself (float32, 4-byte aligned), an aligned
// copy (a float32 view at an odd byte offset), or the widened values (float16/bfloat16). Raises
// TypeError/ValueError naming `name`. `kind`, when given, receives how `a` came in.
py::array_t<float, py::array::c_style> require_f32(const py::handle& a, const char* name, ArrayKind* kind = nullptr);

// Widens (rows, n) float16/bfloat16 rows `row_stride_bytes` apart into a new float32 array of `shape`.
py::array_t<float, py::array::c_style> widen_rows(const py::array& src, ElemType e, int64_t rows, int64_t n,
                                                  int64_t row_stride_bytes, std::vector<py::ssize_t> shape);

// An `out=` argument: the kernel writes `f32` (the caller's memory when it is float32, else a
// scratch array that commit() narrows into the caller's float16/bfloat16 memory afterwards).
struct OutArg {
    py::object caller;                        // what the call returns
    py::array_t<float, py::array::c_style> f32 = null_array<py::array_t<float, py::array::c_style>>();
    py::array half = null_array();            // the caller's half-precision memory
    ElemType elem = ElemType::F32;
    void commit();
};
// numpy arrays and torch tensors only (other DLPack producers may be immutable). C-contiguous;
// a float32 one must be 4-byte aligned. Shape and writeability are the caller's to check on f32
// (a half-precision one is checked writeable here).
OutArg take_out(const py::handle& a, const char* name);
// A float32-only output (for bindings that write no half-precision results): TypeError otherwise.
py::array_t<float, py::array::c_style> require_f32_out(const py::handle& a, const char* name);
// A freshly computed float32 result returned as the caller's kind: a torch tensor (sharing r's
// memory when float32) for torch input, float16 for float16 input (bfloat16 for torch only).
py::object as_result(py::array_t<float, py::array::c_style> r, const ArrayKind& kind);

// numpy's NPY_ARRAY_ALIGNED flag: the data pointer and strides suit the dtype's alignment.
constexpr int kNpyAligned = 0x0100;
bool f32_aligned(const py::array& arr);

// Drops the resident pages of [p, p + n) that are backed by a file and cannot hold private
// changes (read-only or shared file mappings: touching them again re-reads the file); never
// pages of anonymous or private-writable memory. Only whole pages inside the range. Returns the
// bytes advised away (0 where the OS offers no such call). Linux: /proc/self/maps + madvise.
int64_t release_file_pages(const void* p, int64_t n);
// The whole pages of [p, p + n) that release_file_pages would drop, as [first, second) address
// ranges (empty where the OS offers no such call).
using PageRange = std::pair<uintptr_t, uintptr_t>;
std::vector<PageRange> file_page_ranges(const void* p, int64_t n);

// A Python int (not bool) as int64: TypeError naming `name` for another type, ValueError when it
// does not fit in 64 bits (pybind11's own cast would raise RuntimeError for both).
int64_t int_arg(const py::handle& v, const char* name);
// A Python int or float (not bool) as double: TypeError naming `name` otherwise.
double float_arg(const py::handle& v, const char* name);

}  // namespace slmk
