"""Several Python threads on the same kernels, KV cache and model at once.

Every kernel releases the GIL, so these threads really run together in C++. What is promised
(README "Threads"): kernels are re-entrant (a call made while another thread holds the pool
runs on its caller's thread) and give the same bits as alone; a KVCache is guarded by its own
lock (mutations exclusive, reads and attention shared); a Model runs one forward step at a
time (its scratch buffers are per model), so calls from several threads are serialized and
each gives the bits it gives alone. set_num_threads waits for the call holding the pool.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import slmkernels as sk

N_THREADS = 4


def hammer(fn, n_threads=N_THREADS):
    """Runs fn(thread_index) in n_threads threads released together; re-raises the first error."""
    barrier = threading.Barrier(n_threads)
    errors: list[BaseException] = []

    def run(i):
        try:
            barrier.wait()
            fn(i)
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]


# ---- kernels ----


def _kernel_jobs(rng):
    """(name, call) pairs over fixed inputs; each call returns a fresh array."""
    x = rng.standard_normal((8, 256)).astype(np.float32)
    wq = sk.quantize(rng.standard_normal((96, 256)).astype(np.float32), "q4_k")
    w8 = sk.pack(sk.quantize(rng.standard_normal((64, 256)).astype(np.float32), "q8_0"))
    wf = rng.standard_normal((40, 256)).astype(np.float16)
    g = rng.standard_normal((8, 256)).astype(np.float32)
    nw = rng.standard_normal(256).astype(np.float32)
    r = rng.standard_normal((8, 4, 64)).astype(np.float32)
    pos = np.arange(100, 108)
    table = sk.quantize(rng.standard_normal((50, 64)).astype(np.float32), "q5_1")
    ids = rng.integers(0, 50, 20)
    cache = sk.KVCache(1, 2, 64, capacity_tokens=256, dtype="q8_0")
    s = cache.new_sequence()
    kv = rng.standard_normal((100, 2, 64)).astype(np.float32)
    cache.append(0, s, kv, -kv)
    q = rng.standard_normal((5, 4, 64)).astype(np.float32)
    return [
        ("matmul q4_k", lambda: sk.matmul(x, wq)),
        ("matmul packed q8_0", lambda: sk.matmul(x, w8)),
        ("matmul f16", lambda: sk.matmul(x, wf)),
        ("quantize q6_k", lambda: np.asarray(sk.quantize(x, "q6_k").data).copy()),
        ("dequantize q4_k", lambda: sk.dequantize(wq)),
        ("rmsnorm", lambda: sk.rmsnorm(x, nw, 1e-5)),
        ("swiglu", lambda: sk.swiglu(x, g)),
        ("geglu", lambda: sk.geglu(x, g)),
        ("reglu", lambda: sk.reglu(x, g)),
        ("rope", lambda: sk.rope(r, pos, theta=10000.0, mode="neox")),
        ("embedding", lambda: sk.embedding(table, ids)),
        ("attention", lambda: sk.attention(q, cache, 0, s, window=40)),
        ("attention_batch", lambda: sk.attention_batch(q[:1], cache, 0, [s])),
    ]


def test_kernels_are_reentrant_and_give_the_same_bits():
    jobs = _kernel_jobs(np.random.default_rng(0))
    ref = {name: call() for name, call in jobs}

    def work(i):
        order = np.random.default_rng(i).permutation(len(jobs))
        for _ in range(6):
            for j in order:
                name, call = jobs[j]
                got = call()
                assert got.tobytes() == ref[name].tobytes(), f"{name} differs under concurrency"

    hammer(work)


def test_set_num_threads_while_kernels_run():
    jobs = _kernel_jobs(np.random.default_rng(1))
    ref = {name: call() for name, call in jobs}
    before = sk.get_num_threads()
    stop = threading.Event()

    def work(i):
        if i == 0:
            for n in [1, 2, 3, 1, 2] * 4:
                sk.set_num_threads(n)
            stop.set()
            return
        while not stop.is_set():
            for name, call in jobs:
                assert call().tobytes() == ref[name].tobytes(), f"{name} changed with the thread count"

    try:
        hammer(work, 3)
    finally:
        sk.set_num_threads(before)


def test_set_isa_while_kernels_run():
    """A call runs one ISA's kernels from start to end: its result is the one some ISA gives."""
    isas = sk.cpu_info()["supported_isas"]
    before = sk.get_isa()
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 256)).astype(np.float32)
    w = sk.quantize(rng.standard_normal((64, 256)).astype(np.float32), "q4_0")
    refs = set()
    try:
        for isa in isas:
            sk.set_isa(isa)
            refs.add(sk.matmul(x, w).tobytes())
        stop = threading.Event()

        def work(i):
            if i == 0:
                for k in range(40):
                    sk.set_isa(isas[k % len(isas)])
                stop.set()
                return
            while not stop.is_set():
                assert sk.matmul(x, w).tobytes() in refs

        hammer(work, 3)
    finally:
        sk.set_isa(before)


