"""Whole-image inference (resize short edge, pad to the stride, crop back, optional flip and
multi-scale test-time augmentation with averaged probabilities), split evaluation, a run's scores
(metrics.json, per_image.csv) and the learning curve's points on a fixed val subset."""
from __future__ import annotations

import collections
import contextlib
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from . import config as configs
from . import metrics
from .data import PascalPartDataset
from .errors import SeglibError
from .models import STRIDE, build_model, normalization
from .runtime import (
    autocast,
    host_description,
    note_once,
    precision_for,
    resolve_device,
)


class Predictor:
    """probabilities(image) -> (C, H, W) softmax averaged over scales (and flips), at the image's size;
    with_plain=True also returns the plain pass's (scale 1, unflipped) from the same forward passes, None
    without test-time augmentation or without scale 1."""

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

    @property
    def has_plain_pass(self) -> bool:
        """Test-time augmentation whose passes include the plain one (scale 1, unflipped)."""
        return (self.flip or self.scales != (1.0,)) and 1.0 in self.scales

    @torch.inference_mode()
    def probabilities(self, image, with_plain: bool = False):
        image = (image if isinstance(image, torch.Tensor) else torch.from_numpy(np.asarray(image))).to(self.device)
        x = image.permute(2, 0, 1)[None].float().div_(255).sub_(self.mean).div_(self.std)
        height, width = x.shape[-2:]
        total, plain = 0, None
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
            if scale == 1.0 and self.has_plain_pass:
                plain = probs[0]
        total = total / (len(self.scales) * (2 if self.flip else 1))
        return (total, plain) if with_plain else total

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


def _iteration(checkpoint: Path):
    try:
        return torch.load(checkpoint, map_location="cpu", weights_only=False).get("iteration", "?")
    except Exception:  # noqa: BLE001 (only for a message)
        return "?"


