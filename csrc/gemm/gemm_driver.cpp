// ---- GEMM driver ----
// 1. quantize every activation row once (parallel over rows);
// 2. parallel over 16-row weight groups; inside a group, activation rows in tiles of up to 4.
//    When the ISA has a panel kernel for the format (AMX) and M >= its tile.min_m, the panel
//    takes up to tile.cols activation rows per call instead.
// Every output element is computed by the same micro-kernel sequence whatever M, the tile it
// falls in, or the thread that runs it, so results are batch- and thread-count-invariant.
#include "gemm_driver.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>
#include <string>

#include "../core/thread_pool.h"

namespace slmk {

std::unique_ptr<PackedMatrix> pack_matrix(Format f, const uint8_t* src, int64_t n, int64_t k, int64_t row_stride,
                                          const std::function<void(int64_t r0, int64_t r1)>& packed_rows) {
    std::function<void(size_t, int64_t, int64_t)> cb;
    if (packed_rows) cb = [&packed_rows](size_t, int64_t r0, int64_t r1) { packed_rows(r0, r1); };
    return pack_matrix_stacked(f, {{src, n, row_stride}}, k, cb);
}

std::unique_ptr<PackedMatrix> pack_matrix_stacked(Format f, const std::vector<PackPart>& parts, int64_t k,
                                                  const std::function<void(size_t, int64_t, int64_t)>& packed_rows) {
    auto p = std::make_unique<PackedMatrix>();
    p->format = f;
    p->n = 0;
    for (size_t i = 0; i < parts.size(); ++i) {
        if (i + 1 < parts.size() && parts[i].n % kGroupRows != 0)
            throw std::invalid_argument("stacked matrices: every part but the last needs a multiple of " +
                                        std::to_string(kGroupRows) + " rows, part " + std::to_string(i) + " has " +
                                        std::to_string(parts[i].n));
        p->n += parts[i].n;
    }
    p->k = k;
    p->nblocks = k / format_info(f).block_size;
    p->group_bytes = p->nblocks * packed_tile_bytes(f);
    p->data.reserve(p->n_groups() * p->group_bytes, /*huge=*/true);
    PackedMatrix* pm = p.get();
    int64_t g_base = 0;  // the part's first group in the stacked matrix
    for (size_t i = 0; i < parts.size(); ++i) {
        const PackPart& part = parts[i];
        const int64_t groups = (part.n + kGroupRows - 1) / kGroupRows;
        // one slice when nobody watches; else ~kPackSliceBytes of source rows per slice
        const int64_t slice =
            packed_rows ? std::max<int64_t>(1, kPackSliceBytes / std::max<int64_t>(1, kGroupRows * part.row_stride))
                        : groups;
        for (int64_t s0 = 0; s0 < groups; s0 += slice) {
            const int64_t s1 = std::min(groups, s0 + slice);
            parallel_for(s1 - s0, 1, [&](int64_t g0, int64_t g1) {
                for (int64_t g = s0 + g0; g < s0 + g1; ++g) {
                    const int nrows = static_cast<int>(std::min<int64_t>(kGroupRows, part.n - g * kGroupRows));
                    pack_group(f, part.src + g * kGroupRows * part.row_stride, part.row_stride, nrows, pm->nblocks,
                               pm->data.ptr + (g_base + g) * pm->group_bytes);
                }
            });
            if (packed_rows) packed_rows(i, s0 * kGroupRows, std::min(part.n, s1 * kGroupRows));
        }
        g_base += groups;
    }
    return p;
}

namespace {

std::atomic<int> g_act_mode{static_cast<int>(ActMode::Q8x2Head)};

constexpr int kPanelChunksPerThread = 16;  // the panel path's work chunks per thread (see gemm())
// The tile path's (GEMV) chunks per thread: the thread that finishes first waits for the other's
// chunk in flight, half a chunk on average. At 4 chunks per thread (parallel_for's default) a
// 2-thread 4096 x 14336 Q4_0 GEMV (32 groups of 129 KB a chunk) spent ~10% of its samples
// spinning at the join (perf: parallel_for + the worker loop, against the kernel's 71%).
constexpr int kTileChunksPerThread = 16;

// Per-thread scratch: quantized activations (shared by all threads of one call, owned by the
// caller's thread), an on-the-fly packing buffer and the second plane's partial outputs (one
// per worker), the residual row of Q8x2 (one per worker).
thread_local AlignedBytes tls_act;
thread_local AlignedBytes tls_pack;
thread_local AlignedBytes tls_panel;  // the panel copy of the activations (caller's thread)
thread_local AlignedBytes tls_plane2;
thread_local AlignedBytes tls_resid;

// One plane of quantized activation rows, laid out in `buf` as q [m][qs] | d [m][nd] | sum
// [m][nsum]. Row stride qs = k + 64: with k a multiple of 4096 a stride of k would put the rows
// that one tile reads together in the same L1 set.
struct Plane {
    int64_t qs, nd, nsum, q_bytes, d_bytes, bytes;
    Plane(int64_t m, int64_t k, int bs, ActKind kind)
        : qs(k + 64), nd(k / bs), nsum(kind == ActKind::Q8_32 ? k / 32 : k / 16) {
        q_bytes = (m * qs + 63) / 64 * 64;
        d_bytes = (m * nd * 4 + 63) / 64 * 64;
        bytes = (q_bytes + d_bytes + m * nsum * 4 + 63) / 64 * 64;
    }
    ActRows rows(uint8_t* buf) const {
        ActRows a;
        a.q = reinterpret_cast<int8_t*>(buf);
        a.d = reinterpret_cast<float*>(buf + q_bytes);
        a.sum = reinterpret_cast<int32_t*>(buf + q_bytes + d_bytes);
        a.q_stride = qs;
        a.d_stride = nd;
        a.sum_stride = nsum;
        return a;
    }
};

// The panel copy of one plane: [m-tile of 16][k slab of 64][16 rows][64], zero past m and k.
void panel_copy(const ActRows& a, int64_t m, int64_t k, int8_t* qp) {
    const int64_t mtiles = (m + 15) / 16, slabs = (k + 63) / 64;
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
}

// out[i][r] += part[i][r] for the mr x nvalid outputs of one group (part: 16 floats per row)
inline void add_plane(float* out, int64_t ldo, const float* part, int mr, int nvalid) {
    for (int i = 0; i < mr; ++i)
        for (int r = 0; r < nvalid; ++r) out[i * ldo + r] = out[i * ldo + r] + part[i * kGroupRows + r];
}

// Rows o, o + 2, o + 4, ... of `all` as their own ActRows (one plane of the interleaved two).
ActRows every_other(const ActRows& all, int o) {
    ActRows v = all;
    v.q += o * all.q_stride;
    v.d += o * all.d_stride;
    v.sum += o * all.sum_stride;
    v.q_stride *= 2;
    v.d_stride *= 2;
    v.sum_stride *= 2;
    return v;
}

}  // namespace

void set_act_mode(ActMode m) { g_act_mode.store(static_cast<int>(m), std::memory_order_relaxed); }
ActMode act_mode() { return static_cast<ActMode>(g_act_mode.load(std::memory_order_relaxed)); }

void gemm(const GemmKernels& gk, Format f, const PackedMatrix* packed, const uint8_t* raw, int64_t row_stride,
          int64_t n, int64_t k, const float* x, int64_t m, int64_t ldx, float* out, int64_t ldo, GemmRole role) {
    const gemm_tile_fn tile = gk.tile(f);
    const int bs = format_info(f).block_size;
    const int64_t nblocks = k / bs;
    // Two planes: one buffer of 2m quantized rows, row 2r = plane 1 of row r, 2r + 1 = its second
    // plane, so one micro-kernel call takes both planes as two activation rows (the weights are
    // unpacked once for both); a and a2 view the planes apart (the panel path).
    ActRows all, a, a2;
    const ActKind kind = act_kind(f);
    const ActMode mode = act_mode();
    const bool two = kind != ActKind::Float &&
                     (mode == ActMode::Q8x2 || (mode == ActMode::Q8x2Head && role == GemmRole::head));
    if (kind == ActKind::Float) {
        a.xf = x;
        a.xf_stride = ldx;
    } else {
        const Plane pl(two ? 2 * m : m, k, bs, kind);
        tls_act.reserve(pl.bytes);
        all = a = pl.rows(tls_act.ptr);
        if (two) {
            a = every_other(all, 0);
            a2 = every_other(all, 1);
        }
        const act_quant_fn aq = gk.act_quant(kind);
        parallel_for(m, std::max<int64_t>(1, 16384 / k), [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r) {
                const float* xr = x + r * ldx;
                const int64_t row = two ? 2 * r : r;
                int8_t* q = const_cast<int8_t*>(all.q) + row * pl.qs;
                float* d = const_cast<float*>(all.d) + row * pl.nd;
                int32_t* sum = const_cast<int32_t*>(all.sum) + row * pl.nsum;
                aq(xr, k, q, d, sum);
                if (!two) continue;
                // the residual of plane 1, quantized as plane 2 (float32 ops, no FMA: the same
                // bits on every ISA; a non-finite block has d = NaN, so its residual is NaN too)
                tls_resid.reserve(k * 4);
                float* res = reinterpret_cast<float*>(tls_resid.ptr);
                for (int64_t b = 0; b < k / bs; ++b)
                    for (int j = 0; j < bs; ++j) {
                        const float dq = d[b] * static_cast<float>(q[b * bs + j]);
                        res[b * bs + j] = xr[b * bs + j] - dq;
                    }
                aq(res, k, q + pl.qs, d + pl.nd, sum + pl.nsum);
            }
        });
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
        // Only the AMX panels read the slab copy (ActRows::q_panel); the VNNI and NEON panels
        // read the quantized rows in place, so on their rungs the copy is skipped.
        const Kernel* pk = gk.t->find(Op::gemm_panel, f);
        if (pk->isa == Isa::avx512_amx) {
            const int64_t slab_bytes = (m + 15) / 16 * ((k + 63) / 64) * 1024;
            tls_panel.reserve(slab_bytes * (two ? 2 : 1));
            a.q_panel = reinterpret_cast<int8_t*>(tls_panel.ptr);
            panel_copy(a, m, k, const_cast<int8_t*>(a.q_panel));
            if (two) {
                a2.q_panel = reinterpret_cast<int8_t*>(tls_panel.ptr + slab_bytes);
                panel_copy(a2, m, k, const_cast<int8_t*>(a2.q_panel));
            }
        }
        // Chunks of a few groups (up to kPanelChunksPerThread per thread): a group is >= 16 x M x K
        // multiply-adds, so a claim costs nothing next to it, and at 4 chunks per thread the
        // thread that finished first waited ~half a chunk, 1/16 of every GEMM at 2 threads.
        parallel_for(n_groups, 1, [&](int64_t g0, int64_t g1) {
            float* part = nullptr;
            if (two) {
                tls_plane2.reserve(panel_rows * kGroupRows * 4);
                part = reinterpret_cast<float*>(tls_plane2.ptr);
            }
            for (int64_t m0 = 0; m0 < m; m0 += panel_rows) {
                const int mr = static_cast<int>(std::min<int64_t>(panel_rows, m - m0));
                for (int64_t g = g0; g < g1; ++g) {
                    const int nvalid = static_cast<int>(std::min<int64_t>(kGroupRows, n - g * kGroupRows));
                    const uint8_t* grp = packed->data.ptr + g * group_bytes;
                    float* o = out + m0 * ldo + g * kGroupRows;
                    panel(grp, nblocks, a, m0, mr, o, ldo, nvalid);
                    if (two) {
                        panel(grp, nblocks, a2, m0, mr, part, kGroupRows, nvalid);
                        add_plane(o, ldo, part, mr, nvalid);
                    }
                }
            }
        }, kPanelChunksPerThread);
        return;
    }
    parallel_for(n_groups, 1, [&](int64_t g0, int64_t g1) {
        float* part = nullptr;
        if (two) {
            tls_plane2.reserve(kMaxMR * kGroupRows * 4);
            part = reinterpret_cast<float*>(tls_plane2.ptr);
        }
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
            if (two) {  // kMaxMR / 2 rows a call, each as its two planes: out = out_1 + out_2
                for (int64_t m0 = 0; m0 < m; m0 += kMaxMR / 2) {
                    const int mr = static_cast<int>(std::min<int64_t>(kMaxMR / 2, m - m0));
                    tile(grp, nblocks, all, 2 * m0, 2 * mr, part, kGroupRows, nvalid);
                    float* o = out + m0 * ldo + g * kGroupRows;
                    for (int i = 0; i < mr; ++i)
                        for (int r = 0; r < nvalid; ++r)
                            o[i * ldo + r] = part[2 * i * kGroupRows + r] + part[(2 * i + 1) * kGroupRows + r];
                }
                continue;
            }
            for (int64_t m0 = 0; m0 < m; m0 += kMaxMR) {
                const int mr = static_cast<int>(std::min<int64_t>(kMaxMR, m - m0));
                tile(grp, nblocks, a, m0, mr, out + m0 * ldo + g * kGroupRows, ldo, nvalid);
            }
        }
    }, kTileChunksPerThread);
}

}  // namespace slmk
