"""The paper's parts that do not need a run: the figures' image rule, the close-ups' crop and rule,
numbered captions and generated verdicts."""
from shutil import which

import numpy as np
import pandas as pd
import pytest

from seglib import (
    beyond,
    claims,
    difficulty,
    layout,
    pictures,
    plots,
    protocol,
    records,
    report,
    results,
)
from seglib.data import PascalPartDataset
from seglib.errors import SeglibError


def test_figure_images_follow_the_ground_truth_rule_and_a_fixed_seed(sample_root):
    val = PascalPartDataset(sample_root, "val")
    ids, rule = records.figure_ids(val, count=3)
    assert ids == records.figure_ids(val, count=3)[0] and ids == sorted(ids) and len(ids) == 3
    facts = {f["id"]: f for f in records.part_facts(val)}
    median = np.median([f["person"] for f in facts.values()])
    least = int(rule.split("at least ")[1].split(" ")[0])
    assert all(facts[i]["parts"] >= least and facts[i]["person"] >= median for i in ids)
    assert "seed 0" in rule and "without looking at any prediction" in rule
    assert records.figure_ids(val, count=3, seed=1)[0] != ids or len({f["id"] for f in facts.values()}) <= 3


def test_the_prediction_figures_are_drawn_from_the_records_alone(sample_root, tmp_path):
    """Figures 3, 4 and 8: each row a val photo and its ground truth from the data folder, each column a run's
    stored mask for that photo; a run without one stops with the file to export, not a KeyError."""
    from conftest import REPO

    study = report.load_study(REPO / "tests" / "records")
    val = PascalPartDataset(sample_root, "val")
    folders = report.first_seed_records(study)
    fig = pictures.recorded_comparison(val, study.figure_ids, folders)
    axes = np.array(fig.axes[:len(study.figure_ids) * (2 + len(folders))]).reshape(len(study.figure_ids), -1)
    assert axes.shape[1] == 2 + len(folders)
    photo = val.load(val.ids.index(study.figure_ids[0]))[0]
    assert np.array_equal(axes[0, 0].images[0].get_array(), photo)  # the photo of that id, not of an index
    assert [ax.get_ylabel() for ax in axes[:, 0]] == study.figure_ids  # rows labelled by their ids
    labelled = pictures.recorded_comparison(val, study.figure_ids[:1], folders, labels=["50th pct"])
    assert labelled.axes[0].get_ylabel() == "50th pct"
    with pytest.raises(SeglibError, match="no stored prediction"):
        pictures.recorded_comparison(val, study.figure_ids[:1], {"empty": tmp_path})
    (image_id, image, truth, predicted), = pictures.recorded_examples(val, study.figure_ids[:1], folders)  # Figure 6's
    assert image_id == study.figure_ids[0] and np.array_equal(image, photo) and truth.shape == image.shape[:2]
    assert set(predicted) == set(folders) and np.array_equal(predicted[next(iter(folders))],
                                                             records.read_mask(next(iter(folders.values())), image_id))


def _two_people():
    """2008_000132's trap: two people at the left and right edges, the mean of all person pixels between them."""
    truth = np.zeros((100, 200), np.int64)
    truth[20:90, 5:35] = 2  # the larger person, left
    truth[10:30, 10:30] = 1
    truth[40:70, 170:190] = 2  # a smaller one, right
    return truth


def test_closeup_crops_the_largest_person_with_a_margin():
    truth = _two_people()
    rows, cols = pictures.person_box(truth)
    crop = truth[rows, cols]
    assert (crop != 0).sum() == (truth[:, :100] != 0).sum()  # all of the left person, none of the right
    assert (rows.start, rows.stop, cols.start, cols.stop) == (0, 100, 1, 39)  # a 15% margin, clipped at the frame
    with pytest.raises(ValueError, match="no person"):
        pictures.person_box(np.zeros((10, 10), np.int64))


def test_closeups_need_both_models_to_find_the_person():
    truth = _two_people()
    found, missed = truth.copy(), truth.copy()
    missed[:, :100] = 0  # misses the large person, finds the small one
    assert pictures.person_found(found, truth) and not pictures.person_found(missed, truth)
    image = np.zeros(truth.shape + (3,), np.uint8)
    fig = pictures.border_closeups([("x", image, truth, {"a": found, "b": found})] * 2, ["background", "head", "torso"])
    assert len([ax for ax in fig.axes if ax.images]) == 8  # one row per image: photo, truth, two models
    with pytest.raises(ValueError, match="the ground truth has no person"):
        pictures.border_closeups([("y", image, np.zeros_like(truth), {"a": found})], ["background", "head", "torso"])


CLASSES = ["background", "head", "torso", "upper-arms", "lower-arms", "upper-legs", "lower-legs"]


def _report_figure(kind, models):
    image, truth = np.zeros((60, 40, 3), np.uint8), np.zeros((60, 40), np.int64)
    truth[10:50, 10:30] = 2
    names = [f"DeepLabv3+ model {k}" for k in range(models)]
    if kind == "predictions":
        return pictures.comparison_figure([image] * 6, [truth] * 6, {n: [truth] * 6 for n in names}, CLASSES,
                                       ids=["2008_000001"] * 6)
    if kind == "closeups":
        return pictures.border_closeups([("2008_000001", image, truth, {n: truth for n in names[:2]})] * 2, CLASSES)
    if kind == "bars":
        return plots.per_class_bars(pd.DataFrame({n: np.arange(7.0) for n in names}, index=CLASSES))
    curve = pd.DataFrame({"iteration": [250, 500], "mIoU": [30.0, 40.0], "loss": [1.0, 0.8]})
    return plots.learning_curves({n: [curve] for n in names}, {n: [curve] for n in names})


@pytest.mark.parametrize("kind", ["predictions", "closeups", "bars", "curves"])
@pytest.mark.parametrize("models", [1, 5])
def test_report_figures_print_readable_text_and_leave_room_for_their_caption(kind, models):
    """Saved cropped tight (legend included), a figure prints at its own size if it fits the page and is
    shrunk otherwise: fixed 7-point labels on a five-model Figure 5 printed at 3, a 6-row one pushed its
    caption to the next page, and 10-point ticks on a 10-inch bar chart printed at 6."""
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    fig = _report_figure(kind, models)
    box = fig.get_tightbbox(fig.canvas.get_renderer())  # inches, as savefig(bbox_inches="tight") writes it
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    plt.close(fig)
    assert box.width <= plots.PAGE_WIDTH + 0.05 and box.height <= plots.PAGE_HEIGHT + 0.05
    assert len(texts) >= models and min(t.get_fontsize() for t in texts) >= 7


def test_row_labels_break_where_they_would_run_into_the_next_row():
    """Drawn sideways, an id taller than its row (a six-row, seven-column Figure 5) ran into the next row's."""
    assert pictures.fit_label("2008_000672", 1.5) == "2008_000672"
    assert pictures.fit_label("2008_000672", 0.7) == "2008_\n000672"
    assert pictures.fit_label("10th pct: 2008_000672\nmIoU 19.3", 0.7) == "10th pct:\n2008_\n000672\nmIoU 19.3"
    assert pictures.fit_label("10th pct: 2008_000672\nmIoU 19.3", 1.3) == "10th pct:\n2008_000672\nmIoU 19.3"


