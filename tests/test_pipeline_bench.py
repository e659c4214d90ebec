"""The notebooks, executed by papermill through the pipeline under the smoke profile, and the benchmark."""
import json
import os
import shutil

import nbformat
import pytest
from conftest import run_cli

from seglib import config as configs
from seglib.errors import SeglibError
from seglib.pipeline import NOTEBOOKS_DIR, run_pipeline


def test_notebooks_are_stored_clean_with_a_parameters_cell():
    for path in sorted(NOTEBOOKS_DIR.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), path
        assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells), path


@pytest.fixture(scope="module")
def smoke_pipeline(tmp_path_factory, sample_root):
    out = tmp_path_factory.mktemp("pipeline")
    formats = ("html", "pdf") if shutil.which("xelatex") and shutil.which("pandoc") else ("html",)
    result = run_pipeline(profile="smoke", data=sample_root, out=out, seeds=(0, 1), formats=formats)
    return out, result, formats


def test_pipeline_runs_every_notebook_and_renders_the_report(smoke_pipeline):
    out, _, formats = smoke_pipeline
    executed = {p.name for p in (out / "executed").glob("*.ipynb")}
    assert {"01_data_exploration.ipynb", "03_lovasz_borders.ipynb", "04_results.ipynb"} <= executed
    assert len([n for n in executed if n.startswith("02_experiment-")]) == 6  # 4 experiments, CE and Lovasz x 2 seeds
    html = (out / "report" / "report.html").read_text()
    for needle in ("Table 1: FCN+U-Net", "Table 4: DeepLabv3+ pretrained + Lov", "Figure 5", "Boundary IoU",
                   "course report", "What pretraining gains"):
        assert needle in html, needle
    assert "data:image/png;base64" in html and "<img src=\"http" not in html  # images embedded: reads offline
    assert "src=\"http" not in html and "mathjax" not in html.lower()  # and nothing else is fetched from the web
    assert (out / "figures" / "figure5.png").is_file()
    summary = (out / "results" / "summary.csv").read_text().splitlines()
    assert summary[0].startswith("experiment,profile,encoder,weights,loss,seed") and len(summary) == 7
    report = nbformat.read(out / "report" / "report.ipynb", as_version=4)
    tables = [o["data"]["text/latex"] for c in report.cells if c.cell_type == "code" for o in c.outputs
              if "tabular" in o.get("data", {}).get("text/latex", "")]
    assert tables and all(t.startswith("\\begin{adjustbox}{max width=\\linewidth}") for t in tables)  # fit the PDF page
    if "pdf" in formats:
        assert (out / "report" / "report.pdf").read_bytes()[:4] == b"%PDF"


def test_rerun_skips_complete_experiments(smoke_pipeline, sample_root, capsys):
    out, _, _ = smoke_pipeline
    before = (out / "runs" / "fcn_unet_scratch-seed0" / "final.pt").stat().st_mtime
    run_pipeline(profile="smoke", data=sample_root, out=out, seeds=(0, 1), only=["02_experiment"], formats=("html",))
    assert "complete, skipped" in capsys.readouterr().out
    assert (out / "runs" / "fcn_unet_scratch-seed0" / "final.pt").stat().st_mtime == before


def test_executed_copy_older_than_its_run_is_executed_again_without_retraining(smoke_pipeline, sample_root, capsys):
    out, _, _ = smoke_pipeline
    run = out / "runs" / "fcn_unet_scratch-seed0"
    before = (run / "final.pt").stat().st_mtime
    copy = out / "executed" / "02_experiment-fcn_unet_scratch-seed0.ipynb"
    os.utime(copy, (0, 0))  # as if executed for an earlier run in this folder
    run_pipeline(profile="smoke", data=sample_root, out=out, seeds=(0, 1), only=["02_experiment"], formats=("html",))
    printed = capsys.readouterr().out
    assert "fcn_unet_scratch-seed0: complete, skipped" not in printed and "deeplabv3plus_scratch-seed0: complete, skipped" in printed
    assert copy.stat().st_mtime > (run / "metrics.json").stat().st_mtime
    assert (run / "final.pt").stat().st_mtime == before


def test_missing_prediction_figure_is_drawn_again_without_retraining(smoke_pipeline, sample_root, capsys):
    out, _, _ = smoke_pipeline
    run, figure = out / "runs" / "deeplabv3plus_scratch-seed0", out / "figures" / "predictions_deeplabv3plus_scratch-seed0.png"
    before = (run / "final.pt").stat().st_mtime
    figure.unlink()
    run_pipeline(profile="smoke", data=sample_root, out=out, seeds=(0, 1), only=["02_experiment"], formats=("html",))
    assert "deeplabv3plus_scratch-seed0: complete, skipped" not in capsys.readouterr().out
    assert figure.is_file() and (run / "final.pt").stat().st_mtime == before


def test_report_leaves_out_executed_copies_of_other_seeds(smoke_pipeline, sample_root):
    out, _, _ = smoke_pipeline
    stray = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("STRAY SEED 7 COPY")])
    nbformat.write(stray, out / "executed" / "02_experiment-deeplabv3plus_pretrained-seed7.ipynb")
    run_pipeline(profile="smoke", data=sample_root, out=out, seeds=(0, 1), only=["04_results"], formats=("html",))
    html = (out / "report" / "report.html").read_text()
    assert "STRAY SEED 7 COPY" not in html and "Figure 5" in html


