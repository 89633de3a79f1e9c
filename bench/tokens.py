"""Visual tokens and LLM prefill cost: Clapper (245 tokens per 4-frame segment) against the
LLaVA-OneVision video layout (196 tokens per frame) on the same backbone.

    python bench/tokens.py                 # token / FLOP table, then one timed CPU forward each way
    python bench/tokens.py --frames 16     # frames for the timed forward (default 8)
    python bench/tokens.py --no-forward    # the table only

FLOPs of a prefill of L tokens through a decoder with N non-embedding parameters and n layers of
width d: 2·N·L (matmuls) + 2·n·L²·d (causal attention scores and values), plus the LM head on the
last position only. The timed forward runs Qwen2-0.5B at its real shape with random weights.
"""

from __future__ import annotations

import argparse
import time

from clapper_core.model.configuration_clapper import visual_token_count
from clapper_core.model.tiny import QWEN2, real_shape_config

FRAMES = (8, 32, 96, 384)
TEXT_TOKENS = 40  # system turn, question and assistant header around the video


def nonembedding_params(llm: dict) -> int:
    d, f, n = llm["hidden_size"], llm["intermediate_size"], llm["num_hidden_layers"]
    kv = d // llm["num_attention_heads"] * llm["num_key_value_heads"]
    attn = d * d * 2 + d * kv * 2 + d + 2 * kv  # q, o, k, v (+ q/k/v biases)
    mlp = 3 * d * f
    return n * (attn + mlp + 2 * d)


def prefill_flops(llm: dict, tokens: int) -> float:
    L, d, n = tokens, llm["hidden_size"], llm["num_hidden_layers"]
    return 2 * nonembedding_params(llm) * L + 2 * n * L * L * d + 2 * d * llm["vocab_size"]


def table() -> None:
    clapper = real_shape_config("0.5b")
    print(f"{'frames':>6} {'Clapper tok':>11} {'LLaVA-OV tok':>12} {'ratio':>6} "
          f"{'0.5B TFLOP C/L':>16} {'7B TFLOP C/L':>16} {'7B ratio':>8}")  # fmt: skip
    for n in FRAMES:
        c = visual_token_count(clapper, n) + TEXT_TOKENS
        l = 196 * n + TEXT_TOKENS
        small = prefill_flops(QWEN2["0.5b"], c) / 1e12, prefill_flops(QWEN2["0.5b"], l) / 1e12
        big = prefill_flops(QWEN2["7b"], c) / 1e12, prefill_flops(QWEN2["7b"], l) / 1e12
        print(f"{n:>6} {c - TEXT_TOKENS:>11,} {l - TEXT_TOKENS:>12,} {(l - TEXT_TOKENS) / (c - TEXT_TOKENS):>5.2f}x "
              f"{small[0]:>7.2f}/{small[1]:>8.2f} {big[0]:>7.1f}/{big[1]:>8.1f} {big[1] / big[0]:>7.2f}x")  # fmt: skip
    print(f"(token counts are visual only; FLOPs include {TEXT_TOKENS} text tokens)")


def timed_forward(frames: int) -> None:
    import torch

    from clapper_core.model.tiny import random_model

    model = random_model(real_shape_config("0.5b"))
    llm = model.model.language_model
    torch.set_grad_enabled(False)
    rows = []
    for name, n_tok in (("Clapper", visual_token_count(model.config, frames)), ("LLaVA-OV", 196 * frames)):
        L = n_tok + TEXT_TOKENS
        x = torch.randn(1, L, model.config.text_config.hidden_size) * 0.02
        llm(inputs_embeds=x[:, :16])  # warm-up
        t = time.perf_counter()
        h = llm(inputs_embeds=x).last_hidden_state
        model.lm_head(h[:, -1])
        rows.append((name, L, time.perf_counter() - t))
    print(f"\nOne prefill forward, Qwen2-0.5B shape, random weights, CPU ({torch.get_num_threads()} threads), "
          f"{frames} frames")
    for name, L, s in rows:
        print(f"  {name:<9} {L:>6,} tokens  {s:>7.2f} s")
    print(f"  LLaVA-OV / Clapper time: {rows[1][2] / rows[0][2]:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=8, help="frames for the timed forward (default 8)")
    ap.add_argument("--no-forward", action="store_true", help="print the table only")
    args = ap.parse_args()
    table()
    if not args.no_forward:
        timed_forward(args.frames)


if __name__ == "__main__":
    main()
