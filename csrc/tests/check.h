// ---- a minimal check harness for the C++ kernel tests (no dependencies, runs under qemu) ----
#pragma once
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

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

}  // namespace slmk_test
