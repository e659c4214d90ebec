"""The notebooks, executed by papermill through the pipeline under the smoke profile, and the benchmark."""
import json
import math
import os
import re
import shutil

import nbformat
import pandas as pd
import pytest
from conftest import REPO, run_cli

from seglib import beyond, records
from seglib import config as configs
from seglib.errors import SeglibError
from seglib.evaluate import eval_size
from seglib.layout import FLOAT_BARRIER, FLOATS_FIRST, NEW_PAGE, TABLE_BEGIN
from seglib.pipeline import NOTEBOOKS_DIR, run_pipeline
from seglib.report import fmt
from seglib.results import seconds_per_iteration
from seglib.status import pace

RECORDS = REPO / "tests" / "records"  # a tiny committed record set: smoke runs of the embedded sample


def test_notebooks_are_stored_clean_with_a_parameters_cell():
    for path in sorted(NOTEBOOKS_DIR.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), path
        assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells), path


@pytest.fixture(scope="module")
def study_data(npy_copy):
    """The study's data folder: the sample with .npy masks, as the original distribution has them (the
    shared copy's .png masks go through every other test), so the whole pipeline is checked on both."""
    return npy_copy


@pytest.fixture(scope="module")
def smoke_pipeline(tmp_path_factory, study_data):
    out = tmp_path_factory.mktemp("pipeline")
    formats = ("html", "pdf") if shutil.which("xelatex") and shutil.which("pandoc") else ("html",)
    result = run_pipeline(profile="smoke", data=study_data, out=out, seeds=(0, 1), formats=formats, experiments=STUDY)
    return out, result, formats


# the report's four, the like-for-like scratch run and one experiment beyond the report (the other two
# train in test_train's smoke test): the paper's every section, in less time
STUDY = ("fcn_unet_scratch", "deeplabv3plus_scratch", "deeplabv3plus_pretrained", "deeplabv3plus_pretrained_lovasz",
         "deeplabv3plus_lite2_scratch", "deeplabv3plus_pretrained_hierarchy")


SECTIONS = ("<strong>Abstract.</strong>", 'id="Introduction"', 'id="Method"', 'id="Setup"', 'id="Results"',
            'id="The-course-report\'s-claims,-tested"', 'id="Beyond-the-course-report"', 'id="Conclusion"', 'id="References"', 'id="Appendix:-the-runs"')


def _latex_tables(report):
    return [o["data"]["text/latex"] for c in report.cells if c.cell_type == "code" for o in c.outputs
            if "tabular" in o.get("data", {}).get("text/latex", "")]


