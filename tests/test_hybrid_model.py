"""granitehybrid (Mamba-2 + attention) models on tiny random-weight GGUF files: against the float64
reference, prefill vs decode, batching, threads, the recurrent state through fork/truncate/save."""

from __future__ import annotations

import numpy as np
import pytest

import slmkernels as sk
from slmkernels.model.gguf_reader import GGUFError
from slmkernels.model.runtime import Model
from tiny_hybrid import HybridReference, write_tiny_granitehybrid

# As tests/test_model.py: int8 activations before every GEMM, an f16/q8_0 KV cache; the Mamba
# layers add float32 scans (~1e-5 relative, tests/test_ssm.py). Relative to the largest logit.
MODEL_RTOL = 0.03
# prefill (chunked scan) against decode (token-by-token scan): the scans' reassociation only
# (tests/test_ssm.py bounds it at 2^-13 of a head's largest term), carried through the layers
CHUNK_RTOL = 1e-4

IDS = [3, 17, 200, 5, 9, 250, 31, 77, 123, 4, 8, 15, 16, 23, 42, 99, 1, 300]  # > d_conv, several chunks of none

FILES = {
    "mamba-attn": dict(kinds="MMAMMA"),
    "groups2-q4_0-tied": dict(kinds="AMMM", ssm_groups=2, fmt="q4_0", tied=True, conv_bias=False),
    "state64-hd16": dict(kinds="MAM", ssm_heads=8, ssm_state=64, hidden=64, n_heads=2, n_kv=1),
}


@pytest.fixture(scope="module", params=list(FILES))
def tiny(request, tmp_path_factory):
    path = write_tiny_granitehybrid(tmp_path_factory.mktemp("hybrid") / f"{request.param}.gguf", **FILES[request.param])
    return path, HybridReference(path)


@pytest.mark.parametrize("kv_dtype", ["f32", "q8_0"])
def test_forward_matches_reference(tiny, kv_dtype):
    path, ref = tiny
    want, _ = ref.forward(IDS)
    m = Model.from_gguf(path, kv_dtype=kv_dtype)
    assert type(m).__name__ == "HybridModel"
    got = m.forward(m.new_sequence(), IDS, all_logits=True)
    scale = np.abs(want).max()
    assert np.abs(got - want).max() <= MODEL_RTOL * scale
    top2 = np.sort(want, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 2 * MODEL_RTOL * scale
    assert (got.argmax(1) == want.argmax(1))[clear].all()


def test_decode_continues_the_prompt(tiny):
    """Prompt then decode steps against the reference carrying its state the same way."""
    path, ref = tiny
    m = Model.from_gguf(path, kv_dtype="f32")
    s = m.new_sequence()
    _, st = ref.forward(IDS[:7])
    m.forward(s, IDS[:7])
    for t in IDS[7:12]:
        want, st = ref.forward([t], st)
        got = m.forward(s, [t])
        assert np.abs(got - want[0]).max() <= MODEL_RTOL * np.abs(want).max()


def test_prefill_vs_decode_and_exact_modes(tiny):
    path, _ = tiny
    exact = Model.from_gguf(path, chunked_prefill=False)
    full = exact.forward(exact.new_sequence(), IDS, all_logits=True)
    s = exact.new_sequence()
    step = np.stack([exact.forward(s, [t]) for t in IDS])
    np.testing.assert_array_equal(step, full)  # token-by-token prefill: decode's bits
    chunked = Model.from_gguf(path)
    got = chunked.forward(chunked.new_sequence(), IDS, all_logits=True)
    assert np.abs(got - full).max() <= CHUNK_RTOL * np.abs(full).max()


def test_batch_and_threads_give_the_same_bits(tiny):
    path, _ = tiny
    m = Model.from_gguf(path, max_sequences=3)
    seqs = [m.new_sequence() for _ in range(3)]
    prompts = [IDS[:5], IDS[3:9], IDS[6:8]]
    for s, p in zip(seqs, prompts):
        m.forward(s, p)
    alone = Model.from_gguf(path, max_sequences=3)
    ref_rows = []
    for p, t in zip(prompts, (7, 8, 9)):
        a = alone.new_sequence()
        alone.forward(a, p)
        ref_rows.append(alone.forward(a, [t]))
    np.testing.assert_array_equal(m.forward_batch(seqs, [7, 8, 9]), np.stack(ref_rows))
    before = sk.get_num_threads()
    try:
        outs = []
        for n in (1, 2, 3):
            sk.set_num_threads(n)
            mm = Model.from_gguf(path)
            outs.append(mm.forward(mm.new_sequence(), IDS, all_logits=True))
    finally:
        sk.set_num_threads(before)
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])


def test_state_fork_truncate_save(tiny, tmp_path):
    path, _ = tiny
    m = Model.from_gguf(path, chunked_prefill=False)
    c = m.cache
    assert c.recurrent_layers == sum(k == "mamba2" for k in m.config.layer_kinds)
    s = m.new_sequence()
    m.forward(s, IDS[:6])  # a prompt: snapshot at 6
    after6 = m.forward(s, [IDS[6]])
    m.forward(s, IDS[7:9])  # another prompt: snapshot at 9
    assert c.snapshot_positions(s) == [0, 5, 6, 8, 9]  # each prompt: before its last token and after it
    f = c.fork(s)
    c.truncate(f, 6)
    np.testing.assert_array_equal(m.forward(f, [IDS[6]]), after6)
    with pytest.raises(ValueError, match=r"positions \[0, 5, 6, 8, 9\]"):
        c.truncate(s, 7)
    c.save(s, tmp_path / "s.kv")
    r = c.restore(tmp_path / "s.kv")
    np.testing.assert_array_equal(m.forward(r, [5]), m.forward(s, [5]))
    st = c.stats()
    assert st["state_bytes_per_sequence"] == c.recurrent_layers * c.recurrent_state_floats * 4
    assert st["snapshots"] >= 2


def test_generate_reuses_prefix_at_a_snapshot(tiny):
    path, _ = tiny
    m = Model.from_gguf(path)
    a = [t.id for t in m.generate(IDS[:8], max_new_tokens=4)]
    b = [t.id for t in m.generate(IDS[:8], max_new_tokens=4)]  # parked prefix: truncated to a snapshot
    assert a == b


def test_bad_files_are_clear_errors(tmp_path):
    p = write_tiny_granitehybrid(tmp_path / "ok.gguf", kinds="MA")
    Model.from_gguf(p)
    # a Mamba-only file (no attention layer), and one whose ssm_in does not fit the metadata
    bad = write_tiny_granitehybrid(tmp_path / "mamba_only.gguf", kinds="MM")
    with pytest.raises(GGUFError, match="marks no attention layer"):
        Model.from_gguf(bad)
    bad2 = write_tiny_granitehybrid(tmp_path / "state.gguf", kinds="MA", ssm_state=16)
    data = bytearray(bad2.read_bytes())
    key = b"granitehybrid.ssm.state_size"
    i = data.index(key) + len(key) + 4  # u32 type, then the u32 value
    data[i:i + 4] = (32).to_bytes(4, "little")
    (tmp_path / "state32.gguf").write_bytes(bytes(data))
    with pytest.raises(GGUFError, match=r"ssm_in.weight.*has shape"):
        Model.from_gguf(tmp_path / "state32.gguf")
