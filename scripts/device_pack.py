"""Split a data folder into chunks that each fit one device call's 64 MiB working tree, losslessly.

The PASCAL-Part copy is about 177 MB and the device tool sends at most 64 MiB a call (the repository
included), so the data travels over several calls to one warm machine: call k carries `.device/data-k`,
and the chunks already there stay (ignored paths not named in `carry` are kept). Each chunk is a partial
data folder (classes.txt and the split lists in every chunk, a share of JPEGImages/ and gt_masks/);
scripts/device_study.sh merges them and checks that every listed image arrived.

    python scripts/device_pack.py ../shared/data/pascal-part .device --max-mb 44
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

LISTS = ("classes.txt", "train_id.txt", "val_id.txt")


def pack(data: Path, out: Path, max_mb: float) -> list[Path]:
    """Write out/data-0, data-1, ... each at most max_mb (an image and its mask stay together)."""
    data, out = Path(data), Path(out)
    for name in LISTS:
        if not (data / name).is_file():
            raise SystemExit(f"error: {data / name}: not found; pass the data folder (JPEGImages/, gt_masks/, {name})")
    masks = {p.stem: p for p in (data / "gt_masks").iterdir()}
    pairs = [(image, masks[image.stem]) for image in sorted((data / "JPEGImages").iterdir()) if image.stem in masks]
    if not pairs:
        raise SystemExit(f"error: {data}: no image with a mask in JPEGImages/ and gt_masks/")
    budget = max_mb * 2**20
    chunks, size = [[]], 0
    for pair in pairs:
        pair_size = sum(p.stat().st_size for p in pair)
        if size + pair_size > budget and chunks[-1]:
            chunks.append([])
            size = 0
        chunks[-1].append(pair)
        size += pair_size
    if out.exists():
        shutil.rmtree(out)
    folders = []
    for k, chunk in enumerate(chunks):
        folder = out / f"data-{k}"
        (folder / "JPEGImages").mkdir(parents=True)
        (folder / "gt_masks").mkdir()
        for name in LISTS:
            shutil.copy2(data / name, folder / name)
        for image, mask in chunk:
            shutil.copy2(image, folder / "JPEGImages" / image.name)
            shutil.copy2(mask, folder / "gt_masks" / mask.name)
        folders.append(folder)
    return folders


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path, nargs="?", default=Path(".device"))
    parser.add_argument("--max-mb", type=float, default=44.0,
                        help="per chunk; the repository (about 15 MiB) travels too, 64 MiB a call; the wheels go in a call of their own")
    args = parser.parse_args(argv)
    folders = pack(args.data, args.out, args.max_mb)
    study = f"bash scripts/device_study.sh {args.out} paper"
    print("run call 1: carry [.whl] (23 MB of wheels beside the repository), command 'true'")
    for k, folder in enumerate(folders):
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20
        command = study if k == len(folders) - 1 else "true"
        print(f"{folder}: {sum(1 for _ in (folder / 'JPEGImages').iterdir())} images, {size:.1f} MiB"
              f"  -> run call {k + 2}: carry [{folder}], command '{command}'")
    print("one call after another, while the machine stays warm: a chunk carried earlier stays there")
    return 0


if __name__ == "__main__":
    sys.exit(main())
