"""The experiments beyond the course report (its open question, the body hierarchy as extra supervision;
CE + Lovász; the best recipe within its budget), each against the pretrained cross-entropy runs of the same
profile: verdicts against seed variation, what each change gave, per-class gains, inference cost and the
abstract's clauses. Reads the study's records and results/inference.json only."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .claims import (
    BORDER_WORDS,
    border_gaps,
    borders_against_ce,
    class_comparison,
    gains_sentence,
    verdict_sentence,
)
from .config import read_run_config
from .report import PRETRAINED, STRONGEST_LEAD, Study, absent_from_tables, machine
from .results import TITLES, fmt, gap_vs_noise, read_metrics, short_verdict

BEST = "deeplabv3plus_pretrained_best"  # the recipe a user should train, last in the section
EXPERIMENTS = ("deeplabv3plus_pretrained_hierarchy", "deeplabv3plus_pretrained_ce_lovasz", BEST)


def verdicts(study: Study) -> list[tuple[str, list[str]]]:
    """Each experiment beyond the course report against the pretrained CE runs of the same profile:
    (title, sentences), for those that ran. Their per-class gains are classes()' one table."""
    base = study.runs_of(PRETRAINED)
    out = []
    for experiment, runs in ([] if base.empty else ran_experiments(study)):
        table, gap = class_comparison(base, runs, "cross-entropy", "this experiment")
        lines = [verdict_sentence("mIoU", {**gap, "a": TITLES[PRETRAINED], "b": TITLES[experiment]}, " points") + ".",
                 gains_sentence("It", table), inference_cost(study, experiment)]
        if runs.loss.str.contains("lovasz").any():  # the course report's border claim, asked of this recipe too
            lines.append(borders_against_ce(study, experiment, SHORT[experiment]))
        if experiment == BEST:
            lines.append(best_against_strongest(study))
        out.append((TITLES[experiment], [line for line in lines if line]))
    return out


def best_against_strongest(study: Study) -> str:
    """What to train: the best recipe against the strongest other experiment beyond the course report (the
    highest mean mIoU), the difference judged against seed variation, and what the recipe adds to it (its
    settings that differ, read from the runs); "" until both have run."""
    best = study.runs_of(BEST)
    others = [(e, runs) for e, runs in ran_experiments(study) if e != BEST]
    if best.empty or not others:
        return ""
    strongest, runs = max(others, key=lambda pair: pair[1].mIoU.mean())
    gap = gap_vs_noise(runs.mIoU, best.mIoU)
    adds = ", ".join(f"{RECIPE_COLUMNS[c]} {setting_word(c, best.iloc[0][c])}" for c in RECIPE_COLUMNS
                     if c in best and str(best.iloc[0][c]) != str(runs.iloc[0][c]))
    what = f"What it adds to {SHORT[strongest]} ({adds or 'nothing'})"
    if not np.isfinite(gap["noise"]):
        verdict = f"{what} cannot be judged yet: one seed each."
    elif gap["exceeds_noise"]:
        verdict = f"{what} {'gains' if gap['difference'] > 0 else 'loses'} beyond seed variation."
    else:
        verdict = f"{what} gives nothing beyond seed variation: {SHORT[strongest]} alone is the simpler recipe to train."
    return verdict_sentence(f"{STRONGEST_LEAD}, {SHORT[strongest]}, mIoU",
                            {**gap, "a": TITLES[strongest], "b": TITLES[BEST]}, " points") + ". " + verdict


def setting_word(column, value) -> str:
    """A recipe setting as the tables word it: on/off, the hierarchy weight or off, else the value."""
    if column == "hierarchy_weight" and float(value) == 0:
        return "off"
    return {"True": "on", "False": "off"}.get(str(value), str(value))


RECIPE_COLUMNS = {"loss": "loss", "hierarchy_weight": "hierarchy", "scale_range": "rescale", "eval_flip": "test flip",
                  "eval_scales": "test scales"}
SHORT = {"deeplabv3plus_pretrained_hierarchy": "+ hierarchy", "deeplabv3plus_pretrained_ce_lovasz": "CE + Lovász",
         "deeplabv3plus_pretrained_best": "best recipe"}


def ran_experiments(study: Study) -> list[tuple[str, pd.DataFrame]]:
    return [(e, study.runs_of(e)) for e in EXPERIMENTS if not study.runs_of(e).empty]


