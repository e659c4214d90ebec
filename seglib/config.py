"""Experiments are defined once, in experiments/*.yaml; profiles (experiments/profiles.yaml) and
`--set key=value` override them. The command line, the notebooks and the tests all call load()."""
from __future__ import annotations

from pathlib import Path

import yaml

from .errors import SeglibError
from .paths import shipped

EXPERIMENTS_DIR = shipped("experiments")
# the course report's four, in its table order, then the like-for-like scratch run of the pretrained model
EXPERIMENTS = ("fcn_unet_scratch", "deeplabv3plus_scratch", "deeplabv3plus_pretrained", "deeplabv3plus_pretrained_lovasz",
               "deeplabv3plus_lite2_scratch",
               # beyond the course report: its open question (part relations) and the recipe it should have used
               "deeplabv3plus_pretrained_hierarchy", "deeplabv3plus_pretrained_ce_lovasz", "deeplabv3plus_pretrained_best")
PROFILES = ("paper", "paper256", "cpu", "cpu512", "smoke")
NOT_EXPERIMENTS = ("defaults", "profiles", "course_report")  # the other YAML files in experiments/


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SeglibError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise SeglibError(f"{path}: expected a mapping of key: value")
    return data


def available_experiments() -> list[str]:
    return sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml") if p.stem not in NOT_EXPERIMENTS)