def test_inference_cost_is_measured_images_per_second_beside_the_baseline(tmp_path):
    """Issue 18: each added experiment's inference cost beside the pretrained CE runs', from the seconds
    each run's evaluation took, the difference judged against run-to-run variation. Speeds from
    different machines are never compared: a run scored on a faster CPU would show a gain that is the
    machine's (3x between the two CPUs this study trained on)."""
    import json
    import shutil
    from pathlib import Path

    results = tmp_path / "results"
    shutil.copytree(Path(__file__).parent / "records", results)
    summary = pd.read_csv(results / "summary.csv")
    summary["experiment"] = summary.experiment.replace("deeplabv3plus_pretrained_lovasz", beyond.EXPERIMENTS[0])
    summary.to_csv(results / "summary.csv", index=False)

    def score(run, seconds, host):
        path = results / "runs" / run / "metrics.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "eval_seconds": seconds, "eval_host": host}))

    base, added = "deeplabv3plus_pretrained-smoke-seed", "deeplabv3plus_pretrained_lovasz-smoke-seed"
    for run, seconds in ((base + "0", 1.0), (base + "1", 3.0), (added + "0", 6.0), (added + "1", 6.0)):
        score(run, seconds, "cpu A")
    line = beyond.inference_cost(report.load_study(results), beyond.EXPERIMENTS[0])  # 3 images/run: 3/6; 3/1, 3/3
    assert "1 forward pass per image against 1 forward pass;" in line
    assert "0.50 ± 0.00 images/s against 2.00 ± 1.41 images/s" in line and "measured on one machine, cpu A)" in line
    # the same model scored hours apart runs at different speeds on a CPU: the gap is judged, not just shown
    assert "a difference of -1.50 images/s that is within run-to-run variation (2 x 1.41)" in line
    # a baseline run scored on a faster machine is left out of the comparison, and said to be
    score(base + "1", 0.3, "cpu B")
    line = beyond.inference_cost(report.load_study(results), beyond.EXPERIMENTS[0])
    assert "0.50 ± 0.00 images/s against 3.00 images/s" in line and "1 run scored on other machines left out" in line
    # no machine scored both experiments: the speeds are shown with their machines and not compared
    score(base + "0", 0.3, "cpu B")
    line = beyond.inference_cost(report.load_study(results), beyond.EXPERIMENTS[0])
    assert "0.50 ± 0.00 images/s on cpu A against 10.00 ± 0.00 images/s on cpu B" in line
    assert "not compared" in line and "difference" not in line
    # seglib bench --experiments timed both in turn on one machine: its speeds replace the runs' evaluations
    bench = {"profile": "smoke", "machine": "cpu C", "images": 20, "rounds": 3, "experiments": {
        claims.PRETRAINED: {"passes": 1, "images_per_s": [4.0, 4.2, 3.8]},
        beyond.EXPERIMENTS[0]: {"passes": 1, "images_per_s": [3.0, 3.1, 2.9]}}}
    (results / "inference.json").write_text(json.dumps(bench))
    line = beyond.inference_cost(report.load_study(results), beyond.EXPERIMENTS[0])
    assert "3.00 ± 0.10 images/s against 4.00 ± 0.20 images/s (timed in turn on the same 20 val photos, 3 rounds" in line
    assert "on one machine: cpu C" in line and "cpu A" not in line
    assert "a difference of -1.00 images/s that exceeds round-to-round variation (2 x 0.20)" in line
    # one round: no variation to judge the difference by, so none is claimed (it read "2 x nan")
    one_round = {**bench, "rounds": 1, "experiments": {e: {**v, "images_per_s": v["images_per_s"][:1]}
                                                       for e, v in bench["experiments"].items()}}
    (results / "inference.json").write_text(json.dumps(one_round))
    line = beyond.inference_cost(report.load_study(results), beyond.EXPERIMENTS[0])
    assert line.endswith("images/s (timed in turn on the same 20 val photos, 1 round, on one machine: cpu C; mean ± std "
                         "over rounds).") and "nan" not in line and "difference" not in line
    # a file without its setting (how many photos and rounds, which machine) cannot be described: not used
    (results / "inference.json").write_text(json.dumps({"profile": "smoke", "experiments": bench["experiments"]}))
    assert "not compared" in beyond.inference_cost(report.load_study(results), beyond.EXPERIMENTS[0])
    # timed under another profile (another evaluation size): not the runs' inference, so not used
    (results / "inference.json").write_text(json.dumps({**bench, "profile": "paper"}))
    assert "not compared" in beyond.inference_cost(report.load_study(results), beyond.EXPERIMENTS[0])
    # an experiment the benchmark did not time falls back to the runs' evaluations
    del bench["experiments"][beyond.EXPERIMENTS[0]]
    (results / "inference.json").write_text(json.dumps(bench))
    assert "not compared" in beyond.inference_cost(report.load_study(results), beyond.EXPERIMENTS[0])
    (results / "inference.json").write_text("{not json")
    with pytest.raises(SeglibError, match="inference.json: not valid JSON"):
        report.load_study(results)


def test_an_experiment_with_a_lovasz_term_has_its_borders_judged_against_cross_entropy(tmp_path):
    """Claim (b) is about borders: CE + Lovász (the recipe the Lovász paper advises) gets claim (b)'s border
    measures against the CE runs, each judged against seed variation; an experiment without Lovász does not."""
    import json
    import shutil
    from pathlib import Path

    import yaml

    results = tmp_path / "results"
    shutil.copytree(Path(__file__).parent / "records", results)
    summary = pd.read_csv(results / "summary.csv")

    def borders(run, iou, rough):
        path = results / "runs" / run / "metrics.json"
        stored = json.loads(path.read_text())
        classes = list(stored["boundary"]["boundary_iou"])
        stored["boundary"] = {"boundary_iou": dict.fromkeys(classes, iou), "boundary_f": dict.fromkeys(classes, iou),
                              "roughness": dict.fromkeys(classes, rough)}
        path.write_text(json.dumps(stored))

    for run, iou, rough in (("deeplabv3plus_pretrained-smoke-seed0", 28.0, 0.98), ("deeplabv3plus_pretrained-smoke-seed1", 30.0, 0.99),
                            ("deeplabv3plus_pretrained_lovasz-smoke-seed0", 33.0, 0.97),
                            ("deeplabv3plus_pretrained_lovasz-smoke-seed1", 33.0, 0.98)):
        borders(run, iou, rough)
    for experiment, expected in ((beyond.EXPERIMENTS[0], False), (beyond.EXPERIMENTS[1], True)):
        frame = summary.replace({"experiment": {"deeplabv3plus_pretrained_lovasz": experiment}})
        frame.loc[frame.experiment == experiment, "loss"] = "ce+lovasz" if expected else "ce"
        frame.to_csv(results / "summary.csv", index=False)
        lines = dict(beyond.verdicts(report.load_study(results)))[claims.TITLES[experiment]]
        said = [line for line in lines if line.startswith("Borders")]
        if not expected:
            assert not said
            continue
        assert said == [("Borders (CE + Lovász against cross-entropy, claim (b)'s measures): Boundary IoU 33.00 against "
                        "29.00 (+4.00, beyond noise); roughness ratio 0.975 against 0.985 (-0.010, within noise).")]
        # the abstract carries the border verdicts beside the mIoU one
        assert beyond.findings(report.load_study(results))[0].endswith(
            ", borders Boundary IoU +4.0 (beyond noise), roughness ratio -0.01 (within noise)")
    # a test-time flip also changes borders: said, not hidden; read from each run's own settings (config.yaml),
    # where a scale written 1 (not 1.0) is no augmentation
    def evaluated(run, flip, scales):
        path = results / "runs" / run / "config.yaml"
        config = yaml.safe_load(path.read_text())
        path.write_text(yaml.safe_dump({**config, "eval_flip": flip, "eval_scales": scales}))

    def caveat():
        lines = dict(beyond.verdicts(report.load_study(results)))[claims.TITLES[experiment]]
        return [line.startswith("Borders (CE + Lovász against cross-entropy, claim (b)'s measures; its scores with "
                                "test-time augmentation, which cross-entropy's lack): Boundary IoU 33.00") for line in lines]

    evaluated("deeplabv3plus_pretrained_lovasz-smoke-seed0", False, [1])
    assert not any(caveat())
    evaluated("deeplabv3plus_pretrained_lovasz-smoke-seed1", True, [1.0])
    assert any(caveat())
    assert "borders" not in beyond.findings(report.load_study(results))[0]  # its section says why, not the abstract


