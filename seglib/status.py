"""Where a study stands (`make status`): per run, finished (its mIoU, whether its record is exported),
how far an unfinished run got and its pace, or when a run not started would end, from the pace of a run
with the same step cost, measured on this machine where one was (a CPU's pace differs threefold between
machines of one kind), else on another, said so; with measure=True, a few training steps timed here
instead of another machine's pace (`make status MEASURE=1`: will the next run fit the time I have?)."""
from __future__ import annotations

import math
from pathlib import Path

from . import config as configs
from . import records
from .results import read_metrics, seconds_per_iteration
from .runtime import host_description, resolve_device


def pace_key(config: dict) -> tuple:
    """What sets a step's cost: the same model, crop, batch and losses train at one pace on one machine."""
    return tuple(str(config.get(k)) for k in ("model", "crop_size", "batch_size", "loss", "hierarchy_weight"))


def paced_by(rate: float, tag: str) -> str:
    """How a pace borrowed from a run reads in a status line: 'the 6.5 s/iteration of RUN'."""
    return f"the {rate:.1f} s/iteration of {tag}"


def measured_paces(study, out: Path, here: str) -> dict:
    """pace_key -> (s/iteration, where it comes from in words, whether on this machine): the
    study's first finished run per key, one trained on this machine before any other. Only a run folder
    here counts as this machine: an exported record alone came from another checkout, whose CPU may share
    this one's description ("AMD EPYC, 2 threads") and not its pace (6.5 against 9.1 s/iteration)."""
    found = {}
    for _, _, _, tag in study:  # a run folder here before its exported record
        folder = next((f for f in (out / "runs" / tag, out / "results" / "runs" / tag) if (f / "metrics.json").is_file()), None)
        rate = seconds_per_iteration(folder) if folder else None
        if rate:
            same = folder == out / "runs" / tag and read_metrics(folder).get("host") == here
            key = pace_key(configs.read_run_config(folder))
            if key not in found or (same and not found[key][2]):
                found[key] = (rate, paced_by(rate, tag), same)
    return found


TIMED_HERE = "timed here ({steps} steps on random inputs, without data loading or the learning curve)"


def timed_paces(study, out: Path, device, measured: dict, steps: int = 3) -> dict:
    """pace_key -> (s/iteration, "N s/iteration " + TIMED_HERE, True) for each step cost of the study's runs
    not finished here or elsewhere that has no pace from this machine: `steps` steps after one warm-up, on
    random inputs, with the run's model, crop, batch, precision and memory format (a cross-entropy step: the
    Lovász and hierarchy losses add little), one timing per model, crop and batch."""
    from .bench import train_throughput
    from .runtime import precision_for

    configs_by_tag = {tag: configs.load(e, p, {"seed": s}) for e, p, s, tag in study}
    # a run in progress here paces the others of its step cost (study_status reads its checkpoint)
    running = {pace_key(c) for tag, c in configs_by_tag.items() if (out / "runs" / tag / "last.pt").is_file()}
    timed, by_shape = {}, {}
    for tag, config in configs_by_tag.items():
        key = pace_key(config)
        done = configs.is_complete(out / "runs" / tag) or records.complete(out / "results" / "runs" / tag)
        if done or key in running or measured.get(key, (0, 0, False))[2] or key in timed:
            continue
        shape = (config["model"], config["crop_size"], config["batch_size"])
        if shape not in by_shape:
            print(f"[status] timing {steps} training steps of {shape[0]} at crop {shape[1]}, batch {shape[2]} ...",
                  flush=True)
            per_second = train_throughput(*shape, steps, device, precision_for(config, device),
                                          config["channels_last"], warmup=1)
            by_shape[shape] = shape[2] / per_second
        timed[key] = (by_shape[shape], f"{by_shape[shape]:.1f} s/iteration " + TIMED_HERE.format(steps=steps), True)
    return timed


