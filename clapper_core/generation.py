"""Streaming generation over an encoded video.

    session = VideoSession(loaded, clip)        # vision + TimePerceiver + projector, once
    for piece in session.stream("what happens?", GenerationConfig()):
        print(piece, end="")

The prompt is [system, user header, video] + [question, assistant header]. The first part is the
same for every question about a video, so its KV cache is computed once and cut back to it after
each answer: a second question costs only its own tokens plus the answer.

A conversation passes its earlier turns as `history`, (question, answer) pairs written into the
prompt by the model's chat template; the cache keeps the tokens after the video of the last call
and reuses what the next call shares with them, so a follow-up runs only its new turn.

    answer = session.ask("what happens?")
    session.ask("and then?", history=[("what happens?", answer)])
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from clapper_core import defaults
from clapper_core.errors import ConfigError

_log = logging.getLogger("clapper")


@dataclass(frozen=True)
class GenerationConfig:
    """Sampling knobs. temperature 0 = greedy (the default); top_p applies when sampling."""

    max_new_tokens: int = defaults.MAX_NEW_TOKENS
    temperature: float = defaults.TEMPERATURE
    top_p: float = defaults.TOP_P
    seed: int | None = defaults.SEED

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens={self.max_new_tokens} must be at least 1")
        if self.temperature < 0:
            raise ConfigError(f"temperature={self.temperature} must be 0 (greedy) or positive")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p={self.top_p} must be in (0, 1]")


@dataclass(frozen=True)
class GenerationStats:
    prompt_tokens: int  # tokens run through the LLM for this question (the prefix too when not cached)
    prefill_s: float  # time to the first token's logits
    generate_s: float  # time spent decoding the answer after that
    new_tokens: int
    context_tokens: int = 0  # the whole prompt: prefix with its visual tokens, earlier turns, the question
    stopped: bool = True  # ended on an end-of-turn token (False: cut at max_new_tokens or by the caller)

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.generate_s if self.generate_s > 0 else 0.0


def _sample(logits, gen: GenerationConfig, rng):
    """Next token id from (V,) logits: argmax when greedy, else temperature + nucleus sampling."""
    import torch

    if gen.temperature == 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / gen.temperature, dim=-1)
    if gen.top_p < 1:
        sorted_p, idx = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_p, dim=-1) - sorted_p < gen.top_p  # always keeps the top token
        probs = torch.zeros_like(probs).scatter_(0, idx[keep], sorted_p[keep])
    return int(torch.multinomial(probs.cpu(), 1, generator=rng))


class VideoSession:
    """One video, encoded once, and any number of questions about it."""

    def __init__(self, loaded, clip=None, *, frames=None, timestamps=None, segments=None, system: str | None = None,
                 decoding: str | None = None):
        import torch

        from clapper_core.hardware import decoding_mode

        from clapper_core.model.tokenizer import IM_START

        self.loaded = loaded
        self.model = loaded.model
        self.processor = loaded.processor
        self.device = self.model.get_input_embeddings().weight.device
        # "eager": each answer token runs on the growing cache; "static": on a static cache, "compiled": that
        # step compiled (engine/static.py). The prompt always runs eagerly on the growing cache.
        self.decoding = decoding or decoding_mode(self.device)
        video = self.processor.prepare_video(clip, frames=frames, timestamps=timestamps, segments=segments,
                                             system=system)
        t0 = time.perf_counter()
        with torch.inference_mode():
            pixels = video.pixel_values.to(self.device)
            self.video_features = self.model.get_video_features(pixels, video.segment_sizes)  # (N, D)
        sync(self.device)
        self.encode_s = time.perf_counter() - t0
        # the pixels are not needed once encoded: dropping them keeps a session (and a cache of them) small
        self.video = replace(video, pixel_values=video.pixel_values.new_empty((0, *video.pixel_values.shape[1:])))
        self.num_visual_tokens = int(self.video_features.shape[0])
        assert self.num_visual_tokens == video.num_visual_tokens, "processor and model disagree on the token count"
        self._cache = None
        self._prefix_len = len(video.prefix_ids)
        self._tail: list[int] = []  # the tokens in the cache after the prefix
        self._turn_start = self.processor.tokenizer.convert_tokens_to_ids(IM_START)
        self.last_stats: GenerationStats | None = None
        self.stop_ids = stop_ids(self.model, self.processor.tokenizer)

    def _forward(self, ids: list[int], *, with_video: bool):
        """Run `ids` through the LLM on top of the cache; returns the last position's logits (V,)."""
        import torch
        from transformers import DynamicCache

        from clapper_core.model.modeling_clapper import CACHE_ARG

        m = self.model.model
        input_ids = torch.tensor([ids], dtype=torch.long, device=self.device)
        embeds = m.get_input_embeddings()(input_ids)  # (1, L, D)
        if with_video:
            embeds = m.merge_video(input_ids, embeds, self.video_features)
        if self._cache is None:
            self._cache = DynamicCache(config=self.model.config.text_config)
        out = m.language_model(inputs_embeds=embeds, use_cache=True, **{CACHE_ARG: self._cache})
        if not with_video:
            self._tail += ids
        return self.model.lm_head(out.last_hidden_state[0, -1])  # (V,)

    def _from_prefix(self) -> int:
        """Put the cache at the end of the video's prefix: run the prefix the first time, crop back to it after.
        Returns how many tokens were run."""
        if self._cache is None:
            self._forward(list(self.video.prefix_ids), with_video=True)
            return self._prefix_len
        self._rewind_to(self._prefix_len)
        return 0

    def _rewind_to(self, length: int) -> None:
        extra = self._cache.get_seq_length() - length
        if extra > 0:
            self._cache.crop(-extra)
        del self._tail[max(0, length - self._prefix_len):]

    def _extend(self, ids: list[int]) -> tuple[object, int]:
        """Put the cache at prefix + `ids` and return the last position's logits (V,) and how many tokens ran.

        What the cache already holds of the earlier turns in `ids` (the same conversation, one turn on) is kept,
        not run again. The last user turn always runs whole: the same question in the same context then gives
        the same logits bit for bit, whatever was asked in between (one chunk and several differ in rounding)."""
        ran = self._from_prefix() if self._cache is None else 0
        starts = [i for i, t in enumerate(ids) if t == self._turn_start]
        limit = starts[-2] if len(starts) >= 2 else 0  # where the last user turn begins
        keep = 0
        for cached, new in zip(self._tail, ids[:limit]):
            if cached != new:
                break
            keep += 1
        self._rewind_to(self._prefix_len + keep)
        return self._forward(ids[keep:], with_video=False), ran + len(ids) - keep

    def _decoder(self, max_new_tokens: int):
        """The function that runs one answer token and returns the next logits (V,), for `self.decoding`."""
        if self.decoding == "eager":
            return lambda token: self._forward([token], with_video=False)
        from clapper_core.engine.static import StaticDecoder

        length = self._cache.get_seq_length() + max_new_tokens
        decoder = StaticDecoder.for_model(self.model, length=length, compiled=self.decoding == "compiled")
        position = [decoder.load(self._cache)]
        start = position[0]

        def step(token: int):
            nonlocal decoder
            try:
                logits = decoder.step(token, position[0])
            except Exception as exc:  # noqa: BLE001  compiling failed on this device: the same cache, uncompiled
                if not decoder.compiled or position[0] != start:  # only the first step compiles
                    raise
                _log.warning("compiled decoding failed (%s: %s); decoding without it. CLAPPER_EAGER=1 skips it.",
                             type(exc).__name__, (str(exc).splitlines() or [""])[0])
                self.decoding = "static"
                decoder = StaticDecoder.for_model(self.model, length=length, compiled=False)
                decoder.load(self._cache)
                logits = decoder.step(token, position[0])
            position[0] += 1
            return logits

        return step

    def nbytes(self) -> int:
        """Memory this session holds on its device: the visual features and the KV cache."""
        total = self.video_features.numel() * self.video_features.element_size()
        for layer in getattr(self._cache, "layers", ()) or ():
            for t in (getattr(layer, "keys", None), getattr(layer, "values", None)):
                if t is not None and hasattr(t, "numel"):
                    total += t.numel() * t.element_size()
        return total

    def stream(self, question: str, gen: GenerationConfig | None = None, *,
               history: Sequence[tuple[str, str]] = ()) -> Iterator[str]:
        """Yield the answer to `question` in pieces as it is generated; `history` holds the conversation's earlier
        (question, answer) turns, the first of which was asked with the video."""
        import torch

        gen = gen or GenerationConfig()
        rng = torch.Generator().manual_seed(gen.seed) if gen.seed is not None else None
        if gen.seed is not None:
            torch.manual_seed(gen.seed)
        tok = self.processor.tokenizer
        with torch.inference_mode():
            t0 = time.perf_counter()
            q_ids = self.processor.question_ids(question, history)
            logits, prompt_tokens = self._extend(q_ids)
            step = self._decoder(gen.max_new_tokens)
            sync(self.device)
            t1 = time.perf_counter()
            new, text, stopped = [], "", False
            try:
                for _ in range(gen.max_new_tokens):
                    nxt = _sample(logits, gen, rng)
                    if nxt in self.stop_ids:
                        stopped = True
                        break
                    new.append(nxt)
                    full = tok.decode(new, skip_special_tokens=True)
                    if not full.endswith("\ufffd") and len(full) > len(text):  # wait for whole characters
                        yield full[len(text) :]
                        text = full
                    if len(new) < gen.max_new_tokens:
                        logits = step(nxt)
                full = tok.decode(new, skip_special_tokens=True)
                if len(full) > len(text):
                    yield full[len(text) :]
            finally:
                sync(self.device)
                self.last_stats = GenerationStats(
                    prompt_tokens=prompt_tokens,
                    prefill_s=t1 - t0,
                    generate_s=time.perf_counter() - t1,
                    new_tokens=len(new),
                    context_tokens=self._prefix_len + len(q_ids),
                    stopped=stopped,
                )

    def ask(self, question: str, gen: GenerationConfig | None = None, *,
            history: Sequence[tuple[str, str]] = ()) -> str:
        """The whole answer at once: the streamed pieces joined."""
        return "".join(self.stream(question, gen, history=history))

    def option_logprobs(self, question: str, options: list[str]) -> list[float]:
        """The log-probability of each option as the whole answer to `question`: its tokens, then the end of the
        turn, as training writes an answer. For a question with a few possible answers, the model's choice
        without generating: the likeliest option, even where a free answer would mix two of them."""
        import torch

        from clapper_core.model.tokenizer import IM_END

        tok = self.processor.tokenizer
        end = tok.encode(IM_END, add_special_tokens=False)
        q_ids = self.processor.question_ids(question)
        out = []
        with torch.inference_mode():
            first, _ = self._extend(q_ids)  # (V,): the first answer token's, the same for all
            asked = self._cache.get_seq_length()
            for option in options:
                self._rewind_to(asked)  # each option goes on from the question
                ids = tok.encode(option, add_special_tokens=False) + end
                total, logits = 0.0, first
                for i, t in enumerate(ids):
                    total += float(torch.log_softmax(logits.float(), -1)[t])
                    if i + 1 < len(ids):  # the last token's own logits are not needed
                        logits = self._forward([t], with_video=False)
                out.append(total)
        return out


def stop_ids(model, tok) -> set[int]:
    """The token ids that end an answer: the model's end-of-sequence ids and the chat template's end of turn."""
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, (list, tuple)) else [ids] if ids is not None else [])
    for t in ("<|im_end|>", "<|endoftext|>", tok.eos_token):
        i = tok.convert_tokens_to_ids(t) if t else None
        if i is not None and i != tok.unk_token_id:
            ids.add(int(i))
    return ids


def sync(device) -> None:
    """Wait for `device`'s queued work (CUDA runs asynchronously), so that a timing covers it."""
    import torch

    from clapper_core.hardware import on_cuda

    if on_cuda(device):
        torch.cuda.synchronize()
