// ---- array intake: numpy arrays, torch CPU tensors, any __dlpack__ producer ----
// Activations and `out=` arrays are viewed where they are (no copy); float16 and bfloat16 are
// widened to float32 (and results narrowed back) by the F16/BF16 row kernels of the ISA in use,
// in C++ with the GIL released, never by a Python-level copy.
#include <pybind11/stl.h>

#include <cstring>
#include <vector>

#include "bindings.h"
#include "core/isa.h"
#include "core/registry.h"
#include "quant/formats.h"
#include "core/thread_pool.h"

namespace slmk {

namespace {

// DLPack ABI (dlpack.h, v0.8 "legacy" capsule layout; a C struct layout, stable across versions):
// a producer's __dlpack__() returns a PyCapsule named "dltensor" holding a DLManagedTensor*. The
// consumer renames it "used_dltensor" and calls `deleter` once when it no longer needs the memory.
struct DLDevice {
    int32_t device_type;  // 1 = kDLCPU
    int32_t device_id;
};
struct DLDataType {
    uint8_t code;  // 0 int, 1 uint, 2 float, 4 bfloat, 6 bool
    uint8_t bits;
    uint16_t lanes;
};
struct DLTensor {
    void* data;
    DLDevice device;
    int32_t ndim;
    DLDataType dtype;
    int64_t* shape;    // (ndim,)
    int64_t* strides;  // (ndim,) in elements, or null for a compact row-major tensor
    uint64_t byte_offset;
};
struct DLManagedTensor {
    DLTensor dl_tensor;
    void* manager_ctx;
    void (*deleter)(DLManagedTensor*);
};
constexpr int32_t kDLCPU = 1;

std::string type_name(const py::handle& h) { return py::str(py::type::of(h).attr("__name__")); }

// torch.Tensor if torch has been imported (a tensor cannot exist before that), else null.
py::object torch_module() {
    py::dict modules = py::module_::import("sys").attr("modules");
    if (!modules.contains("torch")) return py::object();
    return modules["torch"];
}

bool is_torch_tensor(const py::handle& h) {
    py::object torch = torch_module();
    return torch && py::isinstance(h, torch.attr("Tensor"));
}

py::dtype numpy_dtype_of(const DLDataType& t, const char* name, ElemType* elem) {
    *elem = ElemType::Other;
    if (t.lanes != 1) throw py::type_error(std::string(name) + ": vector (multi-lane) DLPack dtypes are not supported");
    const int bytes = t.bits / 8;
    if (t.code == 2 && t.bits == 32) *elem = ElemType::F32;
    if (t.code == 2 && t.bits == 16) *elem = ElemType::F16;
    if (t.code == 4 && t.bits == 16) {
        *elem = ElemType::BF16;
        return py::dtype("uint16");  // numpy has no bfloat16: the bits, viewed as uint16
    }
    if (t.code == 2 && (t.bits == 16 || t.bits == 32 || t.bits == 64)) return py::dtype("float" + std::to_string(t.bits));
    if ((t.code == 0 || t.code == 1) && (bytes == 1 || bytes == 2 || bytes == 4 || bytes == 8) && t.bits % 8 == 0)
        return py::dtype(std::string(t.code == 0 ? "int" : "uint") + std::to_string(t.bits));
    if (t.code == 6 && t.bits == 8) return py::dtype("bool");
    throw py::type_error(std::string(name) + " has an unsupported DLPack dtype (code " + std::to_string(t.code) + ", " +
                         std::to_string(t.bits) + " bits)");
}

// The memory of a __dlpack__ producer as a numpy array (a view; the capsule's deleter runs when
// the view is released).
py::array dlpack_view(py::object obj, const char* name, ElemType* elem) {
    if (is_torch_tensor(obj)) obj = obj.attr("detach")();  // a tensor that requires grad refuses export
    if (py::hasattr(obj, "__dlpack_device__")) {
        py::tuple dev = obj.attr("__dlpack_device__")();
        if (dev.size() < 1 || dev[0].cast<int>() != kDLCPU)
            throw py::type_error(std::string(name) + " is not in CPU memory (DLPack device " + std::string(py::str(dev)) +
                                 "); move it to the CPU first");
    }
    py::object cap = obj.attr("__dlpack__")();
    if (!PyCapsule_IsValid(cap.ptr(), "dltensor"))
        throw py::type_error(std::string(name) + ".__dlpack__() did not return a DLPack capsule");
    auto* mt = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(cap.ptr(), "dltensor"));
    if (PyCapsule_SetName(cap.ptr(), "used_dltensor") != 0) throw py::error_already_set();
    // From here on the deleter is ours to call, whatever happens.
    py::capsule owner(static_cast<void*>(mt), [](void* p) {
        auto* m = static_cast<DLManagedTensor*>(p);
        if (m->deleter) m->deleter(m);
    });
    const DLTensor& t = mt->dl_tensor;
    if (t.device.device_type != kDLCPU)
        throw py::type_error(std::string(name) + " is not in CPU memory; move it to the CPU first");
    const py::dtype dt = numpy_dtype_of(t.dtype, name, elem);
    const int64_t item = t.dtype.bits / 8;
    std::vector<py::ssize_t> shape(t.ndim), strides(t.ndim);
    int64_t compact = item;
    for (int d = t.ndim - 1; d >= 0; --d) {
        shape[d] = t.shape[d];
        strides[d] = t.strides ? t.strides[d] * item : compact;
        compact *= t.shape[d];
    }
    char* ptr = static_cast<char*>(t.data) + t.byte_offset;
    return py::array(dt, shape, strides, ptr, owner);
}

ElemType numpy_elem(const py::array& a) {
    if (a.dtype().is(py::dtype::of<float>())) return ElemType::F32;
    if (a.dtype().is(py::dtype("float16"))) return ElemType::F16;
    return ElemType::Other;
}

const char* elem_name(ElemType e) {
    switch (e) {
        case ElemType::F32: return "float32";
        case ElemType::F16: return "float16";
        case ElemType::BF16: return "bfloat16";
        default: return "?";
    }
}

Format elem_format(ElemType e) { return e == ElemType::F16 ? Format::F16 : Format::BF16; }

// Runs fn(i0, i1) over [0, n) on the thread pool, without the GIL for large n.
template <typename Fn>
void convert_range(int64_t n, Fn fn) {
    if (n < (1 << 15)) {
        fn(int64_t(0), n);
        return;
    }
    py::gil_scoped_release rel;
    parallel_for((n + 4095) / 4096, 1, [&](int64_t c0, int64_t c1) { fn(c0 * 4096, std::min(n, c1 * 4096)); });
}

void check_float_elem(const py::array& arr, ElemType e, const char* name) {
    if (e == ElemType::Other)
        throw py::type_error(std::string(name) + " must have dtype float32 (or float16, bfloat16), got " +
                             std::string(py::str(arr.dtype())));
}

}  // namespace

