"""Whole-image inference (resize short edge, pad to the stride, crop back, optional flip and
multi-scale test-time augmentation with averaged probabilities) and split evaluation."""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from . import config as configs
from . import metrics
from .data import PascalPartDataset
from .errors import SeglibError
from .models import STRIDE, build_model, normalization


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


class Predictor:
    """probabilities(image) -> (C, H, W) softmax averaged over scales (and flips), at the image's size."""

    def __init__(self, model, model_name: str, eval_size: int, scales=(1.0,), flip=False,
                 device="cpu", precision="fp32", channels_last=True):
        self.model, self.eval_size, self.scales, self.flip = model.eval(), eval_size, tuple(scales), flip
        self.device, self.precision = torch.device(device), precision
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        mean, std = normalization(model_name)
        self.mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=self.device).view(1, 3, 1, 1)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = F.pad(x, (0, -w % STRIDE, 0, -h % STRIDE))  # pad right/bottom, then crop back
        with autocast(self.device, self.precision):
            out = self.model(x.contiguous(memory_format=self.memory_format))
        return out[..., :h, :w].float()

    @torch.inference_mode()
    def probabilities(self, image) -> torch.Tensor:
        image = (image if isinstance(image, torch.Tensor) else torch.from_numpy(np.asarray(image))).to(self.device)
        x = image.permute(2, 0, 1)[None].float().div_(255).sub_(self.mean).div_(self.std)
        height, width = x.shape[-2:]
        total = 0
        for scale in self.scales:
            short = max(STRIDE, round(self.eval_size * scale))
            factor = short / min(height, width)
            size = (max(1, round(height * factor)), max(1, round(width * factor)))
            xs = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=factor < 1)
            batch = torch.cat([xs, xs.flip(-1)]) if self.flip else xs
            logits = self._logits(batch)
            logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
            probs = logits.softmax(1)
            total = total + probs[0] + (probs[1].flip(-1) if self.flip else 0)
        return total / (len(self.scales) * (2 if self.flip else 1))

    def predict(self, image) -> np.ndarray:
        return self.probabilities(image).argmax(0).cpu().numpy().astype(np.uint8)


def eval_size(config: dict) -> int:
    """The short edge at evaluation: eval_size, else the training short edge (train_size, else crop_size)."""
    return config["eval_size"] or config.get("train_size") or config["crop_size"]


def predictor_from_config(model, config: dict, device, **overrides) -> Predictor:
    opts = {"eval_size": eval_size(config), "scales": config["eval_scales"], "flip": config["eval_flip"],
            "precision": precision_for(config, torch.device(device)), "channels_last": config["channels_last"]}
    opts.update(overrides)
    return Predictor(model, config["model"], device=device, **opts)


def load_run(run_dir, device="auto", checkpoint: str = "final.pt"):
    """(model in eval mode on device, resolved config) from a run folder."""
    run_dir = Path(run_dir)
    config = configs.read_run_config(run_dir)
    path = run_dir / checkpoint
    if not path.is_file():
        path = run_dir / "last.pt"
    if not path.is_file():
        raise SeglibError(f"{run_dir}: no checkpoint (final.pt or last.pt); train first or pass the right --run")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        device = resolve_device(device)
        model = build_model(config["model"], state["num_classes"])
        model.load_state_dict(state["model"])
    except SeglibError:
        raise
    except Exception as exc:  # noqa: BLE001 (any unreadable file: one line for the user)
        raise SeglibError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {str(exc)[:120]}); "
                          "retrain or point --run at another run") from None
    model = model.to(device).eval()
    if config["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    return model, config, state["class_names"]


def evaluate_dataset(predictor: Predictor, dataset: PascalPartDataset, max_images=None, boundary=False,
                     progress=True, num_workers=2, indices=None) -> dict:
    """Accumulate the confusion matrix (and, with boundary=True, boundary counts) over a split (its
    first max_images, or the given indices). Under torch.distributed each rank takes every
    world_size-th image and the counts are summed on the model's device (NCCL takes no CPU tensors).
    The global RNG is left alone, so evaluating during training does not change the training."""
    if indices is None:
        indices = range(len(dataset) if max_images is None else min(len(dataset), max_images))
    indices = list(indices)
    n = len(indices)
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    subset = torch.utils.data.Subset(dataset, indices[rank::world])
    loader = torch.utils.data.DataLoader(subset, batch_size=None, num_workers=num_workers,
                                         generator=torch.Generator().manual_seed(0))
    c = dataset.num_classes
    conf = np.zeros((c, c), np.int64)
    b_inter, b_union = np.zeros(c, np.int64), np.zeros(c, np.int64)
    f_counts, perimeters = np.zeros((c, 4), np.int64), np.zeros((c, 2), np.int64)
    for image, mask in tqdm(loader, desc=f"evaluate {dataset.split}", disable=not progress or rank > 0,
                            mininterval=5, dynamic_ncols=False, ncols=90):
        pred = predictor.probabilities(image).argmax(0)
        conf += metrics.confusion_matrix(pred, mask.to(pred.device), c)
        if boundary:
            pred_np, mask_np = pred.cpu().numpy(), mask.numpy()
            inter, union = metrics.boundary_counts(pred_np, mask_np, c)
            b_inter += inter
            b_union += union
            f_counts += metrics.boundary_f_counts(pred_np, mask_np, c)
            perimeters += metrics.perimeter_counts(pred_np, mask_np, c)
    if world > 1:
        for array in (conf, b_inter, b_union, f_counts, perimeters):
            t = torch.from_numpy(array).to(predictor.device)
            dist.all_reduce(t)
            array[...] = t.cpu().numpy()
    result = {"confusion": conf, "images": n}
    if boundary:
        with np.errstate(divide="ignore", invalid="ignore"):
            result["boundary_iou"] = np.where(b_union > 0, b_inter / np.maximum(b_union, 1), np.nan)
            result["perimeter_ratio"] = np.where(perimeters[:, 1] > 0, perimeters[:, 0] / np.maximum(perimeters[:, 1], 1), np.nan)
        result["boundary_f"] = metrics.boundary_f_score(f_counts)
    return result
