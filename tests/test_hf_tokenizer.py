"""Model.from_pretrained with a SentencePiece-style tokenizer.json (Gemma 3's: a BPE over text whose
spaces are '▁', byte fallback to <0xNN> tokens, control tokens), converted to llama.cpp's
SentencePiece vocabulary: ids equal to the `tokenizers` library's on the same tokenizer.json, from
the checkpoint directory and from the GGUF file it was converted to; the chat template renders and
generation stops at <end_of_turn>; tokenizers the vocabulary cannot express are one clear error.

The tokenizer.json is built the way transformers' SpmConverter writes Gemma's from tokenizer.model:
a vocabulary in score order (here: a BPE trained with `tokenizers` on the text below), 256 byte
tokens, and merges generated from the vocabulary (every split of a token into two tokens, ranked by
the token's score). No torch: the checkpoint's weights are random float32 written with safetensors.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("safetensors")
tokenizers = pytest.importorskip("tokenizers")

from slmkernels.model.hf import CheckpointError, read_config, write_gguf  # noqa: E402
from slmkernels.model.runtime import Model  # noqa: E402

SPACE = "\u2581"
SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>"]
TRAIN_TEXT = """Once upon a time, in a small village between the hills, there lived an old clockmaker who
repaired every watch and clock that the villagers brought to him. He worked from morning until
night, and the ticking of a hundred clocks filled his little shop with a gentle, steady rhythm.
"Time is the one thing we cannot make," he would say, "but we can keep it honest."
The quick brown fox jumps over the lazy dog. Gemma runs on phones, laptops and edge boxes.
def tokenize(text):
    return [piece for piece in text.split()]   # four spaces of indentation
Café, naïve, Straße, ünïcödé; 日本語のテキスト and 中文 text. Numbers: 12345, 3.14159, 2026-12-03.
  leading spaces, trailing spaces   ,  multiple   spaces	tabs	and
newlines.
"""
# Gemma 3's template, shortened (the roles and turn markers as the published one writes them)
TEMPLATE = ("{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' "
            "else m['role'] }}\n{{ m['content'] | trim }}<end_of_turn>\n{% endfor %}"
            "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")
FIXED = ["hello world", " leading space", "trailing spaces  ", "  two leading", "a   b\n\nc", "\n", " ", "  ", "",
         "emoji 🦊 needs bytes 👍🏽 and 👨‍👩‍👧", "<start_of_turn>user\nhi there<end_of_turn>\n<start_of_turn>model\n",
         "text<end_of_turn>text", "<h1>user-defined</h1>", "<bos> written in text", "Café naïve Straße ünïcödé",
         "日本語のテキスト 中文 ж Ω", "    return [piece for piece in text.split()]", "tab\tseparated\t\tcolumns",
         "a literal \u2581 in the text", "\u2581\u2581x", "the clockmaker repaired clocks"]


def _generate_merges(vocab: dict[str, int]) -> list[tuple[str, str]]:
    """Every split of each token into two tokens, by the token's id (its score order), longer
    left part first: the merges transformers' SpmConverter generates from a tokenizer.model."""
    merges = []
    for piece, _ in sorted(vocab.items(), key=lambda kv: kv[1]):
        local = [(piece[:k], piece[k:]) for k in range(1, len(piece)) if piece[:k] in vocab and piece[k:] in vocab]
        merges.extend(sorted(local, key=lambda lr: (-len(lr[0]), -len(lr[1]))))
    return merges


