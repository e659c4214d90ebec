import numpy as np
import pytest
import torch
from conftest import run_cli
from PIL import Image

from seglib.data import REPORT_ORDER, PascalPartDataset, read_classes, report_order
from seglib.errors import SeglibError
from seglib.transforms import EvalPreset, TrainPreset


def test_items_are_uint8_images_and_integer_masks(sample_root):
    ds = PascalPartDataset(sample_root, "train")
    assert len(ds) == 24
    image, mask = ds[0]
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert np.issubdtype(mask.dtype, np.integer) and mask.shape == image.shape[:2]
    assert set(np.unique(mask)) <= set(range(7))


def test_class_names_are_the_reports_in_table_order(sample_root):
    names = read_classes(sample_root)
    assert names[0] == "background" and names[1] == "lower-arms" and names[6] == "upper-arms"
    assert [names[i] for i in report_order(names)] == REPORT_ORDER


def test_npy_masks_load_identically_to_png(sample_root, npy_copy):
    png, npy = PascalPartDataset(sample_root, "val"), PascalPartDataset(npy_copy, "val")
    assert npy.mask_paths[0].suffix == ".npy"
    for i in range(len(png)):
        a, b = png[i], npy[i]
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_full_dataset_npy_and_png_agree_on_a_few_ids(shared_root, tmp_path):
    ds = PascalPartDataset(shared_root, "val")
    for i in range(3):
        np.save(tmp_path / "m.npy", np.array(Image.open(ds.mask_paths[i])))
        np.testing.assert_array_equal(np.load(tmp_path / "m.npy"), ds[i][1])
    assert len(ds) == 500 and len(PascalPartDataset(shared_root, "train")) == 1000


def _first(root, split="train"):
    return (root / f"{split}_id.txt").read_text().split()[0]


@pytest.mark.parametrize("breakage, expected", [
    ("no_folder", "data folder does not exist"),
    ("no_image", "no image for id"),
    ("no_mask", "no mask for id"),
    ("mask_size", "but its image"),
    ("mask_value", "mask value 9 is outside"),
    ("corrupt_jpeg", "unreadable or corrupt image"),
    ("truncated_jpeg", "unreadable or corrupt image"),
    ("empty_split", "split file is empty"),
    ("missing_split", "split file not found"),
])
def test_bad_input_gives_one_clear_line(sample_copy, breakage, expected):
    root, image_id = sample_copy, _first(sample_copy)
    jpg, png = root / "JPEGImages" / f"{image_id}.jpg", root / "gt_masks" / f"{image_id}.png"
    if breakage == "no_folder":
        root = root / "nope"
    elif breakage == "no_image":
        jpg.unlink()
    elif breakage == "no_mask":
        png.unlink()
    elif breakage == "mask_size":
        Image.fromarray(np.zeros((10, 12), np.uint8)).save(png)
    elif breakage == "mask_value":
        mask = np.array(Image.open(png))
        mask[0, 0] = 9
        Image.fromarray(mask).save(png)
    elif breakage == "corrupt_jpeg":
        jpg.write_bytes(b"not a jpeg at all")
    elif breakage == "truncated_jpeg":
        jpg.write_bytes(jpg.read_bytes()[:2000])
    elif breakage == "empty_split":
        (root / "train_id.txt").write_text("\n")
    elif breakage == "missing_split":
        (root / "train_id.txt").unlink()
    with pytest.raises(SeglibError) as err:
        ds = PascalPartDataset(root, "train")
        ds[0]
    message = str(err.value)
    assert expected in message and "\n" not in message
    if breakage in ("no_image", "no_mask", "mask_size", "mask_value", "corrupt_jpeg"):
        assert image_id in message


def test_ignore_label_is_allowed_in_masks(sample_copy):
    image_id = _first(sample_copy)
    png = sample_copy / "gt_masks" / f"{image_id}.png"
    mask = np.array(Image.open(png))
    mask[:5] = 255
    Image.fromarray(mask).save(png)
    assert (PascalPartDataset(sample_copy, "train")[0][1][:5] == 255).all()


def test_cli_reports_a_data_error_in_one_line_without_traceback(tmp_path, native_bf16):
    proc = run_cli("train", "--experiment", "fcn_unet_scratch", "--profile", "smoke", "--data", tmp_path / "missing",
                   "--out", tmp_path / "run")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "data folder does not exist" in proc.stderr


def test_an_error_after_the_precision_choice_is_still_one_line(sample_copy, tmp_path, native_bf16):
    """fcn_unet_scratch asks for bf16: without native bf16 the fall-back is said once on stdout, in one
    plain line, and a broken training image still gives exactly one line on stderr."""
    train_ids = (sample_copy / "train_id.txt").read_text().split()
    for image_id in train_ids:
        (sample_copy / "JPEGImages" / f"{image_id}.jpg").write_bytes(b"not a jpeg")
    proc = run_cli("train", "--experiment", "fcn_unet_scratch", "--profile", "smoke", "--data", sample_copy,
                   "--out", tmp_path / "run")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.replace("\r", "\n").splitlines() if line.strip()]
    errors = [line for line in lines if not line.startswith("fcn_unet_scratch:")]  # the progress bar's lines
    assert len(errors) == 1 and errors[0].startswith("error: ") and "corrupt image" in errors[0], proc.stderr
    note = [line for line in proc.stdout.splitlines() if "native bf16" in line]
    expected = ("[seglib] this CPU has no native bf16 (AVX512-BF16 or AMX): precision_cpu=bf16 runs in fp32, "
                "which is faster here")
    assert note == ([] if native_bf16 else [expected])


