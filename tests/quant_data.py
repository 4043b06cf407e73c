"""Blocks built to land exactly on the rounding ties of each format's quantizer.

Random data almost never puts x / d exactly on k + 1/2, so a quantizer that rounds ties the
wrong way (half to even instead of half away from zero, or the reverse) passes tests on it. Each
block here pins the scale to exactly 1 (or -1) with anchor values, and every other value is
k + 1/2: under the gguf package's formulas (gguf-py quants.py, ggml-quants.c) x * (1/d) is then
exactly a tie. F16 / BF16 rows hold the exact midpoints between neighbouring values of the narrow
type (round to nearest even decides them)."""

from __future__ import annotations

import numpy as np

TIE_FORMATS = ["f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1"]


def _tie_block(rng: np.random.Generator, fmt: str) -> np.ndarray:
    """One 32-value block of fmt whose non-anchor values are exact rounding ties."""
    x = np.empty(32, np.float64)
    if fmt == "q8_0":  # d = amax / 127 = 1: the anchor is +-127, the rest |k + 1/2| <= 126.5
        x[:] = rng.integers(-127, 127, 32) + 0.5
        x[rng.integers(32)] = rng.choice([-127.0, 127.0])
    elif fmt in ("q4_0", "q5_0"):  # d = max / -2^(b-1) = +-1: the anchor is the signed max
        half = 8 if fmt == "q4_0" else 16
        x[:] = rng.integers(-half + 1, half - 1, 32) + 0.5  # |x| <= half - 1/2 < half
        x[rng.integers(32)] = rng.choice([-float(half), float(half)])
    else:  # q4_1 / q5_1: d = (max - min) / (2^b - 1) = 1: anchors min = m0 and max = m0 + 2^b - 1
        top = 15 if fmt == "q4_1" else 31
        m0 = float(rng.integers(-20, 20))
        x[:] = m0 + rng.integers(0, top, 32) + 0.5
        i, j = rng.choice(32, 2, replace=False)
        x[i], x[j] = m0, m0 + top
    return x.astype(np.float32)


def _tie_halfs(rng: np.random.Generator, n: int) -> np.ndarray:
    """Exact midpoints between consecutive finite float16 values (normal and subnormal), signed."""
    h = rng.integers(0, 0x7BFF, n).astype(np.uint16)  # below the largest finite half
    lo = h.view(np.float16).astype(np.float64)
    hi = (h + 1).view(np.float16).astype(np.float64)
    return (((lo + hi) / 2) * rng.choice([-1.0, 1.0], n)).astype(np.float32)  # exact in float32


def _tie_bf16(rng: np.random.Generator, n: int) -> np.ndarray:
    """float32 values exactly halfway between two bfloat16 values (low 16 bits = 0x8000)."""
    hi = rng.integers(0, 0x7F7F, n).astype(np.uint32) | (rng.integers(0, 2, n).astype(np.uint32) << 15)
    return ((hi << 16) | 0x8000).view(np.float32)


