"""Text generation on a Model: the sampler, stop strings, end of generation, prefix reuse.

``Model.generate(prompt, ...)`` and ``Model.chat(messages, ...)`` return a :class:`Generation`:
iterate it for :class:`Token` objects as they are decoded; afterwards ``.finish_reason`` says why
it ended (``"stop"``: a stop string or the grammar's end, ``"length"``: ``max_new_tokens``,
``"eos"``: an end-of-generation token, ``"context"``: the KV cache reached the model's context)
and ``.stats`` holds token counts and timings. Arguments are checked when it is created.

One step of one sequence (:class:`Decoding`) is written once and driven either here, one
sequence at a time, or by the server, which advances many sequences per ``forward_batch``.

Prefix reuse: a finished sequence is not freed but parked in the model's :class:`PrefixCache`
with the tokens its KV holds. A new generation whose prompt starts with parked tokens forks that
sequence (copy-on-write blocks), truncates it to the common prefix, and prefills only the rest.
Parked sequences are evicted least-recently-used first whenever the KV pool is full.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np

FINISH_REASONS = ("stop", "length", "eos", "context")

# End-of-generation tokens recognized by their text (as llama.cpp does), besides the file's EOS
# and EOT ids: Gemma's turn end, Phi's, ChatML's, Llama 3's, GPT-2/Qwen's.
EOG_TEXTS = ("<end_of_turn>", "<|end|>", "<|im_end|>", "<|eot_id|>", "<|endoftext|>")


# ---- results ----
@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens whose KV came from a parked prefix (not prefilled)
    prefill_seconds: float = 0.0
    generated_tokens: int = 0
    decode_seconds: float = 0.0
    first_token_seconds: float = 0.0  # from the call to the first sampled token
    finish_reason: str | None = None

    @property
    def prefill_tokens_per_s(self) -> float:
        n = self.prompt_tokens - self.cached_tokens
        return n / self.prefill_seconds if self.prefill_seconds else 0.0

    @property
    def decode_tokens_per_s(self) -> float:
        return self.generated_tokens / self.decode_seconds if self.decode_seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(prompt_tokens=self.prompt_tokens, cached_tokens=self.cached_tokens,
                    generated_tokens=self.generated_tokens, finish_reason=self.finish_reason,
                    prefill_seconds=self.prefill_seconds, decode_seconds=self.decode_seconds,
                    first_token_seconds=self.first_token_seconds,
                    prefill_tokens_per_s=self.prefill_tokens_per_s, decode_tokens_per_s=self.decode_tokens_per_s)


@dataclass
class Token:
    """One generated token and the text it completes. The text may be "" (mid UTF-8 character,
    or held back while it could be the start of a stop string) or hold text held back earlier.
    A generation that ends on an end-of-generation token while text is held back yields that
    token last, carrying the held text."""
    id: int
    text: str
    logprob: float | None = None  # log-probability under the model's distribution (raw logits)
    top_logprobs: list[tuple[int, float]] | None = None  # the k most likely (id, logprob)


# ---- sampling ----
LogitsProcessor = Callable[[np.ndarray, np.ndarray], "np.ndarray | None"]


@dataclass
class SamplingParams:
    """What chooses the next token (the chain and its order: csrc/sample/sample.h).

    logits_processor: callables ``f(ids, logits)`` run first, in order, on each step's float32
    logits (vectorized numpy code; ``ids`` is the int64 array of prompt + generated tokens); one
    returns new logits or edits them in place and returns None. logit_bias: {token id: value added
    to its logit}. seed: the numpy ``default_rng`` seed (None: fresh entropy). logprobs: None, or k
    >= 0 to report each token's log-probability and its k most likely alternatives.
    Repetition penalty counts prompt and generated tokens; presence and frequency penalties
    (OpenAI's definition) count generated tokens."""
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    typical_p: float = 1.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] | None = None
    seed: int | None = None
    logprobs: int | None = None
    logits_processor: LogitsProcessor | Sequence[LogitsProcessor] | None = None

    def check(self, vocab: int) -> None:
        """Raises TypeError/ValueError naming the first bad parameter."""
        def num(name: str, lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise TypeError(f"{name} must be a number, got {type(v).__name__}")
            ok = math.isfinite(v) and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
            if not ok:
                lb, rb = "(" if lo_open else "[", ")" if hi_open else "]"
                raise ValueError(f"{name} must be in {lb}{lo}, {hi}{rb}, got {v}")

        num("temperature", 0, math.inf, hi_open=True)
        num("top_p", 0, 1, lo_open=True)
        num("min_p", 0, 1)
        num("typical_p", 0, 1, lo_open=True)
        num("repetition_penalty", 0, math.inf, lo_open=True, hi_open=True)
        num("presence_penalty", -2, 2)
        num("frequency_penalty", -2, 2)
        for name in ("top_k", "logprobs", "seed"):
            v = getattr(self, name)
            if v is None and name != "top_k":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"{name} must be an int, got {type(v).__name__}")
            if v < 0:
                raise ValueError(f"{name} must be >= 0, got {v}")
        if self.logprobs is not None and self.logprobs > 20:
            raise ValueError(f"logprobs must be in 0..20, got {self.logprobs}")
        if self.logit_bias is not None:
            if not isinstance(self.logit_bias, dict):
                raise TypeError("logit_bias must be a dict {token id: bias}")
            for k, v in self.logit_bias.items():
                if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k < vocab:
                    raise ValueError(f"logit_bias keys must be token ids in 0..{vocab - 1}, got {k!r}")
                if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
                    raise ValueError(f"logit_bias[{k}] must be a number, got {v!r}")
        for f in self.processors():
            if not callable(f):
                raise TypeError(f"logits_processor must be callable, got {type(f).__name__}")

    def processors(self) -> list[LogitsProcessor]:
        lp = self.logits_processor
        if lp is None:
            return []
        return [lp] if callable(lp) else list(lp)


