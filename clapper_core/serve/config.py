"""`ServeConfig`: where the server listens, who may use it, what it may read, how much it may hold.

Every default is written here once; `clapper serve` passes only the flags it was given.
"""

from __future__ import annotations

import ipaddress
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from clapper_core.errors import ConfigError

API_KEY_ENV = "CLAPPER_API_KEY"
MB = 1 << 20


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeConfig:
    """host/port: where to listen (loopback unless an API key guards the server).
    api_key: requests must send `Authorization: Bearer KEY` (None: no key, loopback only).
    allow_dirs: local videos are read only under these directories (empty: the directory the server starts in).
    allow_urls: fetch http(s) video URLs (off: refused with 403).
    max_video_mb: largest video sent inline as a data: URL or fetched from a URL.
    url_timeout_s: how long fetching one URL may take.
    cache_mb: memory for encoded videos and their prompt prefix's KV cache (least recently used out).
    max_queue: requests waiting for the model beyond which new ones get 429."""

    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    allow_dirs: tuple[Path, ...] = field(default_factory=tuple)
    allow_urls: bool = False
    max_video_mb: float = 64.0
    url_timeout_s: float = 20.0
    cache_mb: float = 2048.0
    max_queue: int = 256

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port {self.port} is not a port number; give one from 1 to 65535")
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("--api-key is empty; give a secret string, or leave it out on a loopback address")
        if not is_loopback(self.host) and self.api_key is None:
            raise ConfigError(
                f"--host {self.host} would let anyone who reaches this machine use the model; "
                f"give --api-key KEY (or {API_KEY_ENV}), or keep the default --host 127.0.0.1"
            )
        for name in ("max_video_mb", "url_timeout_s", "cache_mb"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"--{name.replace('_', '-')} {value!r} must be a positive number")
        if self.max_queue < 1:
            raise ConfigError(f"--max-queue {self.max_queue} must be at least 1")
        dirs = []
        for d in self.allow_dirs or (Path.cwd(),):
            real = Path(os.path.realpath(Path(d).expanduser()))
            if not real.is_dir():
                raise ConfigError(f"--allow-dir {d} is not a directory; give a folder that holds videos")
            dirs.append(real)
        object.__setattr__(self, "allow_dirs", tuple(dirs))

    @property
    def max_video_bytes(self) -> int:
        return int(self.max_video_mb * MB)

    @property
    def max_body_bytes(self) -> int:
        """A request may carry one video as base64 (4/3 of its size) plus its text."""
        return self.max_video_bytes * 4 // 3 + MB

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def serve_config(**given) -> ServeConfig:
    """A `ServeConfig` from the flags that were given (None = not given); the key may come from CLAPPER_API_KEY."""
    values = {k: v for k, v in given.items() if v is not None}
    if "api_key" not in values and os.environ.get(API_KEY_ENV, "").strip():
        values["api_key"] = os.environ[API_KEY_ENV].strip()
    if "allow_dirs" in values:
        values["allow_dirs"] = tuple(values["allow_dirs"])
    return ServeConfig(**values)
