import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import REPO, run_cli

import seglib.train as train_module
from seglib import config as configs
from seglib.data import PascalPartDataset, StreamBatchSampler
from seglib.errors import SeglibError
from seglib.train import TrainingDiverged, poly_lr, train


@pytest.mark.parametrize("experiment", configs.EXPERIMENTS)
def test_every_experiment_trains_and_evaluates_under_smoke(experiment, sample_root, tmp_path):
    config = configs.load(experiment, "smoke")
    score = train(config, sample_root, tmp_path / "run", progress=False)
    for name in ("config.yaml", "log.csv", "last.pt", "final.pt", "metrics.json"):
        assert (tmp_path / "run" / name).is_file()
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(saved) >= {"mIoU", "mAcc", "aAcc", "per_class"} and saved["mIoU"] == score["mIoU"]
    assert set(saved["per_class"]) == {"background", "head", "torso", "upper-arms", "lower-arms", "upper-legs", "lower-legs"}
    # the confusion matrix itself (rows truth), in classes.txt's order: its rows give back each class's accuracy
    stored = saved["confusion"]
    pixels = np.array(stored["pixels"])
    assert stored["classes"] == PascalPartDataset(sample_root, "val").class_names and pixels.shape == (7, 7)
    for i, name in enumerate(stored["classes"]):
        if pixels[i].sum():
            assert pixels[i, i] / pixels[i].sum() * 100 == pytest.approx(saved["per_class"][name]["Acc"])
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["experiment"] == experiment
    per_image = pd.read_csv(tmp_path / "run" / "per_image.csv", dtype={"id": str})
    assert len(per_image) == saved["images"] and per_image.mIoU.between(0, 100).all()  # one row per scored image


def test_resumed_run_matches_an_uninterrupted_one(sample_root, tmp_path, monkeypatch):
    config = configs.load("deeplabv3plus_pretrained", "smoke", {"iterations": 4, "checkpoint_every": 2})
    train(config, sample_root, tmp_path / "whole", progress=False)

    real_save = train_module.save_checkpoint

    def save_then_die(path, **state):
        real_save(path, **state)
        raise KeyboardInterrupt  # killed right after the first checkpoint (iteration 2)

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(config, sample_root, tmp_path / "killed", progress=False)
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)
    assert torch.load(tmp_path / "killed" / "last.pt", weights_only=False)["iteration"] == 2
    resumed = train(config, sample_root, tmp_path / "killed", resume=True, progress=False)

    a = torch.load(tmp_path / "whole" / "final.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "killed" / "final.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    whole = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    assert resumed["mIoU"] == whole["mIoU"] and resumed["per_class"] == whole["per_class"]


def test_a_run_resumed_on_another_cpu_keeps_the_precision_it_began_in(sample_root, tmp_path, monkeypatch, capsys):
    """fcn_unet_scratch asks for bf16, which runs as fp32 without native bf16: begun on such a CPU and
    resumed on one with native bf16, it goes on in fp32, and its record says fp32 (not half and half
    under a bf16 label)."""
    config = configs.load("fcn_unet_scratch", "smoke", {"iterations": 4, "checkpoint_every": 2})
    real_save = train_module.save_checkpoint

    def save_then_die(path, **state):
        real_save(path, **state)
        raise KeyboardInterrupt

    monkeypatch.setenv("SEGLIB_NATIVE_BF16", "0")
    monkeypatch.setattr(train_module, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(config, sample_root, tmp_path / "run", progress=False)
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=False)["precision"] == "fp32"
    monkeypatch.setenv("SEGLIB_NATIVE_BF16", "1")  # the other machine
    train(config, sample_root, tmp_path / "run", resume=True, progress=False)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["precision"] == "fp32"
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=False)["precision"] == "fp32"
    assert "trained in fp32 so far; it goes on in fp32, not the bf16 this machine would choose" in capsys.readouterr().out


def test_non_finite_loss_stops_the_run_with_a_clear_message(sample_root, tmp_path, monkeypatch):
    calls = []

    def exploding(name, ignore_index=255):
        def loss(logits, target):
            calls.append(1)
            value = torch.nn.functional.cross_entropy(logits.float(), target, ignore_index=255)
            return value * float("nan") if len(calls) >= 2 else value
        return loss

    monkeypatch.setattr(train_module, "build_loss", exploding)
    config = configs.load("deeplabv3plus_pretrained", "smoke")
    with pytest.raises(TrainingDiverged, match=r"iteration 2: loss is nan \(last finite loss .* at iteration 1\); try"):
        train(config, sample_root, tmp_path / "run", progress=False)