def spm_tokenizer(style: str = "gemma", n_vocab: int = 700, drop_merge: int | None = None):
    """A SentencePiece-style tokenizer (see the module docstring). style: 'gemma' (Replace ' ' -> '▁'
    normalizer, Split on ' ' pre-tokenizer, no space prefix), 'llama2' (Prepend '▁' + Replace:
    a space prefix) or 'metaspace' (a Metaspace pre-tokenizer that prepends nothing)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    t = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>"))
    t.normalizer = normalizers.Replace(" ", SPACE)
    t.train_from_iterator(TRAIN_TEXT.splitlines(keepends=True) * 4,
                          trainers.BpeTrainer(vocab_size=n_vocab, show_progress=False))
    vocab: dict[str, int] = {}
    for s in SPECIALS + [f"<0x{b:02X}>" for b in range(256)] + sorted(t.get_vocab(), key=t.get_vocab().get):
        vocab.setdefault(s, len(vocab))
    merges = _generate_merges({k: i for k, i in vocab.items() if k not in SPECIALS and not k.startswith("<0x")})
    if drop_merge is not None:
        del merges[drop_merge]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, byte_fallback=True, unk_token="<unk>", fuse_unk=True))
    if style == "gemma":
        tok.normalizer = normalizers.Replace(" ", SPACE)
        tok.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
    elif style == "llama2":
        tok.normalizer = normalizers.Sequence([normalizers.Prepend(SPACE), normalizers.Replace(" ", SPACE)])
    else:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="never", split=False)
    decode = [decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse()]
    tok.decoder = decoders.Sequence(decode + ([decoders.Strip(" ", 1, 0)] if style == "llama2" else []))
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
    tok.add_tokens([AddedToken("<h1>", normalized=False)])
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])])
    return tok


def write_checkpoint(d, tok, vocab_size: int = 840) -> None:
    """A tiny Gemma3ForCausalLM checkpoint (config.json, model.safetensors with random float32
    weights, tokenizer.json, tokenizer_config.json with Gemma's special tokens and template)."""
    from safetensors.numpy import save_file

    from slmkernels.model.hf import _expected

    d.mkdir(exist_ok=True)
    cfg = {"architectures": ["Gemma3ForCausalLM"], "hidden_size": 64, "intermediate_size": 96,
           "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
           "query_pre_attn_scalar": 16, "vocab_size": vocab_size, "rms_norm_eps": 1e-6,
           "max_position_embeddings": 256, "sliding_window": 8, "rope_theta": 10000.0,
           "layer_types": ["sliding_attention", "full_attention"], "hidden_activation": "gelu_pytorch_tanh"}
    (d / "config.json").write_text(json.dumps(cfg))
    rng = np.random.default_rng(0)
    save_file({n: (0.1 * rng.standard_normal(s)).astype(np.float32) for n, s in _expected(read_config(d)).items()},
              str(d / "model.safetensors"))
    tok.save(str(d / "tokenizer.json"))
    (d / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>",
        "add_bos_token": True, "add_eos_token": False, "chat_template": TEMPLATE}))


def varied_texts() -> list[str]:
    rng = random.Random(7)
    alphabet = list(TRAIN_TEXT) + ["🦊", "é", "ж", "\u2581", "  ", "\n", "\t", "<end_of_turn>", "<start_of_turn>",
                                   "<h1>", "<bos>"]
    words = TRAIN_TEXT.replace("\n", " ").split(" ")
    return (FIXED + ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 50))) for _ in range(120)]
            + [" ".join(rng.choice(words) for _ in range(rng.randint(1, 16))) for _ in range(120)])