_SAMPLING_FIELDS = tuple(SamplingParams.__dataclass_fields__)


class Sampler:
    """The sampler of one generation: logits processors (Python), then the C++ chain with this
    generation's random stream. ``__call__(logits)`` returns the next token; ``accept(t)`` records
    a generated token for the penalties and ``ids``."""

    def __init__(self, vocab: int, params: SamplingParams, context: Sequence[int] = ()):
        from slmkernels import _core

        self.params = params
        self.vocab = vocab
        self._rng = np.random.default_rng(params.seed)
        self._processors = params.processors()
        self._core = _core.Sampler(
            vocab, temperature=float(params.temperature), top_k=int(params.top_k), top_p=float(params.top_p),
            min_p=float(params.min_p), typical_p=float(params.typical_p),
            repetition_penalty=float(params.repetition_penalty), presence_penalty=float(params.presence_penalty),
            frequency_penalty=float(params.frequency_penalty),
            logit_bias={int(k): float(v) for k, v in (params.logit_bias or {}).items()})
        self._ids = list(int(t) for t in context)
        if params.repetition_penalty != 1.0 and self._ids:
            self._core.add_context(np.asarray(self._ids, dtype=np.int64))

    @property
    def ids(self) -> np.ndarray:
        return np.asarray(self._ids, dtype=np.int64)

    def __call__(self, logits: np.ndarray, mask: Callable[[np.ndarray], None] | None = None) -> int:
        if self._processors or mask is not None:
            logits = np.array(logits, dtype=np.float32, copy=True)
            for f in self._processors:
                out = f(self.ids, logits)
                if out is not None:
                    out = np.asarray(out, dtype=np.float32)
                    if out.shape != logits.shape:
                        raise ValueError(f"a logits processor returned shape {out.shape}, expected {logits.shape}")
                    logits = np.ascontiguousarray(out)
            if mask is not None:
                mask(logits)
        # one float64 per draw, as numpy's Generator.choice(p=...) uses: a seed gives the tokens
        # the numpy sampler gave; greedy draws nothing
        u = self._rng.random() if self.params.temperature > 0 else 0.0
        return int(self._core.sample(logits, u))

    def accept(self, token: int) -> None:
        self._ids.append(int(token))
        self._core.accept(int(token))