def test_poly_schedule_matches_mmsegmentation():
    config = configs.load("fcn_unet_scratch", "paper")
    assert poly_lr(config, 0) == pytest.approx(0.01)
    assert poly_lr(config, 1000) == pytest.approx((0.01 - 1e-4) * 0.5 ** 0.9 + 1e-4)
    assert poly_lr(config, 2000) == pytest.approx(1e-4)


def test_stream_sampler_covers_each_epoch_and_shards_like_distributed_sampler():
    batches = list(StreamBatchSampler(10, 2, seed=3, start=0, stop=5))
    assert sorted(i for b in batches for i, _ in b) == list(range(10))
    resumed = list(StreamBatchSampler(10, 2, seed=3, start=2, stop=5))
    assert resumed == batches[2:]
    ranks = [list(StreamBatchSampler(10, 2, seed=3, start=0, stop=2, rank=r, world=2)) for r in (0, 1)]
    assert sorted(i for r in ranks for b in r for i, _ in b) == sorted(i for b in batches[:4] for i, _ in b)


def test_config_errors_are_one_line(tmp_path):
    with pytest.raises(SeglibError, match="unknown experiment 'nope'; choose one of: .*deeplabv3plus_pretrained"):
        configs.load("nope")
    with pytest.raises(SeglibError, match="unknown profile"):
        configs.load("fcn_unet_scratch", "gpu-max")
    with pytest.raises(SeglibError, match="unknown key 'lrate'"):
        configs.load("fcn_unet_scratch", "smoke", {"lrate": 1})
    with pytest.raises(SeglibError, match="batch_size=1"):
        configs.load("fcn_unet_scratch", "smoke", {"batch_size": 1})
    with pytest.raises(SeglibError, match="train_size=8 must be null or a short edge of at least 16"):
        configs.load("fcn_unet_scratch", "smoke", {"train_size": 8})
    for args in (["train", "--experiment", "nope"], ["train", "--experiment", "fcn_unet_scratch", "--set", "lrate=2"],
                 ["evaluate", "--run", tmp_path]):
        proc = run_cli(*args)
        assert proc.returncode == 2 and proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr


def test_train_help_names_every_profile():
    """--help had listed four profiles after paper256 was added, so the scratch runs' profile was hidden."""
    from seglib.cli import build_parser

    train_help = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert all(profile in train_help for profile in configs.PROFILES)


def test_cli_train_evaluate_predict(sample_root, tmp_path, cli):
    run = tmp_path / "run"
    proc = run_cli("train", "--experiment", "deeplabv3plus_pretrained", "--profile", "smoke", "--out", run,
                   "--set", "iterations=2", "eval_flip=true")
    assert proc.returncode == 0, proc.stderr
    assert "mean" in proc.stdout and "background" in proc.stdout
    assert yaml.safe_load((run / "config.yaml").read_text())["eval_flip"] is True
    flipped = json.loads((run / "metrics.json").read_text())
    assert set(flipped["without_tta"]) == {"mIoU", "mAcc", "aAcc", "per_class"}  # the unflipped pass, stored beside
    from seglib.results import summary_row
    assert summary_row(run)["mIoU without TTA"] == round(flipped["without_tta"]["mIoU"], 2)
    # the machine it was scored on, beside the one it trained on: speeds compare only on one machine
    assert flipped["eval_host"] == flipped["host"] == summary_row(run)["host"] and "bf16" in flipped["host"]
    proc = cli("evaluate", "--run", run, "--json", tmp_path / "eval.json", "--scales", "0.75", "1.0", "--max-images", "2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1].startswith("mean")  # the report's form: mean row first
    scores = json.loads((tmp_path / "eval.json").read_text())
    assert set(scores) == {"mIoU", "mAcc", "aAcc", "per_class", "confusion"}
    assert sum(map(sum, scores["confusion"]["pixels"])) > 0 and "where each class's pixels go" in proc.stdout
    assert json.loads((run / "metrics.json").read_text())["images"] == 3  # plain evaluate leaves the run alone
    proc = cli("evaluate", "--run", run, "--update", "--no-flip", "--max-images", "2")
    assert proc.returncode == 0, proc.stderr
    stored = json.loads((run / "metrics.json").read_text())
    assert stored["images"] == 2 and "boundary" in stored and stored["train_seconds"] > 0 and "without_tta" not in stored
    assert stored["eval_host"] and stored["host"] == flipped["host"]  # rescoring names its own machine, keeps training's
    assert yaml.safe_load((run / "config.yaml").read_text())["eval_flip"] is False
    proc = cli("evaluate", "--run", tmp_path / "nothing", "--update")
    assert proc.returncode == 2 and "not a finished run" in proc.stderr
    image = sample_root / "JPEGImages" / f"{(sample_root / 'val_id.txt').read_text().split()[0]}.jpg"
    proc = cli("predict", "--run", run, image, "--out", tmp_path / "pred")
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in (tmp_path / "pred").iterdir()} == {f"{image.stem}_mask.png", f"{image.stem}_overlay.png"}
    (run / "final.pt").write_bytes(b"garbage")
    proc = cli("evaluate", "--run", run)
    assert proc.returncode == 2 and "unreadable checkpoint" in proc.stderr


