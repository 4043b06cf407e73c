// ---- helpers shared by the quantizers of every ISA (all static inline: see core/common.h) ----
#pragma once
#include <cmath>
#include <cstdint>

namespace slmk {

// float -> int32 with the x86 cvttss2si convention that numpy's float->int casts follow on
// x86-64: truncate toward zero; NaN, +-inf and out-of-range values give INT32_MIN. The
// quantizers narrow the result to 8 bits (so those cases become 0), which is what the `gguf`
// package's numpy quantizers produce for blocks whose 1/d overflows (all-subnormal blocks).
static inline int32_t trunc_to_i32(float v) {
    if (!(v > -2147483904.0f && v < 2147483648.0f)) return INT32_MIN;
    return static_cast<int32_t>(v);
}

// gguf-py's np_roundf: round half away from zero, NaN for non-finite input (C roundf).
static inline float round_half_away(float v) { return std::isfinite(v) ? std::round(v) : NAN; }

static inline uint8_t clamp_u8_max(int32_t v_low_byte_source, int hi) {
    // numpy: float -> uint8 cast (low byte of the int32 conversion), then .clip(0, hi)
    const uint8_t b = static_cast<uint8_t>(v_low_byte_source & 0xff);
    return b > hi ? static_cast<uint8_t>(hi) : b;
}

}  // namespace slmk
