"""matmul / pack: against a float64 numpy reference, exact integer checks, and the invariances
(ISA, packing, thread count, batch size) that must hold bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import slmkernels as sk

QUANT_FORMATS = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q5_k", "q6_k"]
FLOAT_FORMATS = ["f32", "f16", "bf16"]
ALL_FORMATS = QUANT_FORMATS + FLOAT_FORMATS
BLOCK = {f: sk.formats()[f]["block_size"] for f in ALL_FORMATS}
M_VALUES = [1, 2, 3, 4, 7, 8, 16, 33, 128]


# The tolerance is the package's (the benchmark validates with the same bound): activations are
# quantized per block of B values to q = rne(x/d), d = amax/127, so |x - q d| <= d/2; weights
# decode exactly; the float epilogue adds ~K/B roundings. See slmkernels.bench.gemm.error_bound.
from slmkernels.bench.gemm import error_bound  # noqa: E402


def make_weights(rng: np.random.Generator, fmt: str, n: int, k: int):
    w = rng.standard_normal((n, k)).astype(np.float32)
    if fmt == "f32":
        return w, w
    if fmt == "f16":
        w16 = w.astype(np.float16)
        return w16, w16.astype(np.float32)
    qt = sk.quantize(w, fmt)
    return qt, sk.dequantize(qt)


@st.composite
def problems(draw, fmt: str):
    B = BLOCK[fmt] if fmt not in FLOAT_FORMATS else 32
    m = draw(st.sampled_from(M_VALUES))
    n = draw(st.sampled_from([1, 3, 5, 15, 17, 31, 48]))
    if B == 256:
        k = draw(st.sampled_from([256, 512, 768]))
    else:
        k = draw(st.sampled_from([32, 64, 96, 256, 2880]))
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from([1e-3, 1.0, 100.0]))
    return m, n, k, seed, scale


class TestAgainstNumpy:
    @pytest.mark.parametrize("fmt", ALL_FORMATS)
    @given(data=st.data())
    def test_matmul_within_bound(self, isa, fmt, data):
        m, n, k, seed, scale = data.draw(problems(fmt))
        rng = np.random.default_rng(seed)
        w, w_deq = make_weights(rng, fmt if fmt != "bf16" else "bf16", n, k)
        x = (rng.standard_normal((m, k)) * scale).astype(np.float32)
        got = sk.matmul(x, w)
        ref = x.astype(np.float64) @ w_deq.astype(np.float64).T
        assert got.shape == (m, n) and got.dtype == np.float32
        assert (np.abs(got - ref) <= error_bound(x, w_deq, fmt)).all()

    def test_vector_input(self):
        rng = np.random.default_rng(0)
        qt, w = make_weights(rng, "q4_0", 9, 64)
        x = rng.standard_normal(64).astype(np.float32)
        y = sk.matmul(x, qt)
        assert y.shape == (9,)
        np.testing.assert_array_equal(y, sk.matmul(x[None, :], qt)[0])


def integer_blocks(fmt: str, n: int, k: int, rng: np.random.Generator) -> sk.QuantizedTensor:
    """Random blocks whose fp16 scales are all 1.0 (mins 0..8): every weight is an integer."""
    info = sk.formats()[fmt]
    nb = n * k // info["block_size"]
    raw = rng.integers(0, 256, size=(nb, info["type_size"]), dtype=np.uint8)
    one = np.frombuffer(np.float16(1.0).tobytes(), np.uint8)
    if fmt in ("q8_0", "q4_0", "q5_0"):
        raw[:, 0:2] = one
    elif fmt in ("q4_1", "q5_1"):
        raw[:, 0:2] = one
        raw[:, 2:4] = np.frombuffer(np.float16(-3.0).tobytes(), np.uint8)
    elif fmt in ("q4_k", "q5_k"):
        raw[:, 0:2] = one
        raw[:, 2:4] = one
    elif fmt == "q6_k":
        raw[:, 208:210] = one
    return sk.QuantizedTensor(raw.reshape(-1), fmt, (n, k))


class TestExactIntegers:
    """Integer weights and activations whose quantization is exact (each block holds a +-127,
    so d = 1): the result must be the exact integer product, on every ISA."""

    @pytest.mark.parametrize("fmt", QUANT_FORMATS)
    @pytest.mark.parametrize("m", [1, 4, 7])
    def test_exact(self, isa, fmt, m):
        rng = np.random.default_rng(hash((fmt, m)) % 2**32)
        n, k = 19, 512
        qt = integer_blocks(fmt, n, k, rng)
        w = sk.dequantize(qt).astype(np.int64)
        assert (w == sk.dequantize(qt)).all()  # integer weights
        x = rng.integers(-127, 128, size=(m, k))
        x[:, ::16] = rng.choice([-127, 127], size=x[:, ::16].shape)  # every 16-group holds +-127
        got = sk.matmul(x.astype(np.float32), qt)
        np.testing.assert_array_equal(got, (x @ w.T).astype(np.float32))

    @pytest.mark.parametrize("fmt", ["q8_0", "q4_0", "q5_0", "q6_k"])
    def test_extremes_no_saturation(self, isa, fmt):
        """All -127/+127 activations against max/min quants (int16 saturation in maddubs paths)."""
        n, k = 16, 256
        info = sk.formats()[fmt]
        raw = np.full((n * k // info["block_size"], info["type_size"]), 0xFF, np.uint8)
        one = np.frombuffer(np.float16(1.0).tobytes(), np.uint8)
        if fmt == "q8_0":
            raw[:, 2:] = 0x80  # -128 everywhere
            raw[:, 0:2] = one
        elif fmt == "q6_k":
            raw[:, 192:208] = 127
            raw[:, 208:210] = one
        else:
            raw[:, 0:2] = one
        qt = sk.QuantizedTensor(raw.reshape(-1), fmt, (n, k))
        w = sk.dequantize(qt).astype(np.int64)
        for v in (-127, 127):
            x = np.full((2, k), v, np.float32)
            np.testing.assert_array_equal(sk.matmul(x, qt), (x.astype(np.int64) @ w.T).astype(np.float32))


class TestActModeQ8x2:
    """Two int8 planes per activation block (set_act_mode("q8x2")): 254x tighter bound, and the
    invariances of the single-plane mode (ISA, packing, batch, threads) still bit for bit."""

    @pytest.fixture(autouse=True)
    def q8x2(self):
        before = sk.get_act_mode()
        sk.set_act_mode("q8x2")
        yield
        sk.set_act_mode(before)

    @pytest.mark.parametrize("fmt", QUANT_FORMATS)
    def test_within_the_tighter_bound(self, isa, fmt):
        rng = np.random.default_rng(31)
        k = 512
        w, wd = make_weights(rng, fmt, 37, k)
        x = rng.standard_normal((20, k)).astype(np.float32)
        x[:, 5] *= 40.0  # an outlier channel: the blocks holding it get a coarse first plane
        ref = x.astype(np.float64) @ wd.astype(np.float64).T
        for wt in (w, sk.pack(w)):
            err = np.abs(sk.matmul(x, wt) - ref)
            assert (err <= error_bound(x, wd, fmt, "q8x2")).all()
        sk.set_act_mode("q8")
        assert np.abs(sk.matmul(x, w) - ref).max() > 20 * err.max()  # the second plane does work

    @pytest.mark.parametrize("fmt", ["q4_1", "q8_0", "q4_k", "q6_k"])
    def test_same_bits_every_isa_batch_and_threads(self, fmt):
        rng = np.random.default_rng(32)
        w, _ = make_weights(rng, fmt, 40, 2304)
        pw = sk.pack(w)
        x = rng.standard_normal((150, 2304)).astype(np.float32)
        before, threads = sk.get_isa(), sk.get_num_threads()
        try:
            sk.set_isa("scalar")
            ref = sk.matmul(x[:9], w)
            for name in sk.cpu_info()["supported_isas"]:
                sk.set_isa(name)
                np.testing.assert_array_equal(sk.matmul(x[:9], pw), ref, err_msg=name)
                full = sk.matmul(x, pw)  # the panel path where the ISA has one
                np.testing.assert_array_equal(full[:9], ref, err_msg=name + " batch")
                for t in (1, 3):
                    sk.set_num_threads(t)
                    np.testing.assert_array_equal(sk.matmul(x[:37], pw), full[:37], err_msg=f"{name} {t} threads")
                sk.set_num_threads(threads)
        finally:
            sk.set_isa(before)
            sk.set_num_threads(threads)

    def test_nan_row_stays_nan_and_others_untouched(self):
        rng = np.random.default_rng(33)
        w, _ = make_weights(rng, "q4_0", 16, 64)
        x = rng.standard_normal((3, 64)).astype(np.float32)
        clean = sk.matmul(x, w)
        x[1, 7] = np.nan
        got = sk.matmul(x, w)
        assert np.isnan(got[1]).all()
        np.testing.assert_array_equal(got[[0, 2]], clean[[0, 2]])

    def test_modes_and_bad_values(self):
        assert sk.act_modes() == ("q8", "q8x2", "q8x2-head") and sk.get_act_mode() == "q8x2"
        with pytest.raises(ValueError, match="mode"):
            sk.set_act_mode("q16")
        with pytest.raises(TypeError, match="mode"):
            sk.set_act_mode(2)
        assert sk.get_act_mode() == "q8x2"  # a refused value changes nothing


class TestInvariance:
    @pytest.mark.parametrize("fmt", ALL_FORMATS)
    def test_same_bits_on_every_isa_packed_or_not(self, fmt):
        rng = np.random.default_rng(5)
        w, _ = make_weights(rng, fmt, 37, 512)
        if fmt == "bf16":
            w = sk.quantize(rng.standard_normal((37, 512)).astype(np.float32), "bf16")
        x = rng.standard_normal((9, 512)).astype(np.float32)
        before = sk.get_isa()
        try:
            sk.set_isa("scalar")
            ref = sk.matmul(x, w)
            for name in sk.cpu_info()["supported_isas"]:
                sk.set_isa(name)
                np.testing.assert_array_equal(sk.matmul(x, w), ref, err_msg=name)
                np.testing.assert_array_equal(sk.matmul(x, sk.pack(w)), ref, err_msg=name + " packed")
        finally:
            sk.set_isa(before)

    @pytest.mark.parametrize("fmt", QUANT_FORMATS)
    def test_panels_same_bits_as_scalar(self, fmt):
        """From M = 16 on packed weights the prefill panels run (kernels() lists their min_m and
        k_chunk): bit-identical to the scalar tiles at K = 2 full panel chunks + a partial one,
        M = one panel tile, two tiles + a row, a full 128-row panel + 2."""
        panels = [k for k in sk.kernels() if k["op"] == "gemm_panel" and k["format"] == fmt]
        k_chunk = max([k["k_chunk"] for k in panels], default=1024)
        K = 2 * k_chunk + 256
        rng = np.random.default_rng(13)
        w, _ = make_weights(rng, fmt, 19, K)
        pw = sk.pack(w)
        x = rng.standard_normal((130, K)).astype(np.float32)
        before = sk.get_isa()
        try:
            sk.set_isa("scalar")
            ref = sk.matmul(x, w)
            for name in sk.cpu_info()["supported_isas"]:
                sk.set_isa(name)
                for m in (16, 33, 130):
                    np.testing.assert_array_equal(sk.matmul(x[:m], pw), ref[:m], err_msg=f"{name} m={m}")
        finally:
            sk.set_isa(before)

    @pytest.mark.parametrize("fmt", QUANT_FORMATS + ["f16"])
    def test_batch_invariance(self, isa, fmt):
        """Row i gives the same bits whether it is computed alone or inside a batch of 512 (K over
        two panel chunks and a partial one)."""
        rng = np.random.default_rng(11)
        w, _ = make_weights(rng, fmt, 40, 2304)
        pw = sk.pack(w)
        x = rng.standard_normal((512, 2304)).astype(np.float32)
        full = sk.matmul(x, pw)
        for i in (0, 1, 5, 130, 511):
            np.testing.assert_array_equal(sk.matmul(x[i : i + 1], pw)[0], full[i])
        np.testing.assert_array_equal(sk.matmul(x[3:36], pw), full[3:36])

    @pytest.mark.parametrize("fmt", ["q4_1", "q5_k", "f32"])
    def test_thread_count_invariance(self, fmt):
        rng = np.random.default_rng(12)
        w, _ = make_weights(rng, fmt, 100, 512)
        x = rng.standard_normal((33, 512)).astype(np.float32)
        before = sk.get_num_threads()
        try:
            outs = []
            for t in (1, 2, 3, 5):
                sk.set_num_threads(t)
                outs.append(sk.matmul(x, w))
        finally:
            sk.set_num_threads(before)
        for o in outs[1:]:
            np.testing.assert_array_equal(o, outs[0])

    def test_out_parameter(self):
        rng = np.random.default_rng(2)
        qt, _ = make_weights(rng, "q8_0", 7, 64)
        x = rng.standard_normal((3, 64)).astype(np.float32)
        out = np.empty((3, 7), np.float32)
        r = sk.matmul(x, qt, out=out)
        assert r is out or np.shares_memory(r, out)
        np.testing.assert_array_equal(out, sk.matmul(x, qt))

    def test_nan_in_activations_propagates(self):
        rng = np.random.default_rng(3)
        qt, _ = make_weights(rng, "q4_0", 5, 64)
        x = rng.standard_normal((2, 64)).astype(np.float32)
        x[1, 3] = np.nan
        y = sk.matmul(x, qt)
        assert np.isfinite(y[0]).all() and np.isnan(y[1]).all()


class TestErrors:
    def setup_method(self):
        rng = np.random.default_rng(0)
        self.qt = sk.quantize(rng.standard_normal((8, 64)).astype(np.float32), "q4_0")
        self.x = rng.standard_normal((2, 64)).astype(np.float32)

    def test_k_mismatch(self):
        with pytest.raises(ValueError, match="K mismatch: x has K=32"):
            sk.matmul(np.zeros((2, 32), np.float32), self.qt)

    def test_wrong_dtype_and_layout(self):
        with pytest.raises(TypeError, match="x must have dtype float32"):
            sk.matmul(self.x.astype(np.float64), self.qt)
        with pytest.raises(ValueError, match="x must be C-contiguous"):
            sk.matmul(np.zeros((2, 128), np.float32)[:, ::2], self.qt)
        with pytest.raises(TypeError, match="w must be"):
            sk.matmul(self.x, "q4_0")
        with pytest.raises(TypeError, match="float32 or float16"):
            sk.matmul(self.x, np.zeros((8, 64), np.int8))
        with pytest.raises(ValueError, match="1-D"):
            sk.matmul(np.zeros((1, 2, 64), np.float32), self.qt)

    def test_bad_out_is_not_written(self):
        sentinel = np.full((2, 9), 7.0, np.float32)
        with pytest.raises(ValueError, match=r"out must have shape \(2, 8\)"):
            sk.matmul(self.x, self.qt, out=sentinel)
        assert (sentinel == 7.0).all()
        with pytest.raises(TypeError, match="out must have dtype float32"):
            sk.matmul(self.x, self.qt, out=np.zeros((2, 8), np.float64))
        big = np.full((4, 8), 7.0, np.float32)
        with pytest.raises(ValueError, match="C-contiguous"):
            sk.matmul(self.x, self.qt, out=big[::2])
        assert (big == 7.0).all()
        ro = np.zeros((2, 8), np.float32)
        ro.flags.writeable = False
        with pytest.raises(ValueError, match="writeable"):
            sk.matmul(self.x, self.qt, out=ro)

    def test_out_overlapping_x(self):
        buf = np.zeros(2 * 64, np.float32)
        x = buf.reshape(2, 64)
        with pytest.raises(ValueError, match="overlap"):
            sk.matmul(x, self.qt, out=buf[:16].reshape(2, 8))

    def test_pack_errors(self):
        with pytest.raises(TypeError, match="already packed"):
            sk.pack(sk.pack(self.qt))
        p = sk.pack(self.qt)
        assert p.shape == (8, 64) and p.format == "q4_0" and p.nbytes > 0