def test_two_process_gloo_torchrun(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "seglib", "train", "--experiment", "deeplabv3plus_pretrained", "--profile", "smoke",
                           "--out", str(tmp_path / "ddp"), "--set", "device=cpu"],
                          capture_output=True, text=True, check=False, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["images"] == 3
    assert len(pd.read_csv(tmp_path / "ddp" / "per_image.csv")) == 3  # both ranks' images, gathered


def test_finished_run_is_reused_only_with_the_same_settings(sample_root, tmp_path):
    config = configs.load("fcn_unet_scratch", "smoke", {"iterations": 2})
    run = tmp_path / "run"
    first = train_module.ensure_trained(config, sample_root, run, progress=False)
    stamp = (run / "final.pt").stat().st_mtime
    # speed-only settings (workers, device, logging) do not make it another run
    same = {**config, "num_workers": 1, "device": "cpu", "log_every": 2}
    reused = train_module.ensure_trained(same, sample_root, run, progress=False)
    assert json.dumps(reused, sort_keys=True) == json.dumps(first, sort_keys=True)  # NaN-aware: absent classes
    assert (run / "final.pt").stat().st_mtime == stamp
    longer = {**config, "iterations": 3}
    with pytest.raises(SeglibError, match=r"finished with other settings \(iterations 2 -> 3\); retrain it with --force"):
        train_module.ensure_trained(longer, sample_root, run, progress=False)
    retrained = train_module.ensure_trained(longer, sample_root, run, force=True, progress=False)
    assert int((run / "log.csv").read_text().splitlines()[-1].split(",")[0]) == 3
    assert configs.read_run_config(run)["iterations"] == 3 and retrained["images"] == first["images"]


def test_changed_evaluation_settings_score_a_finished_run_again(sample_root, tmp_path, monkeypatch):
    config = configs.load("deeplabv3plus_pretrained", "smoke", {"iterations": 2})
    run = tmp_path / "run"
    first = train_module.ensure_trained(config, sample_root, run, progress=False)
    stamp = (run / "final.pt").stat().st_mtime
    multi = {**config, "eval_scales": [0.75, 1.25], "eval_flip": True}
    monkeypatch.setattr(train_module, "train", lambda *a, **k: pytest.fail("an evaluation change must not retrain"))
    used = []
    from seglib import evaluate

    real_predictor = evaluate.predictor_from_config
    monkeypatch.setattr(evaluate, "predictor_from_config",
                        lambda model, cfg, device: used.append(real_predictor(model, cfg, device)) or used[-1])
    again = train_module.ensure_trained(multi, sample_root, run, progress=False)
    assert (run / "final.pt").stat().st_mtime == stamp  # same weights
    saved = configs.read_run_config(run)
    assert saved["eval_scales"] == [0.75, 1.25] and saved["eval_flip"] is True
    assert json.loads((run / "metrics.json").read_text())["mIoU"] == again["mIoU"]
    assert again["train_seconds"] == first["train_seconds"] and again["images"] == first["images"]
    assert [(p.scales, p.flip) for p in used] == [((0.75, 1.25), True)]  # scored under the new settings
    # the border analysis reads the measures stored by that evaluation
    assert set(again["boundary"]) == {"boundary_iou", "boundary_f", "roughness"}
    assert again["boundary"]["roughness"].keys() == again["per_class"].keys()


