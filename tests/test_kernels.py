"""Every kernel of the registry, one case each, against the scalar entry of the same op and format.

The cases are generated from ``slmkernels.kernels()``, so a kernel cannot be registered without
being tested here; an entry of an ISA this CPU lacks is skipped with the reason. A case forces the
entry's ISA (and asserts the entry is then the one that runs), calls its op on inputs aimed at
the entry's edges, and compares with the same call under the scalar ISA: bit for bit where the
spec says so (quantize, dequantize, activation quantization, GEMM), within the package's named
tolerances otherwise (slmkernels.tolerances).

GEMM entries are reached where they run: tiles with packed and unpacked weights and M around the
4-row tile; panels with packed weights and M below, at and above their min_m and past one call's
rows, K of one block, of several k_chunks, and of several chunks plus a partial one."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

import slmkernels as sk
from conftest import SUPPORTED_ISAS
import ssm_reference
from quant_data import TIE_FORMATS, tie_rows
from slmkernels.tolerances import ATTN_TOL, OPS_RTOL

KERNELS = sk.kernels()
CASES = [k for k in KERNELS if k["isa"] != "scalar"]  # the scalar twins are the reference
TENSOR_FORMATS = set(sk.formats())


@contextlib.contextmanager
def forced(isa: str):
    before = sk.get_isa()
    sk.set_isa(isa)
    try:
        yield
    finally:
        sk.set_isa(before)


def twin_runs(k: dict, fn):
    """fn() under the entry's ISA (asserting the entry is what runs) and under scalar."""
    with forced(k["isa"]):
        assert any(e["name"] == k["name"] and e["active"] for e in sk.kernels()), f"{k['name']} is not the one running"
        got = fn()
    with forced("scalar"):
        ref = fn()
    return got, ref


def same_bits(a, b) -> bool:
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return a.shape == b.shape and bool(((a.view(np.uint32) == b.view(np.uint32)) | (np.isnan(a) & np.isnan(b))).all())


def block(fmt: str) -> int:
    return sk.formats()[fmt]["block_size"]


def float_data(rng, shape, kinds=("normal", "outlier", "tiny", "zero")) -> list:
    out = []
    for kind in kinds:
        x = rng.standard_normal(shape)
        if kind == "outlier":
            x.flat[:: max(1, x.size // 7)] *= 1000.0
        elif kind == "tiny":
            x *= 1e-30
        elif kind == "zero":
            x[:] = 0.0
        out.append(x.astype(np.float32))
    return out


# ---- one check per op: name -> fn(entry) ----


def check_quantize(k):
    fmt = k["format"]
    rng = np.random.default_rng(1)
    cols = max(block(fmt), 32)
    xs = float_data(rng, (3, 5 * cols)) + float_data(rng, (1, cols))
    if fmt in TIE_FORMATS:
        xs.append(tie_rows(fmt, 4, 8 * cols, seed=2))
    for x in xs:
        got, ref = twin_runs(k, lambda: sk.quantize(x, fmt).data.copy())
        np.testing.assert_array_equal(got, ref)


def check_dequantize(k):
    fmt = k["format"]
    info = sk.formats()[fmt]
    rng = np.random.default_rng(3)
    for blocks in (1, 7):
        raw = rng.integers(0, 256, size=blocks * info["type_size"] * 3, dtype=np.uint8)  # NaN / Inf scales too
        qt = sk.QuantizedTensor(raw, fmt, (3, blocks * info["block_size"]))
        got, ref = twin_runs(k, lambda: sk.dequantize(qt))
        assert same_bits(got, ref)


def matmul_twins(k, fmt, m, n, kk, packed, seed):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n, kk)).astype(np.float32)
    qt = sk.quantize(w, fmt)
    x = (rng.standard_normal((m, kk)) * rng.choice([1e-3, 1.0, 100.0])).astype(np.float32)
    pw = sk.pack(qt) if packed else qt
    got, ref = twin_runs(k, lambda: sk.matmul(x, pw))
    assert same_bits(got, ref), f"{k['name']}: M={m} N={n} K={kk} {'packed' if packed else 'unpacked'}"


