"""Charts of numbers: the data's class shares and image sizes, per-class bars, learning curves, confusion
matrices and scores by person size, drawn to fit the report's page. Photos with masks are in seglib.pictures."""
from __future__ import annotations

import textwrap
from contextlib import contextmanager

import matplotlib.pyplot as plt
import numpy as np

# A report figure prints at its own size if it fits within PAGE_WIDTH x PAGE_HEIGHT inches (nbconvert
# shrinks a larger one to 0.9 of the text width or of the page height), and then leaves its caption room on
# the page: so the report's figures are drawn to fit, their text at FONT points. 6 in, not the 7 it was:
# with a caption of up to five lines a figure then still fits the top of a page of text
# (layout.FLOAT_PLACEMENT), where a 7 in Figure 7 needed a page of its own and split the conclusion.
# 5.4 in, not 6: the tallest picture grid and a per-class table (8 rows), both waiting at the barrier
# before the Conclusion, then share one page (at 6 in Figure 8 and Table 13 each stood alone on one).
PAGE_WIDTH, PAGE_HEIGHT = 5.8, 5.4
FONT = 7.5


@contextmanager
def _font(size: float):
    """The figures' font size while one is drawn. Not plt.rc_context: it restores every rcParam on exit,
    'interactive' too, so a notebook's first figure drawn inside one switched the inline backend's
    auto-display off and no later figure showed (matplotlib issue 24351)."""
    old = plt.rcParams["font.size"]
    plt.rcParams["font.size"] = size
    try:
        yield
    finally:
        plt.rcParams["font.size"] = old


def series_legend(fig, handles, labels) -> float:
    """The series' names above the plot, in as many columns as fit the figure's width: a legend inside the
    axes hid bars and curves once there were eight, and tight_layout shrank the axes to make room for it.
    Grows the figure by the legend's height, which it returns (inches)."""
    width, height = fig.get_size_inches()
    renderer = fig.canvas.get_renderer()
    for ncol in range(len(labels), 0, -1):  # the most columns whose legend, measured, fits the width
        legend = fig.legend(handles, labels, loc="upper center", ncol=ncol, frameon=False, fontsize=FONT,
                            bbox_to_anchor=(0.5, 1))
        box = legend.get_window_extent(renderer)
        if box.width <= 0.98 * width * fig.dpi or ncol == 1:
            break
        legend.remove()
    extra = box.height / fig.dpi + 0.05
    fig.set_size_inches(width, height + extra)
    return extra


def class_shares(table):
    """The data notebook's two bars per class: its share of the pixels (log scale, background dwarfs the
    limbs) and the share of images that contain it; table: data.class_shares' frame (%)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    table["pixel share"].plot.bar(ax=axes[0], rot=20, title="pixel share per class (%)", logy=True)
    table["images containing it"].plot.bar(ax=axes[1], rot=20, title="images containing the class (%)")
    fig.tight_layout()
    return fig


def image_sizes(stats):
    """Width against height of every image, one colour per split; stats: data.statistics' frames."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for split, part in stats.groupby("split"):
        ax.scatter(part.width, part.height, s=8, alpha=0.5, label=split)
    ax.set(xlabel="width (px)", ylabel="height (px)", title="image sizes")
    ax.legend()
    fig.tight_layout()
    return fig


def per_class_bars(table, value_label: str = "IoU (%)", errors=None, title=None):
    """Grouped bars: table is a pandas DataFrame, rows = classes, columns = runs/models."""
    with _font(FONT + 0.5):
        ax = table.plot.bar(figsize=(PAGE_WIDTH, 2.6), width=0.8, yerr=errors, capsize=2, rot=20, legend=False)
        ax.set_ylabel(value_label)
        ax.set_xlabel("")
        if title:
            ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
        top = series_legend(ax.figure, *ax.get_legend_handles_labels())
        ax.figure.tight_layout(rect=(0, 0, 1, 1 - top / ax.figure.get_size_inches()[1]))
    return ax.figure


