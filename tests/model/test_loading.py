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


def test_four_bit_on_the_cpu_loads_and_generates(tiny_model_dir, tiny_frames):
    pytest.importorskip("bitsandbytes")
    loaded = load_model(LoadConfig(model=str(tiny_model_dir), device="cpu", quant="4bit"))
    assert loaded.hardware.quant == "4bit" and "4-bit" in loaded.hardware.describe()
    layer = loaded.model.model.language_model.layers[0].self_attn.q_proj
    assert type(layer).__name__ == "Linear4bit"
    assert type(loaded.model.model.multi_modal_projector.linear_1) is torch.nn.Linear  # kept out of 4-bit
    assert type(loaded.model.model.vision_tower.encoder.layers[0].self_attn.q_proj) is torch.nn.Linear
    frames, ts = tiny_frames
    session = VideoSession(loaded, frames=frames, timestamps=ts)
    gen = GenerationConfig(max_new_tokens=5)
    assert session.ask("what happens?", gen) == session.ask("what happens?", gen)
    assert 1 <= session.last_stats.new_tokens <= 5  # a random model may stop early
