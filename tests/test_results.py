"""Comparisons over seeds: the arithmetic of gap_vs_noise and compare_by's refusal to mix settings."""
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_cli

from seglib.errors import SeglibError
from seglib.layout import latex_fitting_the_page
from seglib.results import (
    combined_table,
    compare_by,
    course_report,
    gap_verdict,
    gap_vs_noise,
    groups,
    main_profile,
    per_class_iou,
    schedule_caption,
)


def _runs(rows):
    base = {"encoder": "EfficientNet-Lite2", "weights": "lite2-package", "loss": "ce", "iterations": 1500, "crop": 256,
            "train_size": 256, "scale_range": "0.5-2.0", "eval_flip": True, "eval_scales": "1.0", "val_images": 500, "train_seconds": 900.0}
    return pd.DataFrame([{**base, **r} for r in rows])


def test_gap_vs_noise_by_hand():
    g = gap_vs_noise([38.0, 39.0, 40.0], [38.5, 39.5, 40.5])  # std 1.0 each, gap 0.5: noise
    assert g["difference"] == pytest.approx(0.5) and g["std_a"] == pytest.approx(1.0)
    assert not g["exceeds_noise"]
    assert gap_vs_noise([38.0, 38.2, 38.4], [36.0, 36.2, 36.4])["exceeds_noise"]  # gap 2.0 > 2 * 0.2
    assert not gap_vs_noise([38.0], [30.0])["exceeds_noise"]  # one seed each: no noise estimate, no claim
    one_seed = gap_vs_noise([38.0, 38.2, 38.4], [39.0])  # judged by the group that has a variance
    assert one_seed["noise"] == pytest.approx(0.2) and one_seed["exceeds_noise"]


def test_gap_verdict_words_every_case():
    assert gap_verdict(gap_vs_noise([38.0, 38.2, 38.4], [36.0, 36.2, 36.4])) == "exceeds seed-to-seed variation (2 x 0.20)"
    assert gap_verdict(gap_vs_noise([38.0, 39.0, 40.0], [38.5])).startswith("is within")
    assert gap_verdict(gap_vs_noise([38.0], [30.0])).startswith("cannot be judged")


def test_runs_of_another_profile_get_rows_of_their_own():
    rows = [{"experiment": "deeplabv3plus_pretrained", "profile": "cpu", "seed": s, "mIoU": m, "mAcc": 50.0, "aAcc": 90.0,
             "IoU head": m} for s, m in enumerate((38.0, 39.0, 40.0))]
    rows.append({**rows[0], "profile": "cpu512", "crop": 512, "train_size": 512, "iterations": 2000, "mIoU": 48.0,
                 "IoU head": 60.0})
    df = _runs(rows)
    assert main_profile(df) == "cpu" and main_profile(df, "cpu512") == "cpu512"
    assert [(e, p, len(g)) for e, p, g in groups(df, "cpu")] == [("deeplabv3plus_pretrained", "cpu", 3),
                                                                  ("deeplabv3plus_pretrained", "cpu512", 1)]
    table = combined_table(df)
    assert list(table.index) == ["DeepLabv3+ pretrained", "DeepLabv3+ pretrained [cpu512]"]
    assert table["ours", "mIoU"].tolist() == ["39.00 ± 1.00", "48.00"] and table["setting", "crop"].tolist() == [256, 512]
    reported = course_report()["deeplabv3plus_pretrained"]["mIoU"]
    assert table["course report", "mIoU"].tolist() == [reported, reported]  # the course report's own, labelled
    assert schedule_caption(df[df.profile == "cpu512"]) == "crop 512, 2000 iterations"
    assert schedule_caption(df.assign(train_size=512)[:1]) == "crop 256 of images resized to short edge 512, 1500 iterations"
    assert per_class_iou(df).loc["head"].tolist() == [39.0, 60.0]  # the cpu512 run is not averaged into the cpu seeds
    # a score a run lacks (NaN) is left out of its cells, worded as everywhere else in the report (report.fmt)
    gappy = combined_table(df.assign(mAcc=[50.0, float("nan"), float("nan"), float("nan")]))
    assert gappy["ours", "mAcc"].tolist() == ["50.00", "n/a"]


