"""The course report's claims, each tested against seed-to-seed variation with a verdict generated
from the numbers: (a) pretraining helps (per class, like for like), (b) Lovasz-Softmax gives smoother
borders at about the same mIoU, (c) 2000 iterations were enough; the abstract's findings; and the
sentences and tables that state a gap against seed variation (seglib.beyond uses them for the experiments
beyond the course report). Reads the study's records only."""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import records
from .config import read_run_config, with_test_time_augmentation
from .losses import objective
from .report import (
    BORDERS_LEAD,
    CE,
    LIKE_SCRATCH,
    LOVASZ,
    PRETRAINED,
    R50_SCRATCH,
    Study,
    schedule,
    seeds_phrase,
)
from .results import (
    TITLES,
    class_means,
    difference_vs_noise,
    fmt,
    gap_verdict,
    gap_vs_noise,
    groups,
    read_metrics,
    short_verdict,
    title,
)

BORDER_MEASURES = {"boundary_iou": "Boundary IoU (%)", "boundary_f": "boundary F-score (%)", "roughness": "roughness ratio"}


def verdict_sentence(name: str, gap: dict, unit: str = "", digits: int = 2) -> str:
    """'<Name>: A x ± s vs B y ± t (n seeds each); the difference +d<unit> exceeds/is within ...' from numbers:
    a sentence of its own, so it starts with a capital (a lower-case word only: mIoU stays mIoU)."""
    first = name.split(" ")[0]
    name = name[:1].upper() + name[1:] if first.islower() else name
    seeds = (f"{seeds_phrase(gap['seeds_a'])} each" if gap["seeds_a"] == gap["seeds_b"]
             else f"{gap['seeds_b']} and {gap['seeds_a']} seeds")
    return (f"{name}: {gap['b']} {gap['mean_b']:.{digits}f} against {gap['a']} {gap['mean_a']:.{digits}f} "
            f"({seeds}); the difference, {gap['difference']:+.{digits}f}{unit}, {gap_verdict(gap, digits)}")


def pretraining_claim(study: Study) -> tuple[pd.DataFrame | None, list[str]]:
    """Claim (a), pretraining helps: per class, the ImageNet-pretrained model against the same
    architecture and schedule from scratch (weights=null) when that run exists, else against the
    ResNet-50 from scratch with the confounds named."""
    pre = study.runs_of(PRETRAINED)
    like = study.runs_of(LIKE_SCRATCH)
    base, confound = (like, "") if not like.empty else (study.runs_of(R50_SCRATCH), (
        " Not like for like: the scratch model is a ResNet-50 at output stride 8 (" + schedule(study, R50_SCRATCH)
        + "), the pretrained one EfficientNet-Lite2 at output stride 16 (" + schedule(study, PRETRAINED) + ")."))
    if pre.empty or base.empty:
        return None, ["Needs the pretrained run and a run of the same model from scratch."]
    base_name = TITLES[LIKE_SCRATCH if not like.empty else R50_SCRATCH]
    table, gap = class_comparison(base, pre, "scratch", "pretrained")
    lines = [verdict_sentence("mIoU", {**gap, "a": base_name, "b": TITLES[PRETRAINED]}, " points") + "." + confound,
             gains_sentence("Pretraining", table)]
    return table, lines


def class_comparison(base: pd.DataFrame, runs: pd.DataFrame, base_label: str, label: str) -> tuple[pd.DataFrame, dict]:
    """Per class (and mIoU): IoU of two groups of runs (mean ± std over seeds), the gain and its verdict
    against seed variation; with the mIoU gap."""
    classes = [c[4:] for c in runs.columns if c.startswith("IoU ")]
    rows, miou = [], None
    for name in ["mIoU"] + classes:
        column = name if name == "mIoU" else f"IoU {name}"
        gap = {"a": base_label, "b": label, **gap_vs_noise(base[column], runs[column])}
        miou = miou or gap
        rows.append({"class": "mean (mIoU)" if name == "mIoU" else name, base_label: fmt(base[column]),
                     label: fmt(runs[column]), "gain": round(gap["difference"], 2), "verdict": short_verdict(gap)})
    return pd.DataFrame(rows).set_index("class"), miou


