"""Seconds per training step of one model under each precision and memory format, on random inputs:
the measurements behind each experiment's precision_cpu / channels_last (docs/performance.md). It times
bf16 + channels_last too, which seglib refuses to train with on CPU for models with dilated depthwise
convolutions (wrong gradients), to show what the refusal costs.

python scripts/step_timing.py deeplabv3plus_r50-d8 --crop 256 --batch 4 --iters 3
"""
import argparse

import torch

from seglib.bench import train_throughput

VARIANTS = {"fp32": ("fp32", False), "fp32+channels_last": ("fp32", True),
            "bf16": ("bf16", False), "bf16+channels_last": ("bf16", True)}

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    for name, (precision, channels_last) in VARIANTS.items():
        images_per_s = train_throughput(args.model, args.crop, args.batch, args.iters, torch.device(args.device),
                                        precision, channels_last, warmup=1, guard=False)
        print(f"{args.model} crop {args.crop} batch {args.batch} {name:<20} {args.batch / images_per_s:.3f} s/step",
              flush=True)