def test_the_best_recipe_is_judged_against_the_strongest_single_change(tmp_path):
    """What to train: the best recipe against the strongest other experiment beyond the report, with what it
    adds to it (read from the runs) and a verdict against seed variation; none until both have run."""
    import shutil
    from pathlib import Path

    results = tmp_path / "results"
    shutil.copytree(Path(__file__).parent / "records", results)
    summary = pd.read_csv(results / "summary.csv")
    best = summary.experiment == "deeplabv3plus_pretrained_lovasz"
    summary.loc[best, ["experiment", "loss", "hierarchy_weight", "scale_range"]] = [
        beyond.BEST, "ce+lovasz", 0.4, "0.5-2.0"]
    summary.to_csv(results / "summary.csv", index=False)
    assert beyond.best_against_strongest(report.load_study(results)) == ""  # nothing else beyond the report ran

    other = summary.experiment == "deeplabv3plus_lite2_scratch"
    summary.loc[other, ["experiment", "loss", "hierarchy_weight", "scale_range"]] = [
        "deeplabv3plus_pretrained_ce_lovasz", "ce+lovasz", 0.0, "1.0-1.0"]
    for scores, verdict in (([55.0, 56.0], ("gives nothing beyond seed variation: CE + Lovász alone is the simpler "
                                            "recipe to train.")),
                            ([60.0, 60.2], "gains beyond seed variation.")):
        summary.loc[best, "mIoU"] = scores
        summary.loc[other, "mIoU"] = 55.5
        summary.to_csv(results / "summary.csv", index=False)
        study = report.load_study(results)
        said = beyond.best_against_strongest(study)
        assert said.startswith("Against the strongest single change, CE + Lovász, mIoU: ")
        assert said.endswith("What it adds to CE + Lovász (hierarchy 0.4, rescale 0.5-2.0) " + verdict)
        found = dict(beyond.verdicts(study))
        assert said in found[claims.TITLES[beyond.BEST]]
        assert said in report.conclusion(study, [], [], [], list(found.items()))  # the conclusion says what to train


def test_runs_from_several_machines_are_numbered_in_the_appendix_and_the_protocol(tmp_path):
    """s/it differs threefold between two CPUs of one kind: the appendix says which machine each run
    trained on, and the protocol table names every machine, not the first run's."""
    import json
    import shutil
    from pathlib import Path

    results = tmp_path / "results"
    shutil.copytree(Path(__file__).parent / "records", results)
    study = report.load_study(results)
    one = study.summary.run.iloc[-1]
    assert "machine" not in report.runs_table(study) and report.machine_legend(study).startswith("All runs trained on one machine: ")
    precisions = ", ".join(sorted(set(study.summary.precision.astype(str))))
    assert protocol.method_table(study).loc["hardware"].iloc[1] == f"{report.machines(study)[one]}; {precisions}"
    path = results / "runs" / one / "metrics.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "host": "CPU B, 2 threads, native bf16"}))
    study = report.load_study(results)
    table, first = report.runs_table(study), report.machines(study)[study.summary.run.iloc[0]]
    assert list(table.machine) == [2 if run == one else 1 for run in study.summary.run]
    assert report.machine_legend(study) == f"Machines: 1: {first}; 2: CPU B, 2 threads, native bf16."
    # the protocol table counts them and sends the reader to the appendix: every CPU's name in one cell
    # shrank the whole table to an unreadable size in the PDF
    hardware = protocol.method_table(study).loc["hardware"].iloc[1]
    assert hardware.startswith("2 machines (appendix); ") and "CPU B" not in hardware


def test_captions_are_numbered_in_order_per_kind():
    caps = layout.Captions()
    assert caps.table("x") == "**Table 1.** x" and caps.figure("y") == "**Figure 1.** y" and caps.table("z").startswith("**Table 2.**")


def test_a_table_and_its_caption_are_one_block_in_the_pdf():
    """Table 3's caption sat alone at the foot of page 2, its table on page 3: in LaTeX the caption and the
    table are now one float (a page cannot fall between them); HTML shows the caption above the table."""
    frame = pd.DataFrame({"IoU": [51.04, 92.5]}, index=pd.Index(["mean", "background"], name="Class"))
    shown = layout.CaptionedTable("**Table 3.** Pretrained: 2008_000672 & 100% of #1 {x}.", frame)
    latex = shown._repr_latex_()
    assert latex.startswith(layout.TABLE_BEGIN + "\n\\noindent \\textbf{Table 3.} Pretrained: 2008\\_000672 "
                            "\\& 100\\% of \\#1 \\{x\\}.")
    assert latex.index("\\textbf{Table 3.}") < latex.index("\\begin{tabular}") < latex.index(layout.TABLE_END)
    assert "\\begin{adjustbox}{max width=\\linewidth}" in latex and "Class" in latex.split("\\midrule")[0]
    option = layout.CaptionedTable("**Table 4.** From seglib bench --experiments.", frame)._repr_latex_()
    assert "bench -{}-experiments." in option  # TeX sets "--" as an en dash: the option's name would be lost
    html = shown._repr_html_()
    assert html.startswith("<p><strong>Table 3.</strong> Pretrained: 2008_000672 &amp; 100% of #1 {x}.</p>")
    assert html.index("</p>") < html.index("<table") and "51.04" in html


def test_figures_float_with_their_captions_and_are_referred_to_by_number():
    """A figure that did not fit the rest of a page used to move to the next one and leave the rest blank
    (three half-empty pages in the committed PDF). A figure and its caption are now one LaTeX float, placed
    where it fits while the text runs on; so a caption cannot say "the figure above": it names the number."""
    caps = layout.Captions()
    assert caps.figure("Classes.", "bars.png") == "**Figure 1.** Classes."
    assert caps.table("Scores.") == "**Table 1.** Scores."
    assert caps.figure("Predictions.", "figure5.png") == "**Figure 2.** Predictions."
    assert caps.ref("figure5.png") == "Figure 2" and caps.ref("not_drawn.png") == "the prediction figure"
    begin, end = layout.LatexOnly(layout.FIGURE_BEGIN), layout.LatexOnly(layout.FIGURE_END)
    assert begin._repr_latex_() == "\\begin{figure}[htbp]\\centering" and end._repr_latex_() == "\\end{figure}"
    assert begin._repr_html_() == "" and end._repr_html_() == ""  # nothing in the HTML


