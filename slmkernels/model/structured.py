"""Structured output: generation constrained to a JSON schema or a grammar, by llguidance.

Optional extra: ``pip install 'slmkernels[structured]'``. Why llguidance: measured on SmolLM2's
49152-token vocabulary (``slmkernels bench generation --model M --parts structured``), it compiles
a schema in tens of milliseconds and masks a token in about 0.1 ms (about 1% of a decode
step); outlines-core looks the mask up faster (about 15 us) but first builds an index of the
whole vocabulary for each schema (about 10 s for a five-field schema), which a server that
receives a schema with each request cannot pay. xgrammar's wheel requires torch, transformers
and triton, too heavy for an optional extra of a CPU package. The vocabulary view is built
once per model (a few seconds) and cached.

    c = JSONSchemaConstraint(model, {"type": "object", "properties": {...}})
    text = model.generate(prompt, 200, constraint=c).text      # parses and validates

A constraint masks every token the grammar cannot take next (logit -inf) before sampling, is
told each chosen token, and reports when the grammar is complete (the generation then ends
with finish_reason "stop"). The end-of-generation tokens are allowed exactly when the text so
far is complete.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

__all__ = ["GrammarConstraint", "JSONSchemaConstraint", "ll_tokenizer"]


def _require():
    try:
        import llguidance
    except ImportError:
        raise ImportError("structured output needs llguidance: pip install 'slmkernels[structured]'") from None
    return llguidance


def ll_tokenizer(model):
    """llguidance's view of the model's vocabulary (built once per model: about a second for 50k
    tokens). Token bytes come from our tokenizer; control tokens are marked special so that no
    grammar can spell them as text."""
    cached = getattr(model, "_slmk_ll_tokenizer", None)
    if cached is not None:
        return cached
    llg = _require()
    from .generate import end_of_generation_ids

    tok = model.tokenizer
    special = [i for i, t in enumerate(tok.token_types) if t in (3, 4)]  # CONTROL, USER_DEFINED
    special_set = set(special)
    eog = sorted(end_of_generation_ids(tok))

    class _Vocab:
        eos_token_id = eog[0] if eog else 0
        bos_token_id = tok.bos_id
        special_token_ids = special
        tokens = [(b"\xff" + tok.token_to_piece(i)) if i in special_set else tok.token_to_piece(i)
                  for i in range(tok.vocab_size)]

        def __call__(self, s):
            text = s.decode("utf-8", errors="replace") if isinstance(s, bytes) else s
            return tok.encode(text, add_bos=False, special=False)

    lt = llg.LLTokenizer(llg.TokenizerWrapper(_Vocab()), n_vocab=model.config.vocab, eos_token=eog or None)
    model._slmk_ll_tokenizer = lt
    return lt


class GrammarConstraint:
    """Generation constrained by an llguidance grammar: a Lark grammar string (as llguidance
    reads it, including %json{...} for embedded schemas) or its JSON form."""

    def __init__(self, model, grammar: str):
        llg = _require()
        self.vocab = model.config.vocab
        ok, warnings_or_error = _validate(llg, ll_tokenizer(model), grammar)
        if not ok:
            raise ValueError(f"invalid grammar: {warnings_or_error}")
        self._m = llg.LLMatcher(ll_tokenizer(model), grammar, log_level=0)
        if self._m.is_error():
            raise ValueError(f"invalid grammar: {self._m.get_error()}")
        self._mask = np.zeros((self.vocab + 31) // 32, dtype=np.int32)

    def mask(self, logits: np.ndarray) -> None:
        """Sets the logit of every token the grammar cannot take next to -inf (in place)."""
        self._m.unsafe_compute_mask_ptr(self._mask.ctypes.data, self._mask.nbytes)
        allowed = np.unpackbits(self._mask.view(np.uint8), bitorder="little")[: self.vocab]
        logits[: self.vocab][allowed == 0] = -np.inf

    def accept(self, token: int) -> None:
        if not self._m.consume_token(int(token)):
            raise RuntimeError(f"the grammar refused token {token}: {self._m.get_error()}")

    def done(self) -> bool:
        """True once the grammar can take nothing but the end of generation."""
        return self._m.is_stopped()


class JSONSchemaConstraint(GrammarConstraint):
    """Output that parses as JSON and validates against `schema` (a dict or its JSON text).
    Whitespace is compact (no newlines or indentation runs), so a small model cannot stall in
    blank space."""

    def __init__(self, model, schema: Any):
        llg = _require()
        if isinstance(schema, str):
            try:
                schema = json.loads(schema)
            except json.JSONDecodeError as e:
                raise ValueError(f"the schema is not JSON: {e}") from None
        if not isinstance(schema, (dict, bool)):
            raise TypeError("a JSON schema must be an object (dict)")
        try:
            grammar = llg.LLMatcher.grammar_from_json_schema(
                schema, defaults={"whitespace_flexible": False, "coerce_one_of": True})
        except (ValueError, RuntimeError) as e:
            raise ValueError(f"unsupported JSON schema: {e}") from None
        super().__init__(model, grammar)


def _validate(llg, tok, grammar: str):
    try:
        is_error, msgs = llg.LLMatcher.validate_grammar_with_warnings(grammar, tok)
    except (ValueError, RuntimeError) as e:
        return False, str(e)
    return not is_error, "; ".join(msgs)