def sample(logits: np.ndarray, rng: np.random.Generator, *, temperature: float = 0.0, top_k: int = 0,
           top_p: float = 1.0, min_p: float = 0.0, typical_p: float = 1.0, repetition_penalty: float = 1.0,
           presence_penalty: float = 0.0, frequency_penalty: float = 0.0, logit_bias: dict | None = None,
           previous=()) -> int:
    """One token from `logits` with the C++ chain (csrc/sample/sample.h); `previous` are the tokens
    the repetition penalty looks at. Draws one float64 from `rng` unless greedy."""
    from slmkernels import _core

    logits = np.ascontiguousarray(logits, dtype=np.float32)
    s = _core.Sampler(len(logits), temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                      typical_p=typical_p, repetition_penalty=repetition_penalty, presence_penalty=presence_penalty,
                      frequency_penalty=frequency_penalty, logit_bias=dict(logit_bias or {}))
    if len(previous):
        s.add_context(np.asarray(previous, dtype=np.int64))
    u = rng.random() if temperature > 0 else 0.0
    return int(s.sample(logits, u))


# ---- stop strings ----
class StopMatcher:
    """Finds stop strings in streamed text, across token boundaries, and never lets one out: text
    that could be the start of a stop string is held back until it is known not to be."""

    def __init__(self, stops: Sequence[str]):
        self.stops = [s for s in stops if s]
        self._held = ""
        self.hit: str | None = None

    def push(self, text: str) -> str:
        """The text that is safe to show after `text` arrives; sets `hit` when a stop matched
        (the text before it is returned, the rest dropped)."""
        if not self.stops:
            return text
        buf = self._held + text
        first = self._first_stop(buf)
        open_at = self._open_from(buf)
        # A stop that completed wins unless a longer one starting earlier still runs past the end
        # of buf ("100" against "0" in "10" + "0"): the earliest start wins, whatever the token
        # cuts, so that is held back until it is decided.
        if first is not None and first[0] <= open_at:
            self.hit = first[1]
            self._held = ""
            return buf[: first[0]]
        self._held = buf[open_at:]
        return buf[:open_at]

    def flush(self) -> str:
        """The held text at the end of the stream: up to the first stop in it (setting `hit`), if
        one completed while a longer one that starts earlier was still possible."""
        out, self._held = self._held, ""
        first = self._first_stop(out)
        if first is not None:
            self.hit = first[1]
            return out[: first[0]]
        return out

    def _first_stop(self, buf: str) -> tuple[int, str] | None:
        """(start, stop) of the stop string that starts first in buf (the earlier listed on a tie)."""
        first = None
        for s in self.stops:
            i = buf.find(s)
            if i >= 0 and (first is None or i < first[0]):
                first = (i, s)
        return first

    def _open_from(self, buf: str) -> int:
        """Where the longest suffix of buf that is a proper prefix of some stop string starts
        (len(buf) when none is)."""
        keep = 0
        for s in self.stops:
            for n in range(min(len(s) - 1, len(buf)), keep, -1):
                if buf.endswith(s[:n]):
                    keep = n
                    break
        return len(buf) - keep


def end_of_generation_ids(tok) -> frozenset[int]:
    """EOS/EOT ids from the metadata, plus the tokens whose text is a known end of turn."""
    ids = getattr(tok, "_slmk_eog", None)
    if ids is None:
        ids = {t for t in (tok.eos_id, tok.eot_id) if t is not None}
        wanted = set(EOG_TEXTS)
        ids |= {i for i, t in enumerate(tok.tokens) if t in wanted}
        ids = frozenset(ids)
        tok._slmk_eog = ids
    return ids


