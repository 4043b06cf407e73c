"""Float64 numpy reference for the Mamba-2 state-space kernels, written from the published
equations, not from any implementation:

  Tri Dao and Albert Gu, "Transformers are SSMs: Generalized Models and Efficient Algorithms
  Through Structured State Space Duality", ICML 2024 (arXiv:2405.21060). Section 3 (the SSM
  recurrence with a scalar-times-identity A), Section 6 (the chunked SSD algorithm) and
  Section 7.1 (the Mamba-2 block: parallel projections, short causal conv on x, B, C, the
  gated RMSNorm "y * silu(z)" before the output projection, with grouped norms).

Shapes follow the paper's per-head view: a head h has state H (head_dim x d_state); with a
scalar decay a_t = exp(dt_t * A_h) and the discretized input dt_t * B_t:

  H_t = a_t * H_{t-1} + dt_t * x_t B_t^T        (x_t: head_dim, B_t: d_state)
  y_t = H_t C_t + D_h * x_t                     (C_t: d_state)

dt_t = softplus(dt_raw_t + dt_bias_h) (Mamba-2's time step parametrization; Gu & Dao 2023,
Section 3.6). B and C are shared by the heads of a group (n_heads / n_groups heads each, head
h in group h // (n_heads / n_groups)), like grouped-query attention.
"""

from __future__ import annotations

import numpy as np


def softplus(x):
    x = np.asarray(x, np.float64)
    # log(1 + exp(x)) without overflow
    return np.where(x > 20.0, x, np.log1p(np.exp(np.minimum(x, 20.0))))


def silu(x):
    x = np.asarray(x, np.float64)
    return x / (1.0 + np.exp(-x))


def causal_conv1d(x, state, w, b=None, *, activation=True):
    """Depthwise causal convolution over time with a window of K taps.

    x: (T, C) new inputs; state: (K-1, C) the K-1 inputs before them (oldest first, zeros for a
    fresh sequence); w: (C, K) taps, w[c, K-1] multiplying the newest input; b: (C,) or None.
    Returns y (T, C) = [silu](b + sum_j w[:, j] * window[t + j]) and the new state (the last
    K-1 rows of [state; x])."""
    x = np.asarray(x, np.float64)
    state = np.asarray(state, np.float64)
    w = np.asarray(w, np.float64)
    K = w.shape[1]
    win = np.concatenate([state, x], axis=0)  # (K-1+T, C)
    T = x.shape[0]
    y = np.zeros_like(x)
    for t in range(T):
        y[t] = (win[t:t + K] * w.T).sum(axis=0)
    if b is not None:
        y = y + np.asarray(b, np.float64)
    if activation:
        y = silu(y)
    return y, win[T:].copy()


def ssd_recurrence(x, dt, A, B, C, D, dt_bias, H0):
    """The token-by-token SSM recurrence (the spec of the decode update and of the chunked scan).

    x: (T, n_heads, head_dim); dt: (T, n_heads) raw (before bias and softplus); A, D, dt_bias:
    (n_heads,); B, C: (T, n_groups, d_state); H0: (n_heads, head_dim, d_state).
    Returns y (T, n_heads, head_dim) and the final state (n_heads, head_dim, d_state)."""
    x, dt, A, B, C, D, dt_bias = (np.asarray(a, np.float64) for a in (x, dt, A, B, C, D, dt_bias))
    H = np.array(H0, np.float64)
    T, nh, hd = x.shape
    ng = B.shape[1]
    g = np.arange(nh) // (nh // ng)
    y = np.zeros_like(x)
    for t in range(T):
        d = softplus(dt[t] + dt_bias)                       # (nh,)
        a = np.exp(d * A)                                   # (nh,)
        Bt, Ct = B[t][g], C[t][g]                           # (nh, ds)
        H = a[:, None, None] * H + d[:, None, None] * x[t][:, :, None] * Bt[:, None, :]
        y[t] = np.einsum("hpn,hn->hp", H, Ct) + D[:, None] * x[t]
    return y, H


