"""ClapperForConditionalGeneration: SigLIP -> (keyframe pooling | TimePerceiver) -> MLP projector -> Qwen2.

The layout of the weights follows LLaVA-OneVision (`model.vision_tower`, `model.multi_modal_projector`,
`model.language_model`, `lm_head`), so its checkpoints load as Clapper with only `model.time_perceiver`
new, and that starts as average pooling.

    frames (T, 3, H, W) --SigLIP--> patches (T, P, Dv) --(x - mean) / std, when configured-->
      keyframe of each segment: projector, then bilinear pooling to ceil(g / stride)^2 tokens
      whole segment (>= 2 frames): TimePerceiver (or average pooling) to grid^2 tokens, then projector
    per segment: [keyframe tokens][temporal tokens] -> scattered into the prompt's video placeholders
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, AutoModelForImageTextToText, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.models.qwen2 import Qwen2Model

from clapper_core.errors import VisualTokenMismatchError
from clapper_core.model.configuration_clapper import ClapperConfig, visual_token_count
from clapper_core.model.time_perceiver import TimePerceiver, spatiotemporal_avg_pool


# The key/value cache's name in forward arguments and model outputs: transformers 5.24 renamed it from
# `past_key_values` to `cache`. Clapper's forwards take either and pass it on under the installed name.
CACHE_ARG = "cache" if "cache" in inspect.signature(Qwen2Model.forward).parameters else "past_key_values"


@dataclass
class ClapperCausalLMOutputWithPast(CausalLMOutputWithPast):
    """A causal LM output (loss, logits, the cache under `CACHE_ARG`, ...) and the video's visual tokens."""

    video_hidden_states: torch.FloatTensor | None = None


class ClapperPreTrainedModel(PreTrainedModel):
    config: ClapperConfig
    config_class = ClapperConfig
    base_model_prefix = "model"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["Qwen2DecoderLayer", "SiglipEncoderLayer", "TimePerceiverLayer"]
    _skip_keys_device_placement = [CACHE_ARG]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_attention_backend = True

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, TimePerceiver):
            std = 0.02
            for p in (module.latents, module.temporal_pos, module.spatial_pos, module.latent_pos):
                init.normal_(p, mean=0.0, std=std)
            # The motion features start at full weight beside the patches they come from.
            init.eye_(module.motion_proj.weight)
            init.zeros_(module.motion_proj.bias)
            init.normal_(module.motion_in.weight, mean=0.0, std=module.motion_in.in_features**-0.5)
            init.zeros_(module.motion_in.bias)
            # Zero gate and direct path: an untrained perceiver must stay exactly average pooling, also
            # when from_pretrained initialises it as a missing module of a LLaVA-OneVision checkpoint.
            init.zeros_(module.gate)
            for last in (module.motion_out[-1], module.energy_out[-1]):
                init.zeros_(last.weight)
                init.zeros_(last.bias)


class ClapperMultiModalProjector(nn.Module):
    """Two linear layers with GELU between them: vision width -> LLM width (LLaVA-OneVision's names)."""

    def __init__(self, config: ClapperConfig):
        super().__init__()
        Dv, Dt = config.vision_config.hidden_size, config.text_config.hidden_size
        self.linear_1 = nn.Linear(Dv, Dt, bias=config.multimodal_projector_bias)
        self.act = ACT2FN[config.projector_hidden_act]
        self.linear_2 = nn.Linear(Dt, Dt, bias=config.multimodal_projector_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(x)))


