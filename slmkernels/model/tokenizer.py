"""The tokenizer stored in a GGUF file's metadata.

Two families, as llama.cpp names them in ``tokenizer.ggml.model``:

- ``gpt2``: byte-level BPE (tokens + merges). Built as a ``tokenizers.Tokenizer``: a BPE model
  over the vocabulary and merges, a pre-tokenizer that applies the regex list llama.cpp uses
  for ``tokenizer.ggml.pre`` (each regex splits the pieces of the previous one and keeps both
  matches and the text between them, as llama.cpp's ``unicode_regex_split`` does), then the
  GPT-2 byte-to-unicode mapping. Control and user-defined tokens are added tokens, matched in
  the text before the regexes, as llama.cpp's ``tokenizer_st_partition`` does.
- ``llama``: SentencePiece-style (tokens + scores, ``<0xXX>`` byte tokens, U+2581 for spaces),
  tokenized by llama.cpp's algorithm (merge the adjacent pair whose concatenation is the
  highest-scoring token, leftmost first; unknown pieces fall back to byte tokens), in Python.

Decoding is ours: each token to its bytes, then UTF-8. :class:`StreamDecoder` emits text only
up to the last complete UTF-8 sequence, so a character split over two tokens is never shown
broken.
"""

from __future__ import annotations

import codecs
import heapq
import re
from typing import Iterable, Sequence

from .gguf_reader import GGUFError, GGUFReader, GGUFValueType, INTEGER_TYPES

__all__ = ["Tokenizer", "StreamDecoder", "PRE_TOKENIZER_REGEXES"]

# llama.cpp token types (tokenizer.ggml.token_type; llama.h enum llama_token_type)
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