def test_report_tables_name_their_index_in_the_header_row():
    """pandas writes an index's name on a row of its own under the header, an empty-looking row in a paper's
    table; the report's tables carry it in the header row, above the index, for flat and grouped columns."""
    flat = pd.DataFrame({"mIoU": [51.0]}, index=pd.Index(["DeepLabv3+ pretrained"], name="experiment"))
    lines = latex_fitting_the_page(flat).splitlines()
    assert "experiment & mIoU \\\\" in lines and not any(line.startswith("experiment &  ") for line in lines)
    grouped = combined_table(_runs([{"experiment": "deeplabv3plus_pretrained", "profile": "cpu", "seed": 0, "mIoU": 40.0,
                                     "mAcc": 50.0, "aAcc": 90.0}]))
    header = [line for line in latex_fitting_the_page(grouped).splitlines() if line.startswith("experiment")]
    assert header == ["experiment & encoder & crop & iterations & seeds & mIoU & mAcc & mIoU & mAcc \\\\"]
    # the short edge gets a column only where some run's differs from its crop (as the report's own do not)
    rows = [{"experiment": "deeplabv3plus_pretrained", "profile": p, "seed": 0, "mIoU": 40.0, "mAcc": 50.0, "aAcc": 90.0,
             "train_size": t} for p, t in (("cpu", 256), ("cpu_hires", 512))]
    assert ("setting", "short edge") in combined_table(_runs(rows)).columns


def test_a_setting_every_experiment_shares_moves_from_the_all_experiments_table_to_its_caption():
    """A column repeating one value in every row (every paper run trains 2000 iterations) only widened the
    table past the page: it is dropped, and said once through attrs["shared"]; a setting that differs stays."""
    rows = [{"experiment": e, "profile": "cpu", "seed": 0, "mIoU": 40.0, "mAcc": 50.0, "aAcc": 90.0, "crop": c}
            for e, c in (("deeplabv3plus_pretrained", 512), ("deeplabv3plus_scratch", 256))]
    table = combined_table(_runs(rows))
    assert ("setting", "iterations") not in table.columns and ("setting", "crop") in table.columns
    assert table.attrs["shared"] == "1500 iterations"
    same_crop = combined_table(_runs([{**r, "crop": 512, "train_size": 512} for r in rows]))
    assert same_crop.attrs["shared"] == "crop 512, 1500 iterations"
    assert ("setting", "crop") not in same_crop.columns
    assert combined_table(_runs(rows[:1])).attrs["shared"] == ""  # one row: its settings stay in the table


def test_compare_by_precision_groups_seeds():
    df = _runs([{"precision": p, "seed": s, "mIoU": m} for p, ms in (("fp32", (38.0, 39.0, 40.0)), ("bf16", (39.0, 39.5, 40.0)))
                for s, m in enumerate(ms)])
    table, (gap,) = compare_by(df, "precision")
    assert list(table.index) == ["fp32", "bf16"]
    assert table.loc["bf16", "mIoU mean"] == pytest.approx(39.5) and table.loc["fp32", "seeds"] == "0 1 2"
    assert gap["difference"] == pytest.approx(0.5) and not gap["exceeds_noise"]


def test_compare_by_refuses_runs_with_another_difference():
    df = _runs([{"precision": "fp32", "seed": 0, "mIoU": 38.0}, {"precision": "bf16", "seed": 0, "mIoU": 39.0, "iterations": 200}])
    with pytest.raises(SeglibError, match="differ in iterations"):
        compare_by(df, "precision")
    with pytest.raises(SeglibError, match="unknown summary column 'precisoin'"):
        compare_by(df, "precisoin")


