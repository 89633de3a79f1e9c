"""The hardware choice, on any machine the tests pretend to be."""

from __future__ import annotations

import pytest

from clapper_core.errors import ConfigError, DeviceError, QuantizationError
from clapper_core.hardware import choose_hardware


def test_cpu_defaults_to_float32_sdpa():
    hw = choose_hardware(cuda_available=False, flash_attn_available=True)
    assert (hw.device, hw.dtype, hw.attn_implementation, hw.quant) == ("cpu", "float32", "sdpa", "fp32")
    assert hw.describe() == "cpu, float32, sdpa attention"


def test_gpu_defaults_to_bf16_and_flash_attention_when_installed():
    hw = choose_hardware(cuda_available=True, flash_attn_available=True)
    assert (hw.device, hw.dtype, hw.attn_implementation) == ("cuda", "bfloat16", "flash_attention_2")
    assert choose_hardware(cuda_available=True, flash_attn_available=False).attn_implementation == "sdpa"


def test_four_bit():
    hw = choose_hardware(quant="4bit", cuda_available=True, flash_attn_available=False, bitsandbytes_available=True)
    assert hw.quant == "4bit" and hw.dtype == "bfloat16" and "4-bit NF4" in hw.describe()
    with pytest.raises(QuantizationError, match="bitsandbytes"):
        choose_hardware(quant="4bit", cuda_available=True, bitsandbytes_available=False)


def test_impossible_requests():
    with pytest.raises(DeviceError):
        choose_hardware(device="cuda", cuda_available=False)
    with pytest.raises(ConfigError, match="flash-attn"):
        choose_hardware(attn="flash_attention_2", cuda_available=False, flash_attn_available=True)
    with pytest.raises(ConfigError, match="device"):
        choose_hardware(device="tpu")


def test_explicit_choices_win():
    hw = choose_hardware(device="cpu", quant="bf16", attn="eager", cuda_available=True)
    assert (hw.device, hw.dtype, hw.attn_implementation) == ("cpu", "bfloat16", "eager")