def parse_overrides(pairs) -> dict:
    """['lr=0.02', 'eval_scales=[0.75,1.0]'] -> {'lr': 0.02, 'eval_scales': [0.75, 1.0]} (YAML values)."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SeglibError(f"--set {pair!r}: expected key=value, for example --set iterations=500")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise SeglibError(f"--set {pair!r}: value is not valid YAML") from None
    return out


def _merge(config: dict, updates: dict, source: str) -> None:
    unknown = sorted(set(updates) - set(config))
    if unknown:
        raise SeglibError(f"{source}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(config))}")
    config.update(updates)


def load(experiment: str, profile: str = "paper", overrides: dict | None = None) -> dict:
    """The resolved config of one run: defaults <- experiment <- profile <- overrides."""
    path = EXPERIMENTS_DIR / f"{experiment}.yaml"
    if experiment in NOT_EXPERIMENTS or not path.is_file():
        raise SeglibError(f"unknown experiment {experiment!r}; choose one of: {', '.join(available_experiments())}")
    profiles = _read_yaml(EXPERIMENTS_DIR / "profiles.yaml")
    if profile not in profiles:
        raise SeglibError(f"unknown profile {profile!r}; choose one of: {', '.join(profiles)}")
    config = _read_yaml(EXPERIMENTS_DIR / "defaults.yaml")
    _merge(config, _read_yaml(path), str(path))
    profile_settings = dict(profiles[profile] or {})
    per_experiment = profile_settings.pop("experiments", None) or {}
    _merge(config, profile_settings, f"{EXPERIMENTS_DIR / 'profiles.yaml'} [{profile}]")
    _merge(config, per_experiment.get(experiment) or {}, f"{EXPERIMENTS_DIR / 'profiles.yaml'} [{profile}.experiments.{experiment}]")
    _merge(config, overrides or {}, "--set")
    config.update(experiment=experiment, profile=profile)
    validate(config)
    return config


CHOICES = {
    "loss": ("ce", "lovasz", "ce+lovasz"),
    "precision_cpu": ("fp32", "bf16"),
    "precision_cuda": ("fp32", "bf16", "fp16"),
    "device": ("auto", "cpu", "cuda"),
}


def validate(config: dict) -> None:
    for key, allowed in CHOICES.items():
        if config[key] not in allowed:
            raise SeglibError(f"{key}={config[key]!r} is not allowed; choose one of: {', '.join(allowed)}")
    for key in ("iterations", "batch_size", "crop_size", "checkpoint_every", "log_every", "curve_images"):
        if not isinstance(config[key], int) or config[key] < 1:
            raise SeglibError(f"{key}={config[key]!r} must be a positive integer")
    if config["batch_size"] < 2:
        raise SeglibError("batch_size=1: BatchNorm cannot train on a batch of one; use 2 or more")
    if not isinstance(config["curve_every"], int) or config["curve_every"] < 0:
        raise SeglibError(f"curve_every={config['curve_every']!r} must be 0 (no learning curve) or a positive integer")
    for key in ("train_size", "eval_size"):
        if config[key] is not None and not (isinstance(config[key], int) and config[key] >= 16):
            raise SeglibError(f"{key}={config[key]!r} must be null or a short edge of at least 16 pixels")
    for key in ("lr", "momentum", "weight_decay", "power", "min_lr", "aux_weight", "hierarchy_weight"):
        if not isinstance(config[key], (int, float)) or config[key] < 0:
            raise SeglibError(f"{key}={config[key]!r} must be a non-negative number")
    workers = config["num_workers"]
    if workers != "auto" and not (isinstance(workers, int) and workers >= 0):
        raise SeglibError(f"num_workers={workers!r} must be auto or a non-negative integer")
    scales = config["scale_range"]
    if not (isinstance(scales, list) and len(scales) == 2 and 0 < scales[0] <= scales[1]):
        raise SeglibError(f"scale_range={scales!r} must be [low, high] with 0 < low <= high")
    if not (isinstance(config["eval_scales"], list) and config["eval_scales"]
            and all(isinstance(s, (int, float)) and s > 0 for s in config["eval_scales"])):
        raise SeglibError(f"eval_scales={config['eval_scales']!r} must be a non-empty list of positive numbers")


# Settings that change how fast a run goes, not what it computes: a finished run still counts as the
# same run when only these differ (another machine, more workers). Not channels_last: on CPU in bf16
# it changed the gradients (seglib.runtime.training_memory_format).
# The learning curve's settings change what is recorded beside the run, not its weights.
SPEED_ONLY_KEYS = ("device", "num_workers", "compile", "checkpoint_every", "log_every", "curve_every", "curve_images")
# Settings that change how a finished run is scored, not its weights: when only these differ, the
# run is evaluated again (seglib.evaluate.rescore) instead of retrained.
EVAL_KEYS = ("eval_size", "eval_flip", "eval_scales", "val_split", "max_eval_images")


def changed_settings(run_dir, config: dict) -> dict[str, tuple]:
    """{key: (value in RUN_DIR/config.yaml, value in `config`)} where they differ, ignoring SPEED_ONLY_KEYS.
    A key the run's file lacks (added to defaults.yaml after it trained) counts as its default, which
    keeps what seglib did before the key existed."""
    saved = {**_read_yaml(EXPERIMENTS_DIR / "defaults.yaml"), **read_run_config(run_dir)}
    return {k: (saved.get(k), v) for k, v in sorted(config.items()) if k not in SPEED_ONLY_KEYS and saved.get(k) != v}


def describe_changes(changes: dict[str, tuple]) -> str:
    return ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changes.items())


def settings_for_model(model: str, profile: str = "paper") -> dict:
    """The config of the first experiment that uses `model` (its measured precision and memory format);
    the benchmark reads these so it times the path the experiments take."""
    for experiment in EXPERIMENTS:
        config = load(experiment, profile)
        if config["model"] == model:
            return config
    return load(EXPERIMENTS[0], profile, {"model": model})


def save(config: dict, path: Path) -> None:
    Path(path).write_text(yaml.safe_dump(config, sort_keys=False))


def is_complete(run_dir) -> bool:
    """A finished run folder: its config, final weights and scores are all there."""
    run_dir = Path(run_dir)
    return all((run_dir / f).is_file() for f in ("config.yaml", "final.pt", "metrics.json"))


def run_data(run_dir, data=None, same: bool = False) -> Path:
    """The data folder to score RUN_DIR on: `data` when given, else the one the run recorded (trained and
    scored on). same=True (re-scoring the run's own metrics) refuses a folder other than the recorded one."""
    recorded = read_run_config(run_dir).get("data")
    if data is None:
        if recorded is None:
            raise SeglibError(f"{Path(run_dir) / 'config.yaml'}: records no data folder (trained before runs recorded "
                              "it); pass --data DIR with the folder it was trained on")
        if not Path(recorded).is_dir():
            raise SeglibError(f"{run_dir}: trained on {recorded}, which is not on this machine; pass --data DIR")
        return Path(recorded)
    if same and recorded is not None and Path(data).resolve() != Path(recorded).resolve():
        raise SeglibError(f"{run_dir}: its scores are on {recorded}, not {Path(data).resolve()}; drop --data to re-score "
                          "it there, or evaluate without --update to score it elsewhere")
    return Path(data)


def with_test_time_augmentation(config: dict) -> bool:
    """Whether a run's scores come with test-time augmentation (a flip, or scales other than 1)."""
    return bool(config["eval_flip"]) or [float(s) for s in config["eval_scales"]] != [1.0]


def read_run_config(run_dir) -> dict:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise SeglibError(f"{path}: not found; is {run_dir} a run folder written by `python -m seglib train`?")
    return _read_yaml(path)
