"""Argument validation of every public function: a wrong argument raises, never crashes, and
never writes anything.

Each public function has a valid call (shapes and formats drawn by hypothesis) and a list of
wrong values per argument: wrong type, dtype, rank, shape, contiguity, format/shape
disagreement, out-of-range values, read-only or overlapping outputs, and ints too large for 64
bits. Each test replaces one argument of a valid call by one wrong value and checks that

- the call raises the documented exception (TypeError for a wrong type, ValueError for a wrong
  value; KeyError for an unknown KV-cache sequence, IndexError for a layer out of range,
  KVCacheFullError when the pool cannot hold a request) and the message names the argument;
- no array passed in (inputs and `out`) changed, bit for bit, and a KVCache involved is in
  exactly the state it was in before (every sequence's keys, values, positions, stats()).

A last group throws random junk (hypothesis) at every argument of every function: whatever
happens, only those exception types come out.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

import slmkernels as sk

SENTINEL = np.float32(-1234.5)  # what `out` arrays hold before a call that must not write them
HUGE = 2**70  # does not fit in 64 bits
OK_ERRORS = (TypeError, ValueError, KeyError, IndexError, sk.KVCacheFullError)


# ---- helpers ----


def strided(a: np.ndarray) -> np.ndarray:
    """Same shape and values as `a`, every element 2 apart in every axis (not contiguous; a
    one-element array always is: that example is rejected)."""
    wide = a
    for ax in range(a.ndim):
        wide = np.repeat(wide, 2, axis=ax)
    view = wide[(slice(None, None, 2),) * a.ndim]
    if view.flags.c_contiguous:
        reject()
    return view


def readonly(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.setflags(write=False)
    return a


def filled(shape, dtype=np.float32) -> np.ndarray:
    return np.full(shape, SENTINEL, dtype)


def arrays_in(v: Any, out: list | None = None) -> list[np.ndarray]:
    """Every numpy array reachable from an argument value (lists, tuples, dicts)."""
    out = [] if out is None else out
    if isinstance(v, np.ndarray):
        out.append(v)
    elif isinstance(v, (list, tuple)):
        for x in v:
            arrays_in(x, out)
    elif isinstance(v, dict):
        for x in v.values():
            arrays_in(x, out)
    return out


def cache_state(c: sk.KVCache):
    """Everything observable about a KV cache."""
    seqs = {}
    for s in c.sequences():
        seqs[s] = (c.length(s), [(c.positions(l, s).tobytes(), c.keys(l, s).tobytes(), c.values(l, s).tobytes())
                                 for l in range(c.n_layers)])
    return c.stats(), seqs


@dataclass(repr=False)
class Wrong:
    arg: str
    make: Callable[[dict], Any]  # valid kwargs -> the wrong value for `arg`
    exc: tuple = (TypeError, ValueError)
    names: str | None = None  # regex the message must match (default: the argument's name)
    label: str = ""

    def __repr__(self):
        return f"Wrong({self.arg}: {self.label or '?'})"


@dataclass(repr=False)
class Api:
    """A valid call of one public function and wrong values for its arguments."""

    name: str
    call: Callable[..., Any]
    build: Callable[[Any], dict]  # hypothesis `draw` -> valid kwargs
    wrongs: list[Wrong]
    caches: Callable[[dict], list] = field(default=lambda kw: [])  # KV caches the call could change

    def __repr__(self):
        return f"Api({self.name})"


def w(arg, make, exc=(TypeError, ValueError), names=None, label=""):
    return Wrong(arg, make, exc, names, label)


def array_wrongs(arg: str, *, allow_1d: bool = False, allow_3d: bool = False, names: str | None = None) -> list[Wrong]:
    """Wrong values for a float32, C-contiguous array argument."""
    out = [
        w(arg, lambda kw: None, label="None"),
        w(arg, lambda kw: kw[arg].tolist(), label="list"),
        w(arg, lambda kw: "x", label="str"),
        w(arg, lambda kw: kw[arg].astype(np.float64), label="float64"),
        w(arg, lambda kw: kw[arg].astype(np.int32), label="int32"),
        w(arg, lambda kw: strided(kw[arg]), names=names, label="strided"),
        w(arg, lambda kw: kw[arg][..., :0], names=names, label="empty"),
    ]
    if not allow_3d:
        out.append(w(arg, lambda kw: kw[arg][None, None], names=names, label="rank+2"))
    if not allow_1d:
        out.append(w(arg, lambda kw: kw[arg].reshape(-1)[:1].copy() if kw[arg].ndim > 1 else kw[arg][None, None],
                     names=names, label="rank"))
    return out


def out_wrongs(src: str = "x", *, overlap_with: tuple[str, ...] = ()) -> list[Wrong]:
    """Wrong `out` arrays: each is filled with SENTINEL and must keep it."""
    def partial_overlap(name):
        def make(kw):
            a = kw[name]
            # out is a view shifted one element into `a`'s memory (shape of the valid out)
            want = kw["out"].shape
            n = int(np.prod(want))
            base = a.reshape(-1)
            if n + 1 <= base.size:
                return base[1 : n + 1].reshape(want)
            # out larger than the input: a buffer holding the input's tail and more
            if base.size == 1 and n == 1:
                reject()  # one element overlaps only as the same element (in place, allowed for some)
            buf = np.empty(base.size + n, np.float32)
            buf[: base.size] = base
            kw[name] = buf[: base.size].reshape(a.shape)
            return buf[base.size - 1 : base.size - 1 + n].reshape(want)
        return make

    out = [
        w("out", lambda kw: filled(kw["out"].shape, np.float64), label="float64"),
        w("out", lambda kw: filled(kw["out"].shape[:-1] + (kw["out"].shape[-1] + 1,)), label="shape"),
        w("out", lambda kw: filled((2,) + kw["out"].shape), label="rank"),
        w("out", lambda kw: strided(filled(kw["out"].shape)), label="strided"),
        w("out", lambda kw: readonly(filled(kw["out"].shape)), label="readonly"),
        w("out", lambda kw: filled(kw["out"].shape).tolist(), label="list"),
        w("out", lambda kw: "out", label="str"),
    ]
    for name in overlap_with:
        out.append(w("out", partial_overlap(name), label=f"overlaps {name}"))
    return out


def int_wrongs(arg: str, bad_values=(), *, exc_value=(ValueError,), names=None) -> list[Wrong]:
    out = [
        w(arg, lambda kw: "1", label="str"),
        w(arg, lambda kw: 1.5, label="float"),
        w(arg, lambda kw: None, label="None"),
        w(arg, lambda kw: HUGE, names=names, label="huge"),
    ]
    for v in bad_values:
        out.append(w(arg, lambda kw, v=v: v, exc=exc_value, names=names, label=repr(v)))
    return out


# ---- the APIs ----

FORMATS = list(sk.formats())


def block_of(fmt: str) -> int:
    return sk.formats()[fmt]["block_size"]


def _matmul_build(draw):
    fmt = draw(st.sampled_from(FORMATS + ["ndarray_f32", "ndarray_f16", "packed"]))
    M = draw(st.sampled_from([1, 3]))
    N = draw(st.sampled_from([1, 5, 16]))
    qfmt = fmt if fmt in FORMATS else "q8_0"
    K = max(32, block_of(qfmt)) * draw(st.sampled_from([1, 2]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    wf = rng.standard_normal((N, K)).astype(np.float32)
    if fmt == "ndarray_f32":
        wt = wf
    elif fmt == "ndarray_f16":
        wt = wf.astype(np.float16)
    elif fmt == "packed":
        wt = sk.pack(sk.quantize(wf, "q8_0"))
    else:
        wt = sk.quantize(wf, fmt)
    x = rng.standard_normal((M, K)).astype(np.float32)
    if M == 1 and draw(st.booleans()):
        x = x[0]
    return dict(x=x, w=wt, out=filled((M, N) if x.ndim == 2 else (N,)))


def _overlap_w(kw):
    """out inside the memory of a float32 (N, K) weight array (w is re-pointed to one)."""
    M, N = (1, kw["out"].shape[0]) if kw["out"].ndim == 1 else kw["out"].shape
    K = kw["x"].shape[-1]
    buf = np.random.default_rng(0).standard_normal(N * K + M * N).astype(np.float32)
    kw["w"] = buf[: N * K].reshape(N, K)
    return buf[N * K - 1 : N * K - 1 + M * N].reshape(kw["out"].shape)


API_MATMUL = Api(
    "matmul",
    lambda x, w, out: sk.matmul(x, w, out=out),
    _matmul_build,
    array_wrongs("x", allow_1d=True, names="x|K")
    + [
        w("x", lambda kw: np.ones((2, 2, kw["x"].shape[-1]), np.float32), label="3-D"),
        w("x", lambda kw: np.ones(kw["x"].shape[:-1] + (kw["x"].shape[-1] + 1,), np.float32), names="K", label="K+1"),
        w("w", lambda kw: None),
        w("w", lambda kw: "w"),
        w("w", lambda kw: 3),
        w("w", lambda kw: [[1.0] * kw["x"].shape[-1]]),
        w("w", lambda kw: np.ones((4, kw["x"].shape[-1]), np.float64), label="float64"),
        w("w", lambda kw: np.ones((4, kw["x"].shape[-1]), np.int8), label="int8"),
        w("w", lambda kw: np.ones(kw["x"].shape[-1], np.float32), label="1-D"),
        w("w", lambda kw: np.ones((1, 4, kw["x"].shape[-1]), np.float32), label="3-D"),
        w("w", lambda kw: strided(np.ones((4, kw["x"].shape[-1]), np.float32)), label="strided"),
        w("w", lambda kw: np.ones((0, kw["x"].shape[-1]), np.float32), label="empty"),
        w("w", lambda kw: sk.quantize(np.ones((4, kw["x"].shape[-1] + 32), np.float32), "q8_0"), names="K",
          label="K mismatch"),
        w("w", lambda kw: sk.pack(sk.quantize(np.ones((4, kw["x"].shape[-1] * 2), np.float32), "q4_0")), names="K",
          label="packed K mismatch"),
    ]
    + out_wrongs(overlap_with=("x",))
    + [w("out", _overlap_w, label="overlaps w")],
)


def _pack_build(draw):
    fmt = draw(st.sampled_from(FORMATS))
    K = max(32, block_of(fmt))
    return dict(w=sk.quantize(np.ones((draw(st.integers(1, 20)), K), np.float32), fmt))


API_PACK = Api(
    "pack",
    lambda w: sk.pack(w),
    _pack_build,
    [
        w("w", lambda kw: sk.pack(kw["w"]), label="already packed"),
        w("w", lambda kw: None),
        w("w", lambda kw: "w"),
        w("w", lambda kw: bytes(kw["w"].data), label="bytes"),
        w("w", lambda kw: np.ones((4, 32), np.float64), label="float64"),
        w("w", lambda kw: np.ones(32, np.float32), label="1-D"),
        w("w", lambda kw: np.ones((2, 4, 32), np.float32), label="3-D"),
        w("w", lambda kw: strided(np.ones((4, 32), np.float32)), label="strided"),
        w("w", lambda kw: np.ones((0, 32), np.float32), label="empty"),
    ],
)


def _quantize_build(draw):
    fmt = draw(st.sampled_from(FORMATS))
    K = max(32, block_of(fmt)) * draw(st.sampled_from([1, 2]))
    rows = draw(st.integers(1, 4))
    x = np.random.default_rng(rows).standard_normal((rows, K)).astype(np.float32)
    return dict(x=x if draw(st.booleans()) or rows > 1 else x[0], fmt=fmt)


def _non_finite(kw):
    if block_of(kw["fmt"]) == 1:
        kw["fmt"] = "q8_0"  # the float formats carry NaN
    x = kw["x"].copy()
    x.reshape(-1)[-1] = np.nan
    return x


def _not_whole_blocks(kw):
    if block_of(kw["fmt"]) == 1:
        kw["fmt"] = "q4_0"  # any row length is whole blocks of the float formats
    return np.ones(kw["x"].shape[:-1] + (kw["x"].shape[-1] - 1,), np.float32)


FMT_WRONGS = [
    w("fmt", lambda kw: "q9_9", label="unknown name"),
    w("fmt", lambda kw: "", label="empty name"),
    w("fmt", lambda kw: 99, label="unknown id"),
    w("fmt", lambda kw: -1, label="negative id"),
    w("fmt", lambda kw: HUGE, label="huge id"),
    w("fmt", lambda kw: 1.5, label="float"),
    w("fmt", lambda kw: None, label="None"),
    w("fmt", lambda kw: True, label="bool"),
    w("fmt", lambda kw: b"q8_0", label="bytes"),
    w("fmt", lambda kw: 10, label="unsupported Q2_K id"),
]

API_QUANTIZE = Api(
    "quantize",
    lambda x, fmt: sk.quantize(x, fmt),
    _quantize_build,
    array_wrongs("x", allow_1d=True)
    + [
        w("x", lambda kw: np.ones((2, 2, 64), np.float32), label="3-D"),
        w("x", _not_whole_blocks, label="not whole blocks"),
        w("x", _non_finite, label="NaN"),
    ]
    + FMT_WRONGS,
)

API_DEQUANTIZE = Api(
    "dequantize",
    lambda qt: sk.dequantize(qt),
    lambda draw: dict(qt=sk.quantize(np.ones((2, 256), np.float32), draw(st.sampled_from(FORMATS)))),
    [
        w("qt", lambda kw: None),
        w("qt", lambda kw: np.ones((2, 256), np.float32), label="ndarray"),
        w("qt", lambda kw: bytes(kw["qt"].data), label="bytes"),
        w("qt", lambda kw: sk.pack(kw["qt"]), label="PackedWeights"),
    ],
)


def _qt_build(draw):
    fmt = draw(st.sampled_from(FORMATS))
    K = max(32, block_of(fmt))
    rows = draw(st.integers(1, 3))
    data = np.zeros(rows * K // block_of(fmt) * sk.formats()[fmt]["type_size"], np.uint8)
    if draw(st.booleans()):
        data = bytes(data)
    return dict(data=data, format=fmt, shape=(rows, K), offset=0)


API_QT = Api(
    "QuantizedTensor",
    lambda data, format, shape, offset: sk.QuantizedTensor(data, format, shape, offset=offset),
    _qt_build,
    [
        w("data", lambda kw: bytes(kw["data"])[:-1], names="bytes", label="short"),
        w("data", lambda kw: bytes(kw["data"]) + b"\0", names="bytes|offset", label="long"),
        w("data", lambda kw: None),
        w("data", lambda kw: 3),
        w("data", lambda kw: "abc"),
        w("data", lambda kw: list(bytes(kw["data"])), label="list"),
        w("data", lambda kw: strided(np.frombuffer(bytes(kw["data"]), np.uint8).copy()), label="strided"),
        w("shape", lambda kw: (0, kw["shape"][1])),
        w("shape", lambda kw: (-1, kw["shape"][1])),
        w("shape", lambda kw: (kw["shape"][0], kw["shape"][1] + 1)),
        w("shape", lambda kw: (kw["shape"][0],)),
        w("shape", lambda kw: (1, 2, 3)),
        w("shape", lambda kw: "2x64"),
        w("shape", lambda kw: (2.0, kw["shape"][1])),
        w("shape", lambda kw: (True, kw["shape"][1])),
        w("shape", lambda kw: (HUGE, kw["shape"][1])),
        w("shape", lambda kw: (2**39, kw["shape"][1]), names="shape|bytes"),
        w("shape", lambda kw: None),
        w("offset", lambda kw: -1),
        w("offset", lambda kw: HUGE),
        w("offset", lambda kw: "0"),
        w("offset", lambda kw: 1.5),
        w("offset", lambda kw: len(bytes(kw["data"])) + 1),
        w("offset", lambda kw: 1, names="offset|bytes"),
    ]
    + [Wrong("format", x.make, x.exc, "fmt|format", x.label) for x in FMT_WRONGS],
)


def _rows_build(draw, two=False):
    rows = draw(st.integers(1, 4))
    n = draw(st.integers(1, 70))
    rng = np.random.default_rng(n)
    x = rng.standard_normal((rows, n)).astype(np.float32)
    vec = rows == 1 and draw(st.booleans())
    if vec:
        x = x[0]
    if two:
        return dict(gate=x, up=rng.standard_normal(x.shape).astype(np.float32), out=filled(x.shape))
    return dict(x=x, w=rng.standard_normal(n).astype(np.float32), eps=1e-5, out=filled(x.shape))


API_RMSNORM = Api(
    "rmsnorm",
    lambda x, w, eps, out: sk.rmsnorm(x, w, eps, out=out),
    _rows_build,
    array_wrongs("x", allow_1d=True)
    + [
        w("x", lambda kw: np.ones((2, 2, kw["w"].size), np.float32), label="3-D"),
        w("w", lambda kw: None),
        w("w", lambda kw: kw["w"].astype(np.float64), label="float64"),
        w("w", lambda kw: kw["w"][None], label="2-D"),
        w("w", lambda kw: np.ones(kw["w"].size + 1, np.float32), label="length"),
        w("w", lambda kw: strided(kw["w"]), label="strided"),
        w("eps", lambda kw: -1.0),
        w("eps", lambda kw: math.nan),
        w("eps", lambda kw: math.inf),
        w("eps", lambda kw: "a"),
        w("eps", lambda kw: None),
    ]
    + out_wrongs(overlap_with=("x", "w")),
)

def _gated_api(name, fn):
    """swiglu and geglu take the same arguments (gate, up, out) and check them alike."""
    return Api(
        name,
        lambda gate, up, out: fn(gate, up, out=out),
        lambda draw: _rows_build(draw, two=True),
        array_wrongs("gate", allow_1d=True, names="gate")
        + [
            w("up", lambda kw: None),
            w("up", lambda kw: kw["up"].astype(np.float64), label="float64"),
            w("up", lambda kw: np.ones(kw["up"].shape[:-1] + (kw["up"].shape[-1] + 1,), np.float32), label="shape"),
            w("up", lambda kw: kw["up"][None], label="rank"),
            w("up", lambda kw: strided(kw["up"]), label="strided"),
        ]
        + out_wrongs(overlap_with=("gate", "up")),
    )


API_SWIGLU = _gated_api("swiglu", sk.swiglu)
API_GEGLU = _gated_api("geglu", sk.geglu)
API_REGLU = _gated_api("reglu", sk.reglu)


def _embedding_build(draw):
    fmt = draw(st.sampled_from(FORMATS))
    K = max(32, block_of(fmt))
    rows = draw(st.integers(2, 6))
    table = sk.quantize(np.random.default_rng(rows).standard_normal((rows, K)).astype(np.float32), fmt)
    n = draw(st.integers(1, 5))
    ids = np.asarray(draw(st.lists(st.integers(0, rows - 1), min_size=n, max_size=n)),
                     dtype=draw(st.sampled_from([np.int64, np.int32, np.uint16])))
    return dict(table=table, ids=ids, out=filled((n, K)))


def _alias_table(kw):
    """out inside the memory of an f32 table over a writable numpy array (table re-pointed)."""
    n, K = kw["out"].shape
    rows = kw["table"].shape[0]
    buf = np.random.default_rng(1).standard_normal(rows * K + n * K).astype(np.float32)
    kw["table"] = sk.QuantizedTensor(buf[: rows * K], "f32", (rows, K))
    return buf[rows * K - 1 : rows * K - 1 + n * K].reshape(n, K)


API_EMBEDDING = Api(
    "embedding",
    lambda table, ids, out: sk.embedding(table, ids, out=out),
    _embedding_build,
    [
        w("table", lambda kw: None),
        w("table", lambda kw: sk.dequantize(kw["table"]), label="ndarray"),
        w("ids", lambda kw: None),
        w("ids", lambda kw: kw["ids"].tolist(), label="list"),
        w("ids", lambda kw: kw["ids"].astype(np.float32), label="float"),
        w("ids", lambda kw: kw["ids"][None], label="2-D"),
        w("ids", lambda kw: np.array([kw["table"].shape[0]]), names="ids|range", label="past the end"),
        w("ids", lambda kw: np.array([-1]), names="ids|range", label="negative"),
        w("ids", lambda kw: np.array([2**64 - 1], np.uint64), names="ids|range", label="uint64 max"),
        w("out", _alias_table, label="overlaps table"),
    ]
    + out_wrongs(),
)

ROPE_D = 16


def _rope_build(draw):
    T = draw(st.integers(1, 4))
    H = draw(st.integers(1, 3))
    x = np.random.default_rng(T * 7 + H).standard_normal((T, H, ROPE_D)).astype(np.float32)
    return dict(x=x, positions=np.arange(T, dtype=draw(st.sampled_from([np.int64, np.int32]))), theta=10000.0,
                mode=draw(st.sampled_from(["normal", "neox"])), rotary_dim=draw(st.sampled_from([None, 8, ROPE_D])),
                scaling=None, freq_factors=None, out=filled(x.shape))


API_ROPE = Api(
    "rope",
    lambda x, positions, theta, mode, rotary_dim, scaling, freq_factors, out: sk.rope(
        x, positions, theta=theta, mode=mode, rotary_dim=rotary_dim, scaling=scaling, freq_factors=freq_factors, out=out
    ),
    _rope_build,
    array_wrongs("x", allow_1d=False, allow_3d=True)
    + [
        w("x", lambda kw: kw["x"][0], label="2-D"),
        w("positions", lambda kw: None),
        w("positions", lambda kw: kw["positions"].tolist(), label="list"),
        w("positions", lambda kw: kw["positions"].astype(np.float64), label="float"),
        w("positions", lambda kw: np.arange(kw["x"].shape[0] + 1), label="length"),
        w("positions", lambda kw: kw["positions"][None], label="2-D"),
        w("theta", lambda kw: 0.0),
        w("theta", lambda kw: -1.0),
        w("theta", lambda kw: math.nan),
        w("theta", lambda kw: math.inf),
        w("theta", lambda kw: "a"),
        w("mode", lambda kw: "foo"),
        w("mode", lambda kw: 3),
        w("mode", lambda kw: None),
        w("rotary_dim", lambda kw: 3),
        w("rotary_dim", lambda kw: 0),
        w("rotary_dim", lambda kw: ROPE_D + 2),
        w("rotary_dim", lambda kw: -2),
        w("rotary_dim", lambda kw: "8"),
        w("rotary_dim", lambda kw: 8.0),
        w("rotary_dim", lambda kw: HUGE),
        w("scaling", lambda kw: "linear"),
        w("scaling", lambda kw: {"factor": 2.0}, names="type"),
        w("scaling", lambda kw: {"type": "linear"}, names="factor"),
        w("scaling", lambda kw: {"type": "foo", "factor": 2.0}, names="scaling type"),
        w("scaling", lambda kw: {"type": "linear", "factor": -1.0}, names="factor"),
        w("scaling", lambda kw: {"type": "linear", "factor": "2"}, names="factor"),
        w("scaling", lambda kw: {"type": "linear", "factor": math.nan}, names="factor"),
        w("scaling", lambda kw: {"type": "yarn", "factor": 2.0}, names="original_context"),
        w("scaling", lambda kw: {"type": "llama3", "factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 1.0,
                                 "original_context": 8192}, names="llama3"),
        w("freq_factors", lambda kw: np.ones(ROPE_D), label="length"),
        w("freq_factors", lambda kw: -np.ones((kw["rotary_dim"] or ROPE_D) // 2), label="negative"),
        w("freq_factors", lambda kw: np.full((kw["rotary_dim"] or ROPE_D) // 2, np.nan), label="nan"),
        w("freq_factors", lambda kw: np.ones((1, (kw["rotary_dim"] or ROPE_D) // 2)), label="2-D"),
        w("freq_factors", lambda kw: "abc", label="str"),
    ]
    + out_wrongs(overlap_with=("x",)),
)

KV = dict(n_layers=2, n_kv_heads=2, head_dim=32)


def _cache(dtype="f16", tokens=5, capacity=64, windows=None):
    c = sk.KVCache(KV["n_layers"], KV["n_kv_heads"], KV["head_dim"], capacity_tokens=capacity, block_tokens=8,
                   dtype=dtype, layer_windows=windows)
    s = c.new_sequence()
    if tokens:
        c.extend(s, tokens)
        rng = np.random.default_rng(tokens)
        for layer in range(KV["n_layers"]):
            k = rng.standard_normal((tokens, KV["n_kv_heads"], KV["head_dim"])).astype(np.float32)
            c.write(layer, s, k, -k)
    return c, s


def _attention_build(draw):
    c, s = _cache(draw(st.sampled_from(["f32", "f16", "q8_0", "q4_0"])), tokens=draw(st.integers(1, 12)))
    T = draw(st.integers(1, c.length(s)))
    H = KV["n_kv_heads"] * draw(st.sampled_from([1, 2]))
    q = np.random.default_rng(T).standard_normal((T, H, KV["head_dim"])).astype(np.float32)
    return dict(q=q, cache=c, layer=draw(st.integers(0, KV["n_layers"] - 1)), seq=s, scale=None,
                window=draw(st.sampled_from([None, 4])), softcap=None,
                sinks=draw(st.sampled_from([None, np.zeros(H, np.float32)])), out=filled(q.shape))


def _attention_option_wrongs():
    return [
        w("scale", lambda kw: 0.0),
        w("scale", lambda kw: -1.0),
        w("scale", lambda kw: math.nan),
        w("scale", lambda kw: math.inf),
        w("scale", lambda kw: "a"),
        w("window", lambda kw: 0),
        w("window", lambda kw: -1),
        w("window", lambda kw: 2.5),
        w("window", lambda kw: "4"),
        w("window", lambda kw: HUGE),
        w("softcap", lambda kw: 0.0),
        w("softcap", lambda kw: -3.0),
        w("softcap", lambda kw: math.nan),
        w("softcap", lambda kw: "a"),
        w("sinks", lambda kw: np.zeros(kw["q"].shape[1] + 1, np.float32), label="length"),
        w("sinks", lambda kw: np.zeros(kw["q"].shape[1], np.float64), label="float64"),
        w("sinks", lambda kw: np.zeros((1, kw["q"].shape[1]), np.float32), label="2-D"),
        w("sinks", lambda kw: [0.0] * kw["q"].shape[1], label="list"),
        w("cache", lambda kw: None),
        w("cache", lambda kw: "cache"),
        w("layer", lambda kw: KV["n_layers"], exc=(IndexError,)),
        w("layer", lambda kw: -1, exc=(IndexError,)),
        w("layer", lambda kw: "0"),
        w("layer", lambda kw: HUGE),
    ]


def _overlap_sinks(kw):
    H = kw["q"].shape[1]
    buf = np.zeros(kw["out"].size + H, np.float32)
    kw["sinks"] = buf[:H]
    return buf[H - 1 : H - 1 + kw["out"].size].reshape(kw["out"].shape)


API_ATTENTION = Api(
    "attention",
    lambda q, cache, layer, seq, scale, window, softcap, sinks, out: sk.attention(
        q, cache, layer, seq, scale=scale, window=window, softcap=softcap, sinks=sinks, out=out
    ),
    _attention_build,
    array_wrongs("q", allow_3d=True)
    + [
        w("q", lambda kw: np.ones(kw["q"].shape[:2] + (KV["head_dim"] + 1,), np.float32), names="head_dim"),
        w("q", lambda kw: np.ones((1, 3, KV["head_dim"]), np.float32), names="heads"),
        w("q", lambda kw: np.ones((kw["cache"].length(kw["seq"]) + 1,) + kw["q"].shape[1:], np.float32),
          names="tokens", label="more tokens than the sequence"),
        w("seq", lambda kw: kw["seq"] + 100, exc=(KeyError,), names="seq"),
        w("seq", lambda kw: -1, exc=(KeyError,), names="seq"),
        w("seq", lambda kw: "0"),
        w("seq", lambda kw: HUGE),
        w("out", _overlap_sinks, label="overlaps sinks"),
    ]
    + _attention_option_wrongs()
    + out_wrongs("q", overlap_with=("q",)),
    caches=lambda kw: [kw["cache"]] if isinstance(kw.get("cache"), sk.KVCache) else [],
)


def _attention_batch_build(draw):
    c, s = _cache(draw(st.sampled_from(["f32", "f16", "q8_0", "q4_0"])), tokens=draw(st.integers(1, 12)))
    t = c.fork(s)
    seqs = draw(st.sampled_from([[s], [s, t], [t, s, s]]))
    H = KV["n_kv_heads"] * draw(st.sampled_from([1, 2]))
    q = np.random.default_rng(len(seqs)).standard_normal((len(seqs), H, KV["head_dim"])).astype(np.float32)
    return dict(q=q, cache=c, layer=draw(st.integers(0, KV["n_layers"] - 1)), seqs=seqs, scale=None,
                window=draw(st.sampled_from([None, 4])), softcap=None,
                sinks=draw(st.sampled_from([None, np.zeros(H, np.float32)])), out=filled(q.shape))


API_ATTENTION_BATCH = Api(
    "attention_batch",
    lambda q, cache, layer, seqs, scale, window, softcap, sinks, out: sk.attention_batch(
        q, cache, layer, seqs, scale=scale, window=window, softcap=softcap, sinks=sinks, out=out
    ),
    _attention_batch_build,
    array_wrongs("q", allow_3d=True)
    + [
        w("q", lambda kw: np.ones(kw["q"].shape[:2] + (KV["head_dim"] + 1,), np.float32), names="head_dim"),
        w("seqs", lambda kw: kw["seqs"] + [kw["seqs"][0]], names="seqs"),
        w("seqs", lambda kw: kw["seqs"][:-1] + [999], exc=(KeyError,), names="seq"),
        w("seqs", lambda kw: None),
        w("seqs", lambda kw: "ab"),
        w("seqs", lambda kw: [0.5] * len(kw["seqs"])),
        w("seqs", lambda kw: [HUGE] * len(kw["seqs"])),
    ]
    + _attention_option_wrongs()
    + out_wrongs("q", overlap_with=("q",)),
    caches=lambda kw: [kw["cache"]] if isinstance(kw.get("cache"), sk.KVCache) else [],
)


def _kv_init_build(draw):
    return dict(n_layers=draw(st.integers(1, 3)), n_kv_heads=draw(st.integers(1, 4)),
                head_dim=draw(st.sampled_from([1, 31, 64])), capacity_tokens=draw(st.integers(1, 100)),
                block_tokens=draw(st.sampled_from([1, 16, 32])),
                dtype=draw(st.sampled_from(["f32", "f16", "q8_0", "Q4_0"])), layer_windows=None)


API_KVCACHE = Api(
    "KVCache",
    lambda n_layers, n_kv_heads, head_dim, capacity_tokens, block_tokens, dtype, layer_windows: sk.KVCache(
        n_layers, n_kv_heads, head_dim, capacity_tokens=capacity_tokens, block_tokens=block_tokens, dtype=dtype,
        layer_windows=layer_windows
    ),
    _kv_init_build,
    int_wrongs("n_layers", (0, -1))
    + int_wrongs("n_kv_heads", (0, -3))
    + int_wrongs("head_dim", (0, 4097))
    + int_wrongs("capacity_tokens", (0, -1, 2**62, 2**63 - 1, 2**25 * 32), names="capacity_tokens")
    + int_wrongs("block_tokens", (0, 4097))
    + [
        w("dtype", lambda kw: "q5_k"),
        w("dtype", lambda kw: "bf16"),
        w("dtype", lambda kw: 8),
        w("dtype", lambda kw: None),
        w("layer_windows", lambda kw: [0] * (kw["n_layers"] + 1)),
        w("layer_windows", lambda kw: [-1] * kw["n_layers"]),
        w("layer_windows", lambda kw: ["a"] * kw["n_layers"]),
        w("layer_windows", lambda kw: [1.5] * kw["n_layers"]),
        w("layer_windows", lambda kw: [HUGE] * kw["n_layers"]),
        w("layer_windows", lambda kw: 3),
        w("layer_windows", lambda kw: "ab"),
    ],
)


# KVCache methods: each call is on a cache holding a written sequence, a fork of it, and a
# sequence with positions reserved but not yet written.
def _method_build(draw, method):
    c, s = _cache(draw(st.sampled_from(["f32", "f16", "q8_0", "q4_0"])), tokens=draw(st.integers(1, 10)),
                  capacity=draw(st.sampled_from([64, 128])), windows=draw(st.sampled_from([None, [None, 6]])))
    f = c.fork(s)
    p = c.new_sequence()
    c.extend(p, 2)
    kw = dict(cache=c, seq=draw(st.sampled_from([s, f])), pending=p)
    n = c.length(s)
    k = np.ones((n + 1, KV["n_kv_heads"], KV["head_dim"]), np.float32)
    if method in ("extend", "truncate"):
        kw["n_tokens"] = draw(st.integers(1, n))
    elif method == "evict":
        kw.update(n_sink=draw(st.integers(0, 3)), window=draw(st.integers(0, 5)))
    elif method in ("keys", "values", "positions"):
        kw["layer"] = draw(st.integers(0, KV["n_layers"] - 1))
    elif method == "write":
        c.extend(kw["seq"], n + 1)
        kw.update(layer=draw(st.integers(0, KV["n_layers"] - 1)), k=k, v=-k)
    elif method == "save":
        kw["path"] = os.devnull
    return kw


def _kv_method(name, call, arg_wrongs, seq_exc=(KeyError,)):
    wrongs = [
        w("seq", lambda kw: max(kw["cache"].sequences()) + 1, exc=seq_exc, names="seq", label="unknown"),
        w("seq", lambda kw: -1, exc=seq_exc, names="seq", label="negative"),
        w("seq", lambda kw: "0"),
        w("seq", lambda kw: HUGE),
        w("seq", lambda kw: None),
    ] + arg_wrongs
    return Api(f"KVCache.{name}", call, lambda draw: _method_build(draw, name), wrongs, caches=lambda kw: [kw["c0"]])


def _pending(kw):
    return kw["pending"]


def _layer_wrongs():
    return [
        w("layer", lambda kw: KV["n_layers"], exc=(IndexError,)),
        w("layer", lambda kw: -1, exc=(IndexError,)),
        w("layer", lambda kw: "0"),
        w("layer", lambda kw: HUGE),
    ]


def _kv_shape_wrongs(arg):
    return [
        w(arg, lambda kw: None),
        w(arg, lambda kw: kw[arg].astype(np.float64), label="float64"),
        w(arg, lambda kw: kw[arg][:, :1].copy(), label="heads"),
        w(arg, lambda kw: kw[arg][:, :, :-1].copy(), label="head_dim"),
        w(arg, lambda kw: kw[arg][0], label="2-D"),
        w(arg, lambda kw: kw[arg][:0], label="no tokens"),
        w(arg, lambda kw: kw[arg][:-1].copy(), names="tokens|reserved", label="token count"),
        w(arg, lambda kw: strided(kw[arg]), label="strided"),
    ]


def _nonfinite_k(kw):
    if kw["cache"].dtype not in ("q8_0", "q4_0"):
        reject()  # float caches store NaN
    k = kw["k"].copy()
    k[0, 0, 0] = np.inf
    return k


KV_METHODS = [
    _kv_method("extend", lambda cache, seq, n_tokens, **_: cache.extend(seq, n_tokens),
               int_wrongs("n_tokens", (0, -1))
               + [w("n_tokens", lambda kw: 2**62, exc=(sk.KVCacheFullError,), names="full"),
                  w("n_tokens", lambda kw: 2**63 - 1, exc=(sk.KVCacheFullError,), names="full"),
                  w("n_tokens", lambda kw: kw["cache"].capacity_tokens + 1, exc=(sk.KVCacheFullError,), names="full"),
                  w("seq", _pending, names="not yet written", label="pending writes")]),
    _kv_method("write", lambda cache, seq, layer, k, v, **_: cache.write(layer, seq, k, v),
               _layer_wrongs() + _kv_shape_wrongs("k") + _kv_shape_wrongs("v")
               + [w("k", _nonfinite_k, names="k.*non-finite"),
                  w("seq", lambda kw: [s for s in kw["cache"].sequences() if s not in (kw["seq"], kw["pending"])][0],
                    names="extend first", label="no reservation")]),
    _kv_method("fork", lambda cache, seq, **_: cache.fork(seq), [w("seq", _pending, names="not yet written")]),
    _kv_method("truncate", lambda cache, seq, n_tokens, **_: cache.truncate(seq, n_tokens),
               int_wrongs("n_tokens", (-1,), names="n_tokens")
               + [w("n_tokens", lambda kw: kw["cache"].length(kw["seq"]) + 1, names="n_tokens")]),
    _kv_method("free", lambda cache, seq, **_: cache.free(seq), []),
    _kv_method("evict", lambda cache, seq, n_sink, window, **_: cache.evict(seq, n_sink=n_sink, window=window),
               int_wrongs("n_sink", (-1,)) + int_wrongs("window", (-1,))
               + [w("seq", _pending, names="not yet written")]),
    _kv_method("length", lambda cache, seq, **_: cache.length(seq), []),
    _kv_method("keys", lambda cache, seq, layer, **_: cache.keys(layer, seq), _layer_wrongs()),
    _kv_method("values", lambda cache, seq, layer, **_: cache.values(layer, seq), _layer_wrongs()),
    _kv_method("positions", lambda cache, seq, layer, **_: cache.positions(layer, seq), _layer_wrongs()),
    _kv_method("save", lambda cache, seq, path, **_: cache.save(seq, path),
               [w("path", lambda kw: None), w("path", lambda kw: 3.5), w("seq", _pending, names="not yet written")]),
]


def _restore_build(draw):
    import tempfile

    c, s = _cache(tokens=draw(st.integers(1, 10)))
    path = os.path.join(tempfile.mkdtemp(prefix="slmk-args-"), "s.kv")
    c.save(s, path)
    return dict(cache=c, seq=s, path=path)


API_RESTORE = Api(
    "KVCache.restore",
    lambda cache, path, **_: cache.restore(path),
    _restore_build,
    [
        w("path", lambda kw: None),
        w("path", lambda kw: 3.5),
        w("path", lambda kw: os.devnull, exc=(sk.KVCacheFileError,), names="KV cache file|magic", label="empty file"),
        w("path", lambda kw: "/nonexistent/kv.bin", exc=(FileNotFoundError,), names="kv.bin", label="missing"),
    ],
    caches=lambda kw: [kw["c0"]],
)

API_SET_NUM_THREADS = Api(
    "set_num_threads",
    lambda n: sk.set_num_threads(n),
    lambda draw: dict(n=sk.get_num_threads()),
    int_wrongs("n", (0, -1, 1025), names="num_threads|n") + [w("n", lambda kw: True), w("n", lambda kw: 2.0)],
)


def _unsupported_isa():
    known = ["scalar", "avx2", "avx_vnni", "avx512", "avx512_vnni", "avx512_amx", "neon", "neon_dotprod", "neon_i8mm"]
    missing = [i for i in known if i not in sk.cpu_info()["supported_isas"]]
    if not missing:
        reject()  # this CPU runs every ISA
    return missing[0]


API_SET_ISA = Api(
    "set_isa",
    lambda isa: sk.set_isa(isa),
    lambda draw: dict(isa=sk.get_isa()),
    [
        w("isa", lambda kw: "foo", names="ISA"),
        w("isa", lambda kw: "", names="ISA"),
        w("isa", lambda kw: "AVX2 ", names="ISA"),
        w("isa", lambda kw: 3),
        w("isa", lambda kw: None),
        w("isa", lambda kw: _unsupported_isa(), names="not supported", label="unsupported"),
    ],
)

APIS = [API_MATMUL, API_PACK, API_QUANTIZE, API_DEQUANTIZE, API_QT, API_RMSNORM, API_SWIGLU, API_REGLU, API_EMBEDDING,
        API_ROPE, API_ATTENTION, API_ATTENTION_BATCH, API_KVCACHE, *KV_METHODS, API_RESTORE, API_SET_NUM_THREADS,
        API_SET_ISA]
CASES = [(api, i) for api in APIS for i in range(len(api.wrongs))]


def _case_id(case):
    api, i = case
    wr = api.wrongs[i]
    return f"{api.name}-{wr.arg}-{wr.label or i}"


def _snapshot(kw, caches):
    return [(a, a.tobytes()) for a in arrays_in(kw)], [(c, cache_state(c)) for c in caches]


def _assert_unchanged(snap):
    arrays, caches = snap
    for a, before in arrays:
        assert a.tobytes() == before, "an argument array was written by a call that raised"
    for c, before in caches:
        assert cache_state(c) == before, "the KV cache changed in a call that raised"


def _run_wrong(api: Api, wrong: Wrong, kw: dict):
    """Calls api with kw (valid) after replacing wrong.arg; checks the error and that nothing changed."""
    if "cache" in kw and isinstance(kw["cache"], sk.KVCache):
        kw["c0"] = kw["cache"]
    bad = dict(kw)
    bad[wrong.arg] = wrong.make(bad)  # (may also re-point another argument, e.g. to share memory)
    caches = api.caches(bad)
    snap = _snapshot(bad, caches)
    args = {k: v for k, v in bad.items() if k != "c0"}
    with pytest.raises(wrong.exc) as ei:
        api.call(**args)
    msg = str(ei.value)
    pattern = wrong.names or wrong.arg
    import re

    assert re.search(pattern, msg, re.IGNORECASE), f"message does not name {pattern!r}: {msg}"
    _assert_unchanged(snap)


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_wrong_argument_raises_and_writes_nothing(case, data):
    api, i = case
    isa, threads = sk.get_isa(), sk.get_num_threads()
    kw = api.build(data.draw)
    _run_wrong(api, api.wrongs[i], kw)
    assert (sk.get_isa(), sk.get_num_threads()) == (isa, threads)


@pytest.mark.parametrize("api", APIS, ids=[a.name for a in APIS])
@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_the_valid_call_works(api, data):
    """The base calls above are valid (so each wrong value is what makes its call fail)."""
    kw = api.build(data.draw)
    kw.pop("pending", None)
    api.call(**kw)
    if "out" in kw and isinstance(kw["out"], np.ndarray) and kw["out"].size:
        assert not np.all(kw["out"] == SENTINEL), "the valid call did not write out"


# ---- random junk for any argument ----

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.binary(max_size=16),
    st.lists(st.integers(-3, 3), max_size=4),
    st.dictionaries(st.sampled_from(["type", "factor", "original_context"]), st.one_of(st.floats(), st.text(max_size=3)),
                    max_size=3),
    st.builds(
        lambda shape, dtype: np.zeros(shape, dtype),
        st.lists(st.integers(0, 4), min_size=0, max_size=4).map(tuple),
        st.sampled_from([np.float32, np.float64, np.float16, np.int64, np.int8, np.uint8, np.bool_]),
    ),
)


@pytest.mark.parametrize("api", APIS, ids=[a.name for a in APIS])
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_junk_arguments_raise_only_documented_errors(api, data):
    kw = api.build(data.draw)
    if "cache" in kw:
        kw["c0"] = kw["cache"]
    names = [k for k in kw if k not in ("c0", "pending", "cache", "path")]  # (junk paths would make files)
    for name in data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True)):
        kw[name] = data.draw(JUNK, label=name)
    if api is API_SET_NUM_THREADS and isinstance(kw["n"], int) and 1 <= kw["n"] <= 1024:
        kw["n"] = 0  # a valid thread count would start threads: not junk
    args = {k: v for k, v in kw.items() if k not in ("c0", "pending")}
    threads, isa = sk.get_num_threads(), sk.get_isa()
    # a KV cache pool larger than this machine can map is a MemoryError (pool memory is only
    # reserved, committed on first write; the block count itself is capped)
    allowed = (*OK_ERRORS, MemoryError) if api is API_KVCACHE else OK_ERRORS
    try:
        api.call(**args)
    except allowed:
        pass
    finally:
        sk.set_isa(isa)
        sk.set_num_threads(threads)


# ---- the model (a tiny random one) ----


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("gguf")
    from tiny_models import write_tiny_model

    path = write_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny.gguf")
    m = sk.Model.from_gguf(path, context=32, max_sequences=4)
    return path, m


MODEL_WRONGS = {
    "forward": [
        (lambda m, s: m.forward(s + 100, [1]), KeyError, "seq"),
        (lambda m, s: m.forward(s, []), ValueError, "ids"),
        (lambda m, s: m.forward(s, [m.config.vocab]), ValueError, "token ids"),
        (lambda m, s: m.forward(s, [-1]), ValueError, "token ids"),
        (lambda m, s: m.forward(s, ["a"]), ValueError, "ids"),
        (lambda m, s: m.forward(s, None), TypeError, "ids"),
        (lambda m, s: m.forward(s, [1] * (m.context + 1)), ValueError, "context"),
        (lambda m, s: m.forward("0", [1]), TypeError, "seq"),
    ],
    "forward_batch": [
        (lambda m, s: m.forward_batch([s], [1, 2]), ValueError, "same length"),
        (lambda m, s: m.forward_batch([s, s], [1, 2]), ValueError, "distinct"),
        (lambda m, s: m.forward_batch([s, s + 100], [1, 2]), KeyError, "seq"),
        (lambda m, s: m.forward_batch([s], [m.config.vocab]), ValueError, "token ids"),
        (lambda m, s: m.forward_batch([], []), ValueError, "non-empty"),
        (lambda m, s: m.forward_batch([s], ["a"]), ValueError, "ids"),
    ],
    "generate": [
        (lambda m, s: list(m.generate([1], max_new_tokens=-1)), ValueError, "max_new_tokens"),
        (lambda m, s: list(m.generate([1], temperature=-1.0)), ValueError, "temperature"),
        (lambda m, s: list(m.generate([1], top_p=0.0)), ValueError, "top_p"),
        (lambda m, s: list(m.generate([], max_new_tokens=1)), ValueError, "no tokens"),
        (lambda m, s: list(m.generate([m.config.vocab], max_new_tokens=1)), ValueError, "token ids"),
    ],
    "free": [(lambda m, s: m.free(s + 100), KeyError, "seq")],
}


@pytest.mark.parametrize("case", [(k, i) for k, v in MODEL_WRONGS.items() for i in range(len(v))],
                         ids=[f"{k}-{i}" for k, v in MODEL_WRONGS.items() for i in range(len(v))])
def test_model_wrong_arguments_change_nothing(tiny, case):
    _, m = tiny
    s = m.new_sequence()
    try:
        m.forward(s, [1, 2, 3])
        before = cache_state(m.cache)
        call, exc, pattern = MODEL_WRONGS[case[0]][case[1]]
        with pytest.raises(exc, match=pattern):
            call(m, s)
        assert cache_state(m.cache) == before
    finally:
        m.free(s)


def test_model_forward_batch_full_cache_changes_nothing(tiny):
    """One sequence of the batch cannot grow: no sequence grows, and a forked sequence's shared
    tail is not copied (the old rollback by truncation left the copy behind)."""
    _, m = tiny
    c = m.cache
    a = m.new_sequence()
    m.forward(a, [1, 2, 3])
    b = c.fork(a)  # shares a's partial tail block: extending b copies it first
    fill = m.new_sequence()
    try:
        # use up the pool with a third sequence, leaving fewer blocks than the batch needs
        while c.stats()["blocks_free"] >= 2 * c.n_layers:
            c.extend(fill, c.block_tokens)
            for layer in range(c.n_layers):
                z = np.zeros((c.block_tokens, c.n_kv_heads, c.head_dim), np.float32)
                c.write(layer, fill, z, z)
        while c.stats()["blocks_free"] > c.n_layers:
            c.extend(fill, c.block_tokens)
            for layer in range(c.n_layers):
                z = np.zeros((c.block_tokens, c.n_kv_heads, c.head_dim), np.float32)
                c.write(layer, fill, z, z)
        # b needs a copy of its tail in every layer (n_layers blocks); so does the fork below
        d = c.fork(a)
        before = cache_state(c)
        with pytest.raises(sk.KVCacheFullError, match="nothing was changed"):
            m.forward_batch([b, d], [1, 2])
        assert cache_state(c) == before
    finally:
        for s in c.sequences():
            m.free(s)


@pytest.mark.parametrize("kw,exc,pattern", [
    (dict(kv_dtype="bogus"), ValueError, "kv_dtype"),
    (dict(kv_dtype=None), TypeError, "kv_dtype"),
    (dict(max_sequences=0), ValueError, "max_sequences"),
    (dict(max_sequences="2"), TypeError, "max_sequences"),
    (dict(context="x"), TypeError, "context"),
    (dict(context=-1), ValueError, "context"),
    (dict(context=2**40), ValueError, "capacity_tokens"),
    (dict(kv_block_tokens=0), ValueError, "kv_block_tokens"),
    (dict(kv_block_tokens=4097), ValueError, "kv_block_tokens"),
    (dict(kv_block_tokens=None), TypeError, "kv_block_tokens"),
    (dict(kv_block_tokens=32.0), TypeError, "kv_block_tokens"),
    (dict(kv_block_tokens=True), TypeError, "kv_block_tokens"),
])
def test_model_from_gguf_wrong_keyword(tiny, kw, exc, pattern):
    """The keyword's own error comes out (it used to be masked by a BufferError from closing
    the file while the half-built model's tensor views were alive)."""
    path, _ = tiny
    with pytest.raises(exc, match=pattern):
        sk.Model.from_gguf(path, **kw)


