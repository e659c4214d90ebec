import copy
import importlib.util

import pytest
import torch
from conftest import REPO
from segmentation_models_pytorch.losses import LovaszLoss

from seglib.errors import SeglibError
from seglib.losses import build_loss
from seglib.models import MODELS, build_model, lite2_package_path, lite2_to_timm
from seglib.runtime import autocast, has_dilated_depthwise_conv, training_memory_format


@pytest.mark.parametrize("name", MODELS)
def test_models_return_logits_in_eval_and_aux_in_train(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=7)
    x = torch.randn(2, 3, 64, 96)
    model.train()
    logits, aux = model(x)
    assert logits.shape == aux.shape == (2, 7, 64, 96)
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (2, 7, 64, 96)


def test_r50_d8_is_dilated_to_output_stride_8():
    model = build_model("deeplabv3plus_r50-d8")
    feats = model.net.encoder(torch.randn(1, 3, 64, 64))
    assert feats[-1].shape[-1] == 8 and feats[-2].shape[1] == 1024  # layer4 at 1/8; aux on layer3 (1024 ch)
    assert model.aux_head[0][0].out_channels == 256


def test_lite2_package_weights_load_strictly_into_the_timm_universal_encoder():
    state = torch.load(lite2_package_path(), map_location="cpu", weights_only=True)
    model = build_model("deeplabv3plus_lite2-d16", encoder_weights="lite2-package")
    assert type(model.net.encoder).__name__ == "TimmUniversalEncoder"  # SMP's tu- path, not the deprecated timm-
    encoder_state = model.net.encoder.state_dict()
    renamed = lite2_to_timm(state, list(encoder_state))
    # every encoder tensor comes from the package: 378 = the package's 386 less the classifier (2) and
    # the classifier's head conv + BN (6), which a features-only encoder does not have
    assert set(renamed) == set(encoder_state) and len(renamed) == 378
    for key, value in renamed.items():  # the loaded encoder holds exactly the package's tensors
        assert torch.equal(encoder_state[key], value), key
    scratch = build_model("deeplabv3plus_lite2-d16")
    key = "model.conv_stem.weight"
    assert not torch.equal(scratch.net.encoder.state_dict()[key], encoder_state[key])


@pytest.mark.parametrize("name", ["deeplabv3plus_r50-d8", "deeplabv3plus_lite2-d16"])
def test_every_aspp_branch_sees_more_than_padding_at_crop_512(name):
    """DeepLab's rule (rates 6/12/18 at stride 16, 12/24/36 at 8): each dilated ASPP tap must fall
    inside the feature map of a 512 crop, else the branch degenerates to a 1x1 convolution."""
    model = build_model(name)
    with torch.no_grad():
        feature = model.eval().net.encoder(torch.randn(1, 3, 512, 512))[-1].shape[-1]
    assert feature == 512 // (8 if name.endswith("d8") else 16)
    dilations = [max(m.dilation) for m in model.net.decoder.modules()
                 if isinstance(m, torch.nn.Conv2d) and max(m.dilation) > 1]
    assert len(dilations) == 3 and all(d < feature for d in dilations), (dilations, feature)
    assert dilations == [6, 12, 18] if name.endswith("d16") else dilations == [12, 24, 36]


def test_missing_weights_file_stops_with_the_alternatives(tmp_path):
    with pytest.raises(SeglibError, match="file not found.*lite2-package.*imagenet"):
        build_model("deeplabv3plus_r50-d8", encoder_weights=str(tmp_path / "resnet50.pth"))


