"""Compare our GGUF tokenizer with llama.cpp's on a varied text sample.

The reference is llama.cpp's tokenizer through llama-cpp-python, run in another interpreter
(``--peer-python``, or SLMK_PEER_PYTHON in the environment) so this package never imports it:
``Llama(model_path, vocab_only=True).tokenize(text_bytes, add_bos=False, special=True)``.

    python bench/compare_tokenizer.py [--model PATH] [--write-fixture tests/data/tokenizer_smollm2.json]

Prints one line per text that differs and a summary (texts agreeing exactly, round trips).
``--write-fixture`` stores the reference ids so tests/test_tokenizer.py can check against them
without llama-cpp-python.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# A varied sample: plain English, contractions, digits and numbers, whitespace runs, tabs and
# newlines, code, unicode (accents, CJK, Cyrillic, Arabic, Devanagari, emoji with ZWJ and skin
# tones), special tokens written in text, and edge cases (empty, lone spaces).
SAMPLES = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "I'm sure you'll see they've said it's done; we'd go, I'd've gone.",
    "DON'T SHOUT. It's O'Reilly's book.",
    "1234567890 3.14159 1,000,000 2024-06-01 0x1F 1e-5 -42 +7",
    "Version 12.3.45 costs $1,299.99 (about 15% off) on 31/12/2025.",
    "   leading spaces and trailing spaces   ",
    "multiple     spaces\tand\ttabs\t\tand\n\nnewlines\n\n\n  indented",
    "\n",
    " ",
    "  ",
    "a\r\nb\rc",
    "def fib(n: int) -> int:\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; } // dot",
    "<div class=\"x\">&amp; <b>bold</b></div>",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
    "x = {'a': [1, 2, 3], \"b\": None}  # dict",
    "Café naïve résumé façade Ångström über straße",
    "日本語のテキストです。東京は日本の首都です。",
    "中文测试：你好，世界！我们今天学习分词。",
    "한국어 텍스트 토큰화 테스트",
    "Привет, мир! Как дела?",
    "مرحبا بالعالم",
    "नमस्ते दुनिया",
    "Emoji: 😀👍🏽👨‍👩‍👧‍👦🇫🇷 ❤️ ✨",
    "Math: ∑_{i=1}^{n} x_i² ≤ ∞ → α β γ",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>text after eot",
    "Mixed<|im_end|>inline special",
    "URL https://example.com/path?q=1&r=two#frag and email a.b@c.io",
    "camelCaseIdentifier snake_case_name SCREAMING_CASE kebab-case",
    "''' \"\"\" `backticks` ~tilde~ ^caret^ |pipe| \\backslash\\",
    "!!!??? ... --- *** ### @@@",
    "The year 1999 and 20000 and 123456789012345",
    "tab\tseparated\tvalues\t1\t2\t3",
    "Zero-width\u200bspace and non\u00a0breaking",
    "A" * 200,
    "ab " * 60,
    "ﬁ ligature, fullwidth ＡＢＣ１２３, combining é (e\u0301)",
    "Ümlaut ÄÖÜ äöü ß — en–dash “quotes” ‘single’ … ellipsis",
]

# Alphabet for --random: pieces that stress the pre-tokenizer regexes (apostrophes, digits,
# whitespace kinds, punctuation, letters of several scripts, marks, emoji, special tokens).
_ALPHABET = (
    list("abcXYZ019 '\t\n\r.,;:!?-_()[]{}<>/\\\"$%^&*+=~|`#@")
    + ["'s", "'ll", "'T", "  ", "   ", "\n\n", " \n", "éàü", "ß", "日本", "中文", "한", "я", "ع", "न", "\u0301",
       "😀", "👍🏽", "‍", "🇫🇷", "™", "½", "²", "٣", "Ⅻ", "\u00a0", "\u2003", "\u200b", "<|im_end|>", "<|endoftext|>"]
)


def random_texts(n: int, seed: int) -> list[str]:
    import random

    rng = random.Random(seed)
    return ["".join(rng.choice(_ALPHABET) for _ in range(rng.randint(1, 40))) for _ in range(n)]


_PEER = r"""
import json, sys
from llama_cpp import Llama
args = json.load(sys.stdin)
llm = Llama(model_path=args["model"], vocab_only=True, verbose=False)
import llama_cpp
out = [llm.tokenize(t.encode("utf-8"), add_bos=False, special=True) for t in args["texts"]]
json.dump({"version": llama_cpp.__version__, "ids": out}, sys.stdout)
"""


def reference_ids(model: Path, texts: list[str], peer_python: str) -> dict:
    res = subprocess.run(
        [peer_python, "-c", _PEER],
        input=json.dumps({"model": str(model), "texts": texts}),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(res.stdout)


def vocab_only_copy(src: Path, pre: str, dst: Path) -> Path:
    """A GGUF with src's vocabulary and merges, `pre` as its pre-tokenizer, tiny hparams and no
    tensors (llama.cpp's vocab_only load reads no tensor)."""
    import gguf

    from slmkernels.model import GGUFReader

    with GGUFReader(src) as r:
        md = r.metadata
        w = gguf.GGUFWriter(str(dst), "llama")
        w.add_block_count(1)
        w.add_context_length(128)
        w.add_embedding_length(64)
        w.add_feed_forward_length(64)
        w.add_head_count(1)
        w.add_layer_norm_rms_eps(1e-5)
        w.add_tokenizer_model(md["tokenizer.ggml.model"])
        w.add_tokenizer_pre(pre)
        w.add_token_list(md["tokenizer.ggml.tokens"])
        w.add_token_types(md["tokenizer.ggml.token_type"].tolist())
        w.add_token_merges(md["tokenizer.ggml.merges"])
        w.add_bos_token_id(md["tokenizer.ggml.bos_token_id"])
        w.add_eos_token_id(md["tokenizer.ggml.eos_token_id"])
        w.add_add_bos_token(False)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
    return dst


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None,
                    help="default: SmolLM2-135M-Instruct.Q4_1.gguf from $SLMK_MODEL_DIR or ../shared/models")
    ap.add_argument("--peer-python", default=os.environ.get("SLMK_PEER_PYTHON"),
                    help="a Python with llama-cpp-python installed (default: $SLMK_PEER_PYTHON)")
    ap.add_argument("--write-fixture", type=Path, default=None)
    ap.add_argument("--random", type=int, default=0, help="also compare N random texts (seeded)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--pre",
        default=None,
        help="rewrite the model's vocabulary into a vocab-only GGUF with this tokenizer.ggml.pre "
        "(e.g. llama-bpe, qwen2, gpt-2, default), to check our regexes for other pre-tokenizers",
    )
    ap.add_argument("--files", nargs="*", type=Path, default=[], help="also compare the whole text of these files")
    args = ap.parse_args()
    if not args.peer_python:
        ap.error("--peer-python (or SLMK_PEER_PYTHON) is required: a Python with llama-cpp-python")
    if args.model is None:
        from slmkernels.model.files import SMOLLM2, find_model

        args.model, why = find_model(SMOLLM2, anchors=[ROOT])
        if args.model is None:
            ap.error(f"--model: {why}")

    from slmkernels.model import GGUFReader, Tokenizer

    tmpdir = None
    if args.pre:
        import tempfile

        tmpdir = tempfile.TemporaryDirectory()
        args.model = vocab_only_copy(args.model, args.pre, Path(tmpdir.name) / f"vocab-{args.pre}.gguf")
    with GGUFReader(args.model) as r:
        tok = Tokenizer.from_gguf(r)
    texts = SAMPLES + random_texts(args.random, args.seed)
    texts += [f.read_text(encoding="utf-8", errors="replace") for f in args.files]
    peer = reference_ids(args.model, texts, args.peer_python)
    ref = peer["ids"]
    agree = round_trip = 0
    for text, want in zip(texts, ref):
        got = tok.encode(text, add_bos=False, special=True)
        ok = got == want
        agree += ok
        rt = tok.decode(want) == text
        round_trip += rt
        if not ok:
            print(f"DIFF {text[:50]!r}\n  ours: {got[:24]}\n  ref:  {want[:24]}")
        if not rt:
            print(f"ROUND TRIP {text[:50]!r} -> {tok.decode(want)[:50]!r}")
    n = len(texts)
    n_tok = sum(len(x) for x in ref)
    print(f"model {args.model.name} (pre {tok.pre}): {agree}/{n} texts ({len(SAMPLES)} fixed + {args.random} random, seed {args.seed} + {len(args.files)} files) tokenized identically to llama.cpp ({n_tok} reference tokens); "
          f"decode(reference ids) == text for {round_trip}/{n}")
    if args.write_fixture:
        fixture = {
            "how": (
                "Generated by bench/compare_tokenizer.py --write-fixture: reference ids from llama.cpp's "
                "tokenizer via llama-cpp-python "
                + peer["version"]
                + " (Llama(model_path, vocab_only=True).tokenize(text.encode('utf-8'), add_bos=False, "
                "special=True)) on the model below; command: python bench/compare_tokenizer.py "
                + " ".join(sys.argv[1:])
            ),
            "model": args.model.name,
            "sha256": hashlib.sha256(args.model.read_bytes()).hexdigest(),
            "cases": [{"text": t, "ids": ids} for t, ids in zip(texts, ref)],
        }
        args.write_fixture.parent.mkdir(parents=True, exist_ok=True)
        cases = fixture.pop("cases")
        head = json.dumps(fixture, ensure_ascii=False, indent=1)[:-2]  # without the closing "\n}"
        lines = ",\n  ".join(json.dumps(c, ensure_ascii=False) for c in cases)
        args.write_fixture.write_text(head + ',\n "cases": [\n  ' + lines + "\n ]\n}\n", encoding="utf-8")
        print(f"wrote {args.write_fixture}")
    return 0 if agree == n else 1


if __name__ == "__main__":
    sys.exit(main())
