"""Writes the fuzz seed corpus (tests/fuzz/corpus/): small valid models and broken files.

    python tests/fuzz/make_corpus.py          # needs the gguf package; rewrites corpus/

Valid seeds are whole models the loader accepts (every architecture, several weight formats,
tied and untied heads, biases, sliding window, rope scaling and frequency factors, head_dim
unlike hidden / n_heads, both tokenizer kinds), kept tiny (hidden 32, one layer, a 40-token
vocabulary) so each is a few KiB and the fuzzer runs fast. Broken seeds are the malformed-file
and CVE corpora of tests/test_gguf_reader.py and model-level breakage (a missing tensor, a
shape that disagrees with the metadata, head counts that do not divide, ...). The files are
checked in; this script is how they were made.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"


def _vocab(n: int) -> list[str]:
    from slmkernels.model.tokenizer import BYTE_TO_UNICODE

    toks = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    toks += [BYTE_TO_UNICODE[b] for b in range(ord("a"), ord("a") + n - len(toks) - 3)]
    toks += ["ab", "abc", "Ġa"]
    return toks


def write_model(
    path: Path,
    arch: str = "llama",
    *,
    fmt: str = "q8_0",
    n_layers: int = 1,
    hidden: int = 32,
    n_heads: int = 2,
    n_kv: int = 1,
    head_dim: int | None = None,
    ffn: int = 32,
    n_vocab: int = 40,
    tied: bool = True,
    window: int = 0,
    rope_scaling: str | None = None,
    rope_freqs: bool = False,
    tokenizer: str = "gpt2",
    down_fmt: str | None = None,
    seed: int = 0,
    drop_tensor: str | None = None,
    shape_override: dict[str, tuple[int, int]] | None = None,
    extra_kv=None,
) -> Path:
    """One tiny model; weight matrices in `fmt` (a block format or f16/f32; ffn_down in
    `down_fmt`, for the K-quants whose 256-element rows need ffn = 256), norms in f32."""
    import gguf

    import slmkernels as sk

    rng = np.random.default_rng(seed)
    hd = head_dim or hidden // n_heads
    w = gguf.GGUFWriter(os.fspath(path), arch)
    a = arch + "."
    w.add_uint32(a + "block_count", n_layers)
    w.add_uint32(a + "context_length", 64)
    w.add_uint32(a + "embedding_length", hidden)
    w.add_uint32(a + "feed_forward_length", ffn)
    w.add_uint32(a + "attention.head_count", n_heads)
    w.add_uint32(a + "attention.head_count_kv", n_kv)
    if head_dim is not None:
        w.add_uint32(a + "attention.key_length", hd)
        w.add_uint32(a + "attention.value_length", hd)
    w.add_float32(a + "attention.layer_norm_rms_epsilon", 1e-5)
    w.add_float32(a + "rope.freq_base", 10000.0)
    w.add_uint32(a + "rope.dimension_count", hd)
    if window:
        w.add_uint32(a + "attention.sliding_window", window)
    if rope_scaling:
        w.add_string(a + "rope.scaling.type", rope_scaling)
        w.add_float32(a + "rope.scaling.factor", 2.0)
        w.add_uint32(a + "rope.scaling.original_context_length", 32)
    if arch == "granite":
        w.add_float32(a + "embedding_scale", 3.0)
        w.add_float32(a + "residual_scale", 0.5)
        w.add_float32(a + "attention.scale", 0.2)
        w.add_float32(a + "logit_scale", 4.0)
    toks = _vocab(n_vocab)
    w.add_string("tokenizer.ggml.model", tokenizer)
    w.add_array("tokenizer.ggml.tokens", toks)
    w.add_array("tokenizer.ggml.token_type", [3, 3, 3] + [1] * (len(toks) - 3))
    if tokenizer == "gpt2":
        w.add_string("tokenizer.ggml.pre", "smollm")
        w.add_array("tokenizer.ggml.merges", ["a b", "ab c", "Ġ a"])
    else:
        w.add_array("tokenizer.ggml.scores", [0.0] * 3 + [-float(i) for i in range(len(toks) - 3)])
    w.add_uint32("tokenizer.ggml.bos_token_id", 1)
    w.add_uint32("tokenizer.ggml.eos_token_id", 2)
    w.add_string(
        "tokenizer.chat_template",
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}",
    )
    if extra_kv is not None:
        extra_kv(w)

    def mat(name: str, rows: int, cols: int, f: str = fmt) -> None:
        if name == drop_tensor:
            return
        rows, cols = (shape_override or {}).get(name, (rows, cols))
        x = (0.3 * rng.standard_normal((rows, cols))).astype(np.float32)
        if f == "f32":
            w.add_tensor(name, x)
        elif f == "f16":
            w.add_tensor(name, x.astype(np.float16))
        else:
            q = sk.quantize(x, f)
            w.add_tensor(name, np.asarray(q.data).reshape(rows, -1), raw_dtype=gguf.GGMLQuantizationType[f.upper()])

    def vec(name: str, n: int, center: float = 1.0) -> None:
        if name == drop_tensor:
            return
        w.add_tensor(name, (center + 0.1 * rng.standard_normal(n)).astype(np.float32))

    mat("token_embd.weight", len(toks), hidden)
    for i in range(n_layers):
        p = f"blk.{i}."
        vec(p + "attn_norm.weight", hidden)
        mat(p + "attn_q.weight", n_heads * hd, hidden)
        mat(p + "attn_k.weight", n_kv * hd, hidden)
        mat(p + "attn_v.weight", n_kv * hd, hidden)
        if arch == "qwen2":
            vec(p + "attn_q.bias", n_heads * hd, 0.0)
            vec(p + "attn_k.bias", n_kv * hd, 0.0)
            vec(p + "attn_v.bias", n_kv * hd, 0.0)
        mat(p + "attn_output.weight", hidden, n_heads * hd)
        vec(p + "ffn_norm.weight", hidden)
        mat(p + "ffn_gate.weight", ffn, hidden)
        mat(p + "ffn_up.weight", ffn, hidden, "q4_1" if fmt == "q4_0" else fmt)  # gate/up of different formats
        mat(p + "ffn_down.weight", hidden, ffn, down_fmt or fmt)
    vec("output_norm.weight", hidden)
    if rope_freqs:
        vec("rope_freqs.weight", hd // 2)
    if not tied:
        mat("output.weight", len(toks), hidden)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


VALID = {
    "llama_q8_0": dict(),
    "llama_q4_0_untied": dict(fmt="q4_0", tied=False),
    "llama_f16_window_spm": dict(fmt="f16", window=4, tokenizer="llama"),
    "llama_q5_1_linear_freqs": dict(fmt="q5_1", rope_scaling="linear", rope_freqs=True),
    "llama_q5_0_headdim": dict(fmt="q5_0", head_dim=32, n_heads=2, n_kv=2),
    "llama_q4_k_down": dict(ffn=256, down_fmt="q4_k"),
    "llama_q6_k_down": dict(fmt="f16", ffn=256, down_fmt="q6_k", tied=False),
    "qwen2_bf16_bias": dict(arch="qwen2", fmt="bf16", n_layers=2),
    "granite_f32_yarn": dict(arch="granite", fmt="f32", rope_scaling="yarn"),
    "mistral_q8_0_untied": dict(arch="mistral", tied=False, window=8),
}

MODEL_BROKEN = {
    "missing_tensor": dict(drop_tensor="blk.0.ffn_down.weight"),
    "missing_norm": dict(drop_tensor="output_norm.weight"),
    "shape_mismatch": dict(shape_override={"blk.0.attn_k.weight": (32, 32)}),
    "heads_not_dividing": dict(n_heads=2, n_kv=2, extra_kv=lambda w: w.add_uint32("llama.attention.head_count_kv", 3)),
    "unknown_arch": dict(arch="gpt9"),
    "bad_scaling": dict(rope_scaling="longrope"),
    "odd_rope_dim": dict(extra_kv=lambda w: w.add_uint32("llama.rope.dimension_count", 7)),
    "eps_nan": dict(extra_kv=lambda w: w.add_float32("llama.attention.layer_norm_rms_epsilon", float("nan"))),
    "block_count_string": dict(extra_kv=lambda w: w.add_string("llama.block_count", "1")),
    "bad_tokenizer": dict(tokenizer="wordpiece"),
}


def main() -> None:
    sys.path.insert(0, str(HERE.parent))
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
    total = sum(f.stat().st_size for f in CORPUS.iterdir())
    print(f"{len(list(CORPUS.iterdir()))} files, {total} bytes")


if __name__ == "__main__":
    main()
