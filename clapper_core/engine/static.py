"""One answer at a time, faster: a static KV cache and a compiled decoding step (CUDA graphs).

With a growing cache every decoding step launches a few hundred small kernels, and at batch one a
GPU spends most of the step launching them. A cache of fixed size at fixed addresses lets
`torch.compile(mode="reduce-overhead")` capture the whole step once as a CUDA graph and replay it.

    decoder = StaticDecoder.for_model(model, length=prompt + max_new_tokens, compiled=True)
    position = decoder.load(dynamic_cache)        # the prompt's keys and values, computed as usual
    logits = decoder.step(token, position)        # (V,), then position + 1, ...

The prompt is still run eagerly on the session's `DynamicCache` (its prefix is reused across
questions, which a static cache cannot crop); its keys and values are copied into the static cache,
then every answer token runs through the compiled step. The step is `transformers`' own model forward
on its `StaticCache`; only the loop around it is ours, so that a session keeps its prefix cache.

Used on CUDA by a process that stays warm (`clapper serve`), or with `CLAPPER_COMPILE=1` (hardware.decoding_mode):
compiling costs tens of seconds once. The CPU and `CLAPPER_EAGER=1` keep the eager path, which tests compare
token for token with this one (static and compiled, on the CPU).
"""

from __future__ import annotations

import torch
from transformers import DynamicCache, StaticCache

from clapper_core.model.modeling_clapper import CACHE_ARG

BUCKET = 1024  # cache lengths are rounded up to this, so that a longer prompt rarely means a new graph


class StaticDecoder:
    def __init__(self, model, *, length: int, compiled: bool) -> None:
        self.lm = model.model.language_model
        self.head = model.lm_head
        self.embed = model.get_input_embeddings()
        self.length = length
        self.cache = StaticCache(config=model.config.text_config, max_cache_len=length)
        device = self.embed.weight.device
        self._ids = torch.zeros(1, 1, dtype=torch.long, device=device)  # (1, 1): fixed input buffers
        self._position = torch.zeros(1, 1, dtype=torch.long, device=device)  # (1, 1)
        self.compiled = compiled
        self._step = torch.compile(self._forward, mode="reduce-overhead", dynamic=False) if compiled else self._forward

    @staticmethod
    def for_model(model, *, length: int, compiled: bool) -> "StaticDecoder":
        """The model's decoder for caches of at least `length`: one per model, rebuilt only to grow."""
        decoder = getattr(model, "_clapper_static_decoder", None)
        if decoder is None or decoder.length < length or decoder.compiled != compiled:
            decoder = StaticDecoder(model, length=-(-length // BUCKET) * BUCKET, compiled=compiled)
            model._clapper_static_decoder = decoder
        return decoder

    def _forward(self, ids: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        out = self.lm(inputs_embeds=self.embed(ids), position_ids=position, use_cache=True,
                      **{CACHE_ARG: self.cache})
        return self.head(out.last_hidden_state[:, -1])  # (1, V)

    @torch.inference_mode()
    def load(self, prompt: DynamicCache) -> int:
        """Copy a prefilled cache in (the prompt's keys and values); returns the position of the next token."""
        n = prompt.get_seq_length()
        assert n < self.length, f"a prompt of {n} tokens does not fit a static cache of {self.length}"
        for static, dynamic in zip(self.cache.layers, prompt.layers):
            if not static.is_initialized:
                static.lazy_initialization(dynamic.keys, dynamic.values)
            static.keys[:, :, :n].copy_(dynamic.keys)  # (1, H, n, d); what lies beyond is masked out
            static.values[:, :, :n].copy_(dynamic.values)
            static.cumulative_length.fill_(n)
        return n

    @torch.inference_mode()
    def step(self, token: int, position: int) -> torch.Tensor:
        """Run one token at `position`; the next token's logits (V,)."""
        if position >= self.length:
            raise IndexError(f"position {position} is past the static cache ({self.length} tokens)")
        self._ids.fill_(token)
        self._position.fill_(position)
        return self._step(self._ids, self._position)[0].clone()  # a graph's output is overwritten by the next replay