def ssd_chunked(x, dt, A, B, C, D, dt_bias, H0, chunk):
    """The same map computed chunk by chunk in the SSD form (Dao & Gu 2024, Section 6): inside a
    chunk the output is a masked "attention" (C_t . B_s) * L[t, s] * dt_s over x_s, with the
    decay L[t, s] = prod_{s < k <= t} a_k, plus the carried-in state read out by C_t and decayed
    by prod_{k <= t} a_k; between chunks only the state passes. Equal to ssd_recurrence up to
    rounding (float64 here: ~1e-15)."""
    x, dt, A, B, C, D, dt_bias = (np.asarray(a, np.float64) for a in (x, dt, A, B, C, D, dt_bias))
    H = np.array(H0, np.float64)
    T, nh, hd = x.shape
    ng = B.shape[1]
    g = np.arange(nh) // (nh // ng)
    y = np.zeros_like(x)
    for c0 in range(0, T, chunk):
        c1 = min(T, c0 + chunk)
        d = softplus(dt[c0:c1] + dt_bias)                   # (q, nh)
        logA = d * A                                        # (q, nh)
        cum = np.cumsum(logA, axis=0)                       # (q, nh): log prod_{k <= t} a_k
        seg = cum[:, None, :] - cum[None, :, :]             # (t, s, nh): log prod_{s < k <= t}
        q = c1 - c0
        mask = np.tril(np.ones((q, q), bool))
        L = np.where(mask[:, :, None], np.exp(np.where(mask[:, :, None], seg, 0.0)), 0.0)
        Bc, Cc, xc = B[c0:c1][:, g], C[c0:c1][:, g], x[c0:c1]   # (q, nh, ds), (q, nh, hd)
        G = np.einsum("thn,shn->tsh", Cc, Bc)               # (t, s, nh)
        M = G * L * d[None, :, :]                           # (t, s, nh)
        y_intra = np.einsum("tsh,shp->thp", M, xc)
        y_inter = np.einsum("thn,hpn->thp", Cc, H) * np.exp(cum)[:, :, None]
        y[c0:c1] = y_intra + y_inter + D[None, :, None] * xc
        decay_to_end = np.exp(cum[-1][None, :] - cum)       # (s, nh): prod_{s < k <= end}
        H = np.exp(cum[-1])[:, None, None] * H + np.einsum("sh,shp,shn->hpn", decay_to_end * d, xc, Bc)
    return y, H


def gated_rmsnorm(y, z, w, n_groups, eps):
    """Mamba-2's output norm: RMSNorm of y * silu(z) over each of n_groups equal groups of the
    channels, times the weight w. y, z: (T, n); w: (n,)."""
    y, z, w = (np.asarray(a, np.float64) for a in (y, z, w))
    g = y * silu(z)
    T, n = g.shape
    gg = g.reshape(T, n_groups, n // n_groups)
    gg = gg / np.sqrt((gg**2).mean(axis=-1, keepdims=True) + eps)
    return gg.reshape(T, n) * w


def mamba2_mixer(h, p, conv_state, ssm_state, *, n_heads, head_dim, d_state, n_groups, eps):
    """One Mamba-2 mixer (Section 7.1) over T tokens of one sequence, float64.

    h: (T, hidden) normed input. p: dict of float arrays in checkpoint orientation:
      in_proj (d_in_proj, hidden) with rows [z (d_inner); x B C (d_inner + 2 ng ds); dt (nh)],
      conv_w (conv_dim, K), conv_b (conv_dim,), dt_bias, A (negative, = -exp(A_log)), D (nh,),
      norm (d_inner,), out_proj (hidden, d_inner).
    conv_state (K-1, conv_dim), ssm_state (nh, head_dim, d_state). Returns (out, conv_state,
    ssm_state)."""
    d_inner = n_heads * head_dim
    gs = n_groups * d_state
    zxbcdt = np.asarray(h, np.float64) @ np.asarray(p["in_proj"], np.float64).T
    z = zxbcdt[:, :d_inner]
    xbc = zxbcdt[:, d_inner:2 * d_inner + 2 * gs]
    dt = zxbcdt[:, 2 * d_inner + 2 * gs:]
    xbc, conv_state = causal_conv1d(xbc, conv_state, p["conv_w"], p.get("conv_b"))
    T = xbc.shape[0]
    x = xbc[:, :d_inner].reshape(T, n_heads, head_dim)
    B = xbc[:, d_inner:d_inner + gs].reshape(T, n_groups, d_state)
    C = xbc[:, d_inner + gs:].reshape(T, n_groups, d_state)
    y, ssm_state = ssd_recurrence(x, dt, p["A"], B, C, p["D"], p["dt_bias"], ssm_state)
    y = gated_rmsnorm(y.reshape(T, d_inner), z, p["norm"], n_groups, eps)
    return y @ np.asarray(p["out_proj"], np.float64).T, conv_state, ssm_state


def scan_inputs(rng, T, nh, hd, ds, ng, *, dt_scale=1.0):
    """Random float32 inputs of one ssm_scan call: x, dt, A (negative), B, C, D, dt_bias, state."""
    x = rng.standard_normal((T, nh, hd)).astype(np.float32)
    dt = (rng.standard_normal((T, nh)) * dt_scale).astype(np.float32)
    A = (-np.exp(rng.standard_normal(nh))).astype(np.float32)
    B = rng.standard_normal((T, ng, ds)).astype(np.float32)
    C = rng.standard_normal((T, ng, ds)).astype(np.float32)
    D = rng.standard_normal(nh).astype(np.float32)
    dt_bias = rng.standard_normal(nh).astype(np.float32)
    state = rng.standard_normal((nh, ds, hd)).astype(np.float32)
    return x, dt, A, B, C, D, dt_bias, state