def test_pipeline_trains_exports_records_and_renders_the_paper(smoke_pipeline):
    out, _, formats = smoke_pipeline
    executed = {p.name for p in (out / "executed").glob("*.ipynb")}
    assert {"01_data_exploration.ipynb", "03_report.ipynb"} <= executed
    # 6 experiments; CE, Lovasz and the hierarchy with 2 seeds each
    assert len([n for n in executed if n.startswith("02_experiment-")]) == 9
    html = (out / "report" / "report.html").read_text()
    positions = [html.find(s) for s in SECTIONS]
    assert -1 not in positions and positions == sorted(positions), dict(zip(SECTIONS, positions))  # in paper order
    for needle in ("Table 1.", "Figure 1.", "the course report's Figure 5", "Boundary IoU", "roughness ratio",
                   "(a) Pretraining helps", "(b) Lovász-Softmax", "(c) 2000 iterations", "drawn at random (seed 0)",
                   "DeepLabv3+ pretrained + hierarchy.", "Inference: 1 forward pass per image", " images/s against ",
                   "What each change gave", "<th>hierarchy</th>", "each experiment's gain over it",
                   "Border measures per class", "verdict against seed variation: pretraining ", "Where the errors go.", "Where the body parts' errors go: %",
                   "Where the parts' errors go.", "Where the body parts' errors go, beyond the course report",
                   "<th>part pixels taken for background</th>", "<strong>Against the course report's numbers.</strong>",
                   "training objective, so its level compares only between experiments with the same one"):
        assert needle in html, needle
    # the conclusion repeats claim (a)'s verdict: the beyond section's sentences once took its place
    claim_a = html.split("<strong>(a) Pretraining helps.</strong> ")[1][:60]
    assert html.split("<strong>Pretraining.</strong> ")[1].startswith(claim_a), claim_a
    # per-class tables in Results for the course report's four only; the others' are in the claims and beyond
    assert "beside the course report's Table 4" in html and "(scratch): per-class IoU and accuracy" in html
    assert "Lite2 (scratch): per-class IoU and accuracy" not in html and "hierarchy: per-class IoU" not in html
    assert "Predictions on the first val images" not in html  # per-run notebooks stay in executed/, not in the paper
    run_notebook = (out / "executed" / "02_experiment-deeplabv3plus_pretrained-smoke-seed0.ipynb").read_text()
    assert "Where each class's pixels go" in run_notebook and "image/png" in run_notebook  # its confusion matrix
    hierarchy_run = (out / "executed" / "02_experiment-deeplabv3plus_pretrained_hierarchy-smoke-seed0.ipynb").read_text()
    assert "0.4 × the body-hierarchy heads' cross-entropy" in hierarchy_run  # its header names the whole loss
    assert "In&nbsp;[" not in html and "def save(" not in html  # no code, no prompts
    assert "data:image/png;base64" in html and "src=\"http" not in html and "mathjax" not in html.lower()
    assert (out / "figures" / "figure5.png").is_file() and (out / "figures" / "learning_curves.png").is_file()
    assert (out / "figures" / "percentiles.png").is_file() and "percentile of its own per-image mIoU" in html
    assert (out / "figures" / "confusion.png").is_file() and "Where each class's pixels go" in html
    assert (out / "figures" / "person_size.png").is_file() and "<strong>Scores by person size.</strong>" in html
    assert "<strong>Person size.</strong> DeepLabv3+ pretrained scores " in html  # and in the conclusion
    summary = (out / "results" / "summary.csv").read_text().splitlines()
    assert summary[0].startswith("run,experiment,profile,encoder,weights,loss,seed") and len(summary) == 10
    ids = json.loads((out / "results" / "figures.json").read_text())["ids"]
    for line in summary[1:]:
        record = out / "results" / "runs" / line.split(",")[0]
        assert {p.name for p in record.iterdir()} == {"config.yaml", "metrics.json", "log.csv", "curve.csv",
                                                      "per_image.csv", "masks"}
        picked = {i for _, i, _ in records.percentile_ids(record)}  # the run's own 10th/50th/90th percentile images
        assert picked and sorted(p.stem for p in (record / "masks").glob("*.png")) == sorted(set(ids) | picked)
    report = nbformat.read(out / "report" / "report.ipynb", as_version=4)
    tables = _latex_tables(report)
    assert tables and all("\\begin{adjustbox}{max width=\\linewidth}" in t for t in tables)  # fit the page
    # each under its caption, numbered in order, in one float (no page between them)
    assert [t[:t.index("}", t.index("\\textbf{"))] for t in tables] == [
        f"{TABLE_BEGIN}\n\\noindent \\textbf{{Table {n}." for n in range(1, len(tables) + 1)]
    assert not any("parameters" in c.metadata.get("tags", []) for c in report.cells)
    # every figure, its image and its numbered caption are one float in the PDF
    kinds = [("begin" if "\\begin{figure}" in latex else "end" if latex == "\\end{figure}" else "image" if "image/png" in d
              else "caption" if d.get("text/markdown", "").startswith("**Figure") else "other")
             for c in report.cells if c.cell_type == "code" for o in c.outputs for d in [o.get("data", {})]
             for latex in [d.get("text/latex", "")]]
    figures = [i for i, k in enumerate(kinds) if k == "image"]
    assert figures and all(kinds[i - 1:i + 3] == ["begin", "image", "caption", "end"] for i in figures), kinds
    assert kinds.count("begin") == kinds.count("end") == len(figures)
    outputs = [d for c in report.cells if c.cell_type == "code" for o in c.outputs for d in [o.get("data", {})]]
    # no figure inside the conclusion or among the references; the appendix's heading not left at a page's foot
    for heading, before in (("# Conclusion", FLOATS_FIRST), ("# References", FLOAT_BARRIER), ("# Appendix", NEW_PAGE)):
        at = next(i for i, d in enumerate(outputs) if d.get("text/markdown", "").startswith(heading))
        assert outputs[at - 1].get("text/latex") == before, heading
    if "pdf" in formats:
        assert (out / "report" / "report.pdf").read_bytes()[:4] == b"%PDF"


def test_the_report_renders_again_from_its_records_alone(smoke_pipeline, study_data, tmp_path):
    """A fresh clone has results/ but no run folder or checkpoint: the report comes back with the same numbers."""
    out, _, _ = smoke_pipeline
    shutil.copytree(out / "results", tmp_path / "results")
    (tmp_path / "figures").mkdir()
    for name in ("borders_perimeter_ratio.png", "data_examples.png"):  # an older layout's figure; the data's
        (tmp_path / "figures" / name).write_bytes(b"png")
    result = run_pipeline(out=tmp_path, data=study_data, from_records=True, formats=("html",))
    figures = {p.name for p in (tmp_path / "figures").iterdir()}
    assert "borders_perimeter_ratio.png" not in figures and {"data_examples.png", "figure5.png"} <= figures
    assert not (tmp_path / "runs").exists() and result["report"] == [tmp_path / "report" / "report.html"]
    again = nbformat.read(tmp_path / "report" / "report.ipynb", as_version=4)
    first = nbformat.read(out / "report" / "report.ipynb", as_version=4)
    assert _latex_tables(again) == _latex_tables(first)