def _pages(tmp_path, body: str) -> int:
    """Pages of a letter-size LaTeX document (1 in margins and the table packages, as nbconvert's
    template) with this body."""
    import re
    import subprocess

    tex = ("\\documentclass[11pt]{article}\\usepackage[letterpaper,margin=1in]{geometry}"
           "\\usepackage{booktabs}\\usepackage{adjustbox}\\begin{document}"
           + body + "\\end{document}\n")
    (tmp_path / "page.tex").write_text(tex)
    done = subprocess.run(["xelatex", "-interaction=nonstopmode", "page.tex"], cwd=tmp_path, capture_output=True,
                          check=False, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    return int(re.search(r"Output written on page\.pdf \((\d+) pages?", done.stdout).group(1))


@pytest.mark.skipif(which("xelatex") is None, reason="needs xelatex (make pdf-deps)")
def test_a_figure_of_half_a_page_shares_its_page_with_text(tmp_path):
    """A 5 in figure (more than half of the 9 in text height) after 6 in of text: LaTeX's defaults gave it a
    page of its own and sent the text after it to a third page (Figures 3 and 6 alone on their pages); with
    the report's float placement it tops page 2 and the text follows it there."""
    boxes = lambda n: "".join("\\noindent\\rule{1pt}{0.5in}\\par" for _ in range(n))
    body = ("\\noindent\\rule{1pt}{6in}\\par" + layout.FIGURE_BEGIN + "\\rule{1pt}{5in}\\par" + layout.FIGURE_END
            + boxes(9))
    assert _pages(tmp_path, body) == 3  # the defaults: a float page for the figure alone
    assert _pages(tmp_path, layout.FLOAT_PLACEMENT + body) == 2


def _labelled(table: str) -> str:
    """A rendered table with \\label{table} inside its float, so that _label_pages says where it printed."""
    return table.replace(layout.TABLE_END, "\\label{table}" + layout.TABLE_END)


def _report_cells() -> list[str]:
    """The source of each cell of notebooks/03_report.ipynb, for tests that check how the report uses a helper."""
    import nbformat
    from conftest import REPO

    return [c.source for c in nbformat.read(REPO / "notebooks" / "03_report.ipynb", 4).cells]


def _label_pages(tmp_path) -> dict[str, int]:
    """{label: page} from the .aux of the last _pages document."""
    import re

    return {name: int(page) for name, page in
            re.findall(r"\\newlabel\{(\w+)\}\{\{[^}]*\}\{(\d+)\}", (tmp_path / "page.aux").read_text())}


@pytest.mark.skipif(which("xelatex") is None, reason="needs xelatex (make pdf-deps)")
def test_a_waiting_figure_is_put_out_before_the_references(tmp_path):
    """Figure 7 (7 in tall, too tall for what was left of its page) was printed between two pages of
    references: LaTeX sent it to the next page while the text, references included, ran on. The barrier
    before the references puts out a waiting figure first, and does nothing when none waits."""
    figure = layout.FIGURE_BEGIN + "\\rule{1pt}{7in}\\label{fig}\\par" + layout.FIGURE_END
    references = "\\noindent References\\label{refs}\\par" + "".join("\\noindent\\rule{1pt}{0.5in}\\par" for _ in range(4))
    body = layout.FLOAT_PLACEMENT + "\\noindent\\rule{1pt}{6in}\\par" + figure
    _pages(tmp_path, body + references)
    pages = _label_pages(tmp_path)
    assert pages["fig"] > pages["refs"]  # without the barrier: the references begin before the figure
    _pages(tmp_path, body + layout.FLOAT_BARRIER + references)
    pages = _label_pages(tmp_path)
    assert pages["fig"] < pages["refs"]
    assert _pages(tmp_path, layout.FLOAT_PLACEMENT + "\\noindent\\rule{1pt}{2in}\\par" + layout.FLOAT_BARRIER
                  + references) == 1  # nothing waits: no new page


@pytest.mark.skipif(which("xelatex") is None, reason="needs xelatex (make pdf-deps)")
def test_the_references_are_set_small_as_a_papers(tmp_path):
    """The report's last two references spilled onto a page of their own (the appendix starts a new one):
    set in the body's size, 50 reference lines take two pages; set small, one, and the report's references
    cell is so set."""
    lines = "".join(f"\\noindent [{i}] A. Author. A title. A venue 2020.\\par" for i in range(50))
    assert _pages(tmp_path, lines) == 2
    assert _pages(tmp_path, layout.SMALL_BEGIN + lines + layout.SMALL_END) == 1
    cell = next(c for c in _report_cells() if "report.REFERENCES" in c)
    assert cell.index("layout.SMALL_BEGIN") < cell.index("report.REFERENCES") < cell.index("layout.SMALL_END")


@pytest.mark.skipif(which("xelatex") is None, reason="needs xelatex (make pdf-deps)")
def test_a_table_too_tall_for_the_rest_of_its_page_lets_the_text_fill_it(tmp_path):
    """Tables 5 and 8 did not fit what was left of pages 3 and 7 and moved on, leaving a quarter and half a
    page blank: each table was an unbreakable block in the text. As a float it moves to the next page
    while the text after it fills this one."""
    frame = pd.DataFrame({"IoU": np.arange(20.0)}, index=pd.Index([f"class {i}" for i in range(20)], name="Class"))
    table = layout.CaptionedTable("**Table 5.** Twenty rows, about 4 in.", frame)._repr_latex_()
    table = _labelled(table)
    after = "\\noindent After the table.\\label{after}\\par"
    _pages(tmp_path, layout.FLOAT_PLACEMENT + "\\noindent\\rule{1pt}{6in}\\par" + table + after)
    pages = _label_pages(tmp_path)
    assert pages["table"] == 2 and pages["after"] == 1


@pytest.mark.skipif(which("xelatex") is None, reason="needs xelatex (make pdf-deps)")
def test_the_tallest_report_figure_tops_a_page_of_text(tmp_path):
    """Figure 7, drawn to the 7 in the figures were allowed, plus its caption was too tall to top a page
    (topfraction): it waited for a page of its own, printed in the middle of the conclusion. A figure of
    PAGE_HEIGHT with a five-line caption now tops the next page, and the text after it follows it there."""
    caption = "\\textbf{Figure 7.} " + "The same rows as Figure 2, for the experiments beyond the report. " * 7
    boxes = "".join(f"\\noindent\\rule{{1pt}}{{0.5in}}\\label{{b{i}}}\\par" for i in range(14))
    body = lambda height: (layout.FLOAT_PLACEMENT + "\\noindent\\rule{1pt}{6in}\\par" + layout.FIGURE_BEGIN
                           + f"\\rule{{1pt}}{{{height}in}}\\label{{fig}}\\par " + caption + layout.FIGURE_END + boxes)
    _pages(tmp_path, body(7.0))
    pages = _label_pages(tmp_path)
    assert pages["fig"] != pages["b13"]  # 7 in: a page of its own, the text after it on another
    assert _pages(tmp_path, body(plots.PAGE_HEIGHT)) == 3
    pages = _label_pages(tmp_path)
    assert pages["fig"] == 2 and pages["b7"] == 2  # on top of page 2, the text running on under it


@pytest.mark.skipif(which("xelatex") is None, reason="needs xelatex (make pdf-deps)")
def test_the_tallest_figure_and_a_per_class_table_share_a_page_at_the_barrier(tmp_path):
    """Figure 8 (the full 6 in PAGE_HEIGHT then) and Table 13 (per class, 8 rows) were both waiting at the
    barrier before the Conclusion and did not fit one page together (483 + 166 pt of 650): each stood alone
    on a page of its own, most of it blank. A figure of PAGE_HEIGHT with a five-line caption and such a
    table now share one page, and the text after the barrier starts the next."""
    caption = "\\textbf{Figure 8.} " + "The same rows as Figure 3, for the experiments beyond the report. " * 7
    figure = layout.FIGURE_BEGIN + f"\\rule{{1pt}}{{{plots.PAGE_HEIGHT}in}}\\label{{fig}}\\par " + caption + layout.FIGURE_END
    classes = ["mean (mIoU)", "background", "head", "torso", "upper-arms", "lower-arms", "upper-legs", "lower-legs"]
    frame = pd.DataFrame({"cross-entropy": ["51.64 ± 0.86"] * 8, "+ hierarchy": ["+0.64"] * 8,
                          "CE + Lovász": ["+3.24*"] * 8, "best recipe": ["+3.24*"] * 8},
                         index=pd.Index(classes, name="class"))
    table = layout.CaptionedTable("**Table 13.** Per-class IoU (%) of the pretrained cross-entropy runs (mean ± "
                                  "std over seeds) and each experiment's gain over it in points; * marks a gain "
                                  "beyond seed-to-seed variation.", frame)._repr_latex_()
    table = _labelled(table)
    after = "\\noindent Conclusion\\label{after}\\par"
    _pages(tmp_path, layout.FLOAT_PLACEMENT + "\\noindent\\rule{1pt}{7.5in}\\par" + figure + table
           + layout.FLOATS_FIRST + after)  # the page too full for either float: both wait
    pages = _label_pages(tmp_path)
    assert pages["fig"] == pages["table"] == 2 and pages["after"] == 3


@pytest.mark.skipif(which("xelatex") is None, reason="needs xelatex (make pdf-deps)")
def test_a_lone_waiting_table_tops_the_conclusions_page(tmp_path):
    """Table 14 (per class, 8 rows), waiting at the barrier before the Conclusion, stood alone on a page two
    thirds blank (\\clearpage makes a page of waiting floats). The barrier there now only starts a new page:
    the table tops it and the conclusion follows below it."""
    frame = pd.DataFrame({"IoU": np.arange(8.0)}, index=pd.Index([f"class {i}" for i in range(8)], name="class"))
    table = layout.CaptionedTable("**Table 14.** Eight rows.", frame)._repr_latex_()
    table = _labelled(table)
    after = "\\noindent Conclusion\\label{after}\\par"
    body = lambda barrier: (layout.FLOAT_PLACEMENT + "\\noindent\\rule{1pt}{7.5in}\\par" + table + barrier + after)
    _pages(tmp_path, body(layout.FLOAT_BARRIER))
    pages = _label_pages(tmp_path)
    assert pages["table"] == 2 and pages["after"] == 3  # the strict barrier: a page for the table alone
    _pages(tmp_path, body(layout.FLOATS_FIRST))
    pages = _label_pages(tmp_path)
    assert pages["table"] == pages["after"] == 2
    assert _pages(tmp_path, layout.FLOAT_PLACEMENT + "\\noindent\\rule{1pt}{2in}\\par" + layout.FLOATS_FIRST
                  + after) == 1  # nothing waits: no new page
    cells = [c for c in _report_cells() if "layout.FLOAT" in c]
    assert any("FLOATS_FIRST" in c and "before the conclusion" in c for c in cells)


def test_verdicts_are_generated_from_the_numbers():
    gap = {"a": "cross-entropy", "b": "Lovász", **claims.gap_vs_noise([1.00, 1.02, 0.98], [1.30, 1.32, 1.28])}
    sentence = claims.verdict_sentence("roughness", gap, digits=3)
    assert "Lovász 1.300 against cross-entropy 1.000" in sentence and "+0.300" in sentence and "exceeds" in sentence
    assert sentence.startswith("Roughness: ")  # one of several sentences in a row: capitalised, not "by. roughness"
    assert "(3 seeds each)" in sentence
    one = {"a": "scratch", "b": "pretrained", **claims.gap_vs_noise([20.0], [51.0])}
    assert claims.verdict_sentence("mIoU", one).startswith("mIoU: ")  # an abbreviation keeps its case, not "MIoU"
    assert "(1 seed each)" in claims.verdict_sentence("mIoU", one)
    table, _ = claims.class_comparison(pd.DataFrame({"mIoU": [20.0], "IoU head": [30.0]}),
                                       pd.DataFrame({"mIoU": [51.0], "IoU head": [77.0]}), "scratch", "pretrained")
    assert claims.gains_sentence("Pretraining", table).startswith("Per class it cannot be judged")  # not "in 0 of 1"
    assert report.fmt([1.0, 2.0, 3.0]) == "2.00 ± 1.00" and report.fmt([5.0]) == "5.00" and report.fmt([]) == "n/a"


def test_pretraining_claim_is_like_for_like_when_the_scratch_run_exists(tmp_path):
    rows = [{"run": f"r{i}", "experiment": e, "profile": "paper", "seed": s, "mIoU": m, "IoU head": h, "crop": 512,
             "iterations": 2000}
            for i, (e, s, m, h) in enumerate([("deeplabv3plus_pretrained", 0, 50.0, 80.0), ("deeplabv3plus_pretrained", 1, 51.0, 81.0),
                                              ("deeplabv3plus_pretrained", 2, 52.0, 79.0),
                                              ("deeplabv3plus_lite2_scratch", 0, 20.0, 30.0),
                                              ("deeplabv3plus_scratch", 0, 22.0, 35.0)])]
    study = report.Study(tmp_path, pd.DataFrame(rows), main="paper")
    table, lines = claims.pretraining_claim(study)
    assert table.loc["head", "scratch"] == "30.00" and table.loc["head", "gain"] == pytest.approx(50.0)
    assert "DeepLabv3+ Lite2 (scratch)" in lines[0] and "Not like for like" not in lines[0]
    assert table.loc["mean (mIoU)", "verdict"] == "beyond noise"
    without = report.Study(tmp_path, pd.DataFrame([r for r in rows if "lite2" not in r["experiment"]]), main="paper")
    assert "Not like for like" in claims.pretraining_claim(without)[1][0]


def test_percentile_images_are_the_best_experiments_own_by_nearest_rank(tmp_path):
    scores = {f"img{k:02d}": float(k) for k in range(21)}  # 0..20: the 10th/50th/90th percentile are 2, 10, 18
    for name in ("best0", "best1", "other0"):
        (tmp_path / name).mkdir()
        pd.DataFrame({"id": list(scores), "mIoU": list(scores.values())}).sample(frac=1, random_state=0).to_csv(
            tmp_path / name / "per_image.csv", index=False)
    assert records.percentile_ids(tmp_path / "best0") == [(10, "img02", 2.0), (50, "img10", 10.0), (90, "img18", 18.0)]
    assert records.percentile_ids(tmp_path / "nowhere") == []
    rows = [{"run": "best1", "experiment": "deeplabv3plus_pretrained", "profile": "paper", "seed": 1, "mIoU": 50.0},
            {"run": "best0", "experiment": "deeplabv3plus_pretrained", "profile": "paper", "seed": 0, "mIoU": 52.0},
            {"run": "other0", "experiment": "deeplabv3plus_pretrained_lovasz", "profile": "paper", "seed": 0, "mIoU": 50.5}]  # CE: 51 on average
    study = report.Study(tmp_path, pd.DataFrame(rows), records={r: tmp_path / r for r in ("best0", "best1", "other0")},
                         main="paper")
    best, folder, picks = report.percentile_picks(study)
    assert best == "DeepLabv3+ pretrained" and folder == tmp_path / "best0" and picks[1][1] == "img10"
    (tmp_path / "best0" / "per_image.csv").unlink()
    assert report.percentile_picks(study) is None  # a run scored before per-image scores existed: no figure


def test_the_report_notebook_without_records_says_so_in_one_line(tmp_path, monkeypatch):
    """Opened by hand (any working directory) before any study: one line naming what is missing and what to run."""
    import papermill

    from seglib.pipeline import NOTEBOOKS_DIR

    with pytest.raises(papermill.PapermillExecutionError) as error:
        papermill.execute_notebook(str(NOTEBOOKS_DIR / "03_report.ipynb"), str(tmp_path / "out.ipynb"),
                                   parameters={"results_dir": str(tmp_path / "nothing")}, kernel_name="python3",
                                   progress_bar=False, cwd=str(tmp_path), extra_arguments=["--IPKernelApp.log_level=ERROR"])
    assert error.value.ename == "SeglibError"
    assert "summary.csv: not found" in error.value.evalue and "make report" in error.value.evalue
    assert "\n" not in error.value.evalue.strip()
    assert len(error.value.traceback) == 1  # the minimal traceback mode: no stack of seglib frames


def test_default_study_folders_do_not_depend_on_the_working_directory(tmp_path, monkeypatch):
    from seglib import paths

    monkeypatch.chdir(tmp_path)
    assert paths.default_study_dir("smoke") == paths.CHECKOUT / "output" / "smoke"
    assert paths.run_name("deeplabv3plus_pretrained", "paper", 2) == "deeplabv3plus_pretrained-paper-seed2"


def test_git_keeps_the_records_of_a_study():
    """Run folders stay out of git, but results/runs/RUN (the records the report renders from) must not."""
    import shutil
    import subprocess

    from conftest import REPO

    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = lambda path: subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO, check=False).returncode == 0
    assert ignored("runs/deeplabv3plus_pretrained-paper-seed0/last.pt")
    assert not ignored("results/runs/deeplabv3plus_pretrained-paper-seed0/metrics.json")
    assert not ignored("results/runs/deeplabv3plus_pretrained-paper-seed0/masks/2008_000123.png")


