"""A synthetic Llama-3.2-1B-shaped Q4_K_M GGUF file for ``slmkernels bench model``.

Speed does not depend on the weight values, so the file holds random weights in exactly the
shapes and formats of the real thing, and both we and llama.cpp load it like any other file:

- Llama-3.2-1B (Meta's config): 16 layers, hidden 2048, 32 query heads / 8 KV heads of 64,
  SwiGLU FFN 8192, vocabulary 128256, tied output head, RoPE base 500000 with Llama-3 frequency
  factors (factor 32, low/high frequency factors 1/4, original context 8192), RMSNorm eps 1e-5.
- Q4_K_M as llama.cpp's llama-quant.cpp assigns it: Q4_K everywhere, except the tied token
  embedding (quantized as the output head: Q6_K) and attn_v / ffn_down in the layers where
  use_more_bits(i, n) = i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2 (Q6_K); norms F32.
- A byte-level BPE vocabulary of 128256 entries (256 byte symbols, filler tokens, Llama 3's
  special tokens at their ids: 128000 BOS, 128001, 128009 EOT) so llama.cpp's loader accepts it; benchmarks feed token ids.

Random Gaussian rows (std 0.02, norms 1) are quantized once per distinct (format, width) and
repeated down each tensor, so writing the 0.8 GB file takes seconds. It is written with a small
GGUF v3 writer of our own (the format: ggml's docs/gguf.md), cached, and reused while its
recipe version matches.
"""

from __future__ import annotations

import math
import os
import struct

import numpy as np

from slmkernels.model.hf import llama3_freq_factors

RECIPE = "llama-3.2-1b-shaped-q4_k_m-v1"
LLAMA_1B = dict(n_layers=16, hidden=2048, n_heads=32, n_kv_heads=8, head_dim=64, ffn=8192, vocab=128256,
                rope_base=500000.0, eps=1e-5, context=131072)

# GGUF value types and GGML tensor types used here (ggml/include/gguf.h, ggml.h)
_U32, _F32, _BOOL, _STR, _ARR, _I32 = 4, 6, 7, 8, 9, 5
GGML_TYPE = {"f32": 0, "q4_k": 12, "q6_k": 14}
ALIGN = 32
LLAMA_FTYPE_MOSTLY_Q4_K_M = 15


