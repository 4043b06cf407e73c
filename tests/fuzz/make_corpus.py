"""Writes the fuzz seed corpus (tests/fuzz/corpus/): small valid models and broken files.

    python tests/fuzz/make_corpus.py          # needs the gguf package; rewrites corpus/

Valid seeds are whole models the loader accepts (every architecture, several weight formats,
tied and untied heads, biases, fused Q/K/V, sliding window and Gemma 3's local/global pattern,
rope scaling, frequency factors and LongRoPE, NoPE layers, head_dim unlike hidden / n_heads,
both tokenizer kinds), written by the suite's one model writer (tests/tiny_models.py) and kept
tiny (hidden 32, few layers, a 40-token vocabulary) so each is a few KiB and the fuzzer runs
fast. Broken seeds are the malformed-file and CVE corpora of tests/test_gguf_reader.py and
model-level breakage (a missing tensor, a shape that disagrees with the metadata, head counts
that do not divide, a layer pattern or head size that does not fit the tensors, ...). The files are
checked in; this script is how they were made.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
sys.path.insert(0, str(HERE.parent))  # tests/: tiny_models, test_gguf_reader


def write_model(path: Path, arch: str = "llama", **kw) -> Path:
    """One tiny seed through the test suite's one model writer (tests/tiny_models.py): hidden
    32, one layer, a 40-token vocabulary, Q8_0 weights unless a seed says otherwise."""
    from tiny_models import write_tiny_model

    base = dict(n_layers=1, hidden=32, n_heads=2, n_kv=1, ffn=32, context=64, fmt="q8_0", vocab="mini")
    base.update(kw)
    return Path(write_tiny_model(path, arch, **base))


VALID = {
    "llama_q8_0": dict(),
    "llama_q4_0_untied": dict(fmt="q4_0", tied=False, formats={"ffn_up.weight": "q4_1"}),  # gate/up formats differ
    "llama_f16_window_spm": dict(fmt="f16", window=4, vocab="mini-spm"),
    "llama_q5_1_linear_freqs": dict(fmt="q5_1", rope_scaling=dict(type="linear", factor=2.0, original_context=32),
                                    rope_freqs=True),
    "llama_q5_0_headdim": dict(fmt="q5_0", head_dim=32, n_heads=2, n_kv=2),
    "llama_q4_k_down": dict(ffn=256, down_fmt="q4_k"),
    "llama_q6_k_down": dict(fmt="f16", ffn=256, down_fmt="q6_k", tied=False),
    "llama_bias_fused_qkv": dict(fmt="f16", bias=True, fused_qkv=True),
    "qwen2_bf16_bias": dict(arch="qwen2", fmt="bf16", n_layers=2),
    "qwen3_q8_0_headdim": dict(arch="qwen3", head_dim=32, n_layers=2),
    "granite_f32_yarn": dict(arch="granite", fmt="f32", rope_scaling=dict(type="yarn", factor=2.0, original_context=32)),
    "granite_kv_array_bias": dict(arch="granite", kv_array=True, bias=True, n_layers=2),
    "mistral_q8_0_untied": dict(arch="mistral", tied=False, window=8),
    "gemma3_q8_0_pattern": dict(arch="gemma3", n_layers=3, head_dim=32, window=4, swa_pattern=2, final_softcap=30.0),
    "phi3_f16_longrope": dict(arch="phi3", fmt="f16", rope_dim=12, longrope=True, n_heads=2, n_kv=2, head_dim=16),
    "smollm3_q8_0": dict(arch="smollm3", n_layers=4),
}

MODEL_BROKEN = {
    "missing_tensor": dict(skip_tensors=("blk.0.ffn_down.weight",)),
    "missing_norm": dict(skip_tensors=("output_norm.weight",)),
    "shape_mismatch": dict(tensor_shapes={"blk.0.attn_k.weight": (32, 32)}),
    "heads_not_dividing": dict(n_heads=2, n_kv=2, override=lambda w: w.add_uint32("llama.attention.head_count_kv", 3)),
    "unknown_arch": dict(arch="gpt9"),
    "bad_scaling": dict(rope_scaling=dict(type="longrope", factor=2.0)),
    "odd_rope_dim": dict(override=lambda w: w.add_uint32("llama.rope.dimension_count", 7)),
    "eps_nan": dict(override=lambda w: w.add_float32("llama.attention.layer_norm_rms_epsilon", float("nan"))),
    "block_count_string": dict(override=lambda w: w.add_string("llama.block_count", "1")),
    "bad_tokenizer": dict(override=lambda w: w.add_string("tokenizer.ggml.model", "wordpiece")),
    # metadata whose layer pattern or head sizes do not fit the tensors
    "qwen3_key_length_vs_q": dict(arch="qwen3", head_dim=32, skip_keys=("qwen3.attention.value_length",
                                                                          "qwen3.rope.dimension_count"),
                                  override=lambda w: w.add_uint32("qwen3.attention.key_length", 16)),
    "gemma3_q_norm_size": dict(arch="gemma3", head_dim=32, tensor_shapes={"blk.0.attn_q_norm.weight": (16,)}),
    "gemma3_pattern_length": dict(arch="gemma3", n_layers=2, window=4,
                                  override=lambda w: w.add_array("gemma3.attention.sliding_window_pattern", [True])),
    "phi3_fused_up_size": dict(arch="phi3", tensor_shapes={"blk.0.ffn_up.weight": (32, 32)}),
    "phi3_long_factors_size": dict(arch="phi3", rope_dim=8, longrope=True, tensor_shapes={"rope_factors_long.weight": (3,)}),
    "head_count_array_vs_q": dict(n_layers=2, n_heads=2, n_kv=1,
                                  override=lambda w: w.add_array("llama.attention.head_count", [2, 1])),
    "kv_heads_differ": dict(arch="granite", n_layers=2, n_heads=2, n_kv=2,
                            override=lambda w: w.add_array("granite.attention.head_count_kv", [2, 1])),
}


def main() -> None:
    import test_gguf_reader as t  # the malformed-file and CVE builders

    CORPUS.mkdir(exist_ok=True)
    for f in CORPUS.iterdir():
        f.unlink()
    for name, kw in VALID.items():
        write_model(CORPUS / f"valid_{name}.gguf", **kw)
    for name, kw in MODEL_BROKEN.items():
        write_model(CORPUS / f"model_{name}.gguf", **kw)
    slug = lambda s: "".join(c if c.isalnum() else "_" for c in s.lower()).strip("_")  # noqa: E731
    for name, (data, _match) in t.MALFORMED.items():
        (CORPUS / f"malformed_{slug(name)}.gguf").write_bytes(data)
    for name, data in t.CVES.items():
        (CORPUS / f"cve_{slug(name)}.gguf").write_bytes(data)
    (CORPUS / "reader_base.gguf").write_bytes(t.base())
    # a valid model cut inside its tensor data, and inside its metadata
    full = (CORPUS / "valid_llama_q8_0.gguf").read_bytes()
    (CORPUS / "truncated_in_data.gguf").write_bytes(full[: len(full) - 100])
    (CORPUS / "truncated_in_metadata.gguf").write_bytes(full[:300])
    # a tensor whose type is relabelled (Q8_0 data declared Q4_0, F32 declared F16): the data
    # no longer tiles the data section; one tensor in the middle, and the last one
    from slmkernels.model import GGUFReader

    with GGUFReader(CORPUS / "valid_llama_q8_0.gguf") as r:
        last = max(r.tensors.values(), key=lambda ti: ti.offset)
    (CORPUS / "relabelled_q8_0_as_q4_0.gguf").write_bytes(t.relabel(full, "blk.0.attn_q.weight", 2))
    (CORPUS / "relabelled_last_tensor.gguf").write_bytes(
        t.relabel(full, last.name, {"Q8_0": 2, "F32": 1}[last.type_name]))
    total = sum(f.stat().st_size for f in CORPUS.iterdir())
    print(f"{len(list(CORPUS.iterdir()))} files, {total} bytes")


if __name__ == "__main__":
    main()
