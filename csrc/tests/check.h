// ---- a minimal check harness for the C++ kernel tests (no dependencies, runs under qemu) ----
#pragma once
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/registry.h"

namespace slmk_test {

inline int& failures() { static int f = 0; return f; }
inline int& passes() { static int p = 0; return p; }

inline void check(bool ok, const std::string& what) {
    if (ok) {
        ++passes();
    } else {
        ++failures();
        if (failures() <= 50) std::fprintf(stderr, "FAIL: %s\n", what.c_str());
    }
}

// Prints the closing line and returns the process exit code.
inline int finish(const char* name) {
    std::printf("%s: %d passed, %d failed\n", name, passes(), failures());
    return failures() == 0 ? 0 : 1;
}

// Random float32 data with the cases kernels get wrong: zeros, a huge outlier, subnormals,
// exact ties (k + 0.5 after scaling), and runs of equal values.
inline std::vector<float> test_data(size_t n, uint32_t seed, int kind) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> g(0.0f, 1.0f);
    std::vector<float> x(n);
    for (size_t i = 0; i < n; ++i) {
        switch (kind) {
            case 0: x[i] = g(rng); break;                                   // gaussian
            case 1: x[i] = 0.0f; break;                                     // all zero
            case 2: x[i] = (i % 7 == 0) ? 1000.0f * g(rng) : g(rng); break; // outliers
            case 3: x[i] = g(rng) * 1e-40f; break;                          // subnormal
            case 4: x[i] = static_cast<float>(static_cast<int>(rng() % 33) - 16) * 0.5f; break;  // ties
            case 5: x[i] = (i % 2) ? 65504.0f : -65504.0f; break;          // fp16 extremes
            default: x[i] = g(rng) * 1e-6f; break;                          // tiny normals
        }
    }
    return x;
}
constexpr int kNumDataKinds = 7;

// ---- the registry's entries under test ----
// Every entry of `op` the tests compare with its scalar twin: those of the ISAs this CPU runs,
// the twins themselves only when asked (for checks a kernel makes against itself: thread counts,
// query splits). Prints what this CPU cannot reach, so a run says what it did not test.
inline std::vector<const slmk::Kernel*> entries_under_test(slmk::Op op, bool with_scalar = false) {
    std::vector<const slmk::Kernel*> out;
    for (const slmk::Kernel& k : slmk::all_kernels()) {
        if (k.e.op != op || (k.isa == slmk::Isa::scalar && !with_scalar)) continue;
        if (slmk::isa_supported(k.isa)) out.push_back(&k);
        else std::printf("not on this CPU: %s\n", k.name.c_str());
    }
    return out;
}

// The scalar table with one entry put in: inside a driver exactly that entry runs for its op and
// format, every other op is the scalar twin. Its result must equal the plain scalar table's.
inline slmk::KernelTable scalar_with(const slmk::Kernel& k) {
    slmk::KernelTable t = slmk::kernels_for(slmk::Isa::scalar);
    t.at[static_cast<int>(k.e.op)][static_cast<int>(k.e.format)] = &k;
    return t;
}

}  // namespace slmk_test
