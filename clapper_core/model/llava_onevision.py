"""LLaVA-OneVision-Qwen2 checkpoints (transformers format) loaded as Clapper.

LLaVA-OneVision is SigLIP-so400m + a 2-layer GELU projector + Qwen2, the same three parts Clapper
has under the same module names. Only the TimePerceiver is new: it is initialised at its pooling
start (gate = 0), so the converted model answers like LLaVA-OneVision on keyframes plus pooled
segments until trained. `image_newline` (LLaVA-OneVision's image separator) has no use here.
"""

from __future__ import annotations

from clapper_core.errors import ModelFormatError
from clapper_core.model.configuration_clapper import ClapperConfig

MODEL_TYPE = "llava_onevision"

# Checkpoints written before transformers v5 keep the parts at the top level; v5 ones under `model.`.
LEGACY_KEY_MAPPING = {
    r"^language_model\.lm_head": "lm_head",
    r"^language_model\.model": "model.language_model",
    r"^vision_tower": "model.vision_tower",
    r"^multi_modal_projector": "model.multi_modal_projector",
}


def clapper_config_from_llava_onevision(data: dict, **overrides) -> ClapperConfig:
    """A ClapperConfig with LLaVA-OneVision's vision tower, projector and LLM (from its config.json)."""
    if data.get("model_type") != MODEL_TYPE:
        raise ModelFormatError(f"expected a {MODEL_TYPE} config, got model_type {data.get('model_type')!r}")
    layer = data.get("vision_feature_layer", -1)
    strategy = data.get("vision_feature_select_strategy", "full")
    if not isinstance(layer, int) or strategy != "full":
        raise ModelFormatError(
            f"this LLaVA-OneVision variant (vision_feature_layer={layer}, select strategy {strategy!r}) "
            "is not supported; Clapper needs one vision layer and the full patch grid"
        )
    vision = dict(data.get("vision_config") or {})
    text = dict(data.get("text_config") or {})
    vision.pop("model_type", None)
    vision["vision_use_head"] = False  # the pooling head is not used (nor shipped by LLaVA-OneVision)
    if text.get("model_type", "qwen2") != "qwen2":
        raise ModelFormatError(f"the LLM of this checkpoint is {text.get('model_type')!r}; Clapper needs Qwen2")
    text.pop("model_type", None)
    video_token_id = data.get("video_token_index", data.get("video_token_id", 151647))
    return ClapperConfig(
        vision_config=vision,
        text_config=text,
        video_token_id=video_token_id,
        vision_feature_layer=layer,
        projector_hidden_act=data.get("projector_hidden_act", "gelu"),
        multimodal_projector_bias=data.get("multimodal_projector_bias", True),
        tie_word_embeddings=data.get("tie_word_embeddings", False),
        **overrides,
    )
