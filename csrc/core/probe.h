// ---- machine-limit probes for the benchmarks: streaming read bandwidth, int8 / fp32 peaks ----
// Each ISA registers its probe loops as kernel entries (probe_<isa>.cpp), so the ISA in use picks
// them like any other kernel; a rung without its own inherits its parent's.
#pragma once
#include <cstdint>

#include "registry.h"

namespace slmk {

// Op::probe_read: a streaming read of [p, p + bytes) (bytes a multiple of 512), returns a checksum:
// the sum of its 64-bit words (mod 2^64), the same on every ISA.
using probe_read_fn = uint64_t (*)(const uint8_t* p, int64_t bytes);
// Op::probe_int8 / Op::probe_fp32: `iters` iterations of the ISA's best int8 dot-product (or fp32
// fused multiply-add) loop on independent accumulators; returns the multiply-adds done.
using probe_peak_fn = double (*)(int64_t iters);
template <> struct OpFn<Op::probe_read> { using type = probe_read_fn; };
template <> struct OpFn<Op::probe_int8> { using type = probe_peak_fn; };
template <> struct OpFn<Op::probe_fp32> { using type = probe_peak_fn; };

// The probe slice of a kernel table.
struct ProbeKernels : TableSlice {
    using TableSlice::TableSlice;
    probe_read_fn read() const { return t->get<Op::probe_read>(); }
    probe_peak_fn int8() const { return t->get<Op::probe_int8>(); }  // null: this ISA has no int8 probe
    probe_peak_fn fp32() const { return t->get<Op::probe_fp32>(); }
};

// Reads `bytes` of `buf` (64-byte aligned, bytes a multiple of 4096) `reps` times on the
// thread pool, each thread a contiguous slice; returns the checksum (so nothing is elided).
uint64_t probe_read(const ProbeKernels& k, const uint8_t* buf, int64_t bytes, int reps);

// Runs the int8 (fp32) peak loop on every pool thread; returns the multiply-adds done (2 ops
// each), or 0 if the ISA has no such probe.
double probe_int8_macs(const ProbeKernels& k, int64_t iters);
double probe_fp32_fmas(const ProbeKernels& k, int64_t iters);

}  // namespace slmk
