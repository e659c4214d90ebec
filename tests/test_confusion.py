"""Where each class's pixels go: the stored confusion matrix, read back in the report's class order, and
the body parts' errors split by the hierarchy's halves."""
import numpy as np
import pandas as pd

from seglib import confusion, plots, report
from seglib.data import REPORT_ORDER

# the distribution's classes.txt order, not the report's
DISTRIBUTION = ["background", "lower-arms", "torso", "lower-legs", "head", "upper-legs", "upper-arms"]


def _matrix(order):
    """Pixel counts with known errors, rows truth: every part 100 pixels, background 1000."""
    frame = pd.DataFrame(0, index=order, columns=order, dtype=np.int64)
    frame.loc["background", "background"] = 1000
    for part in REPORT_ORDER[1:]:
        frame.loc[part, part] = 60
    frame.loc["head", "background"] = 40            # head: missed to background
    frame.loc["torso", "head"] = 40                 # torso: the same half
    frame.loc["upper-arms", "lower-arms"] = 10      # upper arms: same half 10, other half 30
    frame.loc["upper-arms", "upper-legs"] = 30
    frame.loc["lower-arms", "lower-legs"] = 40      # lower arms: the other half
    frame.loc["upper-legs", "lower-legs"] = 40      # upper legs: the same half (both legs are the lower body)
    frame.loc["lower-legs", "background"] = 20
    frame.loc["lower-legs", "torso"] = 20           # lower legs: background 20, other half 20
    return frame


def test_stored_matrix_reads_back_in_the_report_order():
    frame = _matrix(DISTRIBUTION)
    metrics = {"confusion": {"classes": DISTRIBUTION, "pixels": frame.to_numpy().tolist()}}
    back = confusion.stored(metrics)
    assert list(back.index) == REPORT_ORDER == list(back.columns)
    pd.testing.assert_frame_equal(back, frame.loc[REPORT_ORDER, REPORT_ORDER])
    assert confusion.stored({"mIoU": 50.0}) is None  # a run scored before matrices were stored


def test_part_errors_split_by_the_body_halves():
    errors = confusion.part_errors(_matrix(REPORT_ORDER))
    expected = {"head": (40, 0, 0), "torso": (0, 40, 0), "upper-arms": (0, 10, 30), "lower-arms": (0, 0, 40),
                "upper-legs": (0, 40, 0), "lower-legs": (20, 0, 20)}
    for part, shares in expected.items():
        assert tuple(errors.loc[part, ["background", "same half", "other half"]]) == shares, part
        assert errors.loc[part, "missed"] == 40  # = 100 - accuracy
    # all parts: pixel-weighted (600 part pixels, 60 to background, 90 same half, 90 other half)
    assert errors.loc["all parts"].round(6).to_dict() == {"background": 10.0, "same half": 15.0, "other half": 15.0,
                                                           "missed": 40.0}


def test_part_errors_need_the_hierarchy_classes():
    names = ["background", "cat", "dog"]
    assert confusion.part_errors(pd.DataFrame(np.eye(3, dtype=np.int64), index=names, columns=names)) is None


def test_row_shares_and_the_grid():
    shares = confusion.row_shares(_matrix(REPORT_ORDER))
    assert np.allclose(shares.sum(axis=1), 100)
    fig = plots.confusion_grid({"a": shares, "b": shares, "c": shares, "d": shares, "e": shares})
    assert len([ax for ax in fig.axes if ax.axison]) == 5 and fig.axes[0].get_ylabel() == "ground truth"


def test_a_class_without_pixels_is_no_share():
    frame = _matrix(DISTRIBUTION)
    frame.loc["head"] = 0
    assert confusion.row_shares(frame).loc["head"].isna().all()
    assert np.isnan(confusion.part_errors(frame).loc["head", "missed"])


def _study(tmp_path, matrices: dict) -> report.Study:
    """A study whose runs store the given matrices: {(experiment, seed): frame}; None for a run scored before
    evaluations stored the matrix."""
    import json

    rows, records = [], {}
    for (experiment, seed), frame in matrices.items():
        run = f"{experiment}-paper-seed{seed}"
        folder = tmp_path / "runs" / run
        folder.mkdir(parents=True)
        stored = {} if frame is None else {"confusion": {"classes": list(frame.index), "pixels": frame.to_numpy().tolist()}}
        (folder / "metrics.json").write_text(json.dumps({"mIoU": 50.0, **stored}))
        rows.append({"run": run, "experiment": experiment, "profile": "paper", "seed": seed, "mIoU": 50.0})
        records[run] = folder
    return report.Study(tmp_path, pd.DataFrame(rows), records, main="paper")


def test_the_hierarchy_against_cross_entropy_is_one_table_and_one_sentence(tmp_path):
    """Nine verdict sentences in a row (three experiments, three kinds of error) read as a wall: one table of
    the CE shares and each experiment's difference, '*' beyond seed variation, and one sentence naming those."""
    base = _matrix(REPORT_ORDER)
    fewer = base.copy()
    fewer.loc["head", ["background", "head"]] = [10, 90]  # 30 fewer part pixels taken for background
    wobble = base.copy()
    wobble.loc["head", ["background", "head"]] = [41, 59]
    study = _study(tmp_path, {("deeplabv3plus_pretrained", 0): base, ("deeplabv3plus_pretrained", 1): wobble,
                              ("deeplabv3plus_pretrained_hierarchy", 0): fewer,
                              ("deeplabv3plus_pretrained_hierarchy", 1): fewer})
    table, sentence = confusion.against_ce(study)
    assert list(table.columns) == ["cross-entropy", "+ hierarchy"]
    assert list(table.index) == ["seeds"] + [f"part pixels {words}" for words in confusion.SPLIT.values()]
    assert table.index[1] == "part pixels taken for background"
    assert list(table.loc["seeds"]) == ["2", "2"]
    assert table.loc["part pixels taken for background", "cross-entropy"] == "10.08 ± 0.12"  # 60 and 61 of 600
    assert table.loc["part pixels taken for background", "+ hierarchy"] == "-5.08*"  # 30 of 600 = 5.00
    assert table.loc["part pixels taken for another part of the same half body", "+ hierarchy"] == "+0.00"
    assert sentence == ("Beyond seed-to-seed variation: + hierarchy, part pixels taken for background -5.08 points.")
    one = _study(tmp_path / "one", {("deeplabv3plus_pretrained", 0): base, ("deeplabv3plus_pretrained_hierarchy", 0): fewer})
    table, sentence = confusion.against_ce(one)
    assert table.loc["part pixels taken for background", "+ hierarchy"] == "-5.00"  # no star: one seed each
    assert sentence == "Not judged (one seed on each side): + hierarchy."
    # The committed study: three CE seeds, two scored before matrices were stored; the table says one.
    older = _study(tmp_path / "older", {("deeplabv3plus_pretrained", 0): None, ("deeplabv3plus_pretrained", 1): None,
                                        ("deeplabv3plus_pretrained", 2): base,
                                        ("deeplabv3plus_pretrained_hierarchy", 0): fewer,
                                        ("deeplabv3plus_pretrained_hierarchy", 1): wobble})
    table, _ = confusion.against_ce(older)
    assert list(table.loc["seeds"]) == ["1", "2"]
    assert table.loc["part pixels taken for background", "cross-entropy"] == "10.00"  # one seed: no ± std
    assert confusion.against_ce(_study(tmp_path / "ce", {("deeplabv3plus_pretrained", 0): base})) == (None, "")