@pytest.mark.parametrize("style", ["gemma", "llama2", "metaspace"])
def test_ids_equal_tokenizers_from_directory_and_gguf(tmp_path, style):
    from gguf import GGUFReader

    hf = spm_tokenizer(style)
    write_checkpoint(tmp_path, hf)
    m = Model.from_pretrained(tmp_path, save_gguf=tmp_path / "tiny.gguf")
    g = Model.from_gguf(tmp_path / "tiny.gguf")
    for text in varied_texts():
        want = hf.encode(text).ids  # with the <bos> its post-processor adds
        assert m.tokenizer.encode(text) == want, text
        assert g.tokenizer.encode(text) == want, text
        plain = hf.encode(text, add_special_tokens=False).ids
        assert m.tokenizer.encode(text, add_bos=False) == plain, text
        assert m.tokenizer.decode(plain, special=False) == hf.decode(plain, skip_special_tokens=True), text
    # the vocabulary llama.cpp reads: SentencePiece, Gemma's space-prefix setting, the types
    md = {f.name: f for f in GGUFReader(str(tmp_path / "tiny.gguf")).fields.values()}

    def val(key):
        f = md[key]
        return f.contents()

    assert val("tokenizer.ggml.model") == "llama"
    assert val("tokenizer.ggml.add_space_prefix") == (style == "llama2")
    assert val("tokenizer.ggml.add_bos_token") is True and val("tokenizer.ggml.add_eos_token") is False
    tokens, types = val("tokenizer.ggml.tokens"), val("tokenizer.ggml.token_type")
    vocab = hf.get_vocab()
    assert len(tokens) == 840 and tokens[839] == "[PAD839]" and types[839] == 5  # UNUSED beyond the tokenizer
    assert [types[vocab[t]] for t in ("<0x0A>", "<start_of_turn>", "<h1>", "clock")] == [6, 3, 4, 1]
    # a token's score is minus the rank of its first merge: "clock" after its parts
    scores = val("tokenizer.ggml.scores")
    assert scores[vocab["clock"]] < min(scores[vocab[p]] for p in ("cl", "ock"))
    assert (val("tokenizer.ggml.bos_token_id"), val("tokenizer.ggml.eos_token_id")) == (vocab["<bos>"], vocab["<eos>"])


def test_chat_template_and_end_of_turn(tmp_path):
    hf = spm_tokenizer()
    write_checkpoint(tmp_path, hf)
    m = Model.from_pretrained(tmp_path)
    messages = [{"role": "user", "content": "hello world"}]
    from slmkernels.model.generate import render_chat

    prompt = render_chat(m, messages)
    assert prompt == "<bos><start_of_turn>user\nhello world<end_of_turn>\n<start_of_turn>model\n"
    assert m.tokenizer.encode(prompt, add_bos=False) == hf.encode(prompt, add_special_tokens=False).ids
    eot = hf.token_to_id("<end_of_turn>")
    assert m.tokenizer.is_eog(eot) and not m.tokenizer.is_eog(hf.token_to_id("<start_of_turn>"))
    # the model ends its turn: generation stops there, <end_of_turn> not shown
    gen = m.chat(messages, max_new_tokens=8, logit_bias={eot: 1e4})
    assert [t.id for t in gen] == [] and gen.finish_reason == "eos" and gen.text == ""
    gen = m.chat(messages, max_new_tokens=4, logit_bias={eot: -1e4})
    assert len(list(gen)) == 4 and gen.finish_reason == "length"


def test_chat_template_files(tmp_path):
    """transformers v5 saves the template as chat_template.jinja (earlier: chat_template.json or
    tokenizer_config.json); the file wins over tokenizer_config.json, as in transformers."""
    from slmkernels.model.generate import render_chat

    write_checkpoint(tmp_path, spm_tokenizer())
    (tmp_path / "chat_template.json").write_text(json.dumps({"chat_template": "json:{{ messages[0]['content'] }}"}))
    assert render_chat(Model.from_pretrained(tmp_path), [{"role": "user", "content": "x"}]) == "json:x"
    (tmp_path / "chat_template.jinja").write_text("jinja:{{ messages[0]['content'] }}", encoding="utf-8")
    assert render_chat(Model.from_pretrained(tmp_path), [{"role": "user", "content": "x"}]) == "jinja:x"