def test_a_committed_record_set_renders_without_training(tmp_path, sample_root):
    shutil.copytree(RECORDS, tmp_path / "results")
    proc = run_cli("pipeline", "--from-records", "--out", tmp_path, "--formats", "html")
    assert proc.returncode == 2 and "not on this machine" in proc.stderr  # recorded elsewhere: asks for the data
    proc = run_cli("pipeline", "--from-records", "--out", tmp_path, "--data", sample_root, "--formats", "html")
    assert proc.returncode == 0, proc.stderr[-2000:]
    html = (tmp_path / "report" / "report.html").read_text()
    summary = pd.read_csv(RECORDS / "summary.csv")
    pretrained = summary[summary.experiment == "deeplabv3plus_pretrained"].mIoU
    assert f"DeepLabv3+ pretrained {fmt(pretrained)} mIoU" in html  # the abstract's number, from the records
    assert "Figure" in html and "TCP without encryption" not in proc.stdout + proc.stderr
    assert "Exception reporting mode" not in html  # the notebook's set-up prints nothing into the paper
    assert "Where the errors go" not in html  # records scored before evaluations stored the confusion matrix
    # the paper's title and authors open the page, as in the PDF (the lab template put them in the tab only)
    title = nbformat.read(NOTEBOOKS_DIR / "03_report.ipynb", as_version=4).metadata["title"]
    assert f'margin: 0 0 0.5em">{title}</p>\n<p style="font-size: 1.2em; margin: 0">seglib</p>' in html.split("<main>")[1]


def test_a_study_on_another_data_folder_stops_before_replacing_the_records(tmp_path, sample_root):
    """`make study` without DATA=... trains on the embedded sample: no committed record stands in for its runs,
    and its first run, hours later, replaced results/summary.csv and pruned the other records. It now stops at
    once, nothing executed, naming the folder the records were trained on."""
    shutil.copytree(RECORDS, tmp_path / "results")
    proc = run_cli("pipeline", "--profile", "smoke", "--data", sample_root, "--out", tmp_path, "--formats", "html")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "trained on /data/elsewhere/pascal-part-sample, not on " in proc.stderr and "--data" in proc.stderr
    assert not (tmp_path / "executed").exists() and not (tmp_path / "runs").exists()
    assert (tmp_path / "results" / "summary.csv").read_text() == (RECORDS / "summary.csv").read_text()
    assert records.other_data(tmp_path / "results" / "runs", "/data/elsewhere/pascal-part-sample") == {}
    # `make status DATA=...` says so before anyone starts the study; without a data folder it cannot tell
    lines = run_pipeline(profile="smoke", data=sample_root, out=tmp_path, status=True)["status"]
    assert lines[-1].startswith("the study on this data folder stops before training: ") and "trained on" in lines[-1]
    assert "stops before training" not in run_pipeline(profile="smoke", out=tmp_path, status=True)["status"][-1]


def test_status_names_the_records_a_narrower_study_would_remove(tmp_path):
    """A study narrowed to one experiment (make report EXPERIMENTS=... OUT=.) removes, when it ends, the records
    of the committed study's other runs: make status says so before anyone starts it."""
    shutil.copytree(RECORDS, tmp_path / "results")
    lines = run_pipeline(profile="smoke", out=tmp_path, seeds=(0,), experiments=["deeplabv3plus_pretrained"],
                         status=True)["status"]
    assert lines[-1] == (f"4 record(s) in {tmp_path / 'results' / 'runs'} outside this study (deeplabv3plus_lite2_scratch-smoke-seed0, "
                         "deeplabv3plus_pretrained-smoke-seed1, deeplabv3plus_pretrained_lovasz-smoke-seed0, ...) would "
                         "be removed when it ends")
    everything = sorted(p.name.rsplit("-smoke-", 1) for p in (RECORDS / "runs").iterdir())
    whole = run_pipeline(profile="smoke", out=tmp_path, seeds=sorted({int(s[-1]) for _, s in everything}),
                         experiments=sorted({e for e, _ in everything}), status=True)["status"]
    assert not any("outside this study" in line for line in whole)


def test_rerun_skips_complete_experiments(smoke_pipeline, study_data, capsys):
    out, _, _ = smoke_pipeline
    before = (out / "runs" / "fcn_unet_scratch-smoke-seed0" / "final.pt").stat().st_mtime
    run_pipeline(profile="smoke", data=study_data, out=out, seeds=(0, 1), only=["02_experiment"], formats=("html",),
                 experiments=STUDY)
    assert "complete, skipped" in capsys.readouterr().out
    assert (out / "runs" / "fcn_unet_scratch-smoke-seed0" / "final.pt").stat().st_mtime == before


