"""Device, dtype, attention backend and quantization: chosen here, once, and reported.

    device  auto -> cuda when a GPU is visible, else cpu
    quant   auto -> bf16 on cuda, fp32 on cpu; 4bit = NF4 LLM (bitsandbytes), the rest in the compute dtype
    attn    auto -> flash_attention_2 when flash-attn is installed and the device is cuda, else sdpa

`choose_hardware` takes the facts it depends on (`cuda_available`, `flash_attn_available`,
`bitsandbytes_available`) as optional arguments so tests can play any machine.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from clapper_core import defaults
from clapper_core.defaults import ATTNS, DEVICES, QUANTS
from clapper_core.errors import ConfigError, DeviceError, QuantizationError


# bitsandbytes quantizes NF4 in blocks of 64 input values. On the CPU its matmul repacks each weight into
# tiles of 32 output rows and whole blocks of input (bitsandbytes.functional._convert_weight_packed_for_cpu),
# and fails on any other shape; on CUDA every shape works.
NF4_BLOCK = 64
CPU_NF4_ROWS = 32


def nf4_quantizable(in_features: int, out_features: int, device: str) -> bool:
    """Whether bitsandbytes can run a 4-bit linear layer of this shape on `device` ("cuda" or "cpu")."""
    if device == "cuda":
        return True
    return in_features % NF4_BLOCK == 0 and out_features % CPU_NF4_ROWS == 0


@dataclass(frozen=True)
class HardwareChoice:
    device: str  # "cuda" or "cpu"
    dtype: str  # compute dtype of everything not quantized: "bfloat16" or "float32"
    attn_implementation: str  # "flash_attention_2", "sdpa" or "eager"
    quant: str  # "bf16", "fp32" or "4bit"

    @property
    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)

    def describe(self) -> str:
        """One line for logs: "cuda, bfloat16, 4-bit NF4 LLM, flash_attention_2"."""
        precision = f"{self.dtype}, 4-bit NF4 LLM" if self.quant == "4bit" else self.dtype
        return f"{self.device}, {precision}, {self.attn_implementation} attention"


def usable_cores() -> int:
    """The CPU cores this process may run on (a container's or taskset's limit, not the machine's count)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def decode_threads(workers: int) -> int:
    """FFmpeg threads for each of `workers` decode workers (the engine's, or a training DataLoader's): the workers of
    every process on this machine (torchrun's LOCAL_WORLD_SIZE) split its cores, one thread at least, rather than
    each starting FFmpeg's frame threads for every core; 0 (FFmpeg's own choice) when the caller's thread decodes."""
    if workers <= 0:
        return 0
    from clapper_core.distributed import dist_info

    return max(1, usable_cores() // (workers * max(1, dist_info().local_world_size)))


def on_cuda(device) -> bool:
    """Whether `device` (a torch.device, or a name such as "cuda:1") is a CUDA device."""
    return str(getattr(device, "type", device)).startswith("cuda")


def decoding_mode(device, *, warm: bool = False) -> str:
    """How answers are decoded one at a time: "compiled" (static cache, CUDA graphs) or "eager" (growing cache).

    Compiling the step takes tens of seconds once per process, and pays back over many answers: on CUDA it is
    chosen for a process that stays warm (`clapper serve`, `warm=True`), or anywhere with `CLAPPER_COMPILE=1`.
    `CLAPPER_EAGER=1` always decodes eagerly (debugging, or a GPU where compiling fails); the CPU always does.
    """
    from clapper_core.settings import env_flag

    if env_flag("CLAPPER_EAGER") or not on_cuda(device):
        return "eager"
    return "compiled" if warm or env_flag("CLAPPER_COMPILE") else "eager"


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def choose_hardware(
    device: str = defaults.DEVICE,
    quant: str = defaults.QUANT,
    attn: str = defaults.ATTN,
    *,
    cuda_available: bool | None = None,
    flash_attn_available: bool | None = None,
    bitsandbytes_available: bool | None = None,
) -> HardwareChoice:
    """Resolve the user's choices against this machine; typed errors for what cannot be done."""
    for name, value, allowed in (("device", device, DEVICES), ("quant", quant, QUANTS), ("attn", attn, ATTNS)):
        if value not in allowed:
            raise ConfigError(f"{name} {value!r} is not one of {', '.join(allowed)}")
    cuda = _cuda_available() if cuda_available is None else cuda_available
    if device == "cuda" and not cuda:
        raise DeviceError("device 'cuda' was asked for but no CUDA GPU is visible; use --device cpu or auto")
    dev = device if device != "auto" else ("cuda" if cuda else "cpu")

    if quant == "auto":
        quant = "bf16" if dev == "cuda" else "fp32"
    if quant == "4bit":
        has_bnb = _installed("bitsandbytes") if bitsandbytes_available is None else bitsandbytes_available
        if not has_bnb:
            raise QuantizationError("4-bit loading needs bitsandbytes: pip install bitsandbytes, or use --quant bf16")
    # 4-bit keeps the vision tower, TimePerceiver and projector in bf16 on a GPU (fp32 on a CPU).
    dtype = "float32" if quant == "fp32" or (quant == "4bit" and dev == "cpu") else "bfloat16"

    flash = _installed("flash_attn") if flash_attn_available is None else flash_attn_available
    if attn == "flash_attention_2" and not (flash and dev == "cuda"):
        raise ConfigError("flash_attention_2 needs the flash-attn package and a CUDA GPU; use --attn sdpa")
    if attn == "auto":
        attn = "flash_attention_2" if flash and dev == "cuda" else "sdpa"
    return HardwareChoice(device=dev, dtype=dtype, attn_implementation=attn, quant=quant)


def nf4_matmul_check(device: str) -> str | None:
    """Run one small 4-bit matmul through bitsandbytes on `device`; None when it works, else why not (one line).

    Importing bitsandbytes proves little: its kernels are chosen per device when first used."""
    try:
        import bitsandbytes as bnb
        import torch

        torch.manual_seed(0)
        dense = torch.nn.Linear(NF4_BLOCK, CPU_NF4_ROWS, bias=False)
        layer = bnb.nn.Linear4bit(NF4_BLOCK, CPU_NF4_ROWS, bias=False, quant_type="nf4",
                                  compute_dtype=torch.float32)
        layer.weight = bnb.nn.Params4bit(dense.weight.data.clone(), requires_grad=False, quant_type="nf4")
        layer = layer.to(device).eval()
        x = torch.randn(2, NF4_BLOCK)
        with torch.inference_mode():
            got = layer(x.to(device)).float().cpu()
            want = dense(x)
    except Exception as exc:  # any failure is the answer: reported, never raised
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        return f"{type(exc).__name__}: {lines[-1] if lines else ''}".rstrip(": ")
    error = float((got - want).norm() / want.norm())
    if not error < 0.2:  # NF4 keeps a random layer's output within about 10%
        return f"a 4-bit matmul ran but is off by {error:.0%} against float32"
    return None
