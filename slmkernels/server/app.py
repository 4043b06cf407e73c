"""The OpenAI-compatible HTTP API on Starlette: /v1/chat/completions, /v1/completions, /v1/models.

Requests are checked field by field (an unknown field, a wrong type, a value out of range, a
prompt that does not fit: 400 with OpenAI's error body ``{"error": {"message", "type", "param",
"code"}}``); a valid one becomes a generate.Decoding handed to the batching Engine, whose tokens
come back through an asyncio queue and go out as one JSON body or as server-sent events."""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import time
import uuid
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request as HTTPRequest
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..model.generate import prepare
from .engine import Engine, Request

MAX_BODY_BYTES = 8 << 20


class APIError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, type_: str = "invalid_request_error",
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.type, self.code = status, message, param, type_, code

    def response(self) -> JSONResponse:
        return JSONResponse({"error": {"message": self.message, "type": self.type, "param": self.param,
                                       "code": self.code}}, status_code=self.status)


# ---- request fields: name -> checker(value) returning the value to use ----
def _bad(param: str, what: str, v: Any) -> APIError:
    return APIError(400, f"{param} must be {what}, got {json.dumps(v)[:80]}", param)


def _number(lo: float, hi: float):
    def check(param, v):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
            raise _bad(param, f"a number in [{lo}, {hi}]", v)
        return float(v)
    return check


def _integer(lo: int, hi: int):
    def check(param, v):
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise _bad(param, f"an integer in {lo}..{hi}", v)
        return v
    return check


def _boolean(param, v):
    if not isinstance(v, bool):
        raise _bad(param, "true or false", v)
    return v


def _string(param, v):
    if not isinstance(v, str):
        raise _bad(param, "a string", v)
    return v


def _anything(param, v):
    return v


def _stop(param, v):
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    if isinstance(v, list) and len(v) <= 4 and all(isinstance(s, str) for s in v):
        return v
    raise _bad(param, "a string or a list of at most 4 strings", v)


def _logit_bias(param, v):
    if v is None:
        return None
    if not isinstance(v, dict):
        raise _bad(param, "an object mapping token ids to numbers in [-100, 100]", v)
    out = {}
    for k, b in v.items():
        try:
            t = int(k)
        except ValueError:
            raise _bad(param, "keyed by token ids", k) from None
        out[t] = _number(-100, 100)(f"{param}[{k}]", b)
    return out


def _one(param, v):
    if v != 1:
        raise APIError(400, f"{param} must be 1: this server returns one choice per request", param)
    return v


def _stream_options(param, v):
    if v is None:
        return {}
    if not isinstance(v, dict) or set(v) - {"include_usage"}:
        raise _bad(param, 'an object {"include_usage": bool}', v)
    return v


COMMON = {
    "model": _string, "max_tokens": _integer(1, 1 << 24), "temperature": _number(0, 2), "top_p": _number(0, 1),
    "n": _one, "stream": _boolean, "stream_options": _stream_options, "stop": _stop, "seed": _integer(0, 2**63 - 1),
    "presence_penalty": _number(-2, 2), "frequency_penalty": _number(-2, 2), "logit_bias": _logit_bias,
    "user": _string,
    # beyond OpenAI's fields, as llama.cpp's and vLLM's servers take them
    "top_k": _integer(0, 1 << 20), "min_p": _number(0, 1), "typical_p": _number(0, 1),
    "repetition_penalty": _number(0.01, 100), "repeat_penalty": _number(0.01, 100),
}
CHAT_FIELDS = dict(COMMON, messages=_anything, max_completion_tokens=_integer(1, 1 << 24), logprobs=_boolean,
                   top_logprobs=_integer(0, 20), response_format=_anything, chat_template_kwargs=_anything)
COMPLETION_FIELDS = dict(COMMON, prompt=_anything, logprobs=_integer(0, 5), echo=_anything, best_of=_one,
                         suffix=_anything, response_format=_anything)


def _fields(body: Any, allowed: dict, required: tuple[str, ...]) -> dict:
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object")
    for k in body:
        if k not in allowed:
            raise APIError(400, f"Unrecognized request argument supplied: {k}", k)
    for k in required:
        if k not in body:
            raise APIError(400, f"Missing required parameter: '{k}'", k)
    return {k: allowed[k](k, v) for k, v in body.items() if v is not None or k in ("stop", "logit_bias")}


