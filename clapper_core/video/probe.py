"""What the model would see of a video: its metadata and sampling plan, without a model."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clapper_core.video.clip import Clip, SamplingPlan, VideoInfo
from clapper_core.video.decode import load_clip, probe_video
from clapper_core.video.sampling import SamplingConfig, plan_sampling


@dataclass(frozen=True)
class ProbeReport:
    """A video's metadata and its sampling plan; with a contact sheet, the decoded clip too."""

    info: VideoInfo
    plan: SamplingPlan
    clip: Clip | None = None
    sheet: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        plan = self.plan.to_dict()
        if self.clip is not None:  # the times actually decoded, which snapping may move
            plan.update({k: v for k, v in self.clip.to_dict().items() if k in ("timestamps", "segments", "warnings")})
        return {
            "video": self.info.to_dict(),
            "sampling": plan,
            "sheet": str(self.sheet) if self.sheet else None,
        }


def inspect_video(
    path: str | os.PathLike, config: SamplingConfig = SamplingConfig(), *, sheet: str | os.PathLike | None = None
) -> ProbeReport:
    """Probe `path` and plan its sampling; with `sheet`, decode the frames and write a contact sheet."""
    if sheet is None:
        info = probe_video(path)
        return ProbeReport(info, plan_sampling(info, config))
    from clapper_core.video.sheet import write_contact_sheet

    clip = load_clip(path, config)
    plan = plan_sampling(clip.info, config)
    written = write_contact_sheet(clip, sheet)
    return ProbeReport(clip.info, plan, clip, written)

