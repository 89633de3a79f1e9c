"""`clapper ask --server` against the running server: the same stdout and --json as a local `clapper ask`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from clapper_core.records import validate
from tests.serve.harness import REPO, clean_env

pytestmark = pytest.mark.slow  # each test starts `clapper` processes (torch import, model load)


def _clapper(tmp_path, *args, env=None, stdin=None):
    return subprocess.run([sys.executable, "-m", "clapper_cli.main", *args], cwd=REPO, input=stdin,
                          env={**clean_env(tmp_path), **(env or {})}, capture_output=True, text=True, timeout=300)


def test_ask_server_prints_what_a_local_ask_prints(server, served_dir, tmp_path):
    video, questions = str(served_dir / "clip.mp4"), ["what happens?", "what colour is it?"]
    env = {"CLAPPER_API_KEY": server.key}
    remote = _clapper(tmp_path, "ask", video, *questions, "--json", "--max-new-tokens", "12", "--server", server.url,
                      env=env)
    local = _clapper(tmp_path, "ask", video, *questions, "--json", "--max-new-tokens", "12")
    assert remote.returncode == 0 == local.returncode, remote.stderr + local.stderr
    got, want = ([json.loads(line) for line in p.stdout.splitlines()] for p in (remote, local))
    assert len(got) == 2 and all(validate(r) == [] for r in got)
    for g, w in zip(got, want):
        for field in ("video", "question", "answer", "frames", "timestamps", "segments", "visual_tokens", "model"):
            assert g[field] == w[field], field
    plain = _clapper(tmp_path, "ask", video, questions[0], "--max-new-tokens", "12", env={**env,
                     "CLAPPER_SERVER": server.url})
    assert plain.returncode == 0 and plain.stdout == want[0]["answer"] + "\n"
    assert "visual tokens" in plain.stderr  # the timings line, on stderr as locally


def test_ask_server_chat_is_a_conversation(server, served_dir, tmp_path):
    video, env = str(served_dir / "clip.mp4"), {"CLAPPER_API_KEY": server.key}
    out = _clapper(tmp_path, "ask", video, "what happens?", "--chat", "--max-new-tokens", "12", "--server",
                   server.url, env=env, stdin="and then?\n")
    local = _clapper(tmp_path, "ask", video, "what happens?", "--chat", "--max-new-tokens", "12",
                     stdin="and then?\n")
    assert out.returncode == 0 == local.returncode, out.stderr + local.stderr
    assert out.stdout == local.stdout and out.stdout.count("\n") == 2


def test_ask_server_errors_are_one_line(server, served_dir, tmp_path):
    video = str(served_dir / "clip.mp4")
    no_key = _clapper(tmp_path, "ask", video, "q", "--server", server.url)
    assert no_key.returncode == 1 and no_key.stderr.startswith("Error: the server refused: no API key")
    down = _clapper(tmp_path, "ask", video, "q", "--server", "http://127.0.0.1:9")
    assert down.returncode == 1 and "cannot reach a clapper server" in down.stderr
    assert down.stderr.count("\n") == 1 and down.stdout == ""
