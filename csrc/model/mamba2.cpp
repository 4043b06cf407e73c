// ---- one Mamba-2 mixer layer on the SSM kernels (see mamba2.h) ----
#include "mamba2.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "../ssm/ssm.h"

namespace slmk {

Mamba2Mixer::Mamba2Mixer(Mamba2Dims dims, Mamba2Weights w) : d_(dims), w_(std::move(w)) {
    auto want = [](bool ok, const std::string& what) {
        if (!ok) throw std::invalid_argument("Mamba-2 layer: " + what);
    };
    want(d_.hidden > 0 && d_.n_heads > 0 && d_.head_dim > 0 && d_.d_state > 0 && d_.n_groups > 0,
         "hidden, n_heads, head_dim, d_state and n_groups must be >= 1");
    want(d_.n_heads % d_.n_groups == 0, "n_heads must be a multiple of n_groups");
    want(d_.d_conv >= 2 && d_.d_conv <= 64, "d_conv must be in 2..64");
    want(w_.in_proj && w_.in_proj->n == d_.d_in_proj() && w_.in_proj->k == d_.hidden,
         "in_proj must be (" + std::to_string(d_.d_in_proj()) + ", " + std::to_string(d_.hidden) + ")");
    want(w_.out_proj && w_.out_proj->n == d_.hidden && w_.out_proj->k == d_.d_inner(),
         "out_proj must be (" + std::to_string(d_.hidden) + ", " + std::to_string(d_.d_inner()) + ")");
    want(static_cast<int64_t>(w_.conv_w.size()) == d_.d_conv * d_.conv_dim(), "conv weight size mismatch");
    want(w_.conv_b.empty() || static_cast<int64_t>(w_.conv_b.size()) == d_.conv_dim(), "conv bias size mismatch");
    for (const auto* v : {&w_.dt_bias, &w_.A, &w_.D})
        want(static_cast<int>(v->size()) == d_.n_heads, "dt_bias, A and D must have n_heads entries");
    want(static_cast<int64_t>(w_.norm.size()) == d_.d_inner(), "norm must have d_inner entries");
}

void Mamba2Mixer::forward(const KernelTable& k, const float* h, int64_t rows, const std::vector<Mamba2Segment>& segs,
                          bool chunked, float* out) {
    const int64_t di = d_.d_inner(), cd = d_.conv_dim(), np = d_.d_in_proj(), gs = int64_t(d_.n_groups) * d_.d_state;
    proj_.resize(rows * np);
    xbc_.resize(rows * cd);
    y_.resize(rows * di);
    g_.resize(rows * di);
    // [z | xBC | dt] for every row at once (batched decode shares the weight read)
    gemm(k, w_.in_proj->format, w_.in_proj.get(), nullptr, 0, np, d_.hidden, h, rows, d_.hidden, proj_.data(), np);
    for (const Mamba2Segment& s : segs) {
        SsmConvArgs c;
        c.x = proj_.data() + s.row0 * np + di;
        c.ldx = np;
        c.state = s.state;
        c.w = w_.conv_w.data();
        c.b = w_.conv_b.empty() ? nullptr : w_.conv_b.data();
        c.y = xbc_.data() + s.row0 * cd;
        c.ldy = cd;
        c.T = s.rows;
        c.C = cd;
        c.K = d_.d_conv;
        c.silu = true;
        ssm_conv(k, c);
        SsmScanArgs a;
        a.x = xbc_.data() + s.row0 * cd;
        a.B = a.x + di;
        a.C = a.B + gs;
        a.ldx = a.ldb = a.ldc = cd;
        a.dt = proj_.data() + s.row0 * np + di + cd;
        a.lddt = np;
        a.dt_bias = w_.dt_bias.data();
        a.A = w_.A.data();
        a.D = w_.D.data();
        a.state = s.state + d_.conv_floats();
        a.y = y_.data() + s.row0 * di;
        a.ldy = di;
        a.T = s.rows;
        a.n_heads = d_.n_heads;
        a.head_dim = d_.head_dim;
        a.d_state = d_.d_state;
        a.n_groups = d_.n_groups;
        if (chunked && s.rows > 1) ssm_scan_chunked(k, a);
        else ssm_scan(k, a);
        if (s.snapshot_after) std::copy(s.state, s.state + d_.state_floats(), s.snapshot_after);
    }
    ssm_gated_norm(k, y_.data(), di, proj_.data(), np, w_.norm.data(), g_.data(), di, rows, di, di / d_.n_groups,
                   d_.eps);
    gemm(k, w_.out_proj->format, w_.out_proj.get(), nullptr, 0, d_.hidden, di, g_.data(), rows, di, out, d_.hidden);
}

}  // namespace slmk
