"""Write anything that loads as Clapper (a LLaVA-OneVision checkpoint, say) as a standalone Clapper checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clapper_core.errors import ConfigError


@dataclass(frozen=True)
class ConvertResult:
    dest: Path
    source: str  # the directory the weights were read from
    notices: tuple[str, ...]  # what load_model noticed (an untrained TimePerceiver, say)


def convert_model(src: str, dest: str | Path, *, overwrite: bool = False) -> ConvertResult:
    """Load `src` (directory or Hugging Face id) in float32 on the CPU and save it, with its processor, to `dest`."""
    from clapper_core.model.loading import LoadConfig, _quiet_transformers, load_model

    dest = Path(dest)
    if dest.is_file() or (dest.is_dir() and any(dest.iterdir()) and not overwrite):
        raise ConfigError(
            f"{dest} exists and is not an empty directory; choose another destination or pass --overwrite"
        )
    loaded = load_model(LoadConfig(model=src, device="cpu", quant="fp32"))
    if dest.resolve() == Path(loaded.source).resolve():
        raise ConfigError(f"{dest} is the source model itself; write the converted model to another directory")
    dest.mkdir(parents=True, exist_ok=True)
    with _quiet_transformers():
        loaded.model.save_pretrained(str(dest))
    loaded.processor.save_pretrained(dest)
    return ConvertResult(dest=dest, source=loaded.source, notices=tuple(loaded.notices))