# ---- one KV cache, many threads ----


def test_kvcache_hammered_by_threads():
    """Each thread grows, reads, attends over, forks, truncates and frees its own sequences of
    one shared cache while one more thread reads a shared sequence; at the end every sequence
    holds exactly what its thread wrote and every block is accounted for."""
    D, H = 32, 2
    c = sk.KVCache(2, H, D, capacity_tokens=4096, block_tokens=8, dtype="f16", layer_windows=[None, 16])
    shared = c.new_sequence()
    c.extend(shared, 20)
    base = np.random.default_rng(9).standard_normal((20, H, D)).astype(np.float32)
    for layer in range(2):
        c.write(layer, shared, base, -base)
    shared_keys = c.keys(0, shared)
    q = np.ones((1, 2 * H, D), np.float32)
    shared_out = sk.attention(q, c, 0, shared)
    results: dict[int, tuple[int, np.ndarray]] = {}

    def work(i):
        rng = np.random.default_rng(100 + i)
        if i == 0:  # the reader
            for _ in range(300):
                assert c.keys(0, shared).tobytes() == shared_keys.tobytes()
                assert sk.attention(q, c, 0, shared).tobytes() == shared_out.tobytes()
                c.stats()
            return
        s = c.new_sequence()
        rows = []
        for step in range(40):
            n = int(rng.integers(1, 6))
            k = rng.standard_normal((n, H, D)).astype(np.float32)
            c.extend(s, n)
            for layer in range(2):
                c.write(layer, s, k, -k)
            rows.append(k)
            sk.attention(np.ones((n, 2 * H, D), np.float32), c, 0, s)
            if step % 7 == 6:
                f = c.fork(s)
                c.extend(f, 1)
                for layer in range(2):
                    c.write(layer, f, k[:1], k[:1])
                c.free(f)
            if step % 9 == 8:
                keep = int(rng.integers(0, c.length(s) + 1))
                c.truncate(s, keep)
                allk = np.concatenate(rows)[:keep]
                rows = [allk] if keep else []
        results[i] = (s, np.concatenate(rows) if rows else np.zeros((0, H, D), np.float32))

    hammer(work, N_THREADS + 1)
    for _i, (s, k) in results.items():
        assert c.length(s) == len(k)
        np.testing.assert_array_equal(c.keys(0, s), k.astype(np.float16).astype(np.float32))
        np.testing.assert_array_equal(c.values(0, s), (-k).astype(np.float16).astype(np.float32))
        c.free(s)
    c.free(shared)
    assert c.stats()["blocks_used"] == 0 and c.sequences() == []


# ---- one model, many threads ----


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    pytest.importorskip("gguf")
    from tiny_models import write_tiny_model

    path = write_tiny_model(tmp_path_factory.mktemp("m") / "tiny.gguf")
    return sk.Model.from_gguf(path, context=96, max_sequences=N_THREADS + 2)


def test_model_forward_from_threads_gives_the_bits_of_a_single_thread(model):
    """Model.forward from several threads, each on its own sequence (a prefill, then decode
    steps): every thread's logits are those of the same steps run alone. (Before the model
    serialized its steps, the threads shared its scratch buffers and got wrong logits.)"""
    prompt = np.arange(3, 3 + 60) % model.config.vocab

    def run_alone():
        s = model.new_sequence()
        out = [model.forward(s, prompt, all_logits=True)]
        for t in range(8):
            out.append(model.forward(s, [t + 5]))
        model.free(s)
        return out

    ref = run_alone()

    def work(i):
        for _ in range(3):
            got = run_alone()
            for a, b in zip(got, ref):
                assert a.tobytes() == b.tobytes(), f"thread {i}: logits differ from a single-threaded run"

    hammer(work)
    assert model.cache.sequences() == []


def test_model_forward_batch_and_forward_together(model):
    prompt = [5, 6, 7, 8]
    s0 = model.new_sequence()
    model.forward(s0, prompt)
    ref_batch = model.forward_batch([s0], [9])
    model.free(s0)

    def work(i):
        for _ in range(10):
            s = model.new_sequence()
            model.forward(s, prompt)
            if i % 2:
                got = model.forward_batch([s], [9])[0]
                assert got.tobytes() == ref_batch[0].tobytes()
            else:
                got = model.forward(s, [9])
                assert got.tobytes() == ref_batch[0].tobytes()
            model.free(s)

    hammer(work)
    assert model.cache.sequences() == []
