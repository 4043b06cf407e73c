"""Continuous batching: one thread owns the model; every step advances all active sequences by
one token through ``Model.forward_batch``; new requests join between steps (their prompt is
prefilled, reusing a parked prefix), finished or abandoned ones leave.

Admission keeps the KV pool from overflowing mid-generation: a request reserves the blocks its
prompt and ``max_new_tokens`` can need, and waits in the queue (FIFO) until the active ones leave
room. Parked prefixes (generate.PrefixCache) hold no reservation: they are evicted whenever a step
needs their blocks."""

from __future__ import annotations

import collections
import threading
import time
from typing import Callable

from ..model.generate import Decoding, Token, prefix_cache


class Request:
    """One generation submitted to the engine. ``emit(kind, payload)`` is called from the engine
    thread: ("token", Token), then ("done", finish_reason) or ("error", message)."""

    def __init__(self, decoding: Decoding, emit: Callable[[str, object], None]):
        self.decoding = decoding
        self.emit = emit
        self.cancelled = threading.Event()
        self.blocks = 0  # blocks per layer reserved while active
        self.submitted = time.perf_counter()

    def cancel(self) -> None:
        self.cancelled.set()


class Engine:
    def __init__(self, model, max_batch: int):
        self.model = model
        self.max_batch = max_batch
        self._pending: collections.deque[Request] = collections.deque()
        self._active: list[Request] = []
        self._cv = threading.Condition()
        self._stop = False
        cache = model.cache
        self._bt = cache.block_tokens
        self._blocks = cache.stats()["blocks_total"] // cache.n_layers  # per layer
        self._reserved = 0
        self.steps = 0
        self.tokens = 0
        self.cancelled = 0  # generations stopped because their client went away
        self._thread = threading.Thread(target=self._loop, name="slmkernels-engine", daemon=True)
        self._thread.start()

    # ---- the HTTP side ----
    def reservation(self, d: Decoding) -> int:
        """Blocks per layer a request may need: its prompt and every token it may generate,
        plus one for a copy-on-write tail."""
        n = min(len(d.ids) + d.max_new_tokens, self.model.context)
        return -(-n // self._bt) + 1

    def fits(self, d: Decoding) -> bool:
        return self.reservation(d) <= self._blocks

    def submit(self, req: Request) -> None:
        with self._cv:
            self._pending.append(req)
            self._cv.notify()

    def stats(self) -> dict:
        with self._cv:
            return dict(active=len(self._active), pending=len(self._pending), reserved_blocks=self._reserved,
                        blocks=self._blocks, steps=self.steps, tokens=self.tokens, cancelled=self.cancelled,
                        parked=len(prefix_cache(self.model)), sequences=self.model.cache.stats()["sequences"])

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._thread.join(timeout=30)

    # ---- the engine thread ----
    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._stop and not self._pending and not self._active:
                    self._cv.wait()
                if self._stop:
                    self._abort_all("the server is shutting down")
                    return
                admitted = self._admit_locked()
            for req in admitted:
                self._start(req)
            self._drop_cancelled()
            if self._active:
                self._step()

    def _admit_locked(self) -> list[Request]:
        out = []
        while self._pending and len(self._active) + len(out) < self.max_batch:
            req = self._pending[0]
            if req.cancelled.is_set():
                self._pending.popleft()
                continue
            need = self.reservation(req.decoding)
            if self._reserved + need > self._blocks:
                break  # FIFO: it waits for room, and so do those behind it
            self._pending.popleft()
            req.blocks = need
            self._reserved += need
            out.append(req)
        return out

    def _release(self, req: Request) -> None:
        with self._cv:
            self._reserved -= req.blocks
            req.blocks = 0
            if req in self._active:
                self._active.remove(req)

    def _finish(self, req: Request, kind: str, payload) -> None:
        try:
            req.decoding.close()
        finally:
            self._release(req)
            req.emit(kind, payload)

    def _emit_tokens(self, req: Request, tokens: list[Token]) -> None:
        for t in tokens:
            req.emit("token", t)
        self.tokens += len(tokens)

    def _start(self, req: Request) -> None:
        d = req.decoding
        try:
            logits = d.start()
            self._emit_tokens(req, d.advance(logits))
        except Exception as e:  # noqa: BLE001 (reported to the client, the server goes on)
            self._finish(req, "error", f"{type(e).__name__}: {e}")
            return
        if d.finish_reason is not None:
            self._finish(req, "done", d.finish_reason)
        else:
            with self._cv:
                self._active.append(req)

    def _drop_cancelled(self) -> None:
        for req in [r for r in self._active if r.cancelled.is_set()]:
            self.cancelled += 1
            self._finish(req, "done", "cancelled")

    def _step(self) -> None:
        batch = list(self._active)
        seqs = [r.decoding.seq for r in batch]
        ids = [r.decoding.next_input for r in batch]
        m = self.model
        try:
            logits = m.forward_batch(seqs, ids)
        except Exception as e:  # noqa: BLE001
            for req in batch:
                self._finish(req, "error", f"{type(e).__name__}: {e}")
            return
        self.steps += 1
        for i, req in enumerate(batch):
            d = req.decoding
            try:
                self._emit_tokens(req, d.advance(logits[i]))
            except Exception as e:  # noqa: BLE001 (a logits processor or grammar failed)
                self._finish(req, "error", f"{type(e).__name__}: {e}")
                continue
            if d.finish_reason is not None:
                self._finish(req, "done", d.finish_reason)

    def _abort_all(self, message: str) -> None:
        for req in list(self._active) + list(self._pending):
            if req.decoding.seq is not None:
                req.decoding.close()
            req.emit("error", message)
        self._active.clear()
        self._pending.clear()
