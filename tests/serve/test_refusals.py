"""Raw HTTP against the server: every bad or hostile request is a 4xx in OpenAI's error JSON, and it keeps serving."""

from __future__ import annotations

import base64
import http.client
import json
from urllib.parse import urlsplit

import pytest

from tests.serve.conftest import LIMIT_MB
from tests.serve.harness import video_message

CHAT = "/v1/chat/completions"


def _chat(url, question="what happens?", **extra):
    return {"model": "m", "messages": [video_message(url, question)], **extra}


def _big_data_url() -> str:
    return "data:video/mp4;base64," + base64.b64encode(b"\0" * int(LIMIT_MB * 2**20 * 1.2)).decode()


CASES = [  # (what, method, path, body, key, status, code)
    ("no key", "POST", CHAT, _chat("clip.mp4"), None, 401, "invalid_api_key"),
    ("wrong key", "POST", CHAT, _chat("clip.mp4"), "nope", 401, "invalid_api_key"),
    ("no key, model list", "GET", "/v1/models", None, None, 401, "invalid_api_key"),
    ("malformed JSON", "POST", CHAT, b'{"messages": [', "", 400, None),
    ("not an object", "POST", CHAT, b"[1, 2]", "", 400, None),
    ("empty body", "POST", CHAT, b"", "", 400, None),
    ("messages of the wrong type", "POST", CHAT, {"messages": "hello"}, "", 400, None),
    ("a number as a string", "POST", CHAT, _chat("clip.mp4", max_tokens="12"), "", 400, None),
    ("a bad temperature", "POST", CHAT, _chat("clip.mp4", temperature=-1), "", 400, None),
    ("an unknown role", "POST", CHAT, {"messages": [{"role": "wizard", "content": "hi"}]}, "", 400, None),
    ("an unknown part", "POST", CHAT, {"messages": [{"role": "user", "content": [{"type": "audio"}]}]}, "", 400,
     None),
    ("empty conversation", "POST", CHAT, {"messages": []}, "", 400, None),
    ("no video", "POST", CHAT, {"messages": [{"role": "user", "content": "what happens?"}]}, "", 400, None),
    ("no question", "POST", CHAT, _chat("clip.mp4", question=""), "", 400, None),
    ("ends with the assistant", "POST", CHAT,
     {"messages": [video_message("clip.mp4", "q"), {"role": "assistant", "content": "a"}]}, "", 400, None),
    ("two answers asked", "POST", CHAT, _chat("clip.mp4", n=2), "", 400, None),
    ("a missing video", "POST", CHAT, _chat("missing.mp4"), "", 400, "video_not_found"),
    ("a directory", "POST", CHAT, _chat("sub"), "", 400, "video_not_found"),
    ("not a video", "POST", CHAT, _chat("notes.txt"), "", 400, "invalid_video"),
    ("traversal", "POST", CHAT, _chat("../outside/secret.mp4"), "", 403, "forbidden"),
    ("traversal that comes back", "POST", CHAT, _chat("sub/../clip.mp4"), "", 403, "forbidden"),
    ("an absolute path outside", "POST", CHAT, _chat("/etc/passwd"), "", 403, "forbidden"),
    ("a file URL outside", "POST", CHAT, _chat("file:///etc/hostname"), "", 403, "forbidden"),
    ("a symlink leading out", "POST", CHAT, _chat("escape.mp4"), "", 403, "forbidden"),
    ("a device", "POST", CHAT, _chat("/dev/zero"), "", 403, "forbidden"),
    ("an http URL", "POST", CHAT, _chat("http://127.0.0.1:1/clip.mp4"), "", 403, "forbidden"),
    ("an oversized data URL", "POST", CHAT, _chat(_big_data_url()), "", 413, None),
    ("broken base64", "POST", CHAT, _chat("data:video/mp4;base64,@@@@"), "", 400, None),
    ("a data URL that is text", "POST", CHAT, _chat("data:text/plain;base64,aGVsbG8="), "", 400, None),
    ("a data URL that is not a video", "POST", CHAT, _chat("data:video/mp4;base64,aGVsbG8="), "", 400,
     "invalid_video"),
    ("an unknown route", "GET", "/v1/nothing", None, "", 404, None),
    ("the wrong method", "GET", CHAT, None, "", 405, None),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_refused_with_a_4xx_in_openai_error_json(server, case):
    _, method, path, body, key, status, code = case
    got, answer = server.request(method, path, body, key=key)
    assert got == status, answer
    err = answer["error"]
    assert isinstance(err["message"], str) and err["message"] and "Traceback" not in err["message"]
    assert err["type"] and (code is None or err["code"] == code)


def test_a_body_larger_than_any_video_is_refused_before_it_is_read(server):
    conn = http.client.HTTPConnection(urlsplit(server.url).netloc, timeout=30)
    conn.putrequest("POST", CHAT)
    conn.putheader("Authorization", f"Bearer {server.key}")
    conn.putheader("Content-Length", str(10 * 2**30))
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 413 and json.loads(resp.read())["error"]["code"] == "request_too_large"


def test_health_needs_no_key_and_a_normal_request_still_succeeds(server):
    status, health = server.request("GET", "/health", key=None)
    assert status == 200 and health["status"] == "ok"
    status, out = server.request("POST", CHAT, _chat("clip.mp4"))
    assert status == 200 and out["choices"][0]["message"]["role"] == "assistant"


def test_a_client_that_leaves_mid_stream_does_not_stop_the_server(server):
    conn = http.client.HTTPConnection(urlsplit(server.url).netloc, timeout=60)
    body = json.dumps(_chat("clip.mp4", question="describe it in detail", stream=True))
    conn.request("POST", CHAT, body, server.headers())
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("content-type").startswith("text/event-stream")
    assert resp.readline().startswith(b"data: ")  # the first chunk, then hang up
    conn.sock.close()
    conn.close()
    status, out = server.request("POST", CHAT, _chat("clip.mp4"))
    assert status == 200 and out["choices"][0]["message"]["content"] is not None