py::array as_array(const py::handle& a, const char* name, ElemType* elem, bool* torch) {
    *torch = false;
    if (py::isinstance<py::array>(a)) {
        py::array arr = py::reinterpret_borrow<py::array>(a);
        *elem = numpy_elem(arr);
        return arr;
    }
    if (!py::isinstance<py::str>(a) && py::hasattr(a, "__dlpack__")) {
        *torch = is_torch_tensor(a);
        return dlpack_view(py::reinterpret_borrow<py::object>(a), name, elem);
    }
    throw py::type_error(std::string(name) + " must be a numpy.ndarray, a torch tensor or a __dlpack__ array of float32 "
                         "(or float16, bfloat16), got " + type_name(a));
}

bool f32_aligned(const py::array& arr) { return (arr.flags() & kNpyAligned) != 0; }

py::array_t<float, py::array::c_style> widen_rows(const py::array& src, ElemType e, int64_t rows, int64_t n,
                                                  int64_t row_stride_bytes, std::vector<py::ssize_t> shape) {
    py::array_t<float, py::array::c_style> out(shape);
    const dequantize_row_fn dq = QuantKernels(kernels()).dequantize(elem_format(e));
    const uint8_t* s = static_cast<const uint8_t*>(src.data());
    float* d = out.mutable_data();
    if (row_stride_bytes == n * 2) {  // one contiguous run
        convert_range(rows * n, [&](int64_t i0, int64_t i1) { dq(s + i0 * 2, d + i0, i1 - i0); });
    } else {
        convert_range(rows, [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r) dq(s + r * row_stride_bytes, d + r * n, n);
        });
    }
    return out;
}

