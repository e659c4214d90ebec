"""The GPU study script (scripts/device_study.sh) and its data packer, run on the CPU with the smoke
profile: the same commands a lent GPU machine runs, minus the GPU."""
import csv
import json
import os
import subprocess
import sys
import tarfile

import pytest
from conftest import REPO

PACK = REPO / "scripts" / "device_pack.py"
STUDY = REPO / "scripts" / "device_study.sh"


def pack(data, out, max_mb):
    return subprocess.run([sys.executable, str(PACK), str(data), str(out), "--max-mb", str(max_mb)],
                          capture_output=True, text=True, check=True)


def study(data, out, experiments):
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "EXPERIMENTS": experiments, "BENCH_ITERS": "1"}
    return subprocess.run(["bash", str(STUDY), str(data), "smoke"], capture_output=True, text=True, check=False,
                          cwd=REPO, env=env, timeout=900)


def test_pack_splits_losslessly_within_the_budget(npy_copy, tmp_path):
    pack(npy_copy, tmp_path / "pack", 0.5)
    chunks = sorted((tmp_path / "pack").iterdir())
    assert len(chunks) > 2
    seen = {}
    for chunk in chunks:
        assert (chunk / "train_id.txt").read_text() == (npy_copy / "train_id.txt").read_text()
        images = {p.stem for p in (chunk / "JPEGImages").iterdir()}
        assert images == {p.stem for p in (chunk / "gt_masks").iterdir()}  # an image travels with its mask
        size = sum(p.stat().st_size for p in chunk.rglob("*") if p.is_file())
        assert size <= 0.5 * 2**20 + 4096 or len(images) == 1
        for p in (chunk / "JPEGImages").iterdir():
            assert p.name not in seen
            seen[p.name] = p.read_bytes()
    originals = {p.name: p.read_bytes() for p in (npy_copy / "JPEGImages").iterdir()}
    assert seen == originals


@pytest.mark.slow
def test_study_script_on_cpu(sample_root, tmp_path):
    pack(sample_root, tmp_path / "pack", 1.0)
    out = tmp_path / "out"
    result = study(tmp_path / "pack", out, "fcn_unet_scratch")  # the quickest at the smoke profile
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    with tarfile.open(out / "device_study.tar.gz") as tar:
        names = tar.getnames()
    run = "runs/fcn_unet_scratch-smoke-seed0"
    assert {f"{run}/{f}" for f in ("config.yaml", "metrics.json", "log.csv", "curve.csv")} <= set(names)
    assert not [n for n in names if n.endswith(".pt")]  # no checkpoint comes back
    rows = list(csv.DictReader((out / "device_summary.csv").open()))
    assert [r["run"] for r in rows] == ["fcn_unet_scratch-smoke-seed0"]
    assert float(rows[0]["eval_seconds"]) > 0 and rows[0]["host"]
    bench = json.loads((out / "bench.json").read_text())
    assert bench["train_images_per_s"] > 0
    assert json.loads((out / "bench-fp32.json").read_text())["precision"] == "fp32"  # precision apart from layout
    assert (out / "study.log").read_text().count("[study]") >= 3


def test_study_script_refuses_a_missing_chunk(sample_root, tmp_path):
    pack(sample_root, tmp_path / "pack", 1.0)
    for p in (tmp_path / "pack" / "data-1").rglob("*"):
        if p.is_file() and p.parent.name == "JPEGImages":
            p.unlink()
    result = study(tmp_path / "pack", tmp_path / "out", "deeplabv3plus_pretrained")
    assert result.returncode != 0
    errors = [line for line in result.stdout.splitlines() + result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no image for id" in errors[0] and "chunk" in errors[0]
    assert "Traceback" not in result.stderr
