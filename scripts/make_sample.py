"""Rebuild the embedded sample (data/sample) from a full copy of the dataset.

    python scripts/make_sample.py ../shared/data/pascal-part data/sample --train 24 --val 12

Images and masks are copied byte for byte; the ids are a seeded random choice, so the sample is
reproducible and not hand-picked.
"""
import argparse
import random
import shutil
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("src", type=Path)
parser.add_argument("dst", type=Path)
parser.add_argument("--train", type=int, default=24)
parser.add_argument("--val", type=int, default=12)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

rng = random.Random(args.seed)
(args.dst / "JPEGImages").mkdir(parents=True, exist_ok=True)
(args.dst / "gt_masks").mkdir(parents=True, exist_ok=True)
shutil.copy(args.src / "classes.txt", args.dst / "classes.txt")
for split, count in (("train", args.train), ("val", args.val)):
    ids = (args.src / f"{split}_id.txt").read_text().split()
    chosen = sorted(rng.sample(ids, count))
    (args.dst / f"{split}_id.txt").write_text("\n".join(chosen) + "\n")
    for image_id in chosen:
        shutil.copy(args.src / "JPEGImages" / f"{image_id}.jpg", args.dst / "JPEGImages")
        shutil.copy(args.src / "gt_masks" / f"{image_id}.png", args.dst / "gt_masks")
print(f"wrote {args.train} train and {args.val} val images to {args.dst}")
