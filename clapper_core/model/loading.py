"""`load_model`: a name (local directory, Hugging Face id, "clapper-demo") -> a ready Clapper model.

Everything transformers can fail on while loading is turned into a typed `ModelError` with one
line that names the problem; the precision, device and attention backend come from
`clapper_core.hardware.choose_hardware`, in one place.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from clapper_core import defaults
from clapper_core.defaults import ATTNS, DEVICES, QUANTS
from clapper_core.errors import ConfigError, ModelError, ModelFormatError, ModelNotFoundError, QuantizationError
from clapper_core.hardware import HardwareChoice, choose_hardware
from clapper_core.model.tokens import TokenCosts, token_costs
from clapper_core.settings import hf_offline

DEMO_MODEL = defaults.MODEL
DEMO_MODEL_DIR = Path(__file__).resolve().parent.parent / "demo_model"
MODEL_TYPES = ("clapper", "llava_onevision")
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
# Kept out of 4-bit: small, and sensitive to quantization error.
SKIP_QUANT_MODULES = ["model.vision_tower", "model.multi_modal_projector", "model.time_perceiver", "lm_head"]
_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
UNTRAINED_NOTICE = (
    "TimePerceiver is untrained: each segment's temporal tokens are {g}x{g} average pooling until the model "
    "is trained (clapper train)"
)


@dataclass(frozen=True)
class LoadConfig:
    """What to load and how: `quant` auto|bf16|4bit|fp32, `device` auto|cuda|cpu,
    `attn` auto|sdpa|flash_attention_2|eager."""

    model: str
    quant: str = defaults.QUANT
    device: str = defaults.DEVICE
    attn: str = defaults.ATTN

    def __post_init__(self):
        if not self.model or not str(self.model).strip():
            raise ConfigError("no model given: pass a model directory, a Hugging Face id or 'clapper-demo'")
        for name, allowed in (("quant", QUANTS), ("device", DEVICES), ("attn", ATTNS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} {getattr(self, name)!r} is not one of {', '.join(allowed)}")


@dataclass
class LoadedModel:
    model: object  # ClapperForConditionalGeneration, in eval mode
    processor: object  # ClapperProcessor
    hardware: HardwareChoice
    source: str  # where the weights came from (a directory)
    notices: list[str] = field(default_factory=list)

    @property
    def config(self):
        return self.model.config


# --- finding the files -------------------------------------------------------------------


def resolve_model_dir(name: str, *, cached_only: bool = False) -> Path:
    """The local directory holding `name`: a path, the built-in demo model, or a Hub snapshot.

    `cached_only` never downloads: a Hugging Face id must already be in the local cache.
    """
    if name == DEMO_MODEL:
        if not (DEMO_MODEL_DIR / "config.json").is_file():
            raise ModelNotFoundError(
                f"the built-in demo model is not installed (no config.json in {DEMO_MODEL_DIR}); "
                "reinstall clapper or pass --model with a model directory"
            )
        return DEMO_MODEL_DIR
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise ModelNotFoundError(f"{name} is a file; pass the model's directory (with config.json) instead")
    if not _HF_ID.match(name) or name.startswith((".", "/", "~")):
        raise ModelNotFoundError(
            f"no model directory at {name}; check the path, or pass a Hugging Face id (owner/name)"
        )
    return _snapshot(name, local_only=cached_only or hf_offline())


def _snapshot(repo_id: str, *, local_only: bool) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(
            snapshot_download(
                repo_id,
                allow_patterns=["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model"],
                local_files_only=local_only,
            )
        )
    except LocalEntryNotFoundError as exc:
        why = "HF_HUB_OFFLINE is set" if hf_offline() else (
            "only the cache is read here" if local_only else "the Hugging Face Hub cannot be reached")
        raise ModelNotFoundError(
            f"{repo_id} is not in the Hugging Face cache and {why}; download it once online or pass a local directory"
        ) from exc
    except RepositoryNotFoundError as exc:
        raise ModelNotFoundError(f"no Hugging Face model named {repo_id}; check the id (owner/name) or log in") from exc
    except (HfHubHTTPError, OSError) as exc:
        raise ModelNotFoundError(f"could not download {repo_id}: {str(exc).splitlines()[0]}") from exc


# --- configs -----------------------------------------------------------------------------


def read_config_json(model_dir: Path) -> dict:
    """The raw config.json of a Clapper or LLaVA-OneVision model directory (no transformers needed)."""
    cfg_file = model_dir / "config.json"
    if not cfg_file.is_file():
        raise ModelFormatError(f"{model_dir} has no config.json; it is not a model directory (or is incomplete)")
    try:
        data = json.loads(cfg_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{cfg_file} is not valid JSON ({exc}); re-download or re-save the model") from exc
    kind = data.get("model_type") if isinstance(data, dict) else None
    if kind not in MODEL_TYPES:
        raise ModelFormatError(
            f"{model_dir} holds a model of type {kind!r}; clapper loads 'clapper' and 'llava_onevision' checkpoints"
        )
    return data


def read_clapper_config(model_dir: Path):
    """The ClapperConfig of a model directory (a LLaVA-OneVision config is converted); and its kind."""
    from clapper_core.model import llava_onevision
    from clapper_core.model.configuration_clapper import ClapperConfig

    data = read_config_json(model_dir)
    kind = data["model_type"]
    try:
        if kind == llava_onevision.MODEL_TYPE:
            return llava_onevision.clapper_config_from_llava_onevision(data), kind
        return ClapperConfig.from_pretrained(str(model_dir)), kind
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelFormatError(f"{model_dir / 'config.json'} is not a valid {kind} config: {_first_line(exc)}") from exc


def model_token_costs(name: str) -> tuple[TokenCosts, Path]:
    """The visual-token costs of model `name` and its directory, from its config.json alone.

    Never downloads and never imports torch: `clapper probe` counts with it what `ask` will spend.
    """
    model_dir = resolve_model_dir(name, cached_only=True)
    return token_costs(read_config_json(model_dir)), model_dir


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__


@contextlib.contextmanager
def _quiet_transformers():
    """Keep transformers' own warnings and progress bars off the terminal while loading."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _from_pretrained_kwargs(hw: HardwareChoice, skip_modules: list[str]) -> dict:
    kwargs = {"dtype": hw.torch_dtype, "attn_implementation": hw.attn_implementation}
    if hw.quant == "4bit":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=hw.torch_dtype,
            llm_int8_skip_modules=SKIP_QUANT_MODULES + [re.escape(name) for name in skip_modules],
        )
        kwargs["device_map"] = {"": hw.device}
    elif hw.device == "cuda":
        kwargs["device_map"] = {"": "cuda"}
    return kwargs