def load_run(run_dir, device="auto", checkpoint: str = "final.pt"):
    """(model in eval mode on device, resolved config) from a run folder."""
    run_dir = Path(run_dir)
    config = configs.read_run_config(run_dir)
    path = run_dir / checkpoint
    if not path.is_file():
        if checkpoint == "final.pt" and (run_dir / "last.pt").is_file():
            raise SeglibError(f"{run_dir}: unfinished (no final.pt, last.pt at iteration {_iteration(run_dir / 'last.pt')} of "
                              f"{config['iterations']}); finish it with `python -m seglib train ... --resume`, or pass "
                              "--checkpoint last.pt to score it as it is")
        raise SeglibError(f"{path}: no such checkpoint; train first or pass the right --run")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        device = resolve_device(device)
        model = build_model(config["model"], state["num_classes"], hierarchy=config.get("hierarchy_weight", 0) > 0)
        model.load_state_dict(state["model"])
    except SeglibError:
        raise
    except Exception as exc:  # noqa: BLE001 (any unreadable file: one line for the user)
        raise SeglibError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {str(exc)[:120]}); "
                          "retrain or point --run at another run") from None
    if "iteration" in state and state["iteration"] < config["iterations"]:
        note_once(f"{run_dir}: scoring an unfinished run ({path.name} at iteration {state['iteration']} of {config['iterations']})")
    model = model.to(device).eval()
    if config["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    return model, config, state["class_names"]


def sum_across_ranks(arrays, device) -> None:
    """Sum numpy count arrays over the ranks in place, reducing on the model's device: NCCL (CUDA) takes
    no CPU tensors, gloo takes both."""
    for array in arrays:
        t = torch.from_numpy(array).to(device)
        dist.all_reduce(t)
        array[...] = t.cpu().numpy()


@contextlib.contextmanager
def no_autotune():
    """cuDNN's autotuner off: photos differ in size, and it would time every convolution anew for each new
    shape (on a GPU that costs more than the forward pass itself); restored afterwards for training's fixed crops."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def border_measures(pred: np.ndarray, target: np.ndarray, num_classes: int) -> tuple:
    """One image's boundary-band counts, contour-match counts and roughness ratios (numpy and scipy)."""
    return (*metrics.boundary_counts(pred, target, num_classes), metrics.boundary_f_counts(pred, target, num_classes),
            metrics.roughness_ratio(pred, target, num_classes))


def border_workers(device: torch.device, loader_workers: int) -> int:
    """Processes for the border measures: none on a CPU, whose cores the model's threads hold; on a GPU up
    to 8 of the cores the loader leaves. They cost tens of milliseconds an image on one core, several times
    a GPU's forward pass: inline they held 500 val images to 78 s on an H200 (docs/performance.md)."""
    if device.type != "cuda":
        return 0
    spare = (os.cpu_count() or 1) - loader_workers - 1
    return min(8, spare) if spare >= 2 else 0


@no_autotune()
def evaluate_dataset(predictor: Predictor, dataset: PascalPartDataset, max_images=None, boundary=False,
                     progress=True, num_workers=2, indices=None, boundary_workers=None) -> dict:
    """Accumulate the confusion matrix (and, with boundary=True, boundary counts) over a split (its
    first max_images, or the given indices), and each image's own mIoU ({id: mIoU}, "per_image").
    Under torch.distributed each rank takes every world_size-th image and the counts are summed on the
    model's device (NCCL takes no CPU tensors). With test-time augmentation that includes scale 1, the
    plain pass's confusion matrix comes from the same forward passes ("confusion_plain"): what the
    augmentation gave, at no extra cost.
    The border measures (boundary=True) run in `boundary_workers` processes beside the forward passes
    (None: border_workers' choice), with the same sums as inline.
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
    conf_plain = np.zeros((c, c), np.int64) if predictor.has_plain_pass else None
    b_inter, b_union = np.zeros(c, np.int64), np.zeros(c, np.int64)
    f_counts = np.zeros((c, 4), np.int64)
    rough_logs, rough_n = np.zeros(c, np.float64), np.zeros(c, np.int64)
    per_image = {}

    def add(measures):  # one image's border measures into the split's sums
        inter, union, f, rough = measures
        seen = np.isfinite(rough)
        for total, part in ((b_inter, inter), (b_union, union), (f_counts, f), (rough_n, seen)):
            np.add(total, part, out=total)
        rough_logs[seen] += np.log(rough[seen])

    if boundary_workers is None:
        boundary_workers = border_workers(predictor.device, num_workers)
    pool = (ProcessPoolExecutor(boundary_workers, mp_context=multiprocessing.get_context("spawn"))
            if boundary and boundary_workers else None)
    pending = collections.deque()
    bar = tqdm(loader, desc=f"evaluate {dataset.split}", disable=not progress or rank > 0, mininterval=5,
               dynamic_ncols=False, ncols=90)
    try:
        for index, (image, mask) in zip(indices[rank::world], bar):
            probs, plain = predictor.probabilities(image, with_plain=True)
            pred = probs.argmax(0)
            if conf_plain is not None:
                conf_plain += metrics.confusion_matrix(plain.argmax(0), mask.to(pred.device), c)
            image_conf = metrics.confusion_matrix(pred, mask.to(pred.device), c)
            conf += image_conf
            per_image[dataset.ids[index]] = metrics.image_miou(image_conf)
            if boundary:
                args = (pred.cpu().numpy().astype(np.uint8), mask.numpy().astype(np.uint8), c)
                if pool is None:
                    add(border_measures(*args))
                else:  # in image order, so that the float sums do not depend on which process finished first
                    pending.append(pool.submit(border_measures, *args))
                    while pending and pending[0].done():
                        add(pending.popleft().result())
        for future in pending:
            add(future.result())
    finally:  # an error mid-split does not leave the workers behind
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    if world > 1:
        sum_across_ranks([a for a in (conf, conf_plain, b_inter, b_union, f_counts, rough_logs, rough_n) if a is not None],
                         predictor.device)
        parts = [None] * world
        dist.all_gather_object(parts, per_image)
        per_image = {k: v for part in parts for k, v in part.items()}
    result = {"confusion": conf, "images": n, "per_image": {i: per_image[i] for i in sorted(per_image)}}
    if conf_plain is not None:
        result["confusion_plain"] = conf_plain
    if boundary:
        with np.errstate(divide="ignore", invalid="ignore"):
            result["boundary_iou"] = np.where(b_union > 0, b_inter / np.maximum(b_union, 1), np.nan)
        result["roughness"] = metrics.geometric_mean(rough_logs, rough_n)
        result["boundary_f"] = metrics.boundary_f_score(f_counts)
    return result


def curve_indices(size: int, count: int) -> list[int]:
    """A fixed subset of a split for the learning curve: `count` ids spread evenly over it (the
    split files are sorted by id, so this is every (size/count)-th image), the same at every point."""
    if count >= size:
        return list(range(size))
    return sorted({round(i * (size - 1) / max(count - 1, 1)) for i in range(count)})


def learning_curve_point(model, config: dict, val_set: PascalPartDataset, indices, device, iteration: int,
                         history: list, previous: int) -> dict:
    """Val mIoU of the model as it is now on the curve's fixed subset, with the mean training loss
    since the previous point; the model goes back to training mode."""
    start = time.perf_counter()
    model.eval()
    result = evaluate_dataset(predictor_from_config(model, config, device), val_set, indices=indices,
                              progress=False, num_workers=0)
    model.train()
    losses = [h["loss"] for h in history if previous < h["iteration"] <= iteration]
    score = metrics.scores(result["confusion"], val_set.class_names)
    return {"iteration": iteration, "loss": round(float(np.mean(losses)), 4) if losses else float("nan"),
            "mIoU": round(score["mIoU"], 2), "images": len(indices), "seconds": round(time.perf_counter() - start, 1)}


def write_scores(run_dir: Path, score: dict, per_image: dict) -> None:
    """metrics.json, and per_image.csv (each val image's own mIoU, for the percentile figure)."""
    (run_dir / "metrics.json").write_text(json.dumps(score, indent=2))
    pd.DataFrame({"id": list(per_image), "mIoU": [round(v, 2) for v in per_image.values()]}).to_csv(
        run_dir / "per_image.csv", index=False)


def confusion_record(conf, class_names: list[str]) -> dict:
    """The pixel counts themselves for metrics.json (rows ground truth, columns prediction, classes.txt's
    order): where each class's pixels went, which the scores cannot say (seglib.confusion reads them)."""
    return {"classes": list(class_names), "pixels": np.asarray(conf).astype(np.int64).tolist()}


def score_model(model, config: dict, data_root, device, progress: bool = True, num_workers: int = 2) -> dict:
    """The val scores of a model under the config's evaluation settings, with the boundary measures
    of the border analysis and each image's mIoU ("per_image") from the same pass (so it never predicts
    the split a second time); with test-time augmentation also the plain pass's scores ("without_tta")."""
    val_set = PascalPartDataset(data_root, config["val_split"])
    predictor = predictor_from_config(model, config, device)
    start = time.perf_counter()
    result = evaluate_dataset(predictor, val_set, config["max_eval_images"], boundary=True, progress=progress,
                              num_workers=num_workers)
    score = metrics.scores(result["confusion"], val_set.class_names)
    score["confusion"] = confusion_record(result["confusion"], val_set.class_names)
    score["boundary"] = metrics.boundary_scores(result, val_set.class_names)
    if "confusion_plain" in result:
        score["without_tta"] = metrics.scores(result["confusion_plain"], val_set.class_names)
    score.update(images=result["images"], split=config["val_split"], eval_seconds=round(time.perf_counter() - start, 1),
                 eval_host=host_description(device), per_image=result["per_image"])
    return score


def rescore(config: dict, data_root, run_dir, progress: bool = True) -> dict:
    """Evaluate a finished run again under new evaluation settings (test-time flip or scales, eval
    size): the weights stay, config.yaml and metrics.json take the new settings and scores."""
    run_dir = Path(run_dir)
    data_root = configs.run_data(run_dir, data_root, same=True)
    old = json.loads((run_dir / "metrics.json").read_text())
    model, _, _ = load_run(run_dir, config["device"])
    device = next(model.parameters()).device
    score = score_model(model, config, data_root, device, progress=progress)
    score.update({k: old[k] for k in ("train_seconds", "train_images", "device", "host", "world_size", "precision",
                                           "channels_last")
                  if k in old})
    configs.save({**config, "data": str(Path(data_root).resolve())}, run_dir / "config.yaml")
    write_scores(run_dir, score, score.pop("per_image"))
    return score
