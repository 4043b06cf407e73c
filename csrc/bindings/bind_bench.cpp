// ---- probes of the machine's limits, for the benchmarks (private: leading underscore) ----
#include <chrono>
#include <cstring>

#include "bindings.h"
#include "core/probe.h"
#include "core/aligned_bytes.h"
#include "core/thread_pool.h"

namespace slmk {

namespace {
double now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

void bind_bench(py::module_& m) {
    m.def(
        "_probe_read_bandwidth",
        [](int64_t bytes, int reps) {
            if (bytes < 4096 || reps < 1) throw py::value_error("bytes >= 4096 and reps >= 1 required");
            bytes = bytes / 4096 * 4096;
            double best = 1e30;
            uint64_t sink = 0;
            {
                py::gil_scoped_release rel;
                AlignedBytes buf(bytes);
                parallel_for(bytes / 4096, 64, [&](int64_t a, int64_t b) {
                    std::memset(buf.ptr + a * 4096, 1, (b - a) * 4096);  // fault pages in, on their threads
                });
                sink += probe_read(kernels(), buf.ptr, bytes, 1);  // warm-up
                for (int r = 0; r < reps; ++r) {
                    const double t0 = now();
                    sink += probe_read(kernels(), buf.ptr, bytes, 1);
                    best = std::min(best, now() - t0);
                }
            }
            py::dict d;
            d["bytes"] = bytes;
            d["seconds"] = best;
            d["gb_per_s"] = bytes / best / 1e9;
            d["checksum"] = sink;
            return d;
        },
        py::arg("bytes"), py::arg("reps") = 5,
        "Streaming-read bandwidth over `bytes` (use more than the last-level cache), best of `reps`, on all threads.");
    m.def(
        "_probe_peak",
        [](const std::string& kind, double seconds) {
            if (kind != "int8" && kind != "fp32") throw py::value_error("kind must be 'int8' or 'fp32'");
            const ProbeKernels probes = kernels();
            auto run = [&](int64_t iters) {
                return kind == "int8" ? probe_int8_macs(probes, iters) : probe_fp32_fmas(probes, iters);
            };
            double ops = 0, dt = 0;
            {
                py::gil_scoped_release rel;
                int64_t iters = 1000;
                for (;;) {
                    const double t0 = now();
                    ops = run(iters);
                    dt = now() - t0;
                    if (ops == 0 || dt > seconds) break;
                    iters *= 4;
                }
            }
            py::dict d;
            d["kind"] = kind;
            d["gops"] = ops == 0 ? 0.0 : 2.0 * ops / dt / 1e9;  // one multiply-add = 2 ops
            d["threads"] = get_num_threads();
            return d;
        },
        py::arg("kind"), py::arg("seconds") = 0.2,
        "Peak int8 or fp32 multiply-add throughput of the ISA in use on all threads (GOPS; 0 if no probe).");
}

}  // namespace slmk
