"""The server's parts without a model: config rules, the video opener's access rules, stop strings, the LRU cache,
the request's conversation."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from clapper_core.errors import ConfigError
from clapper_core.serve.access import RequestError, VideoOpener, check_key
from clapper_core.serve.cache import Entry, SessionCache
from clapper_core.serve.config import ServeConfig
from clapper_core.serve.schema import conversation, parse_request
from clapper_core.serve.worker import StopFilter
from tests.serve.harness import REPO, clean_env


def test_another_address_needs_a_key():
    with pytest.raises(ConfigError, match="--api-key"):
        ServeConfig(host="0.0.0.0")
    assert ServeConfig(host="0.0.0.0", api_key="k").api_key == "k"
    assert ServeConfig(host="::1").host == "::1" and ServeConfig(host="localhost").host == "localhost"
    with pytest.raises(ConfigError, match="not a directory"):
        ServeConfig(allow_dirs=(Path("/nonexistent/dir"),))


def test_serve_on_another_address_without_a_key_exits_2_before_loading(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "clapper_cli.main", "serve", "--host", "0.0.0.0"], cwd=REPO,
                          env=clean_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("Error: --host 0.0.0.0 would let anyone") and proc.stderr.count("\n") == 1


def test_the_key_is_checked():
    config = ServeConfig(api_key="secret")
    check_key(config, "Bearer secret")
    for header in (None, "", "Bearer", "Bearer wrong", "Basic secret"):
        with pytest.raises(RequestError) as err:
            check_key(config, header)
        assert err.value.status == 401
    check_key(ServeConfig(), None)  # no key set: open on loopback


def _refused(opener, url) -> int:
    with pytest.raises(RequestError) as err:
        opener.open(url)
    return err.value.status


def test_devices_and_pipes_are_refused_even_inside_an_allowed_dir(tmp_path):
    import os

    opener = VideoOpener(ServeConfig(allow_dirs=(Path("/dev"), tmp_path)), scratch=tmp_path)
    assert _refused(opener, "/dev/zero") == 403 and _refused(opener, "/dev/null") == 403
    os.mkfifo(tmp_path / "pipe.mp4")
    assert _refused(opener, str(tmp_path / "pipe.mp4")) == 403


def test_paths_resolve_under_the_allowed_dirs(tmp_path, monkeypatch):
    inside, outside = tmp_path / "in", tmp_path / "out"
    (inside / "deep").mkdir(parents=True)
    outside.mkdir()
    (inside / "deep" / "a.mp4").write_bytes(b"video bytes")
    (outside / "b.mp4").write_bytes(b"other")
    (inside / "link_out.mp4").symlink_to(outside / "b.mp4")
    (inside / "dir_out").symlink_to(outside)
    (inside / "link_in.mp4").symlink_to(inside / "deep" / "a.mp4")
    monkeypatch.chdir(inside)
    opener = VideoOpener(ServeConfig(), scratch=tmp_path)
    a = opener.open("deep/a.mp4")
    assert a.path == inside / "deep" / "a.mp4" and not a.temporary
    assert opener.open("link_in.mp4").digest == a.digest == opener.open(f"file://{inside}/deep/a.mp4").digest
    for url in ("link_out.mp4", "dir_out/b.mp4", "../out/b.mp4", str(outside / "b.mp4"), "~/x.mp4",
                "file://otherhost/x.mp4"):
        assert _refused(opener, url) == 403, url
    assert _refused(opener, "nope.mp4") == 400 and _refused(opener, "ftp://x/y.mp4") == 400


class _Files(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        size = {"/small.mp4": 1000, "/big.mp4": 300_000}.get(self.path)
        if self.path == "/slow.mp4":
            threading.Event().wait(3)
        if size is None and self.path != "/slow.mp4":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.end_headers()
        self.wfile.write(b"v" * (size or 10))

    def log_message(self, *args):
        pass


def test_urls_are_fetched_only_when_allowed_then_bounded(tmp_path):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        assert _refused(VideoOpener(ServeConfig(), scratch=tmp_path), base + "/small.mp4") == 403
        opener = VideoOpener(ServeConfig(allow_urls=True, max_video_mb=0.1, url_timeout_s=0.5), scratch=tmp_path)
        got = opener.open(base + "/small.mp4")
        assert got.temporary and got.path.read_bytes() == b"v" * 1000 and got.path.suffix == ".mp4"
        got.discard()
        assert not got.path.exists()
        assert _refused(opener, base + "/big.mp4") == 413
        assert _refused(opener, base + "/missing.mp4") == 400
        assert _refused(opener, base + "/slow.mp4") == 400  # the timeout
    finally:
        httpd.shutdown()


def test_stop_strings_are_cut_across_pieces():
    f = StopFilter(("STOP", "\n\n"))
    out = f.feed("hello ST") + f.feed("O") + f.feed("P and more")
    assert out == "hello " and f.hit
    g = StopFilter(("STOP",))
    assert g.feed("a ST") + g.feed("ring") + g.flush() == "a STring" and not g.hit


class _Sized:
    def __init__(self, n):
        self.n = n

    def nbytes(self):
        return self.n


def test_the_cache_drops_the_least_recently_used_past_its_budget():
    cache = SessionCache(max_bytes=100)
    for key in "abc":
        cache.put(key, Entry(_Sized(40), {}))
    assert cache.get("a") is None and cache.get("b") is not None  # a went; b is now the most recent
    cache.put("d", Entry(_Sized(40), {}))
    assert cache.get("c") is None and cache.get("b") is not None and cache.get("d") is not None
    cache.put("huge", Entry(_Sized(500), {}))  # larger than the whole budget: not kept, nothing else lost
    assert cache.get("huge") is None and len(cache) == 2
    entry = cache.get("b")
    entry.session.n = 90  # a conversation grew its KV cache
    cache.reweigh("b")
    assert cache.get("d") is None and cache.get("b") is entry
    s = cache.stats()
    assert s.entries == 1 and s.nbytes == 90 and s.evictions == 3


def test_a_conversation_reads_as_turns():
    body = (b'{"messages": [{"role": "system", "content": "Be brief."},'
            b'{"role": "user", "content": [{"type": "text", "text": "what happens?"},'
            b'{"type": "image_url", "image_url": "frame.png"}]},'
            b'{"role": "assistant", "content": "a ball rolls"},'
            b'{"role": "user", "content": "and then?"}, {"role": "user", "content": "quickly"}]}')
    conv = conversation(parse_request(body))
    assert conv.video_url == "frame.png" and conv.system == "Be brief."
    assert conv.history == (("what happens?", "a ball rolls"),) and conv.question == "and then?\nquickly"
    late = (b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yes"},'
            b'{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "a.mp4"}}]}]}')
    with pytest.raises(RequestError, match="first user message"):
        conversation(parse_request(late))