def test_executed_copy_older_than_its_run_is_executed_again_without_retraining(smoke_pipeline, study_data, capsys):
    out, _, _ = smoke_pipeline
    run = out / "runs" / "fcn_unet_scratch-smoke-seed0"
    before = (run / "final.pt").stat().st_mtime
    copy = out / "executed" / "02_experiment-fcn_unet_scratch-smoke-seed0.ipynb"
    os.utime(copy, (0, 0))  # as if executed for an earlier run in this folder
    run_pipeline(profile="smoke", data=study_data, out=out, seeds=(0, 1), only=["02_experiment"], formats=("html",),
                 experiments=STUDY)
    printed = capsys.readouterr().out
    assert "fcn_unet_scratch-smoke-seed0: complete, skipped" not in printed
    assert "deeplabv3plus_scratch-smoke-seed0: complete, skipped" in printed
    assert copy.stat().st_mtime > (run / "metrics.json").stat().st_mtime
    assert (run / "final.pt").stat().st_mtime == before


def test_only_the_study_runs_reach_the_records_and_tables(smoke_pipeline, study_data, capsys):
    """A run trained by hand into runs/ (the command line's default name) is no extra seed of the study,
    and a record left from another study is removed, which the pipeline says before it trains (a study
    narrowed to one run removed the other records only when that run ended, hours later); a missing mask
    is exported again without retraining."""
    out, _, _ = smoke_pipeline
    stray_run = out / "runs" / "deeplabv3plus_pretrained-smoke-seed7"
    shutil.copytree(out / "runs" / "deeplabv3plus_pretrained-smoke-seed0", stray_run)
    configs.save({**configs.read_run_config(stray_run), "seed": 7}, stray_run / "config.yaml")
    stray_record = out / "results" / "runs" / "old_experiment-cpu-seed0"
    shutil.copytree(out / "results" / "runs" / "fcn_unet_scratch-smoke-seed0", stray_record)
    record = out / "results" / "runs" / "deeplabv3plus_scratch-smoke-seed0"
    mask = next((record / "masks").glob("*.png"))
    mask.unlink()
    final = out / "runs" / "deeplabv3plus_scratch-smoke-seed0" / "final.pt"
    before = final.stat().st_mtime
    try:
        run_pipeline(profile="smoke", data=study_data, out=out, seeds=(0, 1), only=["02_experiment"], formats=("html",),
                 experiments=STUDY)
        summary = (out / "results" / "summary.csv").read_text()
        assert "seed7" not in summary and "old_experiment" not in summary and not stray_record.exists()
        printed = capsys.readouterr().out
        warned = printed.index("outside this study (old_experiment-cpu-seed0) will be removed")
        assert warned < printed.index("[records] removed old_experiment-cpu-seed0")
        assert "python -m seglib train --experiment" in printed[warned:warned + 400]
        assert mask.is_file() and final.stat().st_mtime == before
    finally:
        shutil.rmtree(stray_run)


def test_extra_runs_are_checked_and_named_by_profile():
    from seglib.pipeline import experiment_runs, parse_extra

    extra = parse_extra(["deeplabv3plus_pretrained@cpu512"], "cpu", (0, 1))
    runs = experiment_runs([0, 1], "cpu", extra)
    assert runs[-1] == ("deeplabv3plus_pretrained", "cpu512", 0, "deeplabv3plus_pretrained-cpu512-seed0")
    assert [r for r in runs if r[1] == "cpu512"] == [runs[-1]]  # one seed unless asked for more
    # seed by seed: every experiment's first seed before any repeat
    seeds = [seed for _, profile, seed, _ in runs if profile == "cpu"]
    assert seeds == sorted(seeds) and seeds.count(0) == len(configs.EXPERIMENTS)
    assert runs[len(configs.EXPERIMENTS)][0] == "deeplabv3plus_pretrained"
    two = experiment_runs([3, 4, 5], "cpu", parse_extra(["deeplabv3plus_pretrained@cpu512:2"], "cpu", (3, 4, 5)))
    assert [tag for *_, tag in two if "cpu512" in tag] == ["deeplabv3plus_pretrained-cpu512-seed3",
                                                           "deeplabv3plus_pretrained-cpu512-seed4"]
    for bad, message in (("deeplabv3plus_pretrained", "EXPERIMENT@PROFILE"), ("nope@cpu512", "EXPERIMENT@PROFILE"),
                         ("deeplabv3plus_pretrained@huge", "EXPERIMENT@PROFILE"), ("fcn_unet_scratch@cpu", "already runs"),
                         ("deeplabv3plus_pretrained@cpu512:3", "from 1 to 2"), ("deeplabv3plus_pretrained@cpu512:x", "from 1 to 2")):
        with pytest.raises(SeglibError, match=message):
            parse_extra([bad], "cpu", (0, 1))


