// ---- every Mamba-2 entry of the registry against its scalar twin ----
// The scans (sequential and chunked) and the conv before SiLU: the same bits. SiLU and the
// gated norm: within 64 ulp (a polynomial exp and lane-order sums, as tests/test_ops.py).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "check.h"
#include "core/registry.h"
#include "ssm/ssm.h"

using namespace slmk;
using namespace slmk_test;

static bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

static bool close(const std::vector<float>& a, const std::vector<float>& b, float rtol) {
    for (size_t i = 0; i < a.size(); ++i) {
        if (std::isnan(a[i]) != std::isnan(b[i])) return false;
        if (std::isnan(a[i])) continue;
        if (std::fabs(a[i] - b[i]) > rtol * std::fabs(a[i]) + 1e-30f) return false;
    }
    return true;
}

struct ScanCase {
    int T, nh, hd, ds, ng;
};

// Inputs of one scan: x, dt, B, C as rows of one fused buffer (as the model's projection gives
// them), dt_bias, A < 0, D, a random initial state.
struct ScanData {
    ScanCase c;
    int64_t ld;
    std::vector<float> buf, dt_bias, A, D, state;
    ScanData(ScanCase c_, uint32_t seed) : c(c_) {
        ld = int64_t(c.nh) * c.hd + 2 * c.ng * c.ds + c.nh + 3;  // + 3: rows not a multiple of the vector
        buf = test_data(size_t(c.T * ld), seed, 0);
        dt_bias = test_data(c.nh, seed + 1, 0);
        A = test_data(c.nh, seed + 2, 0);
        for (auto& a : A) a = -std::exp(a);
        D = test_data(c.nh, seed + 3, 0);
        state = test_data(size_t(c.nh) * c.ds * c.hd, seed + 4, 0);
    }
    SsmScanArgs args(float* st, float* y) const {
        SsmScanArgs a;
        a.x = buf.data();
        a.B = buf.data() + int64_t(c.nh) * c.hd;
        a.C = a.B + int64_t(c.ng) * c.ds;
        a.dt = a.C + int64_t(c.ng) * c.ds;
        a.ldx = a.ldb = a.ldc = a.lddt = ld;
        a.dt_bias = dt_bias.data();
        a.A = A.data();
        a.D = D.data();
        a.state = st;
        a.y = y;
        a.ldy = int64_t(c.nh) * c.hd;
        a.T = c.T;
        a.n_heads = c.nh;
        a.head_dim = c.hd;
        a.d_state = c.ds;
        a.n_groups = c.ng;
        a.h0 = 0;
        a.h1 = c.nh;
        return a;
    }
};

static const ScanCase kCases[] = {{1, 4, 64, 128, 1}, {3, 6, 24, 16, 2}, {64, 2, 5, 7, 1},
                                  {65, 4, 32, 17, 2}, {130, 2, 64, 64, 1}, {7, 3, 1, 1, 3}};

static std::string case_name(const std::string& who, const ScanCase& c) {
    return who + " T=" + std::to_string(c.T) + " nh=" + std::to_string(c.nh) + " hd=" + std::to_string(c.hd) +
           " ds=" + std::to_string(c.ds);
}

// A token-by-token scan entry: the scalar twin's bits, and stepping one token at a time gives the
// bits of one call over all tokens (decode = prefill).
static void test_scan_entry(const Kernel& k, const KernelTable& ref) {
    const KernelTable t = scalar_with(k);
    for (const ScanCase& c : kCases) {
        const std::string what = case_name(k.name, c);
        ScanData d(c, 7 + c.T);
        const size_t ny = size_t(c.T) * c.nh * c.hd;
        std::vector<float> s_ref = d.state, s_got = d.state, y_ref(ny), y_got(ny);
        ssm_scan(ref, d.args(s_ref.data(), y_ref.data()));
        ssm_scan(t, d.args(s_got.data(), y_got.data()));
        check(same_bits(y_ref, y_got) && same_bits(s_ref, s_got), what + " scan: bits of the scalar twin");
        std::vector<float> s_step = d.state, y_step(ny);
        for (int tok = 0; tok < c.T; ++tok) {
            SsmScanArgs a = d.args(s_step.data(), y_step.data() + size_t(tok) * c.nh * c.hd);
            a.x += tok * d.ld;
            a.B += tok * d.ld;
            a.C += tok * d.ld;
            a.dt += tok * d.ld;
            a.T = 1;
            ssm_scan(t, a);
        }
        check(same_bits(y_step, y_got) && same_bits(s_step, s_got), what + " token by token = one call");
    }
}

