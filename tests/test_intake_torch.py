"""Array intake from torch tensors: float32/float16/bfloat16 in, the same kind out (see test_intake.py)."""

import os

import numpy as np
import pytest

import slmkernels as sk

if os.environ.get("SLMK_SANITIZE"):
    # torch's own libraries under the preloaded ASan runtime (see test_torch.py); the DLPack
    # path itself is sanitized by test_intake.py through a DLPack-only producer
    pytest.skip("torch is not run under the sanitizer", allow_module_level=True)
torch = pytest.importorskip("torch")

RNG = np.random.default_rng(14)
X = RNG.standard_normal((3, 64)).astype(np.float32)
W = RNG.standard_normal((64,)).astype(np.float32)
QT = sk.quantize(RNG.standard_normal((16, 64)).astype(np.float32), "q8_0")


def test_torch_float32_in_torch_out():
    xt = torch.from_numpy(X.copy())
    got = sk.matmul(xt, QT)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
    np.testing.assert_array_equal(got.numpy(), sk.matmul(X, QT))
    # a tensor that requires grad is read through a detached view
    got = sk.rmsnorm(xt.clone().requires_grad_(True), torch.from_numpy(W), 1e-5)
    np.testing.assert_array_equal(got.numpy(), sk.rmsnorm(X, W, 1e-5))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_torch_half_types(dtype):
    dt = getattr(torch, dtype)
    xt = torch.from_numpy(X).to(dt)
    x32 = xt.float().numpy()
    got = sk.matmul(xt, QT)
    assert got.dtype == dt
    assert torch.equal(got, torch.from_numpy(sk.matmul(x32, QT)).to(dt))
    got = sk.rmsnorm(xt, torch.from_numpy(W).to(dt), 1e-5)
    want = sk.rmsnorm(x32, torch.from_numpy(W).to(dt).float().numpy(), 1e-5)
    assert torch.equal(got, torch.from_numpy(want).to(dt))
    # in place through out= (rmsnorm allows out is x)
    y = xt.clone()
    r = sk.rmsnorm(y, torch.from_numpy(W), 1e-5, out=y)
    assert r is y
    assert torch.equal(y, torch.from_numpy(sk.rmsnorm(x32, W, 1e-5)).to(dt))
    q = torch.from_numpy(RNG.standard_normal((2, 4, 64)).astype(np.float32)).to(dt)
    pos = torch.tensor([5, 6])
    got = sk.rope(q, pos, theta=10000.0, mode="neox")
    want = sk.rope(q.float().numpy(), pos.numpy(), theta=10000.0, mode="neox")
    assert got.dtype == dt and torch.equal(got, torch.from_numpy(want).to(dt))


def test_torch_out_is_written_in_place():
    out = torch.full((3, 16), 7.0)
    r = sk.matmul(torch.from_numpy(X), QT, out=out)
    assert r is out
    np.testing.assert_array_equal(out.numpy(), sk.matmul(X, QT))
    # a column slice is not C-contiguous: refused, out untouched
    big = torch.full((3, 32), 7.0)
    with pytest.raises(ValueError, match="C-contiguous"):
        sk.matmul(X, QT, out=big[:, :16])
    assert bool((big == 7.0).all())


def test_torch_attention_and_kv_write():
    cache = sk.KVCache(1, 2, 64, capacity_tokens=64)
    seq = cache.new_sequence()
    k = torch.randn(5, 2, 64, generator=torch.Generator().manual_seed(0))
    v = torch.randn(5, 2, 64, generator=torch.Generator().manual_seed(1))
    cache.append(0, seq, k.half(), v.half())
    q = torch.randn(1, 4, 64, generator=torch.Generator().manual_seed(2)).bfloat16()
    got = sk.attention(q, cache, 0, seq)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.bfloat16
    want = sk.attention(q.float().numpy(), cache, 0, seq)
    assert torch.equal(got, torch.from_numpy(want).bfloat16())


def test_torch_errors_match_numpy():
    with pytest.raises(TypeError, match="x must have dtype float32"):
        sk.matmul(torch.zeros(3, 64, dtype=torch.float64), QT)
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        sk.matmul(torch.zeros(64, 3).t(), QT)
    with pytest.raises(TypeError, match="x must have dtype float32"):
        sk.rmsnorm(torch.zeros(2, 8, dtype=torch.int32), np.zeros(8, np.float32), 1e-5)
