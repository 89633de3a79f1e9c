"""The TimePerceiver: a segment's frames (2 to `segment_size`) compressed into a small grid of tokens.

    pooled = spatio-temporal average of the segment's patch grids, to grid x grid   # (S, G*G, D)
    motion = each frame's patches minus the keyframe's                              # (S, F, P, D)
    ctx    = patches + motion_proj(motion) + temporal and spatial position          # keys and values
    moves  = motion_in(each frame's motion pooled to grid x grid, frames side by side)  # (S, G*G, D)
    h      = pooled + moves + latents + latent position                             # the queries
    h      = perceiver layers over h, attending to every patch of every real frame,
             frames past a segment's length masked out
    steps  = each frame's cells minus the previous frame's                          # (S, F-1, G*G, D)
    direct = motion_out(the keyframe's cell, then the steps, side by side)          # MLP, (S, G*G, D)
           + energy_out(the size of each step)                                      # MLP, (S, G*G, D)
    out    = pooled + direct + gate * proj(norm(h))     # gate and both last layers of the direct path 0 at init

Average pooling keeps where things are on average and loses where they went: on a 3x3 grid an
object that moves a third of a cell barely changes the average. The motion features make the
change itself a value the perceiver can read directly (a softmax-weighted sum of frames cannot
subtract one frame from another); static content cancels out of them. Pooled per frame and kept
in frame order, they also give every query a linear path from "what moved where, when" to the
output, before any attention has been learned.

The direct path hands each output cell its own history without any attention: what the cell held
at the keyframe, then each frame's step from the one before. An event shows in the slot of the frame
it happened in, so "when" is which slot holds a step and "how many times" is how many do. Whether a
slot holds a step is its size, a nonlinear function of the frames; the direct path is also handed the
sizes themselves (the root mean square of each step), from which both are a sum or a comparison away.
It gets gradient from the first step, while everything behind the zero gate waits for the gate to open.

With the gate and the direct path at zero an untrained TimePerceiver *is* average pooling, so a
model assembled from pretrained SigLIP + projector + LLM already answers sensibly; training only
improves it.
The output stays in the vision width so the one projector serves keyframes and segments.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clapper_core.model.configuration_clapper import ClapperConfig


def grid_pool(patches: torch.Tensor, grid: int) -> torch.Tensor:
    """Each frame's patch grid average-pooled to grid x grid: (S, F, g*g, D) -> (S, F, grid*grid, D)."""
    S, Fr, P, D = patches.shape
    g = int(P**0.5)
    assert g * g == P, f"{P} patches do not form a square grid"
    x = patches.reshape(S * Fr, g, g, D).permute(0, 3, 1, 2)  # (S*F, D, g, g)
    x = F.adaptive_avg_pool2d(x, grid)  # (S*F, D, grid, grid)
    return x.reshape(S, Fr, D, grid * grid).transpose(2, 3)  # (S, F, grid*grid, D)


def spatiotemporal_avg_pool(patches: torch.Tensor, frame_mask: torch.Tensor, grid: int) -> torch.Tensor:
    """Average the real frames of each segment, each frame's patch grid pooled to grid x grid.

    patches: (S, F, P, D) with P = g*g; frame_mask: (S, F) bool, True for real frames.
    Returns (S, grid*grid, D).
    """
    return frame_mean(grid_pool(patches, grid), frame_mask)


