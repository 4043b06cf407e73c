// ---- every attention chunk entry of the registry against its scalar twin, through the driver ----
// Float kernels: SIMD reorders sums and uses a polynomial exp, so results match the scalar
// twin within kAttnTol relative to max|v| (see tests/test_attention.py for the bound); they
// must match themselves bit for bit for any thread count and any query split.
#include <cmath>
#include <cstring>

#include "attention/attention.h"
#include "check.h"
#include "core/thread_pool.h"
#include "kvcache/kvcache.h"

using namespace slmk;
using namespace slmk_test;

constexpr float kAttnTol = 2e-4f;

static float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
    float m = 0.0f;
    for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
    return m;
}

int main() {
    std::printf("supported ISAs:");
    for (Isa i : supported_isas()) std::printf(" %s", isa_name(i));
    std::printf("\n");
    const KernelTable& ref = kernels_for(Isa::scalar);
    const std::vector<const Kernel*> chunks = entries_under_test(Op::attn_chunk, /*with_scalar=*/true);
    const Format dtypes[] = {Format::F32, Format::F16, Format::Q8_0, Format::Q4_0};
    struct Shape { int D, Hkv, G; int64_t L, T; int bt; int64_t window; float softcap; bool sinks; };
    const Shape shapes[] = {
        {64, 3, 3, 4096, 1, 32, 0, 0, false},  {64, 1, 8, 300, 7, 16, 0, 0, true},  {80, 2, 4, 257, 1, 32, 100, 0, false},
        {128, 1, 1, 33, 33, 32, 0, 30.f, false}, {256, 2, 2, 513, 3, 64, 0, 0, true}, {100, 1, 5, 70, 70, 8, 9, 5.f, true},
        {64, 1, 6, 1, 1, 32, 0, 0, false},
    };
    for (Format f : dtypes) {
        for (const Shape& s : shapes) {
            KVCache c(1, s.Hkv, s.D, s.L + 64, s.bt, f, {});
            const int64_t seq = c.new_sequence();
            c.extend(seq, s.L);
            std::vector<float> k = test_data(s.L * s.Hkv * s.D, 1 + s.D, 0), v = test_data(s.L * s.Hkv * s.D, 2 + s.D, 0);
            c.write(ref, 0, seq, k.data(), v.data(), s.L);
            const int64_t H = s.Hkv * s.G;
            std::vector<float> q = test_data(s.T * H * s.D, 3, 0), sinks = test_data(H, 4, 0);
            AttnOptions opt;
            opt.window = s.window;
            opt.softcap = s.softcap;
            opt.sinks = s.sinks ? sinks.data() : nullptr;
            std::vector<float> o_ref(s.T * H * s.D), o(o_ref.size()), o2(o_ref.size());
            set_num_threads(2);
            attention(ref, c, 0, seq, q.data(), s.T, H, opt, o_ref.data());
            float vmax = 1.0f;
            for (float x : v) vmax = std::max(vmax, std::fabs(x));
            for (const Kernel* k : chunks) {
                if (k->e.format != f) continue;
                const KernelTable kern = scalar_with(*k);
                const std::string tag = k->name + " D=" + std::to_string(s.D) + " G=" + std::to_string(s.G) +
                                        " L=" + std::to_string(s.L) + " T=" + std::to_string(s.T);
                set_num_threads(2);
                attention(kern, c, 0, seq, q.data(), s.T, H, opt, o.data());
                const float err = max_abs_diff(o, o_ref) / vmax;
                check(err <= kAttnTol, tag + " vs scalar: error " + std::to_string(err));
                set_num_threads(1);
                attention(kern, c, 0, seq, q.data(), s.T, H, opt, o2.data());
                check(std::memcmp(o.data(), o2.data(), o.size() * 4) == 0, tag + " differs between 1 and 2 threads");
                // the last query alone (decode) equals the last row of the prefill, bit for bit
                std::vector<float> o1(H * s.D);
                attention(kern, c, 0, seq, q.data() + (s.T - 1) * H * s.D, 1, H, opt, o1.data());
                check(std::memcmp(o1.data(), o.data() + (s.T - 1) * H * s.D, o1.size() * 4) == 0,
                      tag + " decode differs from the prefill's last row");
            }
        }
    }
    set_num_threads(2);
    return finish("test_attention");
}