def unquantizable_layers(config, device: str) -> tuple[list[str], int]:
    """The LLM's linear layers that bitsandbytes cannot run in 4 bits on `device`, and how many linear
    layers 4-bit would otherwise cover. Read from the model built on the meta device (no memory, no weights)."""
    import torch

    from clapper_core.hardware import nf4_quantizable
    from clapper_core.model.modeling_clapper import ClapperForConditionalGeneration

    with torch.device("meta"):
        skeleton = ClapperForConditionalGeneration(config)
    skipped = tuple(prefix + "." for prefix in SKIP_QUANT_MODULES)
    linears = [
        (name, module) for name, module in skeleton.named_modules()
        if isinstance(module, torch.nn.Linear) and not (name + ".").startswith(skipped)
    ]
    kept = [name for name, m in linears if not nf4_quantizable(m.in_features, m.out_features, device)]
    return kept, len(linears)


def _four_bit_notice(kept: list[str], total: int, hw: HardwareChoice) -> str | None:
    if not kept:
        return None
    return (
        f"4-bit: {len(kept)} of the LLM's {total} linear layers stay in {hw.dtype} (bitsandbytes cannot run "
        f"their shape on the {hw.device}; 4-bit on the CPU needs widths that are multiples of 64), "
        f"{total - len(kept)} are NF4"
    )


