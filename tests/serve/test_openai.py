"""The server as the official `openai` client sees it: answers equal the local path's, streaming, chats, usage."""

from __future__ import annotations

import openai
import pytest

from tests.serve.harness import video_message


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key=server.key, max_retries=0, timeout=120)


def _local(local_model, served_dir, question, history=()):
    """What `clapper ask` would answer here: the same video, sampling and greedy generation, in this process."""
    from clapper_core.generation import VideoSession
    from clapper_core.video import load_clip

    loaded, settings = local_model
    session = VideoSession(loaded, load_clip(served_dir / "clip.mp4", settings.sampling_config()))
    return session.ask(question, settings.generation_config(), history=history), session


def test_an_answer_equals_the_local_one_with_usage_counting_the_video(client, local_model, served_dir):
    out = client.chat.completions.create(model="clapper-demo", messages=[video_message("clip.mp4", "what happens?")])
    expected, session = _local(local_model, served_dir, "what happens?")
    assert out.choices[0].message.content == expected
    assert out.choices[0].finish_reason in ("stop", "length") and out.model == "clapper-demo"
    usage = out.usage
    assert usage.model_extra["visual_tokens"] == session.num_visual_tokens > 0
    assert usage.prompt_tokens == session.last_stats.context_tokens > session.num_visual_tokens
    assert usage.completion_tokens == session.last_stats.new_tokens
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_streaming_gives_the_same_answer_in_pieces_then_usage(client):
    whole = client.chat.completions.create(model="m", messages=[video_message("clip.mp4", "what colour?")])
    chunks = list(client.chat.completions.create(model="m", messages=[video_message("clip.mp4", "what colour?")],
                                                 stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens > 0  # the video's prefix was already there
    assert len({c.id for c in chunks}) == 1


def test_a_conversation_remembers_the_earlier_answer(client, local_model, served_dir):
    first = client.chat.completions.create(model="m", messages=[video_message("clip.mp4", "what happens?")])
    answer = first.choices[0].message.content
    messages = [{"role": "system", "content": "You are a helpful assistant."},
                video_message("clip.mp4", "what happens?"), {"role": "assistant", "content": answer},
                {"role": "user", "content": "and what colour is it?"}]
    follow = client.chat.completions.create(model="m", messages=messages)
    expected, _ = _local(local_model, served_dir, "and what colour is it?", history=[("what happens?", answer)])
    assert follow.choices[0].message.content == expected
    assert follow.usage.prompt_tokens > first.usage.prompt_tokens + first.usage.completion_tokens


def test_a_video_by_data_url_or_another_path_is_the_cached_one(client, server, clip_data_url):
    by_path = client.chat.completions.create(model="m", messages=[video_message("clip.mp4", "where is it?")])
    hits = server.request("GET", "/health")[1]["cache"]["hits"]
    for url in (clip_data_url, "same.mp4", "file://" + str(server_dir(server) / "clip.mp4")):
        out = client.chat.completions.create(model="m", messages=[video_message(url, "where is it?")],
                                             extra_body={"max_frames": 96})
        assert out.choices[0].message.content == by_path.choices[0].message.content
        assert out.model_extra["record"]["timings"]["encode_s"] == 0.0  # not encoded again
    assert server.request("GET", "/health")[1]["cache"]["hits"] == hits + 3


def server_dir(server):
    return server.log.parent / "videos"


def test_sampling_knobs_ride_as_extra_fields(client):
    few = client.chat.completions.create(model="m", messages=[video_message("clip.mp4", "what happens?")],
                                         extra_body={"max_frames": 1})
    many = client.chat.completions.create(model="m", messages=[video_message("clip.mp4", "what happens?")])
    assert few.model_extra["record"]["frames"] == 1 < many.model_extra["record"]["frames"]
    assert few.usage.model_extra["visual_tokens"] < many.usage.model_extra["visual_tokens"]


def test_max_tokens_and_stop_cut_the_answer(client):
    msgs = [video_message("clip.mp4", "describe it")]
    full = client.chat.completions.create(model="m", messages=msgs).choices[0].message.content
    one = client.chat.completions.create(model="m", messages=msgs, max_tokens=1)
    assert one.choices[0].finish_reason == "length" and one.usage.completion_tokens == 1
    assert full.startswith(one.choices[0].message.content)
    if len(full.strip()) > 2:
        stop = full.strip()[1:3]
        cut = client.chat.completions.create(model="m", messages=msgs, stop=[stop])
        assert cut.choices[0].message.content == full[: full.index(stop)]
        assert cut.choices[0].finish_reason == "stop"
        streamed = client.chat.completions.create(model="m", messages=msgs, stop=stop, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == full[: full.index(stop)]


def test_sampling_with_a_seed_is_reproducible(client):
    msgs = [video_message("clip.mp4", "what happens?")]
    a, b = (client.chat.completions.create(model="m", messages=msgs, temperature=1.5, seed=3).choices[0].message.content
            for _ in range(2))
    assert a == b


def test_the_model_list(client):
    assert [m.id for m in client.models.list()] == ["clapper-demo"]


def test_the_official_client_raises_on_refusals(client):
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="m", messages=[video_message("../outside/secret.mp4", "q")])
    with pytest.raises(openai.BadRequestError, match="no such file"):
        client.chat.completions.create(model="m", messages=[video_message("missing.mp4", "q")])
    bad = openai.OpenAI(base_url=client.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="m", messages=[video_message("clip.mp4", "q")])
