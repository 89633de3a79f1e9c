"""Asking a running `clapper serve` instead of loading a model: what `clapper ask --server URL` uses.

    job = open_remote("http://127.0.0.1:8000", "clip.mp4", settings)
    for item in job.stream("what happens?"):      # text pieces, then a Record, as runner.VideoJob gives them
        ...

Standard library only (urllib): the client needs nothing the server needs. On a loopback server the
video goes by its absolute path (the server reads it from disk); to another machine it goes inline
as a data: URL, within that server's size limit. With `conversation=True` each question is a turn of
one chat, the earlier answers sent along as OpenAI's messages.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from clapper_core.errors import ServerError, VideoNotFoundError
from clapper_core.records import Record
from clapper_core.serve.config import API_KEY_ENV, is_loopback

SERVER_ENV = "CLAPPER_SERVER"


class RemoteVideo:
    """One video on a server: `stream(question)` yields the answer's pieces, then its `Record`."""

    def __init__(self, server: str, video: str | os.PathLike[str], settings: Any, *, api_key: str | None = None,
                 conversation: bool = False, timeout: float = 600) -> None:
        path = Path(video)
        if not path.is_file():
            raise VideoNotFoundError(f"{path}: no such file; check the path")
        self.server = server.rstrip("/").removesuffix("/v1")
        if "://" not in self.server:
            self.server = "http://" + self.server
        self.video, self.settings, self.timeout = str(video), settings, timeout
        self.api_key = api_key if api_key is not None else (os.environ.get(API_KEY_ENV) or None)
        self.history: list[tuple[str, str]] | None = [] if conversation else None
        host = urllib.parse.urlsplit(self.server).hostname or ""
        self.url = str(path.resolve()) if is_loopback(host) else _data_url(path)

    def _body(self, question: str) -> dict:
        s = self.settings
        messages: list[dict] = []
        for i, (asked, answered) in enumerate([*(self.history or ()), (question, None)]):
            video = [{"type": "video_url", "video_url": {"url": self.url}}]
            content = video + [{"type": "text", "text": asked}] if i == 0 else asked
            messages.append({"role": "user", "content": content})
            if answered is not None:
                messages.append({"role": "assistant", "content": answered})
        body = {"model": s.model, "messages": messages, "stream": True, "stream_options": {"include_usage": True},
                "max_tokens": s.max_new_tokens, "temperature": s.temperature, "top_p": s.top_p,
                "fps": s.fps, "max_frames": s.max_frames, "segment_size": s.segment_size}
        return body | ({"seed": s.seed} if s.seed is not None else {})

    def stream(self, question: str) -> Iterator[str | Record]:
        pieces, record = [], None
        for event in self._events(self._body(question)):
            if "error" in event:
                raise ServerError(f"the server failed: {event['error'].get('message')}")
            for choice in event.get("choices") or ():
                if text := (choice.get("delta") or {}).get("content"):
                    pieces.append(text)
                    yield text
            if event.get("record"):
                record = Record.from_dict(event["record"])
        if record is None:
            raise ServerError(f"{self.server} ended the answer without its record; is it a clapper server?")
        record.video, record.question, record.answer = self.video, question, "".join(pieces)
        if self.history is not None:
            self.history.append((question, record.answer))
        yield record

    def _events(self, body: dict) -> Iterator[dict]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.server + "/v1/chat/completions", json.dumps(body).encode(), headers)
        try:
            resp = urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            raise ServerError(f"the server refused: {_message(exc)}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServerError(f"cannot reach a clapper server at {self.server} ({reason}); start one with "
                              "`clapper serve`, or check --server / CLAPPER_SERVER") from None
        with resp:
            for raw in resp:
                line = raw.decode("utf-8").strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                yield json.loads(data)


def _message(exc: urllib.error.HTTPError) -> str:
    try:
        return f"{json.loads(exc.read())['error']['message']} (HTTP {exc.code})"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {exc.code} {exc.reason}"


def _data_url(path: Path) -> str:
    kind = mimetypes.guess_type(path.name)[0] or "video/mp4"
    return f"data:{kind};base64," + base64.b64encode(path.read_bytes()).decode()


def open_remote(server: str, video: str | os.PathLike[str], settings: Any, *, conversation: bool = False
                ) -> RemoteVideo:
    return RemoteVideo(server, video, settings, conversation=conversation)
