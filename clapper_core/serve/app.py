"""FastAPI routes in OpenAI's schema: /v1/models, /v1/chat/completions (JSON or server-sent events), /health.

Every refusal is a 4xx in OpenAI's error JSON, {"error": {"message", "type", "param", "code"}}; an
unexpected failure is a 500 in the same shape with its traceback in the server's log only; the
server keeps serving either way.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from clapper_core.serve.access import RequestError, VideoOpener, check_key
from clapper_core.serve.config import ServeConfig
from clapper_core.serve.schema import ChatRequest, conversation, parse_request
from clapper_core.serve.worker import Done, Failed, Job, ModelWorker, Piece, Ready


def error_body(message: str, kind: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _error_response(exc: RequestError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(error_body(str(exc), exc.kind, exc.param, exc.code), exc.status, headers=headers)


def build_app(config: ServeConfig, worker: ModelWorker, settings, opener: VideoOpener) -> FastAPI:
    """The ASGI app over a running `worker`; `settings` gives the defaults a request does not set."""
    app = FastAPI(title="clapper", docs_url=None, redoc_url=None, openapi_url=None)
    created = int(time.time())

    @app.exception_handler(RequestError)
    async def _refused(request: Request, exc: RequestError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return JSONResponse(error_body(f"{request.method} {request.url.path}: {exc.detail}", kind), exc.status_code)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        import sys
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
        return JSONResponse(error_body(f"internal error ({type(exc).__name__}); see the server's log",
                                       "server_error"), 500)

    @app.get("/health")
    async def health() -> dict:
        c = worker.cache.stats()
        return {"status": "ok", "model": settings.model, "waiting": worker.waiting, "served": worker.served,
                "cache": {"entries": c.entries, "bytes": c.nbytes, "max_bytes": c.max_bytes, "hits": c.hits,
                          "misses": c.misses, "evictions": c.evictions}}

    @app.get("/v1/models")
    async def models(request: Request) -> dict:
        check_key(config, request.headers.get("authorization"))
        return {"object": "list", "data": [{"id": settings.model, "object": "model", "created": created,
                                            "owned_by": "clapper"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        check_key(config, request.headers.get("authorization"))
        req = parse_request(await _read_body(request, config.max_body_bytes))
        job = await _start(req, request)
        first = await _next(job, request)  # the video is ready (or refused) before any header goes out
        if first is None:
            return JSONResponse(error_body("client closed the request"), 499)
        if isinstance(first, Failed):
            raise first.error
        assert isinstance(first, Ready)
        meta = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": settings.model}
        if req.stream:
            return StreamingResponse(_sse(job, meta, req.include_usage), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        return await _complete(job, meta, request)

    async def _start(req: ChatRequest, request: Request) -> Job:
        conv = conversation(req)
        video = await asyncio.to_thread(opener.open, conv.video_url)
        try:
            sampling = replace(settings.sampling_config(), **_given(fps=req.fps, max_frames=req.max_frames,
                                                                    segment_size=req.segment_size))
            gen = replace(settings.generation_config(), **_given(
                max_new_tokens=req.max_completion_tokens or req.max_tokens, temperature=req.temperature,
                top_p=req.top_p, seed=req.seed))
            job = Job(conv, video, sampling, gen, req.stops, asyncio.get_running_loop())
            worker.submit(job)
        except Exception:
            video.discard()
            raise
        return job

    return app


def _given(**values) -> dict:
    return {k: v for k, v in values.items() if v is not None}


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 past `limit` bytes before it is all read."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestError(f"the request body is larger than this server's limit of {limit >> 20} MB", 413,
                           code="request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(f"the request body is larger than this server's limit of {limit >> 20} MB", 413,
                               code="request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


async def _next(job: Job, request: Request, poll_s: float = 0.25):
    """The job's next event, or None (and the job cancelled) once the client has hung up: a request waiting in
    the queue, or for a whole answer, gives up its place as soon as its client is gone."""
    try:
        while True:
            try:
                return await asyncio.wait_for(job.events.get(), timeout=poll_s)
            except asyncio.TimeoutError:
                if await request.is_disconnected():
                    job.cancel()
                    return None
    except BaseException:
        job.cancel()
        raise


async def _complete(job: Job, meta: dict, request: Request) -> JSONResponse:
    """The whole answer in one response; a client that hangs up cancels the job."""
    pieces = []
    try:
        while True:
            event = await _next(job, request)
            if event is None:
                return JSONResponse(error_body("client closed the request"), 499)
            if isinstance(event, Piece):
                pieces.append(event.text)
            elif isinstance(event, Failed):
                raise event.error
            elif isinstance(event, Done):
                message = {"role": "assistant", "content": "".join(pieces)}
                return JSONResponse({**meta, "object": "chat.completion", "usage": event.usage,
                                     "choices": [{"index": 0, "message": message, "logprobs": None,
                                                  "finish_reason": event.finish_reason}],
                                     "record": event.record.to_dict()})
    finally:
        job.cancel()  # a no-op once done; frees the worker when the handler was cancelled


def _chunk(meta: dict, delta: dict | None, finish: str | None = None, **extra) -> str:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    body = {**meta, "object": "chat.completion.chunk", "choices": choices, **extra}
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


async def _sse(job: Job, meta: dict, include_usage: bool) -> AsyncIterator[str]:
    """OpenAI's chunks: the role, the text pieces, the finish reason, the usage if asked, then [DONE].
    When the client disconnects the generator is closed, and closing it cancels the job."""
    try:
        yield _chunk(meta, {"role": "assistant", "content": ""})
        while True:
            event = await job.events.get()
            if isinstance(event, Piece):
                yield _chunk(meta, {"content": event.text})
            elif isinstance(event, Failed):
                e = event.error
                yield f"data: {json.dumps(error_body(str(e), e.kind, e.param, e.code))}\n\n"
                break
            elif isinstance(event, Done):
                yield _chunk(meta, {}, event.finish_reason)
                if include_usage:
                    yield _chunk(meta, None, usage=event.usage, record=event.record.to_dict())
                break
        yield "data: [DONE]\n\n"
    finally:
        job.cancel()
