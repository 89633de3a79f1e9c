import json

import pytest

from clapper_core.errors import ConfigError
from clapper_core.settings import DEMO_MODEL, config_path, resolve, set_value, unset_value


def test_defaults_when_nothing_is_set(isolated_config):
    s = resolve()
    assert s.model == DEMO_MODEL and s.uses_demo_model
    assert (s.fps, s.max_frames, s.segment_size, s.quant) == (1.0, 96, 4, "auto")
    assert set(s.sources.values()) == {"default"}
    assert config_path() == isolated_config


def test_flags_win_over_env_over_file(isolated_config, monkeypatch):
    set_value("fps", "0.5")
    set_value("max-frames", "32")
    set_value("model", "./from-file")
    monkeypatch.setenv("CLAPPER_MAX_FRAMES", "16")
    monkeypatch.setenv("CLAPPER_MODEL", "./from-env")
    s = resolve({"model": "./from-flag", "quant": None})
    assert (s.fps, s.max_frames, s.model, s.quant) == (0.5, 16, "./from-flag", "auto")
    assert s.sources["fps"].startswith("file") and s.sources["max_frames"] == "env CLAPPER_MAX_FRAMES"
    assert s.sources["model"] == "flag" and s.sources["quant"] == "default"


@pytest.mark.parametrize(
    "flags, env, needle",
    [
        ({"fps": 0}, {}, "--fps = 0 is invalid: fps must be > 0"),
        ({"max_frames": 0}, {}, "--max-frames"),
        ({}, {"CLAPPER_FPS": "fast"}, "CLAPPER_FPS = 'fast' is invalid: fps must be a number"),
        ({}, {"CLAPPER_QUANT": "8bit"}, "must be one of auto, bf16, fp32, 4bit"),
        ({"temperature": -1}, {}, "temperature must be >= 0"),
        ({"top_p": 1.5}, {}, "top_p must be > 0 and <= 1"),
    ],
)
def test_invalid_values_name_the_source_and_the_fix(monkeypatch, flags, env, needle):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError) as info:
        resolve(flags)
    assert needle in str(info.value) and "for example" in str(info.value)
    assert "\n" not in str(info.value)


def test_set_validates_before_saving_and_unset_removes(isolated_config):
    with pytest.raises(ConfigError, match="segment_size must be >= 1"):
        set_value("segment-size", "0")
    assert not isolated_config.exists()
    set_value("prompt", 'Say "what" happens')
    set_value("seed", "7")
    assert resolve().prompt == 'Say "what" happens' and resolve().seed == 7
    assert unset_value("seed")[1] is True and unset_value("seed")[1] is False
    assert resolve().seed is None
    with pytest.raises(ConfigError, match="unknown setting 'colour'; known settings: model"):
        set_value("colour", "red")


def test_bad_config_files_are_config_errors(isolated_config):
    isolated_config.parent.mkdir(parents=True)
    isolated_config.write_text("fps = = 2\n")
    with pytest.raises(ConfigError, match="is not valid TOML.*fix it or delete it"):
        resolve()
    isolated_config.write_text("frames_per_second = 2\n")
    with pytest.raises(ConfigError, match="unknown setting 'frames_per_second' in"):
        resolve()
    isolated_config.write_text('fps = "lots"\n')
    with pytest.raises(ConfigError, match="fps in .* = 'lots' is invalid"):
        resolve()


def test_json_config_file(tmp_path, monkeypatch):
    path = tmp_path / "clapper.json"
    monkeypatch.setenv("CLAPPER_CONFIG", str(path))
    set_value("quant", "4BIT")
    assert json.loads(path.read_text()) == {"quant": "4bit"}
    assert resolve().quant == "4bit"


@pytest.mark.parametrize(("value", "on"), [
    (None, False), ("", False), ("0", False), ("false", False), ("No", False), (" OFF ", False),
    ("1", True), ("true", True), ("yes", True), ("on", True), ("2", True),
])
def test_every_on_off_switch_reads_the_same_words(monkeypatch, value, on):
    """CLAPPER_EAGER=false used to turn eager decoding on: every switch now takes 0/false/no/off as off."""
    from clapper_cli.errors import debug_enabled
    from clapper_core.hardware import decoding_mode
    from clapper_core.settings import env_flag

    for name in ("CLAPPER_DEBUG", "CLAPPER_EAGER", "CLAPPER_COMPILE"):
        monkeypatch.delenv(name, raising=False)
        if value is not None:
            monkeypatch.setenv(name, value)
        assert env_flag(name) is on
    assert debug_enabled() is on
    assert decoding_mode("cuda", warm=True) == ("eager" if on else "compiled")  # CLAPPER_EAGER wins over a warm GPU


@pytest.mark.parametrize(("value", "offline"), [("1", True), ("ON", True), ("yes", True), ("True", True),
                                                 ("0", False), ("false", False), ("", False), ("2", False)])
def test_hf_hub_offline_is_read_as_huggingface_hub_reads_it(value, offline):
    import huggingface_hub.constants

    from clapper_core.settings import hf_offline

    assert hf_offline({"HF_HUB_OFFLINE": value}) is offline
    assert huggingface_hub.constants._is_true(value) is offline
