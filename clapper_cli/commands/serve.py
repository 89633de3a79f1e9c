"""`clapper serve`: the model loaded once, behind OpenAI's chat-completions API.

Imports only typer and the shared options at module level; FastAPI, uvicorn and the model load
inside the command body.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from clapper_cli import options as opt

SERVER_PANEL = "Server"
ACCESS_PANEL = "Access"

EPILOG = """\
[bold]Examples[/bold]

  [cyan]clapper serve[/cyan]   [dim]# http://127.0.0.1:8000/v1, videos under the current directory[/dim]
  [cyan]clapper serve --port 9000 --allow-dir ~/videos --model ./my-clapper[/cyan]
  [cyan]CLAPPER_API_KEY=secret clapper serve --host 0.0.0.0[/cyan]   [dim]# other machines need the key[/dim]
  [cyan]clapper ask --server http://127.0.0.1:8000 clip.mp4 "what happens?"[/cyan]
"""


def serve(
    host: Annotated[Optional[str], typer.Option("--host", help="Address to listen on (default 127.0.0.1; another "
                                                "address needs --api-key).", show_default=False,
                                                rich_help_panel=SERVER_PANEL)] = None,
    port: Annotated[Optional[int], typer.Option("--port", "-p", help="Port (default 8000; 0 picks a free one).",
                                                show_default=False, rich_help_panel=SERVER_PANEL)] = None,
    api_key: Annotated[Optional[str], typer.Option("--api-key", help="Requests must send Authorization: Bearer "
                                                   "KEY (default: $CLAPPER_API_KEY).", show_default=False,
                                                   rich_help_panel=ACCESS_PANEL)] = None,
    allow_dir: Annotated[Optional[list[Path]], typer.Option("--allow-dir", help="Read local videos under this "
                                                            "directory; repeatable (default: the current one).",
                                                            show_default=False, rich_help_panel=ACCESS_PANEL)] = None,
    allow_urls: Annotated[bool, typer.Option("--allow-urls", metavar="", help="Fetch http(s) video URLs.",
                                             rich_help_panel=ACCESS_PANEL)] = False,
    max_video_mb: Annotated[Optional[float], typer.Option("--max-video-mb", help="Largest video sent inline or "
                                                          "fetched, in MB (default 64).", show_default=False,
                                                          rich_help_panel=ACCESS_PANEL)] = None,
    url_timeout: Annotated[Optional[float], typer.Option("--url-timeout", help="Seconds to fetch one video URL "
                                                         "(default 20).", show_default=False,
                                                         rich_help_panel=ACCESS_PANEL)] = None,
    cache_mb: Annotated[Optional[float], typer.Option("--cache-mb", help="Memory for encoded videos and their "
                                                      "prompt cache, in MB (default 2048).", show_default=False,
                                                      rich_help_panel=SERVER_PANEL)] = None,
    max_queue: Annotated[Optional[int], typer.Option("--max-queue", help="Requests waiting beyond this get 429 "
                                                     "(default 256).", show_default=False,
                                                     rich_help_panel=SERVER_PANEL)] = None,
    model: opt.Model = None,
    quant: opt.Quant = None,
    device: opt.Device = None,
    fps: opt.Fps = None,
    max_frames: opt.MaxFrames = None,
    segment_size: opt.SegmentSize = None,
    max_new_tokens: opt.MaxNewTokens = None,
    temperature: opt.Temperature = None,
    quiet: opt.Quiet = False,
) -> None:
    """Serve the model over HTTP with OpenAI's chat-completions API (loaded once, videos cached)."""
    from clapper_core import runner
    from clapper_core.serve import run, serve_config
    from clapper_core.settings import resolve

    from clapper_cli.render import Display

    config = serve_config(host=host, port=port, api_key=api_key, allow_dirs=allow_dir, allow_urls=allow_urls,
                          max_video_mb=max_video_mb, url_timeout_s=url_timeout, cache_mb=cache_mb,
                          max_queue=max_queue)
    settings = resolve(dict(model=model, quant=opt.choice_value(quant), device=opt.choice_value(device), fps=fps,
                            max_frames=max_frames, segment_size=segment_size, max_new_tokens=max_new_tokens,
                            temperature=temperature))
    with Display(quiet=quiet, json_output=False) as display:  # the spinner while the model loads
        loaded = runner.load(settings, on_event=display)
    run(config, settings, loaded=loaded, on_event=display)


def register(app: typer.Typer) -> None:
    """Add this module's command(s) to `app`."""
    app.command("serve", epilog=EPILOG)(serve)
