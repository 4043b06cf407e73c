"""The GGUF tokenizer: llama.cpp's ids on the real model (from a committed fixture), tiny
vocabularies for both families, streaming decode, and bad tokenizer metadata."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

pytest.importorskip("tokenizers")
gguf = pytest.importorskip("gguf")

from slmkernels.model import GGUFError, GGUFReader, Tokenizer  # noqa: E402
from tiny_models import tiny_vocab, write_tiny_model  # noqa: E402
from slmkernels.model.tokenizer import BYTE, CONTROL, NORMAL, USER_DEFINED  # noqa: E402

# Reference ids from llama.cpp (llama-cpp-python 0.3.36) for SmolLM2; how it was produced is in
# the file ("how"). Regenerate with bench/compare_tokenizer.py --write-fixture.
FIXTURE = Path(__file__).parent / "data" / "tokenizer_smollm2.json"


@functools.lru_cache(maxsize=1)
def _load_tokenizer(path: Path) -> Tokenizer:
    with GGUFReader(path) as r:
        return Tokenizer.from_gguf(r)


@pytest.fixture
def smollm2_tokenizer(smollm2_path):
    return _load_tokenizer(smollm2_path)


def fixture_cases():
    return json.loads(FIXTURE.read_text(encoding="utf-8"))["cases"]


@pytest.mark.model
def test_smollm2_matches_llama_cpp(smollm2_tokenizer):
    tok = smollm2_tokenizer
    cases = fixture_cases()
    assert len(cases) >= 200
    bad = [c["text"] for c in cases if tok.encode(c["text"], add_bos=False) != c["ids"]]
    assert not bad, f"{len(bad)}/{len(cases)} texts differ from llama.cpp, e.g. {bad[:3]!r}"


# The pre-tokenizers of the other architectures (Qwen3: qwen2, Phi-4-mini: gpt-4o, SmolLM3 and
# Llama 3.2: llama-bpe), checked on SmolLM2's 49k-token BPE vocabulary written with that
# tokenizer.ggml.pre (bench/compare_tokenizer.py --pre; reference ids from llama.cpp).
@pytest.mark.model
@pytest.mark.parametrize("pre", ["gpt-4o", "qwen2", "llama-bpe"])
def test_pre_tokenizers_match_llama_cpp(smollm2_path, pre):
    fixture = json.loads((FIXTURE.parent / f"tokenizer_pre_{pre}.json").read_text(encoding="utf-8"))
    with GGUFReader(smollm2_path) as r:
        md = r.metadata
        tok = Tokenizer("gpt2", md["tokenizer.ggml.tokens"], md["tokenizer.ggml.token_type"].tolist(),
                        md["tokenizer.ggml.merges"], pre=pre, bos_id=1, eos_id=2, add_bos=False)
    bad = [c["text"] for c in fixture["cases"] if tok.encode(c["text"], add_bos=False) != c["ids"]]
    assert not bad, f"{len(bad)}/{len(fixture['cases'])} texts differ from llama.cpp, e.g. {bad[:3]!r}"


def test_gemma3_style_sentencepiece_matches_llama_cpp(tmp_path):
    """Gemma 3's tokenizer kind (SentencePiece scores, no space prefix, byte fallback, control
    tokens in text) on the tiny vocabulary of tests/tiny_models.py, against llama.cpp's ids."""
    fixture = json.loads((FIXTURE.parent / "tokenizer_spm_tiny.json").read_text(encoding="utf-8"))
    p = write_tiny_model(tmp_path / "spm.gguf", "gemma3", vocab="spm")
    with GGUFReader(p) as r:
        tok = Tokenizer.from_gguf(r)
    assert (tok.model, tok.add_space_prefix) == ("llama", False)
    bad = [c["text"] for c in fixture["cases"] if tok.encode(c["text"], add_bos=False) != c["ids"]]
    assert not bad, f"{len(bad)}/{len(fixture['cases'])} texts differ from llama.cpp, e.g. {bad[:3]!r}"
    assert all(tok.decode(c["ids"]) == c["text"] for c in fixture["cases"])


def test_gpt4o_pre_tokenizer_splits():
    """gpt-4o (Phi-4-mini): case runs split camel case and keep their contraction, digits in
    threes, newlines apart (llama.cpp's rewrite of the tokenizer.json regex)."""
    tokens, types, merges = tiny_vocab()
    tok = Tokenizer("gpt2", tokens, types, merges, pre="gpt-4o")
    pieces = [p for p, _ in tok._hf_all.pre_tokenizer.pre_tokenize_str("HelloWorld's 12345\n\nx")]
    assert pieces == ["Hello", "World's", "Ġ", "123", "45", "ĊĊ", "x"]