def test_figures_of_runs_outside_the_study_are_removed(smoke_pipeline, sample_root):
    out, _, _ = smoke_pipeline
    figures = out / "figures"
    kept = figures / "predictions_deeplabv3plus_pretrained-seed1.png"
    strays = [figures / "predictions_deeplabv3plus_pretrained-seed7.png", figures / "borders_closeup_no_such_image.png"]
    for stray in strays:
        stray.write_bytes(kept.read_bytes())
    closeups = {p.name for p in figures.glob("borders_closeup_*.png")} - {strays[1].name}
    assert closeups  # the smoke study writes close-ups, which must come back after the pruning
    run_pipeline(profile="smoke", data=sample_root, out=out, seeds=(0, 1), only=["02_experiment", "03_lovasz_borders"],
                 formats=("html",))
    assert kept.is_file() and not any(s.exists() for s in strays)
    assert {p.name for p in figures.glob("borders_closeup_*.png")} == closeups


def test_run_of_another_profile_gets_rows_of_its_own_and_stays_out_of_the_border_analysis(smoke_pipeline, sample_root):
    out, _, _ = smoke_pipeline
    extra = out / "runs" / "deeplabv3plus_pretrained-cpu512-seed0"
    shutil.copytree(out / "runs" / "deeplabv3plus_pretrained-seed0", extra)
    configs.save({**configs.read_run_config(extra), "profile": "cpu512", "crop_size": 96}, extra / "config.yaml")
    try:
        run_pipeline(profile="smoke", data=sample_root, out=out, seeds=(0, 1), only=["03_lovasz_borders", "04_results"],
                     formats=("html",))
        html = (out / "report" / "report.html").read_text()
        assert "Table 3: DeepLabv3+ pretrained [cpu512]" in html and "Table 3: DeepLabv3+ pretrained</strong>" in html
        summary = (out / "results" / "summary.csv").read_text().splitlines()
        assert len(summary) == 8 and sum(",cpu512," in line for line in summary) == 1
        borders = (out / "results" / "borders.csv").read_text().splitlines()
        assert {line.split(",")[1] for line in borders[1:]} == {"0", "1"}  # CE and Lovasz seeds of the study only
        assert len(borders) == 1 + 4 * 3 * 7  # 4 runs x 3 measures x 7 classes: the cpu512 copy left out
    finally:
        shutil.rmtree(extra)


def test_extra_runs_are_checked_and_named_by_profile():
    from seglib.pipeline import experiment_runs, parse_extra

    extra = parse_extra(["deeplabv3plus_pretrained@cpu512"], "cpu", (0, 1))
    runs = experiment_runs([0, 1], "cpu", extra)
    assert runs[-1] == ("deeplabv3plus_pretrained", "cpu512", 0, "deeplabv3plus_pretrained-cpu512-seed0")
    assert [r for r in runs if r[1] == "cpu512"] == [runs[-1]]  # one seed unless asked for more
    two = experiment_runs([3, 4, 5], "cpu", parse_extra(["deeplabv3plus_pretrained@cpu512:2"], "cpu", (3, 4, 5)))
    assert [tag for *_, tag in two if "cpu512" in tag] == ["deeplabv3plus_pretrained-cpu512-seed3",
                                                           "deeplabv3plus_pretrained-cpu512-seed4"]
    for bad, message in (("deeplabv3plus_pretrained", "EXPERIMENT@PROFILE"), ("nope@cpu512", "EXPERIMENT@PROFILE"),
                         ("deeplabv3plus_pretrained@huge", "EXPERIMENT@PROFILE"), ("fcn_unet_scratch@cpu", "already runs"),
                         ("deeplabv3plus_pretrained@cpu512:3", "from 1 to 2"), ("deeplabv3plus_pretrained@cpu512:x", "from 1 to 2")):
        with pytest.raises(SeglibError, match=message):
            parse_extra([bad], "cpu", (0, 1))


def test_rerun_with_changed_settings_stops_instead_of_reusing_the_old_run(smoke_pipeline, sample_root, monkeypatch):
    out, _, _ = smoke_pipeline
    real_load = configs.load
    monkeypatch.setattr(configs, "load", lambda e, p="paper", o=None: {**real_load(e, p, o), "iterations": 5})
    with pytest.raises(SeglibError, match=r"fcn_unet_scratch-seed0: finished with other settings \(iterations 3 -> 5\)"):
        run_pipeline(profile="smoke", data=sample_root, out=out, seeds=(0, 1), only=["02_experiment"], formats=("html",))


def test_changed_evaluation_settings_score_a_run_again_without_retraining(smoke_pipeline, sample_root, capsys):
    out, _, _ = smoke_pipeline
    run = out / "runs" / "fcn_unet_scratch-seed0"
    before = (run / "final.pt").stat().st_mtime
    saved = configs.read_run_config(run)
    configs.save({**saved, "eval_flip": not saved["eval_flip"]}, run / "config.yaml")  # scored otherwise before
    run_pipeline(profile="smoke", data=sample_root, out=out, seeds=(0,), only=["02_experiment"], formats=("html",))
    printed = capsys.readouterr().out
    assert "fcn_unet_scratch-seed0: complete, skipped" not in printed
    assert "deeplabv3plus_scratch-seed0: complete, skipped" in printed
    assert configs.read_run_config(run)["eval_flip"] == saved["eval_flip"]  # scored under the profile's settings
    assert (run / "final.pt").stat().st_mtime == before


def test_force_retrains_a_complete_run(smoke_pipeline, sample_root, capsys):
    out, _, _ = smoke_pipeline
    final = out / "runs" / "fcn_unet_scratch-seed0" / "final.pt"
    before = final.stat().st_mtime
    run_pipeline(profile="smoke", data=sample_root, out=out, seeds=(0,), force=True, only=["02_experiment"],
                 formats=("html",))
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
