"""Losses: cross-entropy, Lovasz-Softmax (SMP's implementation: softmax probabilities, all pixels of
the batch, classes='present') and their sum. build_loss(name) -> callable(logits, target)."""
from __future__ import annotations

import torch
from torch import nn

from .data import IGNORE_INDEX
from .errors import SeglibError

LOSSES = ("ce", "lovasz", "ce+lovasz")


class LovaszSoftmax(nn.Module):
    def __init__(self, ignore_index: int = IGNORE_INDEX):
        super().__init__()
        from segmentation_models_pytorch.losses import LovaszLoss

        self.loss = LovaszLoss(mode="multiclass", per_image=False, ignore_index=ignore_index)

    def forward(self, logits, target):
        # sorting errors in bf16 loses the ranking the Lovasz extension relies on: always fp32
        with torch.autocast(logits.device.type, enabled=False):
            return self.loss(logits.float(), target)


class SumOfLosses(nn.Module):
    def __init__(self, *losses):
        super().__init__()
        self.losses = nn.ModuleList(losses)

    def forward(self, logits, target):
        return sum(loss(logits, target) for loss in self.losses)


def build_loss(name: str, ignore_index: int = IGNORE_INDEX) -> nn.Module:
    ce = lambda: nn.CrossEntropyLoss(ignore_index=ignore_index)
    if name == "ce":
        return ce()
    if name == "lovasz":
        return LovaszSoftmax(ignore_index)
    if name == "ce+lovasz":
        return SumOfLosses(ce(), LovaszSoftmax(ignore_index))
    raise SeglibError(f"unknown loss {name!r}; choose one of: {', '.join(LOSSES)}")