def test_bf16_falls_back_to_fp32_on_a_cpu_without_native_bf16(native_bf16, capsys):
    from seglib import runtime

    config = configs.load("deeplabv3plus_scratch", "paper")
    assert config["precision_cpu"] == "bf16"
    for _ in range(3):  # said once, however often it is asked
        assert runtime.precision_for(config, torch.device("cpu")) == ("bf16" if native_bf16 else "fp32")
    out = capsys.readouterr()
    assert out.err == ""
    assert out.out.count("no native bf16") == (0 if native_bf16 else 1) and out.out.count("\n") == (0 if native_bf16 else 1)


def test_bench_times_the_settings_the_experiments_use():
    assert configs.settings_for_model("deeplabv3plus_r50-d8")["experiment"] == "deeplabv3plus_scratch"
    assert configs.settings_for_model("deeplabv3plus_r50-d8")["channels_last"] is False
    assert configs.settings_for_model("deeplabv3plus_lite2-d16")["precision_cpu"] == "fp32"


def test_a_run_is_scored_on_the_data_it_records_and_an_unfinished_one_only_when_asked(sample_copy, sample_root, tmp_path, cli):
    run = tmp_path / "run"
    proc = run_cli("train", "--experiment", "deeplabv3plus_pretrained", "--profile", "smoke", "--data", sample_copy,
                   "--out", run, "--set", "iterations=2")
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load((run / "config.yaml").read_text())["data"] == str(sample_copy.resolve())
    assert json.loads((run / "metrics.json").read_text())["train_images"] == 24
    # no --data: the recorded folder, not SEGLIB_DATA or the embedded sample
    (sample_copy / "val_id.txt").write_text("\n".join((sample_copy / "val_id.txt").read_text().split()[:2]))
    proc = cli("evaluate", "--run", run, env={"SEGLIB_DATA": str(sample_root)})
    assert proc.returncode == 0 and f"scored 2 val images of {sample_copy.resolve()}" in proc.stdout, proc.stderr
    proc = cli("evaluate", "--run", run, "--data", sample_root)  # another folder: allowed, and said
    assert proc.returncode == 0 and f"scored 12 val images of {sample_root.resolve()}" in proc.stdout
    proc = cli("evaluate", "--run", run, "--update", "--data", sample_root)  # the run's own scores: refused
    assert proc.returncode == 2 and "its scores are on" in proc.stderr and proc.stderr.count("\n") == 1
    proc = cli("evaluate", "--run", run, "--update")
    assert proc.returncode == 0 and json.loads((run / "metrics.json").read_text())["images"] == 2
    # an unfinished run (final.pt missing) is refused unless its last checkpoint is named
    (run / "final.pt").unlink()
    proc = cli("evaluate", "--run", run)
    assert proc.returncode == 2 and "unfinished" in proc.stderr and "--checkpoint last.pt" in proc.stderr
    proc = cli("evaluate", "--run", run, "--checkpoint", "last.pt")
    assert proc.returncode == 0 and "scoring an unfinished run" not in proc.stdout  # last.pt is at the final iteration


def test_evaluation_counts_are_reduced_on_the_model_device(monkeypatch):
    """Under torchrun on CUDA the NCCL group refuses CPU tensors: the counts go to the model's device."""
    import numpy as np

    from seglib import evaluate

    seen = []

    class Reduced(Exception):
        pass

    def fake_all_reduce(tensor):
        seen.append(tensor.device.type)
        raise Reduced

    monkeypatch.setattr(evaluate.dist, "all_reduce", fake_all_reduce)
    with pytest.raises(Reduced):
        evaluate.sum_across_ranks([np.zeros(3, np.int64)], torch.device("meta"))
    assert seen == ["meta"]


def test_a_setting_added_after_a_run_trained_counts_as_its_default(sample_root, tmp_path):
    config = configs.load("deeplabv3plus_pretrained", "smoke", {"iterations": 2})
    train(config, sample_root, tmp_path / "run", progress=False)
    saved = configs.read_run_config(tmp_path / "run")
    del saved["hierarchy_weight"]  # as written before the key existed
    configs.save(saved, tmp_path / "run" / "config.yaml")
    assert configs.changed_settings(tmp_path / "run", config) == {}
    assert configs.changed_settings(tmp_path / "run", {**config, "hierarchy_weight": 0.4}) == {"hierarchy_weight": (0, 0.4)}