def test_setup_names_each_experiments_seeds_as_far_as_the_study_has_run():
    from conftest import REPO

    study = report.load_study(REPO / "tests" / "records")
    sentence = report.runs_sentence(study)
    assert sentence.startswith("Runs by profile: smoke, 5 runs.")
    assert "DeepLabv3+ pretrained: 0, 1;" in sentence and "[]" not in sentence
    one = report.Study(study.results, study.summary[study.summary.seed == 0], study.records, main=study.main)
    assert "smoke, 3 runs" in report.runs_sentence(one) and "pretrained: 0;" in report.runs_sentence(one)


def test_the_conclusion_labels_each_generated_verdict_in_bold():
    """'- Pretraining: Needs ...' read as a label, a colon, then a capital: each point is a bold run-in head."""
    from conftest import REPO

    study = report.load_study(REPO / "tests" / "records")
    text = report.conclusion(study, ["Needs the runs."], ["So the seeds do not show it."], ["One seed, not judged: X."])
    assert text.splitlines() == [f"- **Scores.** {report.abstract(study)}.", "- **Pretraining.** Needs the runs.",
                                 "- **Lovász-Softmax.** The seeds do not show it.",  # no 'So' out of its paragraph
                                 "- **Schedule.** One seed, not judged: X.", "", report.OPEN_QUESTION]
    # "at about the same mIoU" is half the claim: the point gives the mIoU sentence before the border verdict
    both = report.conclusion(study, [], ["mIoU (%): Lovász 40 against cross-entropy 50.", "Roughness: 1.3 against 1.0.",
                                         "So Lovász borders are rougher."], [])
    assert "- **Lovász-Softmax.** mIoU (%): Lovász 40 against cross-entropy 50. Lovász borders are rougher." in both


