"""Model.from_pretrained on tiny random-weight PhoneLM checkpoints (PhoneLMForCausalLM, BUPT's
mllmTeam/PhoneLM-0.5B/1.5B; not in transformers) against the float64 numpy forward pass written
from the published modeling_phonelm.py (tests/model_reference.py phonelm_hf_logits); the same
checkpoint converted to GGUF gives the same logits; bad checkpoints are one clear error."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("safetensors")

from hf_agreement import check_pretrained  # noqa: E402
from model_reference import phonelm_hf_logits  # noqa: E402

from slmkernels.model.hf import CheckpointError, write_gguf  # noqa: E402
from slmkernels.model.runtime import Model  # noqa: E402

IDS = [3, 17, 200, 5, 9, 250, 31, 77, 123, 4, 8, 15]


def make_phonelm(d, *, n_kv=4, tied=False, seed=0, **cfg_over):
    """A PhoneLM checkpoint as save_pretrained writes one: config.json (PhoneLMConfig's keys) and
    model.safetensors (float32, the HF tensor names; no lm_head when tied)."""
    from safetensors.numpy import save_file

    hid, H, F, V, L = 64, 4, 96, 320, 2
    D = hid // H
    rng = np.random.default_rng(seed)

    def m(*shape):
        return (rng.standard_normal(shape) * shape[-1] ** -0.5).astype(np.float32)

    def norm(n):
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    t = {"model.embed_tokens.weight": (0.3 * rng.standard_normal((V, hid))).astype(np.float32),
         "model.norm.weight": norm(hid)}
    if not tied:
        t["lm_head.weight"] = m(V, hid)
    for i in range(L):
        p = f"model.layers.{i}."
        t.update({p + "input_layernorm.weight": norm(hid), p + "post_attention_layernorm.weight": norm(hid),
                  p + "self_attn.q_proj.weight": m(H * D, hid), p + "self_attn.k_proj.weight": m(n_kv * D, hid),
                  p + "self_attn.v_proj.weight": m(n_kv * D, hid), p + "self_attn.o_proj.weight": m(hid, H * D),
                  p + "mlp.gate_proj.weight": m(F, hid), p + "mlp.up_proj.weight": m(F, hid),
                  p + "mlp.down_proj.weight": m(hid, F)})
    save_file(t, str(d / "model.safetensors"), metadata={"format": "pt"})
    cfg = {"architectures": ["PhoneLMForCausalLM"], "model_type": "phonelm",
           "auto_map": {"AutoConfig": "configuration_phonelm.PhoneLMConfig",
                        "AutoModelForCausalLM": "modeling_phonelm.PhoneLMForCausalLM"},
           "vocab_size": V, "hidden_size": hid, "intermediate_size": F, "num_hidden_layers": L,
           "num_attention_heads": H, "num_key_value_heads": n_kv, "hidden_act": "relu",
           "max_position_embeddings": 256, "rms_norm_eps": 1e-6, "rope_theta": 5000.0, "rope_scaling": None,
           "attention_bias": False, "tie_word_embeddings": tied, "pretraining_tp": 1, "torch_dtype": "float32"}
    (d / "config.json").write_text(json.dumps(cfg | cfg_over))


CASES = {"phonelm": {}, "phonelm-gqa-tied": dict(n_kv=2, tied=True)}


@pytest.mark.parametrize("kw", CASES.values(), ids=CASES.keys())
def test_matches_numpy_reference(tmp_path, kw):
    make_phonelm(tmp_path, **kw)
    want = phonelm_hf_logits(tmp_path, IDS)
    got = check_pretrained(tmp_path, want, IDS)
    # the published modeling file's 8-bit cos/sin tables move the logits by a rounding-sized step
    # (measured 5e-3 and 8e-3 of the largest logit here): we compute RoPE exactly
    want_i8 = phonelm_hf_logits(tmp_path, IDS, int8_rope=True)
    assert np.abs(got - want_i8).max() <= 0.05 * np.abs(want).max()


def test_converted_gguf_gives_the_same_logits(tmp_path):
    make_phonelm(tmp_path, n_kv=2)
    a = Model.from_pretrained(tmp_path, dtype="q4_0", save_gguf=tmp_path / "tiny.gguf")
    b = Model.from_gguf(tmp_path / "tiny.gguf")
    assert b.config.architecture == "phonelm"
    assert all(ls.activation.name == "relu" for ls in b.config.spec.layers)
    np.testing.assert_array_equal(a.forward(a.new_sequence(), IDS, all_logits=True),
                                  b.forward(b.new_sequence(), IDS, all_logits=True))


def test_bad_phonelm_configs_are_clear_errors(tmp_path):
    make_phonelm(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    out = tmp_path / "out.gguf"
    no_act = {k: v for k, v in cfg.items() if k != "hidden_act"}
    for bad, match in ((no_act, "hidden_act 'silu' is not supported for PhoneLMForCausalLM"),  # PhoneLMConfig's default
                       (cfg | {"hidden_act": "silu"}, "relu only"),
                       (cfg | {"attention_bias": True}, "attention_bias true is not supported"),
                       (cfg | {"rope_scaling": {"type": "dynamic", "factor": 2.0}}, "'dynamic' is not supported"),
                       (cfg | {"num_key_value_heads": 3}, "not a multiple")):
        (tmp_path / "config.json").write_text(json.dumps(bad))
        with pytest.raises(CheckpointError, match=match):
            write_gguf(tmp_path, out)
        assert not out.exists()
