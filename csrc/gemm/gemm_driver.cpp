// ---- GEMM driver ----
// 1. quantize every activation row once (parallel over rows);
// 2. parallel over 16-row weight groups; inside a group, activation rows in tiles of up to 4.
//    When the ISA has a panel kernel for the format (AMX) and M >= its tile.min_m, the panel
//    takes up to tile.cols activation rows per call instead.
// Every output element is computed by the same micro-kernel sequence whatever M, the tile it
// falls in, or the thread that runs it, so results are batch- and thread-count-invariant.
#include "gemm_driver.h"

#include <algorithm>
#include <cstring>

#include "../core/thread_pool.h"

namespace slmk {

std::unique_ptr<PackedMatrix> pack_matrix(Format f, const uint8_t* src, int64_t n, int64_t k, int64_t row_stride) {
    auto p = std::make_unique<PackedMatrix>();
    p->format = f;
    p->n = n;
    p->k = k;
    p->nblocks = k / format_info(f).block_size;
    p->group_bytes = p->nblocks * packed_tile_bytes(f);
    p->data.reserve(p->n_groups() * p->group_bytes);
    PackedMatrix* pm = p.get();
    parallel_for(pm->n_groups(), 1, [&](int64_t g0, int64_t g1) {
        for (int64_t g = g0; g < g1; ++g) {
            const int nrows = static_cast<int>(std::min<int64_t>(kGroupRows, n - g * kGroupRows));
            pack_group(f, src + g * kGroupRows * row_stride, row_stride, nrows, pm->nblocks,
                       pm->data.ptr + g * pm->group_bytes);
        }
    });
    return p;
}

namespace {

// Per-thread scratch: quantized activations (shared by all threads of one call, owned by the
// caller's thread) and an on-the-fly packing buffer (one per worker).
thread_local AlignedBytes tls_act;
thread_local AlignedBytes tls_pack;
thread_local AlignedBytes tls_panel;  // the panel copy of the activations (caller's thread)

}  // namespace

void gemm(const GemmKernels& gk, Format f, const PackedMatrix* packed, const uint8_t* raw, int64_t row_stride,
          int64_t n, int64_t k, const float* x, int64_t m, int64_t ldx, float* out, int64_t ldo) {
    const gemm_tile_fn tile = gk.tile(f);
    const int bs = format_info(f).block_size;
    const int64_t nblocks = k / bs;
    ActRows a;
    const ActKind kind = act_kind(f);
    if (kind == ActKind::Float) {
        a.xf = x;
        a.xf_stride = ldx;
    } else {
        const int64_t nsum = kind == ActKind::Q8_32 ? k / 32 : k / 16;
        const int64_t nd = k / bs;
        // layout: q [m][qs] | d [m][nd] | sum [m][nsum]. Row stride qs = k + 64: with k a multiple
        // of 4096 a stride of k would put the rows that one tile reads together in the same L1 set.
        const int64_t qs = k + 64;
        const int64_t q_bytes = (m * qs + 63) / 64 * 64, d_bytes = (m * nd * 4 + 63) / 64 * 64;
        tls_act.reserve(q_bytes + d_bytes + m * nsum * 4);
        int8_t* q = reinterpret_cast<int8_t*>(tls_act.ptr);
        float* d = reinterpret_cast<float*>(tls_act.ptr + q_bytes);
        int32_t* s = reinterpret_cast<int32_t*>(tls_act.ptr + q_bytes + d_bytes);
        const act_quant_fn aq = gk.act_quant(kind);
        parallel_for(m, std::max<int64_t>(1, 16384 / k), [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r) aq(x + r * ldx, k, q + r * qs, d + r * nd, s + r * nsum);
        });
        a.q = q;
        a.d = d;
        a.sum = s;
        a.q_stride = qs;
        a.d_stride = nd;
        a.sum_stride = nsum;
    }
    const int64_t n_groups = (n + kGroupRows - 1) / kGroupRows;
    const int64_t group_bytes = nblocks * packed_tile_bytes(f);
    const gemm_tile_fn panel = gk.panel(f);
    const Tile panel_tile = gk.panel_tile(f);
    if (panel && packed && m >= panel_tile.min_m) {
        // Panel path (prefill): a chunk of up to tile.cols activation rows (128 rows quantized:
        // 0.5 MB at K = 4096) stays in L2 while this thread's weight groups stream past it once
        // per chunk.
        const int64_t panel_rows = panel_tile.cols;
        // activations again, tiled for the panel: [m-tile of 16][k slab of 64][16 rows][64]
        const int64_t mtiles = (m + 15) / 16, slabs = (k + 63) / 64;
        tls_panel.reserve(mtiles * slabs * 1024);
        int8_t* qp = reinterpret_cast<int8_t*>(tls_panel.ptr);
        parallel_for(mtiles, 1, [&](int64_t t0, int64_t t1) {
            for (int64_t t = t0; t < t1; ++t)
                for (int64_t sl = 0; sl < slabs; ++sl) {
                    int8_t* dst = qp + (t * slabs + sl) * 1024;
                    const int64_t kw = std::min<int64_t>(64, k - 64 * sl);
                    for (int i = 0; i < 16; ++i) {
                        const int64_t row = 16 * t + i;
                        if (row < m) std::memcpy(dst + 64 * i, a.q + row * a.q_stride + 64 * sl, kw);
                        if (row >= m || kw < 64) std::memset(dst + 64 * i + (row < m ? kw : 0), 0, row < m ? 64 - kw : 64);
                    }
                }
        });
        a.q_panel = qp;
        parallel_for(n_groups, 1, [&](int64_t g0, int64_t g1) {
            for (int64_t m0 = 0; m0 < m; m0 += panel_rows) {
                const int mr = static_cast<int>(std::min<int64_t>(panel_rows, m - m0));
                for (int64_t g = g0; g < g1; ++g) {
                    const int nvalid = static_cast<int>(std::min<int64_t>(kGroupRows, n - g * kGroupRows));
                    panel(packed->data.ptr + g * group_bytes, nblocks, a, m0, mr, out + m0 * ldo + g * kGroupRows,
                          ldo, nvalid);
                }
            }
        });
        return;
    }
    parallel_for(n_groups, 1, [&](int64_t g0, int64_t g1) {
        for (int64_t g = g0; g < g1; ++g) {
            const int nvalid = static_cast<int>(std::min<int64_t>(kGroupRows, n - g * kGroupRows));
            const uint8_t* grp;
            if (packed) {
                grp = packed->data.ptr + g * group_bytes;
            } else {
                tls_pack.reserve(group_bytes);
                pack_group(f, raw + g * kGroupRows * row_stride, row_stride, nvalid, nblocks, tls_pack.ptr);
                grp = tls_pack.ptr;
            }
            for (int64_t m0 = 0; m0 < m; m0 += kMaxMR) {
                const int mr = static_cast<int>(std::min<int64_t>(kMaxMR, m - m0));
                tile(grp, nblocks, a, m0, mr, out + m0 * ldo + g * kGroupRows, ldo, nvalid);
            }
        }
    });
}

}  // namespace slmk