def test_the_conclusion_ends_with_person_size_and_the_open_question_it_points_to_an_answer_for():
    """The person-size point and the course report's open question were assembled in the report notebook,
    out of the tests' reach; the pointer to the section beyond the course report only when it has runs."""
    from conftest import REPO

    study = report.load_study(REPO / "tests" / "records")
    beyond = [("DeepLabv3+ pretrained + hierarchy", ["mIoU: 52 against 51.", "It gains in 1 of 7 classes."]),
              ("DeepLabv3+ pretrained (CE + Lovász)", ["mIoU: 55 against 51.", "Inference: 2 images/s.",
                                                      report.BORDERS_LEAD + "CE + Lovász ...): roughness 0.97."])]
    text = report.conclusion(study, [], [], [], beyond, person_size="It scores 25 on small people.")
    points, question = text.split("\n\n")
    # claim (b) asked of CE + Lovász: its borders' sentence beside its mIoU verdict, nothing else of its section
    assert points.splitlines()[-3:] == ["- **DeepLabv3+ pretrained + hierarchy.** mIoU: 52 against 51.",
                                        ("- **DeepLabv3+ pretrained (CE + Lovász).** mIoU: 55 against 51. Borders (CE + "
                                        "Lovász ...): roughness 0.97."),
                                        "- **Person size.** It scores 25 on small people."]
    assert question.startswith(report.OPEN_QUESTION) and "tests one answer, the body hierarchy" in question
    alone = report.conclusion(study, [], [], [])
    assert "Person size" not in alone and alone.endswith(report.OPEN_QUESTION)  # no section to point to
    assert difficulty.size_sentence(None) == ""  # no per-image scores: no point


def test_what_each_change_gave_is_read_from_the_runs(tmp_path):
    """Issue 18's table when the best recipe misses its target: each experiment beyond the course report,
    the settings that differ (from summary.csv, not typed, a column each), its mIoU, the gain and its
    verdict; and one per-class table of the gains."""
    base = {"profile": "paper", "loss": "ce", "hierarchy_weight": 0.0, "scale_range": "1.0-1.0", "eval_flip": False,
            "eval_scales": "1.0", "crop": 512, "iterations": 2000, "IoU head": 80.0}
    rows = [{**base, "experiment": "deeplabv3plus_pretrained", "seed": s, "mIoU": m, "IoU head": m + 29.0}
            for s, m in ((0, 51.0), (1, 51.4), (2, 50.6))]
    rows += [{**base, "experiment": "deeplabv3plus_pretrained_best", "loss": "ce+lovasz", "hierarchy_weight": 0.4,
              "scale_range": "0.5-2.0", "eval_flip": True, "seed": s, "mIoU": m, "IoU head": 80.1}
             for s, m in ((0, 53.0), (1, 53.4), (2, 52.6))]
    rows += [{**base, "experiment": "deeplabv3plus_pretrained_hierarchy", "hierarchy_weight": 0.4, "seed": 0, "mIoU": 51.2}]
    study = report.Study(tmp_path, pd.DataFrame([{"run": f"r{i}", **r} for i, r in enumerate(rows)]), main="paper")
    table = beyond.table(study)
    assert list(table.index) == ["cross-entropy", "+ hierarchy", "best recipe"]
    assert list(table.columns) == ["loss", "hierarchy", "rescale", "test flip", "seeds", "mIoU", "gain", "verdict"]
    best = table.loc["best recipe"]
    assert (best["loss"], best["rescale"], best["test flip"]) == ("ce+lovasz", "0.5-2.0", "on")
    assert best["gain"] == "+2.00" and best["verdict"] == "beyond noise"
    assert table.loc["cross-entropy", "mIoU"] == "51.00 ± 0.40" and table.loc["cross-entropy", "verdict"] == "baseline"
    classes = beyond.classes(study)
    assert list(classes.columns) == ["cross-entropy", "+ hierarchy", "best recipe"]
    assert classes.loc["mean (mIoU)", "best recipe"] == "+2.00*" and classes.loc["head", "best recipe"] == "+0.10"
    assert beyond.table(report.Study(tmp_path, pd.DataFrame(rows[:3]).assign(run="r"), main="paper")) is None
    # the best recipe's flipped evaluation also scored its plain pass: one more row, the flip's share of the gain
    frame = pd.DataFrame([{"run": f"r{i}", **r} for i, r in enumerate(rows)])
    frame["mIoU without TTA"] = [None] * 3 + [52.0, 52.4, 51.6] + [None]
    table = beyond.table(report.Study(tmp_path, frame, main="paper"))
    assert list(table.index) == ["cross-entropy", "+ hierarchy", "best recipe", "best recipe, no test-time aug."]
    plain = table.loc["best recipe, no test-time aug."]
    assert (plain["loss"], plain["rescale"], plain["test flip"], plain["seeds"]) == ("ce+lovasz", "0.5-2.0", "off", 3)
    assert plain["mIoU"] == "52.00 ± 0.40" and plain["gain"] == "+1.00" and plain["verdict"] == "beyond noise"
    # with results/inference.json, a column of inference speeds: the plain pass's from its own timing
    timed = {"profile": "paper", "machine": "cpu", "images": 20, "rounds": 2, "experiments": {
        "deeplabv3plus_pretrained": {"images_per_s": [4.0, 4.0]},
        "deeplabv3plus_pretrained_best": {"images_per_s": [2.0, 2.2], "plain_images_per_s": [3.9, 4.1]}}}
    study = report.Study(tmp_path, frame, main="paper", inference=timed)
    speeds = beyond.table(study)["images/s"]
    assert list(speeds) == ["4.00 ± 0.00", "n/a", "2.10 ± 0.14", "4.00 ± 0.14"]
    assert "20 val photos, 2 rounds, on one machine: cpu" in beyond.table_speed(study)
    assert "images/s" not in beyond.table(report.Study(tmp_path, frame, main="paper"))
    assert beyond.table_speed(report.Study(tmp_path, frame, main="paper")) == ""


def test_border_measures_are_one_table_with_both_losses_under_each_measure():
    """Three tables of one column pair each took most of a page; claim (b) now has one."""
    def measures(experiment, seed, value):
        per_class = {"background": value, "head": value + 1.0}
        return {"experiment": experiment, "seed": seed, "boundary_iou": per_class, "boundary_f": per_class,
                "roughness": {k: v / 100 for k, v in per_class.items()}}

    table = claims.border_summary([measures(report.CE, 0, 30.0), measures(report.CE, 1, 32.0),
                                   measures(report.LOVASZ, 0, 40.0)])
    assert list(table.columns.get_level_values(0).unique()) == ["Boundary IoU (%)", "boundary F-score (%)", "roughness ratio"]
    assert table.loc["head", ("Boundary IoU (%)", "cross-entropy")] == "32.00 ± 1.41"
    assert table.loc["head", ("Boundary IoU (%)", "Lovász")] == "41.00"
    assert table.loc["mean of classes", ("roughness ratio", "Lovász")] == "0.405"


def test_the_lovasz_claim_is_one_table_of_measures_and_two_sentences():
    """Claim (b) was four sentences of numbers in a row ('Boundary IoU (%): Lovász 21.62 against cross-entropy
    28.93 (1 and 2 seeds); the difference, -7.31, exceeds ...'); now the mIoU and the border measures are one
    table (mean ± std, difference, verdict) and the text keeps the mIoU verdict and the conclusion."""
    def run(experiment, seed, miou, band, rough):
        return {"experiment": experiment, "seed": seed, "mIoU": {"all": miou},
                "boundary_iou": {"head": band, "torso": band + 2.0}, "boundary_f": {"head": band, "torso": band},
                "roughness": {"head": rough, "torso": rough}}

    measures = [run(report.CE, 0, 51.0, 30.0, 0.98), run(report.CE, 1, 52.0, 31.0, 0.99),
                run(report.LOVASZ, 0, 46.0, 22.0, 1.24), run(report.LOVASZ, 1, 45.0, 21.0, 1.25)]
    table, lines = claims.lovasz_comparison(measures)
    assert list(table.index) == ["mIoU (%)", "Boundary IoU (%)", "boundary F-score (%)", "roughness ratio"]
    assert table.loc["Boundary IoU (%)"].tolist() == ["31.50 ± 0.71", "22.50 ± 0.71", "-9.00", "beyond noise"]
    assert table.loc["roughness ratio", "difference"] == "+0.260" and table.loc["mIoU (%)", "Lovász"] == "45.50 ± 0.71"
    assert len(lines) == 2 and lines[0].startswith("mIoU (%): Lovász 45.50 against cross-entropy 51.50 (2 seeds each)")
    assert lines[1] == ("So Lovász borders are rougher than cross-entropy's beyond seed variation (roughness ratio "
                        "1.245 against 0.985).")  # the number the verdict rests on, in the text as in the table
    close = [run(report.CE, 0, 51.0, 30.0, 1.0), run(report.CE, 1, 52.0, 31.0, 1.2), run(report.LOVASZ, 0, 50.0, 30.0, 1.1)]
    assert claims.lovasz_comparison(close)[1][1].startswith("So the seeds do not show")