def check_act_quant(k):
    # through the GEMM: a weight format quantizing its activations in these blocks
    fmt = "q8_0" if k["format"] == "q8_0" else "q6_k"
    for m in (1, 5):
        matmul_twins(k, fmt, m, 17, 512, packed=True, seed=m)


def check_gemm(k):
    fmt = k["format"]
    b = max(block(fmt), 32)
    for kk in (b, 5 * b):
        for m in (1, 3, 4, 5, 9):  # below, at and above the 4-row tile, and two tiles + 1
            for n in (1, 17, 33):
                matmul_twins(k, fmt, m, n, kk, packed=(m + n) % 2 == 0, seed=m * n + kk)
    # a long row (K = 2880 or 2816): one dropped block here stays inside any float error bound
    for m in (1, 5):
        matmul_twins(k, fmt, m, 17, 2880 if b == 32 else 2816, packed=m == 1, seed=m)


def check_gemm_panel(k):
    fmt, min_m, cols = k["format"], k["min_m"], k["tile"][1]
    b = block(fmt)
    kc = k["k_chunk"] or 4 * b
    for kk in (b, 2 * kc, 2 * kc + b):  # one block; several chunks; several + a partial last one
        for m in (min_m - 1, min_m, min_m + 1, cols + 1):
            matmul_twins(k, fmt, m, 17, kk, packed=True, seed=m + kk)
    matmul_twins(k, fmt, min_m, 17, 2 * kc + b, packed=False, seed=5)  # unpacked: the tiles


def check_attn_chunk(k):
    dtype = k["format"]
    rng = np.random.default_rng(11)
    L, n_kv, G, D = 300, 2, 3, 72  # several chunks and a partial one; D with a SIMD tail
    c = sk.KVCache(1, n_kv, D, capacity_tokens=L + 64, block_tokens=32, dtype=dtype)
    s = c.new_sequence()
    c.extend(s, L)
    c.write(0, s, rng.standard_normal((L, n_kv, D)).astype(np.float32), rng.standard_normal((L, n_kv, D)).astype(np.float32))
    vmax = float(np.abs(c.values(0, s)).max())
    for T in (1, 7):
        q = rng.standard_normal((T, n_kv * G, D)).astype(np.float32)
        got, ref = twin_runs(k, lambda: sk.attention(q, c, 0, s))
        assert np.abs(got - ref).max() <= ATTN_TOL * vmax
        with forced(k["isa"]):  # and its own bits do not depend on the thread count
            before = sk.get_num_threads()
            try:
                sk.set_num_threads(1)
                one = sk.attention(q, c, 0, s)
            finally:
                sk.set_num_threads(before)
        assert same_bits(one, got)


def check_row_op(k):
    # rmsnorm, and the gated ops (swiglu, geglu, reglu: sk.<op>(gate, up)) through their Python names
    rng = np.random.default_rng(13)
    for n in (1, 7, 17, 576, 1536):
        x = (rng.standard_normal((3, n)) * 4).astype(np.float32)
        # and a row sweeping the vector exp's whole range (core/math_<isa>.h: clamped at -87.3
        # and 88.7, 2^n split in two factors up to n = 128) past both ends
        x[2] = np.linspace(-95.0, 95.0, n, dtype=np.float32)
        w = rng.standard_normal(n).astype(np.float32)
        rtol = OPS_RTOL
        if k["op"] == "rmsnorm":
            fn = lambda: sk.rmsnorm(x, w, 1e-5)  # noqa: E731
        else:
            fn = lambda: getattr(sk, k["op"])(x, w[None, :].repeat(3, 0))  # noqa: E731
            if k["op"] == "geglu":  # exp(-t), t = x (c1 + c3 x^2): t's roundings grow with |t| (tests/test_ops.py)
                rtol = OPS_RTOL + 4 * 2.0**-24 * np.abs(x * 1.5957691216057308 * (1 + 0.044715 * x * x))
        got, ref = twin_runs(k, fn)
        if k["op"] == "reglu":  # one rounding per element: the twin's bits
            assert same_bits(got, ref), f"{k['name']} n={n}"
            continue
        assert (np.abs(got - ref) <= rtol * np.abs(ref) + 1e-30).all(), f"{k['name']} n={n}"


