"""Comparisons over seeds: the arithmetic of gap_vs_noise and compare_by's refusal to mix settings."""
import pandas as pd
import pytest

from seglib.errors import SeglibError
from seglib.results import compare_by, gap_vs_noise

from conftest import run_cli


def _runs(rows):
    base = {"encoder": "EfficientNet-Lite2", "weights": "lite2-package", "loss": "ce", "iterations": 1500, "crop": 256,
            "scale_range": "0.5-2.0", "eval_flip": True, "eval_scales": "1.0", "val_images": 500, "train_seconds": 900.0}
    return pd.DataFrame([{**base, **r} for r in rows])


def test_gap_vs_noise_by_hand():
    g = gap_vs_noise([38.0, 39.0, 40.0], [38.5, 39.5, 40.5])  # std 1.0 each, gap 0.5: noise
    assert g["difference"] == pytest.approx(0.5) and g["std_a"] == pytest.approx(1.0)
    assert not g["exceeds_noise"]
    assert gap_vs_noise([38.0, 38.2, 38.4], [36.0, 36.2, 36.4])["exceeds_noise"]  # gap 2.0 > 2 * 0.2
    assert not gap_vs_noise([38.0], [30.0])["exceeds_noise"]  # one seed each: no noise estimate, no claim
    one_seed = gap_vs_noise([38.0, 38.2, 38.4], [39.0])  # judged by the group that has a variance
    assert one_seed["noise"] == pytest.approx(0.2) and one_seed["exceeds_noise"]


def test_compare_by_precision_groups_seeds():
    df = _runs([{"precision": p, "seed": s, "mIoU": m} for p, ms in (("fp32", (38.0, 39.0, 40.0)), ("bf16", (39.0, 39.5, 40.0)))
                for s, m in enumerate(ms)])
    table, gap = compare_by(df, "precision")
    assert list(table.index) == ["fp32", "bf16"]
    assert table.loc["bf16", "mIoU mean"] == pytest.approx(39.5) and table.loc["fp32", "seeds"] == "0 1 2"
    assert gap["difference"] == pytest.approx(0.5) and not gap["exceeds_noise"]


def test_compare_by_refuses_runs_with_another_difference():
    df = _runs([{"precision": "fp32", "seed": 0, "mIoU": 38.0}, {"precision": "bf16", "seed": 0, "mIoU": 39.0, "iterations": 200}])
    with pytest.raises(SeglibError, match="differ in iterations"):
        compare_by(df, "precision")
    with pytest.raises(SeglibError, match="unknown summary column 'precisoin'"):
        compare_by(df, "precisoin")


def test_cli_compare_rejects_an_unfinished_run_folder(tmp_path):
    (tmp_path / "run").mkdir()
    res = run_cli("compare", tmp_path / "run")
    assert res.returncode == 2 and "not a finished run folder" in res.stderr and "Traceback" not in res.stderr
