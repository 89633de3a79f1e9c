"""Defaults for every command: config file < `CLAPPER_*` environment < command-line flags.

One `Settings` object is resolved once per command by `resolve(flags)`; each value remembers
where it came from, so `clapper config show` can say why a value is what it is. The file is
TOML (`config.toml` in the platformdirs user config dir, or the file `CLAPPER_CONFIG` names;
a `.json` file is read and written as JSON).

    model = "./checkpoints/clapper-7b"
    quant = "4bit"
    fps = 0.5

Every value is validated where it is read; a bad one raises `ConfigError` naming the
value, where it came from, and what would work.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping

from clapper_core import defaults as D
from clapper_core.defaults import ATTNS, DEVICES, QUANTS
from clapper_core.errors import ConfigError

DEMO_MODEL = D.MODEL
ENV_PREFIX = "CLAPPER_"
CONFIG_ENV = "CLAPPER_CONFIG"  # path of the config file, overriding the platformdirs location
OFF = ("", "0", "false", "no", "off")  # what turns an on/off switch off, in any case


def env_flag(name: str, env: Mapping[str, str] | None = None) -> bool:
    """An on/off switch of the environment (CLAPPER_DEBUG, CLAPPER_EAGER, CLAPPER_COMPILE): off when unset, empty or
    0/false/no/off in any case; on for anything else."""
    return (os.environ if env is None else env).get(name, "").strip().lower() not in OFF


def hf_offline(env: Mapping[str, str] | None = None) -> bool:
    """Whether HF_HUB_OFFLINE is on, read as huggingface_hub reads it: 1/on/yes/true in any case."""
    return (os.environ if env is None else env).get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


# --- what each key is ---------------------------------------------------------------------


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value.strip()


def _choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return text

    return parse


def _number(*, integer: bool, low: float, low_open: bool = False, high: float | None = None) -> Callable[[Any], Any]:
    def parse(value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("must be a number")
        try:
            number = int(str(value).strip()) if integer else float(str(value).strip())
        except ValueError:
            raise ValueError(f"must be {'a whole number' if integer else 'a number'}") from None
        if isinstance(number, float) and not math.isfinite(number):
            raise ValueError("must be a finite number")
        if number < low or (low_open and number == low) or (high is not None and number > high):
            bound = f"> {low:g}" if low_open else f">= {low:g}"
            raise ValueError(f"must be {bound}" + (f" and <= {high:g}" if high is not None else ""))
        return number

    return parse


def _batch_size(value: Any) -> int | str:
    if str(value).strip().lower() == "auto":
        return "auto"
    return _number(integer=True, low=1)(value)


def _optional_int(value: Any) -> int | None:
    if value is None or str(value).strip().lower() in ("", "none", "null"):
        return None
    return _number(integer=True, low=0)(value)


@dataclass(frozen=True)
class Key:
    name: str
    parse: Callable[[Any], Any]
    default: Any
    help: str
    example: str

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


KEYS: dict[str, Key] = {
    k.name: k
    for k in (
        Key("model", _text, D.MODEL, "model directory, Hugging Face id, or clapper-demo", "./checkpoints/clapper"),
        Key("quant", _choice(*QUANTS), D.QUANT, "weight precision: " + "|".join(QUANTS), "4bit"),
        Key("device", _choice(*DEVICES), D.DEVICE, "where to run: " + "|".join(DEVICES), "cuda"),
        Key("attn", _choice(*ATTNS), D.ATTN, "attention kernel: " + "|".join(ATTNS), "sdpa"),
        Key("fps", _number(integer=False, low=0, low_open=True), D.FPS, "frames sampled per second", "0.5"),
        Key("max_frames", _number(integer=True, low=1), D.MAX_FRAMES, "most frames sampled from one video", "64"),
        Key("segment_size", _number(integer=True, low=1), D.SEGMENT_SIZE, "frames per slow-fast segment", "4"),
        Key("max_new_tokens", _number(integer=True, low=1), D.MAX_NEW_TOKENS, "longest answer in tokens", "128"),
        Key("temperature", _number(integer=False, low=0), D.TEMPERATURE, "sampling temperature (0 = greedy)", "0.7"),
        Key("top_p", _number(integer=False, low=0, low_open=True, high=1), D.TOP_P, "nucleus sampling mass", "0.9"),
        Key("seed", _optional_int, D.SEED, "random seed for sampling (none = unseeded)", "1234"),
        Key("prompt", _text, D.CAPTION_PROMPT, "prompt `clapper caption` asks", "Describe the video."),
        Key("batch_size", _batch_size, D.BATCH_SIZE,
            f"answers generated together by caption and eval: a number, or auto ({D.BATCH_SIZE_CUDA} on a GPU, "
            f"{D.BATCH_SIZE_CPU} on the CPU)", "8"),
    )
}


def normalize_key(name: str) -> str:
    """`max-frames`, `MAX_FRAMES` and `max_frames` all name the same key; unknown names raise."""
    key = name.strip().lower().replace("-", "_")
    if key not in KEYS:
        raise ConfigError(f"unknown setting {name!r}; known settings: {', '.join(KEYS)}")
    return key


# --- the resolved settings ----------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Every default a command needs, resolved once; `sources[key]` says where each came from."""

    model: str = D.MODEL
    quant: str = D.QUANT
    device: str = D.DEVICE
    attn: str = D.ATTN
    fps: float = D.FPS
    max_frames: int = D.MAX_FRAMES
    segment_size: int = D.SEGMENT_SIZE
    max_new_tokens: int = D.MAX_NEW_TOKENS
    temperature: float = D.TEMPERATURE
    top_p: float = D.TOP_P
    seed: int | None = D.SEED
    prompt: str = D.CAPTION_PROMPT
    batch_size: int | str = D.BATCH_SIZE
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def uses_demo_model(self) -> bool:
        return self.model == DEMO_MODEL

    @property
    def batch_size_number(self) -> int | None:
        """The batch size, or None for the device's default ("auto")."""
        return None if self.batch_size == "auto" else int(self.batch_size)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "sources"}

    # The runtime config objects of the layers below; imported here, lazily, so that reading
    # settings never pulls in torch.
    def sampling_config(self):
        from clapper_core.video import SamplingConfig

        return SamplingConfig(fps=self.fps, max_frames=self.max_frames, segment_size=self.segment_size)

    def load_config(self):
        from clapper_core.model import LoadConfig

        return LoadConfig(model=self.model, quant=self.quant, device=self.device, attn=self.attn)

    def generation_config(self):
        from clapper_core.generation import GenerationConfig

        return GenerationConfig(
            max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p, seed=self.seed
        )


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """Where the config file lives: `$CLAPPER_CONFIG`, else `config.toml` in the user config dir."""
    env = os.environ if env is None else env
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser()
    from platformdirs import user_config_dir

    directory = Path(user_config_dir("clapper", appauthor=False))
    toml_path, json_path = directory / "config.toml", directory / "config.json"
    return json_path if json_path.exists() and not toml_path.exists() else toml_path