def check_ssm_scan(k):
    # ssm_scan: token by token; ssm_gram / ssm_chunk: the chunked scan (one token, a partial
    # chunk, several chunks and a partial one): the scalar twin's bits, output and state
    rng = np.random.default_rng(17)
    chunked = k["op"] != "ssm_scan"
    for T in (1, 5, 130):
        x, dt, A, B, C, D, dt_bias, state = ssm_reference.scan_inputs(rng, T, 4, 24, 16, 2)

        def run():
            s = state.copy()
            return sk.ssm_scan(x, dt, A, B, C, D, dt_bias, s, chunked=chunked), s

        (y, s1), (y_ref, s_ref) = twin_runs(k, run)
        assert same_bits(y, y_ref) and same_bits(s1, s_ref), f"T={T}"


def check_ssm_conv(k):
    rng = np.random.default_rng(19)
    for T, C, K in ((1, 7, 4), (40, 200, 4), (5, 33, 2)):
        x = (rng.standard_normal((T, C)) * 3).astype(np.float32)
        w = rng.standard_normal((C, K)).astype(np.float32)
        b = rng.standard_normal(C).astype(np.float32)
        state = rng.standard_normal((K - 1, C)).astype(np.float32)
        for act in (False, True):
            def run():
                s = state.copy()
                return sk.ssm_conv1d(x, s, w, b, silu=act), s

            (y, s1), (y_ref, s_ref) = twin_runs(k, run)
            assert same_bits(s1, s_ref)  # the rolled state is exact; SiLU is a float op
            if act:
                np.testing.assert_allclose(y, y_ref, rtol=OPS_RTOL, atol=1e-30)
            else:
                assert same_bits(y, y_ref)


def check_ssm_gated_norm(k):
    rng = np.random.default_rng(23)
    for n, groups in ((24, 1), (64, 8), (3072, 4)):
        y = rng.standard_normal((3, n)).astype(np.float32)
        z = (rng.standard_normal((3, n)) * 4).astype(np.float32)
        w = rng.standard_normal(n).astype(np.float32)
        got, ref = twin_runs(k, lambda: sk.ssm_gated_rmsnorm(y, z, w, groups, 1e-5))
        np.testing.assert_allclose(got, ref, rtol=OPS_RTOL, atol=OPS_RTOL * np.abs(w).max() * 1e-3)


def check_probe_read(k):
    # the checksum is the sum of the buffer's 64-bit words: the same on every ISA
    got, ref = twin_runs(k, lambda: sk._core._probe_read_bandwidth(1 << 20, 1)["checksum"])
    assert got == ref != 0


def check_probe_peak(k):
    kind = "int8" if k["op"] == "probe_int8" else "fp32"
    with forced(k["isa"]):
        assert sk._core._probe_peak(kind, 0.01)["gops"] > 0


CHECKS = {
    "quantize": check_quantize,
    "dequantize": check_dequantize,
    "act_quant": check_act_quant,
    "gemm": check_gemm,
    "gemm_panel": check_gemm_panel,
    "attn_chunk": check_attn_chunk,
    "rmsnorm": check_row_op,
    "swiglu": check_row_op,
    "geglu": check_row_op,
    "reglu": check_row_op,
    "ssm_conv": check_ssm_conv,
    "ssm_scan": check_ssm_scan,
    "ssm_gram": check_ssm_scan,
    "ssm_chunk": check_ssm_scan,
    "ssm_gated_norm": check_ssm_gated_norm,
    "probe_read": check_probe_read,
    "probe_int8": check_probe_peak,
    "probe_fp32": check_probe_peak,
}


@pytest.mark.parametrize("k", CASES, ids=[k["name"] for k in CASES])
def test_entry_against_scalar_twin(k):
    if k["isa"] not in SUPPORTED_ISAS:
        pytest.skip(f"this CPU cannot run {k['isa']} (supported: {', '.join(SUPPORTED_ISAS)})")
    if k["format"] is not None and k["op"] in ("quantize", "dequantize") and k["format"] not in TENSOR_FORMATS:
        pytest.skip(f"{k['format']} is not a tensor format (no Python entry point); csrc/tests/test_quant.cpp "
                    "compares this kernel with its twin")
    CHECKS[k["op"]](k)  # a KeyError here: a new op kind needs its check above


def test_every_op_has_a_check():
    assert {k["op"] for k in KERNELS} <= set(CHECKS)
