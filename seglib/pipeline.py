"""The whole study for one profile and data folder: train each run through its notebook (papermill),
export each finished run's small records to results/runs/, write results/summary.csv, then execute the
report notebook on those records and render it as a paper, HTML (images embedded, reads offline) and
PDF (xelatex). from_records=True skips the training: it renders the report from results/ alone, as
committed, with no checkpoint.

Layout under OUT: runs/ (run folders), executed/ (executed notebooks), figures/, results/, report/.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import nbformat

from . import config as configs
from . import records
from .data import PascalPartDataset, default_root
from .errors import SeglibError
from .paths import run_name, shipped
from .results import summary
from .status import study_status
from .train import stale_run_error

NOTEBOOKS_DIR = shipped("notebooks")
EXPLORATION, EXPERIMENT, REPORT = ("01_data_exploration", "02_experiment", "03_report")
EXPLORATION_FIGURES = "data_*.png"  # 01_data_exploration's, which --from-records does not draw again
# experiments compared over seeds (CE vs Lovasz; each experiment beyond the course report vs CE)
MULTI_SEED = ("deeplabv3plus_pretrained", "deeplabv3plus_pretrained_lovasz", "deeplabv3plus_pretrained_hierarchy",
              "deeplabv3plus_pretrained_ce_lovasz", "deeplabv3plus_pretrained_best")
HTML_TEMPLATE = Path(__file__).resolve().parent / "report.html.j2"  # lab's, with nothing fetched from the web
PDF_PACKAGES = "texlive-xetex texlive-fonts-recommended texlive-plain-generic pandoc"


def execute(name: str, output: Path, parameters: dict, stream: bool = False) -> Path:
    """Run a notebook with papermill; stream=True passes its stdout and stderr (a training run's progress
    bar and learning-curve lines) through to this process's, so hours of training are not silent."""
    import papermill

    output.parent.mkdir(parents=True, exist_ok=True)
    print(f"[pipeline] {name} -> {output}", flush=True)
    streams = {"stdout_file": sys.stdout, "stderr_file": sys.stderr} if stream else {}
    try:
        papermill.execute_notebook(str(NOTEBOOKS_DIR / f"{name}.ipynb"), str(output), parameters=parameters,
                                   kernel_name="python3", progress_bar=False, cwd=str(output.parent),
                                   extra_arguments=["--IPKernelApp.log_level=ERROR"], **streams)  # no TCP warning
    except papermill.PapermillExecutionError as exc:
        raise SeglibError(f"notebook {name} failed: {exc.ename}: {str(exc.evalue).splitlines()[-1] if exc.evalue else ''} "
                          f"(executed copy: {output})") from None
    return output


def experiment_runs(seeds, profile: str, extra=(), experiments=None) -> list[tuple[str, str, int, str]]:
    """(experiment, profile, seed, run folder name) of every run in the study, seed by seed: the first seed of
    each experiment (all of them unless named), then the next seed of those compared over seeds (MULTI_SEED),
    and so on; then each extra (experiment, profile, n) with the first n seeds. Seed-major order gives a
    whole report early in a study that takes days on a CPU; the repeats come after."""
    unknown = [e for e in experiments or () if e not in configs.EXPERIMENTS]
    if unknown:
        raise SeglibError(f"--experiments {unknown[0]!r}: unknown; choose from {', '.join(configs.EXPERIMENTS)}")
    chosen = [e for e in configs.EXPERIMENTS if not experiments or e in experiments]
    study = [(e, profile, s) for s in seeds for e in chosen if e in MULTI_SEED or s == seeds[0]]
    study += [(e, p, s) for e, p, n in extra for s in seeds[:n]]
    return [(e, p, s, run_name(e, p, s)) for e, p, s in study]


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


def finished_where(run_dir: Path, record: Path, config: dict, data: Path, ids) -> str | None:
    """"here" (a complete run folder with these settings), "elsewhere" (no run folder, but a current record
    stands in for it) or None (to train, or a stale run folder)."""
    if not run_dir.exists():
        return "elsewhere" if records.stands_in(record, config, data, ids) else None
    return "here" if configs.is_complete(run_dir) and not configs.changed_settings(run_dir, config) else None


def finished_before(study, runs_root: Path, results_dir: Path, data: Path, ids, device: str):
    """Yields the study's runs already finished (here, their records exported; or elsewhere): results/ lists
    them from the start, whatever the training order (an experiment added to a study trains its first seed
    before seeds of others that may have finished)."""
    for experiment, run_profile, seed, tag in study:
        run_dir, record = runs_root / tag, results_dir / "runs" / tag
        where = finished_where(run_dir, record, configs.load(experiment, run_profile, {"seed": seed, "device": device}),
                               data, ids)
        if where == "here":
            records.export(run_dir, record, ids, device)
        if where:
            yield tag


