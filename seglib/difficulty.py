"""Which photos are hard: each run's per-image mIoU (per_image.csv) against how much of the photo the
people cover (the ground truth's share of body-part pixels), in equal-count bins of the val photos, so that
the report can say from measurements what holds its scores back."""
from __future__ import annotations

import pandas as pd

from .data import BACKGROUND
from .report import PRETRAINED, Study
from .results import TITLES, groups, title


def person_share(facts: pd.DataFrame, class_names: list[str]) -> pd.Series | None:
    """% of each photo's labelled pixels that belong to a body part, indexed by image id (facts: data.statistics,
    one row per image with each class's pixel count). None without a background class."""
    if BACKGROUND not in class_names:
        return None
    counts = facts.set_index("id")[list(class_names)]
    total = counts.sum(axis=1)
    return ((total - counts[BACKGROUND]) / total.where(total > 0) * 100).rename("person share")


def per_image(study: Study, runs: pd.DataFrame) -> pd.Series | None:
    """An experiment's per-image mIoU averaged over its seeds (runs whose record has per_image.csv)."""
    frames = [pd.read_csv(study.record(row) / "per_image.csv", dtype={"id": str}).set_index("id").mIoU
              for _, row in runs.iterrows() if (study.record(row) / "per_image.csv").is_file()]
    return pd.concat(frames, axis=1).mean(axis=1) if frames else None


def by_person_size(study: Study, share: pd.Series, bins: int = 5) -> pd.DataFrame | None:
    """Rows: the val photos in `bins` equal-count bins of person share (labelled by their range in %), with
    the number of photos; columns: each experiment's mean per-image mIoU over the photos of the bin (seeds
    averaged per photo first). None where no run recorded per-image scores."""
    scores = {}
    for experiment, profile, runs in groups(study.summary, study.main):
        values = per_image(study, runs)
        if values is not None:
            scores[title(experiment, profile, study.main)] = values
    if not scores:
        return None
    table = pd.DataFrame(scores).join(share, how="inner").dropna(subset=[share.name])
    binned = pd.qcut(table[share.name], bins, duplicates="drop")
    out = table.drop(columns=share.name).groupby(binned, observed=True).mean()
    out.index = [f"{max(b.left, 0):.1f}-{b.right:.1f}%" for b in out.index]  # qcut's first edge lies below the min
    out.insert(0, "photos", table.groupby(binned, observed=True).size().to_numpy())
    return out.rename_axis("person share").round(2)


def size_sentence(table: pd.DataFrame | None) -> str:
    """The pretrained model's per-image mIoU on the photos with the smallest and the largest people ("" without
    the table, the pretrained model's column or two bins)."""
    name = TITLES[PRETRAINED]
    if table is None or name not in table.columns or len(table) < 2:
        return ""
    first, last = table.index[0], table.index[-1]
    return (f"{name} scores {table[name].iloc[0]:.1f} mean per-image mIoU on the {table.photos.iloc[0]} photos whose "
            f"people cover {first} of the pixels and {table[name].iloc[-1]:.1f} on the {table.photos.iloc[-1]} where "
            f"they cover {last}.")
