"""load_model: sources, typed errors for bad model directories, 4-bit on the CPU."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from clapper_core.errors import (
    ConfigError,
    DeviceError,
    ModelFormatError,
    ModelNotFoundError,
    QuantizationError,
)
from clapper_core.generation import GenerationConfig, VideoSession
from clapper_core.model.loading import LoadConfig, load_model


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_loads_a_local_directory(tiny_loaded, tiny_model_dir):
    assert tiny_loaded.source == str(tiny_model_dir)
    assert tiny_loaded.hardware.device == "cpu" and tiny_loaded.hardware.dtype == "float32"
    assert tiny_loaded.hardware.attn_implementation == "sdpa"
    assert not tiny_loaded.model.training
    assert any("untrained" in n for n in tiny_loaded.notices)


def test_missing_path(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no model directory"):
        load_model(LoadConfig(model=str(tmp_path / "nope"), device="cpu"))


def test_a_file_is_not_a_model(tmp_path):
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match="is a file"):
        load_model(LoadConfig(model=str(f), device="cpu"))


def test_directory_without_config(tmp_path):
    with pytest.raises(ModelFormatError, match="no config.json"):
        load_model(LoadConfig(model=str(tmp_path), device="cpu"))


def test_wrong_model_type(tiny_model_dir, tmp_path):
    d = _copy(tiny_model_dir, tmp_path / "m")
    data = json.loads((d / "config.json").read_text())
    data["model_type"] = "bert"
    (d / "config.json").write_text(json.dumps(data))
    with pytest.raises(ModelFormatError, match="type 'bert'"):
        load_model(LoadConfig(model=str(d), device="cpu"))


def test_missing_weights(tiny_model_dir, tmp_path):
    d = _copy(tiny_model_dir, tmp_path / "m")
    (d / "model.safetensors").unlink()
    with pytest.raises(ModelFormatError, match="no weights"):
        load_model(LoadConfig(model=str(d), device="cpu"))


def test_shape_mismatch(tiny_model_dir, tmp_path):
    d = _copy(tiny_model_dir, tmp_path / "m")
    data = json.loads((d / "config.json").read_text())
    data["text_config"]["intermediate_size"] = 48
    (d / "config.json").write_text(json.dumps(data))
    with pytest.raises(ModelFormatError, match="do not fit"):
        load_model(LoadConfig(model=str(d), device="cpu"))


def test_missing_tensors(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    d = _copy(tiny_model_dir, tmp_path / "m")
    tensors = load_file(d / "model.safetensors")
    del tensors["model.multi_modal_projector.linear_1.weight"]
    save_file(tensors, d / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelFormatError, match="missing"):
        load_model(LoadConfig(model=str(d), device="cpu"))


def test_four_bit_without_bitsandbytes(tiny_model_dir, monkeypatch):
    import clapper_core.hardware as hw

    real = hw._installed
    monkeypatch.setattr(hw, "_installed", lambda m: False if m == "bitsandbytes" else real(m))
    with pytest.raises(QuantizationError, match="bitsandbytes"):
        load_model(LoadConfig(model=str(tiny_model_dir), device="cpu", quant="4bit"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_a_gpu(tiny_model_dir):
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        load_model(LoadConfig(model=str(tiny_model_dir), device="cuda"))


def test_invalid_options():
    with pytest.raises(ConfigError, match="quant"):
        LoadConfig(model="x", quant="8bit")
    with pytest.raises(ConfigError, match="no model"):
        LoadConfig(model="")


def test_demo_model_not_installed(monkeypatch, tmp_path):
    import clapper_core.model.loading as loading

    monkeypatch.setattr(loading, "DEMO_MODEL_DIR", tmp_path / "demo_model")
    with pytest.raises(ModelNotFoundError, match="demo model is not installed"):
        load_model(LoadConfig(model="clapper-demo", device="cpu"))


def test_demo_model_resolves_to_the_package_directory(monkeypatch, tiny_model_dir):
    import clapper_core.model.loading as loading

    monkeypatch.setattr(loading, "DEMO_MODEL_DIR", tiny_model_dir)
    assert load_model(LoadConfig(model="clapper-demo", device="cpu")).source == str(tiny_model_dir)


def test_hub_id_offline_and_not_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelNotFoundError, match="not in the Hugging Face cache and HF_HUB_OFFLINE is set"):
        load_model(LoadConfig(model="someone/clapper-7b", device="cpu"))


@pytest.fixture(scope="module")
def odd_width_model_dir(tmp_path_factory):
    """A tiny Clapper whose LLM is 64 wide (NF4 on the CPU) with an MLP 96 wide: its down_proj reads 96 inputs,
    not a whole number of bitsandbytes' 64-value blocks, so the CPU cannot run it in 4 bits."""
    from clapper_core.model.tiny import build_tiny_clapper

    return build_tiny_clapper(tmp_path_factory.mktemp("odd_width"),
                              text_config={"hidden_size": 64, "intermediate_size": 96})


