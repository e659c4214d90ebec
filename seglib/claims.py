"""The course report's claims, each tested against seed-to-seed variation with a verdict generated
from the numbers: (a) pretraining helps (per class, like for like), (b) Lovasz-Softmax gives smoother
borders at about the same mIoU, (c) 2000 iterations were enough; and each experiment beyond the
course report against the pretrained cross-entropy runs. Reads the study's records only."""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import records
from .config import read_run_config
from .report import (
    CE,
    LIKE_SCRATCH,
    LOVASZ,
    PRETRAINED,
    R50_SCRATCH,
    Study,
    machine,
    schedule,
    seeds_phrase,
)
from .results import (
    TITLES,
    difference_vs_noise,
    fmt,
    gap_verdict,
    gap_vs_noise,
    groups,
    read_metrics,
    short_verdict,
    title,
)

BORDER_MEASURES = {"boundary_iou": "Boundary IoU (%)", "boundary_f": "boundary F-score (%)",
                   "roughness": "roughness ratio (1 = as smooth as the ground truth)"}


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


BEYOND = ("deeplabv3plus_pretrained_hierarchy", "deeplabv3plus_pretrained_ce_lovasz", "deeplabv3plus_pretrained_best")


def beyond_claims(study: Study) -> list[tuple[str, list[str]]]:
    """Each experiment beyond the course report against the pretrained CE runs of the same profile:
    (title, sentences), for those that ran. Their per-class gains are beyond_classes' one table."""
    base = study.runs_of(PRETRAINED)
    out = []
    for experiment, runs in ([] if base.empty else _ran_beyond(study)):
        table, gap = class_comparison(base, runs, "cross-entropy", "this experiment")
        lines = [verdict_sentence("mIoU", {**gap, "a": TITLES[PRETRAINED], "b": TITLES[experiment]}, " points") + ".",
                 gains_sentence("It", table), inference_cost(study, experiment)]
        out.append((TITLES[experiment], lines))
    return out


RECIPE_COLUMNS = {"loss": "loss", "hierarchy_weight": "hierarchy", "scale_range": "rescale", "eval_flip": "test flip",
                  "eval_scales": "test scales"}
SHORT = {"deeplabv3plus_pretrained_hierarchy": "+ hierarchy", "deeplabv3plus_pretrained_ce_lovasz": "CE + Lovász",
         "deeplabv3plus_pretrained_best": "best recipe"}


def _ran_beyond(study: Study) -> list[tuple[str, pd.DataFrame]]:
    return [(e, study.runs_of(e)) for e in BEYOND if not study.runs_of(e).empty]


def beyond_table_speed(study: Study) -> str:
    """The caption's sentence on beyond_table's images/s column ("" without results/inference.json)."""
    if not _timed(study):
        return ""
    return (f"images/s: inference speed of each setting ({bench_setting(study)}; results/inference.json, from "
            "seglib bench --experiments); n/a where not timed.")


def beyond_pending(study: Study) -> str:
    """The section's sentence naming its experiments that have no run yet ("" once all have run), so that
    a reader of its introduction does not look for their rows."""
    ran = {experiment for experiment, _ in _ran_beyond(study)}
    missing = [TITLES[e] for e in BEYOND if e not in ran]
    return f"Not run yet, so absent from the tables: {'; '.join(missing)}." if missing else ""


def beyond_table(study: Study) -> pd.DataFrame | None:
    """What each change gave: the pretrained cross-entropy runs, then each experiment beyond the course
    report (short names), with the recipe settings that differ between them (read from the runs, a column
    each), mIoU over seeds, the gain and its verdict against seed variation, and the inference speed where
    results/inference.json has it. None until one of them has run."""
    base, ran = study.runs_of(PRETRAINED), _ran_beyond(study)
    if base.empty or not ran:
        return None
    groups = [(PRETRAINED, base)] + ran
    def word(column, value):
        if column == "hierarchy_weight" and float(value) == 0:
            return "off"
        return {"True": "on", "False": "off"}.get(str(value), str(value))

    varied = [c for c in RECIPE_COLUMNS if c in base and len({str(runs.iloc[0][c]) for _, runs in groups}) > 1]
    rows = []

    timed = _timed(study)

    def row(name, settings, scores, baseline=False, speed=None):
        gap = gap_vs_noise(base.mIoU, scores)
        rows.append({"experiment": name, **settings, "seeds": len(scores), "mIoU": fmt(scores),
                     "gain": "" if baseline else f"{gap['difference']:+.2f}",
                     "verdict": "baseline" if baseline else short_verdict(gap),
                     **({"images/s": fmt(speed or [], 2)} if timed else {})})

    for experiment, runs in groups:
        settings = {RECIPE_COLUMNS[c]: word(c, runs.iloc[0][c]) for c in varied}
        speed = timed.get(experiment, {})
        row(SHORT.get(experiment, "cross-entropy"), settings, runs.mIoU, experiment == PRETRAINED,
            speed.get("images_per_s"))
        plain = runs.get("mIoU without TTA", pd.Series(dtype=float)).dropna()
        if experiment != PRETRAINED and len(plain) == len(runs):  # the same runs' plain pass: what the TTA gave
            off = {"test flip": "off", "test scales": "1.0"}
            row(f"{SHORT[experiment]}, no test-time aug.", {k: off.get(k, v) for k, v in settings.items()}, plain,
                speed=speed.get("plain_images_per_s"))
    return pd.DataFrame(rows).set_index("experiment")