def test_test_time_augmentation_also_scores_its_plain_pass_from_the_same_forward_passes(sample_root, monkeypatch):
    """Issue 18's best recipe flips at test time: the same evaluation also scores the unflipped scale-1
    pass (what the augmentation gave), equal to evaluating without augmentation, at no extra forward pass."""
    from seglib import evaluate
    from seglib.data import PascalPartDataset
    from seglib.models import build_model

    torch.manual_seed(0)
    model = build_model("deeplabv3plus_lite2-d16", 7).eval()
    val = PascalPartDataset(sample_root, "val")
    calls = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda x: calls.append(len(x)) or forward(x))
    tta = evaluate.evaluate_dataset(evaluate.Predictor(model, "deeplabv3plus_lite2-d16", 64, scales=(1.0, 0.75), flip=True),
                                    val, max_images=2, progress=False, num_workers=0)
    assert calls == [2, 2, 2, 2]  # per image: each scale's image and its flip, one batch; nothing more for the plain pass
    plain = evaluate.evaluate_dataset(evaluate.Predictor(model, "deeplabv3plus_lite2-d16", 64), val, max_images=2,
                                      progress=False, num_workers=0)
    assert "confusion_plain" not in plain and plain["confusion"].sum() == tta["confusion_plain"].sum() > 0
    assert (tta["confusion_plain"] == plain["confusion"]).all()
    no_unit_scale = evaluate.Predictor(model, "deeplabv3plus_lite2-d16", 64, scales=(0.75,), flip=True)
    assert "confusion_plain" not in evaluate.evaluate_dataset(no_unit_scale, val, max_images=1, progress=False, num_workers=0)


def _small_predictor():
    """An untrained FCN + U-Net at a 64-pixel window: the cheapest model evaluate.Predictor accepts."""
    from seglib import evaluate
    from seglib.models import build_model

    model = build_model("fcn_unet_s5-d16", 7).eval()
    return model, evaluate.Predictor(model, "fcn_unet_s5-d16", 64)


def test_evaluation_turns_cudnns_autotuner_off_and_restores_it(sample_root, monkeypatch):
    """Val photos differ in size: with cuDNN's autotuner on, a GPU times every convolution anew for each
    new shape. Evaluation runs with it off and gives training's fixed crops their setting back."""
    from seglib import evaluate

    model, predictor = _small_predictor()
    seen = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda x: seen.append(torch.backends.cudnn.benchmark) or forward(x))
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    evaluate.evaluate_dataset(predictor, PascalPartDataset(sample_root, "val"), max_images=2, progress=False,
                              num_workers=0)
    assert seen == [False, False] and torch.backends.cudnn.benchmark is True


def test_border_measures_in_worker_processes_sum_as_inline(sample_root):
    """On a GPU the border measures run in processes beside the forward passes (inline they held 500 val
    images to 78 s on an H200); the sums are the same, in the same order, as computed inline."""
    from seglib import evaluate

    torch.manual_seed(0)
    _, predictor = _small_predictor()
    val = PascalPartDataset(sample_root, "val")
    inline, pooled = (evaluate.evaluate_dataset(predictor, val, max_images=3, boundary=True, progress=False,
                                                num_workers=0, boundary_workers=w) for w in (0, 2))
    for key in ("boundary_iou", "roughness", "boundary_f"):
        np.testing.assert_array_equal(inline[key], pooled[key])
    assert np.isfinite(inline["boundary_iou"]).any()
    assert evaluate.border_workers(torch.device("cpu"), 2) == 0  # a CPU's cores hold the model's threads


def test_border_measure_workers_end_with_a_failed_evaluation(sample_root, monkeypatch):
    """An error mid-split (a bad image, an interrupted run) shuts the border-measure processes down with it,
    rather than leaving them alive for as long as the traceback is held."""
    import multiprocessing

    from seglib import evaluate

    _, predictor = _small_predictor()
    calls = []
    forward = predictor.probabilities

    def fail_on_second(image, with_plain=False):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("unreadable image")
        return forward(image, with_plain=with_plain)

    monkeypatch.setattr(predictor, "probabilities", fail_on_second)
    val = PascalPartDataset(sample_root, "val")
    with pytest.raises(RuntimeError, match="unreadable image"):
        evaluate.evaluate_dataset(predictor, val, max_images=3, boundary=True, progress=False, num_workers=0,
                                  boundary_workers=2)
    assert multiprocessing.active_children() == []
