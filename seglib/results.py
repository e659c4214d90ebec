"""Run folders (or their records) -> tables: per-class tables in the report's form, the combined table
beside the course report's own numbers, results/summary.csv rows and comparisons over seeds."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from . import config as configs
from .data import REPORT_ORDER, PascalPartDataset, report_order
from .errors import SeglibError
from .evaluate import load_run, predictor_from_config
from .layout import index_name_in_header, latex_fitting_the_page

# the report lists experiments with commas between them: a title holds none
TITLES = {
    "fcn_unet_scratch": "FCN+U-Net (scratch)",
    "deeplabv3plus_scratch": "DeepLabv3+ R50 (scratch)",
    "deeplabv3plus_pretrained": "DeepLabv3+ pretrained",
    "deeplabv3plus_pretrained_lovasz": "DeepLabv3+ pretrained + Lovász",
    "deeplabv3plus_lite2_scratch": "DeepLabv3+ Lite2 (scratch)",
    "deeplabv3plus_pretrained_hierarchy": "DeepLabv3+ pretrained + hierarchy",
    "deeplabv3plus_pretrained_ce_lovasz": "DeepLabv3+ pretrained (CE + Lovász)",
    "deeplabv3plus_pretrained_best": "DeepLabv3+ pretrained (best recipe)",
}
ENCODERS = {"fcn_unet_s5-d16": "U-Net s5", "deeplabv3plus_r50-d8": "ResNet-50", "deeplabv3plus_lite2-d16": "EfficientNet-Lite2"}


def course_report() -> dict:
    return yaml.safe_load((configs.EXPERIMENTS_DIR / "course_report.yaml").read_text())


def main_profile(summary_df: pd.DataFrame, profile: str | None = None) -> str | None:
    """The study's profile: the one given, else the one most runs used. Runs of other profiles
    (say one longer cpu512 run beside a cpu study) get their own rows, labelled with their profile."""
    if profile is not None or summary_df.empty:
        return profile
    return summary_df.profile.value_counts().index[0]


def title(experiment: str, profile: str, main: str | None) -> str:
    return TITLES[experiment] if profile == main or main is None else f"{TITLES[experiment]} [{profile}]"


def groups(summary_df: pd.DataFrame, main: str | None = None) -> list[tuple[str, str, pd.DataFrame]]:
    """(experiment, profile, its runs) in the report's order; per experiment the main profile first."""
    out = []
    for experiment in configs.EXPERIMENTS:
        runs = summary_df[summary_df.experiment == experiment]
        for profile in sorted(runs.profile.unique(), key=lambda p: (p != main, p)):
            out.append((experiment, profile, runs[runs.profile == profile]))
    return out


def read_metrics(run_dir) -> dict:
    return json.loads((Path(run_dir) / "metrics.json").read_text())


def per_class_table(score: dict) -> pd.DataFrame:
    """The report's table: Class | IoU | Acc, mean row first, classes in the report's order."""
    names = list(score["per_class"])
    names = [names[i] for i in report_order(names)]
    rows = [("mean", score["mIoU"], score["mAcc"])] + [(n, score["per_class"][n]["IoU"], score["per_class"][n]["Acc"]) for n in names]
    return pd.DataFrame(rows, columns=["Class", "IoU", "Acc"]).set_index("Class").round(2)


def seconds_per_iteration(run_dir) -> float | None:
    """Median seconds per training iteration over the loss log's steps (log.csv: cumulative training
    seconds every few iterations). A pause, an interruption or a learning-curve evaluation lands in a few
    steps only, so unlike the wall time this is the machine's pace; None without two log lines."""
    path = Path(run_dir) / "log.csv"
    log = pd.read_csv(path) if path.is_file() else pd.DataFrame()
    if len(log) < 2:
        return None
    steps = log[["iteration", "seconds"]].diff().dropna()
    return round(float((steps.seconds / steps.iteration).median()), 2)