# ---- prefix reuse ----
class PrefixCache:
    """Sequences of a model's KV cache parked after their generation, with the tokens their KV
    holds, most recently used last. Thread-safe (one lock)."""

    def __init__(self, model, max_entries: int = 16):
        self.model = model
        self.max_entries = max_entries
        self._entries: OrderedDict[int, tuple[int, ...]] = OrderedDict()
        self._lock = threading.Lock()
        # windowed layers keep only their window: a parked sequence can be extended, not cut back
        self._can_truncate = not any(w for w in model.cache.layer_windows)

    def __len__(self) -> int:
        return len(self._entries)

    def acquire(self, ids: Sequence[int]) -> tuple[int, int]:
        """A sequence for a prompt `ids`: a fork of the parked sequence sharing the longest
        prefix with it (at most len(ids) - 1 tokens: the last prompt token is always run to get
        its logits), truncated to that prefix; or a new sequence. Returns (seq, cached tokens)."""
        cache = self.model.cache
        with self._lock:
            best, best_n = None, 0
            for seq, toks in self._entries.items():
                n = _common_prefix(toks, ids, len(ids) - 1)
                if not self._can_truncate and n < len(toks):
                    continue
                if cache.recurrent_layers and n < len(toks):
                    # a recurrent (Mamba) state goes back only to one of its snapshots
                    n = max(p for p in cache.snapshot_positions(seq) if p <= n)
                if n > best_n:
                    best, best_n = seq, n
            if best is None:
                return cache.new_sequence(), 0
            self._entries.move_to_end(best)
            seq = cache.fork(best)
            if cache.length(seq) > best_n:
                cache.truncate(seq, best_n)
            return seq, best_n

    def park(self, seq: int, tokens: Sequence[int]) -> None:
        """Keeps `seq` (whose KV holds `tokens`) for reuse; parked sequences whose tokens are a
        prefix of `tokens` go (this one covers them; their blocks are shared with it)."""
        cache = self.model.cache
        toks = tuple(int(t) for t in tokens)
        with self._lock:
            if not toks:
                cache.free(seq)
                return
            for other, ot in list(self._entries.items()):
                if len(ot) <= len(toks) and toks[: len(ot)] == ot:
                    del self._entries[other]
                    cache.free(other)
            self._entries[seq] = toks
            while len(self._entries) > self.max_entries:
                self._evict_locked()

    def evict_one(self) -> bool:
        """Frees the least recently used parked sequence; False when none is left."""
        with self._lock:
            return self._evict_locked()

    def _evict_locked(self) -> bool:
        if not self._entries:
            return False
        seq, _ = self._entries.popitem(last=False)
        self.model.cache.free(seq)
        return True

    def clear(self) -> None:
        with self._lock:
            while self._evict_locked():
                pass


def _common_prefix(a: Sequence[int], b: Sequence[int], limit: int) -> int:
    n = min(len(a), len(b), limit)
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def prefix_cache(model) -> PrefixCache:
    pc = getattr(model, "_slmk_prefix_cache", None)
    if pc is None:
        pc = model._slmk_prefix_cache = PrefixCache(model)
    return pc


def evicting(method):
    """Wraps Model.forward / forward_batch: while the KV pool is full, the least recently used
    parked prefix is evicted and the step retried (a step that raises has changed nothing), so
    parked prefixes never make a caller's step fail; the error stands when none is left."""
    import functools

    import slmkernels as sk

    @functools.wraps(method)
    def step(model, *args, **kw):
        while True:
            try:
                return method(model, *args, **kw)
            except sk.KVCacheFullError:
                pc = getattr(model, "_slmk_prefix_cache", None)
                if pc is None or not pc.evict_one():
                    raise

    return step


