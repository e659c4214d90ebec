"""Figures: colour-coded masks, overlays, the class legend, loss curves, per-class bars and the
report's Figure 5 (image | ground truth | one column per model)."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch
from PIL import Image

from .data import IGNORE_INDEX, report_order

# one fixed colour per readable class name, so every figure agrees whatever classes.txt's order
CLASS_COLORS = {
    "background": (0, 0, 0), "head": (230, 25, 75), "torso": (60, 180, 75), "upper-arms": (255, 225, 25),
    "lower-arms": (0, 130, 200), "upper-legs": (245, 130, 48), "lower-legs": (145, 30, 180),
}
EXTRA_COLORS = [(70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]
# figure files written per run and per border close-up; the pipeline prunes those no longer in the study
PREDICTIONS_PATTERN, CLOSEUP_PATTERN = "predictions_*.png", "borders_closeup_*.png"


def predictions_figure_name(run_name: str) -> str:
    """Named by the run folder, so two runs of one experiment and seed (two profiles) keep their own."""
    return f"predictions_{run_name}.png"


def closeup_figure_name(image_id: str) -> str:
    return f"borders_closeup_{image_id}.png"


def palette(class_names: list[str]) -> np.ndarray:
    """(256, 3) uint8 lookup table: class index -> colour; the ignore label is white."""
    lut = np.zeros((256, 3), np.uint8)
    extra = iter(EXTRA_COLORS * 8)
    for i, name in enumerate(class_names):
        lut[i] = CLASS_COLORS.get(name) or next(extra)
    lut[IGNORE_INDEX] = (255, 255, 255)
    return lut


def colorize(mask: np.ndarray, class_names: list[str]) -> np.ndarray:
    return palette(class_names)[np.asarray(mask, dtype=np.int64) & 255]


def overlay(image: np.ndarray, mask: np.ndarray, class_names: list[str], alpha: float = 0.55) -> np.ndarray:
    """The photo with part colours blended in; background pixels keep the photo."""
    colored = colorize(mask, class_names).astype(np.float32)
    out = image.astype(np.float32)
    fg = (np.asarray(mask) != 0)[..., None]
    out = np.where(fg, (1 - alpha) * out + alpha * colored, out)
    return out.clip(0, 255).astype(np.uint8)


def legend_handles(class_names: list[str]):
    lut = palette(class_names)
    return [Patch(color=lut[i] / 255, label=class_names[i]) for i in report_order(class_names)]


def add_legend(fig, class_names: list[str]) -> None:
    fig.legend(handles=legend_handles(class_names), loc="lower center", ncol=len(class_names),
               frameon=False, fontsize=9, bbox_to_anchor=(0.5, -0.02))


def save_prediction(image: np.ndarray, pred: np.ndarray, class_names: list[str], stem: Path) -> list[Path]:
    """STEM_mask.png (colour-coded classes) and STEM_overlay.png."""
    paths = [Path(f"{stem}_mask.png"), Path(f"{stem}_overlay.png")]
    Image.fromarray(colorize(pred, class_names)).save(paths[0])
    Image.fromarray(overlay(image, pred, class_names)).save(paths[1])
    return paths


def image_grid(images: list[np.ndarray], masks: list[np.ndarray], class_names: list[str], titles=None, cols=4):
    """Photos with their masks overlaid."""
    rows = int(np.ceil(len(images) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k, (img, msk) in enumerate(zip(images, masks)):
        ax = axes.flat[k]
        ax.imshow(overlay(img, msk, class_names))
        if titles:
            ax.set_title(titles[k], fontsize=8)
    add_legend(fig, class_names)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def comparison_figure(images, ground_truths, predictions: dict[str, list], class_names, ids=None):
    """Figure 5: one row per image: original | ground truth | one column per model."""
    columns = ["image", "ground truth"] + list(predictions)
    fig, axes = plt.subplots(len(images), len(columns), figsize=(2.4 * len(columns), 2.2 * len(images)), squeeze=False)
    for r, (img, gt) in enumerate(zip(images, ground_truths)):
        panels = [img, colorize(gt, class_names)] + [colorize(p[r], class_names) for p in predictions.values()]
        for c, panel in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(panel)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=8)
        if ids:
            axes[r, 0].set_ylabel(ids[r], fontsize=7)
    add_legend(fig, class_names)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def loss_curve(histories: dict[str, list[dict]]):
    """Training loss (and lr) against iteration, one line per run."""
    fig, (ax, ax_lr) = plt.subplots(1, 2, figsize=(10, 3.2))
    for label, history in histories.items():
        its = [h["iteration"] for h in history]
        ax.plot(its, [h["loss"] for h in history], label=label, lw=1)
        ax_lr.plot(its, [h["lr"] for h in history], label=label, lw=1)
    ax.set(xlabel="iteration", ylabel="training loss", title="loss")
    ax_lr.set(xlabel="iteration", ylabel="learning rate", title="poly schedule")
    if len(histories) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def per_class_bars(table, value_label: str = "IoU (%)", errors=None, title=None):
    """Grouped bars: table is a pandas DataFrame, rows = classes, columns = runs/models."""
    ax = table.plot.bar(figsize=(10, 3.6), width=0.8, yerr=errors, capsize=2, rot=20)
    ax.set_ylabel(value_label)
    ax.set_xlabel("")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8, ncol=min(4, table.shape[1]))
    ax.grid(axis="y", alpha=0.3)
    ax.figure.tight_layout()
    return ax.figure


def person_box(mask: np.ndarray, size: int = 96) -> tuple[slice, slice]:
    """A size x size window centred on the annotated parts (for border close-ups)."""
    ys, xs = np.nonzero((mask != 0) & (mask != IGNORE_INDEX))
    h, w = mask.shape
    cy, cx = (int(ys.mean()), int(xs.mean())) if len(ys) else (h // 2, w // 2)
    size = min(size, h, w)
    top, left = min(max(0, cy - size // 2), h - size), min(max(0, cx - size // 2), w - size)
    return slice(top, top + size), slice(left, left + size)


def border_closeups(image, ground_truth, predictions: dict[str, np.ndarray], class_names, size: int = 96):
    """Zoomed crops around the person: photo, ground truth and each model's prediction, with the
    part borders drawn, to compare how ragged each model's borders are."""
    from scipy import ndimage

    rows, cols = person_box(ground_truth, size)
    panels = {"image": image[rows, cols], "ground truth": ground_truth[rows, cols],
              **{k: v[rows, cols] for k, v in predictions.items()}}
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.8))
    for ax, (title, panel) in zip(axes, panels.items()):
        if title == "image":
            ax.imshow(panel)
        else:
            ax.imshow(overlay(image[rows, cols], panel, class_names, alpha=0.6))
            edges = panel != ndimage.grey_erosion(panel, size=(3, 3))
            ax.imshow(np.ma.masked_where(~edges, edges), cmap="gray_r", alpha=0.9, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return fig


def formula_figure(lines: list[str], fontsize: int = 13):
    """Math rendered by matplotlib's mathtext: an image, so it reads in the offline HTML and the PDF."""
    fig = plt.figure(figsize=(8, 0.55 * len(lines)))
    ax = fig.add_axes((0, 0, 1, 1))  # the inline backend skips figures without axes
    ax.axis("off")
    for i, line in enumerate(lines):
        ax.text(0.02, 1 - (i + 0.7) / len(lines), line, fontsize=fontsize, transform=ax.transAxes)
    return fig
