"""slmkernels serve with the official openai client on 127.0.0.1: completions, chat, streaming,
16 concurrent streams equal to their solo outputs (continuous batching is batch-invariant),
disconnects, a full pool that queues, bad requests that get 4xx and leave the server serving."""

from __future__ import annotations

import json
import threading
import time

import pytest

pytest.importorskip("gguf")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")

from slmkernels.model import Model  # noqa: E402
from tiny_models import write_tiny_model  # noqa: E402
from slmkernels.server.testing import serve_in_thread  # noqa: E402

NO_EOS = {"0": -100, "2": -100}  # the tiny model's end-of-generation tokens, kept out of the way
TIMEOUT = 60


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    # a long context, so a stream can be interrupted before it ends
    return write_tiny_model(tmp_path_factory.mktemp("srv") / "m.gguf",
                            override=lambda w: w.add_uint32("llama.context_length", 2048))


@pytest.fixture(scope="module")
def server(path):
    m = Model.from_gguf(path, context=256, max_sequences=16)
    with serve_in_thread(m, "tiny", max_batch=16) as (app, url):
        yield app, url


def client(url, **kw):
    return openai.OpenAI(base_url=url, api_key="none", timeout=TIMEOUT, max_retries=0, **kw)


def wait_idle(app, timeout=10.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        s = app.engine.stats()
        if s["active"] == 0 and s["pending"] == 0:
            return s
        time.sleep(0.01)
    raise AssertionError(f"the engine did not go idle: {app.engine.stats()}")


def test_models_and_completions(server):
    app, url = server
    c = client(url)
    assert [m.id for m in c.models.list().data] == ["tiny"]
    r = c.completions.create(model="tiny", prompt="hello", max_tokens=8, temperature=0, logit_bias=NO_EOS)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 8
    r2 = c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hello"}], max_tokens=5,
                                   temperature=0, logit_bias=NO_EOS, logprobs=True, top_logprobs=2)
    ch = r2.choices[0]
    assert ch.finish_reason == "length" and ch.message.role == "assistant" and r2.usage.completion_tokens == 5
    assert len(ch.logprobs.content) == 5 and all(len(t.top_logprobs) == 2 for t in ch.logprobs.content)
    stream = c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hello"}], max_tokens=5,
                                       temperature=0, logit_bias=NO_EOS, stream=True,
                                       stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(k.choices[0].delta.content or "" for k in chunks if k.choices)
    assert text == ch.message.content
    assert [k.choices[0].finish_reason for k in chunks if k.choices][-1] == "length"
    assert chunks[-1].usage.completion_tokens == 5


def test_stop_and_seed(server):
    _, url = server
    c = client(url)
    kw = dict(model="tiny", prompt="hello", max_tokens=20, logit_bias=NO_EOS)
    full = c.completions.create(temperature=0, **kw).choices[0].text
    stop = full[5:8]
    r = c.completions.create(temperature=0, stop=[stop], **kw)
    assert r.choices[0].text == full[: full.index(stop)] and r.choices[0].finish_reason == "stop"
    a = c.completions.create(temperature=1.0, seed=7, **kw).choices[0].text
    b = c.completions.create(temperature=1.0, seed=7, **kw).choices[0].text
    assert a == b


def test_sixteen_concurrent_streams_equal_their_solo_outputs(server):
    """Each client streams its own prompt while 15 others do; every stream is exactly what that
    prompt gives alone (no token lost, repeated or taken from another stream)."""
    app, url = server
    c = client(url)
    prompts = [f"hello {'world ' * (i % 5)}{i}" for i in range(16)]

    def one(p, out, i):
        s = c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": p}], max_tokens=24,
                                      temperature=0, logit_bias=NO_EOS, stream=True)
        out[i] = "".join(k.choices[0].delta.content or "" for k in s if k.choices)

    solo = [None] * 16
    for i, p in enumerate(prompts):
        one(p, solo, i)
    together = [None] * 16
    threads = [threading.Thread(target=one, args=(p, together, i)) for i, p in enumerate(prompts)]
    steps0 = app.engine.stats()["steps"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert together == solo
    s = wait_idle(app)
    assert s["steps"] - steps0 < 16 * 24  # the streams were batched, not run one after another


def test_disconnect_frees_the_sequence(path):
    m = Model.from_gguf(path, context=2048)
    body = dict(model="tiny", prompt="hello", max_tokens=2000, temperature=0, logit_bias=NO_EOS, stream=True)
    with serve_in_thread(m, "tiny") as (app, url), httpx.Client(timeout=TIMEOUT) as h:
        with h.stream("POST", url + "/completions", json=body) as r:
            it = r.iter_lines()
            assert next(it).startswith("data: ")
        # the response is closed after its first event
        s = wait_idle(app)
        assert s["cancelled"] == 1 and s["reserved_blocks"] == 0 and s["tokens"] < 2000
        assert m.cache.stats()["sequences"] == s["parked"] <= 1  # parked for reuse, nothing else held


def test_full_pool_queues(path):
    """Room for two sequences' worth of KV: eight requests at once all complete (queued)."""
    m = Model.from_gguf(path, context=64, max_sequences=2)
    with serve_in_thread(m, "tiny", max_batch=8) as (app, url):
        c = client(url)
        out = [None] * 8

        def one(i):
            out[i] = c.completions.create(model="tiny", prompt=f"hello {i}", max_tokens=40, temperature=0,
                                          logit_bias=NO_EOS)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT)
        assert all(r is not None and r.choices[0].finish_reason == "length" for r in out)
        assert wait_idle(app)["reserved_blocks"] == 0


