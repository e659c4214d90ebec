"""A study run's small records, committed under results/runs/<run>/ so the report re-renders from git
alone (no checkpoint, no training): its settings (config.yaml), scores and border measures
(metrics.json), loss and learning curves (log.csv, curve.csv), each val image's own mIoU (per_image.csv)
and the predicted masks of the images the figures show (masks/<id>.png, palette PNGs of class indices,
a few KB each).

The prediction figures' images are chosen from the ground truth only (figure_ids), never by a model's
score; the one exception says so: the percentile figure shows a run's own images at the 10th, 50th
and 90th percentile of its per-image mIoU (percentile_ids).
"""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from . import config as configs
from .data import IGNORE_INDEX, PascalPartDataset, load_mask
from .errors import SeglibError

RECORD_FILES = ("config.yaml", "metrics.json", "log.csv", "curve.csv", "per_image.csv")
FIGURE_IMAGES, FIGURE_SEED = 6, 0
PERCENTILES = (10, 50, 90)


def part_facts(dataset: PascalPartDataset) -> list[dict]:
    """Per image of the split: id, the number of body parts (non-background classes) present and the
    share of the photo the person covers, from the ground truth alone."""
    facts = []
    for image_id, path in zip(dataset.ids, dataset.mask_paths):
        mask = load_mask(path, dataset.num_classes)
        valid = mask != IGNORE_INDEX
        present = np.bincount(mask[valid].ravel(), minlength=dataset.num_classes)[1:] > 0
        facts.append({"id": image_id, "parts": int(present.sum()), "person": float(((mask != 0) & valid).mean())})
    return facts


def figure_ids(dataset: PascalPartDataset, count: int = FIGURE_IMAGES, seed: int = FIGURE_SEED) -> tuple[list[str], str]:
    """(ids, the rule in words): `count` images drawn with a fixed seed among those that show at least
    five of the body parts and whose person covers at least the split's median share; the part count
    is lowered one at a time only when too few images qualify (small data), and the rule says so."""
    facts = part_facts(dataset)
    median = float(np.median([f["person"] for f in facts]))
    parts = dataset.num_classes - 1
    for least in range(min(5, parts), 0, -1):
        pool = [f["id"] for f in facts if f["parts"] >= least and f["person"] >= median]
        if len(pool) >= count or least == 1:
            break
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(pool, size=min(count, len(pool)), replace=False).tolist()) if pool else []
    rule = (f"{len(chosen)} {dataset.split} images drawn at random (seed {seed}) among the {len(pool)} whose ground "
            f"truth shows at least {least} of the {parts} body parts and whose person covers at least the split's "
            f"median share of the photo ({median:.1%}); chosen without looking at any prediction")
    return chosen, rule


def percentile_ids(folder, percentiles=PERCENTILES) -> list[tuple[int, str, float]]:
    """[(percentile, image id, its mIoU)] from FOLDER/per_image.csv (a run or its record): the image at
    each percentile of the run's own per-image mIoU (nearest rank; ties broken by id). [] without the file
    (runs scored before it was written: `seglib evaluate --run RUN --update` writes it)."""
    path = Path(folder) / "per_image.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        rows = sorted((float(r["mIoU"]), r["id"]) for r in csv.DictReader(f) if r["mIoU"] not in ("", "nan"))
    if not rows:
        return []
    picks = []
    for q in percentiles:
        miou, image_id = rows[round(q / 100 * (len(rows) - 1))]
        picks.append((q, image_id, miou))
    return picks


def mask_ids(run_dir, ids) -> list[str]:
    """The images whose predicted masks a run's record holds: the figures' `ids`, then the run's own
    percentile images."""
    return list(dict.fromkeys([*ids, *(i for _, i, _ in percentile_ids(run_dir))]))


def save_mask(mask: np.ndarray, path: Path, class_names: list[str]) -> None:
    """A palette PNG: pixel values are the class indices (exact), shown in the figures' colours."""
    from .pictures import palette

    image = Image.fromarray(np.asarray(mask, np.uint8), mode="P")
    image.putpalette(palette(class_names).ravel().tolist())
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, optimize=True)


def read_mask(record_dir, image_id: str) -> np.ndarray:
    path = Path(record_dir) / "masks" / f"{image_id}.png"
    if not path.is_file():
        raise SeglibError(f"{path}: no stored prediction for image {image_id}; export the run's records again "
                          "(python -m seglib pipeline ... re-exports them from the run folder)")
    with Image.open(path) as img:
        return np.array(img)