def summary_row(run_dir) -> dict:
    """One results/summary.csv row."""
    config, score = configs.read_run_config(run_dir), read_metrics(run_dir)
    row = {
        "run": Path(run_dir).name, "experiment": config["experiment"], "profile": config["profile"], "encoder": ENCODERS.get(config["model"], config["model"]),
        "weights": config["weights"] or "scratch", "loss": config["loss"], "seed": config["seed"],
        "iterations": config["iterations"], "crop": config["crop_size"],
        "train_size": config.get("train_size") or config["crop_size"], "device": score.get("device"),
        "host": score.get("host"), "precision": score.get("precision"), "eval_flip": config["eval_flip"],
        "eval_scales": " ".join(str(s) for s in config["eval_scales"]), "scale_range": "-".join(str(s) for s in config["scale_range"]),
        "hierarchy_weight": config.get("hierarchy_weight", 0.0),
        "train_seconds": score.get("train_seconds"), "sec_per_iter": seconds_per_iteration(run_dir),
        "val_images": score.get("images"),
        "mIoU": round(score["mIoU"], 2), "mAcc": round(score["mAcc"], 2), "aAcc": round(score["aAcc"], 2),
        # with test-time augmentation: the plain pass's mIoU from the same forward passes (what the augmentation gave)
        "mIoU without TTA": round(score["without_tta"]["mIoU"], 2) if "without_tta" in score else None,
    }
    for name in REPORT_ORDER:
        if name in score["per_class"]:
            row[f"IoU {name}"] = round(score["per_class"][name]["IoU"], 2)
            row[f"Acc {name}"] = round(score["per_class"][name]["Acc"], 2)
    return row


def summary(runs) -> pd.DataFrame:
    return pd.DataFrame([summary_row(r) for r in runs])


def fmt(values, digits: int = 2) -> str:
    """Per-seed values as 'mean ± std' (a single seed: its value; none, or only NaN: 'n/a')."""
    values = pd.Series(values, dtype=float).dropna()
    if values.empty:
        return "n/a"
    return f"{values.mean():.{digits}f}" if len(values) == 1 else f"{values.mean():.{digits}f} ± {values.std():.{digits}f}"


def combined_table(summary_df: pd.DataFrame, main: str | None = None) -> pd.DataFrame:
    """mIoU / mAcc per experiment and profile (ours: mean ± std over seeds) beside the course report's own;
    two header rows (setting / ours / course report) keep it narrow enough to read on a page; a crop or a number of
    iterations that every row shares is left to the caption (attrs["shared"], e.g. '2000 iterations'). aAcc, which
    the course report does not give, is left to the appendix's runs table: with it the table was shrunk to
    a 6-point font to fit the page."""
    theirs, main = course_report(), main_profile(summary_df, main)
    rows = []
    for experiment, profile, runs in groups(summary_df, main):
        reported = theirs.get(experiment, {})
        rows.append({
            ("", "experiment"): title(experiment, profile, main), ("setting", "encoder"): runs.encoder.iloc[0],
            ("setting", "crop"): runs.crop.iloc[0], ("setting", "short edge"): runs.train_size.iloc[0],
            ("setting", "iterations"): runs.iterations.iloc[0], ("setting", "seeds"): len(runs),
            ("ours", "mIoU"): fmt(runs.mIoU), ("ours", "mAcc"): fmt(runs.mAcc),
            ("course report", "mIoU"): reported.get("mIoU", "-"), ("course report", "mAcc"): reported.get("mAcc", "-"),
        })
    table = pd.DataFrame(rows).set_index(("", "experiment"))
    if (table[("setting", "short edge")] == table[("setting", "crop")]).all():  # the report's input: says nothing
        table = table.drop(columns=[("setting", "short edge")])
    # a schedule every row shares is said once, in the caption (table.attrs["shared"]), not printed in each row:
    # a column of one repeated value only widened the table past the page
    shared = [key for key in ("crop", "iterations") if len(table) > 1 and table[("setting", key)].nunique() == 1]
    phrases = {"crop": "crop {}", "iterations": "{} iterations"}
    table = table.drop(columns=[("setting", key) for key in shared])
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    table = table.rename_axis("experiment")
    table.attrs["shared"] = ", ".join(phrases[key].format(rows[0][("setting", key)]) for key in shared)
    return table


