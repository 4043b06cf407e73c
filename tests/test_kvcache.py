"""KVCache: a hypothesis state machine against a plain Python model, plus targeted cases."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import slmkernels as sk

DTYPES = ["f32", "f16", "q8_0", "q4_0"]


def roundtrip(x: np.ndarray, dtype: str) -> np.ndarray:
    """What the cache stores for float32 rows x (..., D): the dtype's rounding, as the package quantizes."""
    if dtype == "f32":
        return x.copy()
    if dtype == "f16":
        return x.astype(np.float16).astype(np.float32)
    D = x.shape[-1]
    Dp = -(-D // 32) * 32
    flat = np.zeros((int(np.prod(x.shape[:-1])), Dp), np.float32)
    flat[:, :D] = x.reshape(-1, D)
    return sk.dequantize(sk.quantize(flat, dtype))[:, :D].reshape(x.shape)


# ---- the state machine ----

class KVCacheMachine(RuleBasedStateMachine):
    """Model: per sequence, its length and per layer a dict position -> (k, v) of what is stored."""

    def __init__(self):
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="kvsm-")
        self.rng = np.random.default_rng(0)

    @initialize(
        n_layers=st.integers(1, 2),
        n_kv=st.integers(1, 2),
        D=st.sampled_from([32, 48]),
        block_tokens=st.sampled_from([4, 8]),
        capacity=st.integers(8, 80),
        dtype=st.sampled_from(DTYPES),
        window=st.one_of(st.none(), st.integers(3, 12)),
    )
    def setup(self, n_layers, n_kv, D, block_tokens, capacity, dtype, window):
        windows = [None] * n_layers
        if n_layers == 2:
            windows[1] = window
        self.c = sk.KVCache(n_layers, n_kv, D, capacity_tokens=capacity, block_tokens=block_tokens, dtype=dtype,
                            layer_windows=windows)
        self.windows = [w or 0 for w in windows]
        self.n_layers, self.n_kv, self.D, self.bt, self.dtype = n_layers, n_kv, D, block_tokens, dtype
        self.model: dict[int, dict] = {}
        self.saved: list[tuple[str, dict]] = []

    # ---- helpers ----
    def snapshot(self):
        return {s: (self.c.length(s), [(self.c.positions(l, s), self.c.keys(l, s), self.c.values(l, s))
                                        for l in range(self.n_layers)]) for s in self.c.sequences()}, self.c.stats()

    def assert_unchanged(self, before):
        now = self.snapshot()
        assert now[1] == before[1]
        assert set(now[0]) == set(before[0])
        for s, (L, layers) in before[0].items():
            assert now[0][s][0] == L
            for (p0, k0, v0), (p1, k1, v1) in zip(layers, now[0][s][1]):
                assert np.array_equal(p0, p1) and np.array_equal(k0, k1) and np.array_equal(v0, v1)

    def seqs(self):
        return sorted(self.model)

    # ---- rules ----
    @rule()
    def new_sequence(self):
        s = self.c.new_sequence()
        assert s not in self.model
        self.model[s] = {"length": 0, "layers": [dict() for _ in range(self.n_layers)]}

    @precondition(lambda self: self.model)
    @rule(data=st.data(), n=st.integers(1, 20))
    def append(self, data, n):
        s = data.draw(st.sampled_from(self.seqs()))
        M = self.model[s]
        L = M["length"]
        before = self.snapshot()
        free = before[1]["blocks_free"]
        try:
            self.c.extend(s, n)
        except sk.KVCacheFullError:
            self.assert_unchanged(before)
            # it must have fit if every layer had room for a shared tail copy plus fresh blocks
            assert free < self.n_layers * (-(-n // self.bt) + 1)
            return
        # a mismatched write fails and changes nothing
        bad = np.zeros((n + 1, self.n_kv, self.D), np.float32)
        mid = self.snapshot()
        with pytest.raises(ValueError, match="reserved"):
            self.c.write(0, s, bad, bad)
        self.assert_unchanged(mid)
        for layer in range(self.n_layers):
            k = self.rng.standard_normal((n, self.n_kv, self.D)).astype(np.float32)
            v = self.rng.standard_normal((n, self.n_kv, self.D)).astype(np.float32)
            self.c.write(layer, s, k, v)
            kq, vq = roundtrip(k, self.dtype), roundtrip(v, self.dtype)
            for i in range(n):
                M["layers"][layer][L + i] = (kq[i], vq[i])
            W = self.windows[layer]
            if W:
                for p in [p for p in M["layers"][layer] if p < L - W + 1]:
                    del M["layers"][layer][p]
        M["length"] = L + n

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def fork(self, data):
        s = data.draw(st.sampled_from(self.seqs()))
        t = self.c.fork(s)
        M = self.model[s]
        self.model[t] = {"length": M["length"], "layers": [dict(d) for d in M["layers"]]}

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def truncate(self, data):
        s = data.draw(st.sampled_from(self.seqs()))
        M = self.model[s]
        n = data.draw(st.integers(0, M["length"]))
        self.c.truncate(s, n)
        M["length"] = n
        for d in M["layers"]:
            for p in [p for p in d if p >= n]:
                del d[p]

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def free(self, data):
        s = data.draw(st.sampled_from(self.seqs()))
        self.c.free(s)
        del self.model[s]
        with pytest.raises(KeyError):
            self.c.length(s)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), n_sink=st.integers(0, 6), window=st.integers(0, 20))
    def evict(self, data, n_sink, window):
        s = data.draw(st.sampled_from(self.seqs()))
        M = self.model[s]
        self.c.evict(s, n_sink=n_sink, window=window)
        for d in M["layers"]:
            for p in [p for p in d if n_sink <= p < M["length"] - window]:
                del d[p]

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def save_restore(self, data):
        s = data.draw(st.sampled_from(self.seqs()))
        path = os.path.join(self.tmp, f"seq{s}.kv")
        self.c.save(s, path)
        before = self.snapshot()
        try:
            t = self.c.restore(path)
        except sk.KVCacheFullError:
            self.assert_unchanged(before)
            return
        M = self.model[s]
        self.model[t] = {"length": M["length"], "layers": [dict(d) for d in M["layers"]]}

    @precondition(lambda self: self.model)
    @rule(data=st.data(), how=st.sampled_from(["flip", "truncate", "magic", "version", "empty"]))
    def restore_bad_file(self, data, how):
        s = data.draw(st.sampled_from(self.seqs()))
        path = os.path.join(self.tmp, "bad.kv")
        self.c.save(s, path)
        with open(path, "rb") as f:
            raw = bytearray(f.read())
        if how == "flip":
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] ^= 1 << data.draw(st.integers(0, 7))
        elif how == "truncate":
            raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
        elif how == "magic":
            raw[:8] = b"GGUF\0\0\0\0"
        elif how == "version":
            raw[8] = 99
        else:
            raw = bytearray()
        with open(path, "wb") as f:
            f.write(bytes(raw))
        before = self.snapshot()
        with pytest.raises(sk.KVCacheFileError):
            self.c.restore(path)
        self.assert_unchanged(before)

    @rule()
    def unknown_sequence(self):
        before = self.snapshot()
        bad = max(self.model, default=-1) + 1000
        for op in (lambda: self.c.extend(bad, 1), lambda: self.c.fork(bad), lambda: self.c.truncate(bad, 0),
                   lambda: self.c.free(bad), lambda: self.c.keys(0, bad)):
            with pytest.raises(KeyError):
                op()
        self.assert_unchanged(before)

    # ---- invariants: contents and block accounting ----
    @invariant()
    def contents_match(self):
        if not hasattr(self, "c"):
            return
        assert sorted(self.c.sequences()) == self.seqs()
        for s, M in self.model.items():
            assert self.c.length(s) == M["length"]
            for layer, d in enumerate(M["layers"]):
                pos = sorted(d)
                assert self.c.positions(layer, s).tolist() == pos
                if pos:
                    assert np.array_equal(self.c.keys(layer, s), np.stack([d[p][0] for p in pos]))
                    assert np.array_equal(self.c.values(layer, s), np.stack([d[p][1] for p in pos]))

    @invariant()
    def blocks_accounted(self):
        if not hasattr(self, "c"):
            return
        refs: dict[int, int] = {}
        slots: dict[int, set] = {}
        for s in self.model:
            for layer in range(self.n_layers):
                for b, lo, hi, _ in self.c._block_table(layer, s):
                    assert 0 <= lo < hi <= self.bt
                    refs[b] = refs.get(b, 0) + 1
        st_ = self.c.stats()
        assert st_["blocks_used"] == len(refs), "a block is leaked or double-freed"
        assert st_["blocks_used"] + st_["blocks_free"] == st_["blocks_total"]
        for b, n in refs.items():
            assert self.c._refcount(b) == n

    def teardown(self):
        if hasattr(self, "c"):
            for s in list(self.model):
                self.c.free(s)
            assert self.c.stats()["blocks_used"] == 0


KVCacheMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestKVCacheMachine = KVCacheMachine.TestCase


# ---- targeted cases ----

def test_fork_shares_full_blocks_and_copies_the_tail_on_write():
    c = sk.KVCache(1, 1, 32, capacity_tokens=64, block_tokens=8, dtype="f32")
    s = c.new_sequence()
    x = np.arange(20 * 32, dtype=np.float32).reshape(20, 1, 32)
    c.append(0, s, x, -x)
    used = c.stats()["blocks_used"]
    t = c.fork(s)
    assert c.stats()["blocks_used"] == used  # fork copies nothing
    assert [e[0] for e in c._block_table(0, s)] == [e[0] for e in c._block_table(0, t)]
    c.append(0, t, np.ones((1, 1, 32), np.float32), np.ones((1, 1, 32), np.float32))
    assert c.stats()["blocks_used"] == used + 1  # the shared partial tail was copied
    assert np.array_equal(c.keys(0, s), x)  # the original never sees the fork's token
    assert c._block_table(0, s)[:2] == c._block_table(0, t)[:2]


def test_capacity_error_changes_nothing():
    c = sk.KVCache(2, 1, 32, capacity_tokens=16, block_tokens=8, dtype="q8_0")
    s = c.new_sequence()
    c.extend(s, 10)
    for layer in range(2):
        c.write(layer, s, np.ones((10, 1, 32), np.float32), np.ones((10, 1, 32), np.float32))
    before = (c.stats(), c.length(s), c._block_table(0, s), c._block_table(1, s))
    with pytest.raises(sk.KVCacheFullError, match="nothing was changed"):
        c.extend(s, 7)
    assert (c.stats(), c.length(s), c._block_table(0, s), c._block_table(1, s)) == before
    c.extend(s, 6)  # exactly fits


