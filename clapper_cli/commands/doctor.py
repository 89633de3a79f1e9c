"""`clapper doctor`: what is installed, what hardware is visible, where the model would come from.

Each check is a small function returning `Check`s; a check never raises: whatever is missing
or broken is reported as such. Exit 1 only when something clapper cannot run without is missing.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict, dataclass
from importlib.util import find_spec
from pathlib import Path

import typer

from clapper_cli import options as opt

EPILOG = """\
[bold]Examples[/bold]

  [cyan]clapper doctor[/cyan]
  [cyan]clapper doctor --model ./checkpoints/clapper[/cyan]   [dim]# where would this model load from?[/dim]
  [cyan]clapper doctor --json[/cyan]
"""

DECODERS = ("h264", "hevc", "av1", "vp9", "mpeg2video")
OK, WARN, FAIL = "ok", "warn", "missing"
MARKS = {OK: "✓", WARN: "!", FAIL: "✗"}


@dataclass
class Check:
    name: str
    status: str  # ok | warn | missing
    detail: str
    required: bool = False


def _version(dist: str) -> str | None:
    from importlib import metadata  # not at module level: it costs `clapper --help` ~50 ms

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def check_python() -> list[Check]:
    ok = sys.version_info >= (3, 10)
    detail = f"{platform.python_version()} ({sys.executable}) on {platform.system()} {platform.machine()}"
    return [Check("python", OK if ok else FAIL, detail + ("" if ok else "; clapper needs 3.10+"), required=True)]


def check_clapper() -> list[Check]:
    from clapper_core import __version__

    return [Check("clapper", OK, f"{__version__} ({Path(__file__).resolve().parents[2]})")]


def check_torch() -> list[Check]:
    try:
        import torch
    except Exception as exc:  # reported, never raised: doctor must finish
        return [Check("torch", FAIL, f"cannot import torch: {exc}; pip install torch", required=True)]
    checks = [Check("torch", OK, f"{torch.__version__}", required=True)]
    try:
        if not torch.cuda.is_available():
            checks.append(Check("cuda", WARN, "no CUDA GPU visible: clapper runs on the CPU (slow, fp32)"))
            return checks
        checks.append(Check("cuda", OK, f"CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s), "
                                        f"bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}"))
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            free, total = torch.cuda.mem_get_info(i)
            checks.append(Check(f"gpu {i}", OK, f"{props.name}, {total / 2**30:.1f} GiB "
                                                f"({free / 2**30:.1f} GiB free), compute {props.major}.{props.minor}"))
    except Exception as exc:  # a broken driver shows up here
        checks.append(Check("cuda", WARN, f"CUDA query failed: {' '.join(str(exc).split())}"))
    return checks


def check_packages() -> list[Check]:
    checks = []
    for dist, required, hint in (
        ("transformers", True, "pip install 'transformers>=5'"),
        ("accelerate", False, "pip install accelerate"),
        ("bitsandbytes", False, "needed for --quant 4bit: pip install bitsandbytes"),
        ("flash-attn", False, "optional, faster attention on GPU: pip install -e '.[gpu]'"),
    ):
        version = _version(dist)
        if version is None:
            checks.append(Check(dist, FAIL if required else WARN, f"not installed; {hint}", required=required))
        elif dist == "bitsandbytes":
            checks.append(check_four_bit(version))
        else:
            checks.append(Check(dist, OK, version, required=required))
    return checks


def check_four_bit(version: str) -> Check:
    """bitsandbytes is only as good as its 4-bit matmul on this machine's device: run one."""
    from clapper_core.hardware import _cuda_available, nf4_matmul_check

    try:
        device = "cuda" if _cuda_available() else "cpu"
    except Exception:  # no torch: reported by check_torch
        return Check("bitsandbytes", WARN, f"{version}; not checked (torch cannot be imported)")
    failure = nf4_matmul_check(device)
    if failure is None:
        return Check("bitsandbytes", OK, f"{version}, a 4-bit matmul runs on the {device}")
    return Check("bitsandbytes", WARN, f"{version}, but a 4-bit matmul fails on the {device} ({failure}): "
                                       "--quant 4bit will not work; use --quant bf16 or reinstall bitsandbytes")