def test_rerun_with_changed_settings_stops_instead_of_reusing_the_old_run(smoke_pipeline, study_data, monkeypatch):
    out, _, _ = smoke_pipeline
    real_load = configs.load
    monkeypatch.setattr(configs, "load", lambda e, p="paper", o=None: {**real_load(e, p, o), "iterations": 5})
    with pytest.raises(SeglibError, match=r"fcn_unet_scratch-smoke-seed0: finished with other settings \(iterations 3 -> 5\)"):
        run_pipeline(profile="smoke", data=study_data, out=out, seeds=(0, 1), only=["02_experiment"], formats=("html",),
                 experiments=STUDY)


def test_changed_evaluation_settings_score_a_run_again_without_retraining(smoke_pipeline, study_data, capsys):
    out, _, _ = smoke_pipeline
    run = out / "runs" / "fcn_unet_scratch-smoke-seed0"
    before = (run / "final.pt").stat().st_mtime
    saved = configs.read_run_config(run)
    configs.save({**saved, "eval_flip": not saved["eval_flip"]}, run / "config.yaml")  # scored otherwise before
    run_pipeline(profile="smoke", data=study_data, out=out, seeds=(0,), only=["02_experiment"], formats=("html",),
                 experiments=STUDY)
    printed = capsys.readouterr().out
    assert "fcn_unet_scratch-smoke-seed0: complete, skipped" not in printed
    assert "deeplabv3plus_scratch-smoke-seed0: complete, skipped" in printed
    assert configs.read_run_config(run)["eval_flip"] == saved["eval_flip"]  # scored under the profile's settings
    assert (run / "final.pt").stat().st_mtime == before


def test_a_run_finished_on_another_machine_is_not_trained_again(smoke_pipeline, study_data, capsys, tmp_path):
    """A new machine has the committed records but no run folders: the study goes on from the next run."""
    out, _, _ = smoke_pipeline
    tag = "fcn_unet_scratch-smoke-seed0"
    run_dir, record = out / "runs" / tag, out / "results" / "runs" / tag
    shutil.move(run_dir, tmp_path / tag)
    try:
        run_pipeline(profile="smoke", data=study_data, out=out, seeds=(0, 1), only=["02_experiment"], formats=("html",),
                     experiments=STUDY)
        assert f"{tag}: finished elsewhere" in capsys.readouterr().out
        assert not run_dir.exists() and tag in pd.read_csv(out / "results" / "summary.csv").run.tolist()
        status = run_pipeline(profile="smoke", out=out, seeds=(0, 1), experiments=STUDY, status=True)["status"]
        assert f"{tag}: finished elsewhere, mIoU" in status[0]
        saved = (record / "config.yaml").read_bytes()  # a record of other settings: said, not counted as done
        configs.save({**configs.read_run_config(record), "iterations": 4}, record / "config.yaml")
        status = run_pipeline(profile="smoke", out=out, seeds=(0, 1), experiments=STUDY, status=True)["status"]
        (record / "config.yaml").write_bytes(saved)
        assert status[0] == f"{tag}: finished elsewhere with other settings (iterations 4 -> 3)"
        # the record stands in only for the same settings, the same data and every mask the report draws
        config = configs.load("fcn_unet_scratch", "smoke", {"seed": 0})
        ids = json.loads((out / "results" / "figures.json").read_text())["ids"]
        assert records.stands_in(record, config, study_data, ids)
        assert not records.stands_in(record, {**config, "iterations": 4}, study_data, ids)
        assert not records.stands_in(record, config, tmp_path, ids)
        assert not records.stands_in(record, config, study_data, [*ids, "not_an_image"])
    finally:
        shutil.move(tmp_path / tag, run_dir)


def test_status_says_where_each_run_of_the_study_stands(smoke_pipeline, study_data, capsys):
    import torch

    out, _, _ = smoke_pipeline
    unfinished = out / "runs" / "deeplabv3plus_pretrained-smoke-seed2"
    unfinished.mkdir()
    try:
        torch.save({"iteration": 2, "history": [{"iteration": 1, "seconds": 10.0}, {"iteration": 2, "seconds": 16.0}]},
                   unfinished / "last.pt")
        lines = run_pipeline(profile="smoke", out=out, seeds=(0, 1, 2), experiments=STUDY, status=True)["status"]
        assert capsys.readouterr().out.splitlines() == lines
        state = dict(line.split(": ", 1) for line in lines)
        mIoU = json.loads((out / "runs" / "fcn_unet_scratch-smoke-seed0" / "metrics.json").read_text())["mIoU"]
        assert state["fcn_unet_scratch-smoke-seed0"] == f"finished, mIoU {mIoU:.2f}"
        assert state["deeplabv3plus_pretrained-smoke-seed2"].startswith("at iteration 2 of 3 (last checkpoint")
        assert state["deeplabv3plus_pretrained-smoke-seed2"].endswith("6.0 s/iteration over its last 1 iterations: about 1 min left")
        # a run not started yet: its time from the pace of a finished run with the same model, crop and loss
        rate = seconds_per_iteration(out / "runs" / "deeplabv3plus_pretrained_lovasz-smoke-seed0")
        assert state["deeplabv3plus_pretrained_lovasz-smoke-seed2"] == (
            f"not started (about {math.ceil(rate * 3 / 60)} min at the {rate:.1f} s/iteration of "
            "deeplabv3plus_pretrained_lovasz-smoke-seed0)")
        assert list(state)[:len(STUDY)] == [f"{e}-smoke-seed0" for e in configs.EXPERIMENTS if e in STUDY]
        assert re.fullmatch(r"training left: about \d+ min on this machine", lines[-1])  # every run's pace is known
    finally:
        shutil.rmtree(unfinished)


