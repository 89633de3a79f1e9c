"""`clapper serve` against a fresh `clapper ask`, then many clients, disconnects and hostile requests.

    python bench/serve.py [--video clip.mp4] [--max-new-tokens 16]

One run, one server process (the demo model unless --model), figures printed beside their baseline:
1. time to the first token of a second question about the same video: warm server vs a fresh `clapper ask`;
2. requests/min with 1, 4 and 16 concurrent streaming clients;
3. load and faults: 32 streaming clients x 4 requests, every 4th client hanging up mid-stream on its 2nd
   request; every finished answer must equal the single-client (greedy) answer, none lost or mixed; the
   server's RSS after it against before;
4. 50 hostile or malformed requests (every kind of refusal): all must be 4xx; a normal request after them
   must succeed.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.serve.harness import Server, clean_env, start_server, video_message  # noqa: E402

QUESTIONS = ["what happens?", "what colour is the shape?", "where does it move?", "how many shapes are there?"]
KEY = "bench-key"


def stream(server: Server, question: str, *, hang_up: bool = False) -> tuple[str | None, float]:
    """(the answer, or None when hung up; seconds to its first content token) of one streaming request."""
    conn = http.client.HTTPConnection(urlsplit(server.url).netloc, timeout=600)
    body = {"model": "m", "stream": True, "messages": [video_message("clip.mp4", question)]}
    t0 = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", json.dumps(body), server.headers())
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {resp.read()[:200]!r}")
    text, first = [], None
    for raw in resp:
        line = raw.decode().strip()
        if not line.startswith("data:") or line == "data: [DONE]":
            continue
        for choice in json.loads(line[5:]).get("choices", []):
            if piece := choice["delta"].get("content"):
                first = first or time.perf_counter() - t0
                text.append(piece)
                if hang_up:
                    conn.sock.close()
                    conn.close()
                    return None, first
    conn.close()
    return "".join(text), first or time.perf_counter() - t0


def fresh_ask_first_token(video: Path, question: str, tokens: int) -> float:
    """Seconds from starting `clapper ask` to the first byte of its answer on stdout."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "clapper_cli.main", "ask", str(video), question,
                             "--max-new-tokens", str(tokens)], cwd=video.parent, env=clean_env(video.parent.parent),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    proc.stdout.read(1)
    first = time.perf_counter() - t0
    proc.communicate()
    return first


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def per_minute(server: Server, clients: int, each: int) -> float:
    def client(i):
        for j in range(each):
            stream(server, QUESTIONS[(i + j) % len(QUESTIONS)])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return clients * each / (time.perf_counter() - t0) * 60


def load_and_faults(server: Server, expected: dict[str, str]) -> dict:
    results, errors, lock = [], [], threading.Lock()

    def client(i):
        for j in range(4):
            q, hang = QUESTIONS[(i + j) % len(QUESTIONS)], i % 4 == 0 and j == 1
            try:
                answer, _ = stream(server, q, hang_up=hang)
            except Exception as exc:  # a lost request is a failure of the run, counted below
                with lock:
                    errors.append(repr(exc))
                continue
            with lock:
                results.append((q, answer, hang))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(32)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    finished = [(q, a) for q, a, hang in results if not hang]
    return dict(seconds=time.perf_counter() - t0, finished=len(finished), hung_up=sum(h for *_, h in results),
                lost=128 - len(results), errors=errors, wrong=sum(a != expected[q] for q, a in finished))