def is_current(run_dir, record_dir, ids) -> bool:
    """The record holds this run's files as they are now and a mask for each of `ids` (mask_ids)."""
    run_dir, record_dir = Path(run_dir), Path(record_dir)
    same = all((record_dir / f).is_file() and (run_dir / f).read_bytes() == (record_dir / f).read_bytes()
               for f in RECORD_FILES if (run_dir / f).is_file())
    return same and has_masks(record_dir, ids)


def has_masks(record_dir, ids) -> bool:
    return all((Path(record_dir) / "masks" / f"{i}.png").is_file() for i in ids)


def stands_in(record_dir, config: dict, data, ids) -> bool:
    """On a machine without the run folder (a new one, after the run finished elsewhere), the committed
    record stands in for the finished run: complete, trained with these settings on this data folder, and
    holding every mask the report draws (mask_ids). Otherwise the run has to be trained here."""
    record_dir = Path(record_dir)
    if not complete(record_dir) or configs.changed_settings(record_dir, config):
        return False
    if configs.read_run_config(record_dir).get("data") != str(Path(data).resolve()):
        return False
    return has_masks(record_dir, mask_ids(record_dir, ids))


def export(run_dir, record_dir, ids, device: str = "auto") -> Path:
    """Copy RUN_DIR's small files into RECORD_DIR and store its predicted masks of the images `ids` and
    of its own percentile images (with the run's own test-time settings, on the data folder it recorded)."""
    from .evaluate import load_run, predictor_from_config

    run_dir, record_dir = Path(run_dir), Path(record_dir)
    if not configs.is_complete(run_dir):
        raise SeglibError(f"{run_dir}: not a finished run; records are exported from finished runs only")
    ids = mask_ids(run_dir, ids)
    if is_current(run_dir, record_dir, ids):
        return record_dir
    if record_dir.exists():
        shutil.rmtree(record_dir)
    record_dir.mkdir(parents=True)
    for name in RECORD_FILES:
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, record_dir / name)
    model, config, class_names = load_run(run_dir, device)
    dataset = PascalPartDataset(configs.run_data(run_dir), config["val_split"])
    predictor = predictor_from_config(model, config, next(model.parameters()).device)
    for image_id in ids:
        if image_id not in dataset.ids:
            raise SeglibError(f"image {image_id} is not in {dataset.root / (dataset.split + '_id.txt')}")
        image, _ = dataset.load(dataset.ids.index(image_id))
        save_mask(predictor.predict(image), record_dir / "masks" / f"{image_id}.png", class_names)
    print(f"[records] {record_dir}: {len(ids)} predicted masks", flush=True)
    return record_dir


def complete(record_dir) -> bool:
    return all((Path(record_dir) / f).is_file() for f in ("config.yaml", "metrics.json", "log.csv"))


def other_data(records_root, data) -> dict[str, list[str]]:
    """{data folder: [record names]} of the records under RECORDS_ROOT trained on another data folder than
    DATA: a study on DATA would replace them (its runs cannot stand in for theirs, and results/ lists the
    study's runs only)."""
    here, out = str(Path(data).resolve()), {}
    for folder in sorted(Path(records_root).glob("*")):
        trained_on = configs.read_run_config(folder).get("data") if complete(folder) else None
        if trained_on and trained_on != here:
            out.setdefault(trained_on, []).append(folder.name)
    return out


def other_data_error(results_dir, data) -> SeglibError | None:
    """The error a study on DATA stops with when RESULTS_DIR's records were trained on another data folder
    (say `make study` without DATA=..., whose first run would replace the committed study hours later)."""
    others = other_data(Path(results_dir) / "runs", data)
    if not others:
        return None
    folder, names = next(iter(others.items()))
    more = f" and {len(names) - 1} more" if len(names) > 1 else ""
    return SeglibError(f"{Path(results_dir) / 'runs' / names[0]}{more}: trained on {folder}, not on {data}; this study "
                       f"would replace them: pass --data {folder} (make: DATA=...) or another --out (make: OUT=...)")


def outside(records_root, keep: set[str]) -> list[str]:
    """The records in RECORDS_ROOT of runs outside this study (those named in `keep`): what prune removes."""
    return [folder.name for folder in sorted(Path(records_root).glob("*")) if folder.is_dir() and folder.name not in keep]


def outside_phrase(records_root, keep: set[str]) -> str:
    """'4 record(s) in RECORDS_ROOT outside this study (a, b, c, ...)' or "" when none: what status and the
    pipeline say before a study that would remove them starts."""
    names = outside(records_root, keep)
    listed = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    return f"{len(names)} record(s) in {records_root} outside this study ({listed})" if names else ""


def prune(records_root, keep: set[str]) -> None:
    """Remove records of runs outside this study, so results/ describes the study only."""
    for name in outside(records_root, keep):
        print(f"[records] removed {name} (not in this study)", flush=True)
        shutil.rmtree(Path(records_root) / name)
