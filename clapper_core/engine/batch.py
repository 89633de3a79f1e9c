"""Continuous batching: rows of prompt embeddings generating together, joining and leaving at any step.

    batch = ContinuousBatch(model, stop_ids, capacity=8)
    batch.join([Row(key, prefix, question, gen), ...])   # left-padded prefill of the newcomers
    while batch.rows:
        for row in batch.step():                     # one token for every row; finished rows leave
            print(row.key, row.tokens, row.stopped)

Every row of the LLM's batch is one answer. Newcomers are prefilled on their own, in two passes as a
session runs a prompt: each distinct prefix (system turn and video) once, then every question on top of
its prefix (several questions about one video share its prefix's prefill); then their cache is merged
into the running one: both are padded on the left to the same length and stacked. The attention mask keeps every pad out of every softmax, and each row's
position ids count its own tokens only, so a row sees what it would see alone: in greedy mode the
tokens are those of a batch of one (tests check this). A finished row leaves the cache at once, and
columns that have become padding for every row are cut off, so a long answer does not keep the pads
of the rows that left before it.

Why not `model.generate`: it fixes the batch at the start (a finished row keeps computing padding until
the longest answer ends, and nothing can join). The loop below is the per-step part of it, on the
same `DynamicCache` and the same attention-mask and position-id conventions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import DynamicCache

from clapper_core.generation import GenerationConfig, _sample, sync
from clapper_core.model.modeling_clapper import CACHE_ARG


@dataclass
class Row:
    """One answer being generated: the prompt's embeddings (L, D) in, token ids out."""

    key: Any  # the caller's name for it
    prefix: torch.Tensor  # (Lp, D): system turn and video, tokens merged in; rows of one video share the object
    embeds: torch.Tensor  # (Lq, D): the question and the assistant header
    gen: GenerationConfig = field(default_factory=GenerationConfig)
    tokens: list[int] = field(default_factory=list)
    stopped: bool = False  # ended on a stop token (False: cut at max_new_tokens)
    joined_at: float = 0.0  # perf_counter when its prefill started
    prefill_s: float = 0.0  # its share of the prefill it joined with
    finished_at: float = 0.0
    _next: int = -1  # the token sampled from the last logits, not yet run
    _length: int = 0  # tokens in the cache that are this row's (prompt + tokens run)
    _rng: torch.Generator | None = None

    @property
    def prompt_tokens(self) -> int:
        return int(self.prefix.shape[0] + self.embeds.shape[0])

    @property
    def generate_s(self) -> float:
        return self.finished_at - self.joined_at - self.prefill_s


