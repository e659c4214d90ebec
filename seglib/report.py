"""The paper's computed parts: the study read from results/ (summary.csv and each run's records), the
abstract, the appendix of runs, the conclusion and the references (the claims' verdicts are in
seglib.claims, the method table and the gaps to the course report's numbers in seglib.protocol, how
captions, tables and figures render in seglib.layout). The report notebook holds
the narrative and calls these; nothing here reads a checkpoint.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import records
from .config import read_run_config
from .errors import SeglibError
from .results import (
    TITLES,
    course_report,
    fmt,
    groups,
    main_profile,
    read_metrics,
    schedule_caption,
    title,
)

CE, LOVASZ = "deeplabv3plus_pretrained", "deeplabv3plus_pretrained_lovasz"
PRETRAINED, LIKE_SCRATCH, R50_SCRATCH = "deeplabv3plus_pretrained", "deeplabv3plus_lite2_scratch", "deeplabv3plus_scratch"

REFERENCES = """\
1. L.-C. Chen, Y. Zhu, G. Papandreou, F. Schroff, H. Adam. Encoder-decoder with atrous separable convolution for semantic image segmentation (DeepLabv3+). ECCV 2018.
2. L.-C. Chen, G. Papandreou, F. Schroff, H. Adam. Rethinking atrous convolution for semantic image segmentation (DeepLabv3). arXiv:1706.05587, 2017.
3. O. Ronneberger, P. Fischer, T. Brox. U-Net: convolutional networks for biomedical image segmentation. MICCAI 2015.
4. M. Berman, A. Rannen Triki, M. B. Blaschko. The Lovász-Softmax loss. CVPR 2018.
5. X. Chen, R. Mottaghi, X. Liu, S. Fidler, R. Urtasun, A. Yuille. Detect what you can: detecting and representing objects using holistic models and body parts (Pascal-Part). CVPR 2014.
6. M. Tan, Q. Le. EfficientNet: rethinking model scaling for convolutional neural networks. ICML 2019 (EfficientNet-Lite: TensorFlow model garden).
7. B. Cheng, R. Girshick, P. Dollár, A. C. Berg, A. Kirillov. Boundary IoU: improving object-centric image segmentation evaluation. CVPR 2021.
8. MMSegmentation contributors. MMSegmentation: OpenMMLab semantic segmentation toolbox and benchmark. 2020.
9. P. Iakubovskii. Segmentation Models PyTorch. 2019.
10. W. Wang, H. Zhu, J. Dai, Y. Pang, J. Shen, L. Shao. Hierarchical human parsing with typed part-relation reasoning. CVPR 2020.
11. L. Li, T. Zhou, W. Wang, J. Li, Y. Yang. Deep hierarchical semantic segmentation (HSSN). CVPR 2022.
12. P. Li, Y. Xu, Y. Wei, Y. Yang. Self-correction for human parsing (SCHP). IEEE TPAMI 2020.
"""


@dataclass
class Study:
    """The runs behind the report: summary.csv's rows and, per row, its record folder."""
    results: Path
    summary: pd.DataFrame
    records: dict = field(default_factory=dict)  # run name -> record folder
    figure_ids: list = field(default_factory=list)
    figure_rule: str = ""
    main: str | None = None
    inference: dict = field(default_factory=dict)  # results/inference.json: seglib bench --experiments

    def record(self, row) -> Path:
        return self.records[row["run"]]

    def runs_of(self, experiment: str, profile: str | None = None) -> pd.DataFrame:
        profile = profile or self.main
        return self.summary[(self.summary.experiment == experiment) & (self.summary.profile == profile)]


def load_study(results_dir) -> Study:
    """results/summary.csv, the records it lists (every one must be there), the figures' images and, where
    it was measured, the experiments' inference speed."""
    results_dir = Path(results_dir)
    path = results_dir / "summary.csv"
    if not path.is_file():
        raise SeglibError(f"{path}: not found; train the study first (make report ...) or point results_dir at "
                          "a folder with summary.csv and runs/")
    summary = pd.read_csv(path)
    if "run" not in summary:
        raise SeglibError(f"{path}: written before runs kept records (no run column); the report renders from "
                          "records: run the study (make report ...) to write them")
    folders = {run: results_dir / "runs" / run for run in summary.run}
    missing = [str(f) for f in folders.values() if not records.complete(f)]
    if missing:
        raise SeglibError(f"{missing[0]}: the record of a run summary.csv lists is missing or incomplete; "
                          "export it again with the pipeline")
    figure, inference = (_read_json(results_dir / name) for name in ("figures.json", "inference.json"))
    return Study(results_dir, summary, folders, figure.get("ids", []), figure.get("rule", ""), main_profile(summary),
                 inference)


