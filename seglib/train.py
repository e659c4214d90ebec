"""Iteration-based training (the report's recipe: SGD, poly lr by iteration, CE + 0.4 x auxiliary),
on CUDA or CPU, single process or under torchrun (DDP, gloo on CPU / nccl on CUDA).

Resumable exactly: the data stream is a function of (seed, position), augmentations are seeded per
sample, and checkpoints carry model, optimizer and RNG state, so a killed run continued with
--resume ends with the same weights as an uninterrupted one (on CPU).
"""
from __future__ import annotations

import csv
import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from . import config as configs
from .data import PascalPartDataset, SeededAugment, StreamBatchSampler
from .errors import SeglibError
from .evaluate import (
    curve_indices,
    learning_curve_point,
    rescore,
    score_model,
    write_scores,
)
from .losses import HierarchyLoss, build_loss
from .models import build_model, normalization
from .runtime import (
    autocast,
    host_description,
    note_once,
    precision_for,
    resolve_device,
    training_memory_format,
)
from .transforms import TrainPreset


class TrainingDiverged(SeglibError):
    pass


def poly_lr(config: dict, iteration: int) -> float:
    """MMSeg's poly schedule: (lr - min_lr) * (1 - it/max)^power + min_lr."""
    frac = 1 - iteration / config["iterations"]
    return (config["lr"] - config["min_lr"]) * frac ** config["power"] + config["min_lr"]


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def save_checkpoint(path: Path, **state) -> None:
    """Write, then rename: a run killed mid-save never leaves a truncated checkpoint."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def setup_distributed(device_name: str):
    """(rank, world, device); world > 1 when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, resolve_device(device_name)
    device = resolve_device(device_name)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank()
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    return rank, world, device


def loader_workers(setting, device: torch.device) -> int:
    """'auto': 2 on CPU (the compute threads need the cores), enough to feed a GPU otherwise."""
    if setting != "auto":
        return setting
    return 2 if device.type == "cpu" else max(2, min(8, (os.cpu_count() or 2) - 1))


def write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _compute_loss(model, criterion, images, masks, aux_weight, hierarchy=None, hierarchy_weight=0.0):
    """The decode head's loss + aux_weight x CE of the auxiliary head (+ hierarchy_weight x the coarse
    body levels' CE when the model has those heads)."""
    outputs = model(images)
    logits, aux = outputs[0], outputs[1]
    loss = criterion(logits, masks)
    if aux_weight:
        loss = loss + aux_weight * F.cross_entropy(aux.float(), masks, ignore_index=255)
    if hierarchy_weight:
        loss = loss + hierarchy_weight * hierarchy(outputs[2], masks)
    return loss


