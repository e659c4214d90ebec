"""Pictures of photos and their masks: the class colours, overlays, the data notebook's image grid, the
report's Figure 5 (photo | ground truth | one column per model, masks over the photo), border close-ups and
the predicted masks `seglib predict` saves. Charts of numbers are in seglib.plots."""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch
from PIL import Image

from .data import IGNORE_INDEX, report_order
from .plots import FONT, PAGE_HEIGHT, PAGE_WIDTH

# one fixed colour per readable class name, so every figure agrees whatever classes.txt's order
CLASS_COLORS = {
    "background": (0, 0, 0), "head": (230, 25, 75), "torso": (60, 180, 75), "upper-arms": (255, 225, 25),
    "lower-arms": (0, 130, 200), "upper-legs": (245, 130, 48), "lower-legs": (145, 30, 180),
}
EXTRA_COLORS = [(70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]


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


def panel_inches(nrows: int, ncols: int, aspect: float, margin=(0.4, 0.6), largest: float = 2.0) -> float:
    """Width of each panel of a grid of nrows x ncols panels `aspect` (height / width) times as tall as
    wide, so that the grid and its margins (labels, legend) fit the page."""
    return min(largest, (PAGE_WIDTH - margin[0]) / ncols, (PAGE_HEIGHT - margin[1]) / (nrows * aspect))


def fit_label(label: str, inches: float) -> str:
    """A row label (drawn sideways) broken after ': ', then also after '_', while a line of it would run
    past the row's height into the next row's (a landscape photo fills about 0.8 of it)."""
    for step in (lambda text: text, lambda text: text.replace(": ", ":\n"), lambda text: text.replace("_", "_\n")):
        label = step(label)
        if max(map(len, label.split("\n"))) * 0.65 * FONT / 72 <= 0.8 * inches:
            break
    return label


def column_title(ax, title: str, inches: float) -> None:
    """A grid column's title wrapped to its panel's width: five model names on one line each overlapped."""
    ax.set_title(textwrap.fill(title, max(8, int(inches * 17))), fontsize=FONT)


def add_legend(fig, class_names: list[str], fontsize: float = 9) -> None:
    """The class colours under the figure, in as many rows as keep them within its width (a legend wider
    than the figure widens the saved image, and the page then shrinks all of it)."""
    per_entry = 1.2 * fontsize / 9  # inches a swatch and a class name take
    ncol = max(1, min(len(class_names), int(fig.get_size_inches()[0] / per_entry)))
    fig.legend(handles=legend_handles(class_names), loc="lower center", ncol=ncol,
               frameon=False, fontsize=fontsize, bbox_to_anchor=(0.5, 0))


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
    """Figure 5: one row per image: the photo | ground truth | one column per model, each mask drawn over
    the photo so the person stays visible."""
    columns = ["image", "ground truth"] + list(predictions)
    panel_width = panel_inches(len(images), len(columns), 0.9)
    height = 0.9 * panel_width * len(images) + 0.6
    fig, axes = plt.subplots(len(images), len(columns), figsize=(panel_width * len(columns) + 0.4, height), squeeze=False)
    for r, (img, gt) in enumerate(zip(images, ground_truths)):
        panels = [img, overlay(img, gt, class_names)] + [overlay(img, p[r], class_names) for p in predictions.values()]
        for c, panel in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(panel)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                column_title(ax, columns[c], panel_width)
        if ids:
            axes[r, 0].set_ylabel(fit_label(ids[r], 0.9 * panel_width), fontsize=FONT)
    add_legend(fig, class_names, fontsize=FONT)
    fig.tight_layout(rect=(0, 0.45 / height, 1, 1), pad=0.3, h_pad=0.2, w_pad=0.2)
    return fig


def recorded_examples(dataset, ids: list[str], folders: dict) -> list[tuple]:
    """(id, photo, ground truth, {column title: prediction}) per id: the dataset's photo and mask and the mask
    each run stored for it (folders: {column title: record folder with masks/ID.png}), as border_closeups
    takes them."""
    from .records import read_mask

    examples = []
    for image_id in ids:
        image, truth = dataset.load(dataset.ids.index(image_id))
        examples.append((image_id, image, truth, {title: read_mask(folder, image_id) for title, folder in folders.items()}))
    return examples


def recorded_comparison(dataset, ids: list[str], folders: dict, labels=None):
    """comparison_figure of recorded_examples: the report's prediction figures, drawn from records alone;
    the rows labelled by `labels`, default the ids."""
    examples = recorded_examples(dataset, ids, folders)
    predictions = {title: [predicted[title] for *_, predicted in examples] for title in folders}
    return comparison_figure([image for _, image, _, _ in examples], [truth for _, _, truth, _ in examples],
                             predictions, dataset.class_names, ids=list(labels or ids))


def person_box(mask: np.ndarray, margin: float = 0.15) -> tuple[slice, slice]:
    """The bounding box of the largest connected person region (all body parts together) of a ground
    truth, with `margin` of its size around it, clipped to the image. Raises if there is no person."""
    from scipy import ndimage

    person = (mask != 0) & (mask != IGNORE_INDEX)
    labels, count = ndimage.label(person)
    if count == 0:
        raise ValueError("the ground truth has no person to crop to")
    largest = 1 + int(np.argmax(ndimage.sum_labels(person, labels, index=range(1, count + 1))))
    rows, cols = ndimage.find_objects((labels == largest).astype(int))[0]
    h, w = mask.shape
    dy, dx = int((rows.stop - rows.start) * margin), int((cols.stop - cols.start) * margin)
    return slice(max(0, rows.start - dy), min(h, rows.stop + dy)), slice(max(0, cols.start - dx), min(w, cols.stop + dx))


def person_found(prediction: np.ndarray, ground_truth: np.ndarray, share: float = 0.5) -> bool:
    """Whether a prediction marks as person (any part) at least `share` of the largest true person region:
    the close-ups' rule, the same for every model, so it favours none."""
    from scipy import ndimage

    person = (ground_truth != 0) & (ground_truth != IGNORE_INDEX)
    labels, count = ndimage.label(person)
    if count == 0:
        return False
    largest = labels == 1 + int(np.argmax(ndimage.sum_labels(person, labels, index=range(1, count + 1))))
    return bool(((prediction != 0) & largest).sum() >= share * largest.sum())


def border_closeups(examples, class_names):
    """One row per example (image id, photo, ground truth, {model: prediction}): the photo cropped to the
    largest person of the ground truth (person_box), then the ground truth and each model's prediction
    over it with part borders drawn, all rows in one figure. Drawn at 200 dpi so that a label pixel of
    the crop keeps pixels of its own on the page. Fails loudly if a crop holds no person."""
    from scipy import ndimage

    crops = []
    for image_id, image, truth, predictions in examples:
        rows, cols = person_box(truth)
        if not ((truth[rows, cols] != 0) & (truth[rows, cols] != IGNORE_INDEX)).any():
            raise ValueError(f"{image_id}: the close-up crop holds no person")
        crops.append((image_id, image[rows, cols], {"ground truth": truth[rows, cols],
                                                     **{k: v[rows, cols] for k, v in predictions.items()}}))
    ncols = 1 + len(crops[0][2])
    aspects = [crop.shape[0] / crop.shape[1] for _, crop, _ in crops]
    width = min(2.0, (PAGE_WIDTH - 0.3) / ncols, (PAGE_HEIGHT - 0.3 * len(crops) - 0.3) / sum(aspects))
    fig, axes = plt.subplots(len(crops), ncols, squeeze=False, dpi=200, gridspec_kw={"height_ratios": aspects},
                             figsize=(width * ncols + 0.3, width * sum(aspects) + 0.25 * len(crops) + 0.3))
    for r, (image_id, crop, masks) in enumerate(crops):
        axes[r, 0].imshow(crop, interpolation="nearest")
        for ax, mask in zip(axes[r, 1:], masks.values()):
            ax.imshow(overlay(crop, mask, class_names, alpha=0.6), interpolation="nearest")
            edges = mask != ndimage.grey_erosion(mask, size=(3, 3))
            ax.imshow(np.ma.masked_where(~edges, edges), cmap="gray_r", alpha=0.9, interpolation="nearest")
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                column_title(ax, (["image"] + list(masks))[c], width)
        axes[r, 0].set_ylabel(fit_label(image_id, 0.9 * width * aspects[r]), fontsize=FONT)
    fig.tight_layout(pad=0.3, h_pad=0.3, w_pad=0.2)
    return fig