def test_status_times_runs_not_started_at_this_machines_pace_where_it_has_one(smoke_pipeline):
    """A CPU's pace differs threefold between machines of one kind: a run not started is timed from a
    finished run of this machine before one of another, and one timed from another machine says so."""
    out, _, _ = smoke_pipeline
    runs = [out / "runs" / f"deeplabv3plus_pretrained_lovasz-smoke-seed{s}" for s in (0, 1)]
    saved = {run: (run / "metrics.json").read_text() for run in runs}

    def trained_elsewhere(run):
        (run / "metrics.json").write_text(json.dumps({**json.loads(saved[run]), "host": "another CPU, 2 threads"}))

    def state():
        lines = run_pipeline(profile="smoke", out=out, seeds=(0, 1, 2), experiments=STUDY, status=True)["status"]
        return dict(line.split(": ", 1) for line in lines)["deeplabv3plus_pretrained_lovasz-smoke-seed2"], lines[-1]

    try:
        trained_elsewhere(runs[0])
        line, total = state()
        assert "s/iteration of deeplabv3plus_pretrained_lovasz-smoke-seed1)" in line and "another machine" not in total
        trained_elsewhere(runs[1])
        line, total = state()
        assert "s/iteration of deeplabv3plus_pretrained_lovasz-smoke-seed0, measured on another machine)" in line
        # the total no longer says "on this machine" for another's pace, and says how to time them here
        assert re.fullmatch(r"training left: about \d+ min \(1 run\(s\) timed at another machine's pace\); "
                            r"--measure \(make: MEASURE=1\) times them here", total)
        # only their exported records here (a new checkout), the host as this machine's: another machine all
        # the same (two AVX2 EPYCs, one description, 6.5 and 9.1 s/iteration)
        for run in runs:
            (run / "metrics.json").write_text(saved[run])
            run.rename(run.with_name(run.name + ".away"))
        line, total = state()
        assert "s/iteration of deeplabv3plus_pretrained_lovasz-smoke-seed0, measured on another machine)" in line
    finally:
        for run, text in saved.items():
            if not run.exists():
                run.with_name(run.name + ".away").rename(run)
            (run / "metrics.json").write_text(text)


def test_status_measure_times_here_only_the_step_costs_without_a_pace_from_this_machine(smoke_pipeline, monkeypatch):
    """make status MEASURE=1: on a new machine a run's time at another machine's pace can be off threefold;
    a few steps timed here answer whether the next run fits, once per model, crop and batch."""
    from seglib import bench

    out, _, _ = smoke_pipeline
    calls, real = [], bench.train_throughput

    def counting(*args, **kwargs):
        calls.append(args[:3])
        return real(*args, **kwargs)

    monkeypatch.setattr(bench, "train_throughput", counting)
    lines = run_pipeline(profile="smoke", out=out, seeds=(0, 1, 2), status=True, measure=True,
                         experiments=(*STUDY, "deeplabv3plus_pretrained_ce_lovasz"))["status"]
    state = dict(line.split(": ", 1) for line in lines[:-1])
    assert calls == [("deeplabv3plus_lite2-d16", 64, 2)]  # the one step cost with no pace from this machine
    assert "MEASURE" not in lines[-1]  # timed: nothing left to advise
    assert re.fullmatch(r"not started \(about \d+ min at \d+\.\d s/iteration timed here \(3 steps on random inputs, "
                        r"without data loading or the learning curve\)\)",
                        state["deeplabv3plus_pretrained_ce_lovasz-smoke-seed0"])
    # a step cost trained here keeps that run's pace (data loading and the learning curve included)
    assert state["deeplabv3plus_pretrained_lovasz-smoke-seed2"].endswith("of deeplabv3plus_pretrained_lovasz-smoke-seed0)")