def _use_more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def tensor_plan(p: dict = LLAMA_1B) -> list[tuple[str, str, tuple[int, ...]]]:
    """(name, format, numpy shape (rows, cols) or (n,)) of every tensor, in file order."""
    h, f, n = p["hidden"], p["ffn"], p["n_layers"]
    qd, kvd = p["n_heads"] * p["head_dim"], p["n_kv_heads"] * p["head_dim"]
    out = [("rope_freqs.weight", "f32", (p["head_dim"] // 2,)), ("token_embd.weight", "q6_k", (p["vocab"], h))]
    for i in range(n):
        b, hi = f"blk.{i}.", "q6_k" if _use_more_bits(i, n) else "q4_k"
        out += [(b + "attn_norm.weight", "f32", (h,)), (b + "attn_q.weight", "q4_k", (qd, h)),
                (b + "attn_k.weight", "q4_k", (kvd, h)), (b + "attn_v.weight", hi, (kvd, h)),
                (b + "attn_output.weight", "q4_k", (h, qd)), (b + "ffn_norm.weight", "f32", (h,)),
                (b + "ffn_gate.weight", "q4_k", (f, h)), (b + "ffn_up.weight", "q4_k", (f, h)),
                (b + "ffn_down.weight", hi, (h, f))]
    out.append(("output_norm.weight", "f32", (h,)))
    return out


def bos_id(n: int) -> int:  # Llama 3's special tokens sit in the last 256 ids: 128000 of 128256
    return n - 256


def eot_id(n: int) -> int:
    return n - 256 + 9


def _vocab(n: int) -> tuple[list[str], list[int]]:
    from slmkernels.model.tokenizer import BYTE_TO_UNICODE

    tokens = [BYTE_TO_UNICODE[b] for b in range(256)] + [f"t{i}" for i in range(256, n)]
    types = [1] * n
    for tid, s in ((bos_id(n), "<|begin_of_text|>"), (bos_id(n) + 1, "<|end_of_text|>"), (eot_id(n), "<|eot_id|>")):
        tokens[tid], types[tid] = s, 3
    return tokens, types


class _Writer:
    """GGUF v3: header, key/values, tensor infos, data aligned to ALIGN bytes."""

    def __init__(self):
        self.kv: list[bytes] = []

    @staticmethod
    def _s(s: str) -> bytes:
        b = s.encode()
        return struct.pack("<Q", len(b)) + b

    def add(self, key: str, vtype: int, value) -> None:
        body = self._s(key) + struct.pack("<I", vtype)
        if vtype == _STR:
            body += self._s(value)
        elif vtype == _ARR:
            etype, items = value
            body += struct.pack("<IQ", etype, len(items))
            if etype == _STR:
                body += b"".join(self._s(x) for x in items)
            else:
                body += np.asarray(items, dtype={_I32: "<i4", _F32: "<f4", _U32: "<u4"}[etype]).tobytes()
        else:
            body += struct.pack({_U32: "<I", _F32: "<f", _BOOL: "<?", _I32: "<i"}[vtype], value)
        self.kv.append(body)


def _row_bytes(fmt: str, cols: int) -> int:
    return {"q4_k": 144, "q6_k": 210}[fmt] * cols // 256 if fmt != "f32" else 4 * cols


def write_q4_k_m(path: str, p: dict = LLAMA_1B, seed: int = 0) -> str:
    """Writes a synthetic Llama-family Q4_K_M file of hyperparameters p (default: Llama-3.2-1B's)
    to path (atomically) and returns it."""
    import slmkernels as sk

    plan = tensor_plan(p)
    rng = np.random.default_rng(seed)
    w = _Writer()
    a = "llama."
    w.add("general.architecture", _STR, "llama")
    w.add("general.name", _STR, "synthetic Llama-shaped Q4_K_M (random weights, " + RECIPE + ")")
    w.add("general.file_type", _U32, LLAMA_FTYPE_MOSTLY_Q4_K_M)
    for k, v in (("block_count", p["n_layers"]), ("context_length", p["context"]), ("embedding_length", p["hidden"]),
                 ("feed_forward_length", p["ffn"]), ("attention.head_count", p["n_heads"]),
                 ("attention.head_count_kv", p["n_kv_heads"]), ("rope.dimension_count", p["head_dim"]),
                 ("vocab_size", p["vocab"]), ("attention.key_length", p["head_dim"]),
                 ("attention.value_length", p["head_dim"])):
        w.add(a + k, _U32, v)
    w.add(a + "rope.freq_base", _F32, p["rope_base"])
    w.add(a + "attention.layer_norm_rms_epsilon", _F32, p["eps"])
    tokens, types = _vocab(p["vocab"])
    w.add("tokenizer.ggml.model", _STR, "gpt2")
    w.add("tokenizer.ggml.pre", _STR, "llama-bpe")
    w.add("tokenizer.ggml.tokens", _ARR, (_STR, tokens))
    w.add("tokenizer.ggml.token_type", _ARR, (_I32, types))
    w.add("tokenizer.ggml.merges", _ARR, (_STR, ["t 1", "t 2"]))
    w.add("tokenizer.ggml.bos_token_id", _U32, bos_id(p["vocab"]))
    w.add("tokenizer.ggml.eos_token_id", _U32, eot_id(p["vocab"]))

    infos, offset = [], 0
    for name, fmt, shape in plan:
        dims = tuple(reversed(shape))  # ggml order: columns first
        infos.append(w._s(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
                     + struct.pack("<IQ", GGML_TYPE[fmt], offset))
        nbytes = _row_bytes(fmt, shape[-1]) * (shape[0] if len(shape) == 2 else 1)
        offset += (nbytes + ALIGN - 1) // ALIGN * ALIGN
    patterns: dict = {}  # (format, cols) -> 64 quantized random rows, repeated down each tensor
    tmp = path + ".part"
    with open(tmp, "wb") as fh:
        fh.write(b"GGUF" + struct.pack("<IQQ", 3, len(plan), len(w.kv)))
        for kv in w.kv:
            fh.write(kv)
        for info in infos:
            fh.write(info)
        fh.write(b"\0" * (-fh.tell() % ALIGN))
        for name, fmt, shape in plan:
            if name == "rope_freqs.weight":
                data = llama3_freq_factors(p["head_dim"], p["rope_base"]).tobytes()
            elif fmt == "f32":
                data = (1.0 + 0.05 * rng.standard_normal(shape)).astype(np.float32).tobytes()
            else:
                rows, cols = shape
                key = (fmt, cols)
                if key not in patterns:
                    x = (0.02 * rng.standard_normal((64, cols))).astype(np.float32)
                    patterns[key] = np.asarray(sk.quantize(x, fmt)).reshape(64, -1)
                pat = patterns[key]
                reps = -(-rows // 64)
                data = np.tile(pat, (reps, 1))[:rows].tobytes()
            fh.write(data)
            fh.write(b"\0" * (-len(data) % ALIGN))
    os.replace(tmp, path)
    return path


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "slmkernels")


def llama_1b_q4_k_m(directory: str | None = None) -> str:
    """The cached synthetic file (written on first use)."""
    d = directory or cache_dir()
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, RECIPE + ".gguf")
    if not os.path.exists(path):
        write_q4_k_m(path)
    return path
