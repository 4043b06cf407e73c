// ---- GeGLU (scalar) ----
#include "geglu.h"

#include <algorithm>
#include <cmath>

#include "../core/thread_pool.h"

namespace slmk {

void geglu(const float* g, int64_t ldg, const float* u, int64_t ldu, float* y, int64_t ldy, int64_t rows, int64_t n) {
    constexpr float kSqrt2OverPi = 0.7978845608028654f;  // sqrt(2 / pi)
    constexpr float kCubic = 0.044715f;
    parallel_for(rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, n)), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const float* gr = g + r * ldg;
            const float* ur = u + r * ldu;
            float* yr = y + r * ldy;
            for (int64_t i = 0; i < n; ++i) {
                const float x = gr[i];
                yr[i] = 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * (x + kCubic * x * x * x))) * ur[i];
            }
        }
    });
}

}  // namespace slmk
