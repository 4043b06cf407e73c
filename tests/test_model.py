"""The model runtime on tiny random-weight GGUF files of each architecture (against a float64
numpy forward pass) and on the real SmolLM2 file."""

from __future__ import annotations

import numpy as np
import pytest

import slmkernels as sk
from model_reference import ReferenceModel
from slmkernels.model.runtime import Model, sample
from tiny_models import write_tiny

# Relative error of the logits against float64: activations are quantized to 8 bits per
# block before every GEMM (|x - q d| <= d/2: ~0.4% of the block's largest value) and the
# KV cache may be f16/q8_0; over 2 layers that stays below 3% of the largest logit.
MODEL_RTOL = 0.03

ARCHS = [
    ("llama", dict()),
    ("qwen2", dict(fmt="q4_k", hidden=256, ffn=256)),
    ("granite", dict(fmt="q4_0")),
    ("llama", dict(window=5, fmt="q6_k", hidden=256, ffn=256)),  # mistral-style sliding window
]


@pytest.fixture(scope="module", params=range(len(ARCHS)), ids=["llama", "qwen2", "granite", "sliding-window"])
def tiny(request, tmp_path_factory):
    arch, kw = ARCHS[request.param]
    path = write_tiny(tmp_path_factory.mktemp("tiny") / f"{arch}.gguf", arch, **kw)
    return path, ReferenceModel(path)


IDS = [3, 17, 200, 5, 9, 250, 31, 77, 123, 4, 8, 15, 16, 23, 42]


@pytest.mark.parametrize("kv_dtype", ["f32", "f16", "q8_0"])
def test_forward_matches_reference(tiny, kv_dtype):
    path, ref_model = tiny
    ref = ref_model.forward(IDS)
    m = Model.from_gguf(path, kv_dtype=kv_dtype)
    got = m.forward(m.new_sequence(), IDS, all_logits=True)
    scale = np.abs(ref).max()
    assert np.abs(got - ref).max() <= MODEL_RTOL * scale
    # top-1 agrees wherever the reference's top two are not a near tie
    top2 = np.sort(ref, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 2 * MODEL_RTOL * scale
    assert (got.argmax(1) == ref.argmax(1))[clear].all()


def test_decode_equals_prefill_bit_for_bit(tiny):
    """Batch invariance of every kernel carries through the model: token t's logits are the same
    bits whether it came in a prompt of 15 or alone in a decode step."""
    path, _ = tiny
    m = Model.from_gguf(path)
    full = m.forward(m.new_sequence(), IDS, all_logits=True)
    s = m.new_sequence()
    step = np.stack([m.forward(s, [t]) for t in IDS])
    np.testing.assert_array_equal(step, full)
    s2 = m.new_sequence()
    chunks = np.concatenate([m.forward(s2, IDS[:4], all_logits=True), m.forward(s2, IDS[4:], all_logits=True)])
    np.testing.assert_array_equal(chunks, full)


def test_cpp_step_equals_python_step(tiny):
    """Model.forward (the step sequenced in C++) gives the same bits as forward_python (the
    readable call-by-call spec)."""
    path, _ = tiny
    m = Model.from_gguf(path)
    a = m.forward(m.new_sequence(), IDS, all_logits=True)
    b = m.forward_python(m.new_sequence(), IDS, all_logits=True)
    np.testing.assert_array_equal(a, b)


def test_thread_count_invariance(tiny):
    path, _ = tiny
    m = Model.from_gguf(path)
    before = sk.get_num_threads()
    try:
        outs = []
        for t in (1, 2, 3):
            sk.set_num_threads(t)
            s = m.new_sequence()
            outs.append(m.forward(s, IDS, all_logits=True))
            m.free(s)
    finally:
        sk.set_num_threads(before)
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])


def test_forward_errors(tiny):
    path, _ = tiny
    m = Model.from_gguf(path, context=16)
    s = m.new_sequence()
    with pytest.raises(ValueError, match="token ids"):
        m.forward(s, [10_000])
    with pytest.raises(ValueError, match="empty"):
        m.forward(s, [])
    with pytest.raises(ValueError, match="past the context"):
        m.forward(s, list(range(17)))
    assert m.cache.length(s) == 0  # nothing was reserved by the failed calls