# ---- one sequence being generated ----
class Decoding:
    """The state of one generation, advanced one token at a time by whoever runs the model.

    ``start()`` takes a sequence (reusing a parked prefix) and prefills the prompt, returning the
    last logits. ``advance(logits)`` samples the next token and returns the Tokens to emit (none,
    one, or for an end-of-generation token with held-back text, that token); ``next_input`` is
    then the token to run next, or None once ``finish_reason`` is set. ``close()`` parks the
    sequence for reuse (or frees it)."""

    def __init__(self, model, ids: Sequence[int], max_new_tokens: int, params: SamplingParams,
                 stop: Sequence[str] = (), *, reuse_prefix: bool = True, constraint=None,
                 stats: GenerationStats | None = None):
        self.model = model
        self.ids = [int(t) for t in ids]
        self.max_new_tokens = max_new_tokens
        self.params = params
        self.tok = model.tokenizer
        self.eog = end_of_generation_ids(self.tok)
        self.sampler = Sampler(model.config.vocab, params, self.ids)
        self.stopper = StopMatcher(stop)
        self.decoder = self.tok.stream_decoder()
        self.constraint = constraint
        self.reuse_prefix = reuse_prefix
        self.stats = stats if stats is not None else GenerationStats()
        self.stats.prompt_tokens = len(self.ids)
        self.seq: int | None = None
        self.generated: list[int] = []
        self.next_input: int | None = None
        self.finish_reason: str | None = None
        self._t_start = time.perf_counter()
        self._t_decode = 0.0

    def start(self) -> np.ndarray:
        m = self.model
        t0 = time.perf_counter()
        if self.reuse_prefix:
            self.seq, cached = prefix_cache(m).acquire(self.ids)
        else:
            self.seq, cached = m.new_sequence(), 0
        self.stats.cached_tokens = cached
        logits = m.forward(self.seq, self.ids[cached:])
        self.stats.prefill_seconds = time.perf_counter() - t0
        self._t_decode = time.perf_counter()
        return logits

    def advance(self, logits: np.ndarray) -> list[Token]:
        """Samples from `logits` (this sequence's last row) and returns what to emit."""
        st = self.stats
        mask = self.constraint.mask if self.constraint is not None else None
        t = self.sampler(logits, mask)
        if not self.generated:
            st.first_token_seconds = time.perf_counter() - self._t_start
        lp = top = None
        if self.params.logprobs is not None:
            from slmkernels import _core

            lp, top = _core.token_logprobs(logits, t, self.params.logprobs)
        if t in self.eog:
            held = self.decoder.flush() + self.stopper.flush()
            return self._finish("eos", [Token(t, held, lp, top)] if held else [])
        self.generated.append(t)
        self.sampler.accept(t)
        st.generated_tokens += 1
        if self.constraint is not None:
            self.constraint.accept(t)
        text = self.stopper.push(self.decoder.push(t))
        if self.stopper.hit is not None:
            return self._finish("stop", [Token(t, text, lp, top)])
        reason = None
        if self.constraint is not None and self.constraint.done():
            reason = "stop"
        elif len(self.generated) >= self.max_new_tokens:
            reason = "length"
        elif self.model.cache.length(self.seq) + 1 > self.model.context:
            reason = "context"
        if reason is not None:
            text += self.stopper.push(self.decoder.flush())
            if self.stopper.hit is None:
                text += self.stopper.flush()
            return self._finish(reason, [Token(t, text, lp, top)])
        self.next_input = t
        return [Token(t, text, lp, top)]

    def _finish(self, reason: str, out: list[Token]) -> list[Token]:
        self.finish_reason = self.stats.finish_reason = reason
        self.next_input = None
        self.stats.decode_seconds = time.perf_counter() - self._t_decode
        return out

    def close(self) -> None:
        """Parks the sequence (its KV holds the prompt and every generated token that was run)
        for prefix reuse, or frees it."""
        if self.seq is None:
            return
        seq, self.seq = self.seq, None
        m = self.model
        if self.stats.decode_seconds == 0.0 and self._t_decode:
            self.stats.decode_seconds = time.perf_counter() - self._t_decode
        if not self.reuse_prefix:
            m.free(seq)
            return
        n = m.cache.length(seq)
        prefix_cache(m).park(seq, (self.ids + self.generated)[:n])


class Generation:
    """An iterable of Tokens; ``finish_reason``, ``stats`` and ``text`` are filled in as it runs."""

    def __init__(self, decoding: Decoding):
        self._d = decoding
        self.stats = decoding.stats
        self.text = ""
        self._it: Iterator[Token] | None = None

    @property
    def finish_reason(self) -> str | None:
        return self._d.finish_reason

    def __iter__(self) -> Iterator[Token]:
        if self._it is None:
            self._it = self._run()
        return self._it

    def __next__(self) -> Token:
        return next(iter(self))

    def close(self) -> None:
        """Stops the generation where it is (its sequence is parked for reuse)."""
        if self._it is not None:
            self._it.close()

    def _run(self) -> Iterator[Token]:
        d, m = self._d, self._d.model
        try:
            if d.max_new_tokens == 0:
                d.finish_reason = d.stats.finish_reason = "length"
                return
            logits = d.start()
            while True:
                for tok in d.advance(logits):
                    self.text += tok.text
                    yield tok
                if d.next_input is None:
                    return
                logits = m.forward(d.seq, [d.next_input])
        finally:
            d.close()


