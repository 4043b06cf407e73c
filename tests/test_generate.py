"""Generation on a tiny random-weight model: finish reasons, stop strings across tokens, end of
generation by token text, the sampler's keywords, chat template variables, prefix reuse."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gguf")

import slmkernels as sk  # noqa: E402
from slmkernels.model import Model  # noqa: E402
from slmkernels.model.generate import FINISH_REASONS, GenerationStats, prefix_cache  # noqa: E402
from tiny_models import write_tiny_model  # noqa: E402

PROMPT = "hello world"


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("gen") / "m.gguf")


@pytest.fixture
def model(path):
    return Model.from_gguf(path)


def run(m, prompt=PROMPT, n=12, **kw):
    g = m.generate(prompt, n, **kw)
    toks = list(g)
    return g, toks


def test_finish_length_and_stats(model):
    g, toks = run(model, n=5, logit_bias={0: -100.0, 2: -100.0})
    assert g.finish_reason == "length" and len(toks) == 5
    assert g.text == "".join(t.text for t in toks)
    s = g.stats
    assert s.finish_reason == "length" and s.generated_tokens == 5 and s.prompt_tokens == len(model.tokenizer.encode(PROMPT))
    assert s.first_token_seconds > 0 and s.decode_seconds > 0 and set(s.as_dict()) >= {"prompt_tokens", "finish_reason"}


def test_finish_eos_by_metadata_and_by_text(model):
    g, toks = run(model, logit_bias={2: 100.0})  # <|im_end|>: the file's EOS id
    assert g.finish_reason == "eos" and toks == []
    # <|endoftext|> (id 0) is no EOS/EOT in the metadata: it ends generation by its text
    assert model.tokenizer.eos_id != 0 and model.tokenizer.eot_id != 0 and model.tokenizer.is_eog(0)
    g, toks = run(model, logit_bias={0: 100.0})
    assert g.finish_reason == "eos" and toks == []


def test_finish_context(path):
    m = Model.from_gguf(path, context=16)
    ids = m.tokenizer.encode(PROMPT)
    g, toks = run(m, n=100, logit_bias={0: -100.0, 2: -100.0})
    assert g.finish_reason == "context" and len(ids) + len(toks) == 16 + 1  # the last token is never run


def test_prompt_too_long_and_bad_arguments(path):
    m = Model.from_gguf(path, context=8)
    with pytest.raises(ValueError, match="context holds 8"):
        m.generate("x" * 20, 4)
    with pytest.raises(ValueError, match="max_new_tokens"):
        m.generate(PROMPT, -1)
    with pytest.raises(ValueError, match="no tokens"):
        m.generate("", 4)
    with pytest.raises(ValueError, match="temperature"):
        m.generate(PROMPT, 4, temperature=float("nan"))
    with pytest.raises(TypeError, match="unknown generation argument"):
        m.generate(PROMPT, 4, temprature=1.0)
    assert m.cache.stats()["sequences"] == 0  # nothing was taken by the refused calls


def test_stop_across_tokens_never_leaks(model):
    """Every substring of the greedy text that spans a token boundary, used as a stop string:
    the text shown is exactly what precedes its first occurrence."""
    _, toks = run(model, n=16, logit_bias={0: -100.0, 2: -100.0})
    full = "".join(t.text for t in toks)
    bounds = np.cumsum([len(t.text) for t in toks])
    tried = 0
    for b in bounds[:-1]:
        for a in (b - 2, b - 1):
            stop = full[max(a, 0): b + 1]
            if not stop:
                continue
            g, got = run(model, n=16, stop=[stop], logit_bias={0: -100.0, 2: -100.0})
            assert g.text == full[: full.index(stop)], stop
            assert g.finish_reason == "stop"
            tried += 1
    assert tried >= 10


def test_stop_held_text_is_flushed_at_length(model):
    _, toks = run(model, n=6, logit_bias={0: -100.0, 2: -100.0})
    full = "".join(t.text for t in toks)
    stop = full[-1] + "\x00never"  # its first character is the last one generated: held, then shown
    g, _ = run(model, n=6, stop=stop, logit_bias={0: -100.0, 2: -100.0})
    assert g.text == full and g.finish_reason == "length"


def test_seed_logprobs_and_processor(model):
    a = [t.id for t in run(model, n=10, temperature=1.0, seed=5)[1]]
    b = [t.id for t in run(model, n=10, temperature=1.0, seed=5)[1]]
    assert a == b
    _, toks = run(model, n=3, logprobs=3, logit_bias={0: -100.0, 2: -100.0})
    for t in toks:
        assert t.logprob <= 0 and len(t.top_logprobs) == 3
        assert t.top_logprobs[0][1] >= t.top_logprobs[1][1] >= t.top_logprobs[2][1]
        assert t.top_logprobs[0][0] == t.id  # greedy picks the most likely token
    seen = []

    def force_7(ids, logits):
        seen.append(len(ids))
        logits[:] = -np.inf
        logits[7] = 0.0

    _, toks = run(model, n=4, logits_processor=force_7)
    assert [t.id for t in toks] == [7] * 4
    n0 = len(model.tokenizer.encode(PROMPT))
    assert seen == [n0, n0 + 1, n0 + 2, n0 + 3]  # the processor sees prompt + generated ids


def test_chat_template_variables(tmp_path):
    tpl = ("{% if enable_thinking is defined and not enable_thinking %}NOTHINK{% endif %}"
           "{% for t in tools or [] %}[{{ t['name'] }}]{% endfor %}"
           "{% for m in messages %}{{ m['content'] }}{% endfor %}")
    p = write_tiny_model(tmp_path / "t.gguf", override=lambda w: w.add_string("tokenizer.chat_template", tpl))
    m = Model.from_gguf(p)
    from slmkernels.model.generate import render_chat

    msgs = [{"role": "user", "content": "hi"}]
    assert render_chat(m, msgs) == "hi"
    assert render_chat(m, msgs, enable_thinking=False, tools=[{"name": "calc"}]) == "NOTHINK[calc]hi"
    g = m.chat(msgs, 3, enable_thinking=False, temperature=0.0)
    assert g.stats.prompt_tokens == len(m.tokenizer.encode("NOTHINKhi", add_bos=False))
    list(g)


# ---- prefix reuse ----
def test_prefix_reuse_gives_the_same_tokens(path):
    """Turn after turn, a conversation reuses its parked prefix (prefilling only the new part)
    and decodes exactly the tokens a fresh model decodes without reuse."""
    reuse, fresh = Model.from_gguf(path), Model.from_gguf(path)
    msgs = [{"role": "user", "content": "hello"}]
    for turn in range(4):
        kw = dict(logit_bias={0: -100.0, 2: -100.0})
        g1 = reuse.chat(msgs, 4, **kw)
        a = [t.id for t in g1]
        g2 = fresh.chat(msgs, 4, reuse_prefix=False, **kw)
        b = [t.id for t in g2]
        assert a == b
        if turn:
            assert g1.stats.cached_tokens > 0 and g2.stats.cached_tokens == 0
        msgs += [{"role": "assistant", "content": g1.text}, {"role": "user", "content": "wo" * (turn + 1)}]
    assert fresh.cache.stats()["sequences"] == 0


def test_prefix_diverging_midway_truncates(model):
    ids = model.tokenizer.encode("hello world hello world")
    list(model.generate(ids, 2))
    pc = prefix_cache(model)
    assert len(pc) == 1
    other = ids[:5] + [7, 8, 9]
    g = model.generate(other, 2)
    toks = [t.id for t in g]
    assert g.stats.cached_tokens == 5
    assert toks == [t.id for t in model.generate(other, 2, reuse_prefix=False)]
    # same prompt again: everything but its last token comes from the cache
    g = model.generate(other, 2)
    list(g)
    assert g.stats.cached_tokens == len(other) - 1


def test_full_pool_evicts_least_recently_used(path):
    """A pool with room for about two long sequences: parked prefixes are evicted oldest first
    as new prompts arrive; no call fails."""
    m = Model.from_gguf(path, context=128)
    pc = prefix_cache(m)
    rng = np.random.default_rng(0)
    prompts = [rng.integers(3, 200, 90).tolist() for _ in range(5)]
    for p in prompts:
        list(m.generate(p, 4, logit_bias={0: -100.0, 2: -100.0}))
    assert 1 <= len(pc) < 5
    kept = list(pc._entries.values())
    assert tuple(prompts[-1]) == kept[-1][:90]  # the most recent stays
    stats = m.cache.stats()
    assert stats["sequences"] == len(pc)


def test_abandoned_generation_parks_its_sequence(model):
    g = model.generate(PROMPT, 50, logit_bias={0: -100.0, 2: -100.0})
    it = iter(g)
    first = [next(it) for _ in range(3)]
    it.close()
    assert len(first) == 3 and model.cache.stats()["sequences"] == 1
    g2 = model.generate(model.tokenizer.encode(PROMPT) + [t.id for t in first], 1)
    list(g2)
    assert g2.stats.cached_tokens == len(model.tokenizer.encode(PROMPT)) + 2


def test_finish_reasons_listed():
    assert set(FINISH_REASONS) == {"stop", "length", "eos", "context"}
    assert GenerationStats().finish_reason is None
    assert sk.KVCacheFullError


def test_parked_prefixes_never_fail_a_direct_forward(path):
    """Parked sequences hold KV blocks; a caller's own forward that needs them evicts them."""
    m = Model.from_gguf(path, context=128)  # a pool of two blocks of 128: the context and a copy-on-write tail
    list(m.generate(list(range(3, 100)), 4, logit_bias={0: -100.0, 2: -100.0}))
    assert m.cache.stats()["sequences"] == 1
    first = m.new_sequence()
    m.forward(first, list(range(3, 131)))  # the free block
    assert m.cache.stats()["sequences"] == 2
    s = m.new_sequence()
    m.forward(s, list(range(3, 131)))  # the parked sequence's block
    assert m.cache.stats()["sequences"] == 2 and m.cache.length(s) == 128


@pytest.mark.model
def test_smollm2_stop_10_does_not_leak(smollm2_path):
    """The reported bug: stop="10" returned ' 5, 6, 7, 8, 9, 1' (the '1' token leaked)."""
    m = Model.from_gguf(smollm2_path, context=256)
    full = m.generate("1, 2, 3, 4,", 30, add_bos=False)
    list(full)
    assert full.text.startswith(" 5, 6, 7, 8, 9, 10")
    g = m.generate("1, 2, 3, 4,", 30, add_bos=False, stop="10")
    assert "".join(t.text for t in g) == " 5, 6, 7, 8, 9, " and g.finish_reason == "stop"