// A chunked-scan entry (the gram or the chunk kernel): the chunked scan with it in, the scalar
// twin's bits.
static void test_chunked_entry(const Kernel& k, const KernelTable& ref) {
    const KernelTable t = scalar_with(k);
    for (const ScanCase& c : kCases) {
        ScanData d(c, 7 + c.T);
        const size_t ny = size_t(c.T) * c.nh * c.hd;
        std::vector<float> s_ref = d.state, s_got = d.state, y_ref(ny), y_got(ny);
        ssm_scan_chunked(ref, d.args(s_ref.data(), y_ref.data()));
        ssm_scan_chunked(t, d.args(s_got.data(), y_got.data()));
        check(same_bits(y_ref, y_got) && same_bits(s_ref, s_got), case_name(k.name, c) + " chunked: bits of the scalar twin");
    }
}

// A conv entry: the state and (without SiLU) the outputs bit for bit; with SiLU within 64 ulp.
static void test_conv_entry(const Kernel& k, const KernelTable& ref, float rtol) {
    const KernelTable t = scalar_with(k);
    for (int K : {2, 4}) {
        for (int64_t T : {1, 2, 5, 40}) {
            for (int64_t C : {1, 7, 16, 33, 200}) {
                const std::string what = k.name + " K=" + std::to_string(K) + " T=" + std::to_string(T) +
                                         " C=" + std::to_string(C);
                const int64_t ldx = C + 5;
                std::vector<float> x = test_data(size_t(T * ldx), 11 + C, 0), w = test_data(size_t(K * C), 12, 0),
                                   b = test_data(size_t(C), 13, 0), st0 = test_data(size_t((K - 1) * C), 14, 0);
                for (auto& v : x) v *= 3.0f;
                for (bool act : {false, true}) {
                    std::vector<float> s_ref = st0, s_got = st0, y_ref(size_t(T * C)), y_got(size_t(T * C));
                    SsmConvArgs a;
                    a.x = x.data();
                    a.ldx = ldx;
                    a.w = w.data();
                    a.b = b.data();
                    a.ldy = C;
                    a.T = T;
                    a.C = C;
                    a.K = K;
                    a.silu = act;
                    a.state = s_ref.data();
                    a.y = y_ref.data();
                    ssm_conv(ref, a);
                    a.state = s_got.data();
                    a.y = y_got.data();
                    ssm_conv(t, a);
                    check(same_bits(s_ref, s_got), what + " state");
                    check(act ? close(y_ref, y_got, rtol) : same_bits(y_ref, y_got),
                          what + (act ? " silu within 64 ulp" : " bits"));
                }
            }
        }
    }
}

static void test_gated_norm_entry(const Kernel& k, const KernelTable& ref, float rtol) {
    for (int64_t n : {8, 24, 64, 3072}) {
        for (int64_t group : {n, n / 2, n / 8}) {
            if (group < 1 || n % group) continue;
            std::vector<float> y = test_data(size_t(n), 21, 0), z = test_data(size_t(n), 22, 0),
                               w = test_data(size_t(n), 23, 0), a(n), b(n);
            for (auto& v : z) v *= 4.0f;
            SsmKernels(ref).gated_norm()(y.data(), z.data(), w.data(), a.data(), n, group, 1e-5f);
            kernel_fn<Op::ssm_gated_norm>(k)(y.data(), z.data(), w.data(), b.data(), n, group, 1e-5f);
            check(close(a, b, rtol), k.name + " n=" + std::to_string(n) + " group=" + std::to_string(group));
        }
    }
}

int main() {
    const KernelTable& ref = kernels_for(Isa::scalar);
    const float rtol = 64.0f / 16777216.0f;
    // chunked vs sequential, on the scalar twins: the reassociation only (tests/test_ssm.py bounds
    // it against float64; here a loose sanity bound)
    for (const ScanCase& c : kCases) {
        ScanData d(c, 7 + c.T);
        const size_t ny = size_t(c.T) * c.nh * c.hd;
        std::vector<float> s1 = d.state, s2 = d.state, y1(ny), y2(ny);
        ssm_scan(ref, d.args(s1.data(), y1.data()));
        ssm_scan_chunked(ref, d.args(s2.data(), y2.data()));
        float worst = 0.0f, big = 0.0f;
        for (size_t i = 0; i < ny; ++i) {
            worst = std::max(worst, std::fabs(y2[i] - y1[i]));
            big = std::max(big, std::fabs(y1[i]));
        }
        check(worst <= 1e-4f * big, case_name("scalar", c) + " chunked vs sequential");
    }
    for (const Kernel* k : entries_under_test(Op::ssm_scan, /*with_scalar=*/true)) test_scan_entry(*k, ref);
    for (const Kernel* k : entries_under_test(Op::ssm_gram)) test_chunked_entry(*k, ref);
    for (const Kernel* k : entries_under_test(Op::ssm_chunk)) test_chunked_entry(*k, ref);
    for (const Kernel* k : entries_under_test(Op::ssm_conv)) test_conv_entry(*k, ref, rtol);
    for (const Kernel* k : entries_under_test(Op::ssm_gated_norm)) test_gated_norm_entry(*k, ref, rtol);
    return finish("test_ssm");
}
