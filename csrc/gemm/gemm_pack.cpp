// ---- repacking GGUF rows into 16-row groups (layouts documented in gemm.h) ----
// A layout transform only: every byte of the packed tile comes from one byte (or bit) of the
// source blocks, so packing is exact and the packed form decodes to the same values.
#include <cstring>

#include "../core/fp16.h"
#include "gemm.h"

namespace slmk {

ActKind act_kind(Format f) {
    switch (f) {
        case Format::Q4_K:
        case Format::Q5_K:
        case Format::Q6_K: return ActKind::Q8_256;
        case Format::F32:
        case Format::F16:
        case Format::BF16: return ActKind::Float;
        default: return ActKind::Q8_32;
    }
}

namespace {

// Position of byte j (0..bytes_per_row-1) of a row's quant run inside the row-quads layout.
inline int64_t quad_pos(int j, int r) { return ((int64_t)(j / 4) * kGroupRows + r) * 4 + j % 4; }

void pack_tile(Format f, const uint8_t* const* rows, int nrows, int64_t b, uint8_t* t) {
    const TileLayout L = tile_layout(f);
    std::memset(t, 0, L.bytes);
    const FormatInfo& fi = format_info(f);
    for (int r = 0; r < nrows; ++r) {
        const uint8_t* s = rows[r] + b * fi.type_size;
        switch (f) {
            case Format::F32: std::memcpy(t + 4 * r, s, 4); break;
            case Format::F16:
            case Format::BF16: std::memcpy(t + 2 * r, s, 2); break;
            case Format::Q8_0:
                std::memcpy(t + L.d + 2 * r, s, 2);
                for (int j = 0; j < 32; ++j) t[L.q + quad_pos(j, r)] = s[2 + j];
                break;
            case Format::Q4_0:
                std::memcpy(t + L.d + 2 * r, s, 2);
                for (int j = 0; j < 16; ++j) t[L.q + quad_pos(j, r)] = s[2 + j];
                break;
            case Format::Q4_1:
                std::memcpy(t + L.d + 2 * r, s, 2);
                std::memcpy(t + L.m + 2 * r, s + 2, 2);
                for (int j = 0; j < 16; ++j) t[L.q + quad_pos(j, r)] = s[4 + j];
                break;
            case Format::Q5_0:
            case Format::Q5_1: {
                const bool has_m = f == Format::Q5_1;
                const uint8_t* qh_src = s + (has_m ? 4 : 2);
                std::memcpy(t + L.d + 2 * r, s, 2);
                if (has_m) std::memcpy(t + L.m + 2 * r, s + 2, 2);
                const uint32_t qh = load_u32(qh_src);
                for (int c = 0; c < 4; ++c) {
                    uint8_t hb = 0;
                    for (int i = 0; i < 4; ++i)
                        hb |= (((qh >> (4 * c + i)) & 1) << i) | (((qh >> (16 + 4 * c + i)) & 1) << (4 + i));
                    t[L.hb + c * kGroupRows + r] = hb;
                }
                for (int j = 0; j < 16; ++j) t[L.q + quad_pos(j, r)] = qh_src[4 + j];
                break;
            }
            case Format::Q4_K:
            case Format::Q5_K: {
                const bool q5 = f == Format::Q5_K;
                std::memcpy(t + L.d + 2 * r, s, 2);
                std::memcpy(t + L.m + 2 * r, s + 2, 2);
                for (int j = 0; j < 8; ++j)
                    get_scale_min_k4(j, s + 4, &t[L.sc + j * kGroupRows + r], &t[L.mn + j * kGroupRows + r]);
                const uint8_t* qh = s + 16;
                const uint8_t* qs = s + (q5 ? 48 : 16);
                for (int j = 0; j < 128; ++j) t[L.q + quad_pos(j, r)] = qs[j];  // g = j/32 follows from j/4
                if (q5)
                    for (int g = 0; g < 4; ++g)
                        for (int c = 0; c < 8; ++c) {
                            uint8_t hb = 0;
                            for (int i = 0; i < 4; ++i)
                                hb |= (((qh[4 * c + i] >> (2 * g)) & 1) << i) | (((qh[4 * c + i] >> (2 * g + 1)) & 1) << (4 + i));
                            t[L.hb + g * L.hb_step + c * kGroupRows + r] = hb;
                        }
                break;
            }
            case Format::Q6_K:
                std::memcpy(t + L.d + 2 * r, s + 208, 2);
                for (int sub = 0; sub < 16; ++sub) t[L.sc + sub * kGroupRows + r] = s[192 + sub];
                for (int j = 0; j < 128; ++j) t[L.q + quad_pos(j, r)] = s[j];         // ql: a = j/64
                for (int j = 0; j < 64; ++j) t[L.qh + quad_pos(j, r)] = s[128 + j];   // qh: a = j/32
                break;
            default: break;
        }
    }
}

}  // namespace

void pack_group(Format f, const uint8_t* src, int64_t src_stride, int nrows, int64_t nblocks, uint8_t* dst) {
    const uint8_t* rows[kGroupRows];
    for (int r = 0; r < nrows; ++r) rows[r] = src + r * src_stride;
    const int64_t tb = packed_tile_bytes(f);
    for (int64_t b = 0; b < nblocks; ++b) pack_tile(f, rows, nrows, b, dst + b * tb);
}

}  // namespace slmk