# --- loading -----------------------------------------------------------------------------


def load_model(cfg: LoadConfig) -> LoadedModel:
    """Load `cfg.model` as a Clapper model on the chosen hardware, with its processor."""
    from clapper_core.model import llava_onevision
    from clapper_core.model.modeling_clapper import ClapperForConditionalGeneration
    from clapper_core.model.processing_clapper import ClapperProcessor

    hw = choose_hardware(cfg.device, cfg.quant, cfg.attn)
    model_dir = resolve_model_dir(cfg.model)
    config, kind = read_clapper_config(model_dir)
    if not any(any(model_dir.glob(p)) for p in WEIGHT_PATTERNS):
        raise ModelFormatError(f"{model_dir} has a config but no weights (*.safetensors); the download is incomplete")

    kept, total = unquantizable_layers(config, hw.device) if hw.quant == "4bit" else ([], 0)
    kwargs = _from_pretrained_kwargs(hw, kept)
    if kind == llava_onevision.MODEL_TYPE:
        kwargs["key_mapping"] = llava_onevision.LEGACY_KEY_MAPPING
    with _quiet_transformers():
        try:
            model, info = ClapperForConditionalGeneration.from_pretrained(
                str(model_dir), config=config, output_loading_info=True, **kwargs
            )
        except ImportError as exc:  # transformers checks bitsandbytes / accelerate itself
            raise QuantizationError(f"cannot load in {hw.quant}: {_first_line(exc)}") from exc
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            msg = _first_line(exc)
            if "ignore_mismatched_sizes" in msg or "size mismatch" in msg:
                msg = (
                    "its weights do not fit its config.json (tensor shapes differ); "
                    "the config was edited or belongs to other weights"
                )
            raise ModelFormatError(f"cannot load {model_dir}: {msg}") from exc
    _check_loading_info(model_dir, info, model)
    if kind == llava_onevision.MODEL_TYPE:
        # Save under Clapper's own names, not the legacy ones the weights were read from.
        model._weight_conversions = []

    try:
        processor = ClapperProcessor.from_pretrained(model_dir, config)
    except (OSError, ValueError) as exc:
        raise ModelFormatError(f"cannot load the tokenizer of {model_dir}: {_first_line(exc)}") from exc
    model.eval()
    notices = [n for n in (_four_bit_notice(kept, total, hw),) if n]
    if kind == llava_onevision.MODEL_TYPE:
        notices.append(f"loaded the LLaVA-OneVision checkpoint {model_dir.name} as Clapper")
    tp = model.model.time_perceiver
    if tp is not None and tp.is_untrained():
        notices.append(UNTRAINED_NOTICE.format(g=config.perceiver_grid))
    return LoadedModel(model=model, processor=processor, hardware=hw, source=str(model_dir), notices=notices)


def _check_loading_info(model_dir: Path, info: dict, model) -> None:
    """Missing weights are an error, except the TimePerceiver's (it starts as pooling)."""
    mismatched = info.get("mismatched_keys") or []
    if mismatched:
        key = mismatched[0][0] if isinstance(mismatched[0], tuple) else mismatched[0]
        raise ModelFormatError(
            f"{model_dir}: weights do not fit the config ({len(mismatched)} shape mismatches, e.g. {key})"
        )
    tied = set(model.all_tied_weights_keys) if model.config.tie_word_embeddings else set()
    missing = [k for k in info.get("missing_keys") or [] if ".time_perceiver." not in f".{k}" and k not in tied]
    if missing:
        raise ModelFormatError(
            f"{model_dir}: {len(missing)} weights are missing (e.g. {missing[0]}); the checkpoint is incomplete "
            "or was written for another architecture"
        )


__all__ = ["DEMO_MODEL", "LoadConfig", "LoadedModel", "ModelError", "load_model", "resolve_model_dir"]
