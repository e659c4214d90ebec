"""The whole study for one profile and data folder: run the numbered notebooks with papermill
(data exploration, the four experiments, the Lovasz border analysis, the results), then render
the executed notebooks into one report, HTML (images embedded, reads offline) and PDF (xelatex).

Layout under OUT: runs/ (run folders), executed/ (executed notebooks), figures/, results/, report/.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import nbformat

from . import config as configs
from .data import default_root
from .errors import SeglibError
from .paths import shipped
from .plots import CLOSEUP_PATTERN, PREDICTIONS_PATTERN, predictions_figure_name
from .train import stale_run_error

NOTEBOOKS_DIR = shipped("notebooks")
EXPLORATION, EXPERIMENT, BORDERS, RESULTS = ("01_data_exploration", "02_experiment", "03_lovasz_borders", "04_results")
MULTI_SEED = ("deeplabv3plus_pretrained", "deeplabv3plus_pretrained_lovasz")  # Lovasz vs CE needs seeds
HTML_TEMPLATE = Path(__file__).resolve().parent / "report.html.j2"  # lab's, with nothing fetched from the web
PDF_PACKAGES = "texlive-xetex texlive-fonts-recommended texlive-plain-generic pandoc"


def execute(name: str, output: Path, parameters: dict) -> Path:
    import papermill

    output.parent.mkdir(parents=True, exist_ok=True)
    print(f"[pipeline] {name} -> {output}", flush=True)
    try:
        papermill.execute_notebook(str(NOTEBOOKS_DIR / f"{name}.ipynb"), str(output), parameters=parameters,
                                   kernel_name="python3", progress_bar=False, cwd=str(output.parent))
    except papermill.PapermillExecutionError as exc:
        raise SeglibError(f"notebook {name} failed: {exc.ename}: {str(exc.evalue).splitlines()[-1] if exc.evalue else ''} "
                          f"(executed copy: {output})") from None
    return output


def experiment_runs(seeds, profile: str, extra=()) -> list[tuple[str, str, int, str]]:
    """(experiment, profile, seed, run folder name) of every run in the study: the four experiments
    (several seeds for CE and Lovasz), then each extra (experiment, profile, n) with the first n seeds."""
    study = [(e, profile, s, f"{e}-seed{s}") for e in configs.EXPERIMENTS for s in (seeds if e in MULTI_SEED else seeds[:1])]
    return study + [(e, p, s, f"{e}-{p}-seed{s}") for e, p, n in extra for s in seeds[:n]]


def parse_extra(items, profile: str, seeds=(0,)) -> list[tuple[str, str, int]]:
    """['deeplabv3plus_pretrained@cpu512:2'] -> [('deeplabv3plus_pretrained', 'cpu512', 2)]: runs beside the
    study, with the first N of the study's seeds (1 without ':N')."""
    out = []
    for item in items or []:
        experiment, sep, rest = item.partition("@")
        extra_profile, colon, count = rest.partition(":")
        if not sep or experiment not in configs.EXPERIMENTS or extra_profile not in configs.PROFILES:
            raise SeglibError(f"--extra {item!r}: expected EXPERIMENT@PROFILE[:SEEDS] with an experiment of "
                              f"{', '.join(configs.EXPERIMENTS)} and a profile of {', '.join(configs.PROFILES)}")
        if colon and not (count.isdigit() and 1 <= int(count) <= len(seeds)):
            raise SeglibError(f"--extra {item!r}: ':{count}' must be a number of seeds from 1 to {len(seeds)} "
                              f"(the study's seeds: {' '.join(map(str, seeds))})")
        if extra_profile == profile:
            raise SeglibError(f"--extra {item!r}: the study already runs {experiment} under {profile}; name another profile")
        out.append((experiment, extra_profile, int(count) if colon else 1))
    return out


