"""Throughput benchmark: seglib's training step against a plain fp32 PyTorch loop on the very same
model, plus evaluation and data-pipeline throughput. seglib's side uses the precision and memory
format that the experiment files set for the model (measured per model: see docs/performance.md).

python -m seglib bench --model deeplabv3plus_r50-d8 --crop 256 --batch 4 --iters 10 --json bench.json

And the inference cost of experiments side by side (the report's "Beyond the course report" reads it):
python -m seglib bench --experiments deeplabv3plus_pretrained deeplabv3plus_pretrained_best --json results/inference.json
"""
from __future__ import annotations

import platform
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import config as configs
from .data import PascalPartDataset, SeededAugment, default_root
from .evaluate import Predictor, predictor_from_config
from .losses import build_loss
from .models import build_model, normalization
from .runtime import (
    autocast,
    host_description,
    precision_for,
    resolve_device,
    training_memory_format,
)
from .train import _compute_loss
from .transforms import TrainPreset


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time_steps(step, iters: int, warmup: int, device) -> float:
    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        step()
    _sync(device)
    return time.perf_counter() - start


def train_throughput(model_name, crop, batch, iters, device, precision, channels_last, plain=False, warmup=2,
                     guard=True, adjust=None) -> float:
    """Images/s of training steps on random inputs (the data pipeline is measured separately).
    guard=False times channels_last even where training_memory_format refuses it (wrong gradients), and
    adjust(model) changes single layers after the layout is set: scripts/step_timing.py uses both to
    show what the refusal costs and what the alternatives to it would gain."""
    torch.manual_seed(0)
    model = build_model(model_name, 7).to(device).train()
    if plain:
        fmt = torch.contiguous_format
    elif guard:
        fmt = training_memory_format(model, channels_last, device, precision)
    else:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    if adjust:
        adjust(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    images = torch.randn(batch, 3, crop, crop, device=device).contiguous(memory_format=fmt)
    masks = torch.randint(0, 7, (batch, crop, crop), device=device)
    criterion = build_loss("ce")
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16" and not plain)

    def plain_step():
        logits, aux = model(images)
        loss = F.cross_entropy(logits, masks) + 0.4 * F.cross_entropy(aux, masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def seglib_step():
        with autocast(device, precision):
            loss = _compute_loss(model, criterion, images, masks, 0.4)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    seconds = _time_steps(plain_step if plain else seglib_step, iters, warmup, device)
    return batch * iters / seconds


def eval_throughput(model_name, crop, images, device, precision, channels_last=True) -> float:
    """Images/s of whole-image inference (short edge = crop) on real photos."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = build_model(model_name, 7).to(device, memory_format=fmt).eval()
    predictor = Predictor(model, model_name, eval_size=crop, device=device, precision=precision,
                          channels_last=channels_last)
    seconds = _time_steps(lambda: [predictor.predict(img) for img in images], 1, 1, device)
    return len(images) / seconds


def data_throughput(data_root, crop, model_name, n: int = 16) -> float:
    """Decode + augment images/s in one process (= one DataLoader worker)."""
    dataset = PascalPartDataset(data_root, "train")
    mean, std = normalization(model_name)
    augmented = SeededAugment(dataset, TrainPreset(crop, mean, std, (0.5, 2.0)))
    n = min(n, len(dataset))
    augmented[(0, 0)]
    start = time.perf_counter()
    for i in range(n):
        augmented[(i, i)]
    return n / (time.perf_counter() - start)


def run_benchmark(model="deeplabv3plus_r50-d8", crop=256, batch=4, iters=10, device="auto", data=None,
                  precision=None, channels_last=None) -> dict:
    device = resolve_device(device)
    settings = configs.settings_for_model(model)
    precision = precision or precision_for(settings, device)
    channels_last = settings["channels_last"] if channels_last is None else channels_last
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    data_root = data or default_root()
    val = PascalPartDataset(data_root, "val")
    eval_images = [val.load(i)[0] for i in range(min(len(val), 8 if device.type == "cpu" else 50))]
    baseline = train_throughput(model, crop, batch, iters, device, "fp32", False, plain=True)
    fast = train_throughput(model, crop, batch, iters, device, precision, channels_last)
    result = {
        "model": model, "crop": crop, "batch": batch, "iters": iters, "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(), "precision": precision, "channels_last": channels_last,
        "torch": torch.__version__,
        "train_images_per_s": round(fast, 3), "baseline_train_images_per_s": round(baseline, 3),
        "speedup": round(fast / baseline, 2),
        "eval_images_per_s": round(eval_throughput(model, crop, eval_images, device, precision, channels_last), 3),
        "data_images_per_s_per_worker": round(data_throughput(data_root, crop, model), 2),
    }
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    return result


def inference_speed(experiments, profile="paper", data=None, images=20, rounds=3, device="auto") -> dict:
    """Images/s of each experiment's inference as its config sets it (model, evaluation size, precision,
    memory format, test-time augmentation) on the same val photos. The experiments are timed in turn,
    round after round, so that a CPU's drift between hours falls on all of them alike, and the rounds give
    the run-to-run variation the differences are judged against. The weights are random: the arithmetic,
    hence the time, does not depend on them. An experiment with test-time augmentation is also timed
    without it (its plain pass), which is what the augmentation costs."""
    device = resolve_device(device)
    data_root = data or default_root()
    val = PascalPartDataset(data_root, "val")
    photos = [val.load(i)[0] for i in range(min(len(val), images))]
    predictors = {}
    for experiment in experiments:
        config = configs.load(experiment, profile)
        model = build_model(config["model"], val.num_classes, hierarchy=config["hierarchy_weight"] > 0).to(device)
        model = model.to(memory_format=torch.channels_last if config["channels_last"] else torch.contiguous_format)
        timed = {"tta": predictor_from_config(model, config, device)}
        if timed["tta"].flip or timed["tta"].scales != (1.0,):
            timed["plain"] = predictor_from_config(model, config, device, flip=False, scales=(1.0,))
        predictors[experiment] = (config, timed)
    speeds = {(e, k): [] for e, (_, timed) in predictors.items() for k in timed}
    for _, timed in predictors.values():  # warm-up: first calls allocate and pick kernels
        for predictor in timed.values():
            predictor.predict(photos[0])
    bar = tqdm(total=rounds * len(speeds), desc="inference", unit="timing", mininterval=5, ncols=90)
    for _ in range(rounds):
        for experiment, (_, timed) in predictors.items():
            for kind, predictor in timed.items():
                seconds = _time_steps(lambda run=predictor: [run.predict(p) for p in photos], 1, 0, device)
                speeds[experiment, kind].append(round(len(photos) / seconds, 3))
                bar.update()
    bar.close()
    result = {"profile": profile, "device": device.type, "machine": host_description(device),
              "torch": torch.__version__, "images": len(photos), "rounds": rounds, "experiments": {}}
    for experiment, (config, timed) in predictors.items():
        tta = timed["tta"]
        entry = {"model": config["model"], "eval_size": tta.eval_size, "precision": tta.precision,
                 "passes": len(tta.scales) * (2 if tta.flip else 1), "images_per_s": speeds[experiment, "tta"]}
        if "plain" in timed:
            entry["plain_images_per_s"] = speeds[experiment, "plain"]
        result["experiments"][experiment] = entry
        print(f"{experiment:<40} {entry['passes']} pass(es)  {sum(entry['images_per_s']) / rounds:.3f} images/s")
    return result
