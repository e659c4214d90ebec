"""Pascal-Part person parts as distributed: JPEGImages/<id>.jpg, gt_masks/<id>.png or .npy,
classes.txt and <split>_id.txt. Every bad input becomes a one-line SeglibError naming the file.
Also the training sample stream: seeded, resumable batches and per-sample seeded augmentation."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from .errors import SeglibError
from .paths import shipped

IGNORE_INDEX = 255
SAMPLE_ROOT = shipped("sample")

# classes.txt names -> the report's names; REPORT_ORDER is the order of the report's tables.
READABLE_NAMES = {
    "bg": "background", "head": "head", "torso": "torso", "up_hand": "upper-arms",
    "low_hand": "lower-arms", "up_leg": "upper-legs", "low_leg": "lower-legs",
}
BACKGROUND = "background"  # the readable name of class 0 ("bg" in classes.txt): everything not a body part
REPORT_ORDER = [BACKGROUND, "head", "torso", "upper-arms", "lower-arms", "upper-legs", "lower-legs"]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MASK_SUFFIXES = (".png", ".npy")


def default_root() -> Path:
    """SEGLIB_DATA when set, else the sample embedded in the repository."""
    return Path(os.environ.get("SEGLIB_DATA") or SAMPLE_ROOT)


def read_classes(root) -> list[str]:
    """Readable class names indexed by the mask value, from classes.txt ("index: name" lines)."""
    path = Path(root) / "classes.txt"
    if not path.is_file():
        raise SeglibError(f"{path}: classes.txt not found; is {root} a Pascal-Part data folder?")
    names = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        index, sep, name = line.partition(":")
        if not sep or not index.strip().isdigit():
            raise SeglibError(f"{path}:{number}: expected 'index: name', got {line!r}")
        names[int(index)] = READABLE_NAMES.get(name.strip(), name.strip())
    if sorted(names) != list(range(len(names))):
        raise SeglibError(f"{path}: class indices must be 0..N-1, got {sorted(names)}")
    return [names[i] for i in range(len(names))]


def report_order(class_names: list[str]) -> list[int]:
    """Class indices in the report's table order; names the report lacks come last."""
    known = [class_names.index(n) for n in REPORT_ORDER if n in class_names]
    return known + [i for i, n in enumerate(class_names) if n not in REPORT_ORDER]


def read_split(root, split: str) -> list[str]:
    path = Path(root) / f"{split}_id.txt"
    if not path.is_file():
        raise SeglibError(f"{path}: split file not found; expected one image id per line for split {split!r}")
    ids = path.read_text().split()
    if not ids:
        raise SeglibError(f"{path}: split file is empty; it should list one image id per line")
    return ids


def _find(folder: Path, image_id: str, suffixes, listing: set[str], what: str) -> Path:
    for suffix in suffixes:
        if image_id + suffix in listing:
            return folder / (image_id + suffix)
    raise SeglibError(f"{folder / image_id}{suffixes[0]}: no {what} for id {image_id!r} "
                      f"(looked for {', '.join(suffixes)})")


