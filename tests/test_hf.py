"""Model.from_pretrained on tiny random-weight Hugging Face checkpoints (saved with safetensors by
transformers) against transformers' own forward pass (CPU, float32); the same checkpoint
converted to GGUF gives the same logits; bad checkpoints are one clear error."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

if os.environ.get("SLMK_SANITIZE", "").strip().lower() not in ("", "0", "off", "no", "false"):
    # .ci/sanitize: torch under a preloaded ASan runtime is not what that job checks (its own
    # allocator and kernels); the plain CI run has this module
    pytest.skip("the transformers reference does not run under the sanitizers", allow_module_level=True)

torch = pytest.importorskip("torch", reason="the transformers reference needs torch (pip install '.[hf-test]')")
transformers = pytest.importorskip("transformers", reason="pip install '.[hf-test]'")
pytest.importorskip("safetensors")

from slmkernels.model.hf import CheckpointError, write_gguf  # noqa: E402
from slmkernels.model.runtime import Model  # noqa: E402

from hf_agreement import check_pretrained  # noqa: E402

IDS = [3, 17, 200, 5, 9, 250, 31, 77, 123, 4, 8, 15]


def tiny_tokenizer(d):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["hello world, the quick brown fox jumps over the lazy dog"] * 20, trainer)
    tok.save(str(d / "tokenizer.json"))
    (d / "tokenizer_config.json").write_text(json.dumps({
        "eos_token": "<|endoftext|>",
        "chat_template": "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:"}))


ARCH_CLASSES = {
    "llama": ("LlamaConfig", "LlamaForCausalLM"), "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM"), "gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM")}


def make_checkpoint(d, arch, *, dtype=torch.float32, tied=False, seed=0, **extra):
    cls = tuple(getattr(transformers, n) for n in ARCH_CLASSES[arch])
    kw = dict(vocab_size=320, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5, tie_word_embeddings=tied,
              initializer_range=0.1, rope_theta=5000.0)
    if arch == "qwen3":
        kw.update(head_dim=24)  # explicit, not hidden / heads
    if arch == "gemma3":
        # 3 layers: sliding, full, sliding; a window shorter than the prompt; head_dim 24 and its
        # query_pre_attn_scalar; local and global RoPE bases that differ
        kw.update(num_hidden_layers=3, head_dim=24, query_pre_attn_scalar=24, sliding_window=5,
                  layer_types=["sliding_attention", "full_attention", "sliding_attention"], tie_word_embeddings=True,
                  rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 50000.0},
                                   "sliding_attention": {"rope_type": "default", "rope_theta": 2000.0}},
                  final_logit_softcapping=extra.pop("softcap", None))
        del kw["rope_theta"]
    if "rope_parameters" in extra:
        del kw["rope_theta"]
    kw.update(extra)
    cfg = cls[0](**kw)
    torch.manual_seed(seed)
    model = cls[1](cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    model = model.to(dtype)
    model.save_pretrained(d, safe_serialization=True)
    tiny_tokenizer(d)
    # the reference: the saved checkpoint loaded back in float32 (bf16 weights widened exactly;
    # buffers such as RoPE's inverse frequencies recomputed in float32)
    ref = cls[1].from_pretrained(d, torch_dtype=torch.float32).eval()
    with torch.no_grad():
        return ref(torch.tensor([IDS])).logits[0].numpy().astype(np.float64)


CASES = {"llama": ("llama", {}), "llama-tied": ("llama", dict(tied=True)), "qwen2": ("qwen2", {}),
         "llama-bf16": ("llama", dict(dtype=torch.bfloat16)), "qwen3": ("qwen3", {}),
         "qwen3-tied-bf16": ("qwen3", dict(tied=True, dtype=torch.bfloat16)), "gemma3": ("gemma3", {}),
         "gemma3-softcap": ("gemma3", dict(softcap=3.0)),
         # Llama 3.1/3.2's scaling; an original context of 64 puts the pairs of head_dim 16 in all
         # three bands (kept, divided by the factor, smoothed between)
         "llama3-scaling": ("llama", dict(rope_parameters={
             "rope_type": "llama3", "rope_theta": 5000.0, "factor": 8.0, "low_freq_factor": 1.0,
             "high_freq_factor": 4.0, "original_max_position_embeddings": 64})),
         # YaRN as Qwen2.5 / Qwen3 document it for long context; an original context of 64 puts the
         # 8 pairs of head_dim 16 (base 5000) on both sides of the ramp (pairs 0-3 ramp, 4-7
         # interpolated) and the 1 + 0.1 ln 4 magnitude on cos/sin
         "qwen2-yarn": ("qwen2", dict(rope_parameters={"rope_type": "yarn", "rope_theta": 5000.0, "factor": 4.0,
                                                       "original_max_position_embeddings": 64})),
         "qwen3-yarn": ("qwen3", dict(rope_parameters={"rope_type": "yarn", "rope_theta": 5000.0, "factor": 4.0,
                                                       "original_max_position_embeddings": 64})),
         "llama-yarn": ("llama", dict(rope_parameters={"rope_type": "yarn", "rope_theta": 5000.0, "factor": 2.0,
                                                       "original_max_position_embeddings": 64})),
         # dynamic NTK: the plain frequencies up to max_position_embeddings
         "qwen2-dynamic": ("qwen2", dict(rope_parameters={"rope_type": "dynamic", "rope_theta": 5000.0,
                                                          "factor": 2.0}))}


@pytest.mark.parametrize("arch,kw", CASES.values(), ids=CASES.keys())
def test_matches_transformers(tmp_path, arch, kw):
    check_pretrained(tmp_path, make_checkpoint(tmp_path, arch, **kw), IDS)


@pytest.mark.parametrize("arch", ["qwen2", "qwen3", "gemma3"])
def test_converted_gguf_gives_the_same_logits(tmp_path, arch):
    make_checkpoint(tmp_path, arch)
    a = Model.from_pretrained(tmp_path, dtype="q4_0", save_gguf=tmp_path / "tiny.gguf")
    b = Model.from_gguf(tmp_path / "tiny.gguf")
    np.testing.assert_array_equal(a.forward(a.new_sequence(), IDS, all_logits=True),
                                  b.forward(b.new_sequence(), IDS, all_logits=True))


@pytest.mark.parametrize("dtype,fmt", [("f16", "F16"), ("bf16", "BF16"), ("q8_0", "Q8_0"), ("q4_k", "Q4_K")])
def test_quantized_at_load(tmp_path, dtype, fmt):
    """2-D weights in the asked format (our quantizers: the bytes equal sk.quantize of the
    checkpoint's values); f16 / bf16 checkpoints kept bit for bit; norms stay float32."""
    from gguf import GGUFReader
    from safetensors.torch import load_file

    import slmkernels as sk

    ck = {"f16": torch.float16, "bf16": torch.bfloat16}.get(dtype, torch.float32)
    make_checkpoint(tmp_path, "qwen3", dtype=ck, hidden_size=256, intermediate_size=256, head_dim=64)
    write_gguf(tmp_path, tmp_path / "q.gguf", dtype=dtype)
    t = {x.name: x for x in GGUFReader(str(tmp_path / "q.gguf")).tensors}
    assert t["blk.1.ffn_down.weight"].tensor_type.name == fmt
    assert t["blk.1.attn_q_norm.weight"].tensor_type.name == "F32"
    raw = load_file(str(tmp_path / "model.safetensors"))["model.layers.1.mlp.down_proj.weight"]
    got = np.asarray(t["blk.1.ffn_down.weight"].data).view(np.uint8).ravel()
    if dtype in ("f16", "bf16"):
        np.testing.assert_array_equal(got, raw.view(torch.int16).numpy().view(np.uint8).ravel())  # its own bits
    else:
        want = sk.quantize(raw.numpy(), dtype)
        np.testing.assert_array_equal(got, np.asarray(want.data).view(np.uint8).ravel())


def test_tokenizer_and_template(tmp_path):
    make_checkpoint(tmp_path, "llama")
    from tokenizers import Tokenizer

    hf = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    m = Model.from_pretrained(tmp_path)
    text = "hello world, the lazy fox"
    assert m.tokenizer.encode(text, add_bos=False) == hf.encode(text).ids
    assert m.tokenizer.decode(hf.encode(text).ids) == text
    toks = list(m.chat([{"role": "user", "content": "hello"}], max_new_tokens=3))
    assert len(toks) <= 3


def test_bad_checkpoints_are_clear_errors(tmp_path):
    from safetensors.numpy import load_file, save_file

    make_checkpoint(tmp_path, "llama")
    cfg = json.loads((tmp_path / "config.json").read_text())
    st = tmp_path / "model.safetensors"
    tensors = load_file(str(st))
    out = tmp_path / "out.gguf"

    def expect(match):
        with pytest.raises(CheckpointError, match=match):
            write_gguf(tmp_path, out)
        assert not out.exists()  # nothing was written

    bad = dict(tensors)
    del bad["model.layers.1.mlp.up_proj.weight"]
    save_file(bad, str(st))
    expect(r"tensor 'model.layers.1.mlp.up_proj.weight' is missing")
    bad = dict(tensors)
    bad["model.layers.0.self_attn.k_proj.weight"] = bad["model.layers.0.self_attn.k_proj.weight"][:8]
    save_file(bad, str(st))
    expect(r"k_proj.weight' has shape \(8, 64\), expected \(32, 64\)")
    # a tensor config.json does not announce (biases of attention_bias: false) is not skipped
    save_file(tensors | {"model.layers.0.self_attn.q_proj.bias": np.zeros(64, np.float32)}, str(st))
    expect(r"q_proj.bias' is not read by LlamaForCausalLM")
    save_file(tensors, str(st))
    for key, value, match in (("num_hidden_layers", 0, "out of range"), ("rms_norm_eps", "x", "finite number"),
                              ("num_key_value_heads", 3, "not a multiple"), ("architectures", ["GPT2LMHeadModel"],
                                                                             "not supported"),
                              ("rope_parameters", {"rope_type": "longrope", "factor": 4.0},
                               "type 'longrope' is not supported"),
                              ("rope_parameters", {"rope_type": "yarn", "factor": 4.0}, "original_max_position_embeddings"),
                              ("rope_parameters", {"rope_type": "yarn", "factor": 4.0, "beta_fast": 16,
                                                   "original_max_position_embeddings": 64}, "beta_fast = 16"),
                              ("rope_parameters", {"rope_type": "yarn", "factor": 4.0, "attention_factor": 1.2,
                                                   "original_max_position_embeddings": 64}, "attention_factor"),
                              ("rope_parameters", {"rope_type": "linear", "factor": -2.0}, "out of range"),
                              ("rope_parameters", {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0,
                                                   "high_freq_factor": 1.0}, "must be above low_freq_factor"),
                              ("hidden_act", "gelu", "hidden_act 'gelu' is not supported")):
        (tmp_path / "config.json").write_text(json.dumps(cfg | {key: value}))
        expect(match)
    (tmp_path / "config.json").write_text(json.dumps(cfg | {"rope_parameters": {"rope_type": "dynamic",
                                                                               "factor": 2.0}}))
    with pytest.raises(CheckpointError, match="dynamic RoPE scaling is exact only up to"):
        Model.from_pretrained(tmp_path, context=257)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="dtype must be one of"):
        write_gguf(tmp_path, out, dtype="q3_k")
    with pytest.raises(CheckpointError, match="no config.json"):
        write_gguf(tmp_path / "nowhere", out)


def test_bad_gemma3_configs_are_clear_errors(tmp_path):
    make_checkpoint(tmp_path, "gemma3")
    cfg = json.loads((tmp_path / "config.json").read_text())
    for key, value, match in (("layer_types", ["sliding_attention"] * 2, "for each of the 3 layers"),
                              ("query_pre_attn_scalar", 256, "query_pre_attn_scalar 256.* must be 24"),
                              ("attn_logit_softcapping", 50.0, "attn_logit_softcapping"),
                              ("sliding_window", 0, "sliding_window' = 0 is out of range")):
        (tmp_path / "config.json").write_text(json.dumps(cfg | {key: value}))
        with pytest.raises(CheckpointError, match=match):
            write_gguf(tmp_path, tmp_path / "out.gguf")
        assert not (tmp_path / "out.gguf").exists()