def run_pipeline(profile="smoke", data=None, out=Path("output"), seeds=(0,), force=False, only=None,
                 formats=("html", "pdf"), device="auto", extra=()) -> dict:
    """extra: EXPERIMENT@PROFILE[:SEEDS] runs beside the study (say a longer one), in the results tables and
    Figure 5 as rows of their own; the border analysis stays within the study's profile."""
    data = Path(data or default_root()).resolve()
    out = Path(out).resolve()
    if profile not in configs.PROFILES:
        raise SeglibError(f"unknown profile {profile!r}; choose one of: {', '.join(configs.PROFILES)}")
    extra = parse_extra(extra, profile, tuple(seeds))
    if not data.is_dir():
        raise SeglibError(f"{data}: data folder does not exist; pass DATA=... or --data")
    runs_root, executed = out / "runs", out / "executed"
    figures, results = out / "figures", out / "results"
    common = {"data": str(data), "profile": profile, "device": device}
    wanted = lambda name: not only or name in only
    study = experiment_runs(list(seeds), profile, extra)  # what is trained, kept and rendered
    done = []
    if wanted(EXPLORATION):
        done.append(execute(EXPLORATION, executed / f"{EXPLORATION}.ipynb", {"data": str(data), "figures_dir": str(figures)}))
    if wanted(EXPERIMENT):
        for experiment, run_profile, seed, tag in study:
            run_dir, copy = runs_root / tag, executed / f"{EXPERIMENT}-{tag}.ipynb"
            config = configs.load(experiment, run_profile, {"seed": seed, "device": device})
            error = None if force else stale_run_error(run_dir, config)
            if error:
                raise error
            figure = figures / predictions_figure_name(tag)
            current = configs.is_complete(run_dir) and not configs.changed_settings(run_dir, config)
            if current and _newer(copy, run_dir / "metrics.json") and figure.is_file() and not force:
                print(f"[pipeline] {tag}: complete, skipped (--force to rerun)", flush=True)
            else:  # the notebook trains through train.ensure_trained (which skips a complete run unless forced,
                # and scores it again if only its evaluation settings changed) and draws the run's prediction
                # figure, so a missing figure is drawn again without retraining
                execute(EXPERIMENT, copy, {**common, "profile": run_profile, "experiment": experiment, "seed": seed,
                                           "run_dir": str(run_dir), "figures_dir": str(figures), "force": force})
            done.append(copy)
        prune_figures(figures, PREDICTIONS_PATTERN, {predictions_figure_name(tag) for *_, tag in study})
    for name in (BORDERS, RESULTS):
        if wanted(name):
            if name == BORDERS:  # its close-ups are named by image; those of an earlier run may differ
                prune_figures(figures, CLOSEUP_PATTERN, set())
            done.append(execute(name, executed / f"{name}.ipynb", {"data": str(data), "runs_root": str(runs_root),
                                                                 "figures_dir": str(figures), "results_dir": str(results),
                                                                 "device": device, "profile": profile}))
    # the notebooks of this study only: copies left from other seeds or older runs stay out of the report
    names = [EXPLORATION] + [f"{EXPERIMENT}-{tag}" for *_, tag in study] + [BORDERS, RESULTS]
    written = render_report([executed / f"{n}.ipynb" for n in names if (executed / f"{n}.ipynb").is_file()],
                            out / "report", profile, formats)
    return {"executed": done, "report": written}


def prune_figures(figures: Path, pattern: str, keep: set) -> None:
    """Remove figures matching pattern except those named in keep, so figures/ shows this study only."""
    for path in sorted(figures.glob(pattern)):
        if path.name not in keep:
            print(f"[pipeline] removed old figure {path.name}", flush=True)
            path.unlink()


def _newer(copy: Path, metrics: Path) -> bool:
    """An executed notebook shows its run only if it was executed after the run finished."""
    return copy.is_file() and copy.stat().st_mtime >= metrics.stat().st_mtime


def merge_notebooks(paths, profile: str) -> nbformat.NotebookNode:
    """One report notebook: a title cell, then every executed notebook's cells without its parameter
    cells, progress bars (stderr) or code (hidden by the exporters)."""
    report = nbformat.v4.new_notebook()
    report.cells.append(nbformat.v4.new_markdown_cell(
        f"# Human body-part segmentation on Pascal-Part: a reproduction of the course report\n\n"
        f"Built by seglib's pipeline from executed notebooks (profile **{profile}**). "
        "Every number below comes from a run folder listed in results/summary.csv; the course report's own "
        "numbers are labelled *course report*."))
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        report.metadata = report.metadata or nb.metadata
        for cell in nb.cells:
            tags = cell.get("metadata", {}).get("tags", [])
            if "parameters" in tags or "injected-parameters" in tags:
                continue
            if cell.cell_type == "code":
                cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]
                if not cell.outputs:
                    continue
            cell.id = f"cell-{len(report.cells)}"  # ids repeat across copies of 02_experiment
            report.cells.append(cell)
    report.metadata["title"] = "Human body-part segmentation on Pascal-Part"
    report.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    return report


def render_report(paths, report_dir: Path, profile: str, formats=("html", "pdf")) -> list[Path]:
    from nbconvert import HTMLExporter, PDFExporter

    if not paths:
        raise SeglibError("no executed notebooks to render; run the pipeline first")
    report_dir.mkdir(parents=True, exist_ok=True)
    nb = merge_notebooks(paths, profile)
    nbformat.write(nb, report_dir / "report.ipynb")
    written = []
    if "html" in formats:
        body, _ = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
                               embed_images=True, template_name="lab",
                               template_file=str(HTML_TEMPLATE)).from_notebook_node(nb)
        (report_dir / "report.html").write_text(body, encoding="utf-8")
        written.append(report_dir / "report.html")
    if "pdf" in formats:
        missing = [tool for tool in ("xelatex", "pandoc") if shutil.which(tool) is None]
        if missing:
            print(f"[pipeline] PDF skipped: {', '.join(missing)} not found. Install them with "
                  f"`sudo apt-get install -y --no-install-recommends {PDF_PACKAGES}` (or `make pdf-deps`), "
                  "then rerun; the HTML report is complete.", file=sys.stderr)
        else:
            try:
                pdf, _ = PDFExporter(exclude_input=True, exclude_input_prompt=True,
                                     exclude_output_prompt=True).from_notebook_node(nb)
            except Exception as exc:  # noqa: BLE001 (LaTeX fails in many ways; the HTML stands)
                raise SeglibError(f"PDF rendering failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                                  f"the HTML report is at {report_dir / 'report.html'}") from None
            (report_dir / "report.pdf").write_bytes(pdf)
            written.append(report_dir / "report.pdf")
    for path in written:
        print(f"[pipeline] wrote {path}", flush=True)
    return written
