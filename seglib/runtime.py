"""Where and how a model runs: the device, the precision (bf16 only where the CPU has it natively),
autocast, and the memory format of training. Training and evaluation both follow this policy."""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import torch

from .errors import SeglibError


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SeglibError("device=cuda but no CUDA GPU is visible; use device=auto or device=cpu")
    return torch.device(name)


def autocast(device: torch.device, precision: str):
    """bf16/fp16 autocast, or nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


_SAID: set[str] = set()


def note_once(message: str) -> None:
    """A plain one-line note on stdout, once per process (not a Python warning with a source path):
    stderr stays for errors, which are one line on every CPU."""
    if message not in _SAID:
        _SAID.add(message)
        print(f"[seglib] {message}", file=sys.stdout, flush=True)


def cpu_supports_bf16() -> bool:
    """Native bf16 arithmetic (AVX512-BF16 or AMX); elsewhere bf16 autocast is emulated and slower than
    fp32. SEGLIB_NATIVE_BF16=0 or 1 overrides the detection (the tests run both paths on any CPU)."""
    forced = os.environ.get("SEGLIB_NATIVE_BF16", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    return "avx512_bf16" in flags or "amx_bf16" in flags


def precision_for(config: dict, device: torch.device) -> str:
    if device.type == "cuda":
        return config["precision_cuda"]
    if config["precision_cpu"] == "bf16" and not cpu_supports_bf16():
        note_once("this CPU has no native bf16 (AVX512-BF16 or AMX): precision_cpu=bf16 runs in fp32, which is faster here")
        return "fp32"
    return config["precision_cpu"]


def dilated_depthwise_convs(model: torch.nn.Module) -> list[torch.nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1 and max(m.dilation) > 1]


def has_dilated_depthwise_conv(model: torch.nn.Module) -> bool:
    return bool(dilated_depthwise_convs(model))


def training_memory_format(model: torch.nn.Module, channels_last: bool, device: torch.device,
                           precision: str) -> torch.memory_format:
    """channels_last as asked, except for bf16 training on CPU of a model with dilated depthwise convs:
    there oneDNN (torch 2.14) returns wrong weight gradients for them in channels_last (relative error
    ~1.4 against fp32 on feature maps of 32 and more; scripts/check_depthwise_bf16.py), which drove the
    Lite2 DeepLabv3+ weights to 1e31 within 10 iterations at crop 512. Forward passes are correct, so
    evaluation keeps channels_last. (Keeping only those convs out of channels_last measured no faster:
    docs/performance.md.)"""
    if channels_last and device.type == "cpu" and precision == "bf16" and has_dilated_depthwise_conv(model):
        note_once("channels_last with bf16 on CPU gives wrong gradients for dilated depthwise convs: "
                  "training in the default memory format")
        return torch.contiguous_format
    return torch.channels_last if channels_last else torch.contiguous_format


def host_description(device: torch.device) -> str:
    """The machine a run trained on, for the report's setup section: the GPU's name, or the CPU's model,
    the threads torch uses and whether it has native bf16."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "CPU")
    return f"{model}, {torch.get_num_threads()} threads, {'native' if cpu_supports_bf16() else 'no native'} bf16"
