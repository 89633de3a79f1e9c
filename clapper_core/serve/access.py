"""Who may ask, and which videos the server may read.

- `check_key`: with an API key set, a request must send `Authorization: Bearer KEY` (401 otherwise).
- `open_video`: a video reference from a request -> a local file to decode, or a `RequestError`:
  a local path or file:// URL only under the allowed directories (403 for `..`, a symlink leading out,
  a device or anything not a regular file), a data: URL up to the size limit (413 past it), an http(s)
  URL only when fetching is allowed (403 otherwise), then with the same limit and a timeout.

A video is named by the SHA-256 of its bytes, so the same video asked again (by path, data: URL or
URL) finds its encoding in the cache.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import mimetypes
import os
import stat
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from clapper_core.errors import ClapperError
from clapper_core.serve.config import ServeConfig


class RequestError(ClapperError):
    """A request the server refuses: an HTTP status and OpenAI's error fields."""

    def __init__(self, message: str, status: int = 400, *, code: str | None = None, param: str | None = None,
                 kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.code, self.param, self.kind = status, code, param, kind


def check_key(config: ServeConfig, authorization: str | None) -> None:
    if config.api_key is None:
        return
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise RequestError("no API key: send the header Authorization: Bearer KEY", 401,
                           code="invalid_api_key", kind="authentication_error")
    if not hmac.compare_digest(token.strip().encode(), config.api_key.encode()):
        raise RequestError("incorrect API key", 401, code="invalid_api_key", kind="authentication_error")


@dataclass(frozen=True)
class LocalVideo:
    path: Path  # a file to decode
    digest: str  # SHA-256 of its bytes
    temporary: bool  # written by the server (data: or http URL): removed once the request is done

    def discard(self) -> None:
        if self.temporary:
            self.path.unlink(missing_ok=True)


class VideoOpener:
    """Turns a request's video reference into a `LocalVideo` under the access rules of `config`."""

    def __init__(self, config: ServeConfig, scratch: Path | None = None) -> None:
        self.config = config
        self.base = Path.cwd()  # relative paths are read from where the server started
        self.scratch = scratch or Path(tempfile.mkdtemp(prefix="clapper-serve-"))
        self._digests: dict[tuple, str] = {}  # (path, inode, size, mtime) -> digest: a file is hashed once
        self._lock = threading.Lock()

    def open(self, url: str) -> LocalVideo:
        if not isinstance(url, str) or not url.strip():
            raise RequestError("the video URL is empty; give a path, a file:// URL or a data:video/...;base64 URL",
                               param="video_url")
        url = url.strip()
        scheme = urllib.parse.urlsplit(url).scheme.lower() if ":" in url[:12] else ""
        if scheme == "data":
            return self._from_data(url)
        if scheme in ("http", "https"):
            return self._from_web(url)
        if scheme == "file":
            parts = urllib.parse.urlsplit(url)
            if parts.netloc not in ("", "localhost"):
                raise RequestError(f"file URLs name this machine only, not {parts.netloc!r}", 403,
                                   code="forbidden", param="video_url")
            return self._from_path(urllib.parse.unquote(parts.path))
        if scheme and len(scheme) > 1:  # c:\... is a path, ftp:// is not
            raise RequestError(f"unsupported video URL scheme {scheme!r}: use a path, file://, data: or http(s)://",
                               param="video_url")
        return self._from_path(url)

    # --- local files -------------------------------------------------------------------

    def _from_path(self, raw: str) -> LocalVideo:
        if "\x00" in raw:
            raise RequestError("the video path holds a NUL byte", param="video_url")
        given = Path(raw).expanduser() if raw.startswith("~") else Path(raw)
        if ".." in given.parts:
            raise RequestError(f"{raw}: `..` is not allowed in video paths; give the path inside an allowed "
                               "directory", 403, code="forbidden", param="video_url")
        real = Path(os.path.realpath(given if given.is_absolute() else self.base / given))
        if not any(real == d or d in real.parents for d in self.config.allow_dirs):
            raise RequestError(f"{raw}: outside the directories this server may read (start it with --allow-dir)",
                               403, code="forbidden", param="video_url")
        try:
            st = os.stat(real)
        except FileNotFoundError:
            raise RequestError(f"{raw}: no such file; check the path", 400, code="video_not_found",
                               param="video_url") from None
        except OSError as exc:
            raise RequestError(f"{raw}: cannot read it ({exc.strerror})", 403, code="forbidden",
                               param="video_url") from None
        if stat.S_ISDIR(st.st_mode):
            raise RequestError(f"{raw} is a directory; give one video file", 400, code="video_not_found",
                               param="video_url")
        if not stat.S_ISREG(st.st_mode):
            raise RequestError(f"{raw} is not a regular file (a device or a pipe); give a video file", 403,
                               code="forbidden", param="video_url")
        key = (str(real), st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            digest = self._digests.get(key)
        if digest is None:
            digest = self._hash_file(real, raw)
            with self._lock:
                self._digests[key] = digest
        return LocalVideo(real, digest, temporary=False)

    @staticmethod
    def _hash_file(path: Path, raw: str) -> str:
        h = hashlib.sha256()
        try:
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
        except OSError as exc:
            raise RequestError(f"{raw}: cannot read it ({exc.strerror})", 403, code="forbidden",
                               param="video_url") from None
        return h.hexdigest()

    # --- data: and http(s) URLs ------------------------------------------------------------

    def _too_big(self, what: str) -> RequestError:
        return RequestError(f"{what} is larger than this server's limit of {self.config.max_video_mb:g} MB "
                            "(--max-video-mb)", 413, code="video_too_large", param="video_url")

    def _from_data(self, url: str) -> LocalVideo:
        head, sep, payload = url.partition(",")
        mime, *params = head[5:].split(";")
        if not sep or "base64" not in params:
            raise RequestError("a data URL must look like data:video/mp4;base64,AAAA...", param="video_url")
        if not (mime.startswith("video/") or mime.startswith("image/")):
            raise RequestError(f"a data URL of type {mime or 'none'!r} is not a video; use data:video/...",
                               param="video_url")
        if len(payload) * 3 // 4 > self.config.max_video_bytes:
            raise self._too_big("the data: URL's video")
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError("the data URL's base64 does not decode", param="video_url") from None
        return self._write(data, mimetypes.guess_extension(mime) or "")

    def _from_web(self, url: str) -> LocalVideo:
        if not self.config.allow_urls:
            raise RequestError("this server does not fetch video URLs; start it with --allow-urls, or send the "
                               "video as a data: URL", 403, code="forbidden", param="video_url")
        limit = self.config.max_video_bytes
        request = urllib.request.Request(url, headers={"User-Agent": "clapper-serve"})
        try:
            with urllib.request.urlopen(request, timeout=self.config.url_timeout_s) as resp:
                if int(resp.headers.get("Content-Length") or 0) > limit:
                    raise self._too_big(url)
                data = resp.read(limit + 1)
                kind = resp.headers.get_content_type()
        except RequestError:
            raise
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise RequestError(f"could not fetch {url}: {reason}", 400, code="video_not_found",
                               param="video_url") from None
        if len(data) > limit:
            raise self._too_big(url)
        suffix = Path(urllib.parse.urlsplit(url).path).suffix or mimetypes.guess_extension(kind) or ""
        return self._write(data, suffix)

    def _write(self, data: bytes, suffix: str) -> LocalVideo:
        suffix = suffix if suffix.replace(".", "").isalnum() and len(suffix) <= 8 else ""
        fd, name = tempfile.mkstemp(suffix=suffix, dir=self.scratch)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return LocalVideo(Path(name), hashlib.sha256(data).hexdigest(), temporary=True)
