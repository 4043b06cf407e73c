// ---- machine-limit probes ----
// The read loop is the ISA's widest loads into 8 independent accumulators (probe_<isa>.cpp;
// the plain C++ 64-bit loop it replaced under-measured: GEMV beat it by 3-11%), each thread a
// contiguous slice. The compute peaks come from the per-ISA probe loops as well.
#include "probe.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "kernels.h"
#include "thread_pool.h"

namespace slmk {

#if defined(__x86_64__)
double probe_int8_avx512_vnni(int64_t iters);
double probe_int8_amx(int64_t iters);
uint64_t probe_read_avx512(const uint8_t* p, int64_t bytes);
uint64_t probe_read_avx2(const uint8_t* p, int64_t bytes);
double probe_int8_avx_vnni(int64_t iters);
double probe_int8_avx2(int64_t iters);
double probe_fp32_avx512(int64_t iters);
double probe_fp32_avx2(int64_t iters);
#endif
#if defined(__aarch64__)
double probe_int8_neon_dotprod(int64_t iters);
double probe_fp32_neon(int64_t iters);
#endif

namespace {
uint64_t read_generic(const uint8_t* buf, int64_t bytes) {
    const uint64_t* p = reinterpret_cast<const uint64_t*>(buf);
    const int64_t n = bytes / 8;
    uint64_t a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t i = 0; i < n; i += 8)
        for (int j = 0; j < 8; ++j) a[j] += p[i + j];
    uint64_t s = 0;
    for (int j = 0; j < 8; ++j) s += a[j];
    return s;
}
}  // namespace

uint64_t probe_read(const uint8_t* buf, int64_t bytes, int reps) {
    uint64_t (*read_slice)(const uint8_t*, int64_t) = read_generic;
#if defined(__x86_64__)
    switch (current_isa()) {
        case Isa::avx512:
        case Isa::avx512_vnni:
        case Isa::avx512_amx: read_slice = probe_read_avx512; break;
        case Isa::avx2:
        case Isa::avx_vnni: read_slice = probe_read_avx2; break;
        default: break;
    }
#endif
    std::atomic<uint64_t> total{0};
    const int64_t pages = bytes / 4096;
    for (int rep = 0; rep < reps; ++rep)
        parallel_for(pages, pages / std::max(1, get_num_threads()), [&](int64_t p0, int64_t p1) {
            total += read_slice(buf + p0 * 4096, (p1 - p0) * 4096);
        });
    return total.load();
}

namespace {
template <typename Fn>
double on_every_thread(Fn fn, int64_t iters) {
    const int t = get_num_threads();
    std::atomic<int64_t> bits{0};
    double per = 0;
    parallel_for(t, 1, [&](int64_t a, int64_t b) {
        for (int64_t i = a; i < b; ++i) {
            const double v = fn(iters);
            bits.store(static_cast<int64_t>(v));
        }
    });
    per = static_cast<double>(bits.load());
    return per * t;
}
}  // namespace

double probe_int8_macs(int64_t iters) {
    switch (current_isa()) {
#if defined(__x86_64__)
        case Isa::avx512_amx: return on_every_thread(probe_int8_amx, iters);  // TDPBSSD
        case Isa::avx512_vnni: return on_every_thread(probe_int8_avx512_vnni, iters);
        case Isa::avx_vnni: return on_every_thread(probe_int8_avx_vnni, iters);
        case Isa::avx512:
        case Isa::avx2: return on_every_thread(probe_int8_avx2, iters);
#endif
#if defined(__aarch64__)
        case Isa::neon_dotprod:
        case Isa::neon_i8mm: return on_every_thread(probe_int8_neon_dotprod, iters);
#endif
        default: return 0.0;
    }
}

double probe_fp32_fmas(int64_t iters) {
    switch (current_isa()) {
#if defined(__x86_64__)
        case Isa::avx512_amx:
        case Isa::avx512_vnni:
        case Isa::avx512: return on_every_thread(probe_fp32_avx512, iters);
        case Isa::avx_vnni:
        case Isa::avx2: return on_every_thread(probe_fp32_avx2, iters);
#endif
#if defined(__aarch64__)
        case Isa::neon:
        case Isa::neon_dotprod:
        case Isa::neon_i8mm: return on_every_thread(probe_fp32_neon, iters);
#endif
        default: return 0.0;
    }
}

}  // namespace slmk
