"""From training records to model inputs: token ids, answer-only labels, and batched video pixels.

One record becomes one sequence laid out exactly as Qwen2's chat template renders the
conversation, with the video where the processor puts it (at the start of the first user turn):

    <|im_start|>system ...<|im_end|>\\n<|im_start|>user\\n [0.0s]<video>*N \\n{q1}<|im_end|>\\n<|im_start|>assistant\\n
    {a1}<|im_end|>                                   <- labels: the only trained tokens
    \\n<|im_start|>user\\n{q2}<|im_end|>\\n<|im_start|>assistant\\n
    {a2}<|im_end|>                                   <- trained
    \\n

Everything else has label -100, so the loss covers answer tokens (and the end-of-turn token that
stops generation) only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from clapper_core.model.tokenizer import IM_END, IM_START
from clapper_core.train.data import ClipCache, TrainRecord

IGNORE = -100


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]
    pixel_values: torch.Tensor  # (T, 3, S, S)
    segment_sizes: tuple[int, ...]
    record_id: str = ""


class ExampleBuilder:
    """Turns records into `Example`s, decoding each video when asked (in a loader worker, usually).

    Nothing is kept between calls: memory does not grow with the number of distinct videos."""

    def __init__(self, processor, cache: ClipCache, *, max_length: int | None = None):
        self.processor = processor
        self.cache = cache
        self.max_length = max_length
        tok = processor.tokenizer
        self._end = tok.encode(IM_END, add_special_tokens=False)
        self._newline = tok.encode("\n", add_special_tokens=False)

    def video(self, record: TrainRecord):
        return self.processor.prepare_video(self.cache.get(record.video))

    def __call__(self, record: TrainRecord) -> Example:
        tok = self.processor.tokenizer
        vi = self.video(record)
        ids: list[int] = list(vi.prefix_ids)
        labels: list[int] = [IGNORE] * len(ids)
        for i, (question, answer) in enumerate(record.turns):
            if i == 0:
                q = self.processor.question_ids(question)
            else:
                q = self._newline + tok.encode(f"{IM_START}user\n{question}{IM_END}\n{IM_START}assistant\n",
                                               add_special_tokens=False)
            a = tok.encode(answer, add_special_tokens=False) + self._end
            ids += q + a
            labels += [IGNORE] * len(q) + a
        ids += self._newline
        labels += [IGNORE] * len(self._newline)
        if self.max_length is not None and len(ids) > self.max_length:
            # Never cut into the video placeholders: the model checks their number.
            assert self.max_length > len(vi.prefix_ids), "max_length shorter than the video prompt"
            ids, labels = ids[: self.max_length], labels[: self.max_length]
        return Example(ids, labels, vi.pixel_values, vi.segment_sizes, record.id)


def collate(examples: list[Example], *, pad_id: int) -> dict:
    """Right-padded batch; the videos' frames concatenated in batch order, segments likewise."""
    L = max(len(e.input_ids) for e in examples)
    B = len(examples)
    input_ids = torch.full((B, L), pad_id, dtype=torch.long)  # (B, L)
    labels = torch.full((B, L), IGNORE, dtype=torch.long)  # (B, L)
    attention_mask = torch.zeros((B, L), dtype=torch.long)  # (B, L)
    for b, e in enumerate(examples):
        n = len(e.input_ids)
        input_ids[b, :n] = torch.tensor(e.input_ids)
        labels[b, :n] = torch.tensor(e.labels)
        attention_mask[b, :n] = 1
    return {
        "input_ids": input_ids,
        "labels": labels,
        "attention_mask": attention_mask,
        "pixel_values_videos": torch.cat([e.pixel_values for e in examples]),  # (sum T, 3, S, S)
        "segment_sizes": [n for e in examples for n in e.segment_sizes],
    }
