"""ModelConfig.from_gguf: the real model, tiny files per architecture, and bad metadata."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

gguf = pytest.importorskip("gguf")

from slmkernels import _core  # noqa: E402
from slmkernels.model import GGUFError, GGUFReader, ModelConfig  # noqa: E402
from slmkernels.model.config import SUPPORTED_ARCHITECTURES  # noqa: E402
from tiny_models import TINY, write_tiny_model  # noqa: E402


def load(path) -> ModelConfig:
    with GGUFReader(path) as r:
        return ModelConfig.from_gguf(r)


@pytest.mark.model
def test_smollm2_config(smollm2_path):
    c = load(smollm2_path)
    assert (c.architecture, c.n_layers, c.hidden, c.n_heads, c.n_kv_heads, c.head_dim) == ("llama", 30, 576, 9, 3, 64)
    assert (c.ffn, c.vocab, c.context_length, c.rope_dim) == (1536, 49152, 8192, 64)
    assert c.rope_base == 100000.0 and c.rope_type == "norm" and c.rope_scaling_type == "none"
    assert c.rms_norm_eps == pytest.approx(1e-5)
    assert c.tied_embeddings and not c.qkv_bias and c.sliding_window == 0
    assert c.attention_scale == pytest.approx(1 / 8)
    assert (c.embedding_scale, c.residual_scale, c.logit_scale) == (1.0, 1.0, 1.0)


@pytest.mark.parametrize("arch", list(SUPPORTED_ARCHITECTURES))
def test_tiny_architectures(tmp_path, arch):
    c = load(write_tiny_model(tmp_path / f"{arch}.gguf", arch))
    assert c.architecture == arch
    assert (c.n_layers, c.hidden, c.n_heads, c.n_kv_heads) == (TINY["n_layers"], TINY["hidden"], TINY["n_heads"], TINY["n_kv_heads"])
    assert c.head_dim == TINY["hidden"] // TINY["n_heads"]
    assert c.rope_type == ("neox" if arch in ("qwen2", "qwen3", "phi3", "gemma3", "phonelm") else "norm")
    assert c.qkv_bias == (arch == "qwen2")
    assert len(c.spec.layers) == c.n_layers
    if arch in ("granite", "granitehybrid"):  # (granitehybrid with attention layers only here)
        assert c.embedding_scale == 12.0 and c.logit_scale == 8.0
        assert c.residual_scale == pytest.approx(0.22) and c.attention_scale == 0.0078125
    else:
        assert c.attention_scale == pytest.approx(1 / math.sqrt(c.head_dim))


def test_untied_output_and_sliding_window(tmp_path):
    p = write_tiny_model(
        tmp_path / "m.gguf", "llama", tied=False, override=lambda w: w.add_uint32("llama.attention.sliding_window", 64)
    )
    c = load(p)
    assert not c.tied_embeddings and c.sliding_window == 64
    assert "output.weight" in c.expected_tensors()


def test_rope_scaling(tmp_path):
    def o(w):
        w.add_string("llama.rope.scaling.type", "linear")
        w.add_float32("llama.rope.scaling.factor", 4.0)
        w.add_uint32("llama.rope.scaling.original_context_length", 2048)

    c = load(write_tiny_model(tmp_path / "m.gguf", override=o))
    assert (c.rope_scaling_type, c.rope_scaling_factor, c.rope_original_context) == ("linear", 4.0, 2048)


def _bad(**kw):
    return kw


BAD = {
    "unsupported architecture": (_bad(arch="mamba"), "unsupported architecture 'mamba'"),
    "head count as string": (
        _bad(override=lambda w: w.add_string("llama.attention.head_count", "4")),
        "head_count' must be an integer, got STRING",
    ),
    "head count as float": (
        _bad(override=lambda w: w.add_float32("llama.attention.head_count", 4.0)),
        "must be an integer, got FLOAT32",
    ),
    "per-layer head counts (array of the wrong length)": (
        _bad(override=lambda w: w.add_array("llama.attention.head_count", [4, 4, 4])),
        "head_count' has 3 entries, but block_count is 2",
    ),
    "per-layer head counts (array of strings)": (
        _bad(override=lambda w: w.add_array("llama.attention.head_count", ["4", "4"])),
        "must be an integer or an array of integers, got ARRAY of STRING",
    ),
    "a million layers": (
        _bad(override=lambda w: w.add_uint32("llama.block_count", 1_000_000)),
        "block_count' = 1000000 is out of range",
    ),
    "zero layers": (_bad(override=lambda w: w.add_uint32("llama.block_count", 0)), "out of range"),
    "negative hidden": (_bad(override=lambda w: w.add_int32("llama.embedding_length", -64)), "out of range"),
    "heads not a multiple of kv heads": (
        _bad(override=lambda w: w.add_uint32("llama.attention.head_count_kv", 3)),
        "not a multiple of llama.attention.head_count_kv 3",
    ),
    "missing block_count": (_bad(skip_keys=("llama.block_count",)), "required metadata 'llama.block_count' is missing"),
    "eps zero": (_bad(override=lambda w: w.add_float32("llama.attention.layer_norm_rms_epsilon", 0.0)), "out of range"),
    "eps NaN": (_bad(override=lambda w: w.add_float32("llama.attention.layer_norm_rms_epsilon", float("nan"))), "out of range"),
    "rope base negative": (_bad(override=lambda w: w.add_float32("llama.rope.freq_base", -1.0)), "out of range"),
    "rope dim above head dim": (_bad(override=lambda w: w.add_uint32("llama.rope.dimension_count", 64)), "out of range"),
    "rope scaling type unknown": (_bad(override=lambda w: w.add_string("llama.rope.scaling.type", "magic")), "unsupported"),
    "architecture not a string": (_bad(override=lambda w: w.add_uint32("general.architecture", 1)), "must be a string"),
    "vocab size disagrees with tensors": (
        _bad(override=lambda w: w.add_uint32("llama.vocab_size", 1000)),
        "token_embd.weight' has dims .* vocabulary size 1000\\) implies",
    ),
    "hidden disagrees with tensors": (
        _bad(arch="qwen2", override=lambda w: w.add_uint32("qwen2.embedding_length", 128)),
        "has dims .* but the metadata \\(qwen2.embedding_length = 128.*\\) implies",
    ),
    "ffn disagrees with tensors": (
        _bad(override=lambda w: w.add_uint32("llama.feed_forward_length", 100)),
        "ffn_gate.weight' has dims \\[64, 96\\], but the metadata \\(.*llama.feed_forward_length = 100\\) implies",
    ),
    "wrong q shape": (_bad(tensor_shapes={"blk.1.attn_q.weight": (32, 64)}), "blk.1.attn_q.weight' has dims"),
    "missing tensor": (_bad(skip_tensors=("blk.1.ffn_up.weight",)), "blk.1.ffn_up.weight' is missing"),
    "more layers than block_count": (
        _bad(override=lambda w: w.add_uint32("llama.block_count", 1)),
        "blk.1.attn_norm.weight' exists but llama.block_count is 1",
    ),
}


# Metadata whose layer pattern or head sizes do not fit the tensors (or cannot be run): each a
# GGUFError naming the key and the tensor, raised before anything is allocated from the file.
BAD.update({
    "qwen3 key_length does not fit attn_q": (
        _bad(arch="qwen3", head_dim=32, skip_keys=("qwen3.attention.value_length", "qwen3.rope.dimension_count"),
             override=lambda w: w.add_uint32("qwen3.attention.key_length", 16)),
        "blk.0.attn_q.weight' has dims \\[64, 128\\], but the metadata \\(qwen3.embedding_length = 64, "
        "qwen3.attention.head_count = 4, qwen3.attention.key_length = 16\\) implies \\[64, 64\\]",
    ),
    "gemma3 q_norm is not head_dim long": (
        _bad(arch="gemma3", head_dim=32, tensor_shapes={"blk.1.attn_q_norm.weight": (16,)}),
        "blk.1.attn_q_norm.weight' has dims \\[16\\], but the metadata \\(gemma3.attention.key_length = 32\\)",
    ),
    "gemma3 window pattern of the wrong length": (
        _bad(arch="gemma3", n_layers=4, window=4,
             override=lambda w: w.add_array("gemma3.attention.sliding_window_pattern", [True, False])),
        "gemma3.attention.sliding_window_pattern' has 2 entries, but block_count is 4",
    ),
    "gemma3 post-FFN norm missing": (
        _bad(arch="gemma3", skip_tensors=("blk.0.post_ffw_norm.weight",)), "blk.0.post_ffw_norm.weight' is missing",
    ),
    "phi3 fused ffn_up is not [gate; up]": (
        _bad(arch="phi3", tensor_shapes={"blk.0.ffn_up.weight": (96, 64)}),
        "blk.0.ffn_up.weight' has dims \\[64, 96\\], but the metadata \\(.*phi3.feed_forward_length = 96 "
        "\\(ffn_up holds gate and up\\)\\) implies \\[64, 192\\]",
    ),
    "phi3 fused attn_qkv misses the kv heads": (
        _bad(arch="phi3", override=lambda w: w.add_uint32("phi3.attention.head_count_kv", 4)),
        "blk.0.attn_qkv.weight' has dims \\[64, 128\\], but the metadata .*head_count_kv = 4.* implies \\[64, 192\\]",
    ),
    "phi3 long factors of the wrong length": (
        _bad(arch="phi3", rope_dim=12, longrope=True, tensor_shapes={"rope_factors_long.weight": (4,)}),
        "rope_factors_long.weight' has dims \\[4\\], but phi3.rope.dimension_count = 12 implies \\[6\\]",
    ),
    "phi3 short factors missing": (
        _bad(arch="phi3", longrope=True, skip_tensors=("rope_factors_short.weight",)),
        "rope_factors_short.weight' is missing",
    ),
    "longrope scaling without factors": (
        _bad(override=lambda w: w.add_string("llama.rope.scaling.type", "longrope")),
        "rope_factors_long.weight' is missing",
    ),
    "per-layer head count that does not fit its layer": (
        _bad(override=lambda w: w.add_array("llama.attention.head_count", [4, 2])),
        "blk.1.attn_q.weight' has dims \\[64, 64\\], but the metadata \\(llama.embedding_length = 64, "
        "llama.attention.head_count\\[1\\] = 2, the head size 16\\) implies \\[64, 32\\]",
    ),
    "granite kv heads differing between layers": (
        _bad(arch="granite", override=lambda w: w.add_array("granite.attention.head_count_kv", [2, 1])),
        "head_count_kv differs between layers",
    ),
    "llama rope dims below the head size": (
        _bad(override=lambda w: w.add_uint32("llama.rope.dimension_count", 8)),
        "llama.rope.dimension_count 8 differs from the head size 16",
    ),
    "window pattern of the wrong type": (
        _bad(arch="gemma3", window=4, override=lambda w: w.add_string("gemma3.attention.sliding_window_pattern", "6")),
        "sliding_window_pattern' must be an integer, got STRING",
    ),
})


@pytest.mark.parametrize("case", list(BAD))
def test_bad_metadata_is_rejected(tmp_path, case):
    kw, match = BAD[case]
    p = write_tiny_model(tmp_path / "bad.gguf", **kw)
    with pytest.raises(GGUFError, match=match):
        load(p)


@pytest.mark.parametrize("case", list(BAD))
def test_bad_metadata_is_refused_before_the_model_is_built(tmp_path, monkeypatch, case):
    """Model.from_gguf raises the same GGUFError, and never reaches the constructor that packs
    weights and allocates the KV cache."""
    from slmkernels.model.runtime import Model

    def built(*args, **kw):
        raise AssertionError("Model.__init__ ran on a file whose metadata does not fit its tensors")

    monkeypatch.setattr(Model, "__init__", built)
    kw, match = BAD[case]
    with pytest.raises(GGUFError, match=match):
        Model.from_gguf(write_tiny_model(tmp_path / "bad.gguf", **kw))


def test_mutated_model_files_raise_only_gguf_error(tmp_path):
    """Random byte edits in the metadata and tensor-info part of a complete tiny model: reading,
    the config, the tokenizer and the chat template either work or raise GGUFError."""
    from slmkernels.model import ChatTemplate, Tokenizer
    from slmkernels.model.chat import TemplateError

    full = Path(write_tiny_model(tmp_path / "m.gguf")).read_bytes()
    with GGUFReader(tmp_path / "m.gguf") as r:
        header_end = r.data_offset
    rng = random.Random(99)
    counts = {"ok": 0, "rejected": 0}
    for _ in range(300):
        data = bytearray(full)
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(header_end)
            data[pos] = rng.choice([0, 0xFF, data[pos] ^ (1 << rng.randrange(8))])
        p = tmp_path / "x.gguf"
        p.write_bytes(bytes(data))
        try:
            with GGUFReader(p) as r:
                ModelConfig.from_gguf(r)
                tok = Tokenizer.from_gguf(r)
                tok.decode(tok.encode("hello world <|im_end|> é😀"))
                try:
                    ChatTemplate.from_gguf(r).render([{"role": "user", "content": "hi"}])
                except TemplateError:
                    pass
            counts["ok"] += 1
        except GGUFError:
            counts["rejected"] += 1
    assert counts["rejected"] > 100


def test_per_layer_descriptions(tmp_path):
    """What ModelConfig describes for each architecture's layer pattern (tests/tiny_models.py
    ARCH_VARIANTS), as llama.cpp's graph builders read the same metadata."""
    from tiny_models import ARCH_VARIANTS

    def cfg(name):
        return load(write_tiny_model(tmp_path / f"{name}.gguf", **ARCH_VARIANTS[name]))

    c = cfg("smollm3")
    assert [ls.attention.rope for ls in c.spec.layers] == [True, True, True, False]  # every 4th: NoPE
    c = cfg("gemma3")
    att = [ls.attention for ls in c.spec.layers]
    assert [a.window for a in att] == [4, 4, 0, 4]  # period 3: local, local, global, local
    assert [a.rope_spec.base for a in att] == [1e4, 1e4, 1e6, 1e4]
    assert all(a.rope_spec.mode == _core.RopeMode.neox for a in att)
    assert all(ls.activation == _core.FfnActivation.gelu_tanh for ls in c.spec.layers)
    assert c.spec.embedding_scale == pytest.approx(8.0) and att[0].scale == pytest.approx(32**-0.5)
    assert (att[0].head_dim, c.layers[0].q_norm, c.layers[0].post_ffn_norm) == (
        32, "blk.0.attn_q_norm.weight", "blk.0.post_ffw_norm.weight")
    c = cfg("gemma3-softcap-scaled")
    scal = [ls.attention.rope_spec.scaling for ls in c.spec.layers]
    assert scal == [_core.RopeScaling.none, _core.RopeScaling.none, _core.RopeScaling.linear, _core.RopeScaling.none]
    assert c.spec.layers[2].attention.rope_spec.factor == 8.0 and c.spec.final_logit_softcap == 3.0
    c = cfg("phonelm")
    assert all(ls.activation == _core.FfnActivation.relu for ls in c.spec.layers)
    assert c.spec.layers[0].attention.rope_spec.mode == _core.RopeMode.neox and c.n_kv_heads == 4
    c = cfg("phi3")
    r = c.spec.layers[0].attention.rope_spec
    assert (r.rotary_dim, r.scaling, r.original_context, len(r.freq_factors), len(r.long_factors)) == (
        12, _core.RopeScaling.longrope, 512, 6, 6)
    assert r.attn_factor == pytest.approx(1.19)
    assert c.layers[0].qkv == ("blk.0.attn_qkv.weight",) and c.layers[0].gate_up == ("blk.0.ffn_up.weight",)
    c = cfg("qwen3")
    assert (c.head_dim, c.q_dim, c.layers[1].k_norm) == (32, 128, "blk.1.attn_k_norm.weight")
    c = cfg("llama-rope-freqs")
    assert len(c.spec.layers[0].attention.rope_spec.freq_factors) == 8
    c = cfg("mistral-window")
    assert c.layer_windows == [5, 5, 5]
    c = cfg("granite4-dense")
    assert c.n_kv_heads == 2 and c.layers[0].wo_bias == "blk.0.attn_output.bias"
    assert c.spec.residual_scale == pytest.approx(0.22)
    c = cfg("llama-untied-bias")
    assert c.layers[0].gate_up_bias == ("blk.0.ffn_gate.bias", "blk.0.ffn_up.bias")


def test_granite_rope_finetuned_false_turns_rope_off(tmp_path):
    p = write_tiny_model(tmp_path / "g.gguf", "granite",
                         override=lambda w: w.add_bool("granite.rope.scaling.finetuned", False))
    assert not any(ls.attention.rope for ls in load(p).spec.layers)


def test_description_fields_are_typed():
    spec = _core.AttentionSpec()
    with pytest.raises(TypeError, match="n_heads"):
        spec.n_heads = "4"
    with pytest.raises(TypeError, match="window"):
        spec.window = True
    layer = _core.LayerSpec()
    layer.attention.n_heads = 8  # nested records are edited in place
    assert layer.attention.n_heads == 8
    m = _core.ModelSpec()
    m.layers = [layer, _core.LayerSpec()]
    m.layers[1].ffn = 7
    assert [ls.ffn for ls in m.layers] == [0, 7]
