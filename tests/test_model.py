"""The model runtime on tiny random-weight GGUF files of every architecture and layer pattern
(tests/tiny_models.py) against the float64 numpy reference (tests/model_reference.py), on every
ISA this CPU runs, and on the real SmolLM2 file."""

from __future__ import annotations

import numpy as np
import pytest

import slmkernels as sk
from model_reference import ReferenceModel
from slmkernels import _core
from slmkernels.model.runtime import Model, sample
from tiny_models import ARCH_VARIANTS, write_tiny_model

# Float32 weights and a float32 KV cache: no quantization anywhere, so the step differs from
# float64 only by float32 rounding and summation order (measured max 2e-6 of the largest logit
# over every variant and ISA); 1e-3 of the largest logit is the bar, also what
# bench/compare_llama.py asks of llama.cpp on the same files.
F32_RTOL = 1e-3
# Quantized weights: activations are quantized to 8 bits per block before every GEMM
# (|x - q d| <= d/2: ~0.4% of the block's largest value) and the KV cache may be f16/q8_0;
# the error grows with depth: measured up to 3.4% of the largest logit over 4 layers (q5_1
# weights, q8_0 cache), so the bound is 1.5% per layer.
QUANT_RTOL_PER_LAYER = 0.015

# 15 tokens: longer than every sliding window of the variants (4, 5), so windows bite
IDS = [3, 17, 200, 5, 9, 250, 31, 77, 123, 4, 8, 15, 16, 23, 42]


@pytest.fixture(scope="module")
def variant_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("variants")
    return {name: write_tiny_model(d / f"{name}.gguf", **kw) for name, kw in ARCH_VARIANTS.items()}


def max_rel(got, ref):
    return float(np.abs(got - ref).max() / np.abs(ref).max())