py::array_t<float, py::array::c_style> require_f32(const py::handle& a, const char* name, ArrayKind* kind) {
    ElemType e;
    bool torch;
    py::array arr = as_array(a, name, &e, &torch);
    if (kind) *kind = {torch, e};
    check_float_elem(arr, e, name);
    if (!(arr.flags() & py::array::c_style))
        throw py::value_error(std::string(name) + " must be C-contiguous (use numpy.ascontiguousarray)");
    if (e != ElemType::F32) {
        const int64_t n = arr.size();
        return widen_rows(arr, e, 1, n, n * 2, std::vector<py::ssize_t>(arr.shape(), arr.shape() + arr.ndim()));
    }
    if (!f32_aligned(arr)) {
        // A view at an odd byte offset of a buffer: the kernels read through float*, and a
        // misaligned float* is undefined behaviour (UBSan reports it; a vectorizer may assume
        // it aligned), so they get an aligned copy instead. Same values, same bits.
        py::array_t<float, py::array::c_style> copy(std::vector<py::ssize_t>(arr.shape(), arr.shape() + arr.ndim()));
        if (arr.nbytes() > 0) std::memcpy(copy.mutable_data(), arr.data(), static_cast<size_t>(arr.nbytes()));
        return copy;
    }
    return py::reinterpret_borrow<py::array_t<float, py::array::c_style>>(arr);
}

OutArg take_out(const py::handle& a, const char* name) {
    ElemType e;
    bool torch;
    OutArg o;
    py::array arr = as_array(a, name, &e, &torch);
    check_float_elem(arr, e, name);
    if (!(arr.flags() & py::array::c_style))
        throw py::value_error(std::string(name) + " must be C-contiguous (use numpy.ascontiguousarray)");
    if (!py::isinstance<py::array>(a) && !torch)
        throw py::type_error(std::string(name) + " must be a numpy.ndarray or a torch tensor (other DLPack arrays may be "
                             "read-only), got " + type_name(a));
    o.caller = py::reinterpret_borrow<py::object>(a);
    o.elem = e;
    if (e == ElemType::F32) {
        if (!f32_aligned(arr))
            throw py::value_error(std::string(name) + " must be aligned to 4 bytes (it is a float32 view at an odd byte offset)");
        o.f32 = py::reinterpret_borrow<py::array_t<float, py::array::c_style>>(arr);
    } else {
        if (!arr.writeable()) throw py::value_error(std::string(name) + " must be writeable");
        o.half = arr;
        o.f32 = py::array_t<float, py::array::c_style>(std::vector<py::ssize_t>(arr.shape(), arr.shape() + arr.ndim()));
    }
    return o;
}

py::array_t<float, py::array::c_style> require_f32_out(const py::handle& a, const char* name) {
    OutArg o = take_out(a, name);
    if (o.elem != ElemType::F32)
        throw py::type_error(std::string(name) + " must have dtype float32, got " + elem_name(o.elem));
    return o.f32;
}

void OutArg::commit() {
    if (elem == ElemType::F32) return;
    const quantize_row_fn q = QuantKernels(kernels()).quantize(elem_format(elem));
    const float* s = f32.data();
    uint8_t* d = static_cast<uint8_t*>(half.mutable_data());
    convert_range(f32.size(), [&](int64_t i0, int64_t i1) { q(s + i0, d + i0 * 2, i1 - i0); });
}

py::object as_result(py::array_t<float, py::array::c_style> r, const ArrayKind& kind) {
    if (kind.elem != ElemType::F16 && kind.elem != ElemType::BF16) {
        if (!kind.torch) return std::move(r);
        return torch_module().attr("from_numpy")(r);  // shares r's memory
    }
    py::object res;
    if (kind.torch) {
        py::object torch = torch_module();
        py::tuple shape(r.ndim());
        for (py::ssize_t d = 0; d < r.ndim(); ++d) shape[d] = r.shape(d);
        res = torch.attr("empty")(shape, py::arg("dtype") = torch.attr(kind.elem == ElemType::F16 ? "float16" : "bfloat16"));
    } else if (kind.elem == ElemType::F16) {
        res = py::array(py::dtype("float16"), std::vector<py::ssize_t>(r.shape(), r.shape() + r.ndim()));
    } else {
        return std::move(r);  // bfloat16 from a non-torch DLPack producer: numpy has no bfloat16
    }
    OutArg o = take_out(res, "result");
    o.f32 = r;
    o.commit();
    return res;
}

}  // namespace slmk