def per_class_iou(summary_df: pd.DataFrame, stat: str = "mean", main: str | None = None) -> pd.DataFrame:
    """Rows classes (report order), columns experiments (and other profiles): per-class IoU over seeds."""
    cols = [c for c in summary_df.columns if c.startswith("IoU ")]
    main = main_profile(summary_df, main)
    table = pd.DataFrame({title(e, p, main): runs[cols].agg(stat) for e, p, runs in groups(summary_df, main)})
    table.index = [c[4:] for c in table.index]
    return table


def notebook_display() -> None:
    """Pandas tables as LaTeX too, so the PDF report shows real tables instead of wrapped text; a table
    wider than the page is scaled down to fit instead of running off its edge."""
    pd.set_option("styler.render.repr", "latex")
    pd.set_option("styler.format.precision", 2)
    pd.set_option("styler.latex.hrules", True)
    pd.set_option("styler.latex.multicol_align", "c")  # a group's name centred over its columns
    pd.set_option("styler.format.escape", "latex")
    pd.set_option("display.precision", 2)
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:  # type printers take precedence over DataFrame._repr_latex_
        shell.display_formatter.formatters["text/latex"].for_type(pd.DataFrame, latex_fitting_the_page)
        shell.display_formatter.formatters["text/html"].for_type(pd.DataFrame, lambda f: index_name_in_header(f)._repr_html_())
        # a user's mistake (no runs, no data) reads as one line; %xmode would print its mode into the paper
        shell.InteractiveTB.set_mode(mode="Minimal")


def gap_vs_noise(values_a, values_b) -> dict:
    """Two groups of per-seed values: difference of means (b - a) and each group's seed-to-seed standard
    deviation. The gap counts as real only beyond twice the larger deviation (the only one, where a group
    has a single seed); with one seed in each group there is no noise estimate and no claim."""
    a, b = np.asarray(values_a, dtype=float), np.asarray(values_b, dtype=float)
    mean_a, mean_b = (float(v.mean()) if v.size else float("nan") for v in (a, b))
    std_a, std_b = (float(v.std(ddof=1)) if v.size > 1 else float("nan") for v in (a, b))
    finite = [s for s in (std_a, std_b) if np.isfinite(s)]
    noise = max(finite) if finite else float("nan")
    diff = mean_b - mean_a
    return {"mean_a": mean_a, "mean_b": mean_b, "std_a": std_a, "std_b": std_b, "noise": noise, "difference": diff,
            "seeds_a": int(a.size), "seeds_b": int(b.size), "exceeds_noise": bool(np.isfinite(noise) and abs(diff) > 2 * noise)}


def short_verdict(gap: dict) -> str:
    """gap_verdict in two words, for table cells."""
    if not np.isfinite(gap["noise"]):
        return "one seed"
    return "beyond noise" if gap["exceeds_noise"] else "within noise"


def gap_verdict(gap: dict, digits: int = 2) -> str:
    """gap_vs_noise in words, worded alike by the compare command and the notebooks."""
    if not np.isfinite(gap["noise"]):
        return "cannot be judged: one seed per group, so no seed-to-seed variation to judge it by"
    word = "exceeds" if gap["exceeds_noise"] else "is within"
    return f"{word} seed-to-seed variation (2 x {gap['noise']:.{digits}f})"


def class_means(results: list[dict], measure: str, experiment: str) -> list[float]:
    """Per run of the experiment, the mean over classes of a per-class measure ({class: value})."""
    return [float(np.nanmean(list(r[measure].values()))) for r in results if r["experiment"] == experiment]


def difference_vs_noise(results: list[dict], measure: str, a: str, b: str) -> dict:
    """Mean over classes of measure for runs of experiments a and b, compared with gap_vs_noise."""
    return {"a": a, "b": b, **gap_vs_noise(class_means(results, measure, a), class_means(results, measure, b))}


# summary columns that must agree between runs compared by one setting: the same schedule and test protocol
SCHEDULE_COLUMNS = ("encoder", "weights", "loss", "hierarchy_weight", "precision", "iterations", "crop", "train_size",
                    "scale_range", "eval_flip", "eval_scales", "val_images")