def _messages(v: Any) -> list[dict]:
    if not isinstance(v, list) or not v:
        raise _bad("messages", "a non-empty array of messages", v)
    out = []
    for i, m in enumerate(v):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise APIError(400, f"messages[{i}] must be an object with a 'role'", f"messages[{i}]")
        content = m.get("content")
        if isinstance(content, list):  # content parts: text only
            texts = []
            for part in content:
                if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise APIError(400, f"messages[{i}].content: only text parts are supported", f"messages[{i}]")
                texts.append(part["text"])
            content = "".join(texts)
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise APIError(400, f"messages[{i}].content must be a string or text parts", f"messages[{i}]")
        out.append(dict(m, content=content))
    return out


class App:
    def __init__(self, model, model_name: str, *, max_batch: int = 8, api_key: str | None = None):
        self.model = model
        self.model_name = model_name
        self.api_key = api_key
        self.engine = Engine(model, max_batch)
        self.created = int(time.time())
        routes = [
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
            Route("/v1/completions", self.completions, methods=["POST"]),
            Route("/health", self.health, methods=["GET"]),
        ]
        self.asgi = Starlette(routes=routes, exception_handlers={404: self._not_found, 405: self._not_allowed})

    async def __call__(self, scope, receive, send):
        await self.asgi(scope, receive, send)

    async def _not_found(self, request, exc):
        return APIError(404, f"no route {request.url.path}", type_="not_found_error").response()

    async def _not_allowed(self, request, exc):
        return APIError(405, f"{request.method} is not allowed on {request.url.path}").response()

    # ---- routes ----
    async def health(self, request: HTTPRequest) -> Response:
        return JSONResponse(dict(status="ok", **self.engine.stats()))

    async def models(self, request: HTTPRequest) -> Response:
        if (err := self._auth(request)) is not None:
            return err
        return JSONResponse({"object": "list", "data": [
            {"id": self.model_name, "object": "model", "created": self.created, "owned_by": "slmkernels"}]})

    async def chat_completions(self, request: HTTPRequest) -> Response:
        return await self._handle(request, chat=True)

    async def completions(self, request: HTTPRequest) -> Response:
        return await self._handle(request, chat=False)

    def _auth(self, request: HTTPRequest) -> Response | None:
        if self.api_key is None:
            return None
        got = request.headers.get("authorization", "")
        if not secrets.compare_digest(got.encode(), f"Bearer {self.api_key}".encode()):
            return APIError(401, "Incorrect API key provided.", type_="invalid_request_error",
                            code="invalid_api_key").response()
        return None

    async def _handle(self, request: HTTPRequest, chat: bool) -> Response:
        if (err := self._auth(request)) is not None:
            return err
        try:
            body = await request.body()
            if len(body) > MAX_BODY_BYTES:
                raise APIError(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")
            try:
                data = json.loads(body)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise APIError(400, f"the request body is not valid JSON: {e}") from None
            # tokenizing, rendering the template and compiling a schema take time: off the event loop
            req = await run_in_threadpool(self._decoding, data, chat)
        except APIError as e:
            return e.response()
        return await self._respond(req, chat)

    def _decoding(self, data: Any, chat: bool):
        f = _fields(data, CHAT_FIELDS if chat else COMPLETION_FIELDS, ("messages",) if chat else ("prompt",))
        m = self.model
        sampling = dict(temperature=f.get("temperature", 1.0), top_p=f.get("top_p", 1.0), top_k=f.get("top_k", 0),
                        min_p=f.get("min_p", 0.0), typical_p=f.get("typical_p", 1.0),
                        presence_penalty=f.get("presence_penalty", 0.0),
                        frequency_penalty=f.get("frequency_penalty", 0.0),
                        repetition_penalty=f.get("repetition_penalty", f.get("repeat_penalty", 1.0)),
                        seed=f.get("seed"), logit_bias=f.get("logit_bias"))
        if sampling["top_p"] == 0.0:
            sampling["top_p"] = 1e-9  # OpenAI allows 0: only the most likely token
        if chat:
            if f.get("logprobs"):
                sampling["logprobs"] = f.get("top_logprobs", 0)
            elif "top_logprobs" in f:
                raise APIError(400, "top_logprobs needs logprobs: true", "top_logprobs")
            tkw = f.get("chat_template_kwargs") or {}
            if not isinstance(tkw, dict):
                raise _bad("chat_template_kwargs", "an object", tkw)
            from ..model.chat import TemplateError
            from ..model.generate import render_chat

            try:
                prompt: Any = render_chat(m, _messages(f["messages"]), **tkw)
            except TemplateError as e:
                raise APIError(400, f"the chat template refused the messages: {e}", "messages") from None
            add_bos = False
        else:
            if f.get("logprobs") is not None:
                sampling["logprobs"] = f["logprobs"]
            if f.get("echo") or f.get("suffix"):
                raise APIError(400, "echo and suffix are not supported", "echo" if f.get("echo") else "suffix")
            prompt = f["prompt"]
            if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
                prompt = prompt[0]
            if isinstance(prompt, list):
                if not prompt or not all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
                    raise _bad("prompt", "a string or an array of token ids (one prompt per request)", prompt)
                if not all(0 <= t < m.config.vocab for t in prompt):
                    raise APIError(400, f"prompt token ids must be in 0..{m.config.vocab - 1}", "prompt")
            elif not isinstance(prompt, str):
                raise _bad("prompt", "a string or an array of token ids", prompt)
            add_bos = None
        constraint = self._constraint(f.get("response_format"))
        n_prompt = len(m.tokenizer.encode(prompt, add_bos=add_bos)) if isinstance(prompt, str) else len(prompt)
        if n_prompt == 0:
            raise APIError(400, "the prompt is empty", "messages" if chat else "prompt")
        max_tokens = f.get("max_completion_tokens", f.get("max_tokens"))
        limit = m.context
        if n_prompt + (max_tokens or 1) > limit:
            raise APIError(400, f"This model's maximum context length is {limit} tokens. However, you requested "
                                f"{n_prompt + (max_tokens or 0)} tokens ({n_prompt} in the prompt, {max_tokens or 0} "
                                f"in the completion). Please reduce the prompt or the completion length.",
                           "max_tokens" if max_tokens else ("messages" if chat else "prompt"),
                           code="context_length_exceeded")
        if max_tokens is None:
            max_tokens = limit - n_prompt if chat else min(16, limit - n_prompt)
        try:
            d = prepare(m, prompt, max_tokens, stop=f.get("stop") or None, add_bos=add_bos, constraint=constraint,
                        **sampling)
        except (TypeError, ValueError) as e:
            raise APIError(400, str(e)) from None
        if not self.engine.fits(d):
            raise APIError(400, "the prompt and max_tokens need more KV cache than this server has", "max_tokens")
        return dict(decoding=d, stream=f.get("stream", False), include_usage=f.get("stream_options", {}).get(
            "include_usage", False), logprobs=sampling.get("logprobs"))

    def _constraint(self, rf: Any):
        if rf is None:
            return None
        if not isinstance(rf, dict) or rf.get("type") not in ("text", "json_object", "json_schema"):
            raise _bad("response_format", 'an object with type "text", "json_object" or "json_schema"', rf)
        if rf["type"] == "text":
            return None
        try:
            from ..model import structured
        except ImportError as e:
            raise APIError(400, f"structured output needs the [structured] extra: {e}", "response_format") from None
        if rf["type"] == "json_object":
            schema: Any = {"type": "object"}
        else:
            js = rf.get("json_schema")
            if not isinstance(js, dict) or not isinstance(js.get("schema", {}), dict):
                raise _bad("response_format.json_schema", 'an object {"name": ..., "schema": {...}}', js)
            schema = js.get("schema", {})
        try:
            return structured.JSONSchemaConstraint(self.model, schema)
        except (ValueError, TypeError) as e:
            raise APIError(400, f"response_format: {e}", "response_format") from None

    # ---- responses ----
    async def _respond(self, info: dict, chat: bool) -> Response:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        d = info["decoding"]
        req = Request(d, lambda kind, payload: loop.call_soon_threadsafe(queue.put_nowait, (kind, payload)))
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        created = int(time.time())
        self.engine.submit(req)
        if info["stream"]:
            return StreamingResponse(self._sse(req, queue, rid, created, chat, info),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        text, lps, reason = "", [], None
        try:
            while True:
                kind, payload = await queue.get()
                if kind == "token":
                    text += payload.text
                    lps.append(payload)
                elif kind == "error":
                    return APIError(500, payload, type_="server_error").response()
                else:
                    reason = payload
                    break
        finally:
            req.cancel()  # a client gone before the end frees its sequence
        usage = self._usage(d)
        obj = "chat.completion" if chat else "text_completion"
        if chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": _reason(reason),
                      "logprobs": self._chat_logprobs(lps) if info["logprobs"] is not None else None}
        else:
            choice = {"index": 0, "text": text, "finish_reason": _reason(reason),
                      "logprobs": self._completion_logprobs(lps) if info["logprobs"] is not None else None}
        return JSONResponse({"id": rid, "object": obj, "created": created, "model": self.model_name,
                             "choices": [choice], "usage": usage, "system_fingerprint": "slmkernels"})

    async def _sse(self, req: Request, queue: asyncio.Queue, rid: str, created: int, chat: bool, info: dict):
        obj = "chat.completion.chunk" if chat else "text_completion"

        def chunk(delta_or_text, reason=None, lp=None) -> bytes:
            if chat:
                choice = {"index": 0, "delta": delta_or_text, "finish_reason": reason, "logprobs": lp}
            else:
                choice = {"index": 0, "text": delta_or_text, "finish_reason": reason, "logprobs": lp}
            body = {"id": rid, "object": obj, "created": created, "model": self.model_name, "choices": [choice],
                    "system_fingerprint": "slmkernels"}
            return b"data: " + json.dumps(body, ensure_ascii=False).encode() + b"\n\n"

        try:
            if chat:
                yield chunk({"role": "assistant", "content": ""})
            while True:
                kind, payload = await queue.get()
                if kind == "token":
                    lp = None
                    if info["logprobs"] is not None:
                        lp = self._chat_logprobs([payload]) if chat else self._completion_logprobs([payload])
                    yield chunk({"content": payload.text} if chat else payload.text, None, lp)
                elif kind == "error":
                    err = {"error": {"message": payload, "type": "server_error", "param": None, "code": None}}
                    yield b"data: " + json.dumps(err).encode() + b"\n\n"
                    break
                else:
                    yield chunk({} if chat else "", _reason(payload))
                    if info["include_usage"]:
                        body = {"id": rid, "object": obj, "created": created, "model": self.model_name,
                                "choices": [], "usage": self._usage(req.decoding)}
                        yield b"data: " + json.dumps(body).encode() + b"\n\n"
                    break
            yield b"data: [DONE]\n\n"
        finally:
            req.cancel()  # the client went away mid-stream: the engine frees its sequence

    def _usage(self, d) -> dict:
        s = d.stats
        return {"prompt_tokens": s.prompt_tokens, "completion_tokens": s.generated_tokens,
                "total_tokens": s.prompt_tokens + s.generated_tokens,
                "prompt_tokens_details": {"cached_tokens": s.cached_tokens}}

    def _piece(self, t: int) -> str:
        return self.model.tokenizer.token_to_piece(t).decode("utf-8", errors="replace")

    def _chat_logprobs(self, toks) -> dict:
        content = []
        for t in toks:
            piece = self._piece(t.id)
            content.append({"token": piece, "logprob": t.logprob, "bytes": list(piece.encode()),
                            "top_logprobs": [{"token": self._piece(i), "logprob": lp,
                                              "bytes": list(self._piece(i).encode())} for i, lp in t.top_logprobs or []]})
        return {"content": content}

    def _completion_logprobs(self, toks) -> dict:
        return {"tokens": [self._piece(t.id) for t in toks], "token_logprobs": [t.logprob for t in toks],
                "top_logprobs": [{self._piece(i): lp for i, lp in t.top_logprobs or []} for t in toks],
                "text_offset": []}


def _reason(r: str | None) -> str | None:
    """OpenAI's names: an end-of-generation token is a natural "stop"; the context limit is "length"."""
    return {"eos": "stop", "context": "length", "cancelled": "stop"}.get(r, r)
