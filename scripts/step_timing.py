"""Seconds per training step of one model under each precision and memory format, on random inputs:
the measurements behind each experiment's precision_cpu / channels_last (docs/performance.md). It times
bf16 + channels_last too, which seglib refuses to train with on CPU for models with dilated depthwise
convolutions (wrong gradients), to show what the refusal costs, and two ways of keeping channels_last
for every other layer, which did not pay enough to adopt (bf16-cl-dw-contiguous, bf16-cl-dw-fp32).

python scripts/step_timing.py deeplabv3plus_r50-d8 --crop 256 --batch 4 --iters 3
python scripts/step_timing.py deeplabv3plus_lite2-d16 --crop 512 --iters 6 --warmup 2 --repeat 2 \
    --variants fp32-cl bf16-cl-dw-fp32 bf16-cl-dw-contiguous
"""
import argparse

import torch

from seglib.bench import train_throughput
from seglib.runtime import dilated_depthwise_convs


def _contiguous_input(module, args):
    return (args[0].contiguous(), *args[1:])


def depthwise_contiguous(model):
    """Dilated depthwise convs in the default format (weight and input), every other layer channels_last:
    their bf16 weight gradients are right then (4e-3 relative error against fp32 on an ASPP-like branch,
    against 1.38 in channels_last)."""
    for conv in dilated_depthwise_convs(model):
        conv.weight.data = conv.weight.data.clone(memory_format=torch.contiguous_format)
        conv.register_forward_pre_hook(_contiguous_input)


class FP32Conv2d(torch.nn.Conv2d):
    def forward(self, x):
        with torch.autocast("cpu", enabled=False):
            return super().forward(x.float())


def depthwise_fp32(model):
    """Dilated depthwise convs outside autocast, in fp32 channels_last (right gradients)."""
    for conv in dilated_depthwise_convs(model):
        conv.__class__ = FP32Conv2d


def compiled(model):
    """torch.compile (inductor: fused C++ kernels on the CPU), in place."""
    model.compile()


# name: (precision, channels_last, change to single layers, label)
VARIANTS = {"fp32": ("fp32", False, None, "fp32"),
            "fp32-cl": ("fp32", True, None, "fp32+channels_last"),
            "fp32-cl-dw-contiguous": ("fp32", True, depthwise_contiguous,
                                      "fp32+channels_last, dilated depthwise convs contiguous"),
            "fp32-cl-compile": ("fp32", True, compiled, "fp32+channels_last, torch.compile"),
            "bf16": ("bf16", False, None, "bf16"),
            "bf16-cl": ("bf16", True, None, "bf16+channels_last (wrong gradients)"),
            "bf16-cl-dw-contiguous": ("bf16", True, depthwise_contiguous,
                                      "bf16+channels_last, dilated depthwise convs contiguous"),
            "bf16-cl-dw-fp32": ("bf16", True, depthwise_fp32, "bf16+channels_last, dilated depthwise convs fp32")}

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1, help="time the variants in turn this many times")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=["fp32", "fp32-cl", "bf16", "bf16-cl"])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    for _ in range(args.repeat):
        for name in args.variants:
            precision, channels_last, adjust, label = VARIANTS[name]
            images_per_s = train_throughput(args.model, args.crop, args.batch, args.iters, torch.device(args.device),
                                            precision, channels_last, warmup=args.warmup, guard=False, adjust=adjust)
            print(f"{args.model} crop {args.crop} batch {args.batch} {label:<55} {args.batch / images_per_s:.3f} s/step",
                  flush=True)