def beyond_classes(study: Study) -> pd.DataFrame | None:
    """Per class (and mIoU): the pretrained cross-entropy runs' IoU (mean ± std over seeds) and each
    experiment beyond the course report's gain over it, '*' where it exceeds seed-to-seed variation."""
    base, ran = study.runs_of(PRETRAINED), _ran_beyond(study)
    if base.empty or not ran:
        return None
    columns = {}
    for experiment, runs in ran:
        table, _ = class_comparison(base, runs, "cross-entropy", experiment)
        columns.setdefault("cross-entropy", table["cross-entropy"])
        columns[SHORT[experiment]] = [f"{g:+.2f}" + ("*" if v == "beyond noise" else "")
                                      for g, v in zip(table.gain, table.verdict)]
    return pd.DataFrame(columns, index=table.index)


def inference_cost(study: Study, experiment: str) -> str:
    """Forward passes per test image (a flip doubles them) and the inference speed beside the pretrained CE
    runs': from results/inference.json (seglib bench --experiments: both timed in turn on the same photos
    and machine, the difference judged against round-to-round variation) where it has both, else from the
    seconds each run's evaluation took (border measures included)."""
    passes = lambda exp: 2 if read_run_config(study.record(study.runs_of(exp).iloc[0]))["eval_flip"] else 1
    plural = lambda n: f"{n} forward pass{'' if n == 1 else 'es'}"
    head = f"Inference: {plural(passes(experiment))} per image against {plural(passes(PRETRAINED))}"
    timed = _timed(study)
    if experiment in timed and PRETRAINED in timed:
        a, b = timed[PRETRAINED]["images_per_s"], timed[experiment]["images_per_s"]
        return (f"{head}; {fmt(b, 2)} images/s against {fmt(a, 2)} images/s ({bench_setting(study)})"
                f"{_speed_gap(a, b, 'round-to-round')}.")
    return _inference_from_runs(study, experiment, head)


def _speed_gap(base, other, variation: str) -> str:
    """', a difference of +d images/s that exceeds / is within <variation> variation (2 x n)'; '' with a single
    value on each side (no variation to judge it by)."""
    gap = gap_vs_noise(base, other)
    if not np.isfinite(gap["noise"]):
        return ""
    return (f", a difference of {gap['difference']:+.2f} images/s that "
            f"{'exceeds' if gap['exceeds_noise'] else 'is within'} {variation} variation (2 x {gap['noise']:.2f})")


def _timed(study: Study) -> dict:
    """results/inference.json's speeds per experiment, if timed under the study's main profile (another
    profile's evaluation size or test-time augmentation is not what the runs were scored with) and written
    by seglib bench --experiments (a file without its setting is not described, so not used)."""
    bench = study.inference
    complete = all(key in bench for key in ("images", "rounds", "machine", "experiments"))
    return bench["experiments"] if complete and bench.get("profile") == study.main else {}


def bench_setting(study: Study) -> str:
    """How results/inference.json was measured, in words."""
    bench = study.inference
    return (f"timed in turn on the same {bench['images']} val photos, {bench['rounds']} round{'s' if bench['rounds'] != 1 else ''}, on one machine: "
            f"{bench['machine']}; mean ± std over rounds")


def _inference_from_runs(study: Study, experiment: str, head: str) -> str:
    """Speeds from the runs' evaluations are compared only between runs scored on the same machine (the one
    most runs of both share), the difference judged against run-to-run variation (a CPU's pace drifts
    between hours); with no machine in common the speeds are shown and not compared."""
    scored = {exp: [(machine(m, scored=True), r.val_images / m["eval_seconds"])
                    for _, r in study.runs_of(exp).iterrows()
                    for m in [read_metrics(study.record(r))] if m.get("eval_seconds")]
              for exp in (experiment, PRETRAINED)}  # each record's metrics.json read once
    shared = {h for h, _ in scored[experiment]} & {h for h, _ in scored[PRETRAINED]}
    if not shared:
        on = lambda exp: (f"{fmt([v for _, v in scored[exp]], 2)} images/s on "
                          f"{', '.join(sorted({h for h, _ in scored[exp]}))}" if scored[exp] else "n/a")
        return (f"{head}; evaluation {on(experiment)} against {on(PRETRAINED)} (border measures included): "
                f"no machine scored both, so the speeds are not compared.")
    host = max(sorted(shared), key=lambda h: sum(h == g for runs in scored.values() for g, _ in runs))
    speeds = {exp: [v for h, v in runs if h == host] for exp, runs in scored.items()}
    left_out = sum(len(runs) for runs in scored.values()) - sum(len(v) for v in speeds.values())
    judged = _speed_gap(speeds[PRETRAINED], speeds[experiment], "run-to-run")
    others = (f"; {left_out} run{'s' if left_out > 1 else ''} scored on other machines left out" if left_out else "")
    return (f"{head}; evaluation {fmt(speeds[experiment], 2)} images/s against {fmt(speeds[PRETRAINED], 2)} "
            f"images/s (border measures included; measured on one machine, {host}{others}){judged}.")


