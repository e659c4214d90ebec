"""python -m seglib {train,evaluate,predict,bench,compare,pipeline}: thin argument parsing over the modules.
A user's mistake (SeglibError) prints one line and exits 2; no traceback."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import SeglibError


def _data_arg(parser):
    parser.add_argument("--data", type=Path, default=None,
                        help="data folder (default: $SEGLIB_DATA, else the embedded sample)")


def _print_scores(score: dict) -> None:
    from .confusion import row_shares, stored
    from .results import per_class_table

    print(per_class_table(score).to_string(float_format="%.2f", index_names=False))
    print(f"(aAcc {score['aAcc']:.2f})")
    matrix = stored(score)
    if matrix is not None:
        print("where each class's pixels go (% of its pixels; rows ground truth, columns prediction):")
        print(row_shares(matrix).to_string(float_format="%.1f"))


def cmd_train(args):
    from . import config as configs
    from .data import default_root
    from .paths import run_name
    from .train import train

    config = configs.load(args.experiment, args.profile, configs.parse_overrides(args.set))
    out = args.out or Path("runs") / run_name(args.experiment, args.profile, config["seed"])
    score = train(config, args.data or default_root(), out, resume=args.resume)
    _print_scores(score)
    print(f"run folder: {out}")


def cmd_evaluate(args):
    from . import config as configs
    from .data import PascalPartDataset
    from .evaluate import (
        confusion_record,
        evaluate_dataset,
        load_run,
        predictor_from_config,
    )
    from .metrics import scores

    if args.update and not configs.is_complete(args.run):
        raise SeglibError(f"{args.run}: not a finished run (config.yaml, final.pt, metrics.json); "
                          "--update re-scores finished runs only")
    data_root = configs.run_data(args.run, args.data, same=args.update)
    if args.update:  # the run's own scores under (new) evaluation settings, border measures included
        from .evaluate import rescore

        config = configs.read_run_config(args.run)
        settings = {"eval_flip": args.flip, "eval_scales": args.scales, "val_split": args.split,
                    "max_eval_images": args.max_images}
        config = {**config, **{k: v for k, v in settings.items() if v is not None}, "device": args.device}
        score = rescore(config, data_root, args.run)
        print(f"updated {args.run / 'metrics.json'}, per_image.csv and config.yaml")
    else:
        model, config, _ = load_run(args.run, args.device, args.checkpoint)
        overrides = {"flip": args.flip} if args.flip is not None else {}
        if args.scales:
            overrides["scales"] = args.scales
        predictor = predictor_from_config(model, config, next(model.parameters()).device, **overrides)
        dataset = PascalPartDataset(data_root, args.split or config["val_split"])
        result = evaluate_dataset(predictor, dataset, args.max_images)
        score = {**scores(result["confusion"], dataset.class_names),
                 "confusion": confusion_record(result["confusion"], dataset.class_names)}
    _print_scores(score)
    if not args.update:
        print(f"scored {result['images']} {dataset.split} images of {Path(data_root).resolve()}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(score, indent=2))


def cmd_predict(args):
    from .data import load_image
    from .evaluate import load_run, predictor_from_config
    from .pictures import save_prediction

    model, config, class_names = load_run(args.run, args.device, args.checkpoint)
    predictor = predictor_from_config(model, config, next(model.parameters()).device)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in args.images:
        if not path.is_file():
            raise SeglibError(f"{path}: image not found")
        image = load_image(path)
        for written in save_prediction(image, predictor.predict(image), class_names, args.out / path.stem):
            print(written)


def cmd_bench(args):
    from .bench import inference_speed, run_benchmark

    if args.experiments is not None:
        from .beyond import EXPERIMENTS
        from .report import PRETRAINED

        names = args.experiments or [PRETRAINED, *EXPERIMENTS]  # none named: the ones the report compares
        result = inference_speed(names, args.profile, args.data, args.images, args.rounds, args.device)
    else:
        result = run_benchmark(args.model, args.crop, args.batch, args.iters, args.device, args.data, args.precision,
                               args.channels_last)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


def cmd_compare(args):
    from .config import is_complete
    from .records import complete
    from .results import compare_by, gap_verdict, std_phrase, summary

    missing = [str(r) for r in args.runs if not (is_complete(r) or complete(r))]
    if missing:
        raise SeglibError(f"{missing[0]}: neither a finished run folder (config.yaml, final.pt, metrics.json) nor a "
                          f"run's records in results/runs/ (config.yaml, metrics.json, log.csv)")
    rows = summary(args.runs)
    table, gaps = compare_by(rows, args.by, args.metric)
    print(table.to_string(na_rep="n/a"))  # a one-seed group has no std
    for gap in gaps:  # each group against the first
        stds = " / ".join(std_phrase(gap[f"std_{g}"], gap[f"seeds_{g}"]) for g in "ab")
        print(f"{args.metric} {gap['b']} - {gap['a']}: {gap['difference']:+.2f}; seed-to-seed std {stds}: "
              f"the gap {gap_verdict(gap)}")
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.csv)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        per_run = rows[[args.by, "seed", args.metric, "train_seconds"]].assign(run=[str(r) for r in args.runs])
        args.json.write_text(json.dumps({"by": args.by, "metric": args.metric, "runs": per_run.to_dict("records"),
                                         "groups": table.reset_index().to_dict("records"), "gaps": gaps}, indent=2, default=str))


def cmd_pipeline(args):
    from .pipeline import run_pipeline

    run_pipeline(profile=args.profile, data=args.data, out=args.out, seeds=args.seeds, force=args.force,
                 only=args.only, formats=args.formats, device=args.device, extra=args.extra, from_records=args.from_records,
                 experiments=args.experiments, status=args.status, measure=args.measure)


def build_parser() -> argparse.ArgumentParser:
    from .config import PROFILES

    parser = argparse.ArgumentParser(prog="python -m seglib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one experiment into a run folder")
    p.add_argument("--experiment", required=True)
    p.add_argument("--profile", default="paper", help=f"{' | '.join(PROFILES)} (default paper)")
    _data_arg(p)
    p.add_argument("--out", type=Path, help="run folder (default runs/EXPERIMENT-PROFILE-seedN)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config keys")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="score a trained run on a split")
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--data", type=Path, default=None, help="data folder (default: the one the run was trained on)")
    p.add_argument("--checkpoint", default="final.pt", help="final.pt (default) or last.pt to score an unfinished run")
    p.add_argument("--split", help="default: the run's val_split")
    p.add_argument("--json", type=Path)
    p.add_argument("--device", default="auto")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None, help="test-time flip")
    p.add_argument("--scales", type=float, nargs="+", help="test-time scales, e.g. 0.75 1.0 1.25 1.5")
    p.add_argument("--max-images", type=int)
    p.add_argument("--update", action="store_true",
                   help="store the scores as the run's own (metrics.json, with border measures) and these "
                        "settings in its config.yaml; without it the run folder is left untouched")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="colour-coded masks and overlays for images")
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("images", type=Path, nargs="+")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", default="auto")
    p.add_argument("--checkpoint", default="final.pt", help="final.pt (default) or last.pt for an unfinished run")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("bench", help="training/evaluation throughput against a plain fp32 baseline; with "
                       "--experiments, each experiment's inference images/s, timed in turn on the same photos")
    p.add_argument("--experiments", nargs="*", metavar="EXPERIMENT",
                   help="time these experiments' inference (model, evaluation size, test-time augmentation of "
                        "--profile) instead of a training step; none named: the pretrained model and the "
                        "experiments beyond the course report, which the report compares")
    p.add_argument("--profile", default="paper")
    p.add_argument("--images", type=int, default=20, help="val photos per round (--experiments)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of timing every experiment in turn (--experiments)")
    p.add_argument("--model", default="deeplabv3plus_r50-d8")
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default=None, choices=["fp32", "bf16", "fp16"],
                   help="seglib's precision (default: the model's experiment setting for the device)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="seglib's memory format (default: the model's experiment setting)")
    _data_arg(p)
    p.add_argument("--json", type=Path)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("compare", help="finished runs grouped by one setting: mean/std over seeds and "
                                       "whether each group's gap to the first exceeds seed-to-seed variation")
    p.add_argument("runs", type=Path, nargs="+", help="run folders, or their records in results/runs/; the group "
                                                      "of the first is the baseline the others are compared with")
    p.add_argument("--by", default="precision", help="results/summary.csv column to group by (default precision; "
                                                      "experiment compares recipes with the same budget)")
    p.add_argument("--metric", default="mIoU")
    p.add_argument("--csv", type=Path)
    p.add_argument("--json", type=Path)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("pipeline", help="run every notebook for a profile, then render the report")
    p.add_argument("--profile", default="smoke")
    _data_arg(p)
    p.add_argument("--out", type=Path, default=Path("output"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds for the CE and Lovasz runs")
    p.add_argument("--force", action="store_true", help="rerun experiments whose run folder is complete")
    p.add_argument("--only", nargs="*", help="notebooks to run (default all)")
    p.add_argument("--formats", nargs="+", default=["html", "pdf"])
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--extra", nargs="*", default=[], metavar="EXPERIMENT@PROFILE[:SEEDS]",
                   help="runs beside the study, with rows of their own, e.g. deeplabv3plus_pretrained@cpu512 "
                        "(first seed) or deeplabv3plus_pretrained@cpu512:2 (first two seeds)")
    p.add_argument("--experiments", nargs="*", default=None, metavar="EXPERIMENT",
                   help="the experiments run under --profile (default all); others can join with --extra under another profile")
    p.add_argument("--status", action="store_true", help="print where each run of the study stands (finished, "
                   "at which checkpoint, not started) and stop")
    p.add_argument("--measure", action="store_true", help="with --status: time a few training steps here for the runs "
                   "not started that have no pace from this machine (minutes on a CPU), so the time left is this "
                   "machine's")
    p.add_argument("--from-records", action="store_true",
                   help="render the report from OUT/results (summary.csv and runs/ records) alone: no training, no checkpoint")
    p.set_defaults(func=cmd_pipeline)
    return parser


def _one_line(exc: Exception) -> str:
    # errors raised in DataLoader workers arrive wrapped in a traceback text: keep the original message
    lines = [l for l in str(exc).splitlines() if l.strip()]
    last = lines[-1] if lines else type(exc).__name__
    return last.split("SeglibError: ", 1)[-1].split("TrainingDiverged: ", 1)[-1]


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except SeglibError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