def frame_mean(cells: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
    """The mean over each segment's real frames: (S, F, G, D) with (S, F) bool -> (S, G, D)."""
    w = frame_mask.to(cells.dtype)[:, :, None, None]  # (S, F, 1, 1)
    return (cells * w).sum(1) / w.sum(1).clamp(min=1)  # (S, G, D)


def cell_history(cells: torch.Tensor, frame_mask: torch.Tensor, max_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """What the direct path reads of each cell: (S, F, G, D) cells per frame, (S, F) real frames ->

    history  (S, G, Fmax*D)  the keyframe's cell, then each later frame's step from the one before
    sizes    (S, G, Fmax-1)  the root mean square of each step: about 0 where nothing changed

    Steps into or past a segment's padding are zero, as are the slots of a segment shorter than Fmax.
    """
    Fr = cells.shape[1]
    steps = (cells[:, 1:] - cells[:, :-1]) * frame_mask[:, 1:, None, None]  # (S, F-1, G, D), padding zeroed
    if Fr < max_frames:
        steps = F.pad(steps, (0, 0, 0, 0, 0, max_frames - Fr))  # (S, Fmax-1, G, D)
    history = torch.cat([cells[:, :1], steps], 1).transpose(1, 2).flatten(2)  # (S, G, Fmax*D)
    sizes = steps.pow(2).mean(-1).add(1e-6).sqrt().transpose(1, 2)  # (S, G, Fmax-1)
    return history, sizes


class _Attention(nn.Module):
    """Multi-head attention (SDPA) of queries over keys/values, with an optional key mask."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.o_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        B, N, D = x.shape
        M = ctx.shape[1]
        H = self.heads
        q = self.q_proj(x).view(B, N, H, D // H).transpose(1, 2)  # (B, H, N, Dh)
        k = self.k_proj(ctx).view(B, M, H, D // H).transpose(1, 2)  # (B, H, M, Dh)
        v = self.v_proj(ctx).view(B, M, H, D // H).transpose(1, 2)  # (B, H, M, Dh)
        mask = None if key_mask is None else key_mask[:, None, None, :]  # (B, 1, 1, M)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, N, Dh)
        return self.o_proj(y.transpose(1, 2).reshape(B, N, D))


class TimePerceiverLayer(nn.Module):
    """Cross-attention to the segment's patches, then self-attention among latents, then an MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int, eps: float):
        super().__init__()
        self.cross_norm = nn.LayerNorm(dim, eps=eps)
        self.ctx_norm = nn.LayerNorm(dim, eps=eps)
        self.cross_attn = _Attention(dim, heads)
        self.self_norm = nn.LayerNorm(dim, eps=eps)
        self.self_attn = _Attention(dim, heads)
        self.mlp_norm = nn.LayerNorm(dim, eps=eps)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * mlp_ratio), nn.GELU(), nn.Linear(dim * mlp_ratio, dim))

    def forward(self, h: torch.Tensor, ctx: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        h = h + self.cross_attn(self.cross_norm(h), self.ctx_norm(ctx), key_mask)
        s = self.self_norm(h)
        h = h + self.self_attn(s, s)
        return h + self.mlp(self.mlp_norm(h))


class TimePerceiver(nn.Module):
    """Compress each segment's frames, (S, F, P, D) patch tokens, to (S, grid*grid, D)."""

    def __init__(self, config: ClapperConfig):
        super().__init__()
        D = config.vision_config.hidden_size
        eps = config.vision_config.layer_norm_eps
        self.grid = config.perceiver_grid
        self.max_frames = config.segment_size
        self.latents = nn.Parameter(torch.zeros(self.grid**2, D))
        self.temporal_pos = nn.Parameter(torch.zeros(self.max_frames, D))
        self.spatial_pos = nn.Parameter(torch.zeros(config.patch_grid**2, D))
        self.latent_pos = nn.Parameter(torch.zeros(self.grid**2, D))
        self.motion_proj = nn.Linear(D, D)  # identity at init (`_init_weights`)
        self.motion_in = nn.Linear(self.max_frames * D, D)  # unit gain at init (`_init_weights`)
        self.layers = nn.ModuleList(
            TimePerceiverLayer(D, config.perceiver_heads, config.perceiver_mlp_ratio, eps)
            for _ in range(config.perceiver_depth)
        )
        # The direct path: each cell's keyframe content and frame-to-frame steps, side by side, and the size
        # of each step, straight to the output; both last layers are zero at init.
        self.motion_out = nn.Sequential(nn.Linear(self.max_frames * D, 2 * D), nn.GELU(), nn.Linear(2 * D, D))
        self.energy_out = nn.Sequential(nn.Linear(self.max_frames - 1, 4 * D), nn.GELU(), nn.Linear(4 * D, D))
        for last in (self.motion_out[-1], self.energy_out[-1]):
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        self.out_norm = nn.LayerNorm(D, eps=eps)
        self.out_proj = nn.Linear(D, D)
        # The gated update: zero at init (and kept zero by `_init_weights`), so output = pooling.
        self.gate = nn.Parameter(torch.zeros(D))

    def forward(self, patches: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        S, Fr, P, D = patches.shape
        assert Fr <= self.max_frames, f"segment of {Fr} frames, at most {self.max_frames}"
        cells = grid_pool(patches, self.grid)  # (S, F, G, D): each frame pooled to the grid, once
        pooled = frame_mean(cells, frame_mask)  # (S, G, D)
        if not self.training and self.is_untrained():  # the update would be multiplied by zero
            return pooled
        motion = patches - patches[:, :1]  # (S, F, P, D), zero for the keyframe itself
        # Pooling is linear: the pooled motion is each frame's cells minus the keyframe's.
        moves = (cells - cells[:, :1]) * frame_mask[:, :, None, None]  # (S, F, G, D), padding zeroed
        if Fr < self.max_frames:  # a short segment tensor: the missing frames moved nothing
            moves = F.pad(moves, (0, 0, 0, 0, 0, self.max_frames - Fr))  # (S, Fmax, G, D)
        history, sizes = cell_history(cells, frame_mask, self.max_frames)  # (S, G, Fmax*D), (S, G, Fmax-1)
        direct = self.motion_out(history) + self.energy_out(sizes)  # (S, G, D)
        moves = self.motion_in(moves.transpose(1, 2).flatten(2))  # (S, G, Fmax*D) -> (S, G, D)
        # Built in place: one patch-sized tensor beside `patches` (and `motion` until it is freed).
        ctx = self.motion_proj(motion)  # (S, F, P, D)
        del motion
        ctx += patches
        ctx += self.temporal_pos[:Fr, None, :]
        ctx += self.spatial_pos
        ctx = ctx.reshape(S, Fr * P, D)  # (S, F*P, D)
        key_mask = frame_mask[:, :, None].expand(S, Fr, P).reshape(S, Fr * P)  # (S, F*P)
        h = pooled + moves + self.latents + self.latent_pos  # (S, G, D)
        for layer in self.layers:
            h = layer(h, ctx, key_mask)
        return pooled + direct + self.gate * self.out_proj(self.out_norm(h))

    def is_untrained(self) -> bool:
        """True while the gate and the direct path are all zero: the perceiver still equals average pooling."""
        params = (self.gate, *self.motion_out[-1].parameters(), *self.energy_out[-1].parameters())
        return not any(bool(torch.any(p.detach().float() != 0)) for p in params)