class ClapperModel(ClapperPreTrainedModel):
    # Frames sent through SigLIP at once: bounds activation memory on long videos.
    vision_batch_size = 32

    def __init__(self, config: ClapperConfig):
        super().__init__(config)
        self.vision_tower = AutoModel.from_config(config.vision_config)
        self.multi_modal_projector = ClapperMultiModalProjector(config)
        self.time_perceiver = TimePerceiver(config) if config.fast_path == "perceiver" else None
        self.language_model = AutoModel.from_config(config.text_config)
        self.post_init()

    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.language_model.set_input_embeddings(value)

    # --- vision ----------------------------------------------------------------------

    def get_frame_patches(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """SigLIP patch tokens of every frame at `vision_feature_layer`: (T, 3, H, W) -> (T, P, Dv).

        Runs the encoder layers directly, stopping at the selected one, instead of keeping every
        hidden state: that would hold 27 copies of the activations of a long video.
        """
        vm = self.vision_tower
        vm = getattr(vm, "vision_model", vm)  # SiglipVisionModel wraps the transformer in v4 layouts
        layers = vm.encoder.layers
        layer = self.config.vision_feature_layer
        n = layer if layer >= 0 else len(layers) + 1 + layer
        dtype = vm.embeddings.patch_embedding.weight.dtype
        out = []
        for chunk in pixel_values.split(self.vision_batch_size):
            h = vm.embeddings(chunk.to(dtype))  # (t, P, Dv)
            for blk in layers[:n]:
                h = blk(h, None)
                h = h[0] if isinstance(h, tuple) else h
            out.append(h)
        return torch.cat(out)  # (T, P, Dv)

    def pool_keyframes(self, feats: torch.Tensor) -> torch.Tensor:
        """Bilinear pooling of projected keyframe grids, as LLaVA-OneVision's `apply_pooling`.

        (K, g*g, Dt) -> (K, k*k, Dt) with k = ceil(g / stride).
        """
        K, P, Dt = feats.shape
        g = self.config.patch_grid
        assert g * g == P, f"{P} patches, expected {g}x{g}"
        k = self.config.keyframe_grid
        x = feats.view(K, g, g, Dt).permute(0, 3, 1, 2)  # (K, Dt, g, g)
        x = F.interpolate(x, size=[k, k], mode="bilinear")  # (K, Dt, k, k)
        return x.permute(0, 2, 3, 1).reshape(K, k * k, Dt)

    def encode_segments(self, patches: torch.Tensor, segment_sizes: list[int]) -> torch.Tensor:
        """Patch tokens of consecutive segments -> visual tokens in prompt order: (T, P, Dv) -> (N, Dt)."""
        cfg = self.config
        assert sum(segment_sizes) == patches.shape[0], f"segments {segment_sizes} vs {patches.shape[0]} frames"
        starts = [0]
        for n in segment_sizes[:-1]:
            starts.append(starts[-1] + n)
        proj = self.multi_modal_projector
        keys = self.pool_keyframes(proj(patches[starts]))  # (S, k*k, Dt)

        fast_ids = [i for i, n in enumerate(segment_sizes) if n >= 2]
        fast = None
        if cfg.fast_path != "none" and fast_ids:
            fast = proj(self.get_segment_features(patches, starts, segment_sizes, fast_ids))  # (S', G, Dt)

        pieces, j = [], 0
        for i, n in enumerate(segment_sizes):
            pieces.append(keys[i])
            if fast is not None and n >= 2:
                pieces.append(fast[j])
                j += 1
        return torch.cat(pieces)  # (N, Dt)

    def get_segment_features(self, patches, starts, sizes, seg_ids) -> torch.Tensor:
        """The fast path, in the vision width: (S', grid*grid, Dv) for the segments `seg_ids`."""
        T, P, Dv = patches.shape
        Fmax = self.config.segment_size
        x = patches.new_zeros(len(seg_ids), Fmax, P, Dv)  # (S', F, P, Dv), padding masked below
        mask = torch.zeros(len(seg_ids), Fmax, dtype=torch.bool, device=patches.device)  # (S', F)
        for row, i in enumerate(seg_ids):
            n = sizes[i]
            assert n <= Fmax, f"segment {i} has {n} frames, segment_size is {Fmax}"
            x[row, :n] = patches[starts[i] : starts[i] + n]
            mask[row, :n] = True
        if self.time_perceiver is not None:
            return self.time_perceiver(x, mask)
        return spatiotemporal_avg_pool(x, mask, self.config.perceiver_grid)

    def get_video_features(self, pixel_values_videos: torch.Tensor, segment_sizes) -> torch.Tensor:
        """Frames (T, 3, H, W) cut into consecutive segments -> visual tokens (N, Dt) in prompt order.

        Several videos of a batch are passed as their frames concatenated, with their segments listed
        in the same order; the tokens come out in the order of the placeholders.
        """
        if pixel_values_videos.ndim == 5:  # (B, T, 3, H, W) -> (B*T, 3, H, W)
            pixel_values_videos = pixel_values_videos.flatten(0, 1)
        sizes = [int(n) for n in segment_sizes]
        patches = self.standardize_patches(self.get_frame_patches(pixel_values_videos))  # (T, P, Dv)
        return self.encode_segments(patches, sizes)

    def standardize_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """(x - mean) / std per channel, with the config's fixed statistics; (T, P, Dv) -> same."""
        cfg = self.config
        if cfg.vision_feature_mean is None:
            return patches
        mean = patches.new_tensor(cfg.vision_feature_mean)  # (Dv,)
        std = patches.new_tensor(cfg.vision_feature_std)  # (Dv,)
        return (patches - mean) / std

    def get_placeholder_mask(self, input_ids, inputs_embeds, video_features) -> torch.Tensor:
        """Where the video tokens go: (B, L, 1) bool; raises when placeholders and features differ."""
        if input_ids is None:
            ref = self.get_input_embeddings()(
                torch.tensor(self.config.video_token_id, dtype=torch.long, device=inputs_embeds.device)
            )
            mask = (inputs_embeds == ref).all(-1)
        else:
            mask = input_ids == self.config.video_token_id
        n_tokens, n_feats = int(mask.sum()), video_features.shape[0]
        if n_tokens != n_feats:
            raise VisualTokenMismatchError(
                f"the prompt has {n_tokens} video placeholder tokens but the video gives {n_feats} visual "
                "tokens; build the prompt with ClapperProcessor so both come from the same segments"
            )
        return mask.unsqueeze(-1).to(inputs_embeds.device)

    def merge_video(self, input_ids, inputs_embeds, video_features) -> torch.Tensor:
        feats = video_features.to(inputs_embeds.device, inputs_embeds.dtype)
        mask = self.get_placeholder_mask(input_ids, inputs_embeds, feats)
        return inputs_embeds.masked_scatter(mask, feats)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        segment_sizes: list[int] | torch.Tensor | None = None,
        video_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        past_key_values: Cache | None = None,  # the cache's name before transformers 5.24
        **kwargs,
    ) -> BaseModelOutputWithPast:
        if (input_ids is None) ^ (inputs_embeds is not None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
        if video_features is None and pixel_values_videos is not None:
            if segment_sizes is None:
                raise ValueError("pixel_values_videos needs segment_sizes (frames per segment)")
            video_features = self.get_video_features(pixel_values_videos, segment_sizes)
        if video_features is not None:
            inputs_embeds = self.merge_video(input_ids, inputs_embeds, video_features)
        out = self.language_model(
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **{CACHE_ARG: cache if cache is not None else past_key_values},
            **kwargs,
        )
        out.video_hidden_states = video_features
        return out


class ClapperForConditionalGeneration(ClapperPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "model.language_model.embed_tokens.weight"}

    def __init__(self, config: ClapperConfig):
        super().__init__(config)
        self.model = ClapperModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def get_video_features(self, pixel_values_videos: torch.Tensor, segment_sizes) -> torch.Tensor:
        return self.model.get_video_features(pixel_values_videos, segment_sizes)

    def visual_token_count(self, segment_sizes) -> int:
        return visual_token_count(self.config, segment_sizes)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        segment_sizes: list[int] | torch.Tensor | None = None,
        video_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        past_key_values: Cache | None = None,  # the cache's name before transformers 5.24
        **kwargs,
    ) -> ClapperCausalLMOutputWithPast:
        out = self.model(
            input_ids=input_ids,
            pixel_values_videos=pixel_values_videos,
            segment_sizes=segment_sizes,
            video_features=video_features,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            past_key_values=past_key_values,
            **kwargs,
        )
        h = out.last_hidden_state
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(h[:, keep, :])
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.text_config.vocab_size)
        return ClapperCausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            **{CACHE_ARG: getattr(out, CACHE_ARG)},
            hidden_states=out.hidden_states,
            attentions=out.attentions,
            video_hidden_states=out.video_hidden_states,
        )


def _register() -> None:
    """Let the auto classes build Clapper from a config of model_type "clapper"."""
    for auto, cls in ((AutoModel, ClapperModel), (AutoModelForImageTextToText, ClapperForConditionalGeneration)):
        try:
            auto.register(ClapperConfig, cls)
        except ValueError:  # already registered
            pass


_register()

__all__ = ["ClapperForConditionalGeneration", "ClapperModel", "ClapperPreTrainedModel"]
