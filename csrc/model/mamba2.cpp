// ---- one Mamba-2 mixer layer on the SSM kernels (see mamba2.h) ----
#include "mamba2.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "../ssm/ssm.h"

namespace slmk {

void mamba2_check(const Mamba2Spec& s, int hidden, const Mamba2Weights& w, const std::string& where) {
    auto want = [&](bool ok, const std::string& what) {
        if (!ok) throw std::invalid_argument(where + what);
    };
    auto n = [](int64_t v) { return std::to_string(v); };
    want(s.n_heads > 0 && s.head_dim > 0 && s.d_state > 0 && s.n_groups > 0,
         "Mamba-2 n_heads, head_dim, d_state and n_groups must be >= 1");
    want(s.n_heads <= 4096 && s.head_dim <= 4096 && s.d_state <= 4096, "Mamba-2 n_heads, head_dim and d_state must be <= 4096");
    want(s.n_heads % s.n_groups == 0, "Mamba-2 n_heads " + n(s.n_heads) + " is not a multiple of n_groups " + n(s.n_groups));
    want(s.d_conv >= 2 && s.d_conv <= 64, "Mamba-2 d_conv must be in 2..64, got " + n(s.d_conv));
    want(w.in_proj && w.in_proj->n == s.d_in_proj() && w.in_proj->k == hidden,
         "ssm_in must be (" + n(s.d_in_proj()) + ", " + n(hidden) + ")");
    want(w.out_proj && w.out_proj->n == hidden && w.out_proj->k == s.d_inner(),
         "ssm_out must be (" + n(hidden) + ", " + n(s.d_inner()) + ")");
    want(static_cast<int64_t>(w.conv_w.size()) == s.d_conv * s.conv_dim(),
         "ssm_conv1d has " + n(w.conv_w.size()) + " values, the description implies " + n(s.d_conv * s.conv_dim()));
    want(w.conv_b.empty() || static_cast<int64_t>(w.conv_b.size()) == s.conv_dim(),
         "ssm_conv1d bias has " + n(w.conv_b.size()) + " values, the description implies " + n(s.conv_dim()));
    for (const auto* v : {&w.dt_bias, &w.A, &w.D})
        want(static_cast<int64_t>(v->size()) == s.n_heads, "ssm_dt bias, ssm_a and ssm_d must have n_heads (" +
                                                               n(s.n_heads) + ") values");
    want(static_cast<int64_t>(w.norm.size()) == s.d_inner(), "ssm_norm must have d_inner (" + n(s.d_inner()) + ") values");
}

void mamba2_forward(const KernelTable& k, const Mamba2Spec& d, int hidden, float eps, const Mamba2Weights& w,
                    const float* h, int64_t rows, const std::vector<Mamba2Segment>& segs, bool chunked, float* out,
                    Mamba2Scratch& sc) {
    const int64_t di = d.d_inner(), cd = d.conv_dim(), np = d.d_in_proj(), gs = int64_t(d.n_groups) * d.d_state;
    sc.proj.resize(rows * np);
    sc.xbc.resize(rows * cd);
    sc.y.resize(rows * di);
    sc.g.resize(rows * di);
    // [z | xBC | dt] for every row at once (batched decode shares the weight read)
    gemm(k, w.in_proj->format, w.in_proj.get(), nullptr, 0, np, hidden, h, rows, hidden, sc.proj.data(), np);
    for (const Mamba2Segment& s : segs) {
        SsmConvArgs c;
        c.x = sc.proj.data() + s.row0 * np + di;
        c.ldx = np;
        c.state = s.state;
        c.w = w.conv_w.data();
        c.b = w.conv_b.empty() ? nullptr : w.conv_b.data();
        c.y = sc.xbc.data() + s.row0 * cd;
        c.ldy = cd;
        c.T = s.rows;
        c.C = cd;
        c.K = d.d_conv;
        c.silu = true;
        ssm_conv(k, c);
        SsmScanArgs a;
        a.x = sc.xbc.data() + s.row0 * cd;
        a.B = a.x + di;
        a.C = a.B + gs;
        a.ldx = a.ldb = a.ldc = cd;
        a.dt = sc.proj.data() + s.row0 * np + di + cd;
        a.lddt = np;
        a.dt_bias = w.dt_bias.data();
        a.A = w.A.data();
        a.D = w.D.data();
        a.state = s.state + d.conv_floats();
        a.y = sc.y.data() + s.row0 * di;
        a.ldy = di;
        a.T = s.rows;
        a.n_heads = d.n_heads;
        a.head_dim = d.head_dim;
        a.d_state = d.d_state;
        a.n_groups = d.n_groups;
        if (chunked && s.rows > 1) ssm_scan_chunked(k, a);
        else ssm_scan(k, a);
        if (s.snapshot_after) std::copy(s.state, s.state + d.state_floats(), s.snapshot_after);
    }
    ssm_gated_norm(k, sc.y.data(), di, sc.proj.data(), np, w.norm.data(), sc.g.data(), di, rows, di,
                   di / d.n_groups, eps);
    gemm(k, w.out_proj->format, w.out_proj.get(), nullptr, 0, hidden, di, sc.g.data(), rows, di, out, hidden);
}

}  // namespace slmk
