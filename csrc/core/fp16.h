// ---- scalar IEEE half / bfloat16 conversions (the reference; SIMD paths must agree) ----
#pragma once
#include <cstdint>
#include <cstring>

namespace slmk {

static inline uint32_t f32_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
static inline float bits_f32(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

// Exact widening of an IEEE binary16 (subnormals, inf and NaN payloads preserved).
static inline float fp16_to_fp32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        if (man == 0) return bits_f32(sign);
        // subnormal: value = man * 2^-24, exact in float32
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

// Round-to-nearest-even narrowing, as numpy's astype(float16) and F16C's vcvtps2ph(imm=0):
// overflow to inf, gradual underflow to subnormals, NaN stays NaN (quiet, top payload bits).
static inline uint16_t fp32_to_fp16(float f) {
    const uint32_t x = f32_bits(f);
    const uint32_t sign = (x >> 16) & 0x8000;
    const uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) {  // inf or NaN
        if (ax == 0x7f800000u) return (uint16_t)(sign | 0x7c00);
        return (uint16_t)(sign | 0x7e00 | ((ax >> 13) & 0x3ff));
    }
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);  // >= 65520 rounds to inf
    if (ax < 0x38800000u) {  // below the smallest normal half (2^-14): subnormal or zero
        if (ax < 0x33000000u) return (uint16_t)sign;  // < 2^-25: rounds to zero (2^-25 itself ties to 0)
        const uint32_t e = ax >> 23;                  // 102..112
        const uint32_t m = (ax & 0x7fffff) | 0x800000;  // 24-bit significand
        const uint32_t shift = 126 - e;               // bring to units of 2^-24
        uint32_t q = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1);
        const uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    // normal: rebias the exponent, round the 13 dropped bits to nearest even
    uint32_t r = ax - 0x38000000u;  // exponent - 112
    const uint32_t rem = r & 0x1fff;
    r >>= 13;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;  // may carry into the exponent: correct
    return (uint16_t)(sign | r);
}

static inline float bf16_to_fp32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

// As ggml_compute_fp32_to_bf16 (and gguf-py's BF16.quantize_blocks): NaN forced quiet
// keeping its top bits, everything else rounded to nearest even.
static inline uint16_t fp32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64);
    return (uint16_t)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

}  // namespace slmk
