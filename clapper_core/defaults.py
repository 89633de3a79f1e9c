"""Every default and every list of choices, written once.

Settings keys, `Settings` fields, the frozen runtime configs (`SamplingConfig`, `LoadConfig`,
`GenerationConfig`), hardware's checks and the CLI's option help all read them from here.
Standard library only: the CLI imports this for `--help` and shell completion.
"""

from __future__ import annotations

# --- choices ---------------------------------------------------------------------------------

QUANTS = ("auto", "bf16", "fp32", "4bit")  # auto: bf16 on a GPU, fp32 on the CPU
DEVICES = ("auto", "cuda", "cpu")  # auto: CUDA when a GPU is visible
ATTNS = ("auto", "sdpa", "flash_attention_2", "eager")  # auto: flash_attention_2 when installed on CUDA
SEEKS = ("auto", "exact", "snap")  # see SamplingConfig.seek

# --- model -----------------------------------------------------------------------------------

MODEL = "clapper-demo"  # the built-in demo model
QUANT = DEVICE = ATTN = "auto"

# --- video sampling --------------------------------------------------------------------------

FPS = 1.0
MAX_FRAMES = 96
SEGMENT_SIZE = 4  # frames per slow-fast segment, as the model was trained
SEEK = "auto"
MAX_SHORT_SIDE = 720  # frames are scaled down to this shorter side while decoding

# --- generation ------------------------------------------------------------------------------

MAX_NEW_TOKENS = 256
TEMPERATURE = 0.0  # greedy
TOP_P = 1.0
SEED = None  # unseeded
CAPTION_PROMPT = "Describe this video in detail."

# --- the batched engine (caption, eval) ------------------------------------------------------

BATCH_SIZE = "auto"  # answers generated together: BATCH_SIZE_CUDA on a GPU, BATCH_SIZE_CPU on the CPU
BATCH_SIZE_CUDA = 16
BATCH_SIZE_CPU = 4
DECODE_WORKERS = 2  # threads decoding videos ahead of the model
ENCODE_FRAMES = 128  # frames encoded in one pass at most: SigLIP's patches of 128 frames at 384 px, 0.4 GB in fp32

# --- evaluation ------------------------------------------------------------------------------

EVAL_MAX_VISUAL_TOKENS = 6000  # the budget per video: 96 frames of the full-size Clapper
EVAL_MAX_NEW_TOKENS = 32  # a letter, or a short sentence around one