def study_status(study, out: Path, device: str = "auto", measure: bool = False, data=None) -> list[str]:
    """One line per run of the study, in training order, and the training time left on this machine;
    measure=True times runs not started whose step cost has no pace from this machine (minutes on a CPU);
    with the data folder given, a last line when the study on it would stop (records trained on another)."""
    import torch

    resolved = resolve_device(device)
    here = host_description(resolved)
    measured = measured_paces(study, out, here)
    if measure:
        measured.update(timed_paces(study, out, resolved, measured))
    lines, left, unknown, borrowed = [], 0.0, 0, 0
    for experiment, run_profile, seed, tag in study:
        run_dir, record = out / "runs" / tag, out / "results" / "runs" / tag
        config = configs.load(experiment, run_profile, {"seed": seed})
        here_done, elsewhere = configs.is_complete(run_dir), not run_dir.exists() and records.complete(record)
        if here_done or elsewhere:
            folder, where = (run_dir, "") if here_done else (record, " elsewhere")
            state = f"finished{where}, mIoU {read_metrics(folder)['mIoU']:.2f}"
            if not here_done:
                state += " (its record in results/; no run folder here)"
            elif not records.complete(record):
                state += ", record not exported yet"
            changed = configs.changed_settings(folder, config)
            if changed:  # the pipeline stops on such a run folder, and trains again where only such a record is
                state = f"finished{where} with other settings ({configs.describe_changes(changed)})"
        elif (run_dir / "last.pt").is_file():
            checkpoint = torch.load(run_dir / "last.pt", map_location="cpu", mmap=True, weights_only=False)
            state = (f"at iteration {checkpoint['iteration']} of {config['iterations']} "
                     "(last checkpoint: a rerun continues there)")
            history = checkpoint.get("history", [])
            state += pace(history, config["iterations"])
            rate = recent_rate(history)
            if rate:
                left += rate[0] * (config["iterations"] - history[-1]["iteration"])
                if not measured.get(pace_key(config), (0, 0, False))[2]:  # its pace here, for its next seeds
                    measured[pace_key(config)] = (rate[0], paced_by(rate[0], tag), True)
            else:
                unknown += 1
        else:
            state = "started, before its first checkpoint (a rerun starts it again)" if run_dir.is_dir() else "not started"
            rate, source, same = measured.get(pace_key(config), (None, None, False))
            if rate:
                left += rate * config["iterations"]
                borrowed += not same
                state += (f" (about {duration(rate * config['iterations'])} at {source}"
                          + ("" if same else ", measured on another machine") + ")")
            else:
                unknown += 1
        lines.append(f"{tag}: {state}")
    if left or unknown:
        lines.append(f"training left: about {duration(left)}" + (
            f" ({borrowed} run(s) timed at another machine's pace)" if borrowed else " on this machine") + (
            f", plus {unknown} run(s) with no pace measured yet" if unknown else "") + (
            "; --measure (make: MEASURE=1) times them here" if (borrowed or unknown) and not measure else ""))
    leaving = records.outside_phrase(out / "results" / "runs", {tag for *_, tag in study})
    lines += [f"{leaving} would be removed when it ends"] if leaving else []  # as the pipeline says before training
    error = records.other_data_error(out / "results", data) if data else None
    return lines + ([f"the study on this data folder stops before training: {error}"] if error else [])


def duration(seconds: float) -> str:
    minutes = math.ceil(seconds / 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def recent_rate(history: list[dict], window: int = 100) -> tuple[float, int] | None:
    """(seconds per iteration, over how many iterations) from a checkpoint's loss log (iteration and
    cumulative training seconds every log_every iterations), over its last `window` iterations; None
    without two entries."""
    if len(history) < 2:
        return None
    last = history[-1]
    first = next(h for h in history if h["iteration"] >= last["iteration"] - window)
    if first is last:
        first = history[-2]
    span = last["iteration"] - first["iteration"]
    return (last["seconds"] - first["seconds"]) / span, span


def pace(history: list[dict], iterations: int, window: int = 100) -> str:
    """', 7.7 s/iteration over its last 100 iterations: about 3 h 25 min left'; '' without two entries."""
    measured = recent_rate(history, window)
    if not measured:
        return ""
    rate, span = measured
    return (f", {rate:.1f} s/iteration over its last {span} iterations: "
            f"about {duration(rate * (iterations - history[-1]['iteration']))} left")
