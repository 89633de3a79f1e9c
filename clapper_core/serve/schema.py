"""The chat-completions request in OpenAI's schema, checked, and turned into one `Conversation`.

    {"model": "clapper-demo", "stream": true,
     "messages": [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "clip.mp4"}},
                                               {"type": "text", "text": "what happens?"}]},
                  {"role": "assistant", "content": "a ball rolls"},
                  {"role": "user", "content": "and then?"}],
     "fps": 1, "max_frames": 32}                     # clapper's own sampling knobs ride as extra fields

Types are checked strictly (a string where a number belongs is refused, not converted). The video
(a `video_url`, or an `image_url` as a one-frame video) belongs in the first user message, where the
chat template puts it; system messages come first; the last message is the user's question.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from clapper_core.serve.access import RequestError

_STRICT = ConfigDict(strict=True, extra="ignore")


class _Url(BaseModel):
    model_config = _STRICT
    url: str


class TextPart(BaseModel):
    model_config = _STRICT
    type: Literal["text"]
    text: str


class VideoPart(BaseModel):
    model_config = _STRICT
    type: Literal["video_url"]
    video_url: Union[_Url, str]


class ImagePart(BaseModel):
    model_config = _STRICT
    type: Literal["image_url"]
    image_url: Union[_Url, str]


Part = Annotated[Union[TextPart, VideoPart, ImagePart], Field(discriminator="type")]


class Message(BaseModel):
    model_config = _STRICT
    role: Literal["system", "developer", "user", "assistant"]
    content: Union[str, list[Part], None] = None


class StreamOptions(BaseModel):
    model_config = _STRICT
    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = _STRICT
    model: str | None = None
    messages: list[Message]
    stream: bool = False
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    seed: int | None = None
    stop: Union[str, Annotated[list[str], Field(max_length=4)], None] = None
    stream_options: StreamOptions | None = None
    n: Annotated[int, Field(ge=1, le=1)] | None = None  # one answer per request
    fps: Annotated[float, Field(gt=0)] | None = None
    max_frames: Annotated[int, Field(ge=1, le=4096)] | None = None
    segment_size: Annotated[int, Field(ge=1, le=64)] | None = None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def stops(self) -> tuple[str, ...]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return tuple(s for s in stops if s)


@dataclass(frozen=True)
class Conversation:
    video_url: str
    question: str
    history: tuple[tuple[str, str], ...] = ()  # earlier (question, answer) turns
    system: str | None = None


def parse_request(body: bytes) -> ChatRequest:
    """The body as a `ChatRequest`, or a 400 naming the first thing wrong."""
    try:
        return ChatRequest.model_validate_json(body)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        if err["type"] in ("json_invalid", "json_type"):
            raise RequestError(f"the request body is not a JSON object ({err['msg']})") from None
        where = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-")) or "body"
        raise RequestError(f"{where}: {err['msg']}", param=where) from None


def _text(content, index: int) -> tuple[str, str | None]:
    """(the message's text, its video URL or None)."""
    if content is None or isinstance(content, str):
        return content or "", None
    texts, videos = [], []
    for part in content:
        if isinstance(part, TextPart):
            texts.append(part.text)
        else:
            ref = part.video_url if isinstance(part, VideoPart) else part.image_url
            videos.append(ref.url if isinstance(ref, _Url) else ref)
    if len(videos) > 1:
        raise RequestError(f"messages.{index} holds {len(videos)} videos; one video per conversation",
                           param=f"messages.{index}")
    return "\n".join(texts), (videos[0] if videos else None)


def conversation(request: ChatRequest) -> Conversation:
    msgs = request.messages
    if not msgs:
        raise RequestError("messages is empty; send at least one user message with a video and a question",
                           param="messages")
    systems, turns, video = [], [], None
    for i, m in enumerate(msgs):
        text, url = _text(m.content, i)
        if m.role in ("system", "developer"):
            if turns:
                raise RequestError(f"messages.{i}: a system message after the conversation began; put it first",
                                   param=f"messages.{i}")
            systems.append(text)
            continue
        if url is not None:
            if video is not None or m.role != "user" or any(r == "user" for r, _ in turns):
                raise RequestError(f"messages.{i}: the video belongs in the first user message, once",
                                   param=f"messages.{i}")
            video = url
        if turns and turns[-1][0] == m.role:  # two user (or assistant) messages in a row read as one
            turns[-1] = (m.role, turns[-1][1] + "\n" + text)
        else:
            turns.append((m.role, text))
    if not turns or turns[-1][0] != "user":
        raise RequestError("the last message must be the user's question", param="messages")
    if turns[0][0] != "user":
        raise RequestError("the conversation must begin with a user message holding the video", param="messages")
    if video is None:
        raise RequestError("no video: add a video_url part to the first user message", param="messages")
    if not turns[-1][1].strip():
        raise RequestError("the question is empty; add a text part to the last user message", param="messages")
    history = tuple((turns[j][1], turns[j + 1][1]) for j in range(0, len(turns) - 1, 2))
    system = "\n".join(systems) if systems else None
    return Conversation(video_url=video, question=turns[-1][1], history=history, system=system)
