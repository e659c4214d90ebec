"""Checks the CPU bug behind seglib.runtime.training_memory_format: in bf16 autocast with channels_last,
oneDNN's weight gradient of dilated depthwise convs disagrees with fp32 (torch 2.14.1, AVX512-BF16).

python scripts/check_depthwise_bf16.py      prints relative errors of output, input grad and weight grad
"""
import torch


def relative_errors(channels, size, dilation, memory_format, precision):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, groups=channels, bias=False)
    x = torch.randn(2, channels, size, size, requires_grad=True)
    grad = torch.randn(2, channels, size, size)
    ref = (conv(x), *torch.autograd.grad(conv(x), (x, conv.weight), grad))
    conv = conv.to(memory_format=memory_format)
    xm = x.detach().contiguous(memory_format=memory_format).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        y = conv(xm)
    got = (y, *torch.autograd.grad(y, (xm, conv.weight), grad.to(y.dtype).contiguous(memory_format=memory_format)))
    return [float((a.float() - b).norm() / b.norm()) for a, b in zip(got, ref)]


if __name__ == "__main__":
    print(f"torch {torch.__version__}; relative error against fp32 contiguous (bf16 rounding alone is ~3e-3)")
    print(f"{'channels':>8} {'size':>4} {'dilation':>8} {'format':>14} {'precision':>9}  output   input-grad weight-grad")
    for channels, size, dilation in [(352, 16, 12), (352, 32, 2), (352, 32, 12), (2048, 32, 12), (2048, 32, 36), (96, 64, 1)]:
        for fmt_name, fmt in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
            for precision in ("fp32", "bf16"):
                errors = relative_errors(channels, size, dilation, fmt, precision)
                flag = "  WRONG" if max(errors) > 0.05 else ""
                print(f"{channels:>8} {size:>4} {dilation:>8} {fmt_name:>14} {precision:>9}  "
                      + "  ".join(f"{e:9.2e}" for e in errors) + flag)