@pytest.mark.parametrize("context,parallel", [(64, 1), (100, 3), (256, 4)])
def test_full_context_requests_are_admitted_together(path, context, parallel):
    """`parallel` requests that each need the full context (prompt + max_tokens = context) are
    admitted at once: the pool holds each one's blocks plus the copy-on-write tail it reserves.
    (The earlier pool, context x parallel tokens in blocks of 32, admitted 0, 2 and 3 of them.)"""
    from types import SimpleNamespace

    from slmkernels.server.engine import Engine, Request

    m = Model.from_gguf(path, context=context, max_sequences=parallel)
    e = Engine(m, max_batch=parallel)
    try:
        reqs = [Request(SimpleNamespace(ids=[5] * 10, max_new_tokens=context - 10), lambda *a: None)
                for _ in range(parallel)]
        with e._cv:  # held: the engine thread never sees these requests
            e._pending.extend(reqs)
            admitted = e._admit_locked()
            e._pending.clear()
            e._reserved = 0
        assert admitted == reqs
    finally:
        e.close()


def test_one_sequence_server_serves_its_full_context(path):
    """A full-context request to a one-sequence server completes (it got a 400, "more KV cache
    than this server has", when the copy-on-write tail did not fit beside the context)."""
    m = Model.from_gguf(path, context=64, max_sequences=1)
    with serve_in_thread(m, "tiny", max_batch=1) as (app, url):
        r = client(url).completions.create(model="tiny", prompt=[5] * 10, max_tokens=54, temperature=0,
                                           logit_bias=NO_EOS)
        assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 54
        assert wait_idle(app)["reserved_blocks"] == 0


@pytest.mark.parametrize("body,status,param", [
    (b"{not json", 400, None),
    (b"[1, 2]", 400, None),
    (json.dumps({"model": "tiny", "prompt": "hi", "frobnicate": 1}).encode(), 400, "frobnicate"),
    (json.dumps({"model": "tiny", "prompt": "hi", "max_tokens": 10**9}).encode(), 400, "max_tokens"),
    (json.dumps({"model": "tiny", "prompt": "hi " * 400}).encode(), 400, "prompt"),
    (json.dumps({"model": "tiny", "prompt": "hi", "temperature": "hot"}).encode(), 400, "temperature"),
    (json.dumps({"model": "tiny", "prompt": "hi", "n": 3}).encode(), 400, "n"),
    (json.dumps({"model": "tiny"}).encode(), 400, "prompt"),
    (json.dumps({"model": "tiny", "prompt": [10**9]}).encode(), 400, "prompt"),
    (json.dumps({"model": "tiny", "prompt": "hi", "logit_bias": {"x": 1}}).encode(), 400, "logit_bias"),
])
def test_bad_requests_get_openai_errors(server, body, status, param):
    app, url = server
    r = httpx.post(url + "/completions", content=body, headers={"content-type": "application/json"}, timeout=TIMEOUT)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["message"] and err["type"] == "invalid_request_error" and err["param"] == param
    # and the server goes on serving
    ok = client(url).completions.create(model="tiny", prompt="hello", max_tokens=2, temperature=0)
    assert ok.choices[0].text is not None


def test_bad_chat_requests(server):
    _, url = server
    c = client(url)
    for kw, param in [(dict(messages=[]), "messages"), (dict(messages=[{"content": "x"}]), "messages[0]"),
                      (dict(messages=[{"role": "user", "content": "x"}], top_logprobs=3), "top_logprobs"),
                      (dict(messages=[{"role": "user", "content": "x"}], response_format={"type": "yaml"}),
                       "response_format")]:
        with pytest.raises(openai.BadRequestError) as e:
            c.chat.completions.create(model="tiny", **kw)
        assert e.value.status_code == 400 and e.value.body["param"] == param
    r = httpx.get(url + "/nothing", timeout=TIMEOUT)
    assert r.status_code == 404 and "error" in r.json()


def test_api_key(path):
    m = Model.from_gguf(path, context=64)
    with serve_in_thread(m, "tiny", api_key="sesame") as (_, url):
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url, api_key="wrong", max_retries=0).models.list()
        assert openai.OpenAI(base_url=url, api_key="sesame", max_retries=0).models.list().data[0].id == "tiny"


def test_serve_listens_on_loopback_by_default():
    from slmkernels.cli_args import OneLineParser
    from slmkernels.server import add_parser

    p = OneLineParser(prog="slmkernels")
    add_parser(p.add_subparsers())
    args = p.parse_args(["serve", "--model", "x.gguf"])
    assert args.host == "127.0.0.1" and args.api_key is None
