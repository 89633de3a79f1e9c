"""Contact sheet: the sampled frames in a grid, keyframes outlined, each with its time."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from clapper_core.errors import ConfigError
from clapper_core.video.clip import Clip

if TYPE_CHECKING:  # PIL is imported where a sheet is drawn, not when the module loads
    from PIL import Image

KEYFRAME_COLOUR = (255, 170, 0)
FRAME_COLOUR = (90, 90, 90)
BACKGROUND = (24, 24, 24)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        return ImageFont.load_default()


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60.0)
    return f"{int(minutes)}:{rest:05.2f}" if minutes else f"{rest:.2f}s"


def render_contact_sheet(clip: Clip, *, columns: int | None = None, thumb_width: int = 192) -> "Image.Image":
    """A PIL image of the clip's frames: one row per segment by default (segment_size columns)."""
    from PIL import Image, ImageDraw

    n, height, width = clip.frames.shape[:3]
    columns = columns or max(s.num_frames for s in clip.segments)
    rows = math.ceil(n / columns)
    tw = thumb_width
    th = max(1, round(height * tw / width))
    pad, label = 6, max(12, tw // 12)
    sheet = Image.new("RGB", (columns * (tw + pad) + pad, rows * (th + pad + label) + pad), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = _font(label - 2)
    keyframes = {s.keyframe for s in clip.segments}
    for i in range(n):
        r, c = divmod(i, columns)
        x, y = pad + c * (tw + pad), pad + r * (th + pad + label)
        thumb = Image.fromarray(np.ascontiguousarray(clip.frames[i])).resize((tw, th), Image.Resampling.BILINEAR)
        sheet.paste(thumb, (x, y))
        key = i in keyframes
        border = 3 if key else 1
        draw.rectangle((x - border, y - border, x + tw + border - 1, y + th + border - 1),
                       outline=KEYFRAME_COLOUR if key else FRAME_COLOUR, width=border)
        text = f"{'K ' if key else ''}#{i}  {_clock(clip.timestamps[i])}"
        draw.text((x, y + th + 2), text, fill=KEYFRAME_COLOUR if key else (220, 220, 220), font=font)
    return sheet


def write_contact_sheet(clip: Clip, path: str | os.PathLike, *, columns: int | None = None,
                        thumb_width: int = 192) -> Path:
    """Save the contact sheet; the format follows the suffix (.png, .jpg, .webp)."""
    path = Path(path)
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise ConfigError(f"contact sheet {path}: use a .png, .jpg or .webp file name")
    if path.parent and not path.parent.is_dir():
        raise ConfigError(f"contact sheet {path}: folder {path.parent} does not exist")
    render_contact_sheet(clip, columns=columns, thumb_width=thumb_width).save(path)
    return path
