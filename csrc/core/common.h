// ---- common definitions shared by every area ----
// Keep this header free of ISA-specific code: it is included by files compiled with
// different target flags, so anything defined here is either a macro, a type, or
// `static inline` (internal linkage), never an inline function with external linkage
// that the linker could merge across ISA files.
#pragma once
#include <cstddef>
#include <cstdint>

#if defined(__x86_64__) || defined(_M_X64)
#define SLMK_X86 1
#endif
#if defined(__aarch64__) || defined(_M_ARM64)
#define SLMK_ARM64 1
#endif

#define SLMK_RESTRICT __restrict__
#define SLMK_ALIGN 64
