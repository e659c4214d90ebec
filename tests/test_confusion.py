"""Where each class's pixels go: the stored confusion matrix, read back in the report's class order, and
the body parts' errors split by the hierarchy's halves."""
import numpy as np
import pandas as pd

from seglib import confusion, plots
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
