"""What the model would see of a video: its metadata, sampling plan and visual tokens, without torch.

The tokens are priced from the configured model's config.json (`model_token_costs`), so they are
the ones `clapper ask` spends; when no model can be found, the full-size Clapper's costs are
assumed and the report says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clapper_core.errors import ModelError
from clapper_core.model.tokens import DEFAULT_COSTS, TokenCosts
from clapper_core.video.clip import Clip, SamplingPlan, VideoInfo
from clapper_core.video.container import probe_video
from clapper_core.video.decode import load_clip
from clapper_core.video.sampling import SamplingConfig, plan_sampling


@dataclass(frozen=True)
class ModelCosts:
    """Whose token costs a report counts with: a model found on disk, or the assumed default."""

    name: str
    costs: TokenCosts
    path: str | None = None  # the model directory; None when the costs are assumed
    assumed: str | None = None  # why no model was read, and what was assumed instead

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, **self.costs.to_dict(), "assumed": self.assumed is not None}


def model_costs(model: str) -> ModelCosts:
    """The visual-token costs of `model` (a directory, clapper-demo or a cached Hugging Face id)."""
    from clapper_core.model.loading import model_token_costs

    try:
        costs, model_dir = model_token_costs(model)
    except ModelError as exc:
        d = DEFAULT_COSTS
        why = (f"{exc}; counting the full-size Clapper's {d.keyframe} keyframe + {d.fast} fast tokens "
               f"per segment of up to {d.segment_size} frames")
        return ModelCosts(model, d, assumed=why)
    return ModelCosts(model, costs, str(model_dir))


@dataclass(frozen=True)
class ProbeReport:
    """A video's metadata, its sampling plan and the model's costs; with a contact sheet, the clip too."""

    info: VideoInfo
    plan: SamplingPlan
    model: ModelCosts
    clip: Clip | None = None
    sheet: Path | None = None

    @property
    def visual_tokens(self) -> int:
        return self.model.costs.count((self.clip or self.plan).segment_sizes)

    def to_dict(self) -> dict[str, Any]:
        plan = self.plan.to_dict()
        if self.clip is not None:  # the times actually decoded, which snapping may move
            plan.update({k: v for k, v in self.clip.to_dict().items() if k in ("timestamps", "segments", "warnings")})
        plan["visual_tokens"] = self.visual_tokens
        most = self.model.costs.segment_size
        if max((self.clip or self.plan).segment_sizes) > most:
            plan["warnings"].append(
                f"segments are longer than the model's {most} frames; clapper ask will refuse them "
                f"(use --segment-size {most})"
            )
        return {
            "video": self.info.to_dict(),
            "sampling": plan,
            "model": self.model.to_dict(),
            "sheet": str(self.sheet) if self.sheet else None,
        }


def inspect_video(
    path: str | os.PathLike,
    config: SamplingConfig = SamplingConfig(),
    *,
    model: str,
    sheet: str | os.PathLike | None = None,
) -> ProbeReport:
    """Probe `path`, plan its sampling and price it for `model`; with `sheet`, decode the frames
    and write a contact sheet."""
    costs = model_costs(model)
    if sheet is None:
        info = probe_video(path)
        return ProbeReport(info, plan_sampling(info, config), costs)
    from clapper_core.video.sheet import write_contact_sheet

    clip = load_clip(path, config)
    plan = plan_sampling(clip.info, config)
    written = write_contact_sheet(clip, sheet)
    return ProbeReport(clip.info, plan, costs, clip, written)
