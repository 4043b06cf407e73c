// ---- every ISA's row ops against the scalar twin, within the float tolerance of tests/test_ops.py ----
#include <cmath>

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

int main() {
    const KernelTable& ref = kernels_for(Isa::scalar);
    const float rtol = 64.0f / 16777216.0f;  // 64 ulp: lane-order sums and a ~2 ulp polynomial exp
    for (Isa isa : supported_isas()) {
        if (isa == Isa::scalar) continue;
        const KernelTable& k = kernels_for(isa);
        for (int64_t n : {1, 3, 8, 17, 64, 576, 1536, 4099}) {
            std::vector<float> x = test_data(n, 3 + n, 0), w = test_data(n, 4 + n, 0), u = test_data(n, 5 + n, 0);
            for (auto& v : x) v *= 4.0f;  // silu over its whole curve
            std::vector<float> a(n), b(n);
            OpsKernels(ref).rmsnorm()(x.data(), w.data(), a.data(), n, 1e-5f);
            OpsKernels(k).rmsnorm()(x.data(), w.data(), b.data(), n, 1e-5f);
            check(close(a, b, rtol), std::string(isa_name(isa)) + " rmsnorm n=" + std::to_string(n));
            OpsKernels(ref).swiglu()(x.data(), u.data(), a.data(), n);
            OpsKernels(k).swiglu()(x.data(), u.data(), b.data(), n);
            check(close(a, b, rtol), std::string(isa_name(isa)) + " swiglu n=" + std::to_string(n));
        }
    }
    return finish("test_ops");
}
