"""A LLaVA-OneVision checkpoint loads as Clapper: same keyframe tokens, same text logits."""

from __future__ import annotations

import pytest
import torch

from clapper_core.model.loading import LoadConfig, load_model


@pytest.fixture(scope="module")
def pair(tiny_llava_onevision_dir):
    from transformers import LlavaOnevisionForConditionalGeneration

    llava = LlavaOnevisionForConditionalGeneration.from_pretrained(str(tiny_llava_onevision_dir)).eval()
    loaded = load_model(LoadConfig(model=str(tiny_llava_onevision_dir), device="cpu"))
    return llava, loaded


def test_loads_with_an_untrained_notice(pair):
    _, loaded = pair
    assert any("LLaVA-OneVision" in n for n in loaded.notices)
    assert any("TimePerceiver is untrained" in n for n in loaded.notices)
    assert loaded.model.model.time_perceiver.is_untrained()


def test_keyframe_tokens_equal_llava_onevision_pooled_video_features(pair):
    llava, loaded = pair
    s = loaded.config.vision_config.image_size
    px = torch.randn(3, 3, s, s, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = llava.model.get_video_features(pixel_values_videos=px[None]).pooler_output  # (1, 3*16 + 1, D)
        ours = loaded.model.get_video_features(px, [1, 1, 1])  # three 1-frame segments: keyframes only
    k = loaded.config.keyframe_tokens
    assert ours.shape[0] == 3 * k
    torch.testing.assert_close(ours, ref[0, : 3 * k], rtol=1e-5, atol=1e-5)  # the last row is image_newline


def test_text_only_logits_match(pair):
    llava, loaded = pair
    ids = torch.tensor([loaded.processor.tokenizer.encode("what happens in the video?")])
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(input_ids=ids).logits, llava(input_ids=ids).logits)


def test_convert_writes_a_standalone_clapper_checkpoint(pair, tmp_path):
    import json

    from clapper_core.model.convert import convert_model

    _, loaded = pair
    result = convert_model(str(loaded.source), tmp_path / "clapper")
    out = result.dest
    assert any("untrained" in n for n in result.notices)
    assert json.loads((out / "config.json").read_text())["model_type"] == "clapper"
    again = load_model(LoadConfig(model=str(out), device="cpu"))
    ids = torch.tensor([[1, 5, 9, 12]])
    with torch.no_grad():
        torch.testing.assert_close(again.model(input_ids=ids).logits, loaded.model(input_ids=ids).logits)
    assert any("untrained" in n for n in again.notices) and not any("LLaVA" in n for n in again.notices)


def test_convert_command(pair, tmp_path):
    from typer.testing import CliRunner

    from clapper_cli.app import app

    _, loaded = pair
    dest = tmp_path / "out"
    result = CliRunner().invoke(app, ["convert", loaded.source, str(dest)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(dest)
    assert "TimePerceiver is untrained" in result.stderr
    assert (dest / "model.safetensors").is_file() and (dest / "tokenizer.json").is_file()
    again = CliRunner().invoke(app, ["convert", loaded.source, str(dest)])
    assert again.exit_code != 0  # not empty: refused without --overwrite


def test_convert_command_error_exit_code(tmp_path):
    from clapper_cli.main import main

    assert main(["convert", str(tmp_path / "missing"), str(tmp_path / "out")]) == 1
