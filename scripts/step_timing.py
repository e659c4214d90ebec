"""Seconds per training step of one model under each precision and memory format, on random inputs:
the measurements behind each experiment's precision_cpu / channels_last (docs/performance.md).

python scripts/step_timing.py deeplabv3plus_r50-d8 --crop 256 --batch 4 --iters 3
"""
import argparse
import time

import torch
import torch.nn.functional as F

from seglib.evaluate import autocast
from seglib.models import build_model

VARIANTS = {"fp32": ("fp32", False), "fp32+channels_last": ("fp32", True),
            "bf16": ("bf16", False), "bf16+channels_last": ("bf16", True)}


def seconds_per_step(model_name, crop, batch, iters, precision, channels_last, device):
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = build_model(model_name, 7).to(device, memory_format=fmt).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    images = torch.randn(batch, 3, crop, crop, device=device).contiguous(memory_format=fmt)
    masks = torch.randint(0, 7, (batch, crop, crop), device=device)

    def step():
        with autocast(device, precision):
            logits, aux = model(images)
            loss = F.cross_entropy(logits.float(), masks) + 0.4 * F.cross_entropy(aux.float(), masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()  # waits for the device

    step()
    start = time.perf_counter()
    for _ in range(iters):
        step()
    return (time.perf_counter() - start) / iters


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    for name, (precision, channels_last) in VARIANTS.items():
        seconds = seconds_per_step(args.model, args.crop, args.batch, args.iters, precision, channels_last,
                                   torch.device(args.device))
        print(f"{args.model} crop {args.crop} batch {args.batch} {name:<20} {seconds:.3f} s/step", flush=True)