def hostile(server: Server, video: Path) -> list[tuple[str, int]]:
    # past the 1 MB video limit, within the body limit: refused after reading, not mid-upload
    big = "data:video/mp4;base64," + base64.b64encode(b"\0" * (2**20 + 2**18)).decode()
    chat = lambda url, **kw: {"model": "m", "messages": [video_message(url, "q")], **kw}  # noqa: E731
    kinds = [
        ("no key", chat("clip.mp4"), None), ("wrong key", chat("clip.mp4"), "x"),
        ("malformed JSON", b'{"messages": [', ""), ("wrong type", {"messages": 7}, ""),
        ("string number", chat("clip.mp4", max_tokens="9"), ""), ("empty conversation", {"messages": []}, ""),
        ("no video", {"messages": [{"role": "user", "content": "hi"}]}, ""),
        ("missing file", chat("missing.mp4"), ""), ("not a video", chat("notes.txt"), ""),
        ("traversal", chat("../outside/secret.mp4"), ""), ("absolute outside", chat("/etc/passwd"), ""),
        ("symlink escape", chat("escape.mp4"), ""), ("device", chat("/dev/zero"), ""),
        ("http URL", chat("http://127.0.0.1:1/x.mp4"), ""), ("oversized data URL", chat(big), ""),
        ("bad base64", chat("data:video/mp4;base64,@@"), ""), ("directory", chat("."), ""),
    ]
    out = []
    for i in range(50):
        what, body, key = kinds[i % len(kinds)]
        out.append((what, server.request("POST", "/v1/chat/completions", body, key=key)[0]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=None, help="default: the shared NASA sample, else a made clip")
    ap.add_argument("--max-new-tokens", type=int, default=16)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="clapper-bench-serve-"))
    videos, outside = root / "videos", root / "outside"
    videos.mkdir(), outside.mkdir()
    video = args.video or next((d / "nasa_13013.mp4" for d in (REPO.parent / "shared" / "videos",
                                                             REPO.parents[1] / "shared" / "videos")
                                if (d / "nasa_13013.mp4").is_file()), None)
    if video is None:
        from tests.fixtures.video import make_video

        video = make_video(root / "made.mp4", frames=120, fps=10, size=(320, 240))
    shutil.copy(video, videos / "clip.mp4")
    shutil.copy(video, outside / "secret.mp4")
    (videos / "notes.txt").write_text("not a video\n")
    (videos / "escape.mp4").symlink_to(outside / "secret.mp4")
    server = start_server(videos, "--max-new-tokens", str(args.max_new_tokens), "--max-video-mb", "1", key=KEY)
    try:
        expected = {q: stream(server, q)[0] for q in QUESTIONS}  # single client, greedy; warms the video
        base_rss = rss_mb(server.proc.pid)
        warm = min(stream(server, QUESTIONS[1])[1] for _ in range(3))
        fresh = fresh_ask_first_token(videos / "clip.mp4", QUESTIONS[1], args.max_new_tokens)
        print(f"first token of a second question: warm server {warm * 1000:.0f} ms, fresh `clapper ask` "
              f"{fresh * 1000:.0f} ms: {fresh / warm:.1f}x faster")
        rates = {n: per_minute(server, n, max(1, 16 // n)) for n in (1, 4, 16)}
        print("streaming requests/min: " + ", ".join(f"{n} client{'s' * (n > 1)} {r:.0f}" for n, r in rates.items())
              + f" ({rates[16] / rates[1]:.2f}x from 1 to 16 clients; one model worker, one request at a time)")
        load = load_and_faults(server, expected)
        time.sleep(1.0)
        after_rss = rss_mb(server.proc.pid)
        print(f"32 clients x 4 streaming requests in {load['seconds']:.1f} s: {load['finished']} finished, "
              f"{load['hung_up']} hung up mid-stream, {load['lost']} lost, {load['wrong']} differing from the "
              f"single-client answer; server RSS {base_rss:.0f} MB before, {after_rss:.0f} MB after "
              f"({after_rss / base_rss:.2f}x)")
        for e in load["errors"][:5]:
            print("  error:", e)
        codes = hostile(server, videos / "clip.mp4")
        ok_after = stream(server, QUESTIONS[0])[0] == expected[QUESTIONS[0]]
        bad = [(w, c) for w, c in codes if not 400 <= c < 500]
        print(f"50 hostile or malformed requests: {sum(400 <= c < 500 for _, c in codes)} answered 4xx "
              f"({', '.join(sorted({str(c) for _, c in codes}))}), {len(bad)} otherwise {bad}; "
              f"a normal request after them {'succeeded' if ok_after else 'FAILED'}")
    finally:
        code = server.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(f"server exited with {code} on SIGTERM")


if __name__ == "__main__":
    main()
