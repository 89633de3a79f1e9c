"""ClapperProcessor: frames -> SigLIP pixels, and a Qwen2 chat prompt with the video's placeholders.

The prompt is built in two parts so that several questions about one video share a prefix:

    prefix = <|im_start|>system ...<|im_end|>\\n<|im_start|>user\\n [0.0s]<video>*245 [4.0s]<video>*245 ...
    suffix = \\n{question}<|im_end|>\\n<|im_start|>assistant\\n

The number of `<video>` tokens per segment comes from the config's `token_costs`, the same
count the model checks when it scatters the visual features into the prompt.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from clapper_core.errors import ConfigError, ModelFormatError
from clapper_core.model.configuration_clapper import ClapperConfig, split_segments
from clapper_core.model.tokenizer import VIDEO_TOKEN

PREPROCESSOR_FILE = "preprocessor_config.json"
_SENTINEL = "\u2063CLAPPER_VIDEO\u2063"  # stands for the video inside the chat template's output


@dataclass(frozen=True)
class VideoInputs:
    """A video ready for the model: pixels, segment layout and the prompt prefix that holds it."""

    pixel_values: torch.Tensor  # (T, 3, S, S) float32, normalised
    segment_sizes: tuple[int, ...]  # frames per consecutive segment
    segment_start_times: tuple[float, ...] | None  # seconds, or None when unknown
    prefix_ids: tuple[int, ...]  # system turn, user header, timestamps and video placeholders
    num_visual_tokens: int


class ClapperProcessor:
    """Tokenizer + frame preprocessing for one Clapper config."""

    def __init__(self, tokenizer, config: ClapperConfig, *, image_mean=(0.5, 0.5, 0.5), image_std=(0.5, 0.5, 0.5)):
        self.tokenizer = tokenizer
        self.config = config
        self.image_size = config.vision_config.image_size
        self.image_mean = tuple(float(x) for x in image_mean)
        self.image_std = tuple(float(x) for x in image_std)
        self.video_token_id = config.video_token_id
        found = tokenizer.convert_tokens_to_ids(VIDEO_TOKEN)
        if found != self.video_token_id:
            raise ModelFormatError(
                f"the tokenizer maps {VIDEO_TOKEN} to id {found} but the model's config says video_token_id="
                f"{self.video_token_id}; the tokenizer does not belong to this model"
            )

    # --- persistence -------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path: str | Path, config: ClapperConfig) -> ClapperProcessor:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(path))
        mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
        pre = Path(path) / PREPROCESSOR_FILE
        if pre.is_file():
            data = json.loads(pre.read_text())
            mean, std = data.get("image_mean", mean), data.get("image_std", std)
        return cls(tokenizer, config, image_mean=mean, image_std=std)

    def save_pretrained(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(str(path))
        pre = {
            "image_processor_type": "SiglipImageProcessor",
            "processor_class": "ClapperProcessor",
            "do_resize": True,
            "size": {"height": self.image_size, "width": self.image_size},
            "resample": 3,
            "do_rescale": True,
            "rescale_factor": 1 / 255,
            "do_normalize": True,
            "image_mean": list(self.image_mean),
            "image_std": list(self.image_std),
        }
        (path / PREPROCESSOR_FILE).write_text(json.dumps(pre, indent=2) + "\n")

    # --- pixels ------------------------------------------------------------------------

    def preprocess_frames(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """RGB uint8 frames (T, H, W, 3) -> SigLIP input (T, 3, S, S): resize, rescale, normalise."""
        if isinstance(frames, np.ndarray):  # torch shares the memory, so it must be contiguous and writable
            frames = torch.from_numpy(np.require(frames, requirements=("C_CONTIGUOUS", "WRITEABLE")))
        x = frames
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ConfigError(f"frames must be (T, H, W, 3) RGB, got shape {tuple(x.shape)}")
        x = x.permute(0, 3, 1, 2).float().div_(255.0)  # (T, 3, H, W) in [0, 1]
        S = self.image_size
        if x.shape[-2:] != (S, S):
            x = F.interpolate(x, size=(S, S), mode="bicubic", antialias=True, align_corners=False).clamp_(0, 1)
        mean = torch.tensor(self.image_mean).view(1, 3, 1, 1)
        std = torch.tensor(self.image_std).view(1, 3, 1, 1)
        return (x - mean) / std

    # --- segments and tokens -----------------------------------------------------------

    def segment_sizes(self, num_frames: int, segments: Sequence | None = None) -> tuple[int, ...]:
        """Frames per segment: from the clip's segments, or consecutive groups of `segment_size`."""
        if segments is None:
            return tuple(split_segments(num_frames, self.config.segment_size))
        sizes, expect = [], 0
        for seg in segments:
            start, stop = (seg.start, seg.stop) if hasattr(seg, "start") else seg
            if start != expect or stop <= start:
                raise ConfigError(
                    f"segments must cover the frames in order; got [{start}, {stop}) after frame {expect}"
                )
            if stop - start > self.config.segment_size:
                raise ConfigError(
                    f"a segment of {stop - start} frames exceeds this model's segment_size "
                    f"{self.config.segment_size}; sample with --segment-size {self.config.segment_size}"
                )
            sizes.append(stop - start)
            expect = stop
        if expect != num_frames:
            raise ConfigError(f"segments cover {expect} frames but the clip has {num_frames}")
        return tuple(sizes)

    def count(self, segment_sizes: Sequence[int]) -> int:
        """Visual tokens for these segments (the model checks the same number)."""
        return self.config.token_costs.count(segment_sizes)

    def video_ids(self, segment_sizes: Sequence[int], start_times: Sequence[float] | None) -> list[int]:
        """Per segment: optional "[12.0s]" timestamp text, then its video placeholder tokens."""
        ids: list[int] = []
        stamps = self.config.segment_timestamps and start_times is not None
        costs = self.config.token_costs
        for i, n in enumerate(segment_sizes):
            if stamps:
                ids += self.tokenizer.encode(f"[{start_times[i]:.1f}s]", add_special_tokens=False)
            ids += [self.video_token_id] * costs.segment(n)
        return ids

    def _chat_halves(self, question: str, history: Sequence[tuple[str, str]] = (),
                     system: str | None = None) -> tuple[str, str]:
        """The chat template's text before and after the video, for a conversation whose first user turn holds
        the video: earlier (question, answer) turns, then `question` and the assistant header."""
        turns = [*history, (question, None)]
        messages = [{"role": "system", "content": system}] if system is not None else []
        for i, (asked, answered) in enumerate(turns):
            messages.append({"role": "user", "content": (_SENTINEL + "\n" if i == 0 else "") + asked})
            if answered is not None:
                messages.append({"role": "assistant", "content": answered})
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        before, after = text.split(_SENTINEL)
        return before, after

    def prefix_ids(self, segment_sizes: Sequence[int], start_times: Sequence[float] | None, *,
                   system: str | None = None) -> list[int]:
        """System turn (the template's default unless `system` is given), user header, then the video."""
        before, _ = self._chat_halves("", system=system)
        return self.tokenizer.encode(before, add_special_tokens=False) + self.video_ids(segment_sizes, start_times)

    def question_ids(self, question: str, history: Sequence[tuple[str, str]] = ()) -> list[int]:
        """The part of the prompt after the video: earlier (question, answer) turns of the conversation, if any,
        then the question and the assistant header."""
        _, after = self._chat_halves(question, history)
        return self.tokenizer.encode(after, add_special_tokens=False)

    # --- one call ----------------------------------------------------------------------

    def prepare_video(self, clip=None, *, frames=None, timestamps=None, segments=None,
                      system: str | None = None) -> VideoInputs:
        """A `Clip` (or its frames, timestamps and segments) -> pixels, segment sizes, prompt prefix."""
        if clip is not None:
            frames, timestamps, segments = clip.frames, clip.timestamps, clip.segments
        if frames is None or len(frames) == 0:
            raise ConfigError("the video has no frames; check the file and the sampling options")
        sizes = self.segment_sizes(len(frames), segments)
        starts = None
        if segments is not None and all(hasattr(s, "start_time") for s in segments):
            starts = tuple(float(s.start_time) for s in segments)
        elif timestamps is not None:
            firsts = np.cumsum((0,) + sizes[:-1])
            starts = tuple(float(timestamps[i]) for i in firsts)
        return VideoInputs(
            pixel_values=self.preprocess_frames(frames),
            segment_sizes=sizes,
            segment_start_times=starts,
            prefix_ids=tuple(self.prefix_ids(sizes, starts, system=system)),
            num_visual_tokens=self.count(sizes),
        )

    def __call__(self, clip=None, question: str = "", *, frames=None, timestamps=None, segments=None) -> dict:
        """Model inputs for one video and one question (batch of 1), as `forward` / `generate` take them."""
        video = self.prepare_video(clip, frames=frames, timestamps=timestamps, segments=segments)
        ids = list(video.prefix_ids) + self.question_ids(question)
        input_ids = torch.tensor([ids], dtype=torch.long)
        return {
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids),
            "pixel_values_videos": video.pixel_values,
            "segment_sizes": list(video.segment_sizes),
        }