def tie_rows(fmt: str, rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """A (rows, cols) float32 array of fmt (cols a multiple of 32) that is all rounding ties."""
    rng = np.random.default_rng(seed)
    if fmt == "f16":
        return _tie_halfs(rng, rows * cols).reshape(rows, cols)
    if fmt == "bf16":
        return _tie_bf16(rng, rows * cols).reshape(rows, cols)
    return np.stack([np.concatenate([_tie_block(rng, fmt) for _ in range(cols // 32)]) for _ in range(rows)])


# ---- the K-quants: our own quantizers (the gguf package has none) ----
# Their last step requantizes every value against the stored scales: q = round-half-away((x + ml)
# / dl), clamped (quant_kquant_ref.cpp). To put x / dl on exact ties, the blocks below pin the
# stored scales: one sub-block whose values are exact grid points of a = nmax_scale * 2^-e fixes
# the super-block scale d = a / nmax_scale = 2^-e exactly (fp16 holds it); every other sub-block
# holds grid points of dl = S * d (S an integer, so sc = S and dl is exact) with both ends of the
# grid present, and a share of its values at k + 1/2 steps of dl, which the least-squares fit
# moves by far less than d / 2. Q4_K / Q5_K: a second anchor sub-block shifted down by
# M = 63 * 2^-2 fixes dmin = 2^-2, so the tie sub-blocks' own small mins round to 0.


def k_quant_tie_block(fmt: str, rng: np.random.Generator) -> np.ndarray:
    """256 float32 values of fmt ('q4_k', 'q5_k', 'q6_k') with many exact requantization ties."""
    if fmt == "q6_k":
        sub = np.zeros((16, 16), np.float32)
        a = np.float32(127 / 128)  # d = a / 127 = 2^-7
        sub[0] = rng.integers(-31, 32, 16) * a
        sub[0, 0] = -32 * a
        for s in range(1, 16):
            dl = np.float32(int(rng.integers(32, 100)) / 128)
            k = rng.integers(-31, 31, 16).astype(np.float32)
            k = np.where(rng.random(16) < 0.25, k + 0.5, k)
            sub[s] = k * dl
            sub[s, 0] = -32 * dl
        return sub.reshape(-1)
    nmax = 15 if fmt == "q4_k" else 31
    sub = np.zeros((8, 32), np.float32)
    a, m = np.float32(63 / 64), np.float32(63 / 4)  # d = a / 63 = 2^-6, dmin = m / 63 = 2^-2
    sub[0] = rng.integers(0, nmax + 1, 32) * a
    sub[0, :2] = 0, nmax * a
    half = np.float32(0.5)
    sub[1] = rng.integers(0, nmax + 1, 32) * half - m
    sub[1, :2] = -m, nmax * half - m
    for j in range(2, 8):
        dl = np.float32(int(rng.integers(16, 48)) / 64)
        k = rng.integers(0, nmax + 1, 32).astype(np.float32)
        k = np.where((rng.random(32) < 0.3) & (k < nmax), k + 0.5, k)
        sub[j] = k * dl
        sub[j, :2] = 0, nmax * dl
    return sub.reshape(-1)


def _f16(b: np.ndarray) -> np.float32:
    return np.frombuffer(b.tobytes(), np.float16).astype(np.float32)[0]


def k_quant_decode(fmt: str, blk: np.ndarray):
    """One block's quants q (256,), and per value its dl and ml (ggml's block layouts), so that
    the block decodes to dl * q - ml."""
    blk = np.asarray(blk, np.uint8)
    if fmt == "q6_k":  # ql[128] qh[64] scales[16] (int8) d (fp16)
        ql, qh, sc, d = blk[:128].astype(np.int64), blk[128:192].astype(np.int64), blk[192:208].view(np.int8), _f16(blk[208:210])
        e = np.arange(256)
        a, t, l = e // 128, (e % 128) // 32, e % 32
        lo = (ql[64 * a + l + 32 * (t % 2)] >> (4 * (t // 2))) & 0xF
        hi = (qh[32 * a + l] >> (2 * t)) & 3
        dl = np.repeat(d * sc.astype(np.float32), 16).astype(np.float32)
        return (lo | (hi << 4)) - 32, dl, np.zeros(256, np.float32)
    d, dmin, scales = _f16(blk[0:2]), _f16(blk[2:4]), blk[4:16].astype(np.int64)
    five = fmt == "q5_k"
    qs = blk[48:176] if five else blk[16:144]
    q = np.zeros(256, np.int64)
    dl, ml = np.zeros(256, np.float32), np.zeros(256, np.float32)
    for j in range(8):  # ggml-quants.c get_scale_min_k4
        if j < 4:
            sc, mn = scales[j] & 63, scales[j + 4] & 63
        else:
            sc = (scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4)
            mn = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4)
        v = (qs[32 * (j // 2): 32 * (j // 2) + 32].astype(np.int64) >> (4 * (j % 2))) & 0xF
        if five:
            v |= ((blk[16:48].astype(np.int64) >> j) & 1) << 4
        q[32 * j: 32 * j + 32] = v
        dl[32 * j: 32 * j + 32] = d * np.float32(sc)
        ml[32 * j: 32 * j + 32] = dmin * np.float32(mn)
    return q, dl, ml