def train_study(study, data: Path, out: Path, force: bool, device: str, wanted) -> None:
    """Train (or reuse) each run through its notebook, export its records and write results/ first and after
    each run, so that results/summary.csv always lists the study's finished runs."""
    runs_root, executed, results_dir = out / "runs", out / "executed", out / "results"
    ids, rule = records.figure_ids(PascalPartDataset(data, "val"))
    leaving = records.outside_phrase(results_dir / "runs", {tag for *_, tag in study})
    if leaving:  # said before hours of training, not found out after them
        print(f"[pipeline] {leaving} will be removed when it ends, and summary.csv will list this study's runs only. "
              "To add one run to a larger study, train it alone (python -m seglib train --experiment E --profile P "
              "--set seed=N), then run the whole study, which takes it in.", flush=True)
    ready, finished = set(), []
    listed = lambda: [t for *_, t in study if t in ready or t in finished]  # in the study's order
    for tag in [] if force else finished_before(study, runs_root, results_dir, data, ids, device):
        ready.add(tag)
        write_results(results_dir, listed(), ids, rule)
    for experiment, run_profile, seed, tag in study:
        run_dir, copy = runs_root / tag, executed / f"{EXPERIMENT}-{tag}.ipynb"
        config = configs.load(experiment, run_profile, {"seed": seed, "device": device})
        record = results_dir / "runs" / tag
        where = finished_where(run_dir, record, config, data, ids)
        if not force and where == "elsewhere":
            print(f"[pipeline] {tag}: finished elsewhere; no run folder here, its record {record} is current, kept",
                  flush=True)
        else:
            error = None if force else stale_run_error(run_dir, config)
            if error:
                raise error
            current = where == "here"
            if wanted(EXPERIMENT) and not (current and _newer(copy, run_dir / "metrics.json") and not force):
                # the notebook trains through train.ensure_trained (which skips a complete run unless forced,
                # and scores it again if only its evaluation settings changed)
                execute(EXPERIMENT, copy, {"data": str(data), "profile": run_profile, "experiment": experiment,
                                           "seed": seed, "device": device, "run_dir": str(run_dir), "force": force},
                        stream=True)
            elif current:
                print(f"[pipeline] {tag}: complete, skipped (--force to rerun)", flush=True)
            if not configs.is_complete(run_dir):
                raise SeglibError(f"{run_dir}: not finished; run the pipeline with its training step (without --only)")
            records.export(run_dir, record, ids, device)
        finished.append(tag)
        write_results(results_dir, listed(), ids, rule)  # after each run: a study days from its end renders too
    records.prune(results_dir / "runs", set(finished))


def write_results(results_dir: Path, tags, ids, rule: str) -> None:
    """results/summary.csv over the named runs' records (the runs the report shows) and figures.json."""
    summary([results_dir / "runs" / tag for tag in tags]).to_csv(results_dir / "summary.csv", index=False)
    (results_dir / "figures.json").write_text(json.dumps({"ids": ids, "rule": rule}, indent=2))


def run_pipeline(profile="smoke", data=None, out=Path("output"), seeds=(0,), force=False, only=None,
                 formats=("html", "pdf"), device="auto", extra=(), from_records=False, experiments=None,
                 status=False, measure=False) -> dict:
    """extra: EXPERIMENT@PROFILE[:SEEDS] runs beside the study (say a longer one), in the results tables and
    Figure 5 as rows of their own; the border analysis stays within the study's profile."""
    out = Path(out).resolve()
    data = Path(data).resolve() if data else None  # the notebooks run in executed/: no relative paths
    given = data  # None when not passed: then status cannot tell which folder the study would train on
    executed, figures, results_dir = out / "executed", out / "figures", out / "results"
    wanted = lambda name: not only or name in only
    done = []
    if not from_records:
        data = data or default_root().resolve()
        if profile not in configs.PROFILES:
            raise SeglibError(f"unknown profile {profile!r}; choose one of: {', '.join(configs.PROFILES)}")
        study = experiment_runs(list(seeds), profile, parse_extra(extra, profile, tuple(seeds)), experiments)
        if status:  # where each run stands; nothing is trained or rendered
            lines = study_status(study, out, device, measure, data=given)
            print("\n".join(lines), flush=True)
            return {"status": lines}
        if not data.is_dir():
            raise SeglibError(f"{data}: data folder does not exist; pass DATA=... or --data")
        error = records.other_data_error(results_dir, data)
        if error:  # before anything runs
            raise error
        if wanted(EXPLORATION):
            done.append(execute(EXPLORATION, executed / f"{EXPLORATION}.ipynb", {"data": str(data)}))
        train_study(study, data, out, force, device, wanted)
    elif not (results_dir / "summary.csv").is_file():
        raise SeglibError(f"{results_dir / 'summary.csv'}: not found; --from-records renders the committed records "
                          "(results/ of a study); train the study first or pass the right --out")
    if not wanted(REPORT):
        return {"executed": done, "report": []}
    # the report draws its figures anew from the records: any other (an older layout's, other runs', other
    # images') goes, so that figures/ shows what the report shows
    prune_figures(figures, keep=EXPLORATION_FIGURES)
    report_copy = executed / f"{REPORT}.ipynb"
    done.append(execute(REPORT, report_copy, {"results_dir": str(results_dir), "figures_dir": str(figures),
                                              "data": str(data) if data else None}))
    return {"executed": done, "report": render_report(report_copy, out / "report", formats)}


def prune_figures(figures: Path, keep: str) -> None:
    """Remove the figures in FIGURES whose names do not match the pattern `keep`."""
    for path in sorted(figures.glob("*.png")):
        if not path.match(keep):
            print(f"[pipeline] removed old figure {path.name}", flush=True)
            path.unlink()


def _newer(copy: Path, metrics: Path) -> bool:
    """An executed notebook shows its run only if it was executed after the run finished."""
    return copy.is_file() and copy.stat().st_mtime >= metrics.stat().st_mtime


def paper(path: Path) -> nbformat.NotebookNode:
    """The executed report notebook as the paper: no parameter cells, no progress bars or warnings
    (stderr), no code (hidden by the exporters)."""
    nb = nbformat.read(path, as_version=4)
    cells = []
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "parameters" in tags or "injected-parameters" in tags:
            continue
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]
            if not cell.outputs:
                continue
        cells.append(cell)
    nb.cells = cells
    return nb


def render_report(executed_report: Path, report_dir: Path, formats=("html", "pdf")) -> list[Path]:
    from nbconvert import HTMLExporter, PDFExporter

    report_dir.mkdir(parents=True, exist_ok=True)
    nb = paper(executed_report)
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