def test_compare_by_experiment_compares_recipes_within_one_budget():
    """A recipe (issue 18's best: CE + Lovász, rescale, flip) changes several settings at once, and that is
    what grouping by experiment compares; a different budget is still refused, and grouping by one
    setting still refuses runs that also differ in the hierarchy heads."""
    base = [{"experiment": "deeplabv3plus_pretrained", "seed": s, "mIoU": m} for s, m in enumerate((50.0, 51.0, 52.0))]
    best = [{"experiment": "deeplabv3plus_pretrained_best", "loss": "ce+lovasz", "hierarchy_weight": 0.4,
             "scale_range": "0.5-2.0", "eval_flip": True, "seed": s, "mIoU": m} for s, m in enumerate((55.0, 55.5, 56.0))]
    table, (gap,) = compare_by(_runs([{"hierarchy_weight": 0.0, "scale_range": "1.0-1.0", "eval_flip": False, **r}
                                      for r in base] + best), "experiment")
    assert table["mIoU mean"].tolist() == [51.0, 55.5] and gap["difference"] == pytest.approx(4.5) and gap["exceeds_noise"]
    with pytest.raises(SeglibError, match="differ in iterations"):
        compare_by(_runs(base + [{**best[0], "iterations": 1000}]), "experiment")
    hierarchy = [{**r, "experiment": "deeplabv3plus_pretrained_hierarchy", "hierarchy_weight": 0.4} for r in base]
    with pytest.raises(SeglibError, match="differ in hierarchy_weight"):
        compare_by(_runs([{**r, "hierarchy_weight": 0.0} for r in base] + hierarchy), "loss")


def test_compare_by_experiment_judges_each_recipe_against_the_first_group():
    """Issue 18 compares each experiment beyond the course report with the pretrained CE seeds; with three
    groups compare printed the table and no verdict at all. Each further group now gets its gap to the
    first (the baseline: the group of the first run given)."""
    rows = [{"experiment": e, "seed": s, "mIoU": m} for e, ms in (("ce", (50.0, 51.0, 52.0)), ("hierarchy", (55.0, 55.5)),
                                                                   ("ce_lovasz", (51.5,))) for s, m in enumerate(ms)]
    table, gaps = compare_by(_runs(rows), "experiment")
    assert list(table.index) == ["ce", "hierarchy", "ce_lovasz"]
    assert [(g["a"], g["b"]) for g in gaps] == [("ce", "hierarchy"), ("ce", "ce_lovasz")]
    assert gaps[0]["difference"] == pytest.approx(4.25) and gaps[0]["exceeds_noise"]
    assert gaps[1]["difference"] == pytest.approx(0.5) and not gaps[1]["exceeds_noise"] and gaps[1]["seeds_b"] == 1
    assert compare_by(_runs(rows[:3]), "experiment")[1] == []