@pytest.mark.parametrize("variant", list(ARCH_VARIANTS))
def test_forward_matches_reference_every_isa(variant_files, variant, isa):
    """Every architecture and layer pattern, float32 end to end, on each ISA: every position's
    logits within 1e-3 of the largest logit, and the same argmax wherever the reference's top
    two are not a near tie."""
    path = variant_files[variant]
    ref = ReferenceModel(path).forward(IDS)
    m = Model.from_gguf(path, kv_dtype="f32")
    got = m.forward(m.new_sequence(), IDS, all_logits=True)
    assert max_rel(got, ref) <= F32_RTOL, variant
    top2 = np.sort(ref, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 2 * F32_RTOL * np.abs(ref).max()
    assert (got.argmax(1) == ref.argmax(1))[clear].all()


QUANTIZED = [
    ("llama", dict(arch="llama", fmt="q8_0", embd_fmt="q8_0")),
    ("qwen2-q4_k", dict(arch="qwen2", fmt="q4_k", hidden=256, ffn=256)),
    ("granite-q4_0", dict(arch="granite", fmt="q4_0")),
    ("llama-window-q6_k", dict(arch="llama", window=5, fmt="q6_k", hidden=256, ffn=256)),
    ("gemma3-q8_0", dict(arch="gemma3", n_layers=4, head_dim=32, window=4, swa_pattern=3, fmt="q8_0")),
    ("phi3-q5_0", dict(arch="phi3", fmt="q5_0", rope_dim=12, longrope=True)),
    ("qwen3-q4_1", dict(arch="qwen3", fmt="q4_1", head_dim=32)),
    ("smollm3-q5_1", dict(arch="smollm3", fmt="q5_1", n_layers=4)),
]


@pytest.fixture(scope="module", params=range(len(QUANTIZED)), ids=[q[0] for q in QUANTIZED])
def quantized(request, tmp_path_factory):
    name, kw = QUANTIZED[request.param]
    path = write_tiny_model(tmp_path_factory.mktemp("q") / f"{name}.gguf", **kw)
    return path, ReferenceModel(path)


@pytest.mark.parametrize("kv_dtype", ["f32", "f16", "q8_0"])
def test_quantized_forward_matches_reference(quantized, kv_dtype):
    path, ref_model = quantized
    ref = ref_model.forward(IDS)
    m = Model.from_gguf(path, kv_dtype=kv_dtype)
    got = m.forward(m.new_sequence(), IDS, all_logits=True)
    scale = np.abs(ref).max()
    rtol = QUANT_RTOL_PER_LAYER * m.config.n_layers
    assert np.abs(got - ref).max() <= rtol * scale
    top2 = np.sort(ref, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 2 * rtol * scale
    assert (got.argmax(1) == ref.argmax(1))[clear].all()


def test_activation_modes_in_the_model(tmp_path):
    """set_act_mode: 'q8x2-head' (the default) puts the output head on two planes and every other
    matrix on one, so its logits differ from both 'q8' and 'q8x2'; every mode keeps prefill and
    decode the same bits; sk.matmul (no model role) runs q8x2-head as q8."""
    path = write_tiny_model(tmp_path / "llama-q4_1.gguf", arch="llama", fmt="q4_1", embd_fmt="q8_0")
    m = Model.from_gguf(path)
    before = sk.get_act_mode()
    assert before == "q8x2-head"
    got = {}
    try:
        for mode in sk.act_modes():
            sk.set_act_mode(mode)
            a, b = m.new_sequence(), m.new_sequence()
            got[mode] = m.forward(a, IDS, all_logits=True)
            np.testing.assert_array_equal(np.stack([m.forward(b, [t]) for t in IDS]), got[mode], err_msg=mode)
            m.free(a)
            m.free(b)
        assert not np.array_equal(got["q8x2-head"], got["q8"])
        assert not np.array_equal(got["q8x2-head"], got["q8x2"])
        x = np.random.default_rng(3).standard_normal((3, 64)).astype(np.float32)
        w = sk.quantize(np.random.default_rng(4).standard_normal((16, 64)).astype(np.float32), "q4_1")
        sk.set_act_mode("q8")
        one = sk.matmul(x, w)
        sk.set_act_mode("q8x2-head")
        np.testing.assert_array_equal(sk.matmul(x, w), one)
    finally:
        sk.set_act_mode(before)


def test_longrope_factors_follow_the_context(variant_files):
    """Phi-3's LongRoPE: the short factors up to rope.scaling.original_context_length tokens per
    sequence, the long ones past it (llama.cpp's get_rope_factors), each as the reference."""
    path = variant_files["phi3"]  # original context 512, trained context 2048
    outs = {}
    for ctx in (512, 1024):
        m = Model.from_gguf(path, kv_dtype="f32", context=ctx)
        got = m.forward(m.new_sequence(), IDS, all_logits=True)
        assert max_rel(got, ReferenceModel(path, context=ctx).forward(IDS)) <= F32_RTOL
        outs[ctx] = got
    assert np.abs(outs[512] - outs[1024]).max() > 1e-3  # the two factor sets do differ


def test_attention_softcap_from_a_hand_built_description(variant_files):
    """The typed description is the C++ step's whole input: the same weights run with an
    attention soft-cap set by hand (Gemma 2 style) agree with the reference doing the same."""
    path = variant_files["gemma3"]
    m = Model.from_gguf(path, kv_dtype="f32")
    spec = m.config.spec
    for ls in spec.layers:
        ls.attention.softcap = 2.0
    t = _core.Transformer(spec, m.layer_weights, m.out_norm, m.head, None, m.tok_embd, m.context)
    cache = sk.KVCache(m.config.n_layers, m.config.n_kv_heads, m.config.head_dim, capacity_tokens=64, dtype="f32",
                       layer_windows=[w or None for w in m.config.layer_windows])
    got = t.forward(cache, cache.new_sequence(), np.asarray(IDS), True)
    ref = ReferenceModel(path, attn_softcap=2.0).forward(IDS)
    assert max_rel(got, ref) <= F32_RTOL
    assert max_rel(ReferenceModel(path).forward(IDS), ref) > 1e-2  # the cap changes the result


@pytest.mark.parametrize("variant", list(ARCH_VARIANTS))
def test_decode_equals_prefill_bit_for_bit(variant_files, variant):
    """Batch invariance of every kernel carries through the model: token t's logits are the same
    bits whether it came in a prompt of 15, in chunks, or alone in a decode step."""
    m = Model.from_gguf(variant_files[variant], max_sequences=3)
    full = m.forward(m.new_sequence(), IDS, all_logits=True)
    s = m.new_sequence()
    step = np.stack([m.forward(s, [t]) for t in IDS])
    np.testing.assert_array_equal(step, full)
    s2 = m.new_sequence()
    chunks = np.concatenate([m.forward(s2, IDS[:4], all_logits=True), m.forward(s2, IDS[4:], all_logits=True)])
    np.testing.assert_array_equal(chunks, full)


@pytest.mark.parametrize("fmt", ["q4_0", "q4_k"])
def test_prompt_ffn_row_chunks_same_bits(tmp_path, fmt, isa):
    """A long prompt's FFN runs in row chunks (128 rows, or a narrower panel call's) so its
    intermediates do not scale with the prompt: 300 tokens as one call (chunks plus a tail)
    give the bits of the same tokens in calls of 100 (one each)."""
    path = write_tiny_model(tmp_path / "m.gguf", "llama", fmt=fmt, hidden=256, ffn=512, n_layers=1, context=320)
    m = Model.from_gguf(path)
    ids = np.random.default_rng(0).integers(0, m.config.vocab, size=300).tolist()
    s = m.new_sequence()
    full = m.forward(s, ids, all_logits=True)
    m.cache.truncate(s, 0)
    parts = np.concatenate([m.forward(s, ids[i : i + 100], all_logits=True) for i in range(0, 300, 100)])
    np.testing.assert_array_equal(parts, full)


@pytest.mark.parametrize("variant", ["llama", "gemma3", "phi3", "smollm3"])
def test_thread_count_invariance(variant_files, variant):
    m = Model.from_gguf(variant_files[variant])
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


@pytest.mark.parametrize("variant", ["llama", "gemma3", "qwen3"])
def test_batched_decode_equals_single_sequences(variant_files, variant):
    """Several sequences decode together in one step (GEMMs on all rows, attention per
    sequence); each row is the same bits as that sequence decoded alone."""
    m = Model.from_gguf(variant_files[variant], max_sequences=3)
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


def test_forward_errors(variant_files):
    m = Model.from_gguf(variant_files["llama"], context=16)
    s = m.new_sequence()
    with pytest.raises(ValueError, match="token ids"):
        m.forward(s, [10_000])
    with pytest.raises(ValueError, match="empty"):
        m.forward(s, [])
    with pytest.raises(ValueError, match="past the context"):
        m.forward(s, list(range(17)))
    assert m.cache.length(s) == 0  # nothing was reserved by the failed calls


def test_transformer_refuses_a_cache_that_does_not_fit(variant_files):
    m = Model.from_gguf(variant_files["gemma3"])
    c = m.config
    wrong = [sk.KVCache(c.n_layers, c.n_kv_heads, c.head_dim // 2, capacity_tokens=32),
             sk.KVCache(c.n_layers - 1, c.n_kv_heads, c.head_dim, capacity_tokens=32),
             sk.KVCache(c.n_layers, c.n_kv_heads, c.head_dim, capacity_tokens=32, layer_windows=[2] * c.n_layers)]
    for cache in wrong:
        with pytest.raises(ValueError, match="KV cache"):
            m._cpp.forward(cache, cache.new_sequence(), np.asarray(IDS[:2]), False)


# ---- the KV cache's geometry (kv_block_tokens) ----
# 530 tokens: more than two of attention's 256-token partitions, so blocks of 32 cut each full
# partition into 8 chunks where blocks of 256 or more leave it whole
LONG = np.random.default_rng(5).integers(3, 260, size=530).tolist()


@pytest.mark.parametrize("variant", ["llama", "qwen3"])
def test_blocks_of_256_or_more_give_the_same_bits(variant_files, variant, isa):
    """Attention cuts chunks at blocks and every 256 stored tokens (csrc/attention/attention.h):
    blocks of 256, of 512, or holding the whole context (4096 clamps to the context rounded up
    to 16) give the same chunks, so the same bits, prompt and decode, on every ISA."""
    outs = {}
    for bt in (256, 512, 4096):
        m = Model.from_gguf(variant_files[variant], context=600, kv_block_tokens=bt)
        assert m.cache.block_tokens == min(bt, 608)
        s = m.new_sequence()
        prompt = m.forward(s, LONG[:520], all_logits=True)
        outs[bt] = np.concatenate([prompt, np.stack([m.forward(s, [t]) for t in LONG[520:]])])
    np.testing.assert_array_equal(outs[512], outs[256])
    np.testing.assert_array_equal(outs[4096], outs[256])


@pytest.mark.parametrize("variant", ["llama", "mistral-window", "gemma3"])
def test_small_blocks_agree_within_rounding(variant_files, variant, isa):
    """Blocks of 32 give each full partition 8 chunks (8 online-softmax rescales instead of 1):
    not the same bits as blocks of 256, but both are the reference within the float32 bar,
    sliding windows included."""
    ref = ReferenceModel(variant_files[variant]).forward(LONG)
    for bt in (32, 256):
        m = Model.from_gguf(variant_files[variant], kv_dtype="f32", context=600, kv_block_tokens=bt)
        s = m.new_sequence()
        got = np.concatenate([m.forward(s, LONG[:520], all_logits=True), np.stack([m.forward(s, [t]) for t in LONG[520:]])])
        assert max_rel(got, ref) <= F32_RTOL, bt


@pytest.mark.parametrize("context,block", [(100, 256), (100, 32), (300, 256), (300, 48), (256, 256)])
def test_every_sequence_reaches_the_full_context(variant_files, context, block):
    """max_sequences sequences forked from one live prefix (as the server forks a parked one:
    the prefix keeps its partly filled tail, each fork copies it) all reach the full context at
    once, also when the context is not a multiple of the block (the last one partly used)."""
    n = 3
    m = Model.from_gguf(variant_files["llama"], context=context, max_sequences=n, kv_block_tokens=block)
    bt = m.cache.block_tokens
    assert bt == min(block, -(-context // 16) * 16)
    assert m.cache.stats()["blocks_total"] == m.cache.n_layers * n * (-(-context // bt) + 1)
    ids = np.random.default_rng(context + block).integers(3, 260, size=context).tolist()
    prefix = m.new_sequence()
    m.forward(prefix, ids[:5])
    seqs = [m.cache.fork(prefix) for _ in range(n)]
    for s in seqs:
        m.forward(s, ids[5 : context - 2])
    m.forward_batch(seqs, [ids[-2]] * n)
    for s in seqs:
        m.forward(s, [ids[-1]])
        assert m.cache.length(s) == context
        with pytest.raises(ValueError, match="past the context"):
            m.forward(s, [5])
    assert m.cache.length(prefix) == 5


def test_unsupported_architecture(tmp_path):
    from gguf import GGUFWriter

    w = GGUFWriter(str(tmp_path / "x.gguf"), "mamba")
    w.add_block_count(1)
    w.add_tensor("token_embd.weight", np.zeros((4, 8), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(ValueError, match="^unsupported architecture 'mamba' \\(supported: gemma3, granite, "
                                         "granitehybrid, llama, mistral, phi3, phonelm, qwen2, qwen3, smollm3\\)$"):
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
def smollm2(smollm2_path):
    return smollm2_path, Model.from_gguf(smollm2_path, context=512)


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
    # finished sequences are parked for prefix reuse; without reuse, generation frees its own.
    # (The pool is 3 blocks of 256 per layer, each parked prompt holds one, so the generation
    # may take the least recently used one's block.)
    parked = m.cache.sequences()
    list(m.generate("The capital of France is", 4, add_bos=False, reuse_prefix=False))
    after = m.cache.sequences()
    assert len(parked) >= 1 and set(after) <= set(parked)
    assert len(after) == min(len(parked), m.cache.stats()["blocks_total"] // m.cache.n_layers - 1)