class ContinuousBatch:
    """Up to `capacity` rows decoding in one LLM batch on one cache."""

    def __init__(self, model, stop_ids: set[int], *, capacity: int) -> None:
        self.lm = model.model.language_model
        self.head = model.lm_head
        self.embed = model.get_input_embeddings()
        self.text_config = model.config.text_config
        self.stop_ids = stop_ids
        self.capacity = capacity
        self.rows: list[Row] = []
        self.cache: DynamicCache | None = None
        self.mask: torch.Tensor | None = None  # (B, T) 1 where the cache holds a row's token, 0 for padding

    @property
    def free(self) -> int:
        return self.capacity - len(self.rows)

    # --- joining ----------------------------------------------------------------------------

    @torch.inference_mode()
    def join(self, rows: list[Row]) -> None:
        """Prefill `rows` together and add them to the running batch (at most `free` of them).

        In two passes, as a session runs a video's prompt: the distinct prefixes (system turn and video) once
        each, then every row's question on top of its prefix. Rows that share a prefix (several questions about
        one video) share its prefill: the prefix's cache is copied to each of them."""
        if not rows:
            return
        assert len(rows) <= self.free, f"{len(rows)} rows join a batch with {self.free} free places"
        t0 = time.perf_counter()
        distinct = {id(r.prefix): r.prefix for r in rows}  # the distinct prefixes, in order of appearance
        prefixes, number = list(distinct.values()), {key: j for j, key in enumerate(distinct)}
        which = [number[id(r.prefix)] for r in rows]  # each row's prefix
        cache = DynamicCache(config=self.text_config)
        prefix_mask = self._prefill(prefixes, cache, torch.zeros(len(prefixes), 0, dtype=torch.long,
                                                                  device=rows[0].embeds.device))  # (P, Lp)
        index = torch.tensor(which, device=prefix_mask.device)
        for layer in cache.layers:  # (P, H, Lp, d) -> (B, H, Lp, d): each row its prefix's keys and values
            layer.keys, layer.values = layer.keys[index], layer.values[index]
        mask, logits = self._prefill([r.embeds for r in rows], cache, prefix_mask[index], logits=True)
        for i, r in enumerate(rows):
            if r.gen.seed is not None:
                r._rng = torch.Generator().manual_seed(r.gen.seed)
            r._next = _sample(logits[i], r.gen, r._rng)
            r._length = r.prompt_tokens
        sync(index.device)
        spent = time.perf_counter() - t0
        for r in rows:
            r.joined_at, r.prefill_s = t0, spent / len(rows)
        self._merge(cache, mask)
        self.rows += rows

    def _prefill(self, pieces: list[torch.Tensor], cache: DynamicCache, before: torch.Tensor, *, logits=False):
        """Run each row's `pieces[i]` (L_i, D), left-padded, on top of what `cache` holds for it (`before`, its
        (B, T) mask). Returns the mask of everything now in the cache (B, T + L), and the last logits (B, V)."""
        lengths = [int(p.shape[0]) for p in pieces]
        B, L, D = len(pieces), max(lengths), pieces[0].shape[-1]
        embeds = pieces[0].new_zeros(B, L, D)  # (B, L, D), left-padded
        new = torch.zeros(B, L, dtype=torch.long, device=before.device)  # (B, L)
        for i, piece in enumerate(pieces):
            embeds[i, L - lengths[i]:] = piece
            new[i, L - lengths[i]:] = 1
        mask = torch.cat([before, new], dim=1)  # (B, T + L): pads may sit between a prefix and its question
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -L:]  # (B, L): each row counts only its own tokens
        out = self.lm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True,
                      **{CACHE_ARG: cache})
        if not logits:
            return mask
        return mask, self.head(out.last_hidden_state[:, -1])  # (B, V)

    def _merge(self, cache: DynamicCache, mask: torch.Tensor) -> None:
        """Stack a newcomers' cache under the running one, both left-padded to the longer length."""
        if self.cache is None:
            self.cache, self.mask = cache, mask
            return
        T = max(self.mask.shape[1], mask.shape[1])
        for old, new in zip(self.cache.layers, cache.layers):
            old.keys = torch.cat([_pad_left(old.keys, T, dim=2), _pad_left(new.keys, T, dim=2)])
            old.values = torch.cat([_pad_left(old.values, T, dim=2), _pad_left(new.values, T, dim=2)])
        self.mask = torch.cat([_pad_left(self.mask, T, dim=1), _pad_left(mask, T, dim=1)])

    # --- one step ---------------------------------------------------------------------------

    @torch.inference_mode()
    def step(self) -> list[Row]:
        """Take each row's pending token; rows that end leave; the others run one step. Returns the finished."""
        finished, going = [], []
        for r in self.rows:
            if r._next in self.stop_ids:
                r.stopped = True
                finished.append(r)
                continue
            r.tokens.append(r._next)
            (finished if len(r.tokens) >= r.gen.max_new_tokens else going).append(r)
        now = time.perf_counter()
        for r in finished:
            r.finished_at = now
        if finished:
            self._keep([i for i, r in enumerate(self.rows) if r in going])
        self.rows = going
        if not going:
            return finished
        device = self.mask.device
        ids = torch.tensor([[r._next] for r in going], dtype=torch.long, device=device)  # (B, 1)
        positions = torch.tensor([[r._length] for r in going], dtype=torch.long, device=device)  # (B, 1)
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(going), 1)], dim=1)  # (B, T + 1)
        out = self.lm(inputs_embeds=self.embed(ids), attention_mask=self.mask, position_ids=positions,
                      use_cache=True, **{CACHE_ARG: self.cache})
        logits = self.head(out.last_hidden_state[:, -1])  # (B, V)
        greedy = logits.argmax(-1).tolist()  # one transfer for the usual case
        for i, r in enumerate(going):
            r._length += 1
            r._next = greedy[i] if r.gen.temperature == 0 else _sample(logits[i], r.gen, r._rng)
        return finished

    def _keep(self, indices: list[int]) -> None:
        """Drop every row not in `indices` from the cache, and the columns that are padding for all that stay."""
        if not indices:
            self.cache, self.mask = None, None
            return
        index = torch.tensor(indices, device=self.mask.device)
        self.mask = self.mask[index]
        pad = int((self.mask.cumsum(-1) == 0).sum(-1).min())  # leading columns no row uses
        self.mask = self.mask[:, pad:]
        for layer in self.cache.layers:
            layer.keys = layer.keys[index, :, pad:]
            layer.values = layer.values[index, :, pad:]


def _pad_left(x: torch.Tensor, length: int, *, dim: int) -> torch.Tensor:
    """`x` with zeros before it along `dim` up to `length`."""
    missing = length - x.shape[dim]
    if missing == 0:
        return x
    shape = list(x.shape)
    shape[dim] = missing
    return torch.cat([x.new_zeros(shape), x], dim=dim)