def border_measures(study: Study, experiments=(CE, LOVASZ)) -> list[dict]:
    """Per run of the main profile: experiment, seed, mIoU and the stored border measures per class."""
    out = []
    for _, row in study.summary.iterrows():
        if row.experiment in experiments and row.profile == study.main:
            stored = read_metrics(study.record(row)).get("boundary")
            if stored and "roughness" in stored:
                out.append({"experiment": row.experiment, "seed": row.seed, "mIoU": {"all": row.mIoU}, **stored})
    return out


def lovasz_claim(study: Study) -> list[str]:
    """Claim (b), Lovász-Softmax gives smoother borders at about the same mIoU: the mIoU gap and each
    border measure's gap (class means), each against seed-to-seed variation."""
    measures = border_measures(study)
    if not {m["experiment"] for m in measures} >= {CE, LOVASZ}:
        return ["Needs cross-entropy and Lovász runs whose evaluation stored the border measures."]
    lines = []
    for key, label in [("mIoU", "mIoU (%)")] + list(BORDER_MEASURES.items()):
        gap = difference_vs_noise(measures, key, CE, LOVASZ)
        gap.update(a="cross-entropy", b="Lovász")
        lines.append(verdict_sentence(label, gap, digits=3 if key == "roughness" else 2) + ".")
    rough = difference_vs_noise(measures, "roughness", CE, LOVASZ)
    if rough["exceeds_noise"]:
        word = "smoother" if rough["difference"] < 0 else "rougher"
        lines.append(f"So Lovász borders are {word} than cross-entropy's beyond seed variation.")
    elif np.isfinite(rough["noise"]):
        lines.append("So the seeds do not show Lovász borders to be smoother or rougher than cross-entropy's.")
    return lines


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
    """Claim (b)'s one table: per class (and their mean), each border measure (mean ± std over seeds),
    cross-entropy and Lovász side by side under the measure's name."""
    short = {TITLES[CE]: "cross-entropy", TITLES[LOVASZ]: "Lovász"}
    labels = {"boundary_iou": "Boundary IoU (%)", "boundary_f": "boundary F-score (%)", "roughness": "roughness ratio"}
    return pd.concat({labels[key]: border_table(measures, key, 3 if key == "roughness" else 2).rename(columns=short)
                      for key in BORDER_MEASURES}, axis=1).rename_axis("class")


def closeup_ids(study: Study, dataset, count: int = 2) -> list[str]:
    """Of the figures' images, the first `count` where both the cross-entropy and the Lovász model
    (first seeds) find the largest person of the ground truth (plots.person_found): a rule that
    favours neither."""
    from .plots import person_found

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


def findings(study: Study) -> list[str]:
    """The abstract's findings in mIoU points, one clause per claim that has its runs, with the verdict (as the
    tables word it) of the claim's own section: pretraining (like for like only), Lovász against
    cross-entropy (mIoU and borders), each experiment beyond the report, the schedule (the pretrained
    model's learning curve over its last quarter)."""
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
    for experiment, runs in ([] if pre.empty else _ran_beyond(study)):
        gap = gap_vs_noise(pre.mIoU, runs.mIoU)
        out.append(f"{FINDING_NAMES[experiment]} {gap['difference']:+.1f} ({short_verdict(gap)})")
    table, _ = iterations_claim(study)
    if table is not None and TITLES[PRETRAINED] in table.index:
        row = table.loc[TITLES[PRETRAINED]]
        sign = "" if row.change.startswith("-") else "+"
        state = "flat" if row.verdict == "flattened" else row.verdict  # or "still rising", "one seed"
        out.append(f"the pretrained model over the last quarter of its {row.iterations} iterations {sign}{row.change} "
                   f"({state})")
    return out


FINDING_NAMES = {"deeplabv3plus_pretrained_hierarchy": "the body hierarchy as extra supervision",
                 "deeplabv3plus_pretrained_ce_lovasz": "Lovász-Softmax added to cross-entropy",
                 "deeplabv3plus_pretrained_best": "the best recipe within the report's budget"}