def learning_curves(curves: dict[str, list], logs: dict[str, list]):
    """Training loss (left) and val mIoU on the fixed subset (right) against iteration; per label, the
    mean over its seeds with the range as a band. curves/logs: {label: [DataFrame per seed]}."""
    with _font(FONT):
        fig, (ax_loss, ax_miou) = plt.subplots(1, 2, figsize=(PAGE_WIDTH, 2.6))
        _draw_curves(ax_loss, ax_miou, curves, logs)
        handles, labels = ax_loss.get_legend_handles_labels()
        top = series_legend(fig, handles, labels) if labels else 0.0
        fig.tight_layout(rect=(0, 0, 1, 1 - top / fig.get_size_inches()[1]))
    return fig


def _draw_curves(ax_loss, ax_miou, curves, logs):
    import pandas as pd

    for k, label in enumerate(curves):
        color = f"C{k}"
        for ax, frames, column in ((ax_loss, logs.get(label, []), "loss"), (ax_miou, curves[label], "mIoU")):
            if not frames:
                continue
            table = pd.concat([f.set_index("iteration")[column] for f in frames], axis=1)
            if column == "loss":  # smooth the noisy per-iteration loss over 10 logged points
                table = table.rolling(10, min_periods=1).mean()
            ax.plot(table.index, table.mean(axis=1), color=color, lw=1.3, label=label, marker="o" if column == "mIoU" else None, ms=3)
            if table.shape[1] > 1:
                ax.fill_between(table.index, table.min(axis=1), table.max(axis=1), color=color, alpha=0.2, lw=0)
    ax_loss.set(xlabel="iteration", ylabel="training loss (running mean)", title="loss")
    ax_miou.set(xlabel="iteration", ylabel="val mIoU (%) on the fixed subset", title="val mIoU during training")
    for ax in (ax_loss, ax_miou):
        ax.grid(alpha=0.3)


def confusion_grid(shares: dict, cols: int = 4):
    """Row-normalised confusion matrices side by side: {title: DataFrame of % of each true class's pixels
    (rows truth, columns prediction, the same classes)}; each cell printed, the colour saturating at 50%
    so that the off-diagonal errors, not the diagonal, set the contrast. Class names label the rows of the
    first column only, so the matrices fill the page's width."""
    cols = min(cols, len(shares))
    rows = -(-len(shares) // cols)
    with _font(FONT - 1.5):
        width = min(PAGE_WIDTH, 1.4 * cols + 0.9)  # one matrix is not stretched across the page
        fig, axes = plt.subplots(rows, cols, figsize=(width, 2.0 * rows + 0.3), squeeze=False, sharey=True)
        for ax in axes.flat[len(shares):]:
            ax.axis("off")
        for k, (ax, (name, frame)) in enumerate(zip(axes.flat, shares.items())):
            values = frame.to_numpy(dtype=float)
            ax.imshow(np.nan_to_num(values), cmap="Blues", vmin=0, vmax=50, aspect="auto")
            for (i, j), v in np.ndenumerate(values):
                if np.isfinite(v) and v >= 0.5:
                    ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=FONT - 3,
                            color="white" if v > 30 else "black")
            names = list(frame.columns)
            ax.set_xticks(range(len(names)), names, rotation=90)
            ax.set_yticks(range(len(names)), names)
            ax.tick_params(length=2, pad=1)
            ax.set_title(textwrap.fill(name, 19), fontsize=FONT - 1)
            if k % cols == 0:
                ax.set_ylabel("ground truth")
            if k >= len(shares) - cols:
                ax.set_xlabel("predicted")
        fig.tight_layout(w_pad=0.4, h_pad=0.6)
    return fig


def by_person_size(table):
    """Mean per-image mIoU per bin of person share (rows, in order) for each experiment (columns other than
    'photos'), one line each."""
    with _font(FONT):
        fig, ax = plt.subplots(figsize=(PAGE_WIDTH, 2.4))
        for k, name in enumerate(c for c in table.columns if c != "photos"):
            ax.plot(range(len(table)), table[name], marker="o", ms=3, lw=1.3, color=f"C{k}", label=name)
        ax.set_xticks(range(len(table)), [f"{label}\n({n} photos)" for label, n in zip(table.index, table.photos)])
        ax.set(xlabel="share of the photo's pixels that belong to a body part", ylabel="mean per-image mIoU (%)")
        ax.grid(alpha=0.3)
        top = series_legend(fig, *ax.get_legend_handles_labels())
        fig.tight_layout(rect=(0, 0, 1, 1 - top / fig.get_size_inches()[1]))
    return fig
