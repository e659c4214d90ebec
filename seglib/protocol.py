"""This study's protocol against the course report's: the method table (what the course report states
beside what the runs recorded) and, for each of the course report's experiments that ran, the gap between
its score and the course report's with the settings in which its runs differ from the course report's."""
from __future__ import annotations

import pandas as pd

from .config import read_run_config, with_test_time_augmentation
from .models import DEEPLAB_SHAPES, aspp_rates
from .report import CE, LOVASZ, PRETRAINED, Study, hardware
from .results import ENCODERS, course_report, fmt, groups, read_metrics, title

# The course report's protocol as it states it (section 5.2), as settings: the method table's "course
# report" column is written from them as this study's is from its runs' (its test-time augmentation "none
# stated", its hardware in words), and a run's differences are named against them (each experiment's
# model is in experiments/course_report.yaml).
COURSE_SETTINGS = {"weights": "ImageNet", "crop_size": 512, "train_size": None, "scale_range": [1.0, 1.0],
                   "iterations": 2000, "batch_size": 4, "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0005,
                   "eval_flip": False, "eval_scales": [1.0]}
COURSE_STATED = {"test-time augmentation": "none stated", "hardware": "one GeForce RTX 3090"}
SETTING_WORDS = {"crop_size": "crop {} instead of {}", "iterations": "{} iterations instead of {}",
                 "batch_size": "batch {} instead of {}"}


def output_stride(model: str) -> int | None:
    """A DeepLabv3+ model's output stride; None for the others (the U-Net has no ASPP)."""
    return DEEPLAB_SHAPES.get(model, (None,))[0]


def protocol_column(config: dict) -> dict[str, str]:
    """The method table's rows for one set of settings (the hardware row apart)."""
    stride = output_stride(config["model"])
    return {
        "pretrained encoder": f"{ENCODERS.get(config['model'], config['model'])}, {config['weights'] or 'none'}",
        "output stride, ASPP rates": f"{stride}; {', '.join(map(str, aspp_rates(stride)))}" if stride else "n/a",
        "training input": (f"short edge {config.get('train_size') or config['crop_size']}, random {config['crop_size']} "
                           f"crop, flip" + (f", rescale {config['scale_range'][0]}-{config['scale_range'][1]}"
                                             if config["scale_range"] != [1.0, 1.0] else "")),
        "iterations, batch": f"{config['iterations']}, {config['batch_size']}",
        "optimizer": f"SGD lr {config['lr']}, mom. {config['momentum']}, wd {config['weight_decay']}",
        "test-time augmentation": ("flip" if config["eval_flip"] else "none")
                                  + (f", scales {config['eval_scales']}" if config["eval_scales"] != [1.0] else ""),
    }


def method_table(study: Study) -> pd.DataFrame:
    """What this study ran against what the course report states, one row per aspect; this study's
    column is read from the runs' recorded settings (main profile; scratch-only profiles noted)."""
    pre = study.runs_of(PRETRAINED)
    row = pre.iloc[0] if not pre.empty else study.summary.iloc[0]
    ours = {**protocol_column(read_run_config(study.record(row))),
            "hardware": hardware(study, read_metrics(study.record(row)))}
    theirs = {**protocol_column({**COURSE_SETTINGS, "model": course_report()[PRETRAINED]["model"]}), **COURSE_STATED}
    table = pd.DataFrame({"course report": theirs, f"this study ({row.profile} profile)": ours})
    table.index.name = "aspect"
    profiles = sorted(set(study.summary.profile))
    if len(profiles) > 1:
        table.loc["profiles in the tables", f"this study ({row.profile} profile)"] = ", ".join(profiles)
        table.loc["profiles in the tables", "course report"] = "one"
    return table


def differences(experiment: str, config: dict) -> dict[str, str]:
    """Where a run's recorded settings differ from the course report's for that experiment, {setting: in
    words}: the encoder and output stride (from the model), the crop, the schedule and any augmentation the
    course report did not use."""
    theirs = course_report()[experiment]["model"]
    out = {}
    encoders = [ENCODERS.get(m, m) for m in (config["model"], theirs)]
    if encoders[0] != encoders[1]:
        out["encoder"] = f"{encoders[0]} encoder instead of {encoders[1]}"
    strides = [output_stride(m) for m in (config["model"], theirs)]
    if None not in strides and strides[0] != strides[1]:
        out["output stride"] = f"output stride {strides[0]} instead of {strides[1]}"
    out.update({key: words.format(config[key], COURSE_SETTINGS[key]) for key, words in SETTING_WORDS.items()
                if config[key] != COURSE_SETTINGS[key]})
    if list(config["scale_range"]) != [1.0, 1.0]:
        out["scale_range"] = f"random rescale {config['scale_range'][0]}-{config['scale_range'][1]}"
    if with_test_time_augmentation(config):
        out["test-time augmentation"] = "test-time augmentation"
    return out


def against_course_report(study: Study) -> str:
    """The results' paragraph on the course report's numbers: per experiment of the course report that ran,
    our mIoU against its, the gap and where our runs differ from its protocol (read from their settings);
    Lovász's change over cross-entropy in both; and what the gaps cannot say. "" when none of them ran."""
    theirs, parts, other_encoder = course_report(), [], False
    for experiment, profile, runs in groups(study.summary, study.main):
        if experiment not in theirs or runs.empty:
            continue
        diffs = differences(experiment, read_run_config(study.record(runs.iloc[0])))
        other_encoder |= "encoder" in diffs
        reported = theirs[experiment]["mIoU"]
        parts.append(f"{title(experiment, profile, study.main)} {fmt(runs.mIoU)} against {reported:.2f} "
                     f"({runs.mIoU.mean() - reported:+.2f}; {', '.join(diffs.values()) or 'the same settings'})")
    if not parts:
        return ""
    text = ("Ours against the course report's mIoU (%), the gap, and where our runs differ from its protocol: "
            + "; ".join(parts) + ".")
    ce, lovasz = study.runs_of(CE), study.runs_of(LOVASZ)
    if len(ce) and len(lovasz):
        text += (f" Lovász-Softmax against cross-entropy: {lovasz.mIoU.mean() - ce.mIoU.mean():+.2f} here, "
                 f"{theirs[LOVASZ]['mIoU'] - theirs[CE]['mIoU']:+.2f} in the course report.")
    text += " The course report gives one run per model, so its numbers carry no seed-to-seed variation to judge a gap by"
    if other_encoder:
        text += ("; and where the encoder differs, a gap mixes the encoder's share with that of the other differences "
                 "listed, which this study cannot separate without the course report's ResNet-50 weights")
    return text + "."


def pretrained_sentence(study: Study) -> str:
    """The abstract's sentence on how the pretrained model differs from the course report's (encoder, output
    stride, ...), read from its first run's settings, with a leading space: it follows the scores; "" when
    it does not differ or has no run."""
    runs = study.runs_of(PRETRAINED)
    if runs.empty:
        return ""
    diffs = differences(PRETRAINED, read_run_config(study.record(runs.iloc[0])))
    return f" The pretrained models differ from the course report's in: {', '.join(diffs.values())}." if diffs else ""
