"""PyTorch integration: slmkernels' kernels as torch custom ops, and a GGUF-quantized Linear.

Importable only where torch is installed (torch is never a dependency of slmkernels). The ops
live in the ``slmkernels`` namespace of ``torch.ops``, each with a fake (meta) implementation, so
``torch.compile(fullgraph=True)`` traces through them without graph breaks:

- ``gguf_matmul(x, blocks, ggml_type, shape)``: ``x (..., K) @ W.T`` for W (N, K) given as its GGUF
  bytes (a uint8 tensor). The packed copy of W is built on the first call and kept while ``blocks``
  lives (keep the tensor, e.g. as a module buffer, to pay for packing once).
- ``rope(x, positions, theta, mode, rotary_dim)``, ``rmsnorm(x, weight, eps)``;
- ``attention(q, k, v, scale)``: causal attention over caller-owned dense K/V, q (T, H, D) the
  newest T positions of k, v (S, G, D) (GQA: H a multiple of G), read in place by the attention
  kernels (:func:`slmkernels.attention_dense`: float32 or float16 K/V, any strides with a
  contiguous last axis, so a (G, S, D) cache transposed to (S, G, D) is not copied);
- ``kv_attention(q, cache_id, layer, seq, scale)``: attention over a ``KVCache`` registered with
  :func:`register_cache` (reads the cache; write it with ``KVCache.append/write`` outside).

Activations may be float32, float16 or bfloat16 CPU tensors; results have the input's dtype.
``GGUFLinear`` runs an ``nn.Linear`` on a GGUF block format, and :func:`swap_linear` swaps every
Linear of a model for one.
"""

from __future__ import annotations

import itertools
import threading
import warnings
import weakref
from typing import Callable, Optional

import numpy as np
import torch
from torch import Tensor, nn

import slmkernels as sk

__all__ = [
    "GGUFLinear",
    "attention",
    "gguf_matmul",
    "kv_attention",
    "register_cache",
    "rmsnorm",
    "rope",
    "swap_linear",
    "unregister_cache",
]


# ---- QuantizedTensor views of `blocks` tensors, kept while the tensor lives ----

_views: dict[tuple, sk.QuantizedTensor] = {}
_views_lock = threading.Lock()


def _quantized_view(blocks: Tensor, ggml_type: int, shape: tuple[int, int]) -> sk.QuantizedTensor:
    """A QuantizedTensor over blocks' memory (no copy), the same object while blocks lives and is
    unchanged, so matmul's packed copy is built once."""
    key = (id(blocks), blocks.data_ptr(), blocks._version, ggml_type, shape)
    with _views_lock:
        qt = _views.get(key)
    if qt is not None:
        return qt
    if blocks.dtype != torch.uint8 or blocks.device.type != "cpu":
        raise TypeError(f"blocks must be a uint8 CPU tensor of GGUF bytes, got {blocks.dtype} on {blocks.device}")
    if not blocks.is_contiguous():
        raise ValueError("blocks must be contiguous")
    qt = sk.QuantizedTensor(blocks.detach().reshape(-1).numpy(), ggml_type, shape)
    with _views_lock:
        stale = [k for k in _views if k[0] == key[0] and k != key]  # the tensor was written to
        for k in stale:
            del _views[k]
        _views[key] = qt
    weakref.finalize(blocks, _views.pop, key, None)
    return qt


# ---- custom ops ----


@torch.library.custom_op("slmkernels::gguf_matmul", mutates_args=())
def gguf_matmul(x: Tensor, blocks: Tensor, ggml_type: int, shape: list[int]) -> Tensor:
    n, k = int(shape[0]), int(shape[1])
    if x.shape[-1] != k:
        raise ValueError(f"x has K={x.shape[-1]}, the weights have shape ({n}, {k})")
    qt = _quantized_view(blocks, int(ggml_type), (n, k))
    y = sk.matmul(x.reshape(-1, k).contiguous(), qt)
    return y.reshape(*x.shape[:-1], n)


@gguf_matmul.register_fake
def _(x, blocks, ggml_type, shape):
    return x.new_empty((*x.shape[:-1], int(shape[0])))


@torch.library.custom_op("slmkernels::rope", mutates_args=())
def rope(x: Tensor, positions: Tensor, theta: float, mode: str, rotary_dim: Optional[int] = None) -> Tensor:
    return sk.rope(x.contiguous(), positions.contiguous(), theta=theta, mode=mode, rotary_dim=rotary_dim)