def table_speed(study: Study) -> str:
    """The caption's sentence on table()'s images/s column ("" without results/inference.json)."""
    if not _timed_speeds(study):
        return ""
    return (f"images/s: inference speed of each setting ({bench_setting(study)}; results/inference.json, from "
            "seglib bench --experiments); n/a where not timed.")


def pending(study: Study) -> str:
    """The section's sentence naming its experiments that have no run yet ("" once all have run), so that
    a reader of its introduction does not look for their rows."""
    ran = {experiment for experiment, _ in ran_experiments(study)}
    return absent_from_tables([TITLES[e] for e in EXPERIMENTS if e not in ran])


def table(study: Study) -> pd.DataFrame | None:
    """What each change gave: the pretrained cross-entropy runs, then each experiment beyond the course
    report (short names), with the recipe settings that differ between them (read from the runs, a column
    each), mIoU over seeds, the gain and its verdict against seed variation, and the inference speed where
    results/inference.json has it. None until one of them has run."""
    base, ran = study.runs_of(PRETRAINED), ran_experiments(study)
    if base.empty or not ran:
        return None
    groups = [(PRETRAINED, base)] + ran
    varied = [c for c in RECIPE_COLUMNS if c in base and len({str(runs.iloc[0][c]) for _, runs in groups}) > 1]
    rows = []

    timed = _timed_speeds(study)

    def row(name, settings, scores, baseline=False, speed=None):
        gap = gap_vs_noise(base.mIoU, scores)
        rows.append({"experiment": name, **settings, "seeds": len(scores), "mIoU": fmt(scores),
                     "gain": "" if baseline else f"{gap['difference']:+.2f}",
                     "verdict": "baseline" if baseline else short_verdict(gap),
                     **({"images/s": fmt(speed or [], 2)} if timed else {})})

    for experiment, runs in groups:
        settings = {RECIPE_COLUMNS[c]: setting_word(c, runs.iloc[0][c]) for c in varied}
        speed = timed.get(experiment, {})
        row(SHORT.get(experiment, "cross-entropy"), settings, runs.mIoU, experiment == PRETRAINED,
            speed.get("images_per_s"))
        plain = runs.get("mIoU without TTA", pd.Series(dtype=float)).dropna()
        if experiment != PRETRAINED and len(plain) == len(runs):  # the same runs' plain pass: what the TTA gave
            off = {"test flip": "off", "test scales": "1.0"}
            row(f"{SHORT[experiment]}, no test-time aug.", {k: off.get(k, v) for k, v in settings.items()}, plain,
                speed=speed.get("plain_images_per_s"))
    return pd.DataFrame(rows).set_index("experiment")


def classes(study: Study) -> pd.DataFrame | None:
    """Per class (and mIoU): the pretrained cross-entropy runs' IoU (mean ± std over seeds) and each
    experiment beyond the course report's gain over it, '*' where it exceeds seed-to-seed variation."""
    base, ran = study.runs_of(PRETRAINED), ran_experiments(study)
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
    timed = _timed_speeds(study)
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


def _timed_speeds(study: Study) -> dict:
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


def findings(study: Study) -> list[str]:
    """The abstract's clause per experiment that ran: its mIoU gain in points and the verdict as the tables word it;
    for one with a Lovász term, its border measures against cross-entropy too (unless only its scores flip)."""
    pre = study.runs_of(PRETRAINED)
    out = []
    for experiment, runs in ([] if pre.empty else ran_experiments(study)):
        gap = gap_vs_noise(pre.mIoU, runs.mIoU)
        clause = f"{FINDING_NAMES[experiment]} {gap['difference']:+.1f} ({short_verdict(gap)})"
        borders, augmented = border_gaps(study, experiment) if runs.loss.str.contains("lovasz").any() else ({}, False)
        if borders and not augmented:  # a test-time flip changes borders too: its section says so, not the abstract
            clause += ", borders " + ", ".join(f"{BORDER_WORDS[key][0]} {g['difference']:+.{BORDER_WORDS[key][1] - 1}f} "
                                               f"({short_verdict(g)})" for key, g in borders.items())
        out.append(clause)
    return out


FINDING_NAMES = {"deeplabv3plus_pretrained_hierarchy": "the body hierarchy as extra supervision",
                 "deeplabv3plus_pretrained_ce_lovasz": "Lovász-Softmax added to cross-entropy",
                 "deeplabv3plus_pretrained_best": "the best recipe within the report's budget"}
