"""Where each class's pixels go: the confusion matrices the evaluation stores in metrics.json (rows
ground truth, columns prediction), summed over an experiment's seeds for the report's figure, and each
body part's errors split by the body hierarchy (taken for background, for another part of the same half
body, for a part of the other half), per seed, so that an experiment beyond the course report is
compared with the pretrained cross-entropy runs against seed-to-seed variation. The part relations the
course report left open are exactly these errors: a lower arm taken for an upper arm, a leg for an arm."""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import beyond
from .data import BACKGROUND, report_order
from .losses import LOWER_BODY, UPPER_BODY
from .report import PRETRAINED, Study
from .results import TITLES, fmt, gap_vs_noise, groups, read_metrics, title

# where a part's missed pixels went, as part_errors names its columns
SPLIT = {"background": "taken for background", "same half": "taken for another part of the same half body",
         "other half": "taken for a part of the other half body"}


def stored(metrics: dict) -> pd.DataFrame | None:
    """metrics.json's confusion matrix as pixel counts, rows (truth) and columns (prediction) in the
    report's class order; None for a run scored before evaluations stored it."""
    entry = metrics.get("confusion")
    if not entry:
        return None
    names = list(entry["classes"])
    order = [names[i] for i in report_order(names)]
    return pd.DataFrame(np.asarray(entry["pixels"], dtype=np.int64), index=names, columns=names).loc[order, order]


def row_shares(frame: pd.DataFrame) -> pd.DataFrame:
    """Each true class's pixels by predicted class, in % of that class's pixels (each row sums to 100; a
    class with no pixels is a row of NaN)."""
    return frame.div(frame.sum(axis=1).replace(0, np.nan), axis=0) * 100


def part_errors(frame: pd.DataFrame) -> pd.DataFrame | None:
    """Per body part, and for all parts' pixels together: the % of its pixels taken for background, for
    another part of the same half body and for a part of the other half (the hierarchy's halves,
    losses.UPPER_BODY / LOWER_BODY). The three add up to the part's missed share, 100 - its accuracy.
    None where the classes are not background and the seven parts' halves (another data set's classes)."""
    half = {**{n: "upper" for n in UPPER_BODY}, **{n: "lower" for n in LOWER_BODY}}
    parts = [n for n in frame.index if n != BACKGROUND]
    if BACKGROUND not in frame.index or not parts or any(n not in half for n in parts):
        return None
    counts = {}
    for part in parts:
        row = frame.loc[part]
        same = sum(row[p] for p in parts if p != part and half[p] == half[part])
        other = sum(row[p] for p in parts if half[p] != half[part])
        counts[part] = [row[BACKGROUND], same, other, row.sum()]
    counts["all parts"] = list(np.sum(list(counts.values()), axis=0))
    table = pd.DataFrame(counts, index=[*SPLIT, "pixels"]).T.astype(float)
    shares = table[list(SPLIT)].div(table["pixels"].replace(0, np.nan), axis=0) * 100
    return shares.assign(missed=shares.sum(axis=1, min_count=1))


def run_matrices(study: Study, runs: pd.DataFrame) -> list[pd.DataFrame]:
    """The stored confusion matrices of some runs (rows of the summary); runs without one are left out."""
    frames = (stored(read_metrics(study.record(row))) for _, row in runs.iterrows())
    return [f for f in frames if f is not None]


def _stored_by_experiment(study: Study):
    """(experiment title, its runs' stored matrices) for every experiment (and profile, as the tables label
    it) with at least one, in the summary's order."""
    for experiment, profile, runs in groups(study.summary, study.main):
        frames = run_matrices(study, runs)
        if frames:
            yield title(experiment, profile, study.main), frames


def summed(study: Study) -> dict[str, pd.DataFrame]:
    """{experiment title: its runs' confusion matrices summed over seeds}."""
    return {name: sum(frames[1:], frames[0]) for name, frames in _stored_by_experiment(study)}


def errors_table(study: Study) -> pd.DataFrame | None:
    """Per experiment with stored matrices: % of all body-part pixels missed, and taken for background, for
    another part of the same half and for a part of the other half (mean ± std over seeds)."""
    rows = {}
    for name, frames in _stored_by_experiment(study):
        seeds = _all_parts(frames)
        if seeds.empty:  # classes without the body halves
            continue
        rows[name] = {"seeds": len(frames), "missed": fmt(seeds["missed"], 1),
                      **{f"to {kind}": fmt(seeds[kind], 1) for kind in SPLIT}}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("experiment") if rows else None


def largest_error(study: Study) -> str:
    """The pretrained model's largest kind of part error, in words ("" without its stored matrices)."""
    seeds = per_seed(study, PRETRAINED)
    if seeds.empty:
        return ""
    means = seeds[list(SPLIT)].mean()
    kind = means.idxmax()
    return (f"{TITLES[PRETRAINED]} misses {seeds['missed'].mean():.1f}% of the body-part pixels; the largest kind of "
            f"error: {SPLIT[kind]} ({means[kind]:.1f} points).")


def per_seed(study: Study, experiment: str) -> pd.DataFrame:
    """One row per run of the experiment (main profile) with a stored matrix: the all-parts error split."""
    return _all_parts(run_matrices(study, study.runs_of(experiment)))


def _all_parts(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The all-parts error split of each matrix, a row each (none where the classes have no body halves)."""
    splits = (part_errors(f) for f in frames)
    return pd.DataFrame([e.loc["all parts"] for e in splits if e is not None])


def against_ce(study: Study) -> tuple[pd.DataFrame | None, str]:
    """Each experiment beyond the course report against the pretrained cross-entropy runs, per kind of part
    error (% of all body-part pixels): the CE runs' share (mean ± std over seeds) and each experiment's
    difference in points, '*' beyond seed-to-seed variation, under a first row of each side's seeds (runs
    scored before evaluations stored the matrix have none, so a side may count fewer than its mIoU does); and
    the sentence that names the differences beyond it (nine verdict sentences in a row read as a wall).
    (None, "") where either side has no stored matrix."""
    base = per_seed(study, PRETRAINED)
    columns, found, unjudged = {}, [], []
    for experiment in beyond.EXPERIMENTS:
        runs = per_seed(study, experiment)
        if base.empty or runs.empty:
            continue
        columns.setdefault("cross-entropy", [str(len(base)), *(fmt(base[kind]) for kind in SPLIT)])
        gaps = {kind: gap_vs_noise(base[kind], runs[kind]) for kind in SPLIT}
        marked = [f"{g['difference']:+.2f}" + ("*" if g["exceeds_noise"] else "") for g in gaps.values()]
        columns[beyond.SHORT[experiment]] = [str(len(runs)), *marked]
        found += [f"{beyond.SHORT[experiment]}, part pixels {SPLIT[kind]} {g['difference']:+.2f} points"
                  for kind, g in gaps.items() if g["exceeds_noise"]]
        if not np.isfinite(gaps["background"]["noise"]):
            unjudged.append(beyond.SHORT[experiment])
    if not columns:
        return None, ""
    rows = ["seeds"] + [f"part pixels {words}" for words in SPLIT.values()]
    table = pd.DataFrame(columns, index=pd.Index(rows, name="error"))
    judged = len(columns) - 1 - len(unjudged)
    sentences = ([f"Beyond seed-to-seed variation: {'; '.join(found)}."] if found else
                 ["No difference exceeds seed-to-seed variation."] if judged else [])
    sentences += [f"Not judged (one seed on each side): {', '.join(unjudged)}."] if unjudged else []
    return table, " ".join(sentences)