def test_converted_vocabulary_matches_llama_cpp(tmp_path):
    """llama.cpp's own ids for the converted vocabulary. tests/data/hf_spm_tokenizer.json is
    spm_tokenizer('gemma') saved; hf_spm.gguf is write_checkpoint(d, that tokenizer) converted by
    Model.from_pretrained(d, save_gguf='hf_spm.gguf'); tests/data/tokenizer_hf_spm.json holds
    llama.cpp's ids for it (its 'how' says the command: 40 fixed texts of bench/compare_tokenizer.py
    and 100 random ones)."""
    from tokenizers import Tokenizer

    data = Path(__file__).parent / "data"
    hf = Tokenizer.from_file(str(data / "hf_spm_tokenizer.json"))
    fixture = json.loads((data / "tokenizer_hf_spm.json").read_text(encoding="utf-8"))
    write_checkpoint(tmp_path, hf)
    m = Model.from_pretrained(tmp_path)
    bad = [c["text"] for c in fixture["cases"] if m.tokenizer.encode(c["text"], add_bos=False) != c["ids"]]
    assert not bad, f"{len(bad)}/{len(fixture['cases'])} texts differ from llama.cpp, e.g. {bad[:3]!r}"
    # and llama.cpp's ids are the tokenizers library's
    assert all(hf.encode(c["text"], add_special_tokens=False).ids == c["ids"] for c in fixture["cases"])


def _edit(d, fn):
    tj = json.loads((d / "tokenizer.json").read_text(encoding="utf-8"))
    fn(tj)
    (d / "tokenizer.json").write_text(json.dumps(tj), encoding="utf-8")


def test_inexpressible_tokenizers_are_clear_errors(tmp_path):
    write_checkpoint(tmp_path, spm_tokenizer(drop_merge=40))
    out = tmp_path / "out.gguf"

    def expect(match):
        with pytest.raises(CheckpointError, match=match):
            write_gguf(tmp_path, out)
        assert not out.exists()

    # a pair that forms a token but is not a merge: SPM would merge it, the BPE never does
    expect(r"can be formed from .* which is not one of the merges")
    write_checkpoint(tmp_path, spm_tokenizer())
    good = (tmp_path / "tokenizer.json").read_text(encoding="utf-8")
    for edit, match in (
        (lambda tj: tj.update(pre_tokenizer={"type": "Metaspace", "replacement": SPACE, "prepend_scheme": "always",
                                             "split": False}), "prepend_scheme 'always' is not supported"),
        (lambda tj: tj.update(normalizer={"type": "NFKC"}), "normalizer 'NFKC'"),
        (lambda tj: tj.update(normalizer=None, pre_tokenizer=None), "neither a ByteLevel pre-tokenizer nor spaces written as"),
        (lambda tj: tj["added_tokens"][5].update(lstrip=True), "'<start_of_turn>' has lstrip"),
        (lambda tj: tj["model"].update(byte_fallback=False), "must have byte_fallback"),
        (lambda tj: tj["model"]["merges"].append(["zz", "qq"]), "names a token not in the vocabulary"),
        (lambda tj: tj.update(pre_tokenizer={"type": "Metaspace", "replacement": SPACE, "prepend_scheme": "never",
                                             "split": True}), "spans a word boundary"),
        # hostile JSON: one line each, not a traceback
        (lambda tj: tj["added_tokens"].append("<x>"), "added_tokens has the wrong JSON type"),
        (lambda tj: tj.update(model=[1]), "only BPE tokenizers are supported"),
        (lambda tj: tj["model"].update(vocab=[1]), "model.vocab has the wrong JSON type"),
        (lambda tj: tj.update(normalizer={"type": "Sequence", "normalizers": 5}), "without a list of normalizers"),
        (lambda tj: tj.update(pre_tokenizer={"type": "Sequence", "pretokenizers": 5}), "without a list of pre-tok"),
        (lambda tj: tj["model"]["vocab"].update(zz="x"), "'zz': 'x' is not a string -> id"),
    ):
        (tmp_path / "tokenizer.json").write_text(good, encoding="utf-8")
        _edit(tmp_path, edit)
        expect(match)