def gains_sentence(what: str, table: pd.DataFrame) -> str:
    rows = table.iloc[1:]
    if (rows.verdict == "one seed").all():
        return ("Per class it cannot be judged yet: with one seed per group no gain can be told from seed "
                "variation (the table lists the gains).")
    up = [c for c, r in rows.iterrows() if r.verdict == "beyond noise" and r.gain > 0]
    down = [c for c, r in rows.iterrows() if r.verdict == "beyond noise" and r.gain < 0]
    text = f"{what} gains beyond seed variation in {len(up)} of {len(rows)} classes" + (f" ({', '.join(up)})" if up else "")
    return text + (f" and loses in {len(down)} ({', '.join(down)})." if down else ".")


def border_measures(study: Study, experiments=(CE, LOVASZ)) -> list[dict]:
    """Per run of the main profile: experiment, seed, mIoU and the stored border measures per class."""
    out = []
    for _, row in study.summary.iterrows():
        if row.experiment in experiments and row.profile == study.main:
            stored = read_metrics(study.record(row)).get("boundary")
            if stored and "roughness" in stored:
                out.append({"experiment": row.experiment, "seed": row.seed, "mIoU": {"all": row.mIoU}, **stored})
    return out


def lovasz_claim(study: Study) -> tuple[pd.DataFrame | None, list[str]]:
    """Claim (b), Lovász-Softmax gives smoother borders at about the same mIoU: lovasz_comparison of the
    study's cross-entropy and Lovász runs."""
    measures = border_measures(study)
    if not {m["experiment"] for m in measures} >= {CE, LOVASZ}:
        return None, ["Needs cross-entropy and Lovász runs whose evaluation stored the border measures."]
    return lovasz_comparison(measures)


def lovasz_comparison(measures: list[dict]) -> tuple[pd.DataFrame, list[str]]:
    """mIoU and each border measure (its mean over classes) of the cross-entropy and Lovász runs, as one
    table (mean ± std over seeds, difference, verdict against seed-to-seed variation), with the mIoU
    verdict in words and the claim's conclusion (which the borders' smoothness, the roughness ratio, decides)."""
    rows, gaps = [], {}
    for key, label in [("mIoU", "mIoU (%)")] + list(BORDER_MEASURES.items()):
        digits = 3 if key == "roughness" else 2
        seeds = {e: class_means(measures, key, e) for e in (CE, LOVASZ)}
        gap = gaps[key] = {"a": "cross-entropy", "b": "Lovász", **gap_vs_noise(seeds[CE], seeds[LOVASZ])}
        rows.append({"measure": label, "cross-entropy": fmt(seeds[CE], digits),
                     "Lovász": fmt(seeds[LOVASZ], digits), "difference": f"{gap['difference']:+.{digits}f}",
                     "verdict": short_verdict(gap)})
    lines = [verdict_sentence("mIoU (%)", gaps["mIoU"]) + "."]
    rough = gaps["roughness"]
    if rough["exceeds_noise"]:
        word = "smoother" if rough["difference"] < 0 else "rougher"
        lines.append(f"So Lovász borders are {word} than cross-entropy's beyond seed variation (roughness ratio "
                     f"{rough['mean_b']:.3f} against {rough['mean_a']:.3f}).")
    elif np.isfinite(rough["noise"]):
        lines.append("So the seeds do not show Lovász borders to be smoother or rougher than cross-entropy's.")
    return pd.DataFrame(rows).set_index("measure"), lines


def border_gaps(study: Study, experiment: str) -> tuple[dict, bool]:
    """Claim (b)'s border measures of an experiment against the cross-entropy runs: ({key: difference_vs_noise}
    for Boundary IoU and the roughness ratio, each left out when not finite), and whether its scores alone come
    with test-time augmentation (which changes borders too); ({}, False) unless both stored them."""
    measures = border_measures(study, (CE, experiment))
    if not {m["experiment"] for m in measures} >= {CE, experiment}:
        return {}, False
    gaps = {key: difference_vs_noise(measures, key, CE, experiment) for key in ("boundary_iou", "roughness")}
    gaps = {key: gap for key, gap in gaps.items()  # roughness: no border of any class predicted
            if np.isfinite([gap["mean_a"], gap["mean_b"]]).all()}
    augmented = {exp: any(with_test_time_augmentation(read_run_config(study.record(row)))
                          for _, row in study.runs_of(exp).iterrows()) for exp in (CE, experiment)}
    return gaps, augmented[experiment] and not augmented[CE]


BORDER_WORDS = {"boundary_iou": ("Boundary IoU", 2), "roughness": ("roughness ratio", 3)}