@pytest.mark.parametrize("fmt", FORMATS)
def test_unaligned_tensor_views_need_no_alignment(fmt):
    """No argument needs alignment: a QuantizedTensor at an odd offset of its buffer (and
    odd-offset float arrays) give the same bits as aligned ones."""
    K = max(32, block_of(fmt)) * 2
    rng = np.random.default_rng(8)
    q = sk.quantize(rng.standard_normal((5, K)).astype(np.float32), fmt)
    raw = np.asarray(q.data)
    buf = np.zeros(raw.size + 3, np.uint8)
    buf[3:] = raw
    odd = sk.QuantizedTensor(buf, fmt, (5, K), offset=3)
    xb = np.zeros(2 * K * 4 + 4, np.uint8)
    x_odd = xb[1 : 1 + 2 * K * 4].view(np.float32).reshape(2, K)  # 1-byte misaligned float32 rows
    x_odd[...] = rng.standard_normal((2, K)).astype(np.float32)
    x = x_odd.copy()
    assert sk.dequantize(odd).tobytes() == sk.dequantize(q).tobytes()
    assert sk.matmul(x_odd, odd).tobytes() == sk.matmul(x, q).tobytes()
    assert sk.matmul(x, sk.pack(odd)).tobytes() == sk.matmul(x, q).tobytes()
    assert sk.embedding(odd, np.array([4, 0])).tobytes() == sk.embedding(q, np.array([4, 0])).tobytes()
    w = rng.standard_normal(K).astype(np.float32)
    assert sk.rmsnorm(x_odd, w, 1e-5).tobytes() == sk.rmsnorm(x, w, 1e-5).tobytes()


