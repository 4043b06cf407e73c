// ---- every row-op entry of the registry against its scalar twin, within the float tolerance of tests/test_ops.py ----
#include <cmath>
#include <cstring>

#include "check.h"
#include "ops/ops.h"

using namespace slmk;
using namespace slmk_test;

static bool close(const std::vector<float>& a, const std::vector<float>& b, float rtol) {
    for (size_t i = 0; i < a.size(); ++i) {
        if (std::isnan(a[i]) != std::isnan(b[i])) return false;
        if (std::isnan(a[i])) continue;
        if (std::fabs(a[i] - b[i]) > rtol * std::fabs(a[i]) + 1e-30f) return false;
    }
    return true;
}

// GeGLU's exp(-t), t = x (c1 + c3 x^2): the few roundings of t (relative ~3 ulp) become a relative
// error of |t| times that in exp(-t), so each element may differ by 64 ulp + 4 ulp per unit of |t|.
static bool geglu_close(const std::vector<float>& x, const std::vector<float>& a, const std::vector<float>& b,
                        float rtol) {
    for (size_t i = 0; i < a.size(); ++i) {
        if (std::isnan(a[i]) != std::isnan(b[i])) return false;
        if (std::isnan(a[i])) continue;
        const float t = std::fabs(x[i] * (kGeluT1 + kGeluT3 * x[i] * x[i]));
        if (std::fabs(a[i] - b[i]) > rtol * (1.0f + t / 16.0f) * std::fabs(a[i]) + 1e-30f) return false;
    }
    return true;
}

int main() {
    const KernelTable& ref = kernels_for(Isa::scalar);
    const float rtol = 64.0f / 16777216.0f;  // 64 ulp: lane-order sums and a ~2 ulp polynomial exp
    const std::vector<const Kernel*> rmsnorms = entries_under_test(Op::rmsnorm), swiglus = entries_under_test(Op::swiglu),
                                     geglus = entries_under_test(Op::geglu), reglus = entries_under_test(Op::reglu);
    for (int64_t n : {1, 3, 8, 17, 64, 576, 1536, 4099}) {
        std::vector<float> x = test_data(n, 3 + n, 0), w = test_data(n, 4 + n, 0), u = test_data(n, 5 + n, 0);
        for (auto& v : x) v *= 4.0f;  // silu over its whole curve
        std::vector<float> a(n), b(n);
        for (const Kernel* k : rmsnorms) {
            ref.get<Op::rmsnorm>(Format::F32)(x.data(), w.data(), a.data(), n, 1e-5f);
            kernel_fn<Op::rmsnorm>(*k)(x.data(), w.data(), b.data(), n, 1e-5f);
            check(close(a, b, rtol), k->name + " n=" + std::to_string(n));
        }
        for (const Kernel* k : swiglus) {
            ref.get<Op::swiglu>(Format::F32)(x.data(), u.data(), a.data(), n);
            kernel_fn<Op::swiglu>(*k)(x.data(), u.data(), b.data(), n);
            check(close(a, b, rtol), k->name + " n=" + std::to_string(n));
        }
        for (const Kernel* k : geglus) {
            ref.get<Op::geglu>(Format::F32)(x.data(), u.data(), a.data(), n);
            kernel_fn<Op::geglu>(*k)(x.data(), u.data(), b.data(), n);
            check(geglu_close(x, a, b, rtol), k->name + " n=" + std::to_string(n));
        }
        // reglu: one rounding per element, the same bits (with -0, NaN and zeros of the gate)
        std::vector<float> xr = x;
        xr[0] = -0.0f;
        if (n > 2) xr[1] = std::nanf(""), xr[2] = 0.0f;
        for (const Kernel* k : reglus) {
            ref.get<Op::reglu>(Format::F32)(xr.data(), u.data(), a.data(), n);
            kernel_fn<Op::reglu>(*k)(xr.data(), u.data(), b.data(), n);
            check(std::memcmp(a.data(), b.data(), n * sizeof(float)) == 0, k->name + " n=" + std::to_string(n));
        }
    }
    return finish("test_ops");
}
