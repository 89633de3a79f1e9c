"""A real `clapper serve` process on a free loopback port, with the demo model, for tests and bench/serve.py."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Server:
    url: str  # http://127.0.0.1:PORT
    key: str | None
    proc: subprocess.Popen
    log: Path

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def headers(self, key: str | None = "") -> dict:
        key = self.key if key == "" else key
        return {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}

    def request(self, method: str, path: str, body: bytes | dict | None = None, *, key: str | None = "",
                headers: dict | None = None, timeout: float = 60) -> tuple[int, dict]:
        """(status, JSON body) of one raw request; errors are answers too."""
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={**self.headers(key), **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def clean_env(config_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAPPER_")}
    env.update(CLAPPER_CONFIG=str(config_dir / "config.toml"), PYTHONUNBUFFERED="1")
    return env


def start_server(cwd: Path, *args: str, key: str | None = "test-key", timeout: float = 120) -> Server:
    """`clapper serve --port 0 ARGS` in `cwd`; waits for the line that says where it listens."""
    log = cwd.parent / f"serve-{os.getpid()}-{time.monotonic_ns()}.log"
    cmd = [sys.executable, "-m", "clapper_cli.main", "serve", "--port", "0", *args]
    if key:
        cmd += ["--api-key", key]
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, cwd=cwd, env=clean_env(cwd.parent), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = re.search(r"at (http://127\.0\.0\.1:\d+)/v1", log.read_text(errors="replace"))
        if found:
            return Server(found.group(1), key, proc, log)
        if proc.poll() is not None:
            raise RuntimeError(f"clapper serve exited with {proc.returncode}: {log.read_text()}")
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"clapper serve did not start in {timeout} s: {log.read_text()}")


def video_message(url: str, question: str) -> dict:
    return {"role": "user", "content": [{"type": "video_url", "video_url": {"url": url}},
                                        {"type": "text", "text": question}]}