def test_four_bit_on_the_cpu_keeps_layers_it_cannot_run(odd_width_model_dir, tiny_frames):
    pytest.importorskip("bitsandbytes")
    loaded = load_model(LoadConfig(model=str(odd_width_model_dir), device="cpu", quant="4bit"))
    assert loaded.hardware.quant == "4bit" and "4-bit" in loaded.hardware.describe()
    llm = loaded.model.model.language_model
    for layer in llm.layers:
        assert type(layer.self_attn.q_proj).__name__ == "Linear4bit"
        assert type(layer.mlp.gate_proj).__name__ == "Linear4bit"
        assert type(layer.mlp.down_proj) is torch.nn.Linear  # 96 inputs: kept in float32
    assert type(loaded.model.model.multi_modal_projector.linear_1) is torch.nn.Linear  # kept out of 4-bit
    assert type(loaded.model.model.vision_tower.encoder.layers[0].self_attn.q_proj) is torch.nn.Linear
    assert loaded.notices[0] == ("4-bit: 2 of the LLM's 14 linear layers stay in float32 (bitsandbytes cannot run "
                                 "their shape on the cpu; 4-bit on the CPU needs widths that are multiples of 64), "
                                 "12 are NF4")
    frames, ts = tiny_frames
    session = VideoSession(loaded, frames=frames, timestamps=ts)
    gen = GenerationConfig(max_new_tokens=5)
    assert session.ask("what happens?", gen) == session.ask("what happens?", gen)
    assert 1 <= session.last_stats.new_tokens <= 5  # a random model may stop early


def test_ask_in_four_bits_with_the_demo_model_on_the_cpu(tiny_video, capsys):
    """The demo model's LLM is 96 wide: most of its layers cannot be NF4 on the CPU, and `ask` still answers."""
    pytest.importorskip("bitsandbytes")
    from clapper_cli.main import main

    code = main(["ask", str(tiny_video), "What colour is the circle?", "--quant", "4bit", "--device", "cpu",
                 "--max-new-tokens", "8", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    record = json.loads(out)
    assert record["precision"] == "4bit" and record["new_tokens"] >= 1
    assert "4-bit: 24 of the LLM's 28 linear layers stay in float32" in err
    assert "kernels-community" not in err and "Traceback" not in err


def test_unquantizable_layers_are_read_from_the_config(odd_width_model_dir):
    from clapper_core.model.configuration_clapper import ClapperConfig
    from clapper_core.model.loading import unquantizable_layers

    config = ClapperConfig.from_pretrained(str(odd_width_model_dir))
    kept, total = unquantizable_layers(config, "cpu")
    assert total == 14 and kept == [f"model.language_model.layers.{i}.mlp.down_proj" for i in range(2)]
    assert unquantizable_layers(config, "cuda") == ([], 14)  # CUDA runs every shape