def test_train_preset_keeps_image_and_mask_aligned():
    # an image whose colour encodes the class: after resize/crop/flip, colour must still match the mask
    mask = np.zeros((120, 160), np.int64)
    mask[20:80, 30:90], mask[60:110, 100:150] = 1, 2
    image = np.repeat((mask * 100).astype(np.uint8)[..., None], 3, axis=2)
    preset = TrainPreset(96, mean=(0, 0, 0), std=(1, 1, 1), scale_range=(0.5, 2.0))
    for seed in range(10):
        torch.manual_seed(seed)
        img, msk = preset(image, mask)
        assert img.shape == (3, 96, 96) and msk.shape == (96, 96)
        assert set(msk.unique().tolist()) <= {0, 1, 2, 255}  # nearest neighbour: no blended labels
        valid = msk != 255
        decoded = (img[0] * 255 / 100).round().long()
        agree = (decoded[valid] == msk[valid]).float().mean()
        assert agree > 0.97


def test_train_preset_pads_small_images_with_ignore():
    image, mask = np.zeros((40, 40, 3), np.uint8), np.zeros((40, 40), np.int64)
    torch.manual_seed(0)
    _, msk = TrainPreset(64, scale_range=(0.5, 0.5))(image, mask)  # short edge 32 < crop 64
    assert (msk == 255).any() and (msk == 0).any()


def test_train_size_resizes_before_a_smaller_crop():
    # left half class 1, right half class 2: a crop of the image at its crop-size scale always spans
    # both halves; resized to a 4x larger short edge first, most crops fall inside one half
    mask = np.ones((120, 160), np.int64)
    mask[:, 80:] = 2
    image = np.zeros((120, 160, 3), np.uint8)
    def classes_per_crop(preset):
        out = []
        for seed in range(12):
            torch.manual_seed(seed)
            out.append(len(preset(image, mask)[1].unique()))
        return out
    assert set(classes_per_crop(TrainPreset(96))) == {2}
    hires = TrainPreset(96, resize=480)
    assert hires(image, mask)[0].shape == (3, 96, 96)
    assert classes_per_crop(hires).count(1) >= 6


def test_eval_preset_normalises_without_resizing(sample_root):
    ds = PascalPartDataset(sample_root, "val", EvalPreset())
    img, msk = ds[0]
    assert img.dtype == torch.float32 and img.shape[1:] == msk.shape


def test_class_shares_per_split():
    """The data notebook's and the report's Table 2 from one function: per class, its share of each split's
    pixels and the share of the split's images that contain it, in the report's class order."""
    import pandas as pd

    from seglib.data import class_shares

    rows = [{"split": "train", "background": 60, "head": 40, "torso": 0},
            {"split": "train", "background": 100, "head": 0, "torso": 0},
            {"split": "val", "background": 50, "head": 25, "torso": 25}]
    table = class_shares(pd.DataFrame(rows))
    assert list(table.index) == ["background", "head", "torso"]
    assert table[("pixel share", "train")].tolist() == [80.0, 20.0, 0.0]
    assert table[("pixel share", "val")].tolist() == [50.0, 25.0, 25.0]
    assert table[("images containing it", "train")].tolist() == [100.0, 50.0, 0.0]


def test_the_data_notebooks_charts_draw_each_class_and_each_split(sample_root):
    """The data notebook's two charts are seglib functions (they were matplotlib in the notebook, out of the
    tests' reach): one bar per class and split on each panel, the pixel shares on a log scale (background
    dwarfs the limbs), and one point per image in one colour per split."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from seglib import plots
    from seglib.data import class_shares, statistics

    splits = {s: PascalPartDataset(sample_root, s) for s in ("train", "val")}
    stats = pd.concat([statistics(d) for d in splits.values()], ignore_index=True)
    table = class_shares(stats)
    fig = plots.class_shares(table)
    shares, presence = fig.axes
    assert shares.get_yscale() == "log" and presence.get_yscale() == "linear"
    for ax in (shares, presence):
        assert len(ax.patches) == 2 * len(table) and [t.get_text() for t in ax.get_xticklabels()] == list(table.index)
    plt.close(fig)
    fig = plots.image_sizes(stats)
    points = fig.axes[0].collections
    assert [c.get_label() for c in points] == ["train", "val"]
    assert [len(c.get_offsets()) for c in points] == [len(splits["train"]), len(splits["val"])]
    plt.close(fig)
