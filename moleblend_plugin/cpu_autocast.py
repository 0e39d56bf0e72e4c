"""bf16 autocast on CPU for training and validation steps.

fairseq's `--bf16` casts the whole model to bf16 and targets GPUs. Here only the step's
forward and losses run under `torch.autocast("cpu", torch.bfloat16)`: matrix products in
bf16, reductions and the parameters, gradients and Adam state in fp32. It pays on CPUs
with bf16 matrix units (AMX-BF16) or bf16 vector instructions (AVX512-BF16).
"""
import contextlib
import logging
from typing import Dict

import torch

logger = logging.getLogger(__name__)

# /proc/cpuinfo flags of the x86 bf16 instructions
BF16_CPU_FLAGS = {"amx_bf16": "AMX-BF16 (matrix tiles)", "avx512_bf16": "AVX512-BF16 (vector dot products)"}


def cpu_bf16_support() -> Dict[str, bool]:
    """Which bf16 instruction sets this CPU reports (all False where /proc/cpuinfo is absent)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        flags = []
    return {name: name in flags for name in BF16_CPU_FLAGS}


def describe_cpu_bf16_support() -> str:
    support = cpu_bf16_support()
    present = [BF16_CPU_FLAGS[name] for name, has in support.items() if has]
    if present:
        return "this CPU has " + " and ".join(present)
    return "this CPU reports no bf16 instructions (no AMX-BF16, no AVX512-BF16): bf16 products are emulated and may be slower than fp32"


def autocast_dtype(device_type: str):
    """The dtype autocast casts products to on this device type, None when it is off."""
    if hasattr(torch, "get_autocast_dtype"):  # torch >= 2.4
        return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None
    if device_type == "cpu":
        return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None
    return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None


def bf16_autocast(enabled: bool = True):
    """The context of a step's forward and losses."""
    return torch.autocast("cpu", dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


class AutocastCriterion:
    """Calls the criterion under CPU bf16 autocast; the backward that follows runs outside it."""

    def __init__(self, criterion):
        self.criterion = criterion

    def __call__(self, model, sample, *args, **kwargs):
        with bf16_autocast():
            return self.criterion(model, sample, *args, **kwargs)