# Pre-tokenizer regexes per tokenizer.ggml.pre, as published in llama.cpp's
# src/llama-vocab.cpp (struct llm_tokenizer_bpe constructor; the llama3/qwen2 ones are the
# case-insensitive-free rewrites of the `pre_tokenizer` regexes in the models' HF
# tokenizer.json). Applied in order, each splitting the pieces left by the previous one.
_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
_LLAMA3 = (
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2 = (
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# gpt-4o (o200k; Phi-4-mini): llama.cpp's rewrite of the `pre_tokenizer` regex of Xenova/gpt-4o's
# tokenizer.json (upper/lower-case letter runs as lookaheads over \p{L}; the original's \p{M}
# marks are not letters here, which is where the two part: a combining mark before 's)
_GPT4O = (
    r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?"
    r"|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_DEFAULT = [r"[\p{P}\$\+<=>\^~\|]+", _GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"]
PRE_TOKENIZER_REGEXES: dict[str, list[str]] = {
    "default": _DEFAULT,
    "gpt-2": [_GPT2],
    "gpt2": [_GPT2],
    "mpt": [_GPT2],
    "olmo": [_GPT2],
    "jais": [_GPT2],
    "smollm": [r"\p{N}", _GPT2],
    "starcoder": [r"\p{N}", _GPT2],
    "refact": [r"\p{N}", _GPT2],
    "command-r": [r"\p{N}", _GPT2],
    "codeshell": [r"\p{N}", _GPT2],
    "exaone": [r"\p{N}", _GPT2],
    "llama-bpe": [_LLAMA3],
    "llama3": [_LLAMA3],
    "llama-v3": [_LLAMA3],
    "dbrx": [_LLAMA3],
    "smaug-bpe": [_LLAMA3],
    "qwen2": [_QWEN2],
    "deepseek-r1-qwen": [_QWEN2],
    "megrez": [_QWEN2],
    "kormo": [_QWEN2],
    "f2llmv2": [_QWEN2],
    "gpt-4o": [_GPT4O],
    "llama4": [_GPT4O],
    "kanana2": [_GPT4O],
    "talkie": [_GPT4O],
    "granite-docling": [_GPT2],
    "trillion": [_GPT2],
    "exaone4": [_GPT2],
    "stablelm2": [_QWEN2],
    "falcon": [r"[\p{P}\$\+<=>\^~\|`]+", _GPT2, r"[0-9][0-9][0-9]"],
}
# Pre types for which llama.cpp sets ignore_merges (a whole pre-token that is itself in the
# vocabulary is emitted as one token without running the merges), as HF's tokenizer.json
# "ignore_merges": true for Llama 3.
_IGNORE_MERGES = {"llama-bpe", "llama3", "llama-v3"}
# Pre types that llama.cpp makes add BOS by default (overridden by tokenizer.ggml.add_bos_token).
_ADD_BOS_DEFAULT = {"llama-bpe", "llama3", "llama-v3"}

SPM_SPACE = "\u2581"  # the "▁" SentencePiece uses for a space


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (openai/gpt-2 encoder.py)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table = {b: chr(b) for b in keep}
    n = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + n)
            n += 1
    return table


BYTE_TO_UNICODE = _bytes_to_unicode()
UNICODE_TO_BYTE = {c: b for b, c in BYTE_TO_UNICODE.items()}
_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")


class Tokenizer:
    """encode / decode / token_to_piece for a GGUF vocabulary; see the module docstring."""

    def __init__(
        self,
        model: str,
        tokens: Sequence[str],
        token_types: Sequence[int] | None = None,
        merges: Sequence[str] | None = None,
        scores: Sequence[float] | None = None,
        pre: str = "default",
        bos_id: int | None = None,
        eos_id: int | None = None,
        eot_id: int | None = None,
        add_bos: bool | None = None,
        add_eos: bool = False,
        add_space_prefix: bool = True,
    ) -> None:
        n = len(tokens)
        if n == 0:
            raise GGUFError("tokenizer.ggml.tokens is empty")
        self.model = model
        self.tokens = list(tokens)
        self.token_types = [NORMAL] * n if token_types is None else [int(t) for t in token_types]
        if len(self.token_types) != n:
            raise GGUFError(f"tokenizer.ggml.token_type has {len(self.token_types)} entries for {n} tokens")
        for name, tid in (("bos", bos_id), ("eos", eos_id), ("eot", eot_id)):
            if tid is not None and not 0 <= tid < n:
                raise GGUFError(f"tokenizer.ggml.{name}_token_id {tid} is outside the vocabulary (0..{n - 1})")
        self.bos_id, self.eos_id, self.eot_id = bos_id, eos_id, eot_id
        self.pre = pre
        self.add_bos = (pre in _ADD_BOS_DEFAULT or model == "llama") if add_bos is None else add_bos
        self.add_eos = add_eos
        self.add_space_prefix = add_space_prefix
        self._special_ids = {i for i, t in enumerate(self.token_types) if t in (CONTROL, USER_DEFINED, UNKNOWN)}
        if model == "gpt2":
            if merges is None:
                raise GGUFError("tokenizer.ggml.model 'gpt2' needs tokenizer.ggml.merges")
            if pre not in PRE_TOKENIZER_REGEXES:
                raise GGUFError(
                    f"unsupported pre-tokenizer tokenizer.ggml.pre = {pre!r} "
                    f"(supported: {', '.join(sorted(PRE_TOKENIZER_REGEXES))})"
                )
            self._hf_all = self._build_bpe(merges, parse_control=True)
            self._hf_plain: object | None = None  # built on first encode(special=False)
            self._merges = merges
        elif model == "llama":
            if scores is None or len(scores) != n:
                raise GGUFError("tokenizer.ggml.model 'llama' needs tokenizer.ggml.scores, one per token")
            self._spm_init(scores)
        else:
            raise GGUFError(f"unsupported tokenizer model tokenizer.ggml.model = {model!r} (supported: gpt2, llama)")
        self._piece_cache: dict[tuple[int, bool], bytes] = {}

    # ---- construction ----

    @classmethod
    def from_gguf(cls, reader: GGUFReader) -> "Tokenizer":
        md, types = reader.metadata, reader.metadata_types

        def get(key: str, want: str, default: object = None) -> object:
            if key not in md:
                return default
            t = types[key]
            ok = {
                "str": t == GGUFValueType.STRING,
                "bool": t == GGUFValueType.BOOL,
                "int": t in INTEGER_TYPES,
                "str[]": t == (GGUFValueType.ARRAY, GGUFValueType.STRING),
                "int[]": isinstance(t, tuple) and len(t) == 2 and t[1] in INTEGER_TYPES,
                "float[]": isinstance(t, tuple) and len(t) == 2
                and t[1] in (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64),
            }[want]
            if not ok:
                raise GGUFError(f"metadata {key!r} has the wrong type for a tokenizer field (expected {want})")
            return md[key]

        model = get("tokenizer.ggml.model", "str")
        if model is None:
            raise GGUFError("the file has no tokenizer (tokenizer.ggml.model is missing)")
        tokens = get("tokenizer.ggml.tokens", "str[]")
        if tokens is None:
            raise GGUFError("tokenizer.ggml.tokens is missing")
        ttypes = get("tokenizer.ggml.token_type", "int[]")
        scores = get("tokenizer.ggml.scores", "float[]")
        merges = get("tokenizer.ggml.merges", "str[]")
        for key, arr in (("token_type", ttypes), ("scores", scores)):
            if arr is not None and len(arr) != len(tokens):
                raise GGUFError(f"tokenizer.ggml.{key} has {len(arr)} entries for {len(tokens)} tokens")
        eot = get("tokenizer.ggml.eot_token_id", "int")
        return cls(
            model=model,
            tokens=tokens,
            token_types=None if ttypes is None else ttypes.tolist(),
            merges=merges,
            scores=None if scores is None else scores.tolist(),
            pre=get("tokenizer.ggml.pre", "str", "default"),
            bos_id=get("tokenizer.ggml.bos_token_id", "int"),
            eos_id=get("tokenizer.ggml.eos_token_id", "int"),
            eot_id=eot,
            add_bos=get("tokenizer.ggml.add_bos_token", "bool"),
            add_eos=bool(get("tokenizer.ggml.add_eos_token", "bool", False)),
            add_space_prefix=bool(get("tokenizer.ggml.add_space_prefix", "bool", True)),
        )

    def _build_bpe(self, merges: Sequence[str], parse_control: bool):
        from tokenizers import AddedToken, Regex, models, pre_tokenizers
        from tokenizers import Tokenizer as HFTokenizer

        vocab = {}
        for i, t in enumerate(self.tokens):
            vocab[t] = i  # a duplicated token text maps to its last id, as llama.cpp's token_to_id
        pairs = []
        for j, m in enumerate(merges):
            parts = m.split(" ")
            if len(parts) != 2 or not parts[0] or not parts[1]:
                raise GGUFError(f"tokenizer.ggml.merges[{j}] = {m!r} is not two tokens separated by one space")
            if parts[0] not in vocab or parts[1] not in vocab or parts[0] + parts[1] not in vocab:
                # llama.cpp tolerates such merges (their result falls back to bytes); the
                # tokenizers library refuses them, so they are dropped: they can never apply
                # to a token llama.cpp would emit whole.
                continue
            pairs.append((parts[0], parts[1]))
        kw = {"ignore_merges": True} if self.pre in _IGNORE_MERGES else {}
        try:
            bpe = models.BPE(vocab=vocab, merges=pairs, **kw)
        except TypeError as e:  # tokenizers < 0.19 has no ignore_merges
            raise GGUFError(f"pre-tokenizer {self.pre!r} needs tokenizers >= 0.19 (ignore_merges): {e}") from None
        except Exception as e:  # the library's own validation of a hostile vocabulary
            raise GGUFError(f"invalid BPE vocabulary or merges: {e}") from None
        tok = HFTokenizer(bpe)
        splits = [pre_tokenizers.Split(Regex(r), behavior="isolated") for r in PRE_TOKENIZER_REGEXES[self.pre]]
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            splits + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
        )
        control = [
            AddedToken(self.tokens[i], special=True, normalized=False)
            for i, t in enumerate(self.token_types)
            if (t == CONTROL and parse_control)
        ]
        user = [
            AddedToken(self.tokens[i], special=False, normalized=False)
            for i, t in enumerate(self.token_types)
            if t == USER_DEFINED
        ]
        if control:
            tok.add_special_tokens(control)
        if user:
            tok.add_tokens(user)
        return tok

    # ---- encode ----

    def encode(self, text: str, add_bos: bool | None = None, special: bool = True) -> list[int]:
        """Token ids of ``text``. ``add_bos=None`` follows the file (tokenizer.ggml.add_bos_token);
        ``special=True`` parses control tokens written in the text (``<|im_start|>``), as
        llama.cpp's ``tokenize(..., special=True)``; user-defined tokens are always parsed."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        add_bos = self.add_bos if add_bos is None else add_bos
        out: list[int] = []
        if add_bos:
            if self.bos_id is None:
                raise ValueError("add_bos=True but the file has no tokenizer.ggml.bos_token_id")
            out.append(self.bos_id)
        if self.model == "gpt2":
            if special:
                tok = self._hf_all
            else:
                if self._hf_plain is None:
                    self._hf_plain = self._build_bpe(self._merges, parse_control=False)
                tok = self._hf_plain
            if text:
                out.extend(tok.encode(text, add_special_tokens=False).ids)
        else:
            out.extend(self._spm_encode(text, special))
        if self.add_eos and self.eos_id is not None:
            out.append(self.eos_id)
        return out

    # ---- decode ----

    def token_to_piece(self, token_id: int, special: bool = True) -> bytes:
        """The bytes a token stands for. Control (and unknown) tokens give their text when
        ``special`` is true and nothing otherwise, as llama.cpp's ``token_to_piece``."""
        key = (token_id, special)
        piece = self._piece_cache.get(key)
        if piece is not None:
            return piece
        if not 0 <= token_id < len(self.tokens):
            raise ValueError(f"token id {token_id} is outside the vocabulary (0..{len(self.tokens) - 1})")
        text, ttype = self.tokens[token_id], self.token_types[token_id]
        if ttype in (CONTROL, UNKNOWN):
            piece = text.encode("utf-8") if special else b""
        elif ttype == USER_DEFINED:
            piece = text.encode("utf-8")
        elif self.model == "gpt2":
            if ttype == NORMAL:
                piece = b"".join(
                    bytes([UNICODE_TO_BYTE[c]]) if c in UNICODE_TO_BYTE else c.encode("utf-8") for c in text
                )
            else:
                piece = b""
        else:
            if ttype == BYTE:
                m = _BYTE_TOKEN.fullmatch(text)
                piece = bytes([int(m.group(1), 16)]) if m else b""
            elif ttype == NORMAL:
                piece = text.replace(SPM_SPACE, " ").encode("utf-8")
            else:
                piece = b""
        self._piece_cache[key] = piece
        return piece

    def decode_bytes(self, ids: Iterable[int], special: bool = True) -> bytes:
        return b"".join(self.token_to_piece(int(i), special) for i in ids)

    def decode(self, ids: Iterable[int], special: bool = True) -> str:
        """Text of ``ids``; invalid UTF-8 (a cut multi-byte character) becomes U+FFFD."""
        dec = StreamDecoder(self, special)
        return "".join(dec.push(i) for i in ids) + dec.flush()

    def stream_decoder(self, special: bool = True) -> "StreamDecoder":
        return StreamDecoder(self, special)

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def is_eog(self, token_id: int) -> bool:
        """End of generation: EOS, EOT, or a token whose text is a known end of turn
        (generate.EOG_TEXTS: `<|im_end|>`, `<end_of_turn>`, ...)."""
        from .generate import end_of_generation_ids

        return token_id in end_of_generation_ids(self)

    # ---- SentencePiece-style ("llama") ----

    def _spm_init(self, scores: Sequence[float]) -> None:
        self._scores = [float(s) for s in scores]
        self._spm_vocab: dict[str, int] = {}
        for i, t in enumerate(self.tokens):
            self._spm_vocab[t] = i
        self._byte_ids: dict[int, int] = {}
        for i, (t, ty) in enumerate(zip(self.tokens, self.token_types)):
            if ty == BYTE:
                m = _BYTE_TOKEN.fullmatch(t)
                if m:
                    self._byte_ids[int(m.group(1), 16)] = i
        specials = [i for i, ty in enumerate(self.token_types) if ty in (CONTROL, USER_DEFINED, UNKNOWN)]
        specials = [i for i in specials if self.tokens[i]]
        self._spm_specials = sorted(specials, key=lambda i: -len(self.tokens[i]))

    def _spm_encode(self, text: str, special: bool) -> list[int]:
        # Split on special tokens first (longest first), as llama.cpp's tokenizer_st_partition.
        fragments: list[str | int] = [text]
        for sid in self._spm_specials:
            if self.token_types[sid] in (CONTROL, UNKNOWN) and not special:
                continue
            s = self.tokens[sid]
            nxt: list[str | int] = []
            for frag in fragments:
                if isinstance(frag, int):
                    nxt.append(frag)
                    continue
                parts = frag.split(s)
                for k, p in enumerate(parts):
                    if k:
                        nxt.append(sid)
                    if p:
                        nxt.append(p)
            fragments = nxt
        out: list[int] = []
        prev_special = True  # the start of the text counts as "after a special token"
        for frag in fragments:
            if isinstance(frag, int):
                out.append(frag)
                prev_special = True
                continue
            t = frag.replace(" ", SPM_SPACE)
            # llama.cpp (llm_tokenizer_spm_session) prefixes a space to every text fragment
            # that starts the text or follows a special token.
            if self.add_space_prefix and prev_special:
                t = SPM_SPACE + t
            prev_special = False
            out.extend(self._spm_bigram_merge(t))
        return out

    def _spm_bigram_merge(self, text: str) -> list[int]:
        syms = list(text)  # one symbol per code point
        n = len(syms)
        if n == 0:
            return []
        prev = list(range(-1, n - 1))
        nxt = list(range(1, n + 1))
        nxt[-1] = -1
        heap: list[tuple[float, int, int, str]] = []

        def push(left: int, right: int) -> None:
            if left < 0 or right < 0:
                return
            s = syms[left] + syms[right]
            tid = self._spm_vocab.get(s)
            if tid is not None:
                heapq.heappush(heap, (-self._scores[tid], left, right, s))

        for i in range(n - 1):
            push(i, i + 1)
        while heap:
            _, left, right, s = heapq.heappop(heap)
            if not syms[left] or not syms[right] or nxt[left] != right or syms[left] + syms[right] != s:
                continue  # stale
            syms[left] = s
            syms[right] = ""
            nxt[left] = nxt[right]
            if nxt[right] >= 0:
                prev[nxt[right]] = left
            push(prev[left], left)
            push(left, nxt[left])
        out: list[int] = []
        i = 0
        while i != -1:
            s = syms[i]
            tid = self._spm_vocab.get(s)
            if tid is not None:
                out.append(tid)
            else:
                for b in s.encode("utf-8"):  # byte fallback
                    if b in self._byte_ids:  # a vocabulary without that byte drops it, as llama.cpp
                        out.append(self._byte_ids[b])
            i = nxt[i]
        return out


class StreamDecoder:
    """Turns token ids into text as they arrive, holding back an incomplete UTF-8 sequence."""

    def __init__(self, tokenizer: Tokenizer, special: bool = True) -> None:
        self._tok = tokenizer
        self._special = special
        self._dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._first = True

    def push(self, token_id: int) -> str:
        token_id = int(token_id)
        data = self._tok.token_to_piece(token_id, self._special)
        if self._first and data:
            # SentencePiece: the space prefix added at encode time is not part of the text; it
            # is dropped from the first piece shown if that piece is a normal token's.
            self._first = False
            t = self._tok
            if t.model == "llama" and t.add_space_prefix and t.token_types[token_id] == NORMAL and data.startswith(b" "):
                data = data[1:]
        return self._dec.decode(data)

    def flush(self) -> str:
        """Whatever is held back (an incomplete sequence at the end becomes U+FFFD)."""
        return self._dec.decode(b"", final=True)