@pytest.mark.model
def test_smollm2_decode_round_trips(smollm2_tokenizer):
    tok = smollm2_tokenizer
    for c in fixture_cases():
        assert tok.decode(c["ids"]) == c["text"]


@pytest.mark.model
def test_smollm2_special_tokens(smollm2_tokenizer):
    tok = smollm2_tokenizer
    assert (tok.bos_id, tok.eos_id, tok.add_bos) == (1, 2, False)
    ids = tok.encode("<|im_start|>user\nHi<|im_end|>")
    assert ids[0] == 1 and ids[-1] == 2
    plain = tok.encode("<|im_start|>", special=False)
    assert 1 not in plain and tok.decode(plain) == "<|im_start|>"
    assert tok.encode("hi", add_bos=True)[0] == 1
    assert tok.token_to_piece(2) == b"<|im_end|>" and tok.token_to_piece(2, special=False) == b""
    assert tok.is_eog(2)


@pytest.mark.model
def test_smollm2_stream_decode_emoji(smollm2_tokenizer):
    tok = smollm2_tokenizer
    text = "Family: 👨‍👩‍👧‍👦 and 日本語 done"
    ids = tok.encode(text)
    dec = tok.stream_decoder()
    pieces = [dec.push(i) for i in ids] + [dec.flush()]
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)  # never a broken sequence mid-stream


# ---- tiny byte-level BPE vocabulary (gpt2 family) ----


@pytest.fixture
def tiny(tmp_path):
    p = write_tiny_model(tmp_path / "tiny.gguf")
    with GGUFReader(p) as r:
        return Tokenizer.from_gguf(r)


def test_tiny_bpe_merges(tiny):
    tokens, _, _ = tiny_vocab()
    ids = tiny.encode("hello world")
    assert [tokens[i] for i in ids] == ["hello", "Ġworld"]
    assert tiny.decode(ids) == "hello world"


def test_tiny_bytes_and_special(tiny):
    tokens, _, _ = tiny_vocab()
    ids = tiny.encode("é<|im_end|>!")
    assert ids[-2] == 2
    assert tiny.decode(ids) == "é<|im_end|>!"
    assert tiny.decode(ids, special=False) == "é!"
    assert len(tiny.encode("😀")) == 4  # four byte tokens


def test_stream_decoder_holds_back_partial_utf8(tiny):
    ids = tiny.encode("a😀b")
    assert len(ids) == 6
    dec = tiny.stream_decoder()
    out = [dec.push(i) for i in ids]
    assert out == ["a", "", "", "", "😀", "b"]
    assert dec.flush() == ""
    dec = tiny.stream_decoder()
    assert [dec.push(i) for i in ids[:3]] == ["a", "", ""]
    assert dec.flush() == "\ufffd"  # a cut sequence at the very end is replaced, not dropped silently


def test_token_to_piece_out_of_range(tiny):
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tiny.token_to_piece(10_000)


@pytest.mark.parametrize(
    "pre,text,pieces",
    [
        # smollm / starcoder: every digit alone
        ("smollm", "a 123", ["a", "Ġ", "1", "2", "3"]),
        # gpt-2: " 123" is one pre-token, so merges could join it (none here): bytes
        ("gpt-2", "a 12", ["a", "Ġ", "1", "2"]),
    ],
)
def test_pre_tokenizer_variants(tmp_path, pre, text, pieces):
    p = write_tiny_model(tmp_path / "t.gguf", override=lambda w: w.add_string("tokenizer.ggml.pre", pre))
    with GGUFReader(p) as r:
        tok = Tokenizer.from_gguf(r)
    tokens, _, _ = tiny_vocab()
    assert [tokens[i] for i in tok.encode(text)] == pieces


def test_all_pre_tokenizers_build(tmp_path):
    from slmkernels.model.tokenizer import PRE_TOKENIZER_REGEXES

    tokens, types, merges = tiny_vocab()
    for pre in PRE_TOKENIZER_REGEXES:
        tok = Tokenizer("gpt2", tokens, types, merges, pre=pre)
        text = "Hello world 12345, it's   x\n\ny"
        assert tok.decode(tok.encode(text, add_bos=False)) == text, pre


