// ---- probes of the machine's limits, for the benchmarks (private: leading underscore) ----
#include <algorithm>
#include <chrono>
#include <cstring>
#include <stdexcept>

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

// A read-bandwidth probe over one buffer kept between measurements, so a benchmark can take the
// bandwidth between its own timed samples (same run, same moment) without faulting a new buffer
// in each time. From 4 MiB on the buffer is whole 2 MiB pages allocated as the packed weights are
// (AlignedBytes::reserve(n, huge = true): 2 MiB aligned, transparent huge pages), so the GEMV rows
// compare their weight streams with a stream on the same kind of pages.
struct ReadProbe {
    AlignedBytes buf;
    int64_t bytes = 0;
    explicit ReadProbe(int64_t want) {
        if (want < 4096) throw py::value_error("bytes >= 4096 required");
        constexpr int64_t kHuge = 2 << 20;
        bytes = want >= 2 * kHuge ? want / kHuge * kHuge : want / 4096 * 4096;
        py::gil_scoped_release rel;
        buf.reserve(bytes, /*huge=*/true);
        parallel_for(bytes / 4096, 64, [&](int64_t a, int64_t b) {
            std::memset(buf.ptr + a * 4096, 1, (b - a) * 4096);  // fault pages in, on their threads
        });
    }
    // Best of `reps` timed reads after one warm-up read, on all threads; every read's checksum is
    // validated (each 64-bit word reads 0x0101010101010101: a read that skipped bytes gives another sum).
    py::dict measure(int reps) {
        if (reps < 1) throw py::value_error("reps >= 1 required");
        double best = 1e30;
        uint64_t sink = 0;
        {
            py::gil_scoped_release rel;
            sink += probe_read(kernels(), buf.ptr, bytes, 1);  // warm-up
            for (int r = 0; r < reps; ++r) {
                const double t0 = now();
                sink += probe_read(kernels(), buf.ptr, bytes, 1);
                best = std::min(best, now() - t0);
            }
        }
        const uint64_t one_read = static_cast<uint64_t>(bytes / 8) * 0x0101010101010101ull;
        if (sink != one_read * static_cast<uint64_t>(reps + 1))
            throw std::runtime_error("read-bandwidth probe: checksum mismatch (a read was skipped)");
        py::dict d;
        d["bytes"] = bytes;
        d["seconds"] = best;
        d["gb_per_s"] = bytes / best / 1e9;
        d["checksum"] = sink;
        return d;
    }
};

void bind_bench(py::module_& m) {
    py::class_<ReadProbe>(m, "_ReadProbe",
                          "A streaming-read probe over one buffer of `bytes` (from 4 MiB rounded down to whole 2 MiB\n"
                          "transparent huge pages, as the packed weights are), kept for repeated measurements.")
        .def(py::init<int64_t>(), py::arg("bytes"))
        .def_readonly("bytes", &ReadProbe::bytes)
        .def("measure", &ReadProbe::measure, py::arg("reps") = 3,
             "Best of `reps` reads on all threads (after a warm-up read): dict bytes, seconds, gb_per_s, checksum.");
    m.def(
        "_probe_read_bandwidth",
        [](int64_t bytes, int reps) {
            if (bytes < 4096 || reps < 1) throw py::value_error("bytes >= 4096 and reps >= 1 required");
            return ReadProbe(bytes).measure(reps);
        },
        py::arg("bytes"), py::arg("reps") = 5,
        "Streaming-read bandwidth over `bytes` (use more than the last-level cache; from 4 MiB rounded down to whole\n"
        "2 MiB transparent huge pages, as the packed weights are), best of `reps`, on all threads; the read\n"
        "checksum is validated.");
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