# ---- the Model methods ----
def _check_int(name: str, v, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if v < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    return int(v)


def prepare(model, prompt, max_new_tokens: int = 128, *, stop=None, add_bos: bool | None = None,
            stats: GenerationStats | None = None, reuse_prefix: bool = True, constraint=None,
            **sampling) -> Decoding:
    """Checks every argument and returns the Decoding of a generation (nothing runs yet)."""
    unknown = set(sampling) - set(_SAMPLING_FIELDS)
    if unknown:
        raise TypeError(f"unknown generation argument(s): {', '.join(sorted(unknown))}")
    max_new_tokens = _check_int("max_new_tokens", max_new_tokens, 0)
    params = SamplingParams(**sampling)
    params.check(model.config.vocab)
    if isinstance(prompt, str):
        ids = model.tokenizer.encode(prompt, add_bos=add_bos)
    else:
        if isinstance(prompt, bytes):
            raise TypeError("prompt must be a str or a sequence of token ids, got bytes")
        ids = [int(t) for t in prompt]
        if any(not 0 <= t < model.config.vocab for t in ids):
            raise ValueError(f"prompt token ids must be in 0..{model.config.vocab - 1}")
    if not ids:
        raise ValueError("the prompt has no tokens")
    if len(ids) > model.context:
        raise ValueError(f"the prompt has {len(ids)} tokens; the context holds {model.context} "
                         f"(prompt and reply together)")
    if stop is None:
        stops: list[str] = []
    elif isinstance(stop, str):
        stops = [stop]
    else:
        stops = list(stop)
        if not all(isinstance(s, str) for s in stops):
            raise TypeError("stop must be a str or a list of str")
    return Decoding(model, ids, max_new_tokens, params, stops, reuse_prefix=reuse_prefix,
                    constraint=constraint, stats=stats)


def generate(model, prompt, max_new_tokens: int = 128, **kw) -> Generation:
    """Generates from `prompt` (a str, or token ids). Keywords: the SamplingParams fields,
    stop (a str or list), add_bos, stats (a GenerationStats to fill), reuse_prefix (default
    True), constraint (structured output, see slmkernels.model.structured)."""
    return Generation(prepare(model, prompt, max_new_tokens, **kw))


_GENERATE_KW = set(_SAMPLING_FIELDS) | {"stop", "stats", "reuse_prefix", "constraint"}


def render_chat(model, messages, **template_kwargs) -> str:
    from .chat import ChatTemplate

    tpl = getattr(model, "_slmk_chat_template", None)
    if tpl is None:
        tpl = model._slmk_chat_template = ChatTemplate.from_gguf(model.reader)
    return tpl.render(messages, add_generation_prompt=True, **template_kwargs)


def chat(model, messages, max_new_tokens: int = 256, **kw) -> Generation:
    """Applies the file's chat template (with the generation prompt) and generates the reply.
    Generation keywords as for generate(); every other keyword is a template variable (e.g.
    enable_thinking=False, tools=[...])."""
    gen_kw = {k: v for k, v in kw.items() if k in _GENERATE_KW}
    template_kwargs = {k: v for k, v in kw.items() if k not in _GENERATE_KW}
    prompt = render_chat(model, messages, **template_kwargs)
    return generate(model, prompt, max_new_tokens, add_bos=False, **gen_kw)


def tokenizer(model):
    if model._tokenizer is None:
        from .tokenizer import Tokenizer

        model._tokenizer = Tokenizer.from_gguf(model.reader)
    return model._tokenizer


__all__ = ["FINISH_REASONS", "Decoding", "Generation", "GenerationStats", "PrefixCache", "Sampler",
           "SamplingParams", "StopMatcher", "Token", "chat", "generate", "sample"]