def borders_against_ce(study: Study, experiment: str, name: str) -> str:
    """Claim (b)'s border measures for another experiment with a Lovász term (CE + Lovász, say), against the
    cross-entropy runs: Boundary IoU (how well borders fall) and the roughness ratio (how smooth they are),
    each judged against seed variation; "" unless both have runs whose evaluation stored them."""
    gaps, augmented = border_gaps(study, experiment)
    parts = []
    for key, gap in gaps.items():
        label, digits = BORDER_WORDS[key]
        parts.append(f"{label} {gap['mean_b']:.{digits}f} against {gap['mean_a']:.{digits}f} "
                     f"({gap['difference']:+.{digits}f}, {short_verdict(gap)})")
    caveat = "; its scores with test-time augmentation, which cross-entropy's lack" if augmented else ""
    return (f"{BORDERS_LEAD}{name} against cross-entropy, claim (b)'s measures{caveat}): {'; '.join(parts)}."
            if parts else "")


def curve_frames(study: Study, runs: pd.DataFrame) -> tuple[list[pd.DataFrame], list[pd.DataFrame]]:
    """(curve.csv per seed, log.csv per seed) of one experiment's runs of one profile (rows of the summary)."""
    curves, logs = [], []
    for _, row in runs.iterrows():
        folder = study.record(row)
        if (folder / "curve.csv").is_file():
            curves.append(pd.read_csv(folder / "curve.csv"))
        logs.append(pd.read_csv(folder / "log.csv"))
    return curves, logs


def all_curves(study: Study) -> tuple[dict[str, list], dict[str, list]]:
    """Every experiment's curves and logs, one entry per profile it ran under ("[paper256]" marks the
    scratch models' crop-256 runs), for plots.learning_curves: {label: [DataFrame per seed]}."""
    curves, logs = {}, {}
    for experiment, profile, runs in groups(study.summary, study.main):
        c, l = curve_frames(study, runs)
        if l:
            label = title(experiment, profile, study.main)
            curves[label], logs[label] = c, l
    return curves, logs


def loss_note(study: Study) -> str:
    """What the learning curves' loss panel plots: each run's training objective, read from its recorded
    settings. Where the experiments train on different objectives, the sentence groups them, since a
    loss's level compares only between runs of the same objective (Lovász-Softmax's is not cross-entropy's)."""
    by_objective: dict[str, list[str]] = {}
    for experiment, profile, runs in groups(study.summary, study.main):
        if len(runs):
            config = read_run_config(study.record(runs.iloc[0]))
            by_objective.setdefault(objective(config), []).append(title(experiment, profile, study.main))
    if len(by_objective) < 2:
        return "".join(f"The loss is every run's training objective: {o}." for o in by_objective)
    return ("The loss is each run's training objective, so its level compares only between experiments with the same "
            "one: " + "; ".join(f"{o} for {and_list(t)}" for o, t in by_objective.items()) + ".")


