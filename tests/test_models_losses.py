import copy
import importlib.util

import pytest
import torch
from conftest import REPO
from segmentation_models_pytorch.losses import LovaszLoss

from seglib.errors import SeglibError
from seglib.evaluate import autocast, has_dilated_depthwise_conv, training_memory_format
from seglib.losses import build_loss
from seglib.models import MODELS, build_model, lite2_package_path, lite2_to_timm


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


def test_lite2_package_weights_load_strictly_into_the_timm_encoder():
    state = torch.load(lite2_package_path(), map_location="cpu", weights_only=True)
    model = build_model("deeplabv3plus_lite2-d16", encoder_weights="lite2-package")
    encoder_state = model.net.encoder.state_dict()
    renamed = lite2_to_timm(state, list(encoder_state))
    assert len(renamed) == len(encoder_state) == 384
    for key, value in renamed.items():  # the loaded encoder holds exactly the package's tensors
        assert torch.equal(encoder_state[key], value), key
    scratch = build_model("deeplabv3plus_lite2-d16")
    assert not torch.equal(scratch.net.encoder.state_dict()["conv_stem.weight"], encoder_state["conv_stem.weight"])


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


def test_bf16_training_on_cpu_avoids_channels_last_and_its_wrong_depthwise_gradients():
    conv = torch.nn.Conv2d(64, 64, 3, padding=2, dilation=2, groups=64, bias=False)
    reference = _weight_grads(conv, torch.contiguous_format, "fp32")[0]
    with pytest.warns(UserWarning, match="wrong gradients"):
        chosen = training_memory_format(conv, True, torch.device("cpu"), "bf16")
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
