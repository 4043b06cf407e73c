"""The recurrent (Mamba) state a KVCache keeps beside its KV blocks for hybrid models: zeroed for a
new sequence, copied by fork, rolled back by truncate only to a snapshot, carried by save/restore,
counted by stats()."""

from __future__ import annotations

import numpy as np
import pytest

import slmkernels as sk

FLOATS = 10


def cache(**kw):
    args = dict(capacity_tokens=64, block_tokens=4, dtype="f32", recurrent_layers=3, recurrent_state_floats=FLOATS,
                max_snapshots=3)
    return sk.KVCache(2, 1, 4, **(args | kw))


def step(c, s, n, value):
    """What a model step does: extend, write every KV layer, update every recurrent layer."""
    c.extend(s, n)
    kv = np.full((n, 1, 4), value, np.float32)
    for layer in range(c.n_layers):
        c.write(layer, s, kv, kv)
    for layer in range(c.recurrent_layers):
        c.set_recurrent_state(s, layer, np.full(FLOATS, value * 10 + layer, np.float32))


def states(c, s):
    return np.stack([c.recurrent_state(s, layer) for layer in range(c.recurrent_layers)])


def test_new_sequence_state_is_zero_and_sized():
    c = cache()
    s = c.new_sequence()
    assert states(c, s).shape == (3, FLOATS) and not states(c, s).any()
    st = c.stats()
    assert st["state_bytes_per_sequence"] == 3 * FLOATS * 4
    assert st["snapshots"] == 0 and st["snapshot_bytes"] == 0
    assert c.snapshot_positions(s) == [0]
    with pytest.raises(IndexError, match="recurrent layer 3 is out of range"):
        c.recurrent_state(s, 3)


def test_fork_copies_state_and_shares_snapshots():
    c = cache()
    s = c.new_sequence()
    step(c, s, 5, 1.0)
    c.snapshot(s)
    f = c.fork(s)
    np.testing.assert_array_equal(states(c, f), states(c, s))
    step(c, f, 1, 2.0)  # the fork moves on; the original's state does not
    assert states(c, s)[0, 0] == 10 and states(c, f)[0, 0] == 20
    assert c.snapshot_positions(f) == [0, 5]
    assert c.stats()["snapshots"] == 1  # shared, counted once


def test_truncate_goes_back_only_to_a_snapshot():
    c = cache()
    s = c.new_sequence()
    step(c, s, 4, 1.0)
    c.snapshot(s)  # at 4
    at4 = states(c, s)
    step(c, s, 3, 2.0)
    c.snapshot(s)  # at 7
    step(c, s, 1, 3.0)
    before = states(c, s)
    with pytest.raises(ValueError, match=r"cannot truncate sequence .* to 5 tokens.*positions \[0, 4, 7\]"):
        c.truncate(s, 5)
    assert c.length(s) == 8  # nothing changed
    np.testing.assert_array_equal(states(c, s), before)
    c.truncate(s, 4)
    assert c.length(s) == 4 and c.snapshot_positions(s) == [0, 4]
    np.testing.assert_array_equal(states(c, s), at4)
    assert len(c.keys(0, s)) == 4
    c.truncate(s, 0)
    assert c.length(s) == 0 and not states(c, s).any()


def test_snapshots_keep_the_latest():
    c = cache(max_snapshots=2)
    s = c.new_sequence()
    for v in range(4):
        step(c, s, 1, float(v))
        c.snapshot(s)
    assert c.snapshot_positions(s) == [0, 3, 4]


def test_save_restore_carries_state_and_snapshots(tmp_path):
    c = cache()
    s = c.new_sequence()
    step(c, s, 3, 1.0)
    c.snapshot(s)
    step(c, s, 2, 2.0)
    c.save(s, tmp_path / "seq.kv")
    r = c.restore(tmp_path / "seq.kv")
    np.testing.assert_array_equal(states(c, r), states(c, s))
    assert c.snapshot_positions(r) == [0, 3]
    c.truncate(r, 3)
    assert states(c, r)[0, 0] == 10
    other = cache(recurrent_state_floats=FLOATS + 1)
    with pytest.raises(sk.KVCacheFileError, match="recurrent state"):
        other.restore(tmp_path / "seq.kv")
    assert other.sequences() == []
    plain = sk.KVCache(2, 1, 4, capacity_tokens=64, block_tokens=4, dtype="f32")
    with pytest.raises(sk.KVCacheFileError, match="recurrent state"):
        plain.restore(tmp_path / "seq.kv")


def test_plain_cache_files_still_restore(tmp_path):
    plain = sk.KVCache(2, 1, 4, capacity_tokens=64, block_tokens=4, dtype="f32")
    s = plain.new_sequence()
    step(plain, s, 3, 1.0)
    plain.save(s, tmp_path / "p.kv")
    r = plain.restore(tmp_path / "p.kv")
    np.testing.assert_array_equal(plain.keys(1, r), plain.keys(1, s))
    with pytest.raises(ValueError, match="no recurrent layers"):
        plain.snapshot(s)
    plain.truncate(s, 1)  # a plain cache truncates anywhere, as before


def test_bad_recurrent_arguments():
    with pytest.raises(ValueError, match="recurrent_state_floats"):
        cache(recurrent_state_floats=0)
    with pytest.raises(ValueError, match="max_snapshots"):
        cache(max_snapshots=-1)
    c = cache()
    s = c.new_sequence()
    with pytest.raises(ValueError, match="value must be 1-D"):
        c.set_recurrent_state(s, 0, np.zeros(FLOATS + 1, np.float32))
    with pytest.raises(KeyError):
        c.snapshot(s + 100)
