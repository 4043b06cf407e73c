"""Array intake: numpy, torch CPU tensors and any __dlpack__ producer, in float32/float16/bfloat16.

Every kernel that takes activations or out= views the caller's memory; half-precision values are
widened/narrowed by the F16/BF16 row kernels. The reference for a half-precision call is the same
call on the float32 values of the half inputs, narrowed to the output type the same way
(round-to-nearest-even), so results must be equal bit for bit.
"""

import numpy as np
import pytest

import slmkernels as sk


class DLPackOnly:
    """A producer that exposes nothing but the DLPack protocol (as JAX or CuPy-on-host would)."""

    def __init__(self, a, device=(1, 0)):
        self._a = a
        self._device = device

    def __dlpack__(self, **kwargs):
        return self._a.__dlpack__()

    def __dlpack_device__(self):
        return self._device


RNG = np.random.default_rng(14)
X = RNG.standard_normal((3, 64)).astype(np.float32)
W = RNG.standard_normal((64,)).astype(np.float32)
QT = sk.quantize(RNG.standard_normal((16, 64)).astype(np.float32), "q8_0")


def test_numpy_float16_in_float16_out():
    xh = X.astype(np.float16)
    got = sk.matmul(xh, QT)
    assert got.dtype == np.float16 and got.shape == (3, 16)
    want = sk.matmul(xh.astype(np.float32), QT).astype(np.float16)
    np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))
    got = sk.rmsnorm(xh, W, 1e-5)
    want = sk.rmsnorm(xh.astype(np.float32), W, 1e-5).astype(np.float16)
    np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))


def test_float16_out_into_float32_call():
    out = np.zeros((3, 16), np.float16)
    r = sk.matmul(X, QT, out=out)
    assert r is out
    np.testing.assert_array_equal(out, sk.matmul(X, QT).astype(np.float16))


def test_dlpack_only_producer_is_viewed():
    got = sk.matmul(DLPackOnly(X), QT)
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, sk.matmul(X, QT))
    np.testing.assert_array_equal(sk.rmsnorm(DLPackOnly(X), DLPackOnly(W), 1e-5), sk.rmsnorm(X, W, 1e-5))


def test_dlpack_errors():
    with pytest.raises(TypeError, match="x is not in CPU memory"):
        sk.matmul(DLPackOnly(X, device=(2, 0)), QT)
    with pytest.raises(TypeError, match="x must have dtype float32"):
        sk.matmul(DLPackOnly(X.astype(np.float64)), QT)
    with pytest.raises(TypeError, match="out must be a numpy.ndarray or a torch tensor"):
        sk.matmul(X, QT, out=DLPackOnly(np.zeros((3, 16), np.float32)))
    with pytest.raises(ValueError, match="C-contiguous"):
        sk.matmul(X.astype(np.float16)[:, ::2], sk.quantize(np.zeros((16, 32), np.float32), "q8_0"))
