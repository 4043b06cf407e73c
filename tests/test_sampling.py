"""The C++ sampler against its numpy spec (tests/sampling_reference.py), the numpy sampler it
replaced (same seeds, same tokens), its arguments, logprobs, and stop-string matching."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from sampling_reference import old_numpy_sample, sample_reference
from slmkernels import _core
from slmkernels.model.generate import SamplingParams, StopMatcher, sample


def _cpp(logits, u, *, context=(), generated=(), **kw):
    s = _core.Sampler(len(logits), **kw)
    if context:
        s.add_context(np.asarray(context, np.int64))
    for t in generated:
        s.accept(t)
    return s.sample(np.asarray(logits, np.float32), u)


params = st.fixed_dictionaries({}, optional={
    "temperature": st.sampled_from([0.0, 0.3, 1.0, 1.7]),
    "top_k": st.integers(0, 12),
    "top_p": st.sampled_from([1.0, 0.95, 0.5, 0.1]),
    "min_p": st.sampled_from([0.0, 0.05, 0.3]),
    "typical_p": st.sampled_from([1.0, 0.9, 0.4]),
    "repetition_penalty": st.sampled_from([1.0, 1.3, 0.8]),
    "presence_penalty": st.sampled_from([0.0, 0.5, -1.0]),
    "frequency_penalty": st.sampled_from([0.0, 0.7]),
})


@given(n=st.integers(1, 300), seed=st.integers(0, 2**31), kw=params, u=st.floats(0, 1, exclude_max=True),
       n_ctx=st.integers(0, 20), n_gen=st.integers(0, 20), ties=st.booleans())
def test_cpp_matches_reference(n, seed, kw, u, n_ctx, n_gen, ties):
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal(n) * 3).astype(np.float32)
    if ties:  # equal logits: top-k / top-p / argmax tie rules
        logits = np.round(logits).astype(np.float32)
    context = rng.integers(0, n, n_ctx).tolist()
    generated = rng.integers(0, n, n_gen).tolist()
    bias = {int(t): float(b) for t, b in zip(rng.integers(0, n, 3), rng.standard_normal(3) * 4)}
    want = sample_reference(logits, u, context=context, generated=generated, logit_bias=bias, **kw)
    got = _cpp(logits, u, context=context, generated=generated, logit_bias=bias, **kw)
    assert got == want


def test_same_seed_same_tokens_as_the_numpy_sampler():
    """The C++ sampler draws the one float64 numpy's Generator.choice drew, and picks the same
    token from it, so a seed gives the tokens it gave before (a SmolLM2-sized vocabulary)."""
    rng = np.random.default_rng(0)
    configs = [dict(temperature=0.8), dict(temperature=1.0, top_k=40), dict(temperature=0.7, top_p=0.9),
               dict(temperature=1.2, top_k=50, top_p=0.95, repetition_penalty=1.1, previous=list(range(0, 900, 7))),
               dict(repetition_penalty=1.3, previous=[5, 6, 7])]
    for trial in range(60):
        logits = (rng.standard_normal(49152) * 2.5).astype(np.float32)
        kw = configs[trial % len(configs)]
        assert sample(logits, np.random.default_rng(trial), **kw) == old_numpy_sample(
            logits, np.random.default_rng(trial), **kw)


def test_draw_is_numpy_choice():
    from sampling_reference import distribution, draw

    for seed in range(50):
        p = distribution(np.random.default_rng(seed).standard_normal(1000), temperature=0.5, top_p=0.9)
        assert draw(p, np.random.default_rng(seed).random()) == np.random.default_rng(seed).choice(len(p), p=p)


def test_distribution_statistics():
    """10 000 draws of a 4-token distribution land in proportion (chi-square, p > 1e-4)."""
    logits = np.log(np.array([0.1, 0.2, 0.3, 0.4])).astype(np.float32)
    rng = np.random.default_rng(3)
    s = _core.Sampler(4, temperature=1.0)
    counts = np.bincount([s.sample(logits, rng.random()) for _ in range(10000)], minlength=4)
    expect = np.array([0.1, 0.2, 0.3, 0.4]) * 10000
    assert ((counts - expect) ** 2 / expect).sum() < 21.1  # chi2(3) at p = 1e-4


def test_filters():
    logits = np.array([0.0, 5.0, 4.9, -3.0, 4.0], np.float32)
    assert _cpp(logits, 0.99, temperature=1.0, top_k=1) == 1
    assert {_cpp(logits, u, temperature=1.0, top_k=2) for u in np.linspace(0, 0.999, 50)} == {1, 2}
    assert {_cpp(logits, u, temperature=1.0, min_p=0.5) for u in np.linspace(0, 0.999, 50)} == {1, 2}
    assert _cpp(logits, 0.99, temperature=1.0, top_p=0.01) == 1
    assert _cpp(logits, 0.0, logit_bias={3: 100.0}) == 3
    assert _cpp(logits, 0.0, repetition_penalty=2.0, context=[1]) == 2
    assert _cpp(logits, 0.0, presence_penalty=0.2, generated=[1]) == 2
    assert _cpp(logits, 0.0, frequency_penalty=0.06, generated=[1, 1]) == 2
    assert _cpp(logits, 0.0, frequency_penalty=0.06, generated=[1]) == 1


def test_non_finite_logits():
    assert _cpp(np.array([np.nan, 1.0, np.nan], np.float32), 0.5, temperature=1.0) == 1
    assert _cpp(np.array([np.nan, 1.0, 2.0], np.float32), 0.0) == 2
    assert _cpp(np.array([1.0, np.inf, 2.0, np.inf], np.float32), 0.7, temperature=1.0) == 3
    assert _cpp(np.array([-np.inf, -np.inf, 0.0], np.float32), 0.7, temperature=1.0, top_p=0.5) == 2
    for kw in (dict(), dict(temperature=1.0), dict(logit_bias={0: 1.0})):
        with pytest.raises(ValueError, match="no token can be sampled"):
            _cpp(np.array([-np.inf, np.nan], np.float32), 0.5, **kw)


@pytest.mark.parametrize("name,value,match", [
    ("temperature", -1.0, "temperature"), ("temperature", math.nan, "temperature"),
    ("top_k", -1, "top_k"), ("top_p", 0.0, "top_p"), ("top_p", 1.5, "top_p"), ("min_p", -0.1, "min_p"),
    ("typical_p", 0.0, "typical_p"), ("repetition_penalty", 0.0, "repetition_penalty"),
    ("presence_penalty", math.inf, "presence_penalty"), ("frequency_penalty", 3.0, "frequency_penalty"),
    ("logprobs", 21, "logprobs"), ("seed", -1, "seed"), ("logit_bias", {10**6: 1.0}, "logit_bias"),
    ("logit_bias", {1: math.nan}, "logit_bias"),
])
def test_bad_parameters_name_themselves(name, value, match):
    with pytest.raises(ValueError, match=match):
        SamplingParams(**{name: value}).check(vocab=100)
    if name in ("temperature", "top_k", "top_p", "min_p", "typical_p", "repetition_penalty"):
        with pytest.raises(ValueError, match=match):
            _core.Sampler(100, **{name: value})


def test_sampler_argument_errors():
    s = _core.Sampler(10, temperature=1.0)
    with pytest.raises(ValueError, match="shape"):
        s.sample(np.zeros(11, np.float32), 0.5)
    with pytest.raises(ValueError, match="u must be"):
        s.sample(np.zeros(10, np.float32), 1.0)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        s.accept(10)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        s.add_context(np.array([3, -1]))
    with pytest.raises(ValueError, match="logit_bias token"):
        _core.Sampler(10, logit_bias={10: 1.0})


@given(n=st.integers(1, 500), seed=st.integers(0, 2**31), k=st.integers(0, 20))
def test_token_logprobs(n, seed, k):
    rng = np.random.default_rng(seed)
    logits = np.round(rng.standard_normal(n) * 4, 1).astype(np.float32)  # with ties
    t = int(rng.integers(0, n))
    lp, top = _core.token_logprobs(logits, t, k)
    z = logits.astype(np.float64)
    ref = z - (z.max() + np.log(np.exp(z - z.max()).sum()))
    assert lp == pytest.approx(ref[t], abs=1e-9)
    order = np.lexsort((np.arange(n), -z))[: min(k, n)]  # largest first, ties by id
    assert [i for i, _ in top] == order.tolist()
    np.testing.assert_allclose([v for _, v in top], ref[order], atol=1e-9)


# ---- stop strings ----
@given(text=st.text("ab1 0,", max_size=40), cuts=st.lists(st.integers(0, 40), max_size=10),
       stops=st.lists(st.text("ab10", min_size=1, max_size=4), max_size=3))
@example(text="100", cuts=[2], stops=["0", "100"])  # "0" completes first, "100" starts first
@example(text="10", cuts=[], stops=["0", "100"])  # ...and "100" never completes: flush decides
def test_stop_matcher_never_leaks(text, cuts, stops):
    """However the text is split into tokens, what is shown is exactly the text before the
    first stop string (all of it when none occurs), and nothing after it."""
    bounds = sorted({0, len(text), *[c for c in cuts if c <= len(text)]})
    m = StopMatcher(stops)
    shown = ""
    for a, b in zip(bounds, bounds[1:]):
        shown += m.push(text[a:b])
        if m.hit is not None:
            break
    else:
        shown += m.flush()
    hits = [(text.find(s), s) for s in stops if s and s in text]
    if hits:
        first = min(i for i, _ in hits)
        assert shown == text[:first]
        assert m.hit is not None and text.find(m.hit) == first
    else:
        assert shown == text and m.hit is None


def test_stop_spanning_tokens():
    """The reported bug: stop="10" over tokens ' 9', ',', ' 1', '0' showed ' 1'."""
    m = StopMatcher(["10"])
    out = [m.push(p) for p in [" 5", ",", " 9", ",", " 1", "0", ","]][:6]
    assert "".join(out) == " 5, 9, " and m.hit == "10"