@rope.register_fake
def _(x, positions, theta, mode, rotary_dim=None):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.custom_op("slmkernels::rmsnorm", mutates_args=())
def rmsnorm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    n = x.shape[-1]
    y = sk.rmsnorm(x.reshape(-1, n).contiguous(), weight.contiguous(), eps)
    return y.reshape(x.shape)


@rmsnorm.register_fake
def _(x, weight, eps):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.custom_op("slmkernels::attention", mutates_args=())
def attention(q: Tensor, k: Tensor, v: Tensor, scale: Optional[float] = None) -> Tensor:
    if k.dim() != 3 or v.shape != k.shape:
        raise ValueError("k and v must have the same shape (kv_tokens, n_kv_heads, head_dim)")
    return sk.attention_dense(q.contiguous(), k, v, scale=scale)


@attention.register_fake
def _(q, k, v, scale=None):
    return torch.empty_like(q, memory_format=torch.contiguous_format)


_caches: dict[int, sk.KVCache] = {}
_cache_ids = itertools.count(1)


def register_cache(cache: sk.KVCache) -> int:
    """An id for `cache` that kv_attention takes (ops cannot take Python objects)."""
    cid = next(_cache_ids)
    _caches[cid] = cache
    return cid


def unregister_cache(cache_id: int) -> None:
    _caches.pop(cache_id, None)


@torch.library.custom_op("slmkernels::kv_attention", mutates_args=())
def kv_attention(q: Tensor, cache_id: int, layer: int, seq: int, scale: Optional[float] = None) -> Tensor:
    try:
        cache = _caches[cache_id]
    except KeyError:
        raise KeyError(f"no KVCache registered as {cache_id}") from None
    return sk.attention(q.contiguous(), cache, layer, seq, scale=scale)


@kv_attention.register_fake
def _(q, cache_id, layer, seq, scale=None):
    return torch.empty_like(q, memory_format=torch.contiguous_format)


# ---- modules ----


class GGUFLinear(nn.Module):
    """``y = x @ W.T (+ bias)`` with W (out_features, in_features) in a GGUF block format, on
    slmkernels' GEMM (activations quantized to int8 per block for quantized formats)."""

    def __init__(self, blocks: Tensor, ggml_type: int, shape: tuple[int, int], bias: Optional[Tensor] = None):
        super().__init__()
        self.out_features, self.in_features = int(shape[0]), int(shape[1])
        self.ggml_type = int(ggml_type)
        self.register_buffer("blocks", blocks)
        self.bias = nn.Parameter(bias.detach().clone(), requires_grad=False) if bias is not None else None
        _quantized_view(blocks, self.ggml_type, (self.out_features, self.in_features))  # validates now

    @classmethod
    def from_gguf(cls, qt: sk.QuantizedTensor, bias: Optional[Tensor] = None) -> "GGUFLinear":
        """From a tensor of a GGUF file (e.g. ``GGUFReader.tensor(name)``), viewing its bytes."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            blocks = torch.from_numpy(qt.data)  # a read-only mmap is never written through this
        return cls(blocks, qt.ggml_type, qt.shape, bias)

    @classmethod
    def from_linear(cls, linear: nn.Linear, fmt: str = "q8_0") -> "GGUFLinear":
        """By quantizing an nn.Linear's weight to `fmt` (in_features a multiple of its block)."""
        w = linear.weight.detach().to(torch.float32).contiguous().numpy()
        qt = sk.quantize(w, fmt)
        return cls(torch.from_numpy(qt.data), qt.ggml_type, qt.shape, linear.bias)

    def forward(self, x: Tensor) -> Tensor:
        y = torch.ops.slmkernels.gguf_matmul(x, self.blocks, self.ggml_type, [self.out_features, self.in_features])
        return y + self.bias.to(y.dtype) if self.bias is not None else y

    def extra_repr(self) -> str:
        fmt = next(n for n, f in sk.formats().items() if f["ggml_type"] == self.ggml_type)
        return f"in_features={self.in_features}, out_features={self.out_features}, format={fmt}"


def swap_linear(model: nn.Module, fmt: str = "q8_0", filter: Optional[Callable[[str, nn.Linear], bool]] = None) -> list[str]:
    """Replace every nn.Linear of `model` (in place) whose in_features is a multiple of `fmt`'s
    block size, and that `filter(name, module)` accepts, by GGUFLinear.from_linear. Returns the
    names of the layers swapped."""
    block = sk.formats()[fmt.lower()]["block_size"]
    swapped = []
    for name, mod in list(model.named_modules()):
        for child_name, child in list(mod.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if type(child) is nn.Linear and child.in_features % block == 0 and (filter is None or filter(full, child)):
                setattr(mod, child_name, GGUFLinear.from_linear(child, fmt))
                swapped.append(full)
    return swapped