def test_pace_of_an_unfinished_run_comes_from_its_last_iterations():
    """The loss log's cumulative training seconds over the last 100 iterations give the pace and what is
    left, so a slow start (or an earlier, slower machine) does not skew it."""
    history = [{"iteration": i, "seconds": 20.0 * i if i <= 200 else 4000.0 + 7.5 * (i - 200)} for i in range(10, 410, 10)]
    assert pace(history, 2000) == ", 7.5 s/iteration over its last 100 iterations: about 3 h 20 min left"
    assert pace(history[:1], 2000) == "" and pace([], 2000) == ""
    assert pace([{"iteration": 10, "seconds": 5.0}, {"iteration": 20, "seconds": 10.0}], 30) == (
        ", 0.5 s/iteration over its last 10 iterations: about 1 min left")


def test_results_list_the_finished_runs_while_the_study_goes_on(smoke_pipeline, study_data, monkeypatch):
    """A study that takes days writes summary.csv after each run: stopped after two runs, it lists those two."""
    out, _, _ = smoke_pipeline
    (out / "results" / "summary.csv").unlink()
    real_export, calls = records.export, []

    def export_two_then_stop(*args, **kwargs):
        calls.append(args[0].name)
        if len(calls) == 3:
            raise SeglibError("stopped")
        return real_export(*args, **kwargs)

    monkeypatch.setattr(records, "export", export_two_then_stop)
    with pytest.raises(SeglibError, match="stopped"):
        run_pipeline(profile="smoke", data=study_data, out=out, seeds=(0, 1), only=["02_experiment"],
                     formats=("html",), experiments=STUDY)
    listed = pd.read_csv(out / "results" / "summary.csv").run.tolist()
    assert sorted(listed) == sorted(calls[:2])


def test_runs_finished_out_of_training_order_are_listed_from_the_start(smoke_pipeline, study_data, monkeypatch):
    """An experiment added to a study trains its first seed before the second seeds that have already
    finished: while it trains, summary.csv must still list those (it listed only the runs before it)."""
    from seglib import pipeline

    out, _, _ = smoke_pipeline
    first = pipeline.experiment_runs([0, 1], "smoke", experiments=STUDY)[0][3]
    aside = out / "aside"
    aside.mkdir()
    shutil.move(out / "runs" / first, aside / "run")
    shutil.move(out / "results" / "runs" / first, aside / "record")
    (out / "results" / "summary.csv").unlink()
    def stop_training(name, *args, **kwargs):
        raise SeglibError(f"{name}: training stopped")

    monkeypatch.setattr(pipeline, "execute", stop_training)
    try:
        with pytest.raises(SeglibError, match="02_experiment: training stopped"):
            run_pipeline(profile="smoke", data=study_data, out=out, seeds=(0, 1), formats=("html",), experiments=STUDY,
                         only=["02_experiment"])
        listed = pd.read_csv(out / "results" / "summary.csv").run.tolist()
        expected = [t for *_, t in pipeline.experiment_runs([0, 1], "smoke", experiments=STUDY)][1:]
        assert listed == expected  # every finished run, in the study's order, though the first is untrained
    finally:
        shutil.move(aside / "run", out / "runs" / first)
        shutil.move(aside / "record", out / "results" / "runs" / first)
        aside.rmdir()
        monkeypatch.undo()
        run_pipeline(profile="smoke", data=study_data, out=out, seeds=(0, 1), formats=("html",), experiments=STUDY,
                     only=["02_experiment"])  # summary.csv as it was


def test_force_retrains_a_complete_run(smoke_pipeline, study_data, capsys):
    out, _, _ = smoke_pipeline
    final = out / "runs" / "fcn_unet_scratch-smoke-seed0" / "final.pt"
    before = final.stat().st_mtime
    # one experiment is enough to show --force retrains (the last test on this fixture: pruning the rest is harmless)
    run_pipeline(profile="smoke", data=study_data, out=out, seeds=(0,), force=True, only=["02_experiment"],
                 formats=("html",), experiments=("fcn_unet_scratch",))
    assert "complete, skipped" not in capsys.readouterr().out
    assert final.stat().st_mtime > before


def test_failed_notebook_stops_the_pipeline_with_its_name(tmp_path, sample_copy):
    (sample_copy / "val_id.txt").write_text("no_such_image\n")
    with pytest.raises(SeglibError, match="notebook 01_data_exploration failed: SeglibError"):
        run_pipeline(profile="smoke", data=sample_copy, out=tmp_path / "out", formats=("html",))