def test_seeds_phrase_says_mean_only_over_several_seeds():
    assert report.seeds_phrase(1, mean=True) == "1 seed"  # not "mean over 1 seed"
    assert report.seeds_phrase(3, mean=True) == "mean over 3 seeds"
    assert report.seeds_phrase(2) == "2 seeds"


def test_the_abstract_names_a_run_of_another_profile_with_its_schedule():
    """The scratch models trained at crop 256 (profile paper256) belong in the abstract, but labelled: a
    bare '22.18 mIoU (course report 24.31)' would read as the course report's crop-512 protocol. The
    abstract had left such runs out."""
    from conftest import REPO

    study = report.load_study(REPO / "tests" / "records")
    extra = study.summary[study.summary.experiment == report.PRETRAINED].iloc[[0]].copy()
    extra[["experiment", "profile", "crop", "train_size", "iterations", "mIoU"]] = [
        report.R50_SCRATCH, "paper256", 256, 256, 2000, 21.5]
    text = report.abstract(report.Study(study.results, pd.concat([study.summary, extra]), study.records,
                                        main=study.main))
    theirs = report.course_report()[report.R50_SCRATCH]["mIoU"]
    assert (f"DeepLabv3+ R50 (scratch) 21.50 mIoU (crop 256, 2000 iterations; 1 seed; course report "
            f"{theirs:.2f} at crop 512)") in text
    assert "DeepLabv3+ pretrained " in text and "[paper256]" not in text
    # a course report model without a run is named, not silently left out of the "four models"
    fcn = report.course_report()["fcn_unet_scratch"]["mIoU"]
    assert text.endswith(f"; FCN+U-Net (scratch) not run yet (course report {fcn:.2f})")
    assert report.not_run(study) == ["fcn_unet_scratch", report.R50_SCRATCH]
    assert report.not_run_sentences(study) == (" Not run yet, so absent from the tables: FCN+U-Net (scratch); "
                                               "DeepLabv3+ R50 (scratch).")  # as the section beyond words it
    fcn_run = extra.assign(experiment="fcn_unet_scratch")
    assert "not run yet" not in report.abstract(report.Study(study.results, pd.concat([study.summary, extra, fcn_run]),
                                                             study.records, main=study.main))


def test_the_learning_curves_show_the_runs_of_another_profile_too():
    """Claim (c) is about the scratch models above all, yet their crop-256 runs (profile paper256) had no
    curve in Figure 5 nor a row in the schedule table: only the main profile's runs were drawn."""
    from conftest import REPO

    from seglib import claims

    study = report.load_study(REPO / "tests" / "records")
    extra = study.summary[study.summary.experiment == report.PRETRAINED].iloc[[0]].copy()
    extra[["experiment", "profile"]] = [report.R50_SCRATCH, "paper256"]
    both = report.Study(study.results, pd.concat([study.summary, extra]), study.records, main=study.main)
    curves, logs = claims.all_curves(both)
    assert "DeepLabv3+ R50 (scratch) [paper256]" in curves and "DeepLabv3+ pretrained" in curves
    assert len(logs["DeepLabv3+ pretrained"]) == 2  # the main profile's two seeds, unchanged
    table, lines = claims.iterations_claim(both)
    assert "DeepLabv3+ R50 (scratch) [paper256]" in table.index
    # the verdicts first, the runs not judged last (the unjudged one-seed group led when its run came first)
    assert len(lines) == 2 and lines[-1].startswith("One seed, not judged: DeepLabv3+ R50 (scratch) [paper256]")
    text = report.conclusion(both, [], [], lines)
    assert text.count("**Schedule.**") == 1  # one point, not one per group
    assert text.split("\n\n")[0].endswith(" ".join(lines))


def test_the_beyond_section_names_the_experiments_without_runs_and_says_off_for_no_hierarchy(tmp_path):
    """Its introduction describes three experiments: a reader must learn which of them have not run yet
    instead of looking for their rows; a hierarchy weight of 0 reads "off", not "0.0"."""
    base = {"profile": "paper", "loss": "ce", "hierarchy_weight": 0.0, "crop": 512, "iterations": 2000}
    rows = [{**base, "experiment": "deeplabv3plus_pretrained", "seed": s, "mIoU": m} for s, m in ((0, 51.0), (1, 51.4))]
    rows += [{**base, "experiment": "deeplabv3plus_pretrained_hierarchy", "hierarchy_weight": 0.4, "seed": 0, "mIoU": 51.2}]
    study = report.Study(tmp_path, pd.DataFrame([{"run": f"r{i}", **r} for i, r in enumerate(rows)]), main="paper")
    assert beyond.pending(study) == ("Not run yet, so absent from the tables: DeepLabv3+ pretrained (CE + Lovász); "
                                            "DeepLabv3+ pretrained (best recipe).")
    assert list(beyond.table(study)["hierarchy"]) == ["off", "0.4"]
    everything = report.Study(tmp_path, pd.DataFrame([{"run": f"r{i}", **r, "experiment": e} for i, (r, e) in enumerate(
        zip(rows * 3, beyond.EXPERIMENTS * 3))]), main="paper")
    assert beyond.pending(everything) == ""


def test_the_abstract_states_each_claims_verdict_from_the_runs():
    """The abstract says what was found, not only the scores: each clause computed from the runs, with the
    verdict of the claim's own section (a tiny committed record set of smoke runs)."""
    from conftest import REPO

    study = report.load_study(REPO / "tests" / "records")
    found = claims.findings(study)
    summary = study.summary
    miou = lambda e: summary[summary.experiment == e].mIoU
    gap = results.gap_vs_noise(miou("deeplabv3plus_lite2_scratch"), miou("deeplabv3plus_pretrained"))
    assert found[0] == (f"pretraining {gap['difference']:+.1f} over the same model from scratch "
                        f"({results.short_verdict(gap)})")
    gap = results.gap_vs_noise(miou("deeplabv3plus_pretrained"), miou("deeplabv3plus_pretrained_lovasz"))
    assert found[1].startswith(f"Lovász-Softmax in place of cross-entropy {gap['difference']:+.1f} "
                               f"({results.short_verdict(gap)}), with ")
    assert found[2].startswith("the pretrained model over the last quarter of its 3 iterations ")
    assert len(found) == 3 and beyond.findings(study) == []  # no experiment beyond the report ran
    # an experiment beyond the report that ran: its clause, worded like its table's verdict, before the schedule's
    hierarchy = summary[summary.experiment == "deeplabv3plus_pretrained"].assign(
        experiment="deeplabv3plus_pretrained_hierarchy", mIoU=lambda f: f.mIoU + 10)
    more = report.Study(study.results, pd.concat([summary, hierarchy]), study.records, main=study.main)
    clauses = beyond.findings(more)
    assert clauses == ["the body hierarchy as extra supervision +10.0 (beyond noise)"]  # seeds 11.79, 11.88
    found = claims.findings(more, clauses)
    assert found[2] == clauses[0] and found[3].startswith("the pretrained model over the last quarter")
    # without the like-for-like scratch run the abstract claims nothing about pretraining (its section explains)
    less = report.Study(study.results, summary[summary.experiment != "deeplabv3plus_lite2_scratch"],
                        study.records, main=study.main)
    assert not any(clause.startswith("pretraining") for clause in claims.findings(less))


