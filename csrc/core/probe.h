// ---- machine-limit probes for the benchmarks: streaming read bandwidth, int8 / fp32 peaks ----
#pragma once
#include <cstdint>

namespace slmk {

// Reads `bytes` of `buf` (64-byte aligned, bytes a multiple of 4096) `reps` times on the
// thread pool, each thread a contiguous slice; returns a checksum (so nothing is elided).
uint64_t probe_read(const uint8_t* buf, int64_t bytes, int reps);

// Runs `iters` iterations of an int8 dot-product loop (the ISA's best instruction: vpdpbusd /
// maddubs / sdot with 12 independent accumulators, or AMX TDPBSSD with 4 tiles) on every pool thread; returns the int8 multiply-adds done
// (2 ops each), or 0 if the ISA has no int8 probe.
double probe_int8_macs(int64_t iters);
// Same for fp32 fused multiply-adds.
double probe_fp32_fmas(int64_t iters);

}  // namespace slmk
