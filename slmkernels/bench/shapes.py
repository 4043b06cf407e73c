"""Shape presets (``--shapes``) and the context every case function receives."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class Preset:
    """The dimensions of one model (or one explicit M x N x K problem)."""

    name: str
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    vocab: int
    rows: tuple = ()  # M values fixed by an explicit shape; empty: use --rows
    explicit: bool = False

    def linears(self) -> list[tuple[str, int, int, bool]]:
        """(layer, N, K, prefill too): the distinct matmul shapes of one transformer block, plus
        the LM head, which runs on one row even in prefill (only the last token's logits)."""
        if self.explicit:
            return [("matmul", self.ffn, self.hidden, True)]
        return [
            ("attn_q", self.heads * self.head_dim, self.hidden, True),
            ("attn_kv", self.kv_heads * self.head_dim, self.hidden, True),
            ("ffn_up", self.ffn, self.hidden, True),
            ("ffn_down", self.hidden, self.ffn, True),
            ("lm_head", self.vocab, self.hidden, False),
        ]


PRESETS = {
    "smollm2-135m": Preset("smollm2-135m", hidden=576, heads=9, kv_heads=3, head_dim=64, ffn=1536, vocab=49152),
    "llama-1b": Preset("llama-1b", hidden=2048, heads=32, kv_heads=8, head_dim=64, ffn=8192, vocab=128256),
    "square-4096": Preset("square-4096", hidden=4096, heads=32, kv_heads=32, head_dim=128, ffn=4096, vocab=4096),
}

_EXPLICIT = re.compile(r"^(\d+)x(\d+)x(\d+)$")


def parse_shape(s: str) -> Preset:
    """A preset name, or ``MxNxK``: M rows of activations, N outputs, K inputs. An explicit shape
    also drives the other areas: hidden = K, ffn = vocab = N, heads of 64 (or one head of K)."""
    s = s.strip().lower()
    if s in PRESETS:
        return PRESETS[s]
    m = _EXPLICIT.match(s)
    if not m:
        raise ValueError(f"unknown shape {s!r}: use a preset ({', '.join(PRESETS)}) or MxNxK, e.g. 1x4096x4096")
    M, N, K = (int(v) for v in m.groups())
    if min(M, N, K) < 1:
        raise ValueError(f"shape {s!r}: M, N and K must be >= 1")
    if K % 2:
        raise ValueError(f"shape {s!r}: K must be even (it is also the head dimension of the ops benches)")
    hd = 64 if K % 64 == 0 else K
    return Preset(s, hidden=K, heads=K // hd, kv_heads=K // hd, head_dim=hd, ffn=N, vocab=N, rows=(M,), explicit=True)


@dataclass
class Context:
    """What a case function gets: the chosen shapes and formats, and the run's settings."""

    presets: list
    formats: list
    rows: list  # M values for presets (prefill rows; 1 = decode / GEMV)
    working_set: int  # bytes of distinct weight copies cycled through by GEMV rows (0: hot cache)
    threads: int
    isa: str
    seed: int = 0
    llama_python: Optional[str] = None
    model_path: Optional[str] = None
    model_missing: str = ""  # why no model file was found (model_path None)
    extra: dict = field(default_factory=dict)

    @property
    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)

    def m_values(self, p: Preset) -> list:
        return list(p.rows) if p.rows else list(self.rows)