def _read_json(path: Path) -> dict:
    """An optional file of results/: {} when absent; a broken one is named, not skipped."""
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SeglibError(f"{path}: not valid JSON ({exc}); write it again or delete it") from None


def seeds_phrase(count: int, mean: bool = False) -> str:
    """'3 seeds' / '1 seed'; mean=True: 'mean over 3 seeds', but '1 seed' (a mean of one is no mean)."""
    if count == 1:
        return "1 seed"
    return f"{'mean over ' if mean else ''}{count} seeds"


def runs_sentence(study: Study) -> str:
    """Setup's account of the runs: how many per profile and the seeds of each experiment (a study still
    training lists what has finished)."""
    counts = study.summary.profile.value_counts()
    per_profile = ", ".join(f"{profile}, {n} run{'s' if n != 1 else ''}" for profile, n in counts.items())
    seeds = "; ".join(f"{title(e, p, study.main)}: {', '.join(map(str, sorted(runs.seed)))}"
                      for e, p, runs in groups(study.summary, study.main))
    return f"Runs by profile: {per_profile}. Seeds per experiment: {seeds}."


def abstract(study: Study) -> str:
    """The abstract's numbers, from the study's runs; a run of another profile (the scratch models at crop 256)
    is named with its schedule, so that no reader takes it for the course report's protocol."""
    parts = []
    for experiment, profile, runs in groups(study.summary, study.main):
        if runs.empty:
            continue
        theirs = course_report().get(experiment)
        other = f"{schedule_caption(runs)}; " if profile != study.main else ""
        at = " at crop 512" if other and theirs else ""
        parts.append(f"{TITLES[experiment]} {fmt(runs.mIoU)} mIoU ({other}{seeds_phrase(len(runs))}"
                     + (f"; course report {theirs['mIoU']:.2f}{at})" if theirs else ")"))
    parts += [f"{TITLES[e]} not run yet (course report {course_report()[e]['mIoU']:.2f})" for e in not_run(study)]
    return "; ".join(parts)


def not_run(study: Study) -> list[str]:
    """The course report's experiments without a run under any profile (the FCN+U-Net until its crop-256
    run lands): named in the abstract and the results, so that a reader does not look for their rows."""
    ran = set(study.summary.experiment)
    return [e for e in course_report() if e not in ran]


def absent_from_tables(titles: list[str]) -> str:
    """The one wording, in the results and in the section beyond the course report, for experiments without
    a run ("" when there is none); titles hold commas, so a semicolon separates them."""
    return f"Not run yet, so absent from the tables: {'; '.join(titles)}." if titles else ""


def not_run_sentences(study: Study) -> str:
    """The results' sentence naming the course report's experiments without a run ("" when all have run),
    with a leading space: it follows the results' introduction."""
    text = absent_from_tables([TITLES[e] for e in not_run(study)])
    return f" {text}" if text else ""


def schedule(study: Study, experiment: str) -> str:
    runs = study.runs_of(experiment)
    if runs.empty:
        return "not run"
    row = runs.iloc[0]
    return f"crop {row.crop}, {row.iterations} iterations"


def machine(metrics: dict, scored: bool = False) -> str:
    """The machine a run trained on (scored=True: the one its evaluation ran on, which older records do
    not name apart), as its metrics.json names it: GPU, or CPU model, threads and whether it has native bf16."""
    return (scored and metrics.get("eval_host")) or metrics.get("host") or metrics.get("device") or "an unnamed machine"


def machines(study: Study) -> dict[str, str]:
    """Run name -> the machine it trained on: a CPU's pace differs threefold between machines of one kind."""
    return {row.run: machine(read_metrics(study.record(row))) for _, row in study.summary.iterrows()}


def hardware(study: Study, metrics: dict) -> str:
    """The protocol table's hardware cell: the one machine every run trained on, or how many there were
    (the appendix names each run's: a list of CPU names here would shrink the whole table to fit the page);
    then the precisions the runs trained in."""
    hosts = list(dict.fromkeys(machines(study).values()))
    where = hosts[0] if len(hosts) == 1 else f"{len(hosts)} machines (appendix)"
    precisions = sorted(set(study.summary.precision.dropna().astype(str))) if "precision" in study.summary else []
    return f"{where}; {', '.join(precisions) or metrics.get('precision', '?')}"


def machine_legend(study: Study) -> str:
    """The runs table's caption sentence on machines: the one they all trained on, or each numbered."""
    hosts = list(dict.fromkeys(machines(study).values()))
    if len(hosts) == 1:
        return f"All runs trained on one machine: {hosts[0]}."
    return "Machines: " + "; ".join(f"{i}: {h}" for i, h in enumerate(hosts, 1)) + "."


