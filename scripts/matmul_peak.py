"""GFLOP/s of a large matrix product in fp32 and in bf16 on this machine's CPU: the ceiling of what bf16
autocast can gain over fp32 for a model whose step is convolution arithmetic (docs/performance.md).

python scripts/matmul_peak.py [--size 2048] [--repeat 5]
"""
import argparse
import time

import torch


def gflops(size: int, dtype: torch.dtype, repeat: int) -> float:
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    a @ b  # warm-up: oneDNN/BLAS picks its kernel
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    fp32, bf16 = gflops(args.size, torch.float32, args.repeat), gflops(args.size, torch.bfloat16, args.repeat)
    print(f"{torch.get_num_threads()} threads, {args.size}x{args.size} matmul: fp32 {fp32:.0f} GFLOP/s, "
          f"bf16 {bf16:.0f} GFLOP/s, ratio {bf16 / fp32:.2f}")
