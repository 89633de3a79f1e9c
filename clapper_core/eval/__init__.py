"""`clapper eval`: multiple-choice video benchmarks under a visual-token budget.

    from clapper_core.eval import EvalOptions, evaluate, load_benchmark

Readers (`benchmarks`), prompting and answer extraction (`answers`), the token budget
(`budget`) and the run itself (`evaluate`). Importing this package does not import torch.
"""

from __future__ import annotations

from clapper_core.eval.answers import extract_choice, format_prompt
from clapper_core.eval.benchmarks import FORMATS, Benchmark, Question, load_benchmark
from clapper_core.eval.budget import frames_for_budget, model_frames_for_budget
from clapper_core.eval.evaluate import EvalOptions, EvalReport, evaluate, summarize

__all__ = [
    "FORMATS",
    "Benchmark",
    "EvalOptions",
    "EvalReport",
    "Question",
    "evaluate",
    "extract_choice",
    "format_prompt",
    "frames_for_budget",
    "load_benchmark",
    "model_frames_for_budget",
    "summarize",
]
