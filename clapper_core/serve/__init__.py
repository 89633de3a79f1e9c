"""`clapper serve`: the model loaded once, behind OpenAI's chat-completions API.

    from clapper_core.serve import ServeConfig, run
    from clapper_core.settings import resolve

    run(ServeConfig(port=8000), resolve())     # blocks until Ctrl-C / SIGTERM

Modules: config (ServeConfig), access (API key, allowed directories, size limits, URL policy),
schema (the request), cache (encoded videos, LRU by memory), worker (the queue and the model
thread), app (the FastAPI routes).
"""

from __future__ import annotations

import shutil
from typing import Any

from clapper_core.serve.config import ServeConfig, serve_config

__all__ = ["ServeConfig", "run", "serve_config"]


def run(config: ServeConfig, settings: Any, *, loaded: Any = None, on_event=None) -> None:
    """Load the model (unless `loaded` is given), start the worker and serve until Ctrl-C or SIGTERM.
    Where it listens goes out as a notice `Event` (the real port when config.port is 0)."""
    import uvicorn

    from clapper_core import runner
    from clapper_core.serve.access import VideoOpener
    from clapper_core.serve.app import build_app
    from clapper_core.serve.cache import SessionCache
    from clapper_core.serve.config import MB
    from clapper_core.serve.worker import ModelWorker

    emit = on_event or (lambda event: None)
    loaded = loaded if loaded is not None else runner.load(settings, on_event=emit)
    cache = SessionCache(int(config.cache_mb * MB))
    worker = ModelWorker(loaded, cache, model_name=settings.model, max_queue=config.max_queue)
    opener = VideoOpener(config)
    app = build_app(config, worker, settings, opener)
    uv = uvicorn.Config(app, host=config.host, port=config.port, log_level="warning", access_log=False,
                        timeout_graceful_shutdown=5)
    server = _server_class()(uv, lambda port: emit(runner.Event("notice", message=_where(config, settings, port))))
    worker.start()
    try:
        server.run()
    finally:
        worker.stop()
        shutil.rmtree(opener.scratch, ignore_errors=True)


def _where(config: ServeConfig, settings: Any, port: int) -> str:
    dirs = ", ".join(map(str, config.allow_dirs))
    url = config.url.rsplit(":", 1)[0] + f":{port}"
    return (f"clapper serve: {settings.model} at {url}/v1 (videos under {dirs}"
            f"{'; fetches URLs' if config.allow_urls else ''}{'; API key required' if config.api_key else ''}); "
            "Ctrl-C stops")


def _server_class():
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, saying where it listens once it does (the real port when --port 0)."""

        def __init__(self, config, on_listen) -> None:
            super().__init__(config)
            self.on_listen = on_listen

        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if self.started:
                socks = [s for srv in getattr(self, "servers", []) for s in srv.sockets]
                self.on_listen(socks[0].getsockname()[1] if socks else self.config.port)

    return Server