def test_bench_writes_throughputs(tmp_path):
    proc = run_cli("bench", "--model", "fcn_unet_s5-d16", "--crop", "32", "--batch", "2", "--iters", "1",
                   "--json", tmp_path / "bench.json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "bench.json").read_text())
    for key in ("train_images_per_s", "baseline_train_images_per_s", "eval_images_per_s", "data_images_per_s_per_worker"):
        assert result[key] > 0


def test_bench_times_each_experiments_inference_in_turn(tmp_path, cli):
    """Issue 18: each added experiment's inference cost measured beside the baseline's on one machine. The
    experiments are timed as their configs evaluate (the best recipe's test-time flip doubles its forward
    passes, and its plain pass is timed apart), every round, so that their speeds can be compared."""
    out = tmp_path / "inference.json"
    proc = cli("bench", "--experiments", "deeplabv3plus_pretrained", "deeplabv3plus_pretrained_best", "--profile",
               "smoke", "--images", "2", "--rounds", "2", "--json", out)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert (result["profile"], result["images"], result["rounds"]) == ("smoke", 2, 2) and result["machine"]
    base, best = (result["experiments"][e] for e in ("deeplabv3plus_pretrained", "deeplabv3plus_pretrained_best"))
    assert (base["passes"], best["passes"]) == (1, 2)
    assert base["eval_size"] == eval_size(configs.load("deeplabv3plus_pretrained", "smoke"))
    assert "plain_images_per_s" not in base and len(best["plain_images_per_s"]) == 2
    assert len(base["images_per_s"]) == 2 and min(base["images_per_s"] + best["images_per_s"]) > 0
    proc = cli("bench", "--experiments", "--profile", "smoke", "--images", "1", "--rounds", "1", "--json", out)
    assert proc.returncode == 0, proc.stderr  # none named: the ones the report compares, as make inference runs it
    assert list(json.loads(out.read_text())["experiments"]) == ["deeplabv3plus_pretrained", *beyond.EXPERIMENTS]
    proc = cli("bench", "--experiments", "no_such_experiment", "--profile", "smoke", "--images", "1")
    assert proc.returncode != 0 and "no_such_experiment" in proc.stderr and "Traceback" not in proc.stderr


def test_a_training_notebook_streams_its_progress(tmp_path, sample_root, capfd):
    """Hours of training through the pipeline are not silent: the run's progress reaches the terminal."""
    from seglib.pipeline import EXPERIMENT, execute

    execute(EXPERIMENT, tmp_path / "nb.ipynb", {"data": str(sample_root), "profile": "smoke", "run_dir": str(tmp_path / "run"),
                                                "experiment": "deeplabv3plus_pretrained"}, stream=True)
    printed = capfd.readouterr()
    assert "deeplabv3plus_pretrained:" in printed.err and "it/s" in printed.err  # the tqdm bar
    assert "iteration 2: val mIoU" in printed.out  # the learning curve's line
    assert "IProgress not found" not in printed.err  # tqdm.auto (imported by the model libraries) finds ipywidgets


def test_make_study_is_the_committed_study():
    """`make study` / `make study-status` hold the committed study's variables in one place (the README
    and every stretch's notes repeated a six-line command): their pipeline command lists every run behind
    results/summary.csv, so `make study DATA=...` continues exactly that study."""
    import shlex
    import subprocess

    from seglib.pipeline import experiment_runs, parse_extra

    made = subprocess.run(["make", "-n", "study", "DATA=/data/pascal-part"], cwd=REPO, capture_output=True, text=True,
                          check=True, env={**os.environ, "MAKEFLAGS": ""}).stdout
    line = next(entry for entry in made.splitlines() if " -m seglib pipeline " in entry)
    words = shlex.split(line)
    arguments, key = {}, None
    for word in words[words.index("pipeline") + 1:]:
        if word.startswith("--"):
            key = word
            arguments[key] = []
        else:
            arguments[key].append(word)
    assert arguments["--profile"] == ["paper"] and arguments["--data"] == ["/data/pascal-part"]
    assert arguments["--out"] == ["."]
    seeds = [int(s) for s in arguments["--seeds"]]
    runs = {tag for *_, tag in experiment_runs(seeds, "paper", parse_extra(arguments["--extra"], "paper", tuple(seeds)),
                                               arguments["--experiments"])}
    committed = set(pd.read_csv(REPO / "results" / "summary.csv").run)
    assert committed and committed <= runs, committed - runs
    status = lambda *more: subprocess.run(["make", "-n", "study-status", "MEASURE=1", *more], cwd=REPO, capture_output=True,
                                          text=True, check=True, env={**os.environ, "MAKEFLAGS": ""}).stdout
    assert "--status --measure --profile paper --out . --seeds 0 1 2" in status()  # the sample default: no --data
    assert "--profile paper --data /data/pascal-part --out . --seeds 0 1 2" in status("DATA=/data/pascal-part")


def test_committed_results_hold_only_what_the_study_writes():
    """results/ is what readers take the numbers from: only the files the study writes may sit there (a
    border table of an earlier, superseded cpu study stayed behind, with seeds summary.csv does not list)."""
    written = {"summary.csv", "figures.json",  # pipeline.write_results
               "inference.json",  # make inference (seglib bench --json)
               "runs"}  # records.export, one folder per run in summary.csv
    results = REPO / "results"
    assert {entry.name for entry in results.iterdir()} <= written
    assert {entry.name for entry in (results / "runs").iterdir()} == set(pd.read_csv(results / "summary.csv").run)
