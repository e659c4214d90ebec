"""Losses: cross-entropy, Lovasz-Softmax (SMP's implementation: softmax probabilities, all pixels of
the batch, classes='present') and their sum. build_loss(name) -> callable(logits, target)."""
from __future__ import annotations

import torch
from torch import nn

from .data import IGNORE_INDEX
from .errors import SeglibError

LOSSES = ("ce", "lovasz", "ce+lovasz")
LOSS_NAMES = {"ce": "cross-entropy", "lovasz": "Lovász-Softmax", "ce+lovasz": "cross-entropy + Lovász-Softmax"}
# The body hierarchy of human parsing (Hierarchical Human Parsing, Wang et al. CVPR 2020): parts ->
# upper / lower body -> person. Parts are matched by the readable names of classes.txt.
UPPER_BODY = ("head", "torso", "upper-arms", "lower-arms")
LOWER_BODY = ("upper-legs", "lower-legs")


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


def objective(config: dict) -> str:
    """In words, the loss a run of this config trains on and logs (train._compute_loss): the decode head's
    loss, plus aux_weight x the auxiliary head's cross-entropy, plus hierarchy_weight x the coarse heads'."""
    terms = [LOSS_NAMES.get(config["loss"], config["loss"])]
    if config.get("aux_weight"):
        terms.append(f"{config['aux_weight']:g} × the auxiliary head's cross-entropy")
    if config.get("hierarchy_weight"):
        terms.append(f"{config['hierarchy_weight']:g} × the body-hierarchy heads' cross-entropy")
    return " + ".join(terms)


def hierarchy_luts(class_names: list[str], ignore_index: int = IGNORE_INDEX) -> dict[str, torch.Tensor]:
    """Lookup tables from a part mask's values to the coarse levels' labels: "full_body" (0 background,
    1 person) and "half_body" (0 background, 1 upper body, 2 lower body); the ignore label stays ignored."""
    unknown = [n for n in class_names[1:] if n not in UPPER_BODY + LOWER_BODY]
    if class_names[0] != "background" or unknown:
        raise SeglibError(f"the body hierarchy needs the report's classes (background first, then "
                          f"{', '.join(UPPER_BODY + LOWER_BODY)}); got {', '.join(unknown or class_names[:1])}")
    full, half = torch.full((256,), ignore_index, dtype=torch.long), torch.full((256,), ignore_index, dtype=torch.long)
    for index, name in enumerate(class_names):
        full[index] = int(index != 0)
        half[index] = 0 if index == 0 else (1 if name in UPPER_BODY else 2)
    return {"full_body": full, "half_body": half}


class HierarchyLoss(nn.Module):
    """Cross-entropy of the full-body and half-body heads against labels derived from the part mask, summed."""

    def __init__(self, class_names: list[str], ignore_index: int = IGNORE_INDEX):
        super().__init__()
        self.ignore_index = ignore_index
        for level, lut in hierarchy_luts(class_names, ignore_index).items():
            self.register_buffer(f"lut_{level}", lut, persistent=False)

    def forward(self, coarse: dict, target: torch.Tensor) -> torch.Tensor:
        return sum(nn.functional.cross_entropy(logits.float(), getattr(self, f"lut_{level}").to(target.device)[target],
                                               ignore_index=self.ignore_index)
                   for level, logits in coarse.items())