# the protocol and budget: runs compared by experiment (a recipe: its own loss, augmentation, ...) share these
BUDGET_COLUMNS = ("iterations", "crop", "train_size", "val_images")


def compare_by(summary_df: pd.DataFrame, column: str, metric: str = "mIoU") -> tuple[pd.DataFrame, list[dict]]:
    """Runs grouped by one setting (say precision): per group the seeds, mean and std of metric and the mean
    training time; and gap_vs_noise of each further group against the first (the baseline: the group of the
    first run given), so that several recipes compare with one baseline at once. Runs that differ in another schedule
    column are refused, since the comparison would mix two effects; grouped by experiment, a recipe that
    changes several settings at once is what is compared, and only the budget (iterations, crop, val
    images) must be the same."""
    for name in (column, metric):
        if name not in summary_df:
            raise SeglibError(f"unknown summary column {name!r}; choose from: {', '.join(summary_df.columns)}")
    for other in BUDGET_COLUMNS if column == "experiment" else SCHEDULE_COLUMNS:
        if other != column and other in summary_df and summary_df[other].nunique(dropna=False) > 1:
            raise SeglibError(f"the runs differ in {other} ({', '.join(map(str, summary_df[other].unique()))}) besides "
                              f"{column}; compare runs with the same schedule")
    groups = summary_df.groupby(column, sort=False)
    table = pd.DataFrame({
        "runs": groups.size(), "seeds": groups.seed.agg(lambda s: " ".join(map(str, sorted(s)))),
        f"{metric} mean": groups[metric].mean(), f"{metric} std": groups[metric].std(),
        "train seconds mean": groups.train_seconds.mean(),
        **({"s/it mean": groups.sec_per_iter.mean()} if "sec_per_iter" in summary_df else {}),
    }).round(2)
    values = [g[metric].to_numpy() for _, g in groups]
    return table, [{"a": table.index[0], "b": name, **gap_vs_noise(values[0], other)}
                   for name, other in zip(table.index[1:], values[1:])]


def std_phrase(std: float, seeds: int) -> str:
    """A group's seed-to-seed std for a sentence: 'n/a (1 seed)' where there is none."""
    return f"{std:.2f}" if np.isfinite(std) else f"n/a ({seeds} seed{'s' if seeds != 1 else ''})"


def schedule_caption(runs: pd.DataFrame) -> str:
    """'crop 256 of images resized to short edge 512, 2000 iterations' for one group's runs."""
    crop, short, iterations = runs.crop.iloc[0], runs.train_size.iloc[0], runs.iterations.iloc[0]
    resized = f" of images resized to short edge {short}" if short != crop else ""
    return f"crop {crop}{resized}, {iterations} iterations"


def experiment_table(runs: pd.DataFrame, experiment: str) -> pd.DataFrame:
    """The report's per-class table for one experiment's runs (one group of groups(); mean over its seeds)
    beside the course report's (which has none for the like-for-like scratch run: ours alone then)."""
    theirs = course_report().get(experiment)
    names = [n for n in REPORT_ORDER if f"IoU {n}" in runs]
    table = pd.DataFrame({"IoU (ours)": [runs.mIoU.mean()] + [runs[f"IoU {n}"].mean() for n in names],
                          "Acc (ours)": [runs.mAcc.mean()] + [runs[f"Acc {n}"].mean() for n in names]},
                         index=pd.Index(["mean"] + names, name="Class"))
    if theirs:
        table["IoU (course report)"] = [theirs["mIoU"]] + [theirs["per_class"][n]["IoU"] for n in names]
        table["Acc (course report)"] = [theirs["mAcc"]] + [theirs["per_class"][n]["Acc"] for n in names]
    return table.round(2)


def predictions(run_dirs: dict, dataset: PascalPartDataset, indices, device="auto") -> dict[str, list]:
    """{label: [predicted mask per index]} for each run, with each run's own test-time settings."""
    out = {}
    for label, run_dir in run_dirs.items():
        model, config, _ = load_run(run_dir, device)
        predictor = predictor_from_config(model, config, next(model.parameters()).device)
        out[label] = [predictor.predict(dataset.load(i)[0]) for i in indices]
    return out