def read_config_file(path: Path) -> dict[str, Any]:
    """The raw values in `path` (empty when the file does not exist), keys normalized."""
    if not path.exists():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}; check its permissions") from exc
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text) if text.strip() else {}
        else:
            import tomllib

            data = tomllib.loads(text)
    except (ValueError, json.JSONDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid {_format(path)}: {exc}; fix it or delete it") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold key = value pairs; fix it or delete it")
    out: dict[str, Any] = {}
    for name, value in data.items():
        try:
            out[normalize_key(name)] = value
        except ConfigError:
            raise ConfigError(
                f"unknown setting {name!r} in {path}; known settings: {', '.join(KEYS)} (edit or delete the file)"
            ) from None
    return out


def _format(path: Path) -> str:
    return "JSON" if path.suffix.lower() == ".json" else "TOML"


def _parse(key: str, value: Any, where: str) -> Any:
    spec = KEYS[key]
    try:
        return spec.parse(value)
    except ValueError as exc:
        raise ConfigError(f"{where} = {value!r} is invalid: {key} {exc} (for example {spec.example})") from None


def resolve(
    flags: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    path: Path | None = None,
) -> Settings:
    """Settings from built-in defaults, then the config file, then `CLAPPER_*`, then `flags`.

    `flags` maps key names to command-line values; `None` means "not given" and is skipped.
    """
    env = os.environ if env is None else env
    path = config_path(env) if path is None else path
    values: dict[str, Any] = {name: key.default for name, key in KEYS.items()}
    sources: dict[str, str] = {name: "default" for name in KEYS}

    for key, raw in read_config_file(path).items():
        values[key], sources[key] = _parse(key, raw, f"{key} in {path}"), f"file {path}"
    for key, spec in KEYS.items():
        if spec.env in env and env[spec.env].strip() != "":
            values[key], sources[key] = _parse(key, env[spec.env], spec.env), f"env {spec.env}"
    for name, raw in (flags or {}).items():
        if raw is None:
            continue
        key = normalize_key(name)
        values[key], sources[key] = _parse(key, raw, KEYS[key].flag), "flag"
    return Settings(**values, sources=sources)


# --- writing the file -------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a valid TOML basic string


def write_config_file(path: Path, values: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ordered = {k: values[k] for k in KEYS if k in values and values[k] is not None}
    if path.suffix.lower() == ".json":
        text = json.dumps(ordered, indent=2, ensure_ascii=False) + "\n"
    else:
        text = "# clapper settings; `clapper config show` lists them all\n"
        text += "".join(f"{k} = {_toml_value(v)}\n" for k, v in ordered.items())
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def set_value(name: str, raw: str, *, path: Path | None = None) -> tuple[str, Any, Path]:
    """Validate `raw` for setting `name` and store it in the config file; returns (key, value, path)."""
    key = normalize_key(name)
    value = _parse(key, raw, key)
    path = config_path() if path is None else path
    values = read_config_file(path)
    if value is None:
        values.pop(key, None)
    else:
        values[key] = value
    write_config_file(path, values)
    return key, value, path


def unset_value(name: str, *, path: Path | None = None) -> tuple[str, bool, Path]:
    """Remove setting `name` from the config file; returns (key, whether it was there, path)."""
    key = normalize_key(name)
    path = config_path() if path is None else path
    values = read_config_file(path)
    present = values.pop(key, None) is not None
    if present:
        write_config_file(path, values)
    return key, present, path