def test_every_figure_of_a_notebook_shows_not_only_the_first(tmp_path):
    """In 02_experiment the learning curves showed and the confusion matrix and predictions after them did
    not: plt.rc_context restores every rcParam on exit, 'interactive' too, so the first figure of a kernel
    drawn inside one switched the inline backend's auto-display off for the rest (matplotlib issue 24351)."""
    import nbformat
    from nbclient import NotebookClient

    cells = ["import pandas as pd\nfrom seglib import plots\nfrom seglib.data import REPORT_ORDER",
             ("log = pd.DataFrame({'iteration': [1, 2], 'loss': [2.0, 1.0], 'lr': [0.01, 0.005]})\n"
             "fig = plots.learning_curves({'run': []}, {'run': [log]})"),
             ("shares = pd.DataFrame(50.0, index=REPORT_ORDER, columns=REPORT_ORDER)\n"
             "fig = plots.confusion_grid({'run': shares})")]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(notebook, kernel_name="python3", timeout=120,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    shown = [any("image/png" in o.get("data", {}) for o in cell.outputs) for cell in notebook.cells[1:]]
    assert shown == [True, True]


def test_the_loss_curves_caption_says_which_runs_share_a_training_objective(tmp_path):
    """Figure 6 drew every experiment's training loss on one axis with a caption silent about what it is: the
    Lovász run logs Lovász-Softmax (plus the auxiliary CE), the hierarchy run adds its coarse heads' CE, so a
    lower curve there said nothing about a better fit. The caption now groups the runs by objective, read
    from each run's recorded settings."""
    import yaml
    from conftest import REPO

    from seglib.config import read_run_config

    study = report.load_study(REPO / "tests" / "records")
    ce = study.summary[study.summary.experiment != report.LOVASZ]
    assert claims.loss_note(report.Study(study.results, ce, study.records, main=study.main)) == (
        "The loss is every run's training objective: cross-entropy + 0.4 × the auxiliary head's cross-entropy.")
    # beside them the Lovász runs and a hierarchy run (its recorded settings with hierarchy_weight 0.4)
    hierarchy = study.summary.iloc[[0]].assign(experiment="deeplabv3plus_pretrained_hierarchy", run="h")
    (tmp_path / "h").mkdir()
    config = {**read_run_config(study.record(study.summary.iloc[0])), "hierarchy_weight": 0.4}
    (tmp_path / "h" / "config.yaml").write_text(yaml.safe_dump(config))
    mixed = report.Study(study.results, pd.concat([study.summary, hierarchy]), {**study.records, "h": tmp_path / "h"},
                         main=study.main)
    note = claims.loss_note(mixed)
    assert note.startswith("The loss is each run's training objective, so its level compares only between")
    assert ("cross-entropy + 0.4 × the auxiliary head's cross-entropy for DeepLabv3+ pretrained and DeepLabv3+ Lite2 "
            "(scratch);") in note
    assert "; Lovász-Softmax + 0.4 × the auxiliary head's cross-entropy for DeepLabv3+ pretrained + Lovász;" in note
    assert note.endswith("; cross-entropy + 0.4 × the auxiliary head's cross-entropy + 0.4 × the body-hierarchy "
                         "heads' cross-entropy for DeepLabv3+ pretrained + hierarchy.")


def test_experiment_titles_read_apart_in_the_reports_comma_separated_lists():
    """The report lists experiments with commas between them ("flat over the last quarter: A, B, C"); with the
    titles "DeepLabv3+ pretrained, CE + Lovász" and "..., best recipe" such a list read as more experiments
    than it named."""
    from seglib.results import TITLES

    assert all("," not in title for title in TITLES.values())
    assert claims.and_list(["A"]) == "A" and claims.and_list(["A", "B", "C"]) == "A, B and C"


def test_each_gap_to_the_course_reports_numbers_names_where_the_runs_differ_from_its_protocol(tmp_path):
    """The tables put our mIoU beside the course report's, but nothing said why the pretrained model scored
    7.7 points below it: the paragraph now gives each gap with the settings in which the runs differ from the
    course report's protocol (read from each run's config.yaml), and Lovász's change over CE in both."""
    import yaml

    from seglib import config as configs

    rows, folders = [], {}
    for experiment, profile, seed, miou, settings in (
            (report.R50_SCRATCH, "paper256", 0, 22.0, {"crop_size": 256}),
            (report.CE, "paper", 0, 51.0, {}), (report.CE, "paper", 1, 52.0, {}),
            (report.LOVASZ, "paper", 0, 46.0, {}),
            (report.LIKE_SCRATCH, "paper", 0, 20.0, {})):
        run = f"{experiment}-{profile}-seed{seed}"
        (tmp_path / run).mkdir()
        (tmp_path / run / "config.yaml").write_text(yaml.safe_dump({**configs.load(experiment, "paper"), **settings}))
        rows.append({"run": run, "experiment": experiment, "profile": profile, "seed": seed, "mIoU": miou})
        folders[run] = tmp_path / run
    study = report.Study(tmp_path, pd.DataFrame(rows), folders, main="paper")
    text = protocol.against_course_report(study)
    assert "DeepLabv3+ R50 (scratch) [paper256] 22.00 against 24.31 (-2.31; crop 256 instead of 512);" in text
    assert ("DeepLabv3+ pretrained 51.50 ± 0.71 against 59.32 (-7.82; EfficientNet-Lite2 encoder instead of "
            "ResNet-50, output stride 16 instead of 8);") in text
    assert "Lovász-Softmax against cross-entropy: -5.50 here, -0.56 in the course report." in text
    assert "cannot separate without the course report's ResNet-50 weights." in text
    assert "Lite2 (scratch)" not in text  # not one of the course report's experiments
    # the course report's own model and protocol: no difference to name, no encoder caveat
    same = {**configs.load(report.CE, "paper"), "model": "deeplabv3plus_r50-d8", "weights": "imagenet"}
    assert protocol.differences(report.CE, same) == {}
    assert protocol.differences(report.CE, {**same, "scale_range": [0.5, 2.0], "eval_flip": True}) == {
        "scale_range": "random rescale 0.5-2.0", "test-time augmentation": "test-time augmentation"}
    only_r50 = report.Study(tmp_path, pd.DataFrame(rows[:1]), folders, main="paper")
    assert "ResNet-50 weights" not in protocol.against_course_report(only_r50)
    # the abstract names the pretrained model's differences, after its scores
    assert protocol.pretrained_sentence(study) == (" The pretrained models differ from the course report's in: "
                                                   "EfficientNet-Lite2 encoder instead of ResNet-50, output stride 16 "
                                                   "instead of 8.")
    assert protocol.pretrained_sentence(only_r50) == ""
    assert protocol.against_course_report(report.Study(tmp_path, pd.DataFrame(rows[4:]), folders, main="paper")) == ""


def test_the_paper_shows_each_figure_as_one_float_with_its_numbered_caption_and_saves_it(tmp_path, monkeypatch):
    """The report notebook's figure/table helpers were functions in its first cell, out of the tests' reach
    but through a whole notebook run; they are layout.Paper's now: a figure is saved under its name, shown
    between the float's begin and end with its numbered caption, and closed; a table is one captioned float."""
    import IPython.display
    import matplotlib.pyplot as plt

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    paper = layout.Paper(tmp_path / "figures")
    fig = plt.figure()
    paper.figure(fig, "curves.png", "Loss against iteration.")
    paper.table(pd.DataFrame({"mIoU": [51.0]}), "Scores.")
    assert (tmp_path / "figures" / "curves.png").is_file() and not plt.fignum_exists(fig.number)
    begin, image, caption, end, table = shown
    assert (begin.latex, image, end.latex) == (layout.FIGURE_BEGIN, fig, layout.FIGURE_END)
    assert caption.data == "**Figure 1.** Loss against iteration." and paper.captions.ref("curves.png") == "Figure 1"
    assert isinstance(table, layout.CaptionedTable) and table.caption == "**Table 1.** Scores."
    shown.clear()
    layout.Paper().figure(plt.figure(), "unsaved.png", "Not saved.")  # no figures_dir: shown only
    assert len(shown) == 4 and not (tmp_path / "unsaved.png").exists()
