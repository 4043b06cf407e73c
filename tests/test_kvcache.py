"""KVCache: a hypothesis state machine against a plain Python model, plus targeted cases."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, event, settings
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
        # a file of another geometry (head_dim differs), for the restore faults
        other = sk.KVCache(n_layers, n_kv, D + 32, capacity_tokens=8, block_tokens=block_tokens, dtype=dtype,
                           layer_windows=windows)
        o = other.new_sequence()
        other.extend(o, 2)
        for layer in range(n_layers):
            z = np.ones((2, n_kv, D + 32), np.float32)
            other.write(layer, o, z, z)
        self.foreign = os.path.join(self.tmp, "foreign.kv")
        other.save(o, self.foreign)

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
            self.model_write(M, layer, L, k, v)
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

    # ---- fault injection: every kind of failing operation, the whole state compared ----
    def expect_failure(self, exc, fn, match=None):
        before = self.snapshot()
        with pytest.raises(exc, match=match):
            fn()
        self.assert_unchanged(before)

    def model_write(self, M, layer, L, k, v):
        """The plain model of write(): positions L.. of `layer` hold k, v as the cache's dtype
        stores them; a sliding-window layer forgets what the first new query cannot see."""
        kq, vq = roundtrip(k, self.dtype), roundtrip(v, self.dtype)
        for i in range(len(k)):
            M["layers"][layer][L + i] = (kq[i], vq[i])
        W = self.windows[layer]
        if W:
            for p in [p for p in M["layers"][layer] if p < L - W + 1]:
                del M["layers"][layer][p]

    def kv(self, n, fill=1.0):
        return np.full((n, self.n_kv, self.D), fill, np.float32)

    FAULTS = [
        "extend_past_capacity", "extend_2^63-1", "extend_zero", "extend_negative", "extend_unknown",
        "write_unknown", "write_layer_out_of_range", "write_unreserved", "write_wrong_shape", "write_float64",
        "write_non_finite", "append", "fork_unknown", "truncate_past_end", "truncate_negative", "truncate_unknown",
        "free_unknown", "evict_negative_sink", "evict_negative_window", "evict_unknown", "length_unknown",
        "read_layer_out_of_range", "read_unknown", "save_unknown", "save_to_a_directory", "restore_missing",
        "restore_foreign_geometry", "restore_overflowing_run", "attention_too_many_tokens",
        "attention_layer_out_of_range", "attention_unknown", "attention_window_past_layer_window",
    ]

    @rule(data=st.data(), kind=st.sampled_from(FAULTS))
    def inject_fault(self, data, kind):
        event(f"fault {kind}")
        c = self.c
        unknown = max(self.model, default=-1) + 1000
        if not self.model and kind not in ("extend_unknown", "write_unknown", "fork_unknown", "truncate_unknown",
                                           "free_unknown", "evict_unknown", "length_unknown", "read_unknown",
                                           "save_unknown", "attention_unknown", "restore_missing",
                                           "restore_foreign_geometry"):
            kind = "free_unknown"
        s = data.draw(st.sampled_from(self.seqs())) if self.model else unknown
        L = self.model[s]["length"] if self.model else 0
        layer = data.draw(st.integers(0, self.n_layers - 1))
        q = np.ones((L + 1, self.n_kv, self.D), np.float32)
        fail = self.expect_failure
        if kind == "extend_past_capacity":
            fail(sk.KVCacheFullError, lambda: c.extend(s, c.capacity_tokens + 1), "nothing was changed")
        elif kind == "extend_2^63-1":
            fail(sk.KVCacheFullError, lambda: c.extend(s, 2**63 - 1), "nothing was changed")
        elif kind == "extend_zero":
            fail(ValueError, lambda: c.extend(s, 0), "n_tokens")
        elif kind == "extend_negative":
            fail(ValueError, lambda: c.extend(s, -3), "n_tokens")
        elif kind == "extend_unknown":
            fail(KeyError, lambda: c.extend(unknown, 1))
        elif kind == "write_unknown":
            fail(KeyError, lambda: c.write(0, unknown, self.kv(1), self.kv(1)))
        elif kind == "write_layer_out_of_range":
            fail(IndexError, lambda: c.write(self.n_layers, s, self.kv(1), self.kv(1)))
        elif kind == "write_unreserved":
            fail(ValueError, lambda: c.write(layer, s, self.kv(1), self.kv(1)), "extend first")
        elif kind == "write_wrong_shape":
            fail(ValueError, lambda: c.write(layer, s, np.ones((1, self.n_kv, self.D + 1), np.float32), self.kv(1)))
        elif kind == "write_float64":
            fail(TypeError, lambda: c.write(layer, s, self.kv(1), self.kv(1).astype(np.float64)))
        elif kind == "write_non_finite":
            if self.dtype in ("q8_0", "q4_0"):
                fail(ValueError, lambda: c.write(layer, s, self.kv(1, np.inf), self.kv(1)), "non-finite")
            else:  # float caches store non-finite values; the write still needs a reservation
                fail(ValueError, lambda: c.write(layer, s, self.kv(1, np.nan), self.kv(1)), "extend first")
        elif kind == "append":
            if self.n_layers != 1:
                fail(ValueError, lambda: c.append(0, s, self.kv(1), self.kv(1)), "single-layer")
            else:  # k and v disagree on the token count (on a fork, the tail would be copied first)
                fail(ValueError, lambda: c.append(0, s, self.kv(2), self.kv(3)), "same number of tokens")
        elif kind == "fork_unknown":
            fail(KeyError, lambda: c.fork(unknown))
        elif kind == "truncate_past_end":
            fail(ValueError, lambda: c.truncate(s, L + 1), "n_tokens")
        elif kind == "truncate_negative":
            fail(ValueError, lambda: c.truncate(s, -1), "n_tokens")
        elif kind == "truncate_unknown":
            fail(KeyError, lambda: c.truncate(unknown, 0))
        elif kind == "free_unknown":
            fail(KeyError, lambda: c.free(unknown))
        elif kind == "evict_negative_sink":
            fail(ValueError, lambda: c.evict(s, n_sink=-1, window=2), "n_sink")
        elif kind == "evict_negative_window":
            fail(ValueError, lambda: c.evict(s, n_sink=0, window=-1), "window")
        elif kind == "evict_unknown":
            fail(KeyError, lambda: c.evict(unknown, n_sink=0, window=1))
        elif kind == "length_unknown":
            fail(KeyError, lambda: c.length(unknown))
        elif kind == "read_layer_out_of_range":
            read = data.draw(st.sampled_from([c.keys, c.values, c.positions]))
            fail(IndexError, lambda: read(data.draw(st.sampled_from([-1, self.n_layers])), s))
        elif kind == "read_unknown":
            read = data.draw(st.sampled_from([c.keys, c.values, c.positions]))
            fail(KeyError, lambda: read(0, unknown))
        elif kind == "save_unknown":
            fail(KeyError, lambda: c.save(unknown, os.path.join(self.tmp, "u.kv")))
        elif kind == "save_to_a_directory":
            fail(OSError, lambda: c.save(s, self.tmp))
        elif kind == "restore_missing":
            fail(FileNotFoundError, lambda: c.restore(os.path.join(self.tmp, "missing.kv")))
        elif kind == "restore_foreign_geometry":
            fail(sk.KVCacheFileError, lambda: c.restore(self.foreign), "geometry")
        elif kind == "restore_overflowing_run":
            path = os.path.join(self.tmp, "overflow.kv")
            c.save(s, path)
            with open(path, "rb") as f:
                raw = overflowing_run_file(f.read(), [2**63 - 1] + [0] * (self.n_layers - 1))
            with open(path, "wb") as f:
                f.write(raw)
            fail((sk.KVCacheFullError, sk.KVCacheFileError), lambda: c.restore(path))
        elif kind == "attention_too_many_tokens":
            fail(ValueError, lambda: sk.attention(q, c, layer, s), "tokens")
        elif kind == "attention_layer_out_of_range":
            fail(IndexError, lambda: sk.attention(q[:1], c, self.n_layers, s))
        elif kind == "attention_unknown":
            fail(KeyError, lambda: sk.attention(q[:1], c, 0, unknown))
        elif kind == "attention_window_past_layer_window":
            if self.windows[-1] and L:
                fail(ValueError, lambda: sk.attention(q[:1], c, self.n_layers - 1, s, window=self.windows[-1] + 1),
                     "sliding window")
            else:
                fail(ValueError, lambda: sk.attention(q[:1], c, 0, s, window=0), "window")
        else:  # pragma: no cover
            raise AssertionError(kind)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), n=st.integers(1, 6))
    def faults_while_writes_are_pending(self, data, n):
        """A sequence with reserved, not yet written positions refuses every operation that needs
        its layers complete (extend, fork, evict, save, attention of an unwritten layer, a write
        of the wrong length) without changing anything; then the writes finish normally."""
        s = data.draw(st.sampled_from(self.seqs()))
        M = self.model[s]
        L = M["length"]
        before = self.snapshot()
        try:
            self.c.extend(s, n)
        except sk.KVCacheFullError:
            self.assert_unchanged(before)
            return
        written = data.draw(st.integers(0, self.n_layers - 1))  # layers written before the faults
        ks = [self.rng.standard_normal((n, self.n_kv, self.D)).astype(np.float32) for _ in range(self.n_layers)]
        for layer in range(written):
            self.c.write(layer, s, ks[layer], -ks[layer])
        fail = self.expect_failure
        fail(ValueError, lambda: self.c.extend(s, 1), "not yet written")
        fail(ValueError, lambda: self.c.fork(s), "not yet written")
        fail(ValueError, lambda: self.c.evict(s, n_sink=0, window=1), "not yet written")
        fail(ValueError, lambda: self.c.save(s, os.path.join(self.tmp, "p.kv")), "not yet written")
        fail(ValueError, lambda: sk.attention(np.ones((1, self.n_kv, self.D), np.float32), self.c, written, s),
             "not yet written")
        fail(ValueError, lambda: self.c.write(written, s, self.kv(n + 1), self.kv(n + 1)), "reserved positions")
        if written:
            fail(ValueError, lambda: self.c.write(0, s, self.kv(n), self.kv(n)), "extend first")
        for layer in range(written, self.n_layers):
            self.c.write(layer, s, ks[layer], -ks[layer])
        for layer in range(self.n_layers):
            self.model_write(M, layer, L, ks[layer], -ks[layer])
        M["length"] = L + n

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


def fnv1a64(b: bytes) -> int:
    h = 1469598103934665603
    for x in b:
        h = ((h ^ x) * 1099511628211) & (2**64 - 1)
    return h


def overflowing_run_file(raw: bytes, counts: list[int]) -> bytes:
    """A saved sequence rewritten to claim length 2^63-1 and, in layer l, one run of counts[l]
    tokens from position 0 (none for 0), with a correct checksum (FNV-1a is no defence against
    a crafted file)."""
    import struct

    head = bytearray(raw[:40])
    struct.pack_into("<q", head, 32, 2**63 - 1)
    body = bytearray()
    pos = 40
    for count in counts:
        window, floor, n_runs = struct.unpack_from("<qqq", raw, pos)
        pos += 24 + 16 * n_runs
        runs = [(0, count)] if count else []
        body += struct.pack("<qqq", window, 0, len(runs)) + b"".join(struct.pack("<qq", *r) for r in runs)
    out = bytes(head) + bytes(body) + raw[pos:-8]
    return out + struct.pack("<Q", fnv1a64(out))


KVCacheMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestKVCacheMachine = KVCacheMachine.TestCase


# ---- targeted cases ----

def test_fork_shares_full_blocks_and_copies_the_tail_on_write():
    c = sk.KVCache(1, 1, 32, capacity_tokens=64, block_tokens=8, dtype="f32")
    s = c.new_sequence()
    x = np.arange(20 * 32, dtype=np.float32).reshape(20, 1, 32)  # blocks of 8, 8 and a tail of 4
    c.append(0, s, x, -x)
    used = c.stats()["blocks_used"]
    t = c.fork(s)
    assert c.stats()["blocks_used"] == used  # fork copies nothing
    assert c._block_table(0, s) == c._block_table(0, t)
    assert all(c._refcount(b) == 2 for b, *_ in c._block_table(0, s))
    a = np.full((1, 1, 32), 7.0, np.float32)
    c.append(0, t, a, -a)
    assert c.stats()["blocks_used"] == used + 1  # the shared partial tail was copied
    # the fork's own table: the full blocks still shared, its tail a block of its own holding
    # the copied 4 tokens and the new one
    st, tt = c._block_table(0, s), c._block_table(0, t)
    assert tt[:2] == st[:2] and tt[2][0] != st[2][0] and tt[2][1:] == (0, 5, 16) and st[2][1:] == (0, 4, 16)
    assert [c._refcount(b) for b, *_ in st] == [2, 2, 1] and c._refcount(tt[2][0]) == 1
    # the parent now grows its own tail in place (no copy: nobody else holds it)
    b = np.full((1, 1, 32), -3.0, np.float32)
    c.append(0, s, b, -b)
    assert c.stats()["blocks_used"] == used + 1
    # contents: each sequence sees its own history and only its own token, keys and values
    np.testing.assert_array_equal(c.keys(0, s), np.concatenate([x, b]))
    np.testing.assert_array_equal(c.values(0, s), -np.concatenate([x, b]))
    np.testing.assert_array_equal(c.keys(0, t), np.concatenate([x, a]))
    np.testing.assert_array_equal(c.values(0, t), -np.concatenate([x, a]))
    np.testing.assert_array_equal(c.positions(0, t), np.arange(21))
    # freeing the parent leaves the fork whole
    c.free(s)
    np.testing.assert_array_equal(c.keys(0, t), np.concatenate([x, a]))
    assert [c._refcount(b) for b, *_ in c._block_table(0, t)] == [1, 1, 1]



def test_truncate_keeps_the_prefix_frees_the_rest_and_leaves_forks_alone():
    c = sk.KVCache(2, 1, 32, capacity_tokens=64, block_tokens=8, dtype="f32")
    s = c.new_sequence()
    x = np.arange(20 * 32, dtype=np.float32).reshape(20, 1, 32)
    c.extend(s, 20)
    for layer in (0, 1):
        c.write(layer, s, x + layer, -x)
    t = c.fork(s)
    used = c.stats()["blocks_used"]
    # truncating the fork into its shared middle block frees nothing (the parent holds it all)
    c.truncate(t, 11)
    assert c.length(t) == 11 and c.stats()["blocks_used"] == used
    assert [e[1:3] for e in c._block_table(0, t)] == [(0, 8), (0, 3)]
    # the fork's next token goes into a copy of the shared block: the parent's tokens 11.. stay
    a = np.full((1, 1, 32), 9.0, np.float32)
    c.extend(t, 1)
    for layer in (0, 1):
        c.write(layer, t, a + layer, -a)
    for layer in (0, 1):
        np.testing.assert_array_equal(c.keys(layer, s), x + layer)
        np.testing.assert_array_equal(c.values(layer, s), -x)
        np.testing.assert_array_equal(c.keys(layer, t), np.concatenate([x[:11], a]) + layer)
        np.testing.assert_array_equal(c.values(layer, t), -np.concatenate([x[:11], a]))
    np.testing.assert_array_equal(c.positions(0, t), np.arange(12))
    # truncating the parent on a block boundary frees its own blocks past it, keeps the prefix
    before = c.stats()["blocks_used"]
    c.truncate(s, 8)
    assert c.stats()["blocks_used"] < before and c.length(s) == 8
    np.testing.assert_array_equal(c.keys(1, s), x[:8] + 1)
    np.testing.assert_array_equal(c.keys(1, t), np.concatenate([x[:11], a]) + 1)
    # to zero and back: new contents, nothing of the old left in view
    c.truncate(s, 0)
    assert c.length(s) == 0 and c.keys(0, s).shape == (0, 1, 32)
    b = np.full((3, 1, 32), -5.0, np.float32)
    c.extend(s, 3)
    for layer in (0, 1):
        c.write(layer, s, b, b)
    np.testing.assert_array_equal(c.keys(1, s), b)
    np.testing.assert_array_equal(c.positions(0, s), np.arange(3))
    np.testing.assert_array_equal(c.keys(0, t), np.concatenate([x[:11], a]))

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


def test_extend_by_an_absurd_count_is_a_capacity_error():
    """n close to 2^63 used to overflow the block count and take blocks from an empty free list."""
    c = sk.KVCache(2, 1, 32, capacity_tokens=64, block_tokens=16)
    s = c.new_sequence()
    for n in (2**62, 2**63 - 1, 65):
        with pytest.raises(sk.KVCacheFullError, match="nothing was changed"):
            c.extend(s, n)
    assert c.length(s) == 0 and c.stats()["blocks_used"] == 0
    c.extend(s, 64)  # exactly the capacity still fits


@pytest.mark.parametrize("counts", [[2**63 - 1, 0], [3 * 2**61 + 5, 3 * 2**61 + 5]])
def test_restore_of_a_crafted_overflowing_file_changes_nothing(tmp_path, counts):
    """Runs whose block counts sum past 2^63: with one-token blocks and 128-byte tokens, the
    second file's token count (3 * 2^62 + 10) times 128 wraps to the 1280 bytes of data the file
    really holds, so the old check (block total vs free blocks, in wrapped int64) passed and the
    restore took blocks from an empty free list (a crash)."""
    c = sk.KVCache(2, 1, 32, capacity_tokens=64, block_tokens=1, dtype="f16")
    s = c.new_sequence()
    c.extend(s, 5)
    for layer in range(2):
        c.write(layer, s, np.ones((5, 1, 32), np.float32), np.ones((5, 1, 32), np.float32))
    c.save(s, tmp_path / "s.kv")
    (tmp_path / "bad.kv").write_bytes(overflowing_run_file((tmp_path / "s.kv").read_bytes(), counts))
    before = (c.stats(), c.sequences(), c.keys(0, s).tobytes())
    with pytest.raises(sk.KVCacheFullError, match="nothing was changed"):
        c.restore(tmp_path / "bad.kv")
    assert (c.stats(), c.sequences(), c.keys(0, s).tobytes()) == before


def test_append_with_mismatched_k_v_on_a_fork_changes_nothing():
    """append reserved before it compared k and v, then rolled back by truncation, which left
    the fork's copied-on-write tail block behind."""
    c = sk.KVCache(1, 1, 32, capacity_tokens=64, block_tokens=8, dtype="f32")
    s = c.new_sequence()
    c.append(0, s, np.ones((3, 1, 32), np.float32), np.ones((3, 1, 32), np.float32))
    t = c.fork(s)
    before = (c.stats(), c._block_table(0, t), c._refcount(c._block_table(0, s)[0][0]))
    with pytest.raises(ValueError, match="same number of tokens"):
        c.append(0, t, np.ones((2, 1, 32), np.float32), np.ones((1, 1, 32), np.float32))
    assert (c.stats(), c._block_table(0, t), c._refcount(c._block_table(0, s)[0][0])) == before