def test_misaligned_out_is_rejected_untouched():
    """An output must be 4-byte aligned (kernels store whole floats into it): a misaligned
    `out` raises ValueError naming it, and its bytes are left as they were."""
    rng = np.random.default_rng(9)
    K = 64
    x = rng.standard_normal((2, K)).astype(np.float32)
    w = sk.quantize(rng.standard_normal((32, K)).astype(np.float32), "q8_0")
    raw = np.full(2 * 32 * 4 + 4, 0xAB, np.uint8)
    out = raw[1 : 1 + 2 * 32 * 4].view(np.float32).reshape(2, 32)
    with pytest.raises(ValueError, match="out"):
        sk.matmul(x, w, out=out)
    raw2 = np.full(2 * K * 4 + 4, 0xCD, np.uint8)
    out2 = raw2[3 : 3 + 2 * K * 4].view(np.float32).reshape(2, K)
    with pytest.raises(ValueError, match="out"):
        sk.rmsnorm(x, np.ones(K, np.float32), 1e-5, out=out2)
    c = sk.KVCache(1, 1, K, capacity_tokens=8, dtype="f16")
    s = c.new_sequence()
    c.append(0, s, x[:1].reshape(1, 1, K), x[1:].reshape(1, 1, K))
    raw3 = np.full(K * 4 + 4, 0xEF, np.uint8)
    out3 = raw3[2 : 2 + K * 4].view(np.float32).reshape(1, 1, K)
    with pytest.raises(ValueError, match="out"):
        sk.attention(x[:1].reshape(1, 1, K), c, 0, s, out=out3)
    assert (raw == 0xAB).all() and (raw2 == 0xCD).all() and (raw3 == 0xEF).all()
