"""slmkernels.torch: custom ops (opcheck, torch.compile fullgraph), GGUFLinear and swap_linear on a
small random-weight transformer against its float output."""

import os
import re
from pathlib import Path

import numpy as np
import pytest

if os.environ.get("SLMK_SANITIZE"):
    # torch's own (uninstrumented) libraries under .ci/sanitize's preloaded ASan runtime; the
    # C++ these tests reach (array intake, GEMM, rope, attention) is sanitized by the numpy tests
    pytest.skip("torch is not run under the sanitizer", allow_module_level=True)
torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

import slmkernels as sk  # noqa: E402
import slmkernels.torch as skt  # noqa: E402

README = Path(__file__).parent.parent / "README.md"
GEN = torch.Generator().manual_seed(14)


def randn(*shape, dtype=torch.float32):
    return torch.randn(*shape, generator=GEN).to(dtype)


def q8_blocks(n, k):
    qt = sk.quantize(randn(n, k).numpy(), "q8_0")
    return torch.from_numpy(qt.data), qt


# ---- ops ----


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_opcheck_every_op(dtype):
    blocks, qt = q8_blocks(16, 64)
    cache = sk.KVCache(1, 2, 32, capacity_tokens=64, dtype="f32")
    seq = cache.new_sequence()
    cache.append(0, seq, randn(6, 2, 32).numpy(), randn(6, 2, 32).numpy())
    cid = skt.register_cache(cache)
    try:
        cases = [
            (torch.ops.slmkernels.gguf_matmul.default, (randn(2, 3, 64, dtype=dtype), blocks, qt.ggml_type, [16, 64])),
            (torch.ops.slmkernels.rope.default, (randn(3, 4, 32, dtype=dtype), torch.tensor([0, 5, 9]), 10000.0, "neox", None)),
            (torch.ops.slmkernels.rmsnorm.default, (randn(2, 3, 64, dtype=dtype), randn(64, dtype=dtype), 1e-5)),
            (torch.ops.slmkernels.attention.default, (randn(2, 4, 32, dtype=dtype), randn(6, 2, 32, dtype=dtype),
                                                      randn(6, 2, 32, dtype=dtype), None)),
            (torch.ops.slmkernels.kv_attention.default, (randn(2, 4, 32, dtype=dtype), cid, 0, seq, None)),
        ]
        for op, args in cases:
            torch.library.opcheck(op, args)
    finally:
        skt.unregister_cache(cid)


def test_ops_match_references():
    blocks, qt = q8_blocks(16, 64)
    x = randn(2, 3, 64)
    y = skt.gguf_matmul(x, blocks, qt.ggml_type, [16, 64])
    np.testing.assert_array_equal(y.reshape(6, 16).numpy(), sk.matmul(x.reshape(6, 64).numpy(), qt))
    w = randn(64)
    ref = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w
    torch.testing.assert_close(skt.rmsnorm(x, w, 1e-5), ref, rtol=1e-5, atol=1e-5)
    # dense attention = SDPA with the queries at the newest positions (causal, GQA by repeat)
    q, k, v = randn(3, 4, 32), randn(7, 2, 32), randn(7, 2, 32)
    got = skt.attention(q, k, v)
    kk, vv = k.repeat_interleave(2, dim=1), v.repeat_interleave(2, dim=1)
    mask = torch.arange(7)[None, :] <= torch.arange(4, 7)[:, None]
    ref = F.scaled_dot_product_attention(q.transpose(0, 1), kk.transpose(0, 1), vv.transpose(0, 1), attn_mask=mask)
    torch.testing.assert_close(got, ref.transpose(0, 1), rtol=1e-4, atol=1e-5)


def test_packed_once_per_blocks_tensor():
    blocks, qt = q8_blocks(32, 64)
    x = randn(1, 64)
    skt.gguf_matmul(x, blocks, qt.ggml_type, [32, 64])
    view = skt._quantized_view(blocks, qt.ggml_type, (32, 64))
    assert view.packed_nbytes > 0  # the first call packed it and the view is kept
    skt.gguf_matmul(x, blocks, qt.ggml_type, [32, 64])
    assert skt._quantized_view(blocks, qt.ggml_type, (32, 64)) is view


# ---- a small transformer ----


