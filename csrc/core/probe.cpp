// ---- machine-limit probes ----
// The read loop is the ISA's widest loads into 8 independent accumulators (probe_<isa>.cpp;
// the plain C++ 64-bit loop below, the scalar entry, under-measured: GEMV beat it by 3-11%),
// each thread a contiguous slice. The compute peaks come from the per-ISA probe loops as well.
#include "probe.h"

#include <atomic>

#include "thread_pool.h"

namespace slmk {

namespace {

uint64_t read_scalar(const uint8_t* buf, int64_t bytes) {
    const uint64_t* p = reinterpret_cast<const uint64_t*>(buf);
    const int64_t n = bytes / 8;
    uint64_t a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t i = 0; i < n; i += 8)
        for (int j = 0; j < 8; ++j) a[j] += p[i + j];
    uint64_t s = 0;
    for (int j = 0; j < 8; ++j) s += a[j];
    return s;
}

template <typename Fn>
double on_every_thread(Fn fn, int64_t iters) {
    const int t = get_num_threads();
    std::atomic<int64_t> bits{0};
    parallel_for(t, 1, [&](int64_t a, int64_t b) {
        for (int64_t i = a; i < b; ++i) bits.store(static_cast<int64_t>(fn(iters)));
    });
    return static_cast<double>(bits.load()) * t;
}

constexpr std::array<KernelEntry, 1> kEntries = {entry<Op::probe_read, read_scalar>()};

}  // namespace

extern constexpr KernelList kernels_probe_scalar{Isa::scalar, kEntries.data(), kEntries.size()};

uint64_t probe_read(const ProbeKernels& k, const uint8_t* buf, int64_t bytes, int reps) {
    const probe_read_fn read_slice = k.read();
    std::atomic<uint64_t> total{0};
    const int64_t pages = bytes / 4096;
    // Split as the GEMV splits its weight groups (gemm_driver.cpp: up to 16 contiguous chunks per
    // thread, claimed as threads come free), so a thread that runs late on a shared host is made up
    // for by the other as in the GEMV. With one fixed half per thread the probe waited for the
    // slower thread and read below what 2-thread GEMVs then streamed (up to 1.16x in one run).
    constexpr int kChunksPerThread = 16;
    for (int rep = 0; rep < reps; ++rep)
        parallel_for(pages, 1, [&](int64_t p0, int64_t p1) { total += read_slice(buf + p0 * 4096, (p1 - p0) * 4096); },
                     kChunksPerThread);
    return total.load();
}

double probe_int8_macs(const ProbeKernels& k, int64_t iters) {
    const probe_peak_fn fn = k.int8();
    return fn ? on_every_thread(fn, iters) : 0.0;
}

double probe_fp32_fmas(const ProbeKernels& k, int64_t iters) {
    const probe_peak_fn fn = k.fp32();
    return fn ? on_every_thread(fn, iters) : 0.0;
}

}  // namespace slmk