def check_av() -> list[Check]:
    try:
        import av
        from av.codec import Codec
    except Exception as exc:  # reported, never raised
        return [Check("pyav", FAIL, f"cannot import av: {exc}; pip install av", required=True)]
    libs = getattr(av, "library_versions", {})
    ffmpeg = ".".join(map(str, libs.get("libavcodec", ()))) or "?"
    checks = [Check("pyav", OK, f"{av.__version__} (libavcodec {ffmpeg})", required=True)]
    found, missing = [], []
    for name in DECODERS:
        try:
            Codec(name, "r")
            found.append(name)
        except Exception:  # av raises UnknownCodecError (a ValueError) or FFmpegError by version
            missing.append(name)
    status = OK if not missing else WARN
    detail = ", ".join(found) + (f"; missing: {', '.join(missing)}" if missing else "")
    checks.append(Check("decoders", status, detail))
    return checks


def model_location(name: str) -> tuple[str, str]:
    """Where `name` would be loaded from: (status, description). Reads the filesystem only."""
    from clapper_core.settings import DEMO_MODEL

    if name == DEMO_MODEL:
        demo = Path(find_spec("clapper_core").origin).parent / "demo_model"  # type: ignore[arg-type]
        if (demo / "config.json").exists():
            return OK, f"built-in demo model ({demo})"
        return FAIL, f"built-in demo model, but {demo} holds no config.json: reinstall clapper"
    path = Path(name).expanduser()
    if path.exists():
        if (path / "config.json").exists():
            return OK, f"local directory {path.resolve()}"
        return FAIL, f"{path} exists but holds no config.json: point --model at a saved Clapper model"
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        cache = _hf_cache_dir() / ("models--" + name.replace("/", "--"))
        if cache.is_dir():
            return OK, f"Hugging Face cache ({cache})"
        from clapper_core.settings import hf_offline

        if hf_offline():
            return FAIL, f"not in the Hugging Face cache ({cache.parent}) and HF_HUB_OFFLINE is set"
        return WARN, f"not cached: would download {name} from the Hugging Face Hub into {cache.parent}"
    return FAIL, f"{name} is neither a directory nor a Hugging Face id (owner/name)"


def _hf_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def check_model(model: str | None) -> list[Check]:
    from clapper_core.errors import ConfigError
    from clapper_core.settings import config_path, resolve

    try:
        settings = resolve({"model": model})
    except ConfigError as exc:
        return [Check("settings", FAIL, str(exc))]
    path = config_path()
    checks = [Check("config", OK, f"{path}" + ("" if path.exists() else " (not created; defaults apply)"))]
    status, where = model_location(settings.model)
    checks.append(Check("model", status, f"{settings.model} [{settings.sources['model']}] -> {where}"))
    checks.append(Check("precision", OK, f"quant {settings.quant}, device {settings.device}, attn {settings.attn}"))
    return checks


def doctor(model: opt.Model = None, json_output: opt.Json = False) -> None:
    """Check the installation: Python, torch, CUDA and GPUs, bitsandbytes, flash-attn, PyAV, the model."""
    checks: list[Check] = []
    for step in (check_python, check_clapper, check_torch, check_packages, check_av):
        checks += step()
    checks += check_model(model)
    if json_output:
        sys.stdout.write(json.dumps([asdict(c) for c in checks], indent=2) + "\n")
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            sys.stdout.write(f"{MARKS[c.status]} {c.name:<{width}}  {c.detail}\n")
    if any(c.required and c.status == FAIL for c in checks):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this module's command(s) to `app`."""
    app.command("doctor", epilog=EPILOG)(doctor)