def runs_table(study: Study) -> pd.DataFrame:
    """Appendix: one row per run: its settings, the machine it trained on (numbered as machine_legend
    says, where there were several), its training pace and wall time, and scores."""
    cols = ["experiment", "profile", "seed", "crop", "iterations", "precision", "sec_per_iter", "train_seconds",
            "mIoU", "mAcc", "aAcc"]
    table = study.summary[[c for c in cols if c in study.summary]].copy()
    table["experiment"] = [TITLES.get(e, e) for e in table.experiment]
    hosts = machines(study)
    numbers = {h: i for i, h in enumerate(dict.fromkeys(hosts.values()), 1)}
    if len(numbers) > 1:
        table.insert(table.columns.get_loc("precision"), "machine", [numbers[hosts[r]] for r in study.summary.run])
    if "train_seconds" in table:
        table["train_seconds"] = (table.train_seconds / 3600).round(1)
    table = table.rename(columns={"sec_per_iter": "s/it", "train_seconds": "wall h"})
    return table.reset_index(drop=True).set_index("experiment")


BORDERS_LEAD = "Borders ("  # claims.borders_against_ce's sentence, which the conclusion repeats
STRONGEST_LEAD = "Against the strongest single change"  # beyond.best_against_strongest's (what to train), repeated too


OPEN_QUESTION = ("**Future work, from the course report.** Its models do not use the relations between body parts: "
                 "knowing where the torso is may tell where the arms and legs are.")


def conclusion(study: Study, pretraining: list[str], lovasz: list[str], iterations: list[str], beyond=(),
               person_size: str = "") -> str:
    """The conclusion: a point per claim, assembled from the claims' generated verdicts (and the person-size
    sentence when there is one), then the course report's open question, with a pointer to the section that
    tests an answer when that section has runs (beyond: its (title, sentences) per experiment)."""
    lines = [f"- **Scores.** {abstract(study)}."]
    lines += [f"- **Pretraining.** {pretraining[0]}"] if pretraining else []
    if lovasz:  # the claim is about mIoU and borders: its first sentence (mIoU), then its conclusion without "So"
        last = lovasz[-1].removeprefix("So ")
        first = f"{lovasz[0]} " if len(lovasz) > 1 else ""
        lines.append(f"- **Lovász-Softmax.** {first}{last[:1].upper() + last[1:]}")
    lines += [f"- **Schedule.** {' '.join(iterations)}"] if iterations else []
    # each experiment's mIoU verdict, its borders' where it has one (claim (b) asked of its loss), what to train
    lines += [f"- **{title}.** " + " ".join([sentences[0], *[s for s in sentences[1:]
                                                            if s.startswith((BORDERS_LEAD, STRONGEST_LEAD))]])
              for title, sentences in beyond]
    lines += [f"- **Person size.** {person_size}"] if person_size else []
    answer = " The section beyond the course report tests one answer, the body hierarchy as extra supervision."
    return "\n".join(lines) + "\n\n" + OPEN_QUESTION + (answer if beyond else "")


def first_seed_records(study: Study, experiments=None) -> dict[str, Path]:
    """{title: record folder of the lowest seed} per experiment (all, or those named) and profile: the
    columns of the prediction figures."""
    out = {}
    for experiment, profile, runs in groups(study.summary, study.main):
        if not runs.empty and (experiments is None or experiment in experiments):
            out[title(experiment, profile, study.main)] = study.record(runs.sort_values("seed").iloc[0])
    return out


def percentile_picks(study: Study) -> tuple[str, Path, list] | None:
    """(title, record folder, [(percentile, id, mIoU)]) for the percentile figure: the best experiment
    of the main profile (highest mean mIoU over seeds), its lowest seed, the images at the 10th, 50th
    and 90th percentile of that run's own per-image mIoU. None when no run recorded per-image scores."""
    main = study.summary[study.summary.profile == study.main]
    if main.empty:
        return None
    best = main.groupby("experiment").mIoU.mean().idxmax()
    row = main[main.experiment == best].sort_values("seed").iloc[0]
    picks = records.percentile_ids(study.record(row))
    return (title(best, study.main, study.main), study.record(row), picks) if picks else None


def study_data(study: Study, data=None) -> Path:
    """The data folder for the figures' photos: `data` when given, else the one the runs recorded."""
    from .data import default_root

    if data:
        return Path(data)
    recorded = [read_run_config(f).get("data") for f in study.records.values()]
    found = [Path(r) for r in recorded if r and Path(r).is_dir()]
    if found:
        return found[0]
    if any(recorded):
        raise SeglibError(f"the runs were trained on {next(r for r in recorded if r)}, which is not on this machine; "
                          "pass the data folder (DATA=... or data=...)")
    return default_root()
