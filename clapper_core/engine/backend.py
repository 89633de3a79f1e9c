"""The model side of the engine: several videos encoded in one pass, their questions answered in one batch.

    backend = ModelBackend(loaded, batch_size=8)
    prepared = backend.prepare(clip)                    # in a decode worker: pixels and prompt prefix
    backend.add([(key, prepared, question, gen), ...])  # encode these videos together, queue the rows
    while backend.busy:
        for done in backend.step():                     # Answer(key, text, new_tokens, stopped, ...)
            ...

The vision side takes the frames of every video in a group at once: SigLIP runs over all of them in
chunks, and the TimePerceiver takes every segment of every video in one call, segments of 2 to 4
frames masked to their length. The visual tokens come out in the order of the videos' placeholders
and are cut back into one block per video. The LLM side is `ContinuousBatch`: waiting rows join as
soon as a place is free.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import torch

from clapper_core.engine.batch import ContinuousBatch, Row
from clapper_core.generation import GenerationConfig, stop_ids, sync


@dataclass
class Prepared:
    """A decoded clip made ready for the model off the model's thread: pixels, segment sizes, prompt prefix."""

    clip: Any  # its frames dropped (Clip.without_pixels)
    video: Any  # processing_clapper.VideoInputs

    @property
    def num_visual_tokens(self) -> int:
        return int(self.video.num_visual_tokens)


@dataclass
class Answer:
    key: Any
    text: str
    new_tokens: int
    stopped: bool
    prompt_tokens: int
    prefill_s: float
    generate_s: float


@dataclass
class _Waiting:
    key: Any
    prefix: torch.Tensor  # (Lp, D)
    embeds: torch.Tensor  # (Lq, D)
    gen: GenerationConfig


class ModelBackend:
    """Encode groups of videos and generate their answers with continuous batching."""

    def __init__(self, loaded: Any, *, batch_size: int) -> None:
        self.model = loaded.model
        self.processor = loaded.processor
        self.tokenizer = self.processor.tokenizer
        self.device = self.model.get_input_embeddings().weight.device
        self.batch = ContinuousBatch(self.model, stop_ids(self.model, self.tokenizer), capacity=batch_size)
        self.waiting: deque[_Waiting] = deque()

    @property
    def free(self) -> int:
        """Rows that could start now: free places in the batch, less those already waiting for one."""
        return self.batch.free - len(self.waiting)

    @property
    def rows(self) -> int:
        return len(self.batch.rows)

    @property
    def busy(self) -> bool:
        return bool(self.batch.rows or self.waiting)

    def timed(self, fn, *args):
        """`fn(*args)` and the seconds it took, synchronized on CUDA so that each stage is charged its own time."""
        t0 = time.perf_counter()
        out = fn(*args)
        sync(self.device)
        return out, time.perf_counter() - t0

    def prepare(self, clip: Any) -> Prepared:
        """Resize and normalize the frames and tokenize the prompt prefix (safe to run in a worker thread). The
        decoded frames are dropped once the model's pixels are made: videos waiting in the queue or answering in
        the batch hold only those."""
        return Prepared(clip=clip.without_pixels(), video=self.processor.prepare_video(clip))

    @torch.inference_mode()
    def encode(self, prepared: list[Prepared]) -> list[torch.Tensor]:
        """Visual tokens of several videos in one pass: one (N_i, D) block per video."""
        pixels = torch.cat([p.video.pixel_values for p in prepared]).to(self.device)  # (sum T_i, 3, H, W)
        sizes = [n for p in prepared for n in p.video.segment_sizes]
        features = self.model.get_video_features(pixels, sizes)  # (sum N_i, D)
        return list(features.split([p.num_visual_tokens for p in prepared]))

    @torch.inference_mode()
    def add(self, items: list[tuple[Any, Prepared, str, GenerationConfig]], features: list[torch.Tensor]) -> None:
        """Queue one row per (key, prepared video, question, generation config); `features[i]` is item i's video.
        The questions about one video share its prefix's embeddings (and so its prefill, when they join together)."""
        m = self.model.model
        embed = m.get_input_embeddings()
        prefixes: dict[int, torch.Tensor] = {}
        for (key, prepared, question, gen), feats in zip(items, features):
            if id(prepared) not in prefixes:
                ids = torch.tensor([prepared.video.prefix_ids], dtype=torch.long, device=self.device)  # (1, Lp)
                prefixes[id(prepared)] = m.merge_video(ids, embed(ids), feats)[0]  # (Lp, D)
            q_ids = torch.tensor(self.processor.question_ids(question), dtype=torch.long, device=self.device)
            self.waiting.append(_Waiting(key, prefixes[id(prepared)], embed(q_ids), gen))  # (Lq, D)

    def step(self) -> list[Answer]:
        """Let waiting rows join, run one decoding step; the answers that finished in it."""
        if self.waiting and self.batch.free:
            joining = [self.waiting.popleft() for _ in range(min(self.batch.free, len(self.waiting)))]
            self.batch.join([Row(w.key, w.prefix, w.embeds, w.gen) for w in joining])
        return [self._answer(r) for r in self.batch.step()]

    def _answer(self, row: Row) -> Answer:
        text = self.tokenizer.decode(row.tokens, skip_special_tokens=True).lstrip()
        return Answer(key=row.key, text=text, new_tokens=len(row.tokens), stopped=row.stopped,
                      prompt_tokens=row.prompt_tokens, prefill_s=row.prefill_s, generate_s=row.generate_s)