def load_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as img:
            img.load()  # decode now, so a truncated file fails here and not later
            return np.array(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise SeglibError(f"{path}: unreadable or corrupt image ({exc}); replace or remove this id") from None


def load_mask(path: Path, num_classes: int) -> np.ndarray:
    try:
        if path.suffix == ".npy":
            mask = np.load(path, allow_pickle=False)
        else:
            with Image.open(path) as img:
                mask = np.array(img)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise SeglibError(f"{path}: unreadable mask ({exc})") from None
    if mask.ndim != 2:
        raise SeglibError(f"{path}: mask must be a 2-D array of class indices, got shape {mask.shape}")
    if not np.issubdtype(mask.dtype, np.integer):
        raise SeglibError(f"{path}: mask must hold integer class indices, got dtype {mask.dtype}")
    bad = (mask < 0) | ((mask >= num_classes) & (mask != IGNORE_INDEX))
    if bad.any():
        raise SeglibError(f"{path}: mask value {int(mask[bad][0])} is outside the classes 0..{num_classes - 1} "
                          f"(and {IGNORE_INDEX} = ignore)")
    return mask.astype(np.int64, copy=False)


class PascalPartDataset(Dataset):
    """Items are (image HxWx3 uint8, mask HxW int64) numpy arrays, or transform(image, mask)."""

    def __init__(self, root=None, split: str = "train", transform=None):
        self.root = Path(root) if root is not None else default_root()
        if not self.root.is_dir():
            raise SeglibError(f"{self.root}: data folder does not exist; pass --data DIR or set SEGLIB_DATA")
        self.split = split
        self.transform = transform
        self.class_names = read_classes(self.root)
        self.ids = read_split(self.root, split)
        image_dir, mask_dir = self.root / "JPEGImages", self.root / "gt_masks"
        for folder in (image_dir, mask_dir):
            if not folder.is_dir():
                raise SeglibError(f"{folder}: folder not found; a data folder holds JPEGImages/ and gt_masks/")
        images, masks = set(os.listdir(image_dir)), set(os.listdir(mask_dir))
        self.image_paths = [_find(image_dir, i, IMAGE_SUFFIXES, images, "image") for i in self.ids]
        self.mask_paths = [_find(mask_dir, i, MASK_SUFFIXES, masks, "mask") for i in self.ids]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image = load_image(self.image_paths[index])
        mask = load_mask(self.mask_paths[index], self.num_classes)
        if mask.shape != image.shape[:2]:
            raise SeglibError(f"{self.mask_paths[index]}: mask is {mask.shape[1]}x{mask.shape[0]} but its image "
                              f"{self.image_paths[index].name} is {image.shape[1]}x{image.shape[0]} (WxH)")
        return image, mask

    def __getitem__(self, index: int):
        image, mask = self.load(index)
        return self.transform(image, mask) if self.transform is not None else (image, mask)


def statistics(dataset: PascalPartDataset, progress: bool = True):
    """Per-image facts as a pandas DataFrame: id, width, height and each class's pixel count."""
    import pandas as pd
    from tqdm import tqdm

    rows = []
    for i in tqdm(range(len(dataset)), desc=f"scan {dataset.split}", disable=not progress, mininterval=5, ncols=90):
        mask = load_mask(dataset.mask_paths[i], dataset.num_classes)
        with Image.open(dataset.image_paths[i]) as img:
            width, height = img.size
        counts = np.bincount(mask[mask != IGNORE_INDEX].ravel(), minlength=dataset.num_classes)
        rows.append({"id": dataset.ids[i], "split": dataset.split, "width": width, "height": height,
                     **{name: int(counts[c]) for c, name in enumerate(dataset.class_names)}})
    return pd.DataFrame(rows)


def class_shares(stats):
    """From statistics() rows of one or more splits: per class (report order), its share of each split's
    pixels (%, 2 decimals) and the share of the split's images that contain it (%, 1 decimal), as columns
    ("pixel share", split) and ("images containing it", split): the data notebook's and the report's table."""
    import pandas as pd

    order = [n for n in REPORT_ORDER if n in stats.columns]
    by_split = stats.groupby("split")[order]
    pixels = by_split.sum()
    shares = (pixels.T / pixels.sum(axis=1) * 100).round(2)
    presence = by_split.agg(lambda counts: (counts > 0).mean() * 100).T.round(1)
    return pd.concat({"pixel share": shares, "images containing it": presence}, axis=1)


class StreamBatchSampler:
    """Batches of (index, augmentation seed) from an endless stream of seeded epoch permutations,
    starting at a given iteration; rank r of w takes every w-th sample of each global batch, as
    DistributedSampler would, but resumable mid-epoch."""

    def __init__(self, size: int, batch_size: int, seed: int, start: int, stop: int, rank: int = 0, world: int = 1):
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.start, self.stop, self.rank, self.world = start, stop, rank, world

    def __len__(self):
        return self.stop - self.start

    def __iter__(self):
        global_batch = self.batch_size * self.world
        epoch, perm = None, None
        for iteration in range(self.start, self.stop):
            batch = []
            for k in range(iteration * global_batch + self.rank, (iteration + 1) * global_batch, self.world):
                if k // self.size != epoch:
                    epoch = k // self.size
                    perm = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 100003 + epoch))
                batch.append((int(perm[k % self.size]), self.seed * 1_000_003 + k))
            yield batch


class SeededAugment(Dataset):
    """Applies the random transform under a per-sample seed, leaving the global RNG untouched."""

    def __init__(self, dataset: PascalPartDataset, transform):
        self.dataset, self.transform = dataset, transform

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, item):
        index, seed = item
        image, mask = self.dataset.load(index)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.transform(image, mask)