class Block(nn.Module):
    def __init__(self, d, h, g, ff):
        super().__init__()
        self.h, self.g, self.hd = h, g, d // h
        self.norm1, self.norm2 = nn.Parameter(1 + 0.1 * randn(d)), nn.Parameter(1 + 0.1 * randn(d))
        self.q, self.k, self.v = nn.Linear(d, d, bias=False), nn.Linear(d, g * self.hd, bias=False), nn.Linear(d, g * self.hd, bias=False)
        self.o = nn.Linear(d, d, bias=False)
        self.up, self.gate, self.down = nn.Linear(d, ff), nn.Linear(d, ff, bias=False), nn.Linear(ff, d, bias=False)

    def forward(self, x, use_ops):
        t = x.shape[0]
        pos = torch.arange(t)
        h = skt.rmsnorm(x, self.norm1, 1e-5) if use_ops else x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * self.norm1
        q, k, v = self.q(h).view(t, self.h, self.hd), self.k(h).view(t, self.g, self.hd), self.v(h).view(t, self.g, self.hd)
        if use_ops:
            q, k = skt.rope(q, pos, 10000.0, "neox"), skt.rope(k, pos, 10000.0, "neox")
            a = skt.attention(q, k, v)
        else:
            q, k = rope_ref(q, pos), rope_ref(k, pos)
            rep = self.h // self.g
            a = F.scaled_dot_product_attention(q.transpose(0, 1), k.repeat_interleave(rep, 1).transpose(0, 1),
                                               v.repeat_interleave(rep, 1).transpose(0, 1), is_causal=True).transpose(0, 1)
        x = x + self.o(a.reshape(t, -1))
        h = skt.rmsnorm(x, self.norm2, 1e-5) if use_ops else x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * self.norm2
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


def rope_ref(x, pos, theta=10000.0):
    d = x.shape[-1]
    inv = theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    ang = pos[:, None].double() * inv[None, :]
    cos, sin = ang.cos().float()[:, None, :], ang.sin().float()[:, None, :]
    a, b = x[..., : d // 2], x[..., d // 2 :]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


class TinyLM(nn.Module):
    def __init__(self, vocab=96, d=128, h=4, g=2, ff=256, layers=2, use_ops=True):
        super().__init__()
        self.use_ops = use_ops
        self.emb = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(Block(d, h, g, ff) for _ in range(layers))
        self.head = nn.Linear(d, vocab, bias=False)

    def forward(self, ids):
        x = self.emb(ids)
        for b in self.blocks:
            x = b(x, self.use_ops)
        return self.head(x)


@torch.no_grad()
def test_swapped_transformer_tracks_float_output():
    torch.manual_seed(0)
    ref_model = TinyLM(use_ops=False).eval()
    ids = torch.randint(0, 96, (12,), generator=GEN)
    want = ref_model(ids)
    model = TinyLM(use_ops=True).eval()
    model.load_state_dict(ref_model.state_dict())
    np.testing.assert_allclose(model(ids).numpy(), want.numpy(), rtol=1e-4, atol=1e-4)  # float path: our ops
    swapped = skt.swap_linear(model, "q8_0")
    assert len(swapped) == 2 * 7 + 1 and all(isinstance(model.get_submodule(n), skt.GGUFLinear) for n in swapped)
    got = model(ids)
    rel = (got - want).norm() / want.norm()
    # Q8_0 weights and int8 activations: about 1% relative error per projection here
    assert rel < 0.03, float(rel)
    assert (got.argmax(-1) == want.argmax(-1)).float().mean() >= 0.9


@torch.no_grad()
def test_compile_fullgraph_no_graph_breaks():
    torch._dynamo.reset()
    model = TinyLM(layers=1).eval()
    skt.swap_linear(model, "q4_0")
    ids = torch.randint(0, 96, (5,), generator=GEN)
    eager = model(ids)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    assert torch.equal(compiled(ids), eager)
    explain = torch._dynamo.explain(model)(ids)
    assert explain.graph_break_count == 0 and explain.graph_count == 1


def test_gguf_linear_from_gguf_mmap(tmp_path):
    import mmap

    qt0 = sk.quantize(randn(32, 256).numpy(), "q4_k")
    path = tmp_path / "w.bin"
    path.write_bytes(qt0.data.tobytes())
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    lin = skt.GGUFLinear.from_gguf(sk.QuantizedTensor(mm, "q4_k", (32, 256)))
    x = randn(3, 256)
    np.testing.assert_array_equal(lin(x).numpy(), sk.matmul(x.numpy(), qt0))
    assert "format=q4_k" in repr(lin)


def test_readme_torch_example():
    text = README.read_text()
    section = text[text.index("## Use from PyTorch"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, "README.md (Use from PyTorch)", "exec"), {})