def test_wrong_weights_file_stops_clearly(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.raises(SeglibError, match="does not fit"):
        build_model("deeplabv3plus_r50-d8", encoder_weights=str(path))


def test_imagenet_without_network_stops_instead_of_training_from_random(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub read the variable when the model libraries imported it: offline now, not after
    # 48 s of connection retries (the same error either way)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(SeglibError, match="download failed.*lite2-package"):
        build_model("deeplabv3plus_lite2-d16", encoder_weights="imagenet")


def test_unknown_model_and_loss_are_clear():
    with pytest.raises(SeglibError, match="unknown model"):
        build_model("segformer")
    with pytest.raises(SeglibError, match="unknown loss"):
        build_loss("dice")


def test_losses_ignore_the_ignore_label_and_combine():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 7, 8, 8), torch.randint(0, 7, (2, 8, 8))
    target[0, 0] = 255
    ce, lovasz, both = build_loss("ce"), build_loss("lovasz"), build_loss("ce+lovasz")
    ref = LovaszLoss("multiclass", per_image=False, ignore_index=255)(logits, target)
    assert torch.allclose(lovasz(logits, target), ref)
    assert torch.allclose(both(logits, target), ce(logits, target) + ref)
    changed = logits.clone()
    changed[0, :, 0] = 100.0  # only ignored pixels change
    assert torch.allclose(lovasz(changed, target), lovasz(logits, target))
    assert torch.allclose(ce(changed, target), ce(logits, target))


def test_lovasz_is_near_zero_for_a_confident_correct_prediction():
    target = torch.randint(0, 7, (1, 16, 16))
    logits = torch.nn.functional.one_hot(target, 7).permute(0, 3, 1, 2).float() * 50
    assert build_loss("lovasz")(logits, target) < 1e-4


def _weight_grads(module, memory_format, precision, adjust=None):
    """Gradients of every parameter of a copy of `module` (64 channels in and out) after one step on 32 x 32
    inputs, laid out in memory_format and then changed by adjust(module)."""
    module = copy.deepcopy(module).to(memory_format=memory_format)
    if adjust:
        adjust(module)
    x = torch.randn(2, 64, 32, 32, generator=torch.Generator().manual_seed(0)).contiguous(memory_format=memory_format)
    with autocast(torch.device("cpu"), precision):
        y = module(x)
    grad = torch.randn(y.shape, generator=torch.Generator().manual_seed(1)).to(y.dtype)
    y.backward(grad.contiguous(memory_format=memory_format))
    return [p.grad.float() for p in module.parameters()]


def test_bf16_training_on_cpu_avoids_channels_last_and_its_wrong_depthwise_gradients(capsys):
    conv = torch.nn.Conv2d(64, 64, 3, padding=2, dilation=2, groups=64, bias=False)
    reference = _weight_grads(conv, torch.contiguous_format, "fp32")[0]
    chosen = training_memory_format(conv, True, torch.device("cpu"), "bf16")
    assert "wrong gradients" in capsys.readouterr().out
    assert chosen == torch.contiguous_format
    error = (_weight_grads(conv, chosen, "bf16")[0] - reference).norm() / reference.norm()
    assert error < 0.02  # bf16 rounding only; channels_last gave ~1.4 with torch 2.14 on AVX512-BF16
    assert training_memory_format(conv, True, torch.device("cpu"), "fp32") == torch.channels_last
    plain = torch.nn.Conv2d(64, 64, 3, padding=1)  # no dilated depthwise conv: channels_last stays
    assert training_memory_format(plain, True, torch.device("cpu"), "bf16") == torch.channels_last
    assert has_dilated_depthwise_conv(build_model("deeplabv3plus_r50-d8"))
    assert not has_dilated_depthwise_conv(build_model("fcn_unet_s5-d16"))


@pytest.mark.parametrize("variant", ["bf16-cl-dw-contiguous", "bf16-cl-dw-fp32"])
def test_step_timing_alternatives_to_the_refusal_give_fp32_gradients(variant):
    # scripts/step_timing.py times these two ways of keeping channels_last around the dilated depthwise
    # convs (docs/performance.md); its timings only mean something if they train correctly
    spec = importlib.util.spec_from_file_location("step_timing", REPO / "scripts" / "step_timing.py")
    step_timing = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(step_timing)
    torch.manual_seed(0)
    branch = torch.nn.Sequential(torch.nn.Conv2d(64, 64, 1), torch.nn.Conv2d(64, 64, 3, padding=2, dilation=2, groups=64),
                                 torch.nn.Conv2d(64, 64, 1))
    reference = _weight_grads(branch, torch.contiguous_format, "fp32")  # ASPP-like: 1x1, dilated depthwise, 1x1
    adjust = step_timing.VARIANTS[variant][2]
    for got, want in zip(_weight_grads(branch, torch.channels_last, "bf16", adjust), reference):
        assert (got - want).norm() / want.norm() < 0.02


def test_hierarchy_labels_come_from_the_part_mask():
    from seglib.losses import HierarchyLoss, hierarchy_luts

    names = ["background", "lower-arms", "torso", "lower-legs", "head", "upper-legs", "upper-arms"]  # classes.txt order
    luts = hierarchy_luts(names)
    mask = torch.tensor([0, 1, 2, 3, 4, 5, 6, 255])
    assert luts["full_body"][mask].tolist() == [0, 1, 1, 1, 1, 1, 1, 255]
    assert luts["half_body"][mask].tolist() == [0, 1, 1, 2, 1, 2, 1, 255]
    with pytest.raises(SeglibError, match="body hierarchy needs"):
        hierarchy_luts(["background", "car"])
    loss = HierarchyLoss(names)
    target = torch.randint(0, 7, (2, 8, 8))
    perfect = {"full_body": torch.nn.functional.one_hot(luts["full_body"][target], 2).permute(0, 3, 1, 2).float() * 50,
               "half_body": torch.nn.functional.one_hot(luts["half_body"][target], 3).permute(0, 3, 1, 2).float() * 50}
    assert loss(perfect, target).item() < 1e-6
    assert loss({k: -v for k, v in perfect.items()}, target).item() > 10


def test_hierarchy_heads_train_and_cost_nothing_at_test_time():
    model = build_model("deeplabv3plus_lite2-d16", hierarchy=True).train()
    *_, coarse = model(torch.randn(2, 3, 64, 64))
    assert coarse["full_body"].shape == (2, 2, 64, 64) and coarse["half_body"].shape == (2, 3, 64, 64)
    plain = build_model("deeplabv3plus_lite2-d16")
    extra = sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in plain.parameters())
    assert extra == 256 * 2 + 2 + 256 * 3 + 3  # two 1x1 classifiers
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 7, 64, 64)  # parts only at inference
    with pytest.raises(SeglibError, match="hierarchy heads"):
        build_model("fcn_unet_s5-d16", hierarchy=True)