def train(config: dict, data_root, run_dir, resume: bool = False, progress: bool = True) -> dict:
    """Train one experiment into run_dir, evaluate it on the val split, return the scores."""
    run_dir = Path(run_dir)
    rank, world, device = setup_distributed(config["device"])
    is_main = rank == 0
    checkpoint_path = run_dir / "last.pt"
    if resume and checkpoint_path.is_file():
        changed = configs.changed_settings(run_dir, config)
        if changed:
            raise SeglibError(f"{run_dir / 'config.yaml'}: --resume with different settings "
                              f"({configs.describe_changes(changed)}); "
                              "resume with the same settings or train into a new --out")
    elif (run_dir / "final.pt").exists() and not resume:
        raise SeglibError(f"{run_dir}: already holds a finished run; choose another --out or pass --resume")
    seed_everything(config["seed"], config["deterministic"])
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not config["deterministic"]
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    dataset = PascalPartDataset(data_root, config["train_split"])
    val_set = PascalPartDataset(data_root, config["val_split"])
    curve_ids = curve_indices(len(val_set) if config["max_eval_images"] is None
                              else min(len(val_set), config["max_eval_images"]), config["curve_images"])
    precision = precision_for(config, device)  # after the data checks: a data error stays the only line
    state = torch.load(checkpoint_path, map_location="cpu", weights_only=False) if resume and checkpoint_path.is_file() else None
    if state and state.get("precision", precision) != precision:
        # one run, one precision: on another machine (with or without native bf16) it goes on as it began,
        # so that its record's precision is the one every iteration trained in
        note_once(f"{checkpoint_path}: trained in {state['precision']} so far; it goes on in {state['precision']}, "
                  f"not the {precision} this machine would choose")
        precision = state["precision"]
    mean, std = normalization(config["model"])
    train_set = SeededAugment(dataset, TrainPreset(config["crop_size"], mean, std, tuple(config["scale_range"]),
                                                     resize=config["train_size"]))
    model = build_model(config["model"], dataset.num_classes, config["weights"], hierarchy=config["hierarchy_weight"] > 0)
    memory_format = training_memory_format(model, config["channels_last"], device, precision)
    model = model.to(device, memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=config["lr"], momentum=config["momentum"],
                                weight_decay=config["weight_decay"])
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    start, history, curve = 0, [], []
    if state:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"])
        start, history, curve = state["iteration"], state["history"], state.get("curve", [])
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        # the data folder is part of the run's record: evaluate, predict and the notebooks default to it
        configs.save({**config, "data": str(dataset.root.resolve())}, run_dir / "config.yaml")
    train_model = model
    if world > 1:
        if device.type == "cuda":
            train_model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        train_model = DistributedDataParallel(train_model, device_ids=[device.index] if device.type == "cuda" else None)
    if config["compile"] and device.type == "cuda":
        train_model = torch.compile(train_model)
    criterion = build_loss(config["loss"])
    hierarchy = HierarchyLoss(dataset.class_names) if config["hierarchy_weight"] else None

    workers = loader_workers(config["num_workers"], device)
    loader = torch.utils.data.DataLoader(
        train_set, batch_sampler=StreamBatchSampler(len(dataset), config["batch_size"], config["seed"], start,
                                                    config["iterations"], rank, world),
        num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=False,
        generator=torch.Generator().manual_seed(config["seed"]),  # else the loader draws from the global RNG
        prefetch_factor=4 if workers else None)
    train_model.train()
    bar = tqdm(total=config["iterations"], initial=start, desc=config["experiment"], disable=not (progress and is_main),
               mininterval=1 if sys.stderr.isatty() else 15, ncols=100, unit="it")
    try:  # the bar ends its line before any error is printed, so the error stands on a line of its own
        last_finite = (None, None)
        clock = time.perf_counter()
        elapsed = history[-1]["seconds"] if history else 0.0
        for iteration, (images, masks) in enumerate(loader, start + 1):
            lr = poly_lr(config, iteration - 1)
            for group in optimizer.param_groups:
                group["lr"] = lr
            images = images.to(device, non_blocking=True).contiguous(memory_format=memory_format)
            masks = masks.to(device, non_blocking=True)
            with autocast(device, precision):
                loss = _compute_loss(train_model, criterion, images, masks, config["aux_weight"], hierarchy,
                                     config["hierarchy_weight"])
            value = loss.item()
            if not math.isfinite(value):
                it, good = last_finite
                raise TrainingDiverged(
                    f"iteration {iteration}: loss is {value} (last finite loss {good} at iteration {it}); "
                    f"try --set precision_{device.type}=fp32 or a lower lr (now {config['lr']})")
            last_finite = (iteration, round(value, 4))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            bar.update(1)
            if iteration % config["log_every"] == 0 or iteration == config["iterations"]:
                now = time.perf_counter()
                elapsed, clock = elapsed + now - clock, now
                history.append({"iteration": iteration, "loss": value, "lr": lr, "seconds": round(elapsed, 2)})
                bar.set_postfix(loss=f"{value:.3f}", lr=f"{lr:.2e}", refresh=False)
            if config["curve_every"] and (iteration % config["curve_every"] == 0 or iteration == config["iterations"]):
                point = learning_curve_point(model, config, val_set, curve_ids, device, iteration, history,
                                             curve[-1]["iteration"] if curve else 0)
                curve.append(point)
                clock += point["seconds"]  # evaluation time is not training time
                if is_main:
                    bar.write(f"[seglib] iteration {iteration}: val mIoU {point['mIoU']:.2f} on {point['images']} "
                              f"images, mean loss {point['loss']:.3f}")
            if is_main and (iteration % config["checkpoint_every"] == 0 or iteration == config["iterations"]):
                save_checkpoint(checkpoint_path, model=model.state_dict(), optimizer=optimizer.state_dict(),
                                scaler=scaler.state_dict(), rng=torch.get_rng_state(), iteration=iteration,
                                history=history, curve=curve, num_classes=dataset.num_classes, class_names=dataset.class_names,
                                precision=precision)
    finally:
        bar.close()
    train_seconds = history[-1]["seconds"] if history else 0.0
    if is_main:
        save_checkpoint(run_dir / "final.pt", model=model.state_dict(), num_classes=dataset.num_classes,
                        class_names=dataset.class_names)
        write_csv(run_dir / "log.csv", history)
        write_csv(run_dir / "curve.csv", curve)

    score = score_model(model, config, data_root, device, progress=progress, num_workers=min(workers, 2))
    score.update(train_seconds=round(train_seconds, 1), train_images=len(dataset), device=str(device.type),
                 host=host_description(device), world_size=world,
                 precision=precision, channels_last=memory_format == torch.channels_last)
    per_image = score.pop("per_image")
    if is_main:
        write_scores(run_dir, score, per_image)
    if world > 1:
        dist.barrier()
    return score


def stale_run_error(run_dir, config: dict) -> SeglibError | None:
    """An error when RUN_DIR holds a finished run whose training settings differ from `config` (a
    changed profile or experiment file): its numbers must not be reported under the new settings.
    Evaluation settings may differ: ensure_trained scores the run again."""
    run_dir = Path(run_dir)
    if not (run_dir / "final.pt").is_file():
        return None
    changed = {k: v for k, v in configs.changed_settings(run_dir, config).items() if k not in configs.EVAL_KEYS}
    if not changed:
        return None
    return SeglibError(f"{run_dir}: finished with other settings ({configs.describe_changes(changed)}); "
                       "retrain it with --force (FORCE=1 for make, force=True in the notebook) or choose another run folder")


def ensure_trained(config: dict, data_root, run_dir, force: bool = False, progress: bool = True) -> dict:
    """The run's scores: trains (resuming from last.pt if there is one) unless RUN_DIR already holds
    this finished run, which is scored again if only its evaluation settings changed; force retrains
    from scratch."""
    run_dir = Path(run_dir)
    if force and run_dir.exists():
        shutil.rmtree(run_dir)
    error = stale_run_error(run_dir, config)
    if error:
        raise error
    if configs.is_complete(run_dir):
        changed = configs.changed_settings(run_dir, config)  # evaluation settings only, after the check above
        if changed:
            print(f"[seglib] {run_dir}: scoring again ({configs.describe_changes(changed)})", flush=True)
            return rescore(config, data_root, run_dir, progress=progress)
        return json.loads((run_dir / "metrics.json").read_text())
    return train(config, data_root, run_dir, resume=(run_dir / "last.pt").is_file(), progress=progress)