def test_cli_compare_reads_committed_records(capsys):
    """On a fresh clone the study's runs exist only as records (results/runs/): compare reads those too."""
    from seglib.cli import main

    records = Path(__file__).parent / "records" / "runs"
    assert main(["compare", *sorted(map(str, records.glob("deeplabv3plus_pretrained*-smoke-seed*"))), "--by", "experiment"]) == 0
    out = capsys.readouterr().out
    assert "deeplabv3plus_pretrained_lovasz" in out and "seed-to-seed std" in out
    # three groups: a verdict for each against the first; a single seed's std reads n/a, not nan
    runs = [records / f"deeplabv3plus_pretrained{e}-smoke-seed{s}" for e, s in (("", 0), ("", 1), ("_lovasz", 0), ("_lovasz", 1),
                                                                                 ("", 0))]
    runs[-1] = records / "deeplabv3plus_lite2_scratch-smoke-seed0"
    assert main(["compare", *map(str, runs), "--by", "experiment"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "NaN" not in "\n".join(lines) and lines[-3].split()[4] == "n/a"  # the one-seed group's std
    assert lines[-2].startswith("mIoU deeplabv3plus_pretrained_lovasz - deeplabv3plus_pretrained: ")
    assert lines[-1].startswith("mIoU deeplabv3plus_lite2_scratch - deeplabv3plus_pretrained: ")
    assert "/ n/a (1 seed): the gap " in lines[-1] and "nan" not in lines[-1]


def test_cli_compare_rejects_an_unfinished_run_folder(tmp_path):
    (tmp_path / "run").mkdir()
    res = run_cli("compare", tmp_path / "run")
    assert res.returncode == 2 and "neither a finished run folder" in res.stderr and "Traceback" not in res.stderr


def test_pace_is_the_median_step_of_the_loss_log_so_pauses_do_not_count(tmp_path):
    """The committed pretrained run's wall time (22,250 s) counted hours it was paused beside the test
    suite; 2000 iterations at its pace take about 13,000 s. The median step of log.csv is the pace."""
    from seglib.results import seconds_per_iteration

    steps = [65.0] * 9 + [2470.0] + [70.0] * 10  # 20 logged steps of 10 iterations, one with a long pause
    seconds = pd.Series(steps).cumsum()
    pd.DataFrame({"iteration": range(10, 210, 10), "loss": 1.0, "lr": 0.01, "seconds": seconds}).to_csv(
        tmp_path / "log.csv", index=False)
    assert seconds_per_iteration(tmp_path) == pytest.approx(7.0) and seconds.iloc[-1] / 200 > 18
    pd.DataFrame({"iteration": [10], "loss": 1.0, "lr": 0.01, "seconds": [65.0]}).to_csv(tmp_path / "log.csv", index=False)
    assert seconds_per_iteration(tmp_path) is None and seconds_per_iteration(tmp_path / "missing") is None


def test_a_wide_table_wraps_its_row_labels_before_it_is_scaled_down():
    """The report's widest tables (all experiments, learning curves, the runs) were scaled to the text width
    as they were, to 7-8 pt; their row labels now break onto two lines at the widest label's middle space
    and the column gaps narrow first, the rows set a little apart. Tables that fit are left as pandas writes them."""
    labels = pd.Index(["DeepLabv3+ pretrained + hierarchy", "DeepLabv3+ R50 (scratch)"], name="experiment")
    wide = pd.DataFrame({c: [2000, 512] for c in ("seed", "crop", "iterations", "machine", "s/it", "wall h", "mIoU",
                                                   "mAcc", "aAcc", "precision")}, index=labels).assign(profile="paper256")
    latex = latex_fitting_the_page(wide)
    # "DeepLabv3+ pretrained" / "+ hierarchy": 21 characters, half an em each
    assert "\\begin{tabular}{>{\\raggedright\\arraybackslash}p{10.5em}rrrrrrrrrrl}" in latex
    # its rows a little apart, so that a label's second line is not read as a row of its own
    assert latex.startswith("{\\setlength{\\tabcolsep}{4pt}\\renewcommand{\\arraystretch}{1.25}"
                            "\\begin{adjustbox}{max width=\\linewidth}")
    assert latex.rstrip().endswith("\\end{adjustbox}}") and "experiment & seed & crop" in latex
    narrow = latex_fitting_the_page(wide[["mIoU"]])
    assert "p{" not in narrow and "tabcolsep" not in narrow and "arraystretch" not in narrow
    assert "\\begin{tabular}{lr}" in narrow
    # grouped columns (the all-experiments table): one format letter per column still
    grouped = combined_table(_runs([{"experiment": e, "profile": "cpu", "seed": 0, "mIoU": 40.0, "mAcc": 50.0,
                                     "aAcc": 90.0} for e in ("deeplabv3plus_pretrained_hierarchy", "deeplabv3plus_scratch")]))
    grouped["ours", "note"] = "a long column of text " * 2
    assert "p{" in latex_fitting_the_page(grouped)