def and_list(names: list[str]) -> str:
    """"A", "A and B", "A, B and C"."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def iterations_claim(study: Study) -> tuple[pd.DataFrame | None, list[str]]:
    """Claim (c), "2000 iterations were enough: loss and performance stopped improving": per experiment
    (and profile), the val mIoU (learning curve, fixed subset) a quarter of the schedule before the end and
    at the end, the change per seed, and whether it rises beyond its spread over seeds."""
    rows, groups_by_state = [], {}
    for label, curves in all_curves(study)[0].items():
        before, after = [], []
        for curve in curves:
            last = curve.iteration.max()
            earlier = curve[curve.iteration <= last - last // 4]
            if len(earlier):
                before.append(float(earlier.mIoU.iloc[-1]))
                after.append(float(curve.mIoU.iloc[-1]))
        if not before:
            continue
        change = np.subtract(after, before)
        if len(change) < 2:
            state = "one seed"
        elif change.mean() > 0 and change.mean() > 2 * change.std(ddof=1):
            state = "still rising"
        else:
            state = "flattened"
        groups_by_state.setdefault(state, []).append(label)
        last = int(curves[0].iteration.max())
        rows.append({"experiment": label, "seeds": len(change), "iterations": last,
                     "mIoU 3/4 through": fmt(before), "mIoU at the end": fmt(after),
                     "change": fmt(change), "verdict": state})
    if not rows:
        return None, ["No learning curve has a point a quarter of the schedule before its end."]
    words = {"still rising": "still rising beyond seed variation at the end (more iterations would likely help)",
             "flattened": "flat within seed variation over the last quarter (the claim holds)",
             "one seed": "one seed, not judged"}
    lines = [f"{words[state]}: {', '.join(groups_by_state[state])}." for state in words if state in groups_by_state]
    return pd.DataFrame(rows).set_index("experiment"), [line[0].upper() + line[1:] for line in lines]


def border_table(measures: list[dict], key: str, digits: int = 2) -> pd.DataFrame:
    """Per class (and their mean), mean ± std over seeds of one border measure, a column per experiment."""
    from .data import report_order

    rows = pd.DataFrame([{"experiment": TITLES.get(m["experiment"], m["experiment"]), **m[key]} for m in measures])
    names = [c for c in rows.columns if c != "experiment"]
    classes = [names[i] for i in report_order(names)]
    rows["mean of classes"] = rows[classes].mean(axis=1)
    return pd.DataFrame({e: {c: fmt(g[c], digits) for c in classes + ["mean of classes"]}
                         for e, g in rows.groupby("experiment", sort=False)})


def border_summary(measures: list[dict]) -> pd.DataFrame:
    """Claim (b)'s per-class table: per class (and their mean), each border measure (mean ± std over seeds),
    cross-entropy and Lovász side by side under the measure's name."""
    short = {TITLES[CE]: "cross-entropy", TITLES[LOVASZ]: "Lovász"}
    return pd.concat({label: border_table(measures, key, 3 if key == "roughness" else 2).rename(columns=short)
                      for key, label in BORDER_MEASURES.items()}, axis=1).rename_axis("class")


def closeup_ids(study: Study, dataset, count: int = 2) -> list[str]:
    """Of the figures' images, the first `count` where both the cross-entropy and the Lovász model
    (first seeds) find the largest person of the ground truth (pictures.person_found): a rule that
    favours neither."""
    from .pictures import person_found

    folders = [study.record(r.sort_values("seed").iloc[0]) for r in (study.runs_of(CE), study.runs_of(LOVASZ))
               if not r.empty]
    if len(folders) < 2:
        return []
    chosen = []
    for image_id in study.figure_ids:
        _, truth = dataset.load(dataset.ids.index(image_id))
        if all(person_found(records.read_mask(f, image_id), truth) for f in folders):
            chosen.append(image_id)
    return chosen[:count]


def findings(study: Study, beyond: list[str] = ()) -> list[str]:
    """The abstract's findings in mIoU points, one clause per claim that has its runs, with the verdict (as the
    tables word it) of the claim's own section: pretraining (like for like only), Lovász against
    cross-entropy (mIoU and borders), the clauses of the experiments beyond the report (beyond.findings),
    the schedule (the pretrained model's learning curve over its last quarter)."""
    out = []
    pre, like = study.runs_of(PRETRAINED), study.runs_of(LIKE_SCRATCH)
    if not pre.empty and not like.empty:
        gap = gap_vs_noise(like.mIoU, pre.mIoU)
        out.append(f"pretraining {gap['difference']:+.1f} over the same model from scratch ({short_verdict(gap)})")
    lovasz = study.runs_of(LOVASZ)
    if not pre.empty and not lovasz.empty:
        gap = gap_vs_noise(pre.mIoU, lovasz.mIoU)
        clause = f"Lovász-Softmax in place of cross-entropy {gap['difference']:+.1f} ({short_verdict(gap)})"
        measures = border_measures(study)
        if {m["experiment"] for m in measures} >= {CE, LOVASZ}:
            rough = difference_vs_noise(measures, "roughness", CE, LOVASZ)
            word = "rougher" if rough["difference"] > 0 else "smoother"
            clause += f", with {word} borders (roughness ratio {rough['difference']:+.2f}, {short_verdict(rough)})"
        out.append(clause)
    out += beyond
    table, _ = iterations_claim(study)
    if table is not None and TITLES[PRETRAINED] in table.index:
        row = table.loc[TITLES[PRETRAINED]]
        sign = "" if row.change.startswith("-") else "+"
        state = "flat" if row.verdict == "flattened" else row.verdict  # or "still rising", "one seed"
        out.append(f"the pretrained model over the last quarter of its {row.iterations} iterations {sign}{row.change} "
                   f"({state})")
    return out