def test_foreign_geometry_file_is_rejected(tmp_path):
    a = sk.KVCache(1, 1, 32, capacity_tokens=32, dtype="f16")
    b = sk.KVCache(1, 2, 32, capacity_tokens=32, dtype="f16")
    s = a.new_sequence()
    a.append(0, s, np.ones((3, 1, 32), np.float32), np.ones((3, 1, 32), np.float32))
    a.save(s, tmp_path / "a.kv")
    with pytest.raises(sk.KVCacheFileError, match="geometry"):
        b.restore(tmp_path / "a.kv")
    assert b.stats()["blocks_used"] == 0 and b.sequences() == []
    with pytest.raises(FileNotFoundError):
        b.restore(tmp_path / "missing.kv")


def test_bad_constructor_and_write_arguments():
    with pytest.raises(ValueError, match="dtype"):
        sk.KVCache(1, 1, 32, capacity_tokens=8, dtype="q5_k")
    with pytest.raises(ValueError, match="capacity_tokens"):
        sk.KVCache(1, 1, 32, capacity_tokens=0)
    with pytest.raises(ValueError, match="layer_windows"):
        sk.KVCache(2, 1, 32, capacity_tokens=8, layer_windows=[None])
    c = sk.KVCache(2, 2, 32, capacity_tokens=64, dtype="q8_0")
    s = c.new_sequence()
    k = np.zeros((2, 2, 32), np.float32)
    with pytest.raises(ValueError, match="single-layer"):
        c.append(0, s, k, k)
    with pytest.raises(ValueError, match="extend first"):
        c.write(0, s, k, k)
    c.extend(s, 2)
    with pytest.raises(ValueError, match="k must have shape"):
        c.write(0, s, np.zeros((2, 1, 32), np.float32), k)
    with pytest.raises(TypeError, match="v"):
        c.write(0, s, k, k.astype(np.float64))
    with pytest.raises(ValueError, match="non-finite"):
        c.write(0, s, np.full((2, 2, 32), np.nan, np.float32), k)
    with pytest.raises(IndexError, match="layer"):
        c.write(2, s, k, k)
    with pytest.raises(ValueError, match="not yet written"):
        c.fork(s)
    with pytest.raises(ValueError, match="n_tokens"):
        c.truncate(s, 3)
    c.write(0, s, k, k)
    c.write(1, s, k, k)
    assert c.length(s) == 2


def test_bytes_per_token():
    for dtype, per_row in [("f32", 256), ("f16", 128), ("q8_0", 68), ("q4_0", 36)]:
        c = sk.KVCache(1, 1, 64, capacity_tokens=32, dtype=dtype)
        assert c.stats()["bytes_per_token"] == 2 * per_row
