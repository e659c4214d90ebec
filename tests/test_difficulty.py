"""Which photos are hard: per-image mIoU by the share of the photo that the people cover."""
import pandas as pd

from seglib import difficulty, plots, report

CLASSES = ["background", "head", "torso"]


def _facts(shares):
    """data.statistics-like rows: 100-pixel photos whose people cover the given % (head only)."""
    return pd.DataFrame([{"id": f"im{i}", "split": "val", "width": 10, "height": 10, "background": 100 - s,
                          "head": s, "torso": 0} for i, s in enumerate(shares)])


def _study(tmp_path, per_run):
    """A study whose runs' records hold only per_image.csv: {(experiment, seed): {image id: mIoU}}."""
    rows, folders = [], {}
    for (experiment, seed), scores in per_run.items():
        run = f"{experiment}-paper-seed{seed}"
        folders[run] = tmp_path / run
        folders[run].mkdir()
        pd.DataFrame({"id": list(scores), "mIoU": list(scores.values())}).to_csv(folders[run] / "per_image.csv", index=False)
        rows.append({"run": run, "experiment": experiment, "profile": "paper", "seed": seed, "mIoU": 50.0})
    return report.Study(tmp_path, pd.DataFrame(rows), folders, main="paper")


def test_person_share_is_the_labelled_pixels_that_are_not_background():
    share = difficulty.person_share(_facts([2, 50]), CLASSES)
    assert share.to_dict() == {"im0": 2.0, "im1": 50.0}
    assert difficulty.person_share(_facts([2]).rename(columns={"background": "sky"}), ["sky", "head", "torso"]) is None


def test_scores_by_person_size_average_seeds_per_photo_then_photos_per_bin(tmp_path):
    shares = [1, 2, 3, 4, 40, 50, 60, 70]  # two bins of four photos
    pre = "deeplabv3plus_pretrained"
    study = _study(tmp_path, {
        (pre, 0): {f"im{i}": (20.0 if i < 4 else 60.0) for i in range(8)},
        (pre, 1): {f"im{i}": (30.0 if i < 4 else 50.0) for i in range(8)},
        ("deeplabv3plus_lite2_scratch", 0): {f"im{i}": 10.0 for i in range(6)},  # scored two photos fewer
    })
    table = difficulty.by_person_size(study, difficulty.person_share(_facts(shares), CLASSES), bins=2)
    assert list(table.index) == ["1.0-22.0%", "22.0-70.0%"] and table.photos.tolist() == [4, 4]
    assert table["DeepLabv3+ pretrained"].tolist() == [25.0, 55.0]
    assert table["DeepLabv3+ Lite2 (scratch)"].tolist() == [10.0, 10.0]
    assert difficulty.size_sentence(table) == (
        "DeepLabv3+ pretrained scores 25.0 mean per-image mIoU on the 4 photos whose people cover 1.0-22.0% of the "
        "pixels and 55.0 on the 4 where they cover 22.0-70.0%.")
    fig = plots.by_person_size(table)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["1.0-22.0%\n(4 photos)", "22.0-70.0%\n(4 photos)"]


def test_runs_without_per_image_scores_give_no_table(tmp_path):
    study = report.Study(tmp_path, pd.DataFrame([{"run": "r", "experiment": "deeplabv3plus_pretrained",
                                                  "profile": "paper", "seed": 0, "mIoU": 50.0}]),
                         {"r": tmp_path}, main="paper")
    assert difficulty.by_person_size(study, difficulty.person_share(_facts([1, 2]), CLASSES)) is None


def test_fewer_photos_than_bins_still_bin(tmp_path):
    study = _study(tmp_path, {("deeplabv3plus_pretrained", 0): {"im0": 10.0, "im1": 20.0, "im2": 30.0}})
    table = difficulty.by_person_size(study, difficulty.person_share(_facts([1, 5, 9]), CLASSES), bins=5)
    assert table.photos.sum() == 3
