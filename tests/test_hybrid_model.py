"""granitehybrid (Mamba-2 + attention) models on tiny random-weight GGUF files (tests/tiny_models.py):
quantized weights against the float64 reference, prompt then decode, the chunked prefill scan,
batching and threads, the recurrent state through fork/truncate/save and prefix reuse, bad files.
(Float32 agreement on every ISA and prefill-vs-decode bit identity: tests/test_model.py, which
runs the granitehybrid variants of ARCH_VARIANTS like every other architecture.)"""

from __future__ import annotations

import numpy as np
import pytest

import slmkernels as sk
from model_reference import ReferenceModel
from slmkernels import _core
from slmkernels.model.gguf_reader import GGUFError
from slmkernels.model.runtime import Model
from tiny_models import ARCH_VARIANTS, write_tiny_model

# As tests/test_model.py: int8 activations before every GEMM, an f16/q8_0 KV cache; the Mamba
# layers add float32 scans (~1e-5 relative, tests/test_ssm.py). Relative to the largest logit.
MODEL_RTOL = 0.03
# The chunked prefill scan against the token-by-token one: the scans' reassociation only
# (tests/test_ssm.py bounds it at 2^-13 of a head's largest term), carried through the layers.
CHUNK_RTOL = 1e-4

IDS = [3, 17, 200, 5, 9, 250, 31, 77, 123, 4, 8, 15, 16, 23, 42, 99, 1, 260]  # longer than the conv window

FILES = {
    "mamba-attn-q8_0": dict(ARCH_VARIANTS["granitehybrid"], fmt="q8_0"),
    "groups2-q4_0-tied": dict(ARCH_VARIANTS["granitehybrid-groups2-tied"], fmt="q4_0"),
    "state64-q8_0": dict(ARCH_VARIANTS["granitehybrid-state64"], fmt="q8_0"),
}


@pytest.fixture(scope="module", params=list(FILES))
def tiny(request, tmp_path_factory):
    path = write_tiny_model(tmp_path_factory.mktemp("hybrid") / f"{request.param}.gguf", **FILES[request.param])
    return path, ReferenceModel(path).forward(IDS)


@pytest.mark.parametrize("kv_dtype", ["f32", "q8_0"])
def test_quantized_forward_matches_reference(tiny, kv_dtype):
    path, want = tiny
    m = Model.from_gguf(path, kv_dtype=kv_dtype)
    assert "mamba2" in m.config.layer_kinds and m.cache.recurrent_layers == m.config.n_recurrent_layers
    got = m.forward(m.new_sequence(), IDS, all_logits=True)
    scale = np.abs(want).max()
    assert np.abs(got - want).max() <= MODEL_RTOL * scale
    top2 = np.sort(want, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 2 * MODEL_RTOL * scale
    assert (got.argmax(1) == want.argmax(1))[clear].all()


def test_decode_continues_the_prompt(tiny):
    """A prompt, then decode steps carrying the recurrent state: each step's logits are the
    reference's at that position (a causal model: the full-sequence pass gives every position)."""
    path, want = tiny
    m = Model.from_gguf(path, kv_dtype="f32")
    s = m.new_sequence()
    m.forward(s, IDS[:7])
    got = np.stack([m.forward(s, [t]) for t in IDS[7:]])
    assert np.abs(got - want[7:]).max() <= MODEL_RTOL * np.abs(want).max()


def test_chunked_prefill_scan_agrees(tiny):
    """spec.ssm_chunked_prefill: a prompt's Mamba-2 layers run the chunked (SSD) scan; within
    CHUNK_RTOL of the token-by-token recurrence (the default), not bit for bit."""
    path, _ = tiny
    m = Model.from_gguf(path, kv_dtype="f32")
    full = m.forward(m.new_sequence(), IDS, all_logits=True)
    spec = m.config.spec
    assert not spec.ssm_chunked_prefill
    spec.ssm_chunked_prefill = True
    t = _core.Transformer(spec, m.layer_weights, m.out_norm, m.head, None, m.tok_embd, m.context)
    c = m.config
    cache = sk.KVCache(c.n_attention_layers, c.n_kv_heads, c.head_dim, capacity_tokens=64, dtype="f32",
                       recurrent_layers=c.n_recurrent_layers, recurrent_state_floats=c.recurrent_state_floats)
    chunked = t.forward(cache, cache.new_sequence(), np.asarray(IDS), True)
    assert np.abs(chunked - full).max() <= CHUNK_RTOL * np.abs(full).max()


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
    m = Model.from_gguf(path, snapshot_interval=4)
    c = m.cache
    assert (c.recurrent_layers, c.recurrent_state_floats) == (m.config.n_recurrent_layers,
                                                              m.config.recurrent_state_floats)
    s = m.new_sequence()
    m.forward(s, IDS[:6])  # a prompt: snapshots at 5 and 6
    after6 = m.forward(s, [IDS[6]])
    m.forward(s, [IDS[7]])  # decode to 8: a multiple of snapshot_interval
    m.forward(s, IDS[8:10])  # another prompt: snapshots at 9 and 10
    assert c.snapshot_positions(s) == [0, 5, 6, 8, 9, 10]
    f = c.fork(s)
    c.truncate(f, 6)
    np.testing.assert_array_equal(m.forward(f, [IDS[6]]), after6)
    with pytest.raises(ValueError, match=r"positions \[0, 5, 6, 8, 9, 10\]"):
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
    def write(name, **kw):
        return write_tiny_model(tmp_path / f"{name}.gguf", "granitehybrid", **kw)

    Model.from_gguf(write("ok", layer_kinds="MA"))
    with pytest.raises(GGUFError, match="marks no attention layer"):
        Model.from_gguf(write("mamba_only", layer_kinds="MM"))
    # metadata that does not fit the tensors: a state size of 32 for tensors written with 16
    bad = write("state32", layer_kinds="MA", override=lambda w: w.add_uint32("granitehybrid.ssm.state_size", 32))
    with pytest.raises(GGUFError, match=r"ssm_in.weight' has dims \[64, 296\].*ssm.state_size = 32"):
        Model.from_gguf(bad)
    with pytest.raises(GGUFError, match="ssm.time_step_rank 8 is not a multiple of granitehybrid.ssm.group_count 3"):
        Model.from_gguf(write("groups", layer_kinds="MA",
                              override=lambda w: w.add_uint32("granitehybrid.ssm.group_count", 3)))
    with pytest.raises(GGUFError, match="ssm_conv1d.weight' is missing"):
        Model.from_gguf(write("noconv", layer_kinds="MA", skip_tensors=("blk.0.ssm_conv1d.weight",)))
    with pytest.raises(GGUFError, match="conv_kernel"):
        Model.from_gguf(write("conv", layer_kinds="MA", skip_keys=("granitehybrid.ssm.conv_kernel",)))
    with pytest.raises(GGUFError, match="Mixture-of-Experts"):
        Model.from_gguf(write("moe", layer_kinds="MA", override=lambda w: w.add_uint32("granitehybrid.expert_count", 4)))
