"""Train and eval presets (torchvision references/segmentation style) on numpy image/mask pairs.

Train, as in the report: resize so the short edge is S (optionally times a random scale), random
C x C crop padded with the ignore label, horizontal flip p=0.5, per-encoder normalisation. The report
had S = C; a larger S keeps thin parts at a higher resolution for the price of a C x C step.
Masks are only ever resized with nearest neighbour (tv_tensors.Mask makes v2 do that).
"""
from __future__ import annotations

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from .data import IGNORE_INDEX

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TF_MEAN, TF_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)  # TF-style EfficientNet weights expect [-1, 1]


def to_tensors(image: np.ndarray, mask: np.ndarray):
    img = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1))
    return img, tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(mask)))


class TrainPreset:
    def __init__(self, crop_size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD, scale_range=(1.0, 1.0), flip_prob=0.5,
                 resize: int | None = None):
        low, high = (round((resize or crop_size) * s) for s in scale_range)
        resize = v2.Resize(low, antialias=True) if low == high else v2.RandomResize(low, high + 1, antialias=True)
        self.transforms = v2.Compose([
            resize,
            v2.RandomCrop(crop_size, pad_if_needed=True, fill={tv_tensors.Image: 0, tv_tensors.Mask: IGNORE_INDEX}),
            v2.RandomHorizontalFlip(flip_prob),
            v2.ToDtype({tv_tensors.Image: torch.float32, tv_tensors.Mask: torch.int64}, scale=True),
            v2.Normalize(mean, std),
        ])

    def __call__(self, image: np.ndarray, mask: np.ndarray):
        img, msk = self.transforms(*to_tensors(image, mask))
        return img.as_subclass(torch.Tensor), msk.as_subclass(torch.Tensor)


class EvalPreset:
    """Normalise only: evaluation resizes inside seglib.evaluate so scores are at the mask's own size."""

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        self.transforms = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])

    def __call__(self, image: np.ndarray, mask: np.ndarray):
        img, msk = to_tensors(image, mask)
        return self.transforms(img).as_subclass(torch.Tensor), msk.as_subclass(torch.Tensor)