def test_user_defined_tokens_are_always_parsed():
    tokens, types, merges = tiny_vocab()
    tokens = tokens + ["<tool>"]
    types = types + [USER_DEFINED]
    tok = Tokenizer("gpt2", tokens, types, merges, pre="default")
    assert tok.encode("a<tool>b", special=False)[1] == len(tokens) - 1
    assert tok.decode(tok.encode("a<tool>b")) == "a<tool>b"


# ---- SentencePiece-style ("llama") ----


def spm_vocab():
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [2, CONTROL, CONTROL] + [BYTE] * 256
    scores = [0.0] * len(tokens)
    for piece, score in [("▁", -1.0), ("h", -2.0), ("e", -2.0), ("l", -2.0), ("o", -2.0), ("▁h", -3.0),
                         ("ll", -1.5), ("▁he", -2.5), ("▁hell", -1.2), ("▁hello", -0.5), ("w", -2.0), ("r", -2.0),
                         ("d", -2.0), ("▁w", -3.0), ("or", -3.0), ("▁wor", -4.0), ("ld", -3.0), ("▁world", -0.7)]:
        tokens.append(piece)
        types.append(NORMAL)
        scores.append(score)
    return tokens, types, scores


def test_spm_encode_decode():
    tokens, types, scores = spm_vocab()
    tok = Tokenizer("llama", tokens, types, scores=scores, bos_id=1, eos_id=2)
    assert tok.add_bos
    ids = tok.encode("hello world")
    assert ids[0] == 1
    assert [tokens[i] for i in ids[1:]] == ["▁hello", "▁world"]
    assert tok.decode(ids[1:]) == "hello world"
    # unknown characters fall back to byte tokens
    ids = tok.encode("hé", add_bos=False)
    assert [tokens[i] for i in ids] == ["▁h", "<0xC3>", "<0xA9>"]
    assert tok.decode(ids) == "hé"
    # special tokens in text, and a space prefix after them as llama.cpp does
    ids = tok.encode("</s>hello", add_bos=False)
    assert ids[0] == 2 and tokens[ids[1]] == "▁hello"


def test_spm_from_gguf(tmp_path):
    tokens, types, scores = spm_vocab()

    def o(w):
        w.add_string("tokenizer.ggml.model", "llama")
        w.add_string("tokenizer.ggml.pre", "default")
        w.add_array("tokenizer.ggml.tokens", tokens)
        w.add_array("tokenizer.ggml.token_type", types)
        w.add_array("tokenizer.ggml.scores", scores)
        w.add_bool("tokenizer.ggml.add_bos_token", True)

    p = write_tiny_model(tmp_path / "spm.gguf", override=o)
    with GGUFReader(p) as r:
        tok = Tokenizer.from_gguf(r)
    assert tok.model == "llama"
    # the space prefix stays after a shown <s> (as llama.cpp's detokenize), not at the start
    assert tok.decode(tok.encode("hello world")) == "<s> hello world"
    assert tok.decode(tok.encode("hello world"), special=False) == "hello world"


# ---- bad tokenizer metadata ----

BAD = {
    "unknown tokenizer model": (lambda w: w.add_string("tokenizer.ggml.model", "rwkv"), "unsupported tokenizer model"),
    "unknown pre-tokenizer": (lambda w: w.add_string("tokenizer.ggml.pre", "nonesuch"), "unsupported pre-tokenizer"),
    "tokens not strings": (lambda w: w.add_array("tokenizer.ggml.tokens", [1, 2, 3]), "wrong type"),
    "bos id out of range": (lambda w: w.add_uint32("tokenizer.ggml.bos_token_id", 10**6), "outside the vocabulary"),
    "bos id as string": (lambda w: w.add_string("tokenizer.ggml.bos_token_id", "1"), "wrong type"),
    "token_type length differs": (lambda w: w.add_array("tokenizer.ggml.token_type", [1, 1]), "entries for"),
    "merge without a space": (lambda w: w.add_array("tokenizer.ggml.merges", ["he"]), "two tokens separated"),
    "llama model without scores": (lambda w: w.add_string("tokenizer.ggml.model", "llama"), "needs tokenizer.ggml.scores"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_tokenizer_metadata(tmp_path, case):
    override, match = BAD[case]
    p = write_tiny_model(tmp_path / "bad.gguf", override=override)
    with GGUFReader(p) as r, pytest.raises(GGUFError, match=match):
        Tokenizer.from_gguf(r)