def test_unsupported_architecture(tmp_path):
    from gguf import GGUFWriter

    w = GGUFWriter(str(tmp_path / "x.gguf"), "mamba")
    w.add_block_count(1)
    w.add_tensor("token_embd.weight", np.zeros((4, 8), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(ValueError, match="mamba"):
        Model.from_gguf(tmp_path / "x.gguf")


def test_sampler():
    logits = np.array([0.0, 5.0, 4.9, -3.0], np.float32)
    rng = np.random.default_rng(0)
    assert sample(logits, rng) == 1
    assert sample(logits, rng, repetition_penalty=2.0, previous=[1]) == 2
    draws = [sample(logits, np.random.default_rng(s), temperature=1.0, top_k=2) for s in range(200)]
    assert set(draws) == {1, 2}
    assert all(sample(logits, np.random.default_rng(s), temperature=1.0, top_p=0.01) == 1 for s in range(20))
    a = [sample(logits, np.random.default_rng(7), temperature=0.8) for _ in range(3)]
    assert len(set(a)) == 1  # same seed, same draw


# ---- the real model ----
@pytest.fixture(scope="module")
def smollm2(request):
    from conftest import SMOLLM2

    if not SMOLLM2.exists():
        pytest.skip(f"model file not found at {SMOLLM2}")
    return SMOLLM2, Model.from_gguf(SMOLLM2, context=512)


def test_smollm2_matches_reference(smollm2):
    path, m = smollm2
    ids = m.tokenizer.encode("The capital of France is", add_bos=False)
    seq = m.new_sequence()
    got = m.forward(seq, ids, all_logits=True)
    m.free(seq)
    ref = ReferenceModel(path).forward(ids)
    assert got[-1].argmax() == ref[-1].argmax()
    # 30 layers of 8-bit activations (as llama.cpp does too) against float64: measured max
    # |diff| 5.1% of the largest logit, RMS 5.0% of the logits' RMS.
    assert np.abs(got - ref).max() <= 0.08 * np.abs(ref).max()
    assert np.sqrt(((got - ref) ** 2).mean()) <= 0.08 * np.sqrt((ref**2).mean())
    assert m.tokenizer.decode([int(got[-1].argmax())]).strip() == "Paris"


def test_smollm2_generate_and_chat(smollm2):
    _, m = smollm2
    toks = list(m.generate("The capital of France is", 8, add_bos=False))
    assert 1 <= len(toks) <= 8 and "Paris" in "".join(t.text for t in toks)
    again = [t.id for t in m.generate("The capital of France is", 8, add_bos=False)]
    assert again == [t.id for t in toks]  # greedy is deterministic
    stopped = "".join(t.text for t in m.generate("The capital of France is", 8, add_bos=False, stop="Paris"))
    assert "Paris" not in stopped
    reply = "".join(t.text for t in m.chat([{"role": "user", "content": "Say hello."}], 16))
    assert reply.strip()
    # finished sequences are parked for prefix reuse; without reuse, generation frees its own
    parked = m.cache.stats()["sequences"]
    list(m.generate("The capital of France is", 4, add_bos=False, reuse_prefix=False))
    assert 1 <= parked == m.cache.stats()["sequences"]


def test_batched_decode_equals_single_sequences(tiny):
    """Several sequences decode together in one step (GEMMs on all rows, attention per
    sequence); each row is the same bits as that sequence decoded alone."""
    path, _ = tiny
    m = Model.from_gguf(path, max_sequences=3)
    prompts = [IDS[:3], IDS[3:10], IDS[10:]]
    batch = [m.new_sequence() for _ in prompts]
    alone = [m.new_sequence() for _ in prompts]
    for s, p in zip(batch + alone, prompts + prompts):
        m.forward(s, p)
    for step in range(3):
        nxt = [7 + step, 11 + step, 13 + step]
        got = m.forward_batch(batch, nxt)
        want = np.stack([m.forward(s, [t]) for s, t in zip(alone, nxt)])
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="distinct"):
        m.forward_batch([batch[0], batch[0]], [1, 2])
    lengths = [m.cache.length(s) for s in batch]
    with pytest.raises(KeyError):
        m.forward_batch([batch[0], 999], [1, 2])  # unknown sequence: nothing advances
    assert [m.cache.length(s) for s in batch] == lengths
